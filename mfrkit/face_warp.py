"""Smooth landmark-driven warps of a face photo: identity morphs, head pose, skin and hair.

Pure pixel and geometry functions used by :mod:`mfrkit.synthetic.identities`.
Every warp is given as *where landmarks go*: displacements at control points
(landmarks, plus fixed anchors around the head and on the image border) are spread over
the image by a thin-plate spline, the smoothest interpolant that passes through them,
so the face changes shape without tearing and the background stays put.

Conventions: images are (H, W, 3) uint8 RGB; points are (N, 2) float pixel coordinates
``(x, y)`` with y down; a *face frame* has its origin at the eye midpoint, ``u`` along
the eye line towards the image-right eye and ``v`` perpendicular to it, pointing down
the face, both in units of the inter-ocular distance (IOD).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

#: mediapipe face-mesh vertices of the face outline, in order around the face
#: (mediapipe's ``FACEMESH_FACE_OVAL`` chained: chin, image-left side, forehead top
#: (vertex 10), image-right side).
FACE_OVAL = (
    176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109, 10, 338,
    297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
)  # fmt: skip
#: iBUG-68 index groups.
JAW = tuple(range(0, 17))
BROW_LEFT, BROW_RIGHT = tuple(range(17, 22)), tuple(range(22, 27))
NOSE_BRIDGE, NOSE_LOWER = (27, 28, 29, 30), tuple(range(31, 36))
EYE_LEFT, EYE_RIGHT = tuple(range(36, 42)), tuple(range(42, 48))
MOUTH, MOUTH_OUTER = tuple(range(48, 68)), tuple(range(48, 60))


@dataclass(frozen=True)
class FaceFrame:
    """The face frame of a face (see the module docstring).

    Attributes
    ----------
    origin : ndarray (2,)
        Eye midpoint, pixels.
    ex, ey : ndarray (2,)
        Unit vectors of ``u`` (along the eye line) and ``v`` (down the face).
    iod : float
        Inter-ocular distance, pixels.
    """

    origin: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    iod: float

    @classmethod
    def from_eyes(cls, left: np.ndarray, right: np.ndarray) -> "FaceFrame":
        left, right = np.asarray(left, np.float64), np.asarray(right, np.float64)
        d = right - left
        iod = float(np.hypot(*d))
        ex = d / iod
        return cls(origin=(left + right) / 2, ex=ex, ey=np.array([-ex[1], ex[0]]), iod=iod)

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """``(u, v)`` of pixel points (N, 2)."""
        p = np.asarray(points, np.float64) - self.origin
        return np.stack([p @ self.ex, p @ self.ey], axis=1) / self.iod

    def to_pixels(self, local: np.ndarray) -> np.ndarray:
        """Pixel points of face-frame points (N, 2)."""
        local = np.asarray(local, np.float64) * self.iod
        return self.origin + local[:, :1] * self.ex + local[:, 1:2] * self.ey

    def vectors_to_pixels(self, local: np.ndarray) -> np.ndarray:
        """Pixel displacement vectors of face-frame displacements (N, 2)."""
        local = np.asarray(local, np.float64) * self.iod
        return local[:, :1] * self.ex + local[:, 1:2] * self.ey


def anchor_points(oval: np.ndarray, shape: tuple[int, int], *, ring_scale: float = 1.7, n_ring: int = 24) -> np.ndarray:
    """Control points that stay fixed: a ring around the head (the face outline scaled
    by ``ring_scale`` about its centre, resampled to ``n_ring`` points) and 12 points on
    the image border, shape (n_ring + 12, 2)."""
    oval = np.asarray(oval, np.float64)
    centre = oval.mean(0)
    angles = np.arctan2(oval[:, 1] - centre[1], oval[:, 0] - centre[0])
    radii = np.hypot(*(oval - centre).T)
    order = np.argsort(angles)
    want = np.linspace(-np.pi, np.pi, n_ring, endpoint=False)
    r = np.interp(want, angles[order], radii[order], period=2 * np.pi) * ring_scale
    ring = centre + np.stack([np.cos(want), np.sin(want)], axis=1) * r[:, None]
    h, w = shape
    xs, ys = np.linspace(0, w - 1, 4), np.linspace(0, h - 1, 4)
    border = [(x, 0.0) for x in xs] + [(x, h - 1.0) for x in xs] + [(0.0, y) for y in ys[1:-1]] + [(w - 1.0, y) for y in ys[1:-1]]
    return np.vstack([ring, np.asarray(border)])


def spline(points: np.ndarray, values: np.ndarray) -> RBFInterpolator:
    """The thin-plate spline through ``values`` (N, k) at ``points`` (N, 2); duplicate
    points (a vertex listed twice) are merged."""
    points = np.asarray(points, np.float64)
    _, keep = np.unique(np.round(points, 3), axis=0, return_index=True)
    keep = np.sort(keep)
    return RBFInterpolator(points[keep], np.asarray(values, np.float64)[keep], kernel="thin_plate_spline")


def backward_map(
    src: np.ndarray, dst: np.ndarray, anchors: np.ndarray, out_shape: tuple[int, int], *, out_to_dst: np.ndarray | None = None, step: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps for the smooth warp that moves ``src`` points to ``dst``.

    Parameters
    ----------
    src, dst : ndarray (N, 2)
        Control points before and after the warp, pixels of the source image and of
        the warped frame.
    anchors : ndarray (M, 2)
        Points of the warped frame that do not move.
    out_shape : (height, width)
        Size of the output image.
    out_to_dst : ndarray (2, 3), optional
        Affine map from output pixels to the warped frame (a crop, zoom or rotation
        applied after the warp); identity when None.
    step : int
        The spline is evaluated every ``step`` output pixels and interpolated
        bilinearly in between (it is smooth, so this loses nothing visible).

    Returns
    -------
    (map_x, map_y) : float32 arrays of shape ``out_shape``
        Source coordinates of every output pixel.
    """
    src, dst, anchors = (np.asarray(a, np.float64) for a in (src, dst, anchors))
    field = spline(np.vstack([dst, anchors]), np.vstack([src - dst, np.zeros_like(anchors)]))
    h, w = out_shape
    gx = np.linspace(0, w - 1, max(2, int(np.ceil((w - 1) / step)) + 1))
    gy = np.linspace(0, h - 1, max(2, int(np.ceil((h - 1) / step)) + 1))
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    if out_to_dst is not None:
        m = np.asarray(out_to_dst, np.float64)
        grid = grid @ m[:, :2].T + m[:, 2]
    coarse = (grid + field(grid)).reshape(len(gy), len(gx), 2).astype(np.float32)
    full = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(full[..., 0]), np.ascontiguousarray(full[..., 1])


