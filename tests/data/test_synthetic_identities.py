"""Synthetic identities: the warps move landmarks where they say, identities differ and
captures vary as specified, the build is a deterministic, resumable, identity-disjoint job."""

from __future__ import annotations

import numpy as np
import pytest

from mfrkit.face_warp import FaceFrame, Morph, anchor_points, backward_map, forward_points, rotate_mesh, shift_lab
from mfrkit.synthetic.identities import (
    CAPTURE_IOD,
    DESCRIPTION,
    IdentityParams,
    SessionParams,
    base_faces,
    build_synthetic_identities,
    render_capture,
    render_identity,
    sample_identity,
    sample_session,
    split_identities,
)
from mfrkit.errors import MfrkitError
from mfrkit.landmarks import detect_primary
from mfrkit.landmarks.mediapipe_mesh import five_from_mesh
from mfrkit.rng import item_rng


@pytest.fixture(scope="module")
def bases():
    return base_faces("mediapipe")


def _still(**overrides) -> SessionParams:
    values = dict(yaw=0.0, pitch=0.0, roll=0.0, scale=1.0, shift_x=0.0, shift_y=0.0, brightness=0.0, contrast=1.0, light_angle=0.0,
                  light_strength=0.0, red_gain=1.0, blue_gain=1.0, noise_sigma=0.0, noise_seed=0, blur_sigma=0.0, jpeg_quality=95)
    values.update(overrides)
    return SessionParams(**values)


def test_the_spline_warp_is_exact_at_its_control_points():
    rng = np.random.default_rng(0)
    src = rng.uniform(60, 140, size=(12, 2))
    dst = src + rng.normal(0, 4, size=src.shape)
    oval = np.array([[100 + 60 * np.cos(a), 100 + 70 * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 20, endpoint=False)])
    anchors = anchor_points(oval, (200, 200), ring_scale=1.3)
    # forward: the control points land on their targets, anchors stay
    np.testing.assert_allclose(forward_points(src, dst, anchors, src), dst, atol=1e-6)
    np.testing.assert_allclose(forward_points(src, dst, anchors, anchors), anchors, atol=1e-6)
    # backward (remap) maps: the output pixel that lands on a target samples its source
    # (out_to_dst shifts output pixel (0, 0) onto each target in turn)
    for (sx, sy), (dx, dy) in zip(src, dst):
        mx, my = backward_map(src, dst, anchors, (2, 2), out_to_dst=np.array([[1.0, 0, dx], [0, 1.0, dy]]), step=1)
        assert mx[0, 0] == pytest.approx(sx, abs=1e-3) and my[0, 0] == pytest.approx(sy, abs=1e-3)


def test_pose_turns_the_nose_against_the_face_outline(bases):
    mesh = bases["grace_hopper"].mesh
    frame = FaceFrame.from_eyes(*five_from_mesh(mesh)[:2])
    np.testing.assert_allclose(rotate_mesh(mesh, frame, 0.0, 0.0), mesh[:, :2], atol=1e-3)
    turned = rotate_mesh(mesh, frame, 20.0, 0.0)
    nose, cheek = 1, 234  # mediapipe: nose tip, image-left face outline
    # The nose is nearer the camera than the outline, so a yaw moves it further along u.
    du = (turned - mesh[:, :2]) @ frame.ex
    assert abs(du[nose]) > abs(du[cheek]) + 2.0


def test_shift_lab_moves_the_masked_colour_only():
    img = np.full((20, 20, 3), (150, 110, 90), np.uint8)
    mask = np.zeros((20, 20), np.float32)
    mask[:, 10:] = 1.0
    out = shift_lab(img, mask, (-10.0, 0.0, 0.0))
    assert np.abs(out[:, :10].astype(int) - img[:, :10]).max() <= 1
    assert out[:, 10:].mean() < img[:, 10:].mean() - 10


