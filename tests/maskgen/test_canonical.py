"""The canonical face: mfrkit's own generated data, and the script that makes it."""

import importlib.util
from pathlib import Path

import numpy as np

from mfrkit.align import ARCFACE_112
from mfrkit.landmarks import five_from_68
from mfrkit.landmarks.mediapipe_mesh import five_from_mesh, five_vertices
from mfrkit.landmarks.canonical import CENTRE_U, canonical_face, mean_face_68

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_canonical_face.py"


def test_canonical_mesh_is_symmetric_and_frontal():
    face = canonical_face()
    v = face.vertices
    assert v.shape == (478, 3) and face.triangles.max() < 468
    mirror = face.mirror
    np.testing.assert_array_equal(mirror[mirror], np.arange(478))
    # Mirror partners sit symmetrically about the centre line, at the same height and depth.
    np.testing.assert_allclose(v[:, 0] + v[mirror, 0], 2 * CENTRE_U, atol=0.6)
    np.testing.assert_allclose(v[:, 1:], v[mirror, 1:], atol=1e-3)
    # The frontal projection of its 5 points fits the ArcFace template closely.
    np.testing.assert_array_equal(face.five, five_vertices())  # the same 5 points as the mediapipe backend
    five = five_from_mesh(v)
    assert np.sqrt(((five - ARCFACE_112) ** 2).sum(1).mean()) < 3.0
    # The nose is nearest the camera, the ears farthest.
    assert v[4, 2] < v[:468, 2].mean() < v[234, 2]


def test_mean_68_face_is_arcface_aligned():
    p68 = mean_face_68(112)
    err = np.linalg.norm(five_from_68(p68) - ARCFACE_112, axis=1)
    # Two smiling portraits: the eyes and nose sit on the template, the mouth is wider.
    assert err[:3].max() < 3.0 and err.max() < 5.0
    np.testing.assert_allclose(mean_face_68(224), 2 * p68)
    # Jaw below the mouth, chin on the centre line.
    assert p68[8, 1] > p68[57, 1] and abs(p68[8, 0] - CENTRE_U) < 1.0


def test_envelope_is_in_front_of_the_face():
    face = canonical_face()
    assert (face.envelope_depth <= face.face_depth + 1e-4).all()
    # It bridges the groove beside the nose: clearly in front of the skin there.
    u, v = np.array([44.0]), np.array([72.0])
    gap = face.sample(face.face_depth, u, v) - face.sample(face.envelope_depth, u, v)
    assert gap[0] > 2.0


def test_the_script_regenerates_the_shipped_data(tmp_path):
    spec = importlib.util.spec_from_file_location("make_canonical_face", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "canonical_face.npz"
    import sys

    argv, sys.argv = sys.argv, ["make_canonical_face.py", "--out", str(out)]
    try:
        module.main()
    finally:
        sys.argv = argv
    with np.load(out) as new:
        shipped = canonical_face()
        np.testing.assert_allclose(new["vertices"], shipped.vertices, atol=1e-3)
        np.testing.assert_array_equal(new["mirror"], shipped.mirror)
        np.testing.assert_allclose(new["mean68"], shipped.mean68, atol=1e-3)
        np.testing.assert_allclose(new["envelope_depth"], shipped.envelope_depth, atol=1e-3)
