"""Fixtures for the model tests: a tiny synthetic aligned dataset."""

from __future__ import annotations

import pytest
import torch
from model_helpers import IDENTITIES, add_mask, face_like

from mfrkit.data.imageio import write_image
from mfrkit.data.manifest import Manifest, make_table, write_manifest


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models run several times faster on one thread than on two contended cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Manifest:
    """3 identities x 3 aligned 112x112 captures, a masked copy of each (``source_id``),
    two masked images without an identity, an attribute column with unknowns."""
    root = tmp_path_factory.mktemp("tiny")
    rows = []
    for i, name in enumerate(IDENTITIES):
        for c in range(3):
            img = face_like(i, c)
            rel = f"{name}/{name}_{c}.png"
            write_image(root / rel, img)
            rows.append({"image_id": rel, "path": rel, "identity": name, "variant": "unmasked", "status": "ok",
                         "width": 112, "height": 112, "glasses": float(c == 0)})
            mrel = f"masked/{name}_{c}.png"
            write_image(root / mrel, add_mask(img))
            rows.append({"image_id": mrel, "path": mrel, "identity": name, "variant": "masked", "source_id": rel,
                         "status": "ok", "width": 112, "height": 112, "glasses": float("nan")})
    for k in range(2):
        rel = f"unlabelled/u{k}.png"
        write_image(root / rel, add_mask(face_like(10 + k, 0)))
        rows.append({"image_id": rel, "path": rel, "identity": None, "variant": "masked", "status": "ok",
                     "width": 112, "height": 112, "glasses": 1.0})
    rows.append({"image_id": "broken.png", "path": "broken.png", "identity": "ada", "status": "corrupt"})
    manifest = Manifest(make_table(rows), meta={"name": "tiny", "root": "."})
    write_manifest(manifest, root / "manifest.parquet")
    return manifest
