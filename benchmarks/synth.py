"""Mask-synthesis throughput: images per second per worker, end to end and render only.

Run from the repository root::

    PYTHONPATH=. python benchmarks/synth.py [--images 24] [--repeat 3]

For each renderer and image size it prints

* ``end to end``: decode the JPEG, find landmarks (mediapipe's face mesh on 250x250
  photos; the mean face on 112x112 aligned crops), sample and render the mask, encode
  the JPEG, in one process pinned to one core;
* ``render only``: sample and render;
* ``2 workers``: the end-to-end loop in two pinned processes, and its speed-up.

Figures are images per second from wall time, with process CPU time beside them (on
a shared machine the CPU figure is the steadier per-core measure). The images are the
demo sample's LFW-style captures of two real photos (and their 112x112 ArcFace crops).
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


def _pin(core: int | None) -> None:
    import cv2

    cv2.setNumThreads(1)
    if core is not None and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[core % len(cores)]})


def _images(n: int) -> tuple[list[bytes], list[bytes]]:
    """JPEG bytes of ``n`` 250x250 captures and of their 112x112 aligned crops."""
    from mfrkit.align import align_face
    from mfrkit.data.imageio import encode_image, read_image
    from mfrkit.data.sample import build_sample
    from mfrkit.landmarks import create_backend, detect_primary

    with tempfile.TemporaryDirectory() as tmp:
        records = build_sample(tmp, captures=max(1, -(-n // 2)), seed=0)
        raw = [(Path(tmp) / r["path"]).read_bytes() for r in records][:n]
        backend = create_backend("mediapipe")
        crops = []
        for data in raw:
            img = read_image(Path(tmp) / records[raw.index(data)]["path"])
            face = detect_primary(backend, img)
            if face.status == "ok":
                crops.append(encode_image(align_face(img, face.landmarks.points5, size=112).image, ".jpg"))
    return raw, crops


def _loop(args: tuple) -> tuple[float, float, int]:
    """Run one benchmark loop in this process; (wall s, cpu s, images)."""
    renderer_name, images, aligned, repeat, stage, core = args
    _pin(core)
    from mfrkit.data.imageio import decode_image, encode_image
    from mfrkit.landmarks import create_backend, detect_primary
    from mfrkit.maskgen import aligned_landmarks, create_renderer

    renderer = create_renderer(renderer_name)
    backend = None if aligned else create_backend("mediapipe")
    # Warm up: models, caches, the canonical face.
    decoded = [decode_image(b) for b in images]
    marks = []
    for k, img in enumerate(decoded):
        lm = aligned_landmarks(img.shape[1], img.shape[0]) if aligned else detect_primary(backend, img).landmarks
        marks.append(lm)
        if k < 2:
            renderer.apply(img, renderer.sample(np.random.default_rng(k), lm))
    n = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for r in range(repeat):
        for k, data in enumerate(images):
            rng = np.random.default_rng([r, k])
            if stage == "render":
                out = renderer.apply(decoded[k], renderer.sample(rng, marks[k]))
            else:
                img = decode_image(data)
                lm = aligned_landmarks(img.shape[1], img.shape[0]) if aligned else detect_primary(backend, img).landmarks
                out = renderer.apply(img, renderer.sample(rng, lm))
                encode_image(out.image, ".jpg")
            n += 1
    return time.perf_counter() - wall, time.process_time() - cpu, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="Distinct images per size.")
    parser.add_argument("--repeat", type=int, default=3, help="Passes over the images.")
    parser.add_argument("--renderers", default="mesh,template")
    args = parser.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")
    raw, crops = _images(args.images)
    print(f"{len(raw)} photos 250x250, {len(crops)} aligned crops 112x112, {args.repeat} passes; cores available: {len(os.sched_getaffinity(0))}")
    print(f"{'renderer':<9} {'size':<8} {'stage':<11} {'img/s wall':>10} {'img/s cpu':>10} {'ms/img cpu':>10}")
    for name in args.renderers.split(","):
        for size, images, aligned in (("250x250", raw, False), ("112x112", crops, True)):
            one = None
            for stage in ("end to end", "render"):
                wall, cpu, n = _loop((name, images, aligned, args.repeat, "render" if stage == "render" else "e2e", 0))
                print(f"{name:<9} {size:<8} {stage + ' only' if stage == 'render' else stage:<11} {n / wall:>10.1f} {n / cpu:>10.1f} {1000 * cpu / n:>10.2f}")
                if stage == "end to end":
                    one = n / wall
            # Spawned, not forked: mediapipe must not be forked once initialised.
            with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
                start = time.perf_counter()
                results = list(pool.map(_loop, [(name, images, aligned, args.repeat, "e2e", core) for core in (0, 1)]))
                wall = time.perf_counter() - start
            n = sum(r[2] for r in results)
            cpu = sum(r[1] for r in results)
            print(f"{name:<9} {size:<8} {'2 workers':<11} {n / wall:>10.1f} {n / cpu:>10.1f} {1000 * cpu / n:>10.2f}   speed-up x{n / wall / one:.2f} (wall, incl. start-up)")


if __name__ == "__main__":
    main()
