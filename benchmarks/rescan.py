"""Cost of keeping a scan current. Prints figures; asserts nothing.

A folder of ``--images`` small JPEGs in ``--ids`` identity folders is scanned once, then:

1. ``update_scan`` on the unchanged folder (a walk and a stat per file, nothing read),
   against the full ``scan_dataset`` (every file read, hashed and decoded);
2. ``update_scan`` after ``--touch`` percent of the files got new times but the same
   bytes (those are hashed, nothing decoded) and ``--replace`` percent were replaced;
3. ``modified_images`` (what loading a protocol runs): a stat per manifest row.

    python benchmarks/rescan.py [--images 20000] [--ids 500] [--touch 10] [--replace 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mfrkit.data.imageio import write_image
from mfrkit.data.scan import modified_images, scan_dataset, update_scan


def best(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--ids", type=int, default=500)
    ap.add_argument("--touch", type=float, default=10.0, help="percent of files re-timed, same bytes")
    ap.add_argument("--replace", type=float, default=1.0, help="percent of files replaced")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        paths = []
        for i in range(args.images):
            p = root / f"id{i % args.ids:05d}" / f"{i:07d}.jpg"
            write_image(p, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
            paths.append(p)
        t_scan, (manifest, _) = best(lambda: scan_dataset(root, layout="imagefolder"), 1)
        t_same, (same, _) = best(lambda: update_scan(manifest), args.repeats)
        t_check, _ = best(lambda: modified_images(manifest), args.repeats)
        print(f"{args.images} images in {args.ids} folders")
        print(f"  full scan (read, hash, decode):        {t_scan:8.2f} s")
        print(f"  update_scan, nothing changed:          {t_same:8.2f} s ({t_scan / t_same:.0f}x faster)")
        print(f"  modified_images, nothing changed:      {t_check:8.2f} s")
        time.sleep(0.05)
        n_touch, n_repl = int(args.images * args.touch / 100), int(args.images * args.replace / 100)
        for p in paths[:n_touch]:
            os.utime(p)
        for p in paths[n_touch:n_touch + n_repl]:
            write_image(p, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        t_upd, (_, changes) = best(lambda: update_scan(manifest), args.repeats)
        t_chk, changed = best(lambda: modified_images(manifest), args.repeats)
        print(f"  after {n_touch} re-timed + {n_repl} replaced:")
        print(f"    update_scan:                         {t_upd:8.2f} s ({changes.summary()}, "
              f"{changes.restamped} re-timed only)")
        print(f"    modified_images:                     {t_chk:8.2f} s ({len(changed)} modified)")


if __name__ == "__main__":
    main()
