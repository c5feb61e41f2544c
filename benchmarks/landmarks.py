"""Landmark throughput per backend on the demo sample (images/second, one process).

    python benchmarks/landmarks.py [--captures 20] [--repeat 3]

Decoding is excluded (images are decoded once up front); the figure is detection
plus landmarks for the primary face, median over repeats.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mfrkit.data.imageio import read_image
from mfrkit.data.sample import build_sample
from mfrkit.landmarks import create_backend, detect_primary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=int, default=20, help="captures per identity")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        records = build_sample(tmp, captures=args.captures)
        images = [read_image(Path(tmp) / r["path"]) for r in records]
    h, w = images[0].shape[:2]
    print(f"{len(images)} sample images of {w}x{h} px")
    for name, options in [("mediapipe", {}), ("mediapipe", {"thorough": True}), ("dlib", {}), ("dlib", {"upsample": 0})]:
        backend = create_backend(name, **options)
        detect_primary(backend, images[0])  # warm-up (model load, graph init)
        rates, found = [], 0
        for _ in range(args.repeat):
            start = time.perf_counter()
            found = sum(detect_primary(backend, img).status == "ok" for img in images)
            rates.append(len(images) / (time.perf_counter() - start))
        label = name + "".join(f" {k}={v}" for k, v in options.items())
        print(f"{label:<28} {statistics.median(rates):8.1f} images/s  ({found}/{len(images)} faces found)")


if __name__ == "__main__":
    main()
