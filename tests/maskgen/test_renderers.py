"""Both renderers on the real photos: every type and coverage, purity, pose-following."""

import json

import cv2
import numpy as np
import pytest
from skimage import data

from mfrkit.errors import LandmarkError
from mfrkit.landmarks import detect_primary
from mfrkit.maskgen import RENDERERS, StyleSpec, check_coverage, create_renderer

TYPES = ("surgical", "n95", "kn95", "cloth", "gas")
COVERAGES = ("proper", "nose_exposed", "chin")


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.mark.parametrize("renderer", ["mesh", "template"])
@pytest.mark.parametrize("name", ["eileen_collins", "grace_hopper"])
def test_every_type_and_coverage_renders_and_passes_its_checks(faces, renderer, name):
    image, landmarks, _ = faces[name]
    r = create_renderer(renderer)
    eyes_top = int(landmarks.points68[17:27, 1].min())  # above the eyebrows
    for k, (mtype, coverage) in enumerate((t, c) for t in TYPES for c in COVERAGES):
        params = r.sample(np.random.default_rng([k, 5]), landmarks, StyleSpec(types=(mtype,), coverages=(coverage,)))
        assert params.record() == {"mask_type": mtype, "mask_color": params.style.color, "mask_texture": params.style.texture, "coverage": coverage}
        out = r.apply(image, params)
        assert out.image.shape == image.shape and out.image.dtype == np.uint8
        assert out.occlusion.sum() > 0.02 * out.occlusion.size, (mtype, coverage)
        check = check_coverage(out.occlusion, landmarks, coverage)
        assert check.ok, (mtype, coverage, check.failed, check.covered)
        # Nothing changes above the eyebrows, and the covered pixels did change.
        np.testing.assert_array_equal(out.image[:eyes_top], image[:eyes_top])
        changed = np.abs(out.image.astype(int) - image).sum(-1) > 0
        assert changed[out.occlusion].mean() > 0.9
        json.dumps(out.params)  # the parameters used are JSON, for the manifest


@pytest.mark.parametrize("renderer", RENDERERS.names())
def test_apply_is_a_pure_function_of_image_and_params(faces, renderer):
    image, landmarks, _ = faces["eileen_collins"]
    r = create_renderer(renderer)
    a = r.sample(np.random.default_rng(7), landmarks)
    b = r.sample(np.random.default_rng(7), landmarks)
    assert a.style == b.style and a.noise_seed == b.noise_seed
    first, second = r.apply(image, a), r.apply(image.copy(), b)
    np.testing.assert_array_equal(first.image, second.image)
    other = r.apply(image, r.sample(np.random.default_rng(8), landmarks))
    assert not np.array_equal(first.image, other.image)


def test_mesh_mask_is_mirror_symmetric(faces, backends):
    image, landmarks, _ = faces["eileen_collins"]
    mirrored = np.ascontiguousarray(image[:, ::-1])
    lm_m = detect_primary(backends["mediapipe"], mirrored).landmarks
    r = create_renderer("mesh")
    spec = StyleSpec(types=("surgical",), coverages=("proper",))
    style = r.sample(np.random.default_rng(0), landmarks, spec)
    a = r.apply(image, style).occlusion
    b = r.apply(mirrored, type(style)(style.renderer, style.style, lm_m, style.noise_seed)).occlusion[:, ::-1]
    assert _iou(a, b) > 0.9


@pytest.mark.parametrize("renderer", ["mesh", "template"])
def test_the_mask_follows_in_plane_rotation(faces, backends, renderer):
    image, landmarks, _ = faces["grace_hopper"]
    rot = cv2.getRotationMatrix2D((125, 125), 25, 1.0)
    turned = cv2.warpAffine(image, rot, (250, 250), borderMode=cv2.BORDER_REFLECT_101)
    lm_t = detect_primary(backends["mediapipe"], turned).landmarks
    r = create_renderer(renderer)
    params = r.sample(np.random.default_rng(0), landmarks, StyleSpec(types=("kn95",), coverages=("proper",)))
    upright = r.apply(image, params).occlusion
    rotated = r.apply(turned, type(params)(params.renderer, params.style, lm_t, params.noise_seed)).occlusion
    back = cv2.warpAffine(rotated.astype(np.uint8), cv2.invertAffineTransform(rot), (250, 250), flags=cv2.INTER_NEAREST) > 0
    assert _iou(upright, back) > 0.85
    assert abs(r.apply(turned, type(params)(params.renderer, params.style, lm_t, params.noise_seed)).params["roll"]) > 15


def test_the_mesh_mask_follows_yaw(backends):
    # skimage's cameraman looks to image right, about 50 degrees from frontal.
    cam = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB)
    image = np.ascontiguousarray(cv2.resize(cam[15:205, 160:350], (250, 250)))
    landmarks = detect_primary(backends["mediapipe"], image).landmarks
    r = create_renderer("mesh")
    out = r.apply(image, r.sample(np.random.default_rng(0), landmarks, StyleSpec(types=("surgical",), coverages=("proper",))))
    assert out.params["yaw"] > 30
    assert check_coverage(out.occlusion, landmarks, "proper").ok
    nose_x = landmarks.points68[30, 0]
    xs = np.nonzero(out.occlusion)[1]
    # The near cheek carries most of the mask; beyond the nose tip only its edge shows.
    assert nose_x - xs.min() > 8 * max(1.0, xs.max() - nose_x)
    # A greyscale photo gets a greyscale mask.
    masked = out.image[out.occlusion].astype(int)
    assert np.abs(masked[:, 0] - masked[:, 2]).max() <= 2


def test_template_renderer_takes_dlib_landmarks_and_mesh_renderer_refuses_them(faces):
    image, _, dlib_landmarks = faces["grace_hopper"]
    out = create_renderer("template")(image, dlib_landmarks, np.random.default_rng(0), StyleSpec(coverages=("proper",)))
    assert check_coverage(out.occlusion, dlib_landmarks, "proper").ok
    with pytest.raises(LandmarkError, match="mediapipe"):
        create_renderer("mesh").sample(np.random.default_rng(0), dlib_landmarks)
