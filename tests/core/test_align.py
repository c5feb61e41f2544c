import numpy as np
import pytest

from mfrkit.align import (
    ARCFACE_112,
    align_face,
    arcface_template,
    invert_affine,
    similarity_transform,
    transform_points,
)
from mfrkit.errors import MfrkitError


def test_template_scaling_and_padding():
    np.testing.assert_allclose(arcface_template(112), ARCFACE_112)
    np.testing.assert_allclose(arcface_template(224), ARCFACE_112 * 2)
    t = arcface_template(160, 0.3)
    # Padding shrinks the template towards the centre: the eye midpoint stays near x = 80.
    assert abs(t[:2, 0].mean() - 80) < 1.0
    assert (t[1, 0] - t[0, 0]) == pytest.approx((ARCFACE_112[1, 0] - ARCFACE_112[0, 0]) / 112 / 1.6 * 160)


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    angle, scale, t = 0.4, 1.7, np.array([12.0, -30.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)
    np.testing.assert_allclose(transform_points(invert_affine(m), dst), src, atol=1e-6)


def test_similarity_transform_has_no_reflection():
    src = np.array([[0, 0], [1, 0], [0, 1.0]])
    m = similarity_transform(src, src * [-1, 1])  # a mirror image cannot be fitted exactly
    assert np.linalg.det(m[:, :2]) > 0


def test_degenerate_input_is_refused():
    with pytest.raises(MfrkitError):
        similarity_transform(np.ones((5, 2)), ARCFACE_112)
    with pytest.raises(MfrkitError):
        similarity_transform(np.full((5, 2), np.nan), ARCFACE_112)
    with pytest.raises(MfrkitError, match="5 landmarks"):
        align_face(np.zeros((10, 10, 3), np.uint8), np.zeros((4, 2)))


def test_real_photo_aligns_onto_the_template(backends, photos):
    from mfrkit.landmarks import detect_primary

    image = photos["grace_hopper"]
    lm = detect_primary(backends["mediapipe"], image).landmarks
    aligned = align_face(image, lm.points5)
    assert aligned.image.shape == (112, 112, 3)
    eyes = lm.transformed(aligned.matrix).points5[:2]
    assert np.abs(eyes - ARCFACE_112[:2]).max() < 2.0
    # The crop really shows the face: detect again inside it and compare with the mapped points.
    again = detect_primary(backends["dlib"], np.ascontiguousarray(align_face(image, lm.points5, size=224).image))
    assert again.status == "ok"
    mapped = lm.transformed(similarity_transform(lm.points5, arcface_template(224))).points5[:2]
    assert np.abs(again.landmarks.points5[:2] - mapped).max() < 0.1 * 224 * (73.5 - 38.3) / 112
