"""PairedFaceDataset: pairing by source_id, labels, alignment, teacher input, on-the-fly masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.support.fake_data import IDENTITIES, face_like

from mfrkit.align import ARCFACE_112, transform_points
from mfrkit.data.imageio import write_image
from mfrkit.data.manifest import Manifest, make_table
from mfrkit.errors import MfrkitError
from mfrkit.landmarks.base import FaceResult, Landmarks
from mfrkit.model_input import ARCFACE_112_INPUT, ModelInput
from mfrkit.models.dataset import PairedFaceDataset


def _by_id(ds):
    return {s.image_id: (i, s) for i, s in enumerate(ds.samples)}


def test_pairs_masked_images_with_their_sources(tiny_dataset):
    ds = PairedFaceDataset(tiny_dataset, ARCFACE_112_INPUT, aligned=True)
    assert ds.classes == list(IDENTITIES)
    assert len(ds) == 9 + 9 + 2  # the corrupt row is not ok, so not a sample
    idx = _by_id(ds)
    i, s = idx["masked/bob_1.png"]
    assert (s.source_path, s.label, s.domain) == ("bob/bob_1.png", 1, 1)
    item = ds[i]
    src = ds[idx["bob/bob_1.png"][0]]
    assert torch.equal(item["source"], src["image"])  # the masked image's source is the unmasked image
    assert not torch.equal(item["image"], item["source"])
    assert item["image"].shape == (3, 112, 112) and item["image"].dtype == torch.float32
    assert -1.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    j, u = idx["unlabelled/u0.png"]
    assert (u.label, u.domain, u.source_path) == (-1, 1, "unlabelled/u0.png")
    assert ds[j]["label"].item() == -1


def test_missing_source_and_variant_filter_are_counted(tiny_dataset):
    table = tiny_dataset.table.copy()
    table.loc[table["image_id"] == "masked/ada_0.png", "source_id"] = "gone.png"
    m = Manifest(table, dict(tiny_dataset.meta), tiny_dataset.path)
    ds = PairedFaceDataset(m, ARCFACE_112_INPUT, aligned=True, variants=("masked",))
    assert ds.dropped == {"source_missing": 1, "variant": 9}
    assert len(ds) == 8 + 2


def test_teacher_input_and_attributes(tiny_dataset):
    teacher = ModelInput(input_size=(150, 150), align="arcface150", mean=(122.782, 117.001, 104.298), std=(256,) * 3)
    ds = PairedFaceDataset(tiny_dataset, ARCFACE_112_INPUT, aligned=True, teacher_preprocessing=teacher,
                           attributes=("glasses",))
    i, _ = _by_id(ds)["masked/cyd_0.png"]
    item = ds[i]
    assert item["teacher"].shape == (3, 150, 150)
    assert torch.isnan(item["attributes"]).all() and item["source_attributes"].tolist() == [1.0]
    with pytest.raises(MfrkitError, match="attribute column"):
        PairedFaceDataset(tiny_dataset, ARCFACE_112_INPUT, aligned=True, attributes=("hat",))


def test_mask_transform_is_reproducible_and_sets_the_domain(tiny_dataset):
    calls = []

    def paint(crop, rng):
        calls.append(1)
        out = crop.copy()
        out[60:] = rng.integers(0, 256, size=3)
        return out

    ds = PairedFaceDataset(tiny_dataset, ARCFACE_112_INPUT, aligned=True, mask_transform=paint, mask_probability=1.0, seed=3)
    i, _ = _by_id(ds)["ada/ada_0.png"]
    a, b = ds[i], ds[i]
    assert torch.equal(a["image"], b["image"]) and a["domain"].item() == 1
    assert torch.equal(a["source"][:, :60], a["image"][:, :60]) and not torch.equal(a["source"], a["image"])
    ds.set_epoch(1)
    assert not torch.equal(ds[i]["image"], a["image"])  # another epoch, another draw
    n = len(calls)
    k, _ = _by_id(ds)["masked/ada_0.png"]
    assert ds[k]["domain"].item() == 1 and len(calls) == n  # masked images are not masked twice
    never = PairedFaceDataset(tiny_dataset, ARCFACE_112_INPUT, aligned=True, mask_transform=paint, mask_probability=0.0)
    assert never[i]["domain"].item() == 0


def _landmarks_for(points5):
    pts = np.asarray(points5, np.float32)
    return Landmarks(points5=pts, points68=None, bbox=np.array([0, 0, 1, 1], np.float32), backend="test")


def test_aligns_photos_from_landmarks_and_borrows_the_source_landmarks(tmp_path):
    # A 112x112 "face" placed in a larger photo with a known similarity transform: aligning
    # with the transformed template points must give the face back.
    face = face_like(0, 0)
    angle, scale, t = np.deg2rad(12.0), 1.6, np.array([40.0, 25.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = np.hstack([rot, t[:, None]])
    import cv2

    photo = cv2.warpAffine(face, matrix, (260, 260), flags=cv2.INTER_LINEAR)
    write_image(tmp_path / "a.png", photo)
    masked = photo.copy()
    masked[150:] = 0
    write_image(tmp_path / "a_masked.png", masked)
    rows = [
        {"image_id": "a", "path": "a.png", "identity": "x", "variant": "unmasked", "status": "ok", "width": 260, "height": 260},
        {"image_id": "am", "path": "a_masked.png", "identity": "x", "variant": "masked", "source_id": "a", "status": "ok",
         "width": 260, "height": 260},
    ]
    m = Manifest(make_table(rows), {"root": str(tmp_path)})
    pts = transform_points(matrix, ARCFACE_112)
    lms = {"a": FaceResult("ok", _landmarks_for(pts), 1), "am": FaceResult("no_face")}
    ds = PairedFaceDataset(m, ARCFACE_112_INPUT, landmarks=lms)
    assert len(ds) == 2 and ds.dropped == {}
    crop = ds[0]["image"].numpy().transpose(1, 2, 0) * 127.5 + 127.5
    inner = (slice(20, 92), slice(20, 92))  # away from the border the warp filled
    assert np.abs(crop[inner] - face[inner]).mean() < 6.0
    # without any landmarks nothing can be aligned
    none = PairedFaceDataset(m, ARCFACE_112_INPUT, landmarks={})
    assert len(none) == 0 and none.dropped == {"no_landmarks": 2}
    with pytest.raises(MfrkitError, match="landmarks"):
        PairedFaceDataset(m, ARCFACE_112_INPUT)


def test_real_photos_with_cached_mediapipe_landmarks(sample_manifest):
    from mfrkit.landmarks.lookup import get_landmarks

    lms = get_landmarks(sample_manifest, "mediapipe")
    ds = PairedFaceDataset(sample_manifest, ARCFACE_112_INPUT, landmarks=lms)
    assert len(ds) == len(sample_manifest.ok()) and ds.classes == ["eileen_collins", "grace_hopper"]
    item = ds[0]
    assert item["image"].shape == (3, 112, 112)
    # an aligned face has more texture in the eye band than in the top corners
    img = item["image"].numpy()
    assert img[:, 45:60, 30:82].std() > img[:, :12, :12].std()


def test_on_the_fly_masking_with_the_real_mask_augment(sample_manifest):
    from mfrkit.landmarks.lookup import get_landmarks
    from mfrkit.models.dataset import mask_augment

    lms = get_landmarks(sample_manifest, "mediapipe")
    ds = PairedFaceDataset(sample_manifest, ARCFACE_112_INPUT, landmarks=lms, mask_transform=mask_augment(types="surgical"), mask_probability=1.0, seed=1)
    item = ds[0]
    assert item["domain"].item() == 1
    diff = (item["image"] - item["source"]).abs().sum(0)
    # The mask covers the lower face (mouth, chin), not the eye band.
    assert diff[80:100, 35:77].mean() > 10 * (diff[40:60, 30:82].mean() + 1e-3)
