"""How the canonical face sits in an image: the map from canonical points to pixels.

Two landmark models carry canonical points into an image:

* ``ibug68``: the mean 68-point face; its pose is a scaled-orthographic (affine)
  camera fitted to the 68 points.
* ``mesh``: mediapipe's 468 surface vertices; its pose is a 3D similarity
  (Procrustes) from the canonical mesh to the detected one, depth included.

A canonical point ``g = (u, v, z)`` is placed by interpolating the detected landmarks
at its *base* ``b`` (``g``'s frontal position, or the nearest point of the model's
outline when ``g`` lies outside it) and adding the offset ``g - b`` turned by the pose.
Inside the face that follows every landmark (piecewise-affine warp); outside it
(below the jaw, beyond the cheeks) it extends the face rigidly, and a point held in
front of the skin (a mask bridging the nose-cheek groove) stays in front of it in any
pose.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import LandmarkError
from ..landmarks.base import Landmarks
from ..landmarks.canonical import canonical_face
from .geometry import barycentric_weights, similarity_3d


@dataclass(frozen=True, eq=False)
class LandmarkModel:
    """Canonical landmarks of one kind and their triangulation.

    Attributes
    ----------
    name : str
    points : ndarray of shape (K, 3), canonical units
    triangles : ndarray of shape (T, 3)
    """

    name: str
    points: np.ndarray
    triangles: np.ndarray

    @functools.cached_property
    def outline(self) -> np.ndarray:
        """Convex outline of the frontal projection, shape (M, 2), counter-clockwise."""
        import cv2

        hull = cv2.convexHull(self.points[:, :2].astype(np.float32)).reshape(-1, 2)
        return hull.astype(np.float64)

    def bases(self, uv: np.ndarray) -> np.ndarray:
        """Base points of canonical ``uv`` (P, 2): themselves inside the outline, else
        the nearest outline point."""
        uv = np.asarray(uv, dtype=np.float64)
        a = self.outline
        b = np.roll(a, -1, axis=0)
        ab = b - a
        t = np.clip(((uv[:, None, :] - a) * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
        nearest = a + t[..., None] * ab  # (P, M, 2)
        d2 = ((uv[:, None, :] - nearest) ** 2).sum(-1)
        best = nearest[np.arange(len(uv)), d2.argmin(1)]
        # Inside a counter-clockwise (on screen, y down) convex polygon: all cross <= 0.
        cross = ab[:, 0] * (uv[:, None, 1] - a[:, 1]) - ab[:, 1] * (uv[:, None, 0] - a[:, 0])
        inside = (cross >= 0).all(1) | (cross <= 0).all(1)
        return np.where(inside[:, None], uv, best)

    def anchors(self, uv: np.ndarray) -> "Anchors":
        """Bases, interpolation weights and base depths of canonical points ``uv``
        (P, 2); compute once for a fixed set of points and reuse."""
        uv = np.asarray(uv, dtype=np.float64)
        base = self.bases(uv)
        index, weight = barycentric_weights(base, self.points[:, :2], self.triangles)
        face = canonical_face()
        base_z = face.sample(face.face_depth, base[:, 0], base[:, 1]).astype(np.float64)
        return Anchors(base=base, index=index, weight=weight, base_z=base_z)


@dataclass(frozen=True, eq=False)
class Anchors:
    """Where canonical points attach to a landmark model (see :meth:`LandmarkModel.anchors`).

    Attributes
    ----------
    base : ndarray of shape (P, 2)
    index, weight : ndarray of shape (P, 3)
        Landmarks and barycentric weights interpolating each base.
    base_z : ndarray of shape (P,)
        Canonical face depth at each base.
    """

    base: np.ndarray
    index: np.ndarray
    weight: np.ndarray
    base_z: np.ndarray


@functools.lru_cache(maxsize=None)
def landmark_model(name: str) -> LandmarkModel:
    """``ibug68`` or ``mesh``."""
    face = canonical_face()
    if name == "ibug68":
        return LandmarkModel("ibug68", face.mean68, face.triangles68)
    if name == "mesh":
        return LandmarkModel("mesh", face.vertices[:468], face.triangles)
    raise ValueError(f"unknown landmark model {name!r}")


@dataclass(frozen=True, eq=False)
class FaceFit:
    """A landmark model placed in one image.

    Attributes
    ----------
    model : LandmarkModel
    points : ndarray of shape (K, 2)
        Detected landmarks, image pixels.
    depth : ndarray of shape (K,)
        Their depth, pixels (detected for the mesh, from the pose for 68 points).
    linear : ndarray of shape (3, 3)
        Canonical offsets to camera offsets (pixels): ``scale * rotation``.
    translation : ndarray of shape (3,)
        With ``linear``, the rigid pose: canonical point ``X`` lies near
        ``linear @ X + translation`` (x, y in pixels, depth).
    rotation : ndarray of shape (3, 3)
        Canonical directions to camera directions.
    scale : float
        Pixels per canonical unit.
    """

    model: LandmarkModel
    points: np.ndarray
    depth: np.ndarray
    linear: np.ndarray
    rotation: np.ndarray
    scale: float
    translation: np.ndarray

    @property
    def yaw_pitch_roll(self) -> tuple[float, float, float]:
        """Head pose in degrees (yaw > 0: the face turns towards image right)."""
        r = self.rotation
        yaw = np.degrees(np.arcsin(np.clip(-r[2, 0], -1, 1)))
        pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
        roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
        return float(-yaw), float(pitch), float(roll)

    def place(self, uvz: np.ndarray, anchors: Anchors | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Image position and depth of canonical points.

        Parameters
        ----------
        uvz : ndarray of shape (P, 3)
            Canonical points.
        anchors : Anchors, optional
            ``self.model.anchors(uvz[:, :2])``, precomputed for speed.

        Returns
        -------
        xy : ndarray of shape (P, 2), pixels
        z : ndarray of shape (P,), pixels (larger is farther)
        """
        uvz = np.asarray(uvz, dtype=np.float64)
        if anchors is None:
            anchors = self.model.anchors(uvz[:, :2])
        offset = uvz - np.column_stack([anchors.base, anchors.base_z])
        placed = offset @ self.linear.T
        # Each point's three landmarks (x, y, depth), weighted: one einsum (numpy's
        # broadcasting over a last axis of 2 or 3 is slow).
        placed += np.einsum("pj,pjk->pk", anchors.weight, self._points_xyz[anchors.index])
        return placed[:, :2], placed[:, 2]

    def memo(self, key: str, make):
        """``make()``, computed once per fit and ``key`` (what depends on the fit alone,
        such as where fixed canonical points land)."""
        cache = self.__dict__.setdefault("_memo", {})
        if key not in cache:
            cache[key] = make()
        return cache[key]

    @functools.cached_property
    def _points_xyz(self) -> np.ndarray:
        """The landmarks with their depth, (K, 3) float64."""
        return np.column_stack([np.asarray(self.points, dtype=np.float64), np.asarray(self.depth, dtype=np.float64)])


