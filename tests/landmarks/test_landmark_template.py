"""The ``template`` landmark backend (aligned crops), the crop templates of
mfrkit.alignments, and mediapipe's mesh on the region a template gives (``--redetect``)."""

from __future__ import annotations

import numpy as np
import pytest

from mfrkit.align import ARCFACE_112, arcface_template
from mfrkit.alignments import align_crop, crop_template, template_names
from mfrkit.errors import LandmarkError, UnknownNameError
from mfrkit.landmarks import BACKENDS, create_backend, detect_primary
from mfrkit.landmarks.canonical import canonical_face
from mfrkit.landmarks.template import template_landmarks

TEMPLATES = ("arcface112", "arcface112x96", "mfr2", "arcface160p30", "dlib150")


def test_the_registry_holds_the_fields_crop_templates():
    assert "template" in BACKENDS
    names = template_names()
    for name in ("arcface112x96", "mfr2", "facenet160", "dlib150"):
        assert name in names
    assert crop_template("arcface112x96").crop_size == (112, 96)
    np.testing.assert_allclose(crop_template("arcface112x96").template, ARCFACE_112 - [8, 0])
    np.testing.assert_allclose(crop_template("arcface160p30").template, arcface_template(160, 0.3))
    with pytest.raises(UnknownNameError, match="arcface112x96"):
        crop_template("none")  # an alignment, but not a template
    with pytest.raises(UnknownNameError):
        create_backend("template", template="arcface999x")


def test_arcface112_landmarks_are_the_canonical_face_itself():
    lm = template_landmarks("arcface112", 112, 112)
    np.testing.assert_allclose(lm.points5, ARCFACE_112, atol=1e-4)
    face = canonical_face()
    np.testing.assert_allclose(lm.points68, face.mean68[:, :2], atol=1e-3)
    np.testing.assert_allclose(lm.mesh, face.vertices, atol=1e-3)
    assert lm.backend == "template" and lm.mesh.shape == (478, 3)
    with pytest.raises(ValueError):
        lm.points5[0, 0] = 0  # cached and shared: read-only


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_places_the_whole_face_by_one_similarity(name):
    t = crop_template(name)
    h, w = t.crop_size
    lm = template_landmarks(name, w, h)
    np.testing.assert_allclose(lm.points5, t.template, atol=1e-4)
    # 68 points and mesh: the ArcFace-112 ones moved by the same similarity (depth scaled).
    base = template_landmarks("arcface112", 112, 112)
    a = np.column_stack([base.points68, np.ones(68)])
    fit, *_ = np.linalg.lstsq(a, lm.points68, rcond=None)
    np.testing.assert_allclose(a @ fit, lm.points68, atol=1e-3)
    scale = float(np.sqrt(abs(np.linalg.det(fit[:2]))))
    np.testing.assert_allclose(lm.mesh[:, 2], base.mesh[:, 2] * scale, rtol=1e-4, atol=1e-4)
    # The face is in the crop (ArcFace's 112 crops cut the chin by a few pixels).
    assert lm.points68[:, 0].min() > 0 and lm.points68[:, 0].max() < w and lm.points68[:, 1].max() < 1.07 * h


def test_a_crop_of_another_size_gets_the_template_scaled_and_centred():
    # ArcFace 112 on a 112x96 crop is the 112x96 template; at 224 it is twice the 112 one.
    np.testing.assert_allclose(template_landmarks("arcface112", 96, 112).points5, template_landmarks("arcface112x96", 96, 112).points5, atol=1e-4)
    np.testing.assert_allclose(template_landmarks("arcface112", 224, 224).points5, 2 * ARCFACE_112, atol=1e-4)
    with pytest.raises(LandmarkError, match="too small"):
        template_landmarks("arcface112", 4, 4)


@pytest.mark.parametrize("name", ["arcface112", "arcface112x96", "mfr2", "arcface160p30"])
def test_crops_cut_to_a_template_carry_the_face_where_it_says(photos, backends, name):
    """On real photos aligned to each template, mediapipe finds the eyes and nose where
    the template puts them, and the mesh run on the template's region alone (no
    detector, --redetect) agrees with a full detection."""
    roi = create_backend("mediapipe", roi_template=name)
    try:
        for photo in photos.values():
            face = detect_primary(backends["mediapipe"], photo).landmarks
            crop = align_crop(name, photo, face)
            assert crop.shape[:2] == crop_template(name).crop_size
            template = create_backend("template", template=name).detect(crop)[0]
            full = detect_primary(backends["mediapipe"], crop)
            assert full.status == "ok"
            side = crop.shape[0] / 112.0
            # A 5-point similarity of a smiling face: within a few pixels, not exactly.
            err = np.linalg.norm(full.landmarks.points5 - template.points5, axis=1)
            assert err[:2].max() < 4.0 * side and err.max() < 8.0 * side  # eyes; nose and (smiling) mouth looser
            quick = detect_primary(roi, crop)
            assert quick.status == "ok" and quick.n_faces == 1 and quick.landmarks.mesh.shape == (478, 3)
            assert np.abs(quick.landmarks.points5 - full.landmarks.points5).mean() < 1.0 * side
    finally:
        roi.close()


def test_the_region_mesh_finds_no_face_where_there_is_none():
    roi = create_backend("mediapipe", roi_template="arcface112")
    try:
        blank = np.full((112, 112, 3), 128, np.uint8)
        assert detect_primary(roi, blank).status == "no_face"
    finally:
        roi.close()
