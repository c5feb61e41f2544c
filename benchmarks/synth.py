"""Mask-synthesis throughput: images per second per core, end to end and render only.

Run from the repository root::

    PYTHONPATH=. python benchmarks/synth.py [--images 16] [--repeat 3]

For each renderer and image size it prints the CPU milliseconds per image of each
stage, in one process after a warm-up pass:

* ``decode``: the JPEG; ``landmarks``: mediapipe's face mesh on 250x250 photos, the
  mean face on 112x112 aligned crops; ``render``: sample and render the mask (the
  renderer's own work); ``encode``: the JPEG;
* ``e2e/core``: images per second per core end to end, ``1000 / sum of the stages``;
  ``render/core``: the same for rendering alone;
* ``2 workers``: the end-to-end loop in two processes at once, images per second
  (steady state: start-up excluded) and the speed-up over one process (wall time).

CPU time counts every thread of the process, so it is the per-core cost even though
mediapipe runs a small thread pool. (Pinning a process to one core would make those
threads fight the renderer for it and double the render time.) The images are the
demo sample's LFW-style captures of two real photos and their 112x112 ArcFace crops.
Nothing is asserted: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

STAGES = ("decode", "landmarks", "render", "encode")


def _images(n: int) -> tuple[list[bytes], list[bytes]]:
    """JPEG bytes of ``n`` 250x250 captures and of their 112x112 aligned crops."""
    from mfrkit.align import align_face
    from mfrkit.data.imageio import decode_image, encode_image
    from mfrkit.data.sample import build_sample
    from mfrkit.landmarks import create_backend, detect_primary

    with tempfile.TemporaryDirectory() as tmp:
        records = build_sample(tmp, captures=max(1, -(-n // 2)), seed=0)
        raw = [(Path(tmp) / r["path"]).read_bytes() for r in records][:n]
        backend = create_backend("mediapipe")
        crops = []
        for data in raw:
            img = decode_image(data)
            face = detect_primary(backend, img)
            if face.status == "ok":
                crops.append(encode_image(align_face(img, face.landmarks.points5, size=112).image, ".jpg"))
        backend.close()
    return raw, crops


def _loop(args: tuple) -> dict:
    """Time the end-to-end loop in this process: CPU ms per image by stage, wall s, images."""
    import cv2

    cv2.setNumThreads(1)  # one core per process: no OpenCV thread pool
    renderer_name, images, aligned, repeat = args
    from mfrkit.data.imageio import decode_image, encode_image
    from mfrkit.landmarks import create_backend, detect_primary
    from mfrkit.maskgen import aligned_landmarks, create_renderer

    renderer = create_renderer(renderer_name)
    backend = None if aligned else create_backend("mediapipe")
    cpu = dict.fromkeys(STAGES, 0.0)
    n = 0
    wall = 0.0
    for r in range(repeat + 1):  # pass 0 warms up models and caches
        start = time.perf_counter()
        for k, data in enumerate(images):
            t0 = time.process_time()
            img = decode_image(data)
            t1 = time.process_time()
            lm = aligned_landmarks(img.shape[1], img.shape[0]) if aligned else detect_primary(backend, img).landmarks
            t2 = time.process_time()
            out = renderer.apply(img, renderer.sample(np.random.default_rng([r, k]), lm))
            t3 = time.process_time()
            encode_image(out.image, ".jpg")
            t4 = time.process_time()
            if r:
                for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    cpu[stage] += dt
                n += 1
        if r:
            wall += time.perf_counter() - start
    if backend is not None:
        backend.close()
    return {"cpu_ms": {k: 1000 * v / n for k, v in cpu.items()}, "wall": wall, "n": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="Distinct images per size.")
    parser.add_argument("--repeat", type=int, default=3, help="Timed passes over the images.")
    parser.add_argument("--renderers", default="mesh,template")
    args = parser.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")
    raw, crops = _images(args.images)
    print(f"{len(raw)} photos 250x250, {len(crops)} aligned crops 112x112, {args.repeat} timed passes; {os.cpu_count()} cores")
    head = "".join(f"{s:>10}" for s in STAGES)
    print(f"{'renderer':<9} {'size':<8}{head}  (CPU ms/img) {'e2e/core':>9} {'render/core':>12} {'1 proc':>7} {'2 workers':>10} {'speed-up':>9}")
    spawn = multiprocessing.get_context("spawn")  # mediapipe must not be forked once initialised
    for name in args.renderers.split(","):
        for size, images, aligned in (("250x250", raw, False), ("112x112", crops, True)):
            one = _loop((name, images, aligned, args.repeat))
            ms = one["cpu_ms"]
            single = one["n"] / one["wall"]
            with ProcessPoolExecutor(2, mp_context=spawn) as pool:
                results = list(pool.map(_loop, [(name, images, aligned, args.repeat)] * 2))
            # Both timed loops run at once; the slower one bounds the pair's throughput.
            pair = sum(r["n"] for r in results) / max(r["wall"] for r in results)
            stages = "".join(f"{ms[s]:>10.2f}" for s in STAGES)
            print(f"{name:<9} {size:<8}{stages}  {'':<12} {1000 / sum(ms.values()):>9.1f} {1000 / ms['render']:>12.1f} "
                  f"{single:>7.1f} {pair:>10.1f} {pair / single:>8.2f}x")


if __name__ == "__main__":
    main()
