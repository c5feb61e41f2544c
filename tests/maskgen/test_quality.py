"""Coverage checks against hand-made occlusion masks."""

import numpy as np
import pytest

from mfrkit.landmarks import Landmarks
from mfrkit.landmarks.canonical import mean_face_68
from mfrkit.maskgen.quality import check_coverage


@pytest.fixture
def face():
    p68 = mean_face_68(224).astype(np.float32)  # a frontal face on a 256x256 canvas
    from mfrkit.landmarks import five_from_68

    return Landmarks(points5=five_from_68(p68), points68=p68, bbox=np.array([0, 0, 256, 256], np.float32))


def _below(row: float) -> np.ndarray:
    occ = np.zeros((256, 256), bool)
    occ[int(row) :, :] = True
    return occ


@pytest.mark.parametrize(
    ("top", "coverage", "failed"),
    [
        # The face: nose tip at y=149, lips 177-197, chin point 230.
        (120, "proper", ()),  # from the nose bridge down: all of nose, mouth, chin
        (120, "nose_exposed", ("nose_covered",)),
        (160, "nose_exposed", ()),  # from under the nose
        (160, "proper", ("nose_not_covered",)),
        (205, "chin", ()),  # from under the lower lip
        (205, "nose_exposed", ("mouth_not_covered",)),
        (60, "proper", ("eyes_covered",)),  # over the eyes
    ],
)
def test_presets(face, top, coverage, failed):
    check = check_coverage(_below(top), face, coverage)
    assert check.failed == failed
    assert check.ok == (not failed)
    assert check.record()["quality_ok"] == (not failed)


def test_empty_mask_fails_what_must_be_covered(face):
    check = check_coverage(np.zeros((256, 256), bool), face, "proper")
    assert set(check.failed) == {"nose_not_covered", "mouth_not_covered", "chin_not_covered"}
    assert check.covered["mouth"] == 0.0


def test_five_points_only_skip_the_chin(face):
    five = Landmarks(points5=face.points5, points68=None, bbox=face.bbox)
    check = check_coverage(_below(120), five, "proper")
    assert check.ok and "chin" not in check.covered


def test_points_outside_the_image_are_not_judged(face):
    # An ArcFace-like tight crop cuts the chin off: only what is visible is checked.
    occ = _below(120)[:200]
    check = check_coverage(occ, face, "proper")
    assert check.ok and check.covered["chin"] is None
