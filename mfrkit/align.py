"""Face alignment: a 5-point similarity transform onto the ArcFace template.

All coordinates are pixels, ``(x, y)``, origin at the top-left pixel's corner convention
used by OpenCV's ``warpAffine``. Points are in ArcFace order: left eye, right eye, nose
tip, left mouth corner, right mouth corner, where "left" is the *image* left (the
subject's right eye).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted least-squares similarity taking ``src`` onto ``dst`` (Umeyama, 1991).

    Minimises ``sum w_i ||s R src_i + t - dst_i||^2`` over a scale ``s``, a proper
    rotation ``R`` (no reflection) and a translation ``t``, in any dimension.

    Parameters
    ----------
    src, dst : array_like of shape (N, D), N >= D
        Corresponding points, in the same units (pixels).
    weights : array_like of shape (N,), optional
        Non-negative weights; equal by default.

    Returns
    -------
    scale : float
    rotation : ndarray of shape (D, D), det +1
    translation : ndarray of shape (D,)
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or len(src) < max(2, src.shape[1]):
        raise MfrkitError(f"need two (N, D) point arrays with N >= max(2, D), got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise MfrkitError("landmarks contain NaN or infinite values")
    w = np.full(len(src), 1.0 / len(src)) if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
    mu_s, mu_d = w @ src, w @ dst
    s, d = src - mu_s, dst - mu_d
    var_s = float(w @ (s**2).sum(1))
    if var_s < 1e-12:
        raise MfrkitError("landmarks are degenerate (all points coincide)")
    u, sig, vt = np.linalg.svd((d * w[:, None]).T @ s)
    sign = np.ones(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = (u * sign) @ vt
    scale = float((sig * sign).sum() / var_s)
    return scale, rot, mu_d - scale * rot @ mu_s


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation).

    Umeyama's closed form (:func:`umeyama`): the 2x3 matrix ``M`` minimising
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
    if src.ndim != 2 or src.shape[1] != 2:
        raise MfrkitError(f"need two (N, 2) point arrays with N >= 2, got {src.shape} and {np.shape(dst)}")
    scale, rot, shift = umeyama(src, dst)
    return np.column_stack([scale * rot, shift])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine ``matrix`` to points of shape (..., 2); same shape out, float64."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix, as a (2, 3) float64 matrix."""
    import cv2  # here, not at the top: scoring and training import this module without OpenCV

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
    import cv2

    crop = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border_value
    )
    return AlignedFace(image=crop, matrix=matrix)


# --- dlib's face chip ---------------------------------------------------------------------------
#
# dlib's face-recognition ResNet was trained on chips cut by dlib's get_face_chip_details +
# extract_image_chip (dlib/image_transforms/interpolation.h). Reproducing that cut, quirks
# included, keeps its descriptors where dlib puts them: the chip is a similarity fit of the
# shape onto dlib's mean face, turned into a rectangle of side size*scale - 1 centred on the
# template point (size/2, size/2); the rectangle's corners then map onto the chip's corner
# pixels, large downscales go through dlib's 2x image pyramid first, and bilinear samples
# are truncated to uint8.

#: dlib's mean face: iBUG-68 points 17..67 in a unit square (get_face_chip_details).
_DLIB_MEAN_FACE_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
)  # fmt: skip
_DLIB_MEAN_FACE_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
)  # fmt: skip
#: iBUG indices dlib fits with 68 points: no jaw, no eyebrows (17-26), no lower lip (55-59, 65-67).
DLIB_68_FIT = np.r_[27:55, 60:65]

#: Template of dlib's 5-point predictor (shape_predictor_5_face_landmarks), unit square, in its
#: order: image-right eye outer corner, image-right eye inner corner, image-left eye outer
#: corner, image-left eye inner corner, bottom of the nose.
DLIB_5_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)


def _dlib_mean_face() -> np.ndarray:
    """dlib's mean face as (68, 2) with NaN for the jaw points 0-16 it does not define."""
    face = np.full((68, 2), np.nan)
    face[17:, 0], face[17:, 1] = _DLIB_MEAN_FACE_X, _DLIB_MEAN_FACE_Y
    return face


