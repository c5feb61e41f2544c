"""Small manifests in the real layouts, made in the tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mfrkit.data.imageio import write_image
from mfrkit.data.manifest import Manifest, make_table, write_manifest


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def lfw_rows(counts, prefix: str = "Person") -> list[dict]:
    """LFW layout: ``Name/Name_0001.jpg``; ``counts[i]`` images for identity i."""
    rows = []
    for i, n in enumerate(counts):
        name = f"{prefix}_{i:03d}"
        for k in range(1, n + 1):
            path = f"{name}/{name}_{k:04d}.jpg"
            rows.append({"image_id": path, "path": path, "identity": name, "variant": "unmasked",
                         "status": "ok", "sha256": _sha(path)})
    return rows


def masked_rows(base: list[dict], mask_types=("surgical", "cloth")) -> list[dict]:
    """One masked copy per mask type of every base image, linked by ``source_id``."""
    rows = []
    for r in base:
        for mt in mask_types:
            path = f"{mt}/{r['path'][:-4]}.png"
            rows.append({"image_id": path, "path": path, "identity": r["identity"], "variant": "masked",
                         "source_id": r["image_id"], "mask_type": mt, "status": "ok", "sha256": _sha(path)})
    return rows


def partial_rows(base: list[dict], regions=("Nose", "Mouth"), factors=(0.3,), centered=(False,)) -> list[dict]:
    rows = []
    for r in base:
        for region in regions:
            for f in factors:
                for c in centered:
                    path = f"{region}{'_centered' if c else ''}/factor_{f}/{r['path'][:-4]}.png"
                    rows.append({"image_id": path, "path": path, "identity": r["identity"], "variant": "partial",
                                 "source_id": r["image_id"], "region": region, "factor": f, "centered": c,
                                 "status": "ok", "sha256": _sha(path)})
    return rows


def save(folder: Path, rows: list[dict], name: str = "ds", images: bool = False) -> Manifest:
    """Write a manifest (and, with ``images``, a tiny PNG per row) under ``folder``."""
    folder = Path(folder)
    if images:
        for r in rows:
            img = np.full((8, 8, 3), hash(r["image_id"]) % 255, dtype=np.uint8)
            write_image(folder / r["path"], img)
    m = Manifest(make_table(rows), {"name": name})
    write_manifest(m, folder / "manifest.parquet")
    return m
