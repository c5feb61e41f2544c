"""Latency of the converted dlib ResNet (onnxruntime, CPU) against dlib itself.

Prints, for batch 1 and batch 32 of 150x150 chips from the real photos: median
milliseconds per batch and images per second, for onnxruntime on the ONNX graph from
``import_dlib`` and for ``dlib.face_recognition_model_v1.compute_face_descriptor``; also
the time to cut one chip with mfrkit's ``dlib_chip`` and with ``dlib.get_face_chip``, and
the largest descriptor difference as a sanity check. Figures, not assertions.

    python benchmarks/dlib_baseline.py [--repeats 20] [--threads 0] [--onnx existing.onnx]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    parser.add_argument("--onnx", type=Path, default=None, help="use this converted model instead of converting")
    args = parser.parse_args()

    import dlib
    import face_recognition_models as frm
    import onnxruntime as ort

    from mfrkit.align import dlib_chip
    from mfrkit.data.sample import source_photos
    from mfrkit.models.dlib_resnet import import_dlib

    tmp = tempfile.TemporaryDirectory()
    onnx_path = args.onnx
    if onnx_path is None:
        t0 = time.perf_counter()
        onnx_path = import_dlib(Path(tmp.name) / "dlib_resnet.onnx")
        print(f"import_dlib (parse + export + check): {time.perf_counter() - t0:.1f} s")

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(frm.pose_predictor_model_location())
    rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    chips, shapes = [], []
    for image in source_photos().values():
        rects, scores, _ = det.run(image, 1, 0.0)
        shape = sp(image, rects[int(np.argmax(scores))])
        shapes.append((image, shape))
        chips.append(dlib.get_face_chip(image, shape, 150, 0.25))
    batch32 = np.stack([chips[i % len(chips)] for i in range(32)])

    opts = ort.SessionOptions()
    if args.threads:
        opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    mean = np.array([float(v) for v in meta["mfrkit.mean"].split(",")], np.float32)
    std = np.array([float(v) for v in meta["mfrkit.std"].split(",")], np.float32)

    def to_input(batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(((batch.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2))

    x1, x32 = to_input(batch32[:1]), to_input(batch32)
    ours = session.run(None, {"input": x32})[0]
    theirs = np.array([np.array(d) for d in rec.compute_face_descriptor(list(batch32))])
    print(f"max |onnx - dlib| over the 32 descriptors: {np.abs(ours - theirs).max():.2e}")

    print(f"\nCPU: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores; "
          f"onnxruntime {ort.__version__} (threads={args.threads or 'default'}), dlib {dlib.__version__}")
    print(f"{'engine':<34}{'batch':>6}{'ms/batch':>11}{'img/s':>9}")
    rows = [
        ("onnxruntime (mfrkit conversion)", 1, lambda: session.run(None, {"input": x1})),
        ("onnxruntime (mfrkit conversion)", 32, lambda: session.run(None, {"input": x32})),
        ("dlib compute_face_descriptor", 1, lambda: rec.compute_face_descriptor(batch32[0])),
        ("dlib compute_face_descriptor", 32, lambda: rec.compute_face_descriptor(list(batch32))),
    ]
    for name, batch, fn in rows:
        reps = args.repeats if batch == 1 else max(3, args.repeats // 4)
        sec = median_seconds(fn, reps, warmup=2)
        print(f"{name:<34}{batch:>6}{sec * 1e3:>11.1f}{batch / sec:>9.1f}")

    image, shape = shapes[-1]
    points = np.array([(p.x, p.y) for p in shape.parts()], float)
    print("\nchip cutting, one 150x150 chip from the 512x600 Grace Hopper photo:")
    ours_ms = median_seconds(lambda: dlib_chip(image, points), args.repeats, warmup=2) * 1e3
    dlib_ms = median_seconds(lambda: dlib.get_face_chip(image, shape, 150, 0.25), args.repeats, warmup=2) * 1e3
    print(f"  mfrkit.align.dlib_chip   {ours_ms:.2f} ms")
    print(f"  dlib.get_face_chip       {dlib_ms:.2f} ms")
    tmp.cleanup()


if __name__ == "__main__":
    main()
