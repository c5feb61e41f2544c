"""The mediapipe backend: more faces than the old cap of 4, the fast landmark parse, the
lean graph runs (the bits ``SolutionBase.process`` gives), and the light import that
leaves the ``mediapipe`` package usable."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np

from mfrkit.landmarks import create_backend, detect_primary
from mfrkit.landmarks import mediapipe_mesh
from mfrkit.landmarks.mediapipe_mesh import _parse_landmarks, mesh_roi


def _crowd(photo: np.ndarray, n: int, tile: int = 220) -> np.ndarray:
    """``n`` copies of a tightly framed face side by side on a grey canvas (3 per row):
    the face mesh's own short-range detector finds every one."""
    face = cv2.resize(photo[15:235, 115:335], (tile, tile), interpolation=cv2.INTER_AREA)
    rows = -(-n // 3)
    canvas = np.full((rows * tile, 3 * tile, 3), 90, np.uint8)
    for k in range(n):
        r, c = divmod(k, 3)
        canvas[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = face
    return canvas


def test_more_faces_than_the_old_cap_of_four_are_counted(photos):
    # mediapipe 0.10.21's face mesh stopped at 4 faces (n_faces saturated at 4).
    crowd = _crowd(photos["eileen_collins"], 6)
    result = detect_primary(create_backend("mediapipe"), crowd)
    assert result.status == "ok" and result.n_faces == 6
    # The cap is explicit and saturates there (documented: n_faces == cap means "at least").
    capped = detect_primary(create_backend("mediapipe", max_faces=4), crowd)
    assert capped.n_faces == 4


def test_fast_landmark_parse_equals_the_attribute_path(backends, photos):
    backend = backends["mediapipe"]
    image = cv2.resize(photos["eileen_collins"], (256, 256), interpolation=cv2.INTER_AREA)
    faces = backend._mesh.process({"image": image}).multi_face_landmarks
    assert faces
    slow = np.array([(p.x, p.y, p.z) for p in faces[0].landmark], dtype=np.float32)
    np.testing.assert_array_equal(_parse_landmarks(faces[0]), slow)
    # A landmark with an extra field (visibility) changes the layout: the slow path answers.
    faces[0].landmark[0].visibility = 0.5
    np.testing.assert_array_equal(_parse_landmarks(faces[0]), slow)


def test_lean_face_mesh_run_returns_what_process_does(backends, photos):
    backend = backends["mediapipe"]
    for image in (np.ascontiguousarray(photos["eileen_collins"]), np.full((200, 200, 3), 128, np.uint8)):
        slow = [f.SerializeToString() for f in backend._mesh.process({"image": image}).multi_face_landmarks or []]
        assert backend._face_records(backend._mesh, image) == slow
    assert slow == []  # the blank image: no face either way


def test_lean_region_mesh_returns_what_process_does(photos, monkeypatch):
    backend = create_backend("mediapipe")
    try:
        image = np.ascontiguousarray(photos["eileen_collins"])
        h, w = image.shape[:2]
        region = mesh_roi(backend.detect(image)[0].mesh, w, h)
        lean = backend.mesh_in_region(image, region)
        slow = backend._roi_mesh.process({"image": image, "roi": region}).face_landmarks
        assert len(lean) == 1 and lean[0].shape == (478, 3)
        np.testing.assert_array_equal(lean[0], _parse_landmarks(slow) * np.array([w, h, w], dtype=np.float32))
        assert backend.mesh_in_region(np.full((h, w, 3), 128, np.uint8), region) == []
        # Another mediapipe's internals: process answers, with the same arrays.
        monkeypatch.setattr(mediapipe_mesh, "_lean_ok", lambda *a: False)
        np.testing.assert_array_equal(backend.mesh_in_region(image, region)[0], lean[0])
    finally:
        backend.close()


def test_light_import_leaves_the_mediapipe_package_usable():
    code = (
        "import sys\n"
        "from mfrkit.landmarks import create_backend\n"
        "create_backend('mediapipe')\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'the face mesh pulled in pyplot'\n"
        "import mediapipe as mp\n"
        "assert mp.solutions.face_mesh.FaceMesh and mp.__version__\n"
        "from mediapipe.python.solutions import drawing_utils\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
