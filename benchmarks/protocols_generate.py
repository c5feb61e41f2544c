"""Time protocol generation, saving, loading and validation on an LFW-sized manifest.

The manifest is synthetic but has LFW's shape: 5,749 identities, 13,233 images, a
long tail (4,069 identities with one image, one with 530), plus one masked copy per
image and mask type. Prints figures; asserts nothing.

    python benchmarks/protocols_generate.py [--mask-types 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mfrkit.data.manifest import Manifest, make_table, write_manifest
from mfrkit.protocols import (
    derive_verification,
    load_protocol,
    make_identification,
    make_verification,
    save_protocol,
    validate_protocol,
)


def lfw_like_counts(seed: int = 0) -> list[int]:
    """Images per identity: 4,069 singletons, a Zipf-like tail, 530 for the largest."""
    rng = np.random.default_rng(seed)
    tail = np.minimum(2 + rng.zipf(1.9, size=1679), 200)
    tail[0] = 530
    counts = [1] * 4069 + tail.tolist()
    extra = 13233 - sum(counts)  # nudge to LFW's exact image count
    i = 1
    while extra != 0:
        step = 1 if extra > 0 else -1
        if counts[4069 + i] + step >= 2:
            counts[4069 + i] += step
            extra -= step
        i = i % 1678 + 1
    return counts


def build(folder: Path, mask_types: int) -> tuple[Manifest, Manifest]:
    rows, masked = [], []
    for i, n in enumerate(lfw_like_counts()):
        name = f"Person_{i:04d}"
        for k in range(1, n + 1):
            path = f"{name}/{name}_{k:04d}.jpg"
            rows.append({"image_id": path, "path": path, "identity": name, "variant": "unmasked", "status": "ok"})
            for t in range(mask_types):
                mp = f"mask{t}/{name}/{name}_{k:04d}.png"
                masked.append({"image_id": mp, "path": mp, "identity": name, "variant": "masked", "source_id": path,
                               "mask_type": f"type{t}", "status": "ok"})
    lfw = Manifest(make_table(rows), {"name": "lfw-like"})
    msk = Manifest(make_table(masked), {"name": "lfw-like-masked"})
    write_manifest(lfw, folder / "lfw" / "manifest.parquet")
    write_manifest(msk, folder / "masked" / "manifest.parquet")
    return lfw, msk


def timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:55s} {time.perf_counter() - t0:7.2f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mask-types", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lfw, msk = timed("build + write manifests", lambda: build(tmp, args.mask_types))
        print(f"images: {len(lfw)} unmasked, {len(msk)} masked")
        p = timed("make_verification umr-ump 10 x (300 + 300)", lambda: make_verification(lfw, seed=0))
        timed("save_protocol", lambda: save_protocol(p, tmp / "umr-ump"))
        p = timed("make_verification umr-mp 10 x (300 + 300)", lambda: make_verification(lfw, msk, spec="umr-mp"))
        timed("make_verification mr-mp (mlfw pairing)", lambda: make_verification(msk, spec="mr-mp"))
        parent = timed("load_protocol (fingerprints both manifests)", lambda: load_protocol(tmp / "umr-ump"))
        timed("derive_verification umr-ump -> mr-mp", lambda: derive_verification(parent, msk, spec="mr-mp"))
        timed("validate_protocol (no file checks)", lambda: validate_protocol(tmp / "umr-ump", check_files=False))
        timed("make_identification umr-mp closed", lambda: make_identification(lfw, msk, spec="umr-mp"))
        timed("make_identification umr-mp megaface", lambda: make_identification(lfw, msk, spec="umr-mp",
                                                                                  mode="megaface"))


if __name__ == "__main__":
    main()