def forward_points(src: np.ndarray, dst: np.ndarray, anchors_src: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where the smooth warp taking ``src`` to ``dst`` (anchors fixed) sends ``points``."""
    src, dst, anchors_src = (np.asarray(a, np.float64) for a in (src, dst, anchors_src))
    field = spline(np.vstack([src, anchors_src]), np.vstack([dst - src, np.zeros_like(anchors_src)]))
    points = np.asarray(points, np.float64)
    return points + field(points)


# --- identity morph ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Morph:
    """A face-shape change, in fractions (0 = unchanged).

    Attributes
    ----------
    eye_spacing : float
        Change of the inter-ocular distance, fraction of it (eyes and brows move apart
        symmetrically).
    nose_length : float
        Change of the eye-line-to-nose-tip distance, fraction of it.
    nose_width, mouth_width, jaw_width : float
        Relative change of the width of the nostrils, the mouth and the lower jaw.
    face_height : float
        Relative vertical stretch of everything below the eye line (nose, mouth, chin).
    """

    eye_spacing: float = 0.0
    nose_length: float = 0.0
    nose_width: float = 0.0
    mouth_width: float = 0.0
    jaw_width: float = 0.0
    face_height: float = 0.0


def morph_displacements(points68: np.ndarray, frame: FaceFrame, morph: Morph) -> np.ndarray:
    """Pixel displacement (68, 2) of each iBUG-68 point under ``morph``."""
    uv = frame.to_local(points68)
    u, v = uv[:, 0], uv[:, 1]
    du, dv = np.zeros(68), np.zeros(68)
    for group, sign in ((BROW_LEFT + EYE_LEFT, -1.0), (BROW_RIGHT + EYE_RIGHT, 1.0)):
        du[list(group)] += sign * morph.eye_spacing / 2
    tip = v[30]
    for i in NOSE_BRIDGE + NOSE_LOWER:
        # The bridge stretches with the nose: each point moves in proportion to its depth.
        dv[i] += morph.nose_length * (v[i] if i in NOSE_BRIDGE else tip)
    lower = list(NOSE_LOWER)
    du[lower] += morph.nose_width * (u[lower] - u[33])
    mouth = list(MOUTH)
    du[mouth] += morph.mouth_width * (u[mouth] - (u[48] + u[54]) / 2)
    jaw = list(JAW)
    # Wider at the jaw angle and cheeks, nothing at the ears (v ~ 0) or the chin (u ~ 0).
    weight = np.clip(v[jaw] / max(v[51], 1e-6), 0.0, 1.0)
    du[jaw] += morph.jaw_width * u[jaw] * weight
    below = v > 0
    dv[below] += morph.face_height * v[below]
    return frame.vectors_to_pixels(np.stack([du, dv], axis=1))


def warp_image(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """``image`` resampled at ``(map_x, map_y)`` (bilinear, edges replicated)."""
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# --- pose ---------------------------------------------------------------------------------------------


def rotate_mesh(mesh: np.ndarray, frame: FaceFrame, yaw: float, pitch: float, depth: float = 0.4) -> np.ndarray:
    """The mesh (N, 3) turned by ``yaw`` (about the face's vertical axis) and ``pitch``
    (about the eye line), degrees, and projected orthographically: new (N, 2) pixels.

    The rotation centre sits on the face's vertical axis through the eye midpoint,
    ``depth`` IODs behind the mean depth of the mesh, so the nose moves against the
    cheeks and the outline (the parallax of a turning head) while the face as a whole
    stays in place.
    """
    mesh = np.asarray(mesh, np.float64)
    uv = frame.to_local(mesh[:, :2])
    z = (mesh[:, 2] - mesh[:, 2].mean()) / frame.iod - depth  # nearer is smaller
    a, b = np.radians(yaw), np.radians(pitch)
    u = uv[:, 0] * np.cos(a) - z * np.sin(a)
    z1 = uv[:, 0] * np.sin(a) + z * np.cos(a)
    v = uv[:, 1] * np.cos(b) - z1 * np.sin(b)
    return frame.to_pixels(np.stack([u, v], axis=1))


# --- appearance ---------------------------------------------------------------------------------------


def _polygon_mask(shape: tuple[int, int], polygons: list[np.ndarray]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for poly in polygons:
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 255)
    return mask


def skin_mask(shape: tuple[int, int], oval: np.ndarray, points68: np.ndarray, iod: float) -> np.ndarray:
    """Soft mask (H, W) float32 in [0, 1] of the facial skin: the face outline less the
    eyes, brows and lips."""
    face = _polygon_mask(shape, [oval])
    holes = _polygon_mask(shape, [points68[list(EYE_LEFT)], points68[list(EYE_RIGHT)], points68[list(MOUTH_OUTER)]])
    thick = max(2, int(round(0.12 * iod)))
    for brow in (BROW_LEFT, BROW_RIGHT):
        cv2.polylines(holes, [np.round(points68[list(brow)]).astype(np.int32)], False, 255, thick)
    holes = cv2.dilate(holes, np.ones((3, 3), np.uint8), iterations=max(1, int(0.05 * iod)))
    mask = (face.astype(np.float32) - holes.astype(np.float32)).clip(0, 255) / 255.0
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.06 * iod))


def hair_mask(shape: tuple[int, int], oval: np.ndarray, frame: FaceFrame, skin: np.ndarray) -> np.ndarray:
    """Soft mask (H, W) float32 of the hair (and headwear): the band between the face
    outline and the outline grown by 45 %, above the nose, less the skin."""
    oval = np.asarray(oval, np.float64)
    centre = oval.mean(0)
    outer = _polygon_mask(shape, [centre + 1.45 * (oval - centre)]).astype(np.float32) / 255.0
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    v = ((xs - frame.origin[0]) * frame.ey[0] + (ys - frame.origin[1]) * frame.ey[1]) / frame.iod
    above = np.clip((0.6 - v) / 0.3, 0.0, 1.0).astype(np.float32)  # fades out at nose level
    face = _polygon_mask(shape, [oval]).astype(np.float32) / 255.0
    mask = np.clip(outer - face, 0, 1) * above
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.15 * frame.iod))
    return np.clip(mask - skin, 0, 1)


def shift_lab(image: np.ndarray, mask: np.ndarray, shift: tuple[float, float, float]) -> np.ndarray:
    """``image`` with CIELAB ``(dL, da, db)`` added where ``mask`` (H, W, in [0, 1]) is set.

    L is 0-100, a and b are about -127..127; the shift fades with the mask.
    """
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    lab += mask[..., None] * np.asarray(shift, np.float32)
    lab[..., 0] = np.clip(lab[..., 0], 0, 100)
    rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
