"""Fixtures: insightface-style aligned 112x112 crops of the real photos, written as RecordIO
by the independent reference writer (tests/support/recordio_reference.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mfrkit.align import align_face
from mfrkit.data.imageio import encode_image
from mfrkit.landmarks import detect_primary

from tests.support import recordio_reference as ref


@pytest.fixture(scope="session")
def aligned_crops(photos):
    """``[(identity index, 112x112 RGB crop)]``: each photo aligned to ArcFace's template,
    plus brightness variants and mirror images (6 captures of each person)."""
    from mfrkit.landmarks import create_backend

    backend = create_backend("mediapipe")
    out = []
    for label, name in enumerate(sorted(photos)):
        face = detect_primary(backend, photos[name])
        assert face.status == "ok", name
        crop = align_face(photos[name], face.landmarks.points5, size=112).image
        for gain in (1.0, 0.8, 1.15):
            for view in (crop, crop[:, ::-1]):
                out.append((label, np.ascontiguousarray(np.clip(view.astype(np.float32) * gain, 0, 255).astype(np.uint8))))
    return out


@pytest.fixture
def rec_source(tmp_path, aligned_crops):
    """A RecordIO folder (train.rec, train.idx, property) of the aligned crops."""
    folder = tmp_path / "faces_src_112x112"
    ref.write_dataset(folder, [(label, encode_image(img, ".jpg")) for label, img in aligned_crops], label_vector=True)
    return folder
