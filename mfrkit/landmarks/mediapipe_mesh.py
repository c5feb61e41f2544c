"""Backend ``mediapipe``: mediapipe 0.10.21's legacy face mesh (478 points with depth).

The face-mesh models ship inside the mediapipe wheel, so nothing is downloaded. The
dense mesh is kept; the 68 iBUG points are mesh vertices chosen by
``scripts/derive_ibug68_map.py`` (stored in ``data/mediapipe_ibug68.json``); the 5
ArcFace points use the iris centres for the eyes, which are more stable than the
eyelid contour on half-closed eyes.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import ClassVar

import numpy as np

from ..errors import LandmarkError
from .base import BACKENDS, Landmarks

# mediapipe's refined mesh: 468 face vertices, then two irises of 5 points each
# (centre first). Vertex 468 is the iris of the subject's right eye (image left).
IRIS_IMAGE_LEFT = 468
IRIS_IMAGE_RIGHT = 473
N_POINTS = 478


def ibug68_indices() -> np.ndarray:
    """Mesh vertex index of each iBUG-68 point, shape (68,), int."""
    text = resources.files(__package__).joinpath("data/mediapipe_ibug68.json").read_text()
    idx = np.asarray(json.loads(text)["indices"], dtype=np.int64)
    if idx.shape != (68,):
        raise LandmarkError("mediapipe_ibug68.json must hold 68 indices")
    return idx


def landmarks_from_mesh(mesh: np.ndarray, backend: str = "mediapipe") -> Landmarks:
    """Build :class:`Landmarks` from a (478, 3) pixel-space mesh."""
    mesh = np.asarray(mesh, dtype=np.float32)
    p68 = mesh[ibug68_indices(), :2]
    p5 = np.stack(
        [mesh[IRIS_IMAGE_LEFT, :2], mesh[IRIS_IMAGE_RIGHT, :2], p68[30], p68[48], p68[54]]
    ).astype(np.float32)
    xy = mesh[:, :2]
    bbox = np.concatenate([xy.min(0), xy.max(0)]).astype(np.float32)
    return Landmarks(points5=p5, points68=p68.astype(np.float32), bbox=bbox, backend=backend, mesh=mesh)


@BACKENDS.register("mediapipe")
class MediapipeBackend:
    """mediapipe face mesh, ``static_image_mode=True``, ``refine_landmarks=True``.

    Parameters
    ----------
    max_faces : int
        How many faces to look for (the primary one is chosen afterwards).
    min_confidence : float
        mediapipe's ``min_detection_confidence``.
    """

    name: ClassVar[str] = "mediapipe"
    has_68: ClassVar[bool] = True
    has_mesh: ClassVar[bool] = True

    def __init__(self, max_faces: int = 4, min_confidence: float = 0.5) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging is noisy
        try:
            from mediapipe.python.solutions import face_mesh
        except Exception as exc:  # pragma: no cover - depends on the install
            raise LandmarkError(f"cannot import mediapipe's face mesh: {exc}") from exc
        self._mesh = face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_confidence,
        )

    def detect(self, image: np.ndarray, *, image_id: str | None = None) -> list[Landmarks]:
        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        result = self._mesh.process(image)
        faces = []
        for face in result.multi_face_landmarks or []:
            pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            if len(pts) != N_POINTS:
                raise LandmarkError(f"mediapipe returned {len(pts)} points, expected {N_POINTS}")
            # Normalised coordinates -> pixels; mediapipe's z uses the x scale.
            pts *= np.array([w, h, w], dtype=np.float32)
            faces.append(landmarks_from_mesh(pts))
        return faces

    def close(self) -> None:
        self._mesh.close()
