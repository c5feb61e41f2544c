"""Backend ``mediapipe``: mediapipe 0.10.21's legacy face mesh (478 points with depth).

The face-mesh models ship inside the mediapipe wheel, so nothing is downloaded. The
dense mesh is kept; the 68 iBUG points are mesh vertices chosen by
``scripts/derive_ibug68_map.py`` (stored in ``data/mediapipe_ibug68.json``); the 5
ArcFace points use the iris centres for the eyes, which are more stable than the
eyelid contour on half-closed eyes.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import ClassVar

import numpy as np

from ..errors import LandmarkError
from ..quiet import native_logs
from .base import BACKENDS, Landmarks

# mediapipe's refined mesh: 468 face vertices, then two irises of 5 points each
# (centre first). Vertex 468 is the iris of the subject's right eye (image left).
IRIS_IMAGE_LEFT = 468
IRIS_IMAGE_RIGHT = 473
N_POINTS = 478


@functools.lru_cache(maxsize=1)
def ibug68_indices() -> np.ndarray:
    """Mesh vertex index of each iBUG-68 point, shape (68,), int (read once, read-only)."""
    text = resources.files(__package__).joinpath("data/mediapipe_ibug68.json").read_text()
    idx = np.asarray(json.loads(text)["indices"], dtype=np.int64)
    if idx.shape != (68,):
        raise LandmarkError("mediapipe_ibug68.json must hold 68 indices")
    idx.setflags(write=False)
    return idx


def five_vertices() -> np.ndarray:
    """Mesh vertex of each ArcFace point, shape (5,): the two iris centres, then the
    vertices of iBUG points 30 (nose tip), 48 and 54 (mouth corners)."""
    idx = ibug68_indices()
    return np.array([IRIS_IMAGE_LEFT, IRIS_IMAGE_RIGHT, idx[30], idx[48], idx[54]], dtype=np.int64)


def five_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """ArcFace 5 points of a mediapipe mesh of shape (478, 2+), shape (5, 2), float32."""
    return np.asarray(mesh)[five_vertices(), :2].astype(np.float32)


def landmarks_from_mesh(mesh: np.ndarray, backend: str = "mediapipe") -> Landmarks:
    """Build :class:`Landmarks` from a mediapipe mesh of shape (478, 3), in pixels
    (``z`` on the ``x`` scale)."""
    mesh = np.asarray(mesh, dtype=np.float32)
    p68 = mesh[ibug68_indices(), :2]
    p5 = five_from_mesh(mesh)
    xy = mesh[:, :2]
    bbox = np.concatenate([xy.min(0), xy.max(0)]).astype(np.float32)
    return Landmarks(points5=p5, points68=p68.astype(np.float32), bbox=bbox, backend=backend, mesh=mesh)


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Two meshes are the same face when their nose tips are closer than a fifth of the face width."""
    width = float(np.ptp(b[:, 0]))
    return float(np.linalg.norm(a[4, :2] - b[4, :2])) < 0.2 * width


@BACKENDS.register("mediapipe")
class MediapipeBackend:
    """mediapipe face mesh, ``static_image_mode=True``, ``refine_landmarks=True``.

    The face mesh finds faces with mediapipe's short-range detector, which misses faces
    smaller than about a fifth of the image. When it finds none, the full-range detector
    (also in the wheel) looks for faces, and the mesh runs on a square crop around each.
    With ``thorough=True`` the full-range detector always runs, so small secondary
    faces are found and counted too (about twice the time per image).

    Parameters
    ----------
    max_faces : int
        How many faces to look for (the primary one is chosen afterwards).
    min_confidence : float
        mediapipe's ``min_detection_confidence``.
    thorough : bool
        Always run the full-range detector as well (see above).
    """

    name: ClassVar[str] = "mediapipe"
    has_68: ClassVar[bool] = True
    has_mesh: ClassVar[bool] = True

    def __init__(self, max_faces: int = 4, min_confidence: float = 0.5, thorough: bool = False) -> None:
        try:
            from mediapipe.python.solutions import face_mesh
        except Exception as exc:  # pragma: no cover - depends on the install
            raise LandmarkError(f"cannot import mediapipe's face mesh: {exc}") from exc
        from mediapipe.python.solutions import face_detection

        with native_logs(settle=self._wait_idle):  # mediapipe's C++ logging is noisy (shown with --verbose)
            self._mesh = face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=max_faces,
                refine_landmarks=True,
                min_detection_confidence=min_confidence,
            )
            self._crop_mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=min_confidence)
            self._detector = face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_confidence)
        self.max_faces = max_faces
        self.thorough = thorough

    def _meshes(self, mesh, image: np.ndarray) -> list[np.ndarray]:
        h, w = image.shape[:2]
        out = []
        for face in mesh.process(image).multi_face_landmarks or []:
            pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            if len(pts) != N_POINTS:
                raise LandmarkError(f"mediapipe returned {len(pts)} points, expected {N_POINTS}")
            # Normalised coordinates -> pixels; mediapipe's z uses the x scale.
            out.append(pts * np.array([w, h, w], dtype=np.float32))
        return out

    def detect(self, image: np.ndarray, *, image_id: str | None = None) -> list[Landmarks]:
        with native_logs(settle=self._wait_idle):
            return self._detect(np.ascontiguousarray(image))

    def _wait_idle(self) -> None:
        """Until the graphs' threads are idle (some log just after a result is returned)."""
        for graph in (getattr(self, "_mesh", None), getattr(self, "_crop_mesh", None), getattr(self, "_detector", None)):
            if graph is not None:
                graph._graph.wait_until_idle()

    def _detect(self, image: np.ndarray) -> list[Landmarks]:
        meshes = self._meshes(self._mesh, image)
        if not meshes or self.thorough:
            extra = self._small_faces(image)
            # Keep the crop meshes of faces the full-image pass did not find.
            meshes += [m for m in extra if not any(_same_face(m, k) for k in meshes)]
        return [landmarks_from_mesh(m) for m in meshes]

    def _small_faces(self, image: np.ndarray, crop: int = 256) -> list[np.ndarray]:
        """Full-range detection, then the mesh on a square crop (twice the box) per face."""
        import cv2

        h, w = image.shape[:2]
        meshes = []
        detections = sorted(self._detector.process(image).detections or [], key=lambda d: -d.score[0])
        for det in detections[: self.max_faces]:
            box = det.location_data.relative_bounding_box
            cx, cy = (box.xmin + box.width / 2) * w, (box.ymin + box.height / 2) * h
            side = 2.0 * max(box.width * w, box.height * h)
            k = crop / side
            m = np.array([[k, 0, crop / 2 - k * cx], [0, k, crop / 2 - k * cy]], dtype=np.float64)
            patch = cv2.warpAffine(image, m, (crop, crop), flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for pts in self._meshes(self._crop_mesh, patch):
                pts[:, 0] = (pts[:, 0] - m[0, 2]) / k
                pts[:, 1] = (pts[:, 1] - m[1, 2]) / k
                pts[:, 2] /= k
                meshes.append(pts)
        return meshes

    def close(self) -> None:
        for graph in (self._mesh, self._crop_mesh, self._detector):
            graph.close()