def dlib_chip_template(order: str) -> tuple[np.ndarray, np.ndarray]:
    """The unit-square template a dlib chip fits, and which input points it uses.

    Parameters
    ----------
    order : {"ibug68", "dlib5", "arcface5"}
        ``ibug68``: dlib's own 68-point fit (33 points, see :data:`DLIB_68_FIT`).
        ``dlib5``: dlib's own fit for its 5-point predictor (:data:`DLIB_5_TEMPLATE`).
        ``arcface5``: mfrkit's addition for landmarks that only have ArcFace's 5 points:
        the same mean face, read at the eye centres (means of iBUG 36-41 and 42-47), the
        nose tip (30) and the mouth corners (48, 54). dlib has no such fit; the chip is
        close to, not identical with, the 68-point one.

    Returns
    -------
    template : ndarray of shape (K, 2), unit-square coordinates
    index : ndarray of shape (K,), int
        Rows of the caller's points that correspond to ``template``.
    """
    if order == "ibug68":
        return _dlib_mean_face()[DLIB_68_FIT], DLIB_68_FIT
    if order == "dlib5":
        return DLIB_5_TEMPLATE.copy(), np.arange(5)
    if order == "arcface5":
        face = _dlib_mean_face()
        template = np.stack([face[36:42].mean(0), face[42:48].mean(0), face[30], face[48], face[54]])
        return template, np.arange(5)
    raise MfrkitError(f"unknown dlib chip template {order!r}; choose ibug68, dlib5 or arcface5")


def _rotate(points: np.ndarray, centre: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    d = points - centre
    return np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], axis=1) + centre


def _rect_down(rect: np.ndarray) -> np.ndarray:
    # pyramid_down<2>::rect_down: each corner p -> p/2 - (1.25, 0.75).
    return rect / 2.0 - np.array([1.25, 0.75, 1.25, 0.75])


def _rect_area(rect: np.ndarray) -> float:
    # drectangle: width = right - left + 1, area 0 when empty.
    w, h = rect[2] - rect[0] + 1, rect[3] - rect[1] + 1
    return 0.0 if rect[2] < rect[0] or rect[3] < rect[1] else float(w * h)


