"""MaskAugment: the training-time transform on aligned crops."""

import numpy as np
import pytest

from mfrkit.align import align_face
from mfrkit.errors import MfrkitError
from mfrkit.maskgen import MaskAugment, check_coverage
from mfrkit.landmarks.template import template_landmarks


@pytest.fixture(scope="module")
def crop(faces):
    image, landmarks, _ = faces["grace_hopper"]
    return align_face(image, landmarks.points5, size=112).image


def test_masks_the_lower_face_reproducibly(crop):
    augment = MaskAugment(types="surgical,kn95", coverage="proper")
    a = augment(crop, np.random.default_rng(0))
    b = augment(crop, np.random.default_rng(0))
    assert a.shape == crop.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    changed = np.abs(a.astype(int) - crop).sum(-1) > 0
    assert changed[70:].mean() > 0.4 and not changed[:40].any()
    out = augment.render(crop, np.random.default_rng(1))
    assert out.params["mask_type"] in ("surgical", "kn95")
    assert check_coverage(out.occlusion, template_landmarks("arcface112", 112, 112), "proper").ok


def test_probability_and_other_sizes(crop):
    never = MaskAugment(p=0.0)
    np.testing.assert_array_equal(never(crop, np.random.default_rng(0)), crop)
    # 112x96 crops (8 px cut from each side) and larger crops work too.
    narrow = np.ascontiguousarray(crop[:, 8:104])
    assert MaskAugment(renderer="template")(narrow, np.random.default_rng(0)).shape == (112, 96, 3)
    big = np.repeat(np.repeat(crop, 2, 0), 2, 1)
    assert MaskAugment()(big, np.random.default_rng(0)).shape == (224, 224, 3)


def test_bad_input_is_refused(crop):
    with pytest.raises(MfrkitError, match="uint8"):
        MaskAugment()(crop.astype(np.float32), np.random.default_rng(0))
    with pytest.raises(MfrkitError):
        MaskAugment(p=2.0)
