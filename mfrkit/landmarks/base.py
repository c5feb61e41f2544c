"""The landmark contract shared by every backend.

A backend turns an RGB image into zero or more :class:`Landmarks`, one per face. The
primary face of an image is chosen by :func:`select_primary`; an image without a face
is a status (``"no_face"``), never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np

from ..registry import Registry

#: iBUG-68 index groups (0-based). "Left"/"right" are image sides.
IBUG_JAW = slice(0, 17)
IBUG_LEFT_EYE = slice(36, 42)  # image-left eye (the subject's right eye)
IBUG_RIGHT_EYE = slice(42, 48)
IBUG_NOSE_TIP = 30
IBUG_MOUTH_LEFT = 48
IBUG_MOUTH_RIGHT = 54


def five_from_68(points68: np.ndarray) -> np.ndarray:
    """ArcFace 5 points from iBUG 68 points.

    Eye centres are the means of the six eye-contour points; the nose tip is point 30;
    the mouth corners are points 48 and 54.

    Parameters
    ----------
    points68 : ndarray of shape (68, 2)

    Returns
    -------
    ndarray of shape (5, 2), float32
    """
    p = np.asarray(points68, dtype=np.float64)
    return np.stack(
        [
            p[IBUG_LEFT_EYE].mean(0),
            p[IBUG_RIGHT_EYE].mean(0),
            p[IBUG_NOSE_TIP],
            p[IBUG_MOUTH_LEFT],
            p[IBUG_MOUTH_RIGHT],
        ]
    ).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Landmarks of one face. All coordinates in pixels of the image they came from.

    Attributes
    ----------
    points5 : ndarray of shape (5, 2), float32
        ArcFace order: left eye, right eye, nose tip, left and right mouth corner
        (image left/right).
    points68 : ndarray of shape (68, 2), float32, or None
        iBUG-300W order; None where the source has only 5 points.
    bbox : ndarray of shape (4,), float32
        ``x0, y0, x1, y1`` of the face box.
    score : float
        Detector confidence where the backend has one, else NaN.
    backend : str
        Name of the backend that produced these.
    mesh : ndarray of shape (478, 3), float32, or None
        mediapipe's dense mesh; ``z`` is in pixels on the same scale as ``x``
        (mediapipe's normalised depth times the image width), smaller is nearer.
    """

    points5: np.ndarray
    points68: np.ndarray | None
    bbox: np.ndarray
    score: float = float("nan")
    backend: str = ""
    mesh: np.ndarray | None = field(default=None, repr=False)

    @property
    def area(self) -> float:
        """Area of the face box, square pixels."""
        x0, y0, x1, y1 = (float(v) for v in self.bbox)
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    @property
    def interocular(self) -> float:
        """Distance between the two eye centres, pixels."""
        return float(np.linalg.norm(self.points5[1] - self.points5[0]))

    def eye_centres(self) -> np.ndarray:
        """Eye centres, shape (2, 2): image-left eye first."""
        return self.points5[:2]

    def transformed(self, matrix: np.ndarray) -> "Landmarks":
        """These landmarks mapped by ``matrix``, a (2, 3) affine map of pixels (e.g. into
        an aligned crop, :attr:`mfrkit.align.AlignedFace.matrix`).

        The box becomes the axis-aligned box of its transformed corners; the mesh's
        depth is scaled by the transform's scale factor.
        """
        from ..align import transform_points

        m = np.asarray(matrix, dtype=np.float64)
        x0, y0, x1, y1 = (float(v) for v in self.bbox)
        corners = transform_points(m, np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]))
        mesh = None
        if self.mesh is not None:
            scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
            xy = transform_points(m, self.mesh[:, :2])
            mesh = np.column_stack([xy, self.mesh[:, 2] * scale]).astype(np.float32)
        return Landmarks(
            points5=transform_points(m, self.points5).astype(np.float32),
            points68=None if self.points68 is None else transform_points(m, self.points68).astype(np.float32),
            bbox=np.concatenate([corners.min(0), corners.max(0)]).astype(np.float32),
            score=self.score,
            backend=self.backend,
            mesh=mesh,
        )


@dataclass(frozen=True)
class FaceResult:
    """What detection on one image gives.

    Attributes
    ----------
    status : str
        ``"ok"`` or a failure reason (``"no_face"``, ``"corrupt"``, ...).
    landmarks : Landmarks or None
        The primary face; None unless ``status == "ok"``.
    n_faces : int
        How many faces the backend found in the image.
    """

    status: str
    landmarks: Landmarks | None = None
    n_faces: int = 0


def select_primary(faces: list[Landmarks], image_shape: tuple[int, ...]) -> Landmarks | None:
    """Pick the primary face: among the faces at least half as large as the largest
    (by box area), the one whose box centre is nearest the image centre.

    Returns None for an empty list.
    """
    if not faces:
        return None
    h, w = image_shape[:2]
    largest = max(f.area for f in faces)
    centre = np.array([w / 2.0, h / 2.0])
    candidates = [f for f in faces if f.area >= 0.5 * largest]

    def distance(face: Landmarks) -> float:
        x0, y0, x1, y1 = (float(v) for v in face.bbox)
        return float(np.hypot((x0 + x1) / 2 - centre[0], (y0 + y1) / 2 - centre[1]))

    return min(candidates, key=distance)


class LandmarkBackend(Protocol):
    """Interface of a landmark backend.

    A backend object is created once per process (it may hold a model) and then called
    on many images. It must be safe to construct in a worker process.
    """

    name: ClassVar[str]
    #: True when the backend yields ``points68``.
    has_68: ClassVar[bool]
    #: True when the backend yields a dense ``mesh``.
    has_mesh: ClassVar[bool]

    def detect(self, image: np.ndarray, *, image_id: str | None = None) -> list[Landmarks]:
        """All faces in ``image`` (H, W, 3) uint8 RGB; an empty list when there is none.

        ``image_id`` identifies the image for backends that look landmarks up rather
        than detect them (``file``).
        """
        ...


#: Landmark backends by name; each entry is a factory ``(**options) -> LandmarkBackend``.
BACKENDS: Registry = Registry("landmark backend")


def create_backend(name: str, **options) -> LandmarkBackend:
    """Instantiate the backend called ``name`` (see :data:`BACKENDS`)."""
    return BACKENDS.get(name)(**options)


def detect_primary(backend: LandmarkBackend, image: np.ndarray, *, image_id: str | None = None) -> FaceResult:
    """Run ``backend`` on ``image``, (H, W, 3) uint8 RGB, and keep the primary face
    (:func:`select_primary`); no face is status ``no_face``."""
    faces = backend.detect(image, image_id=image_id)
    primary = select_primary(faces, image.shape)
    if primary is None:
        return FaceResult(status="no_face", n_faces=0)
    return FaceResult(status="ok", landmarks=primary, n_faces=len(faces))
