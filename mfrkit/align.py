"""Face alignment: a 5-point similarity transform onto the ArcFace template.

All coordinates are pixels, ``(x, y)``, origin at the top-left pixel's corner convention
used by OpenCV's ``warpAffine``. Points are in ArcFace order: left eye, right eye, nose
tip, left mouth corner, right mouth corner, where "left" is the *image* left (the
subject's right eye).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import MfrkitError

#: ArcFace / insightface 5-point template for a 112x112 crop, shape (5, 2), pixels.
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def arcface_template(size: int = 112, padding: float = 0.0) -> np.ndarray:
    """The ArcFace template for a ``size`` x ``size`` crop with ``padding``.

    The 112x112 template is scaled to ``size``, then shrunk towards the centre so that
    a margin of ``padding`` (a fraction of the unpadded crop) surrounds it on each side:
    ``dst = (t / 112 + padding) / (1 + 2 * padding) * size``. With ``padding=0`` this is
    the plain scaled template; PartialLFW uses ``size=160, padding=0.3``.

    Returns
    -------
    ndarray of shape (5, 2), float64, pixels.
    """
    if size <= 0:
        raise MfrkitError(f"crop size must be positive, got {size}")
    if padding < 0:
        raise MfrkitError(f"padding must be >= 0, got {padding}")
    return (ARCFACE_112 / 112.0 + padding) / (1.0 + 2.0 * padding) * size


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation).

    Umeyama's closed form: the 2x3 matrix ``M`` minimising
    ``sum ||M @ [src_i, 1] - dst_i||^2`` with no reflection.

    Parameters
    ----------
    src, dst : array_like of shape (N, 2), N >= 2
        Corresponding points, pixels.

    Returns
    -------
    ndarray of shape (2, 3), float64, usable with ``cv2.warpAffine``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise MfrkitError(f"need two (N, 2) point arrays with N >= 2, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise MfrkitError("landmarks contain NaN or infinite values")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s < 1e-12:
        raise MfrkitError("landmarks are degenerate (all points coincide)")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    scale = (sig * np.diag(sign)).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to points of shape (..., 2)."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix, as a 2x3 matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


@dataclass(frozen=True)
class AlignedFace:
    """An aligned crop and the transform that produced it.

    Attributes
    ----------
    image : ndarray of shape (size, size, 3), uint8
    matrix : ndarray of shape (2, 3)
        Maps source-image pixels to crop pixels; use :func:`transform_points` to map
        landmarks, :func:`invert_affine` to go back.
    """

    image: np.ndarray
    matrix: np.ndarray


def align_face(
    image: np.ndarray,
    points5: np.ndarray,
    *,
    size: int = 112,
    padding: float = 0.0,
    border_value: int | tuple[int, int, int] = 0,
) -> AlignedFace:
    """Warp ``image`` so its 5 landmarks land on the (padded) ArcFace template.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8
    points5 : ndarray of shape (5, 2)
        ArcFace-order landmarks in ``image`` pixels.
    size : int
        Side of the square crop, pixels.
    padding : float
        See :func:`arcface_template`.
    border_value : int or RGB tuple
        Fill for pixels that fall outside ``image``.
    """
    points5 = np.asarray(points5, dtype=np.float64).reshape(-1, 2)
    if points5.shape != (5, 2):
        raise MfrkitError(f"alignment needs 5 landmarks, got {points5.shape[0]}")
    matrix = similarity_transform(points5, arcface_template(size, padding))
    if np.isscalar(border_value):
        border_value = (int(border_value),) * 3
    crop = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border_value
    )
    return AlignedFace(image=crop, matrix=matrix)