def _orthonormal_camera(m: np.ndarray) -> tuple[float, np.ndarray]:
    """Nearest scaled rotation to an affine camera's 2x3 linear part."""
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    r12 = u @ vt  # rows orthonormal
    r3 = np.cross(r12[0], r12[1])
    return float(s.mean()), np.vstack([r12, r3])


def fit_ibug68(points68: np.ndarray) -> FaceFit:
    """Fit the 68-point model to detected iBUG-68 landmarks (68, 2), pixels."""
    model = landmark_model("ibug68")
    pts = np.asarray(points68, dtype=np.float64)
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        raise LandmarkError(f"the template renderer needs 68 finite landmarks, got {pts.shape}")
    canon = model.points
    design = np.column_stack([canon, np.ones(len(canon))])
    cam, *_ = np.linalg.lstsq(design, pts, rcond=None)  # (4, 2)
    scale, rot = _orthonormal_camera(cam[:3].T)
    linear = scale * rot
    depth = (canon - canon.mean(0)) @ linear[2]
    translation = np.array([cam[3, 0], cam[3, 1], -linear[2] @ canon.mean(0)])
    return FaceFit(model=model, points=pts, depth=depth, linear=linear, rotation=rot, scale=scale, translation=translation)


def fit_mesh(mesh: np.ndarray) -> FaceFit:
    """Fit the mesh model to a detected mediapipe mesh (478 or 468, 3), pixels."""
    model = landmark_model("mesh")
    pts = np.asarray(mesh, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 468 or pts.shape[1] != 3 or not np.isfinite(pts[:468]).all():
        raise LandmarkError(f"the mesh renderer needs a 478-point mediapipe mesh with depth, got {pts.shape}")
    pts = pts[:468]
    pose = similarity_3d(model.points, pts)
    return FaceFit(
        model=model,
        points=pts[:, :2],
        depth=pts[:, 2],
        linear=pose.scale * pose.rotation,
        rotation=pose.rotation,
        scale=pose.scale,
        translation=pose.translation,
    )


def check_landmarks(landmarks: Landmarks, model: str) -> None:
    """Raise LandmarkError unless ``landmarks`` carry what ``model`` (``ibug68`` or
    ``mesh``) is fitted to; cheap (no fit)."""
    if model == "mesh":
        if landmarks.mesh is None:
            raise LandmarkError(
                f"the mesh renderer needs mediapipe's dense mesh; landmarks from backend {landmarks.backend!r} have none "
                "(use --landmarks mediapipe or --renderer template)"
            )
        pts = np.asarray(landmarks.mesh)
        if pts.ndim != 2 or pts.shape[0] < 468 or pts.shape[1] != 3 or not np.isfinite(pts[:468]).all():
            raise LandmarkError(f"the mesh renderer needs a 478-point mediapipe mesh with depth, got {pts.shape}")
        return
    if landmarks.points68 is None:
        raise LandmarkError(
            f"the template renderer needs 68 landmarks; backend {landmarks.backend!r} gave only 5 "
            "(use --landmarks dlib or mediapipe)"
        )
    pts = np.asarray(landmarks.points68)
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        raise LandmarkError(f"the template renderer needs 68 finite landmarks, got {pts.shape}")


def fit_landmarks(landmarks: Landmarks, model: str) -> FaceFit:
    """Fit ``model`` (``ibug68`` or ``mesh``) to a face's landmarks."""
    check_landmarks(landmarks, model)
    if model == "mesh":
        return fit_mesh(landmarks.mesh)
    return fit_ibug68(landmarks.points68)
