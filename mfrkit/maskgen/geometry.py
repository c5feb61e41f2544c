"""Small geometric helpers shared by the renderers: 3D similarity fits, barycentric
weights of points in a triangulation, and a triangle-index rasteriser.

Coordinates follow the image convention: ``x`` right, ``y`` down, ``z`` away from the
camera (mediapipe's depth sign: smaller is nearer), all in pixels of one frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..align import umeyama
from ..errors import MfrkitError


@dataclass(frozen=True)
class Similarity3D:
    """``y = scale * rotation @ x + translation``.

    Attributes
    ----------
    scale : float
    rotation : ndarray of shape (3, 3), a proper rotation (det +1)
    translation : ndarray of shape (3,)
    """

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map points of shape (..., 3)."""
        return self.scale * np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation


def similarity_3d(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> Similarity3D:
    """Weighted least-squares similarity (:func:`mfrkit.align.umeyama`) taking ``src`` onto ``dst``.

    Parameters
    ----------
    src, dst : ndarray of shape (N, 3), N >= 3
    weights : ndarray of shape (N,), optional, non-negative

    Returns
    -------
    Similarity3D minimising ``sum w_i ||s R src_i + t - dst_i||^2`` with ``det R = +1``.
    """
    if np.shape(src)[-1:] != (3,):
        raise MfrkitError(f"need two (N, 3) point arrays with N >= 3, got {np.shape(src)} and {np.shape(dst)}")
    scale, rot, shift = umeyama(src, dst, weights)
    return Similarity3D(scale=scale, rotation=rot, translation=shift)


def barycentric_weights(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interpolation weights of 2D ``points`` in a triangulation.

    Each point gets the barycentric weights of the triangle that contains it; a point
    outside every triangle gets those of the nearest triangle (extrapolated, so the
    weights still sum to one but may be negative).

    Parameters
    ----------
    points : ndarray of shape (P, 2)
    vertices : ndarray of shape (V, 2+)
    triangles : ndarray of shape (T, 3), int

    Returns
    -------
    index : ndarray of shape (P, 3), int
        The three vertices each point is interpolated from.
    weight : ndarray of shape (P, 3), float64
        Their weights, summing to 1 per row; ``values[index] * weight`` summed over
        the last axis interpolates per-vertex values.
    """
    points = np.asarray(points, dtype=np.float64)
    v = np.asarray(vertices, dtype=np.float64)[:, :2]
    tri = np.asarray(triangles)
    a, b, c = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]
    det = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    index = np.empty((len(points), 3), dtype=np.int64)
    weight = np.empty((len(points), 3))

    def lam_of(k: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Barycentric coordinates (..., 3) of points ``(px, py)`` in triangles ``k``
        (broadcast together)."""
        l1 = ((b[k, 1] - c[k, 1]) * (px - c[k, 0]) + (c[k, 0] - b[k, 0]) * (py - c[k, 1])) / det[k]
        l2 = ((c[k, 1] - a[k, 1]) * (px - c[k, 0]) + (a[k, 0] - c[k, 0]) * (py - c[k, 1])) / det[k]
        return np.stack([l1, l2, 1.0 - l1 - l2], -1)

    # A point inside a triangle lies in its bounding box: the coordinates are worked
    # out only for the triangles whose box (a hair wider) holds the point, the same
    # arithmetic, so the same bits, as over every triangle. Points in no triangle (the
    # best candidate is outside) are redone against all of them below.
    lo = np.minimum(np.minimum(a, b), c) - 1e-6
    hi = np.maximum(np.maximum(a, b), c) + 1e-6
    pending = []
    for start in range(0, len(points), 512):
        p = points[start : start + 512]
        px, py = p[:, None, 0], p[:, None, 1]
        near = (px >= lo[:, 0]) & (px <= hi[:, 0]) & (py >= lo[:, 1]) & (py <= hi[:, 1])
        row, k = np.nonzero(near)  # row-major: each point's candidates in triangle order
        lam = lam_of(k, p[row, 0], p[row, 1])
        score = lam.min(-1)
        # Per point, the candidate with the largest smallest coordinate, the first in
        # triangle order on a tie (as np.argmax over all triangles picks).
        order = np.lexsort((k, -score, row))
        first = np.ones(len(order), bool)
        first[1:] = row[order][1:] != row[order][:-1]
        pick = order[first]
        found = np.zeros(len(p), bool)
        ok = pick[score[pick] >= 0]
        found[row[ok]] = True
        index[start + row[ok]] = tri[k[ok]]
        weight[start + row[ok]] = lam[ok]
        pending.extend((start + np.flatnonzero(~found)).tolist())
    # Inside none: the least-outside triangle of all, as before.
    for start in range(0, len(pending), 512):
        sel = np.asarray(pending[start : start + 512], dtype=np.int64)
        p = points[sel]
        lam = lam_of(np.arange(len(tri))[None, :], p[:, None, 0], p[:, None, 1])
        best = np.argmax(lam.min(-1), axis=1)
        index[sel] = tri[best]
        weight[sel] = lam[np.arange(len(sel)), best]
    return index, weight


def rasterize_triangles(
    triangles_xy: np.ndarray, order: np.ndarray, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Rasterise triangles into an index image, drawing them in ``order`` (later wins).

    A pixel belongs to a triangle when its centre lies inside it or on its edge
    (within a hair, so neighbours leave no gaps). Small triangles, the usual case, are
    rasterised all at once: every pixel of each triangle's bounding box is tested in
    one vectorised pass and the last triangle in ``order`` wins each pixel. Large ones
    fall back to OpenCV's polygon fill, one call per triangle.

    Parameters
    ----------
    triangles_xy : ndarray of shape (T, 3, 2)
        Triangle corners, pixels of the full image.
    order : ndarray of shape (K,), int
        Indices of the triangles to draw, back to front.
    shape : (height, width)
        Size of the raster.
    origin : (x0, y0)
        Full-image pixel of the raster's top-left corner.

    Returns
    -------
    ndarray of shape ``shape``, int32: the drawn triangle's index, or -1.
    """
    raster = np.full(shape, -1, dtype=np.int32)
    order = np.asarray(order, dtype=np.int64)
    if len(order) == 0:
        return raster
    tri = np.asarray(triangles_xy, dtype=np.float64)[order] - np.asarray(origin, dtype=np.float64)
    lo = np.floor(np.minimum(np.minimum(tri[:, 0], tri[:, 1]), tri[:, 2]))
    span = int((np.ceil(np.maximum(np.maximum(tri[:, 0], tri[:, 1]), tri[:, 2])) - lo).max()) + 1
    if span > 24:
        fixed = np.round(tri * 16.0).astype(np.int32)
        for t, corners in zip(order.tolist(), fixed):
            cv2.fillConvexPoly(raster, corners, int(t), lineType=cv2.LINE_8, shift=4)
        return raster
    # Candidate pixels: a span x span box from each triangle's corner. Corners are taken
    # relative to that corner, so the numbers stay small and float32 is exact enough.
    rel = tri - lo[:, None, :]
    a, b, c = rel[:, 0], rel[:, 1], rel[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    sign = np.where(area >= 0, 1.0, -1.0)
    offs = np.arange(span, dtype=np.float32)
    inside = None
    for p, q in ((a, b), (b, c), (c, a)):
        # Edge (p, q) at pixel (X, Y): (qx - px)(Y - py) - (qy - py)(X - px) = A Y + (C - B X),
        # signed so that the inside is >= 0 whatever the winding, and given a hair of
        # slack so that neighbours sharing the edge leave no gaps.
        ea = (q[:, 0] - p[:, 0]) * sign
        eb = (q[:, 1] - p[:, 1]) * sign
        ec = eb * p[:, 0] - ea * p[:, 1] + 1e-6 * np.abs(area)
        row = ea.astype(np.float32)[:, None, None] * offs[None, :, None]  # (K, S, 1)
        col = (ec[:, None] - eb[:, None] * offs[None, :]).astype(np.float32)[:, None, :]  # (K, 1, S)
        e = row + col
        inside = e if inside is None else np.minimum(inside, e, out=inside)
    k, yy, xx = np.nonzero(inside >= 0)
    corner = lo.astype(np.int64)
    ys = corner[k, 1] + yy
    xs = corner[k, 0] + xx
    keep = (xs >= 0) & (xs < shape[1]) & (ys >= 0) & (ys < shape[0])
    k, flat = k[keep], ys[keep] * shape[1] + xs[keep]
    # Later triangles win: each pixel takes the highest drawing rank among its candidates.
    rank = np.full(shape[0] * shape[1], -1, dtype=np.int64)
    np.maximum.at(rank, flat, k)
    hit = rank >= 0
    raster.ravel()[hit] = order[rank[hit]].astype(np.int32)
    return raster


def affine_from_triangles(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Per-triangle affine maps taking ``src`` corners onto ``dst`` corners.

    Parameters
    ----------
    src, dst : ndarray of shape (T, 3, 2)

    Returns
    -------
    ndarray of shape (T, 2, 3): ``dst = A[:, :, :2] @ src + A[:, :, 2]``. Degenerate
    source triangles get a zero linear part.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    # Edge matrices: columns are the two edges from corner 0.
    ps = np.stack([src[:, 1] - src[:, 0], src[:, 2] - src[:, 0]], -1)  # (T, 2, 2)
    qs = np.stack([dst[:, 1] - dst[:, 0], dst[:, 2] - dst[:, 0]], -1)
    det = ps[:, 0, 0] * ps[:, 1, 1] - ps[:, 0, 1] * ps[:, 1, 0]
    safe = np.where(np.abs(det) < 1e-12, np.inf, det)
    inv = np.empty_like(ps)
    inv[:, 0, 0], inv[:, 1, 1] = ps[:, 1, 1] / safe, ps[:, 0, 0] / safe
    inv[:, 0, 1], inv[:, 1, 0] = -ps[:, 0, 1] / safe, -ps[:, 1, 0] / safe
    lin = qs @ inv
    out = np.empty((len(src), 2, 3))
    out[:, :, :2] = lin
    out[:, :, 2] = dst[:, 0] - (lin @ src[:, 0, :, None])[..., 0]
    return out


def invert_grid(grid_xy: np.ndarray, active: np.ndarray, shape: tuple[int, int], origin: tuple[int, int] = (0, 0),
                iterations: int = 4, tolerance: float = 0.35, step: int = 3) -> tuple[np.ndarray, np.ndarray] | None:
    """Where each pixel of a box lies on a regular grid mapped into the image without
    folds: the inverse of the map, instead of testing pixels against triangles.

    The inverse is solved at every ``step``-th pixel (fixed-point iterations on the
    bilinear interpolation of the vertex positions, preconditioned by the affine map of
    the active cells on average: a smooth, fold-free map converges in a few
    iterations) and interpolated bilinearly in between: the map is smooth within a
    cell of the grid (several pixels wide), so the interpolation is good to a small
    fraction of a pixel, at a ninth of the work.

    Parameters
    ----------
    grid_xy : ndarray of shape (rows, cols, 2)
        Image position of each grid vertex, pixels. The active cells must keep their
        orientation (no fold): the caller checks the signed areas.
    active : ndarray of shape (rows - 1, cols - 1), bool
        Cells that are drawn.
    shape : (height, width)
        Size of the box.
    origin : (x0, y0)
        Full-image pixel of the box's top-left corner.
    iterations : int
    tolerance : float
        Pixels: the largest residual allowed on a drawn sample.
    step : int
        Pixels between the samples the inverse is solved at (1: every pixel).

    Returns
    -------
    (grid, drawn) : ndarray of shape (h, w, 2) float32 (column, row on the grid) and of
    shape (h, w) bool (in an active cell); or None when the iterations did not converge
    (the map is too far from affine: rasterise the triangles instead).
    """
    rows, cols = grid_xy.shape[:2]
    h, w = shape
    count = int(np.count_nonzero(active))
    if not count or h <= 0 or w <= 0:
        return np.zeros((max(h, 0), max(w, 0), 2), np.float32), np.zeros((max(h, 0), max(w, 0)), bool)
    # The affine map (c, r) -> (x, y) of the active cells on average: their mean edge
    # vectors, through their corners' centroid (small closed forms: no LAPACK call).
    xy = np.ascontiguousarray(grid_xy, dtype=np.float32)
    weight = active.astype(np.float32)
    n = float(count)
    across = xy[:, 1:] - xy[:, :-1]  # (rows, cols - 1, 2)
    down = xy[1:] - xy[:-1]  # (rows - 1, cols, 2)
    corners = xy[:-1, :-1] + xy[:-1, 1:] + xy[1:, :-1] + xy[1:, 1:]
    du = np.einsum("rc,rck->k", weight, across[:-1] + across[1:], dtype=np.float64) / (2.0 * n)
    dv = np.einsum("rc,rck->k", weight, down[:, :-1] + down[:, 1:], dtype=np.float64) / (2.0 * n)
    centre_xy = np.einsum("rc,rck->k", weight, corners, dtype=np.float64) / (4.0 * n)
    # The cells' mean (column, row): whole-number sums, so exact whichever way summed.
    per_col, per_row = active.sum(0), active.sum(1)
    centre_cr = np.array([float(per_col @ np.arange(cols - 1)), float(per_row @ np.arange(rows - 1))]) / n + 0.5
    det = du[0] * dv[1] - dv[0] * du[1]
    if abs(det) < 1e-9:
        return None
    inv = (np.array([[dv[1], -dv[0]], [-du[1], du[0]]]) / det).astype(np.float32)  # (x, y) -> (c, r), linear part
    offset = centre_xy - np.array([du, dv]).T @ centre_cr
    step = max(1, int(step))
    # With step > 1, samples start a step before the box and end a step or more past
    # it (every pixel lies between four of them), offset by (step - 1) / 2 so that
    # cv2.resize by ``step`` puts pixel x + step of its output exactly on pixel x.
    if step > 1:
        hs, ws = -(-h // step) + 2, -(-w // step) + 2
        first = -step + (step - 1) / 2.0
    else:
        hs, ws, first = h, w, 0.0
    # Sample pixel positions relative to the affine map's offset, then (c, r) by it.
    sx = (np.arange(ws) * step + (first + origin[0] - offset[0])).astype(np.float32)
    sy = (np.arange(hs) * step + (first + origin[1] - offset[1])).astype(np.float32)
    rel = np.empty((hs, ws, 2), np.float32)
    rel[..., 0] = sx[None, :]
    rel[..., 1] = sy[:, None]
    g = cv2.transform(rel, inv)  # (hs, ws, 2): (c, r)
    target = rel + offset.astype(np.float32)
    for _ in range(iterations):
        f = cv2.remap(xy, g, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        g += cv2.transform(target - f, inv)
    # Activity of each sample's cell (0 outside the grid), nearest cell.
    cells = np.zeros((rows + 1, cols + 1), np.uint8)
    cells[1:rows, 1:cols] = active

    def drawn_at(at: np.ndarray) -> np.ndarray:
        return cv2.remap(cells, at + np.float32(0.5), None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0

    drawn = drawn_at(g)
    if drawn.any():
        f = cv2.remap(xy, g, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        miss = cv2.absdiff(f, target)
        if cv2.minMaxLoc(np.maximum(miss[..., 0], miss[..., 1]), drawn.view(np.uint8))[1] > tolerance:
            return None
    if step > 1:
        g = np.ascontiguousarray(cv2.resize(g, (ws * step, hs * step), interpolation=cv2.INTER_LINEAR)[step : step + h, step : step + w])
        drawn = drawn_at(g)
    return g, drawn