@pytest.mark.parametrize("what", ["eye_spacing", "nose_length"])
def test_morphs_change_the_face_the_detector_sees(bases, backends, what):
    """Oracle: render a morph, detect landmarks on the result with mediapipe, and find the
    measured proportion changed by the morph's amount (within the detector's noise)."""
    base = bases["eileen_collins"]

    def measure(params):
        face = render_identity(base, params)
        ours = five_from_mesh(face.mesh)  # where the warp says the points went
        seen = detect_primary(backends["mediapipe"], face.image).landmarks.points5  # where the detector finds them
        return [(float(np.linalg.norm(p[1] - p[0])), float(np.linalg.norm(p[2] - (p[0] + p[1]) / 2))) for p in (ours, seen)]

    zero = IdentityParams(name="x", base=base.name, morph=Morph(), skin=(0, 0, 0), hair=(0, 0, 0))
    morphed = IdentityParams(name="y", base=base.name, morph=Morph(**{what: 0.15}), skin=(0, 0, 0), hair=(0, 0, 0))
    (ours0, seen0), (ours1, seen1) = measure(zero), measure(morphed)
    changed, kept = (0, 1) if what == "eye_spacing" else (1, 0)
    # The warp moves the points by exactly the morph (the nose tip lies on the face's axis).
    assert ours1[changed] / ours0[changed] == pytest.approx(1.15, abs=0.01)
    assert ours1[kept] / ours0[kept] == pytest.approx(1.0, abs=0.01)
    # The detector sees the change on the pixels: the irises precisely; the nose tip,
    # whose texture is vaguer, at least half of it (mediapipe pulls towards a mean face).
    ratio = seen1[changed] / seen0[changed]
    assert (1.11 < ratio < 1.19) if what == "eye_spacing" else (1.06 < ratio < 1.2)
    assert seen1[kept] / seen0[kept] == pytest.approx(1.0, abs=0.04)


def test_captures_are_framed_as_specified_and_vary(bases, backends):
    params = sample_identity(item_rng(0, "sid0001", "identity"), "sid0001", "grace_hopper")
    face = render_identity(bases["grace_hopper"], params)
    image, mesh2d = render_capture(face, _still(), 176)
    found = detect_primary(backends["mediapipe"], image).landmarks
    assert found is not None
    iod = float(np.linalg.norm(found.points5[1] - found.points5[0]))
    assert iod == pytest.approx(CAPTURE_IOD, rel=0.08)
    np.testing.assert_allclose(found.points5[:2], five_from_mesh(np.column_stack([mesh2d, np.zeros(len(mesh2d))]))[:2], atol=3.0)
    darker, _ = render_capture(face, _still(brightness=-40.0), 176)
    assert darker.astype(float).mean() < image.astype(float).mean() - 30
    a = sample_session(item_rng(0, "sid0001", "capture", 1))
    assert a == sample_session(item_rng(0, "sid0001", "capture", 1)) != sample_session(item_rng(0, "sid0001", "capture", 2))


def test_split_is_identity_disjoint_and_seeded():
    s = split_identities(50, 10, seed=3)
    assert s.count("test") == 10 and s == split_identities(50, 10, seed=3) != split_identities(50, 10, seed=4)


def test_build_is_a_deterministic_resumable_job_that_refuses_foreign_folders(tmp_path, backends):
    built = build_synthetic_identities(tmp_path / "a", n_identities=6, captures=2, test_fraction=0.34, seed=1)
    train, test = built.train.table, built.test.table
    assert len(train) + len(test) == 12 and set(train["identity"]).isdisjoint(test["identity"])
    assert test["identity"].nunique() == 2 and (train["status"] == "ok").all()
    assert built.train.meta["description"] == DESCRIPTION and "SYNTHETIC" in (tmp_path / "a" / "README.md").read_text()
    assert set(built.identities["split"]) == {"train", "test"} and len(built.identities) == 6
    # mediapipe finds the face in every capture
    from mfrkit.data.imageio import read_image

    for rel in train["path"]:
        assert detect_primary(backends["mediapipe"], read_image(tmp_path / "a" / "train" / rel)).status == "ok"
    # Same options: reused; a second folder gets the same bytes.
    again = build_synthetic_identities(tmp_path / "a", n_identities=6, captures=2, test_fraction=0.34, seed=1)
    assert again.reused
    other = build_synthetic_identities(tmp_path / "b", n_identities=6, captures=2, test_fraction=0.34, seed=1)
    assert list(other.train.table["sha256"]) == list(train["sha256"])
    # An interrupted build (a capture lost, journal gone) is finished, not refused.
    victim = tmp_path / "b" / "train" / train["path"].iloc[0]
    victim.unlink()
    (tmp_path / "b" / ".mfrkit-output.json").write_text((tmp_path / "b" / ".mfrkit-output.json").read_text().replace("finished", "running"))
    build_synthetic_identities(tmp_path / "b", n_identities=6, captures=2, test_fraction=0.34, seed=1)
    assert victim.exists()
    # Other options in the same folder, or a folder of someone else's files: refused.
    with pytest.raises(MfrkitError, match="other options"):
        build_synthetic_identities(tmp_path / "a", n_identities=6, captures=3, test_fraction=0.34, seed=1)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(MfrkitError, match="not made by mfrkit"):
        build_synthetic_identities(tmp_path / "mine", n_identities=6, captures=2)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