def dlib_pyramid_down(image: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_down<2>`` on an RGB image: 5x5 binomial filter, keep every other pixel.

    Output pixel ``(r, c)`` is centred on input pixel ``(2r + 2, 2c + 2)``; the sums are
    integers divided by 256 with truncation, as dlib does.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8

    Returns
    -------
    ndarray of shape ((H - 3) // 2, (W - 3) // 2, 3), uint8; empty when H or W <= 8.
    """
    h, w = image.shape[:2]
    if h <= 8 or w <= 8:
        return np.zeros((0, 0, 3), np.uint8)
    oh, ow = (h - 3) // 2, (w - 3) // 2
    x = image.astype(np.int32)
    kernel = (1, 4, 6, 4, 1)
    rows = sum(k * x[:, i : i + 2 * ow : 2] for i, k in enumerate(kernel))
    both = sum(k * rows[i : i + 2 * oh : 2] for i, k in enumerate(kernel))
    return (both // 256).astype(np.uint8)


def _bilinear_truncated(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """dlib's ``interpolate_bilinear`` at points (..., 2): zero where the 2x2 neighbourhood
    leaves the image, values truncated to uint8."""
    h, w = image.shape[:2]
    x, y = xy[..., 0], xy[..., 1]
    left, top = np.floor(x), np.floor(y)
    ok = (left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)
    li = np.where(ok, left, 0).astype(np.intp)
    ti = np.where(ok, top, 0).astype(np.intp)
    fx, fy = (x - left)[..., None], (y - top)[..., None]
    img = image.astype(np.float64)
    ri, bi = np.minimum(li + 1, w - 1), np.minimum(ti + 1, h - 1)
    val = (1 - fy) * ((1 - fx) * img[ti, li] + fx * img[ti, ri]) + fy * ((1 - fx) * img[bi, li] + fx * img[bi, ri])
    val = np.clip(val, 0, 255).astype(np.uint8)  # assign_pixel: saturate, then truncate
    val[~ok] = 0
    return val


def dlib_chip(
    image: np.ndarray,
    points: np.ndarray,
    *,
    size: int = 150,
    padding: float = 0.25,
    order: str | None = None,
) -> AlignedFace:
    """Cut dlib's aligned face chip, as ``dlib.get_face_chip(image, shape, size, padding)``.

    This is the crop dlib's face-recognition ResNet expects (``size=150, padding=0.25``,
    metadata ``mfrkit.align = dlib150``).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8 RGB
    points : ndarray of shape (68, 2) or (5, 2)
        Landmarks in ``image`` pixels: iBUG-68, or 5 points in the order named by ``order``.
    size : int
        Side of the square chip, pixels.
    padding : float
        Margin around the mean face, as a fraction of it, on each side.
    order : {"ibug68", "dlib5", "arcface5"} or None
        Which template the points follow (see :func:`dlib_chip_template`). None means
        ``ibug68`` for 68 points and ``dlib5`` (dlib's 5-point predictor order, *not*
        ArcFace's) for 5 points.

    Returns
    -------
    AlignedFace
        ``image`` is the (size, size, 3) uint8 chip; ``matrix`` maps source pixels to chip
        pixels (for chips cut from a pyramid level it is the ideal mapping, which dlib's
        pyramid follows to within a fraction of a pixel).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise MfrkitError(f"dlib_chip needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if isinstance(size, bool) or int(size) != size or size <= 0:
        raise MfrkitError(f"chip size must be a positive integer, got {size!r}")
    if not padding >= 0:
        raise MfrkitError(f"padding must be >= 0, got {padding}")
    size = int(size)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if order is None:
        order = {68: "ibug68", 5: "dlib5"}.get(len(points), "")
    expected = 68 if order == "ibug68" else 5
    template, index = dlib_chip_template(order)
    if len(points) != expected:
        raise MfrkitError(f"the {order} dlib chip needs {expected} landmarks, got {len(points)}")

    # chip_details(chip_points, img_points, dims): similarity fit chip -> image.
    chip_pts = (padding + template) / (2 * padding + 1) * size
    m = similarity_transform(chip_pts, points[index])
    angle = float(np.arctan2(m[1, 0], m[0, 0]))
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    centre = m[:, :2] @ np.array([size / 2.0, size / 2.0]) + m[:, 2]
    half = (size * scale - 1) / 2.0  # centered_drect shrinks the side by one pixel
    rect = np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])

    # extract_image_chips: pyramid depth, then the region of the image it needs.
    area = float(size * size)
    depth, grow, down = 0, 2.0, _rect_down(rect)
    while _rect_area(down) > area:
        down, depth, grow = _rect_down(down), depth + 1, grow * 2 + 2
    rect_centre = np.array([(rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2])
    corners = np.array([[rect[0], rect[1]], [rect[2], rect[1]], [rect[0], rect[3]], [rect[2], rect[3]]])
    rot = _rotate(corners, rect_centre, angle)
    h, w = image.shape[:2]
    box = np.array(
        [
            max(rot[:, 0].min() - grow, 0.0),
            max(rot[:, 1].min() - grow, 0.0),
            min(rot[:, 0].max() + grow, w - 1.0),
            min(rot[:, 1].max() + grow, h - 1.0),
        ]
    )
    box = np.floor(box + 0.5).astype(int)  # drectangle -> rectangle rounds
    chip_to_image = _chip_corners_affine(rect, angle, size)
    matrix = invert_affine(chip_to_image)
    if box[2] < box[0] or box[3] < box[1]:  # the face lies outside the image
        return AlignedFace(image=np.zeros((size, size, 3), np.uint8), matrix=matrix)

    level_img = image[box[1] : box[3] + 1, box[0] : box[2] + 1]
    local = rect - np.array([box[0], box[1], box[0], box[1]], dtype=np.float64)
    for _ in range(depth):
        level_img = dlib_pyramid_down(level_img)
    # dlib picks its level from the rectangle again; with the same test it lands on `depth`.
    for _ in range(depth):
        local = _rect_down(local)
    a = _chip_corners_affine(local, angle, size)
    cc, rr = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    src = np.stack([a[0, 0] * cc + a[0, 1] * rr + a[0, 2], a[1, 0] * cc + a[1, 1] * rr + a[1, 2]], axis=-1)
    return AlignedFace(image=_bilinear_truncated(level_img, src), matrix=matrix)


def _chip_corners_affine(rect: np.ndarray, angle: float, size: int) -> np.ndarray:
    """2x3 map of chip pixels onto ``rect`` rotated by ``angle``: chip corners (0,0),
    (size-1,0), (0,size-1) land on the rotated top-left, top-right, bottom-left corners."""
    centre = np.array([(rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2])
    tl, tr, bl = _rotate(np.array([[rect[0], rect[1]], [rect[2], rect[1]], [rect[0], rect[3]]]), centre, angle)
    n = float(size - 1)
    return np.column_stack([(tr - tl) / n, (bl - tl) / n, tl])
