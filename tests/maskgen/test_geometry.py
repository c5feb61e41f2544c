"""Geometric helpers: 3D similarity, barycentric weights, per-triangle affines, the rasteriser."""

import numpy as np

from mfrkit.maskgen.geometry import (
    affine_from_triangles,
    barycentric_weights,
    rasterize_triangles,
    similarity_3d,
)


def _rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_similarity_3d_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(40, 3))
    rot, scale, shift = _rotation(rng), 2.5, np.array([3.0, -1.0, 7.0])
    fit = similarity_3d(src, scale * src @ rot.T + shift)
    np.testing.assert_allclose(fit.rotation, rot, atol=1e-9)
    assert abs(fit.scale - scale) < 1e-9
    np.testing.assert_allclose(fit.translation, shift, atol=1e-9)
    np.testing.assert_allclose(fit.apply(src[:3]), scale * src[:3] @ rot.T + shift, atol=1e-9)


def test_barycentric_weights_reproduce_points_inside_and_outside():
    rng = np.random.default_rng(1)
    vertices = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [5, 5]], float)
    triangles = np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
    points = np.vstack([rng.uniform(0, 10, (50, 2)), [[15.0, 5.0], [-3.0, 12.0]]])
    index, weight = barycentric_weights(points, vertices, triangles)
    np.testing.assert_allclose(weight.sum(1), 1.0)
    # Linear functions are interpolated exactly, inside (and extrapolated outside).
    np.testing.assert_allclose((vertices[index] * weight[..., None]).sum(1), points, atol=1e-9)
    inside = weight[:50]
    assert (inside >= -1e-9).all()


def test_affine_from_triangles_maps_corners():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 50, (20, 3, 2))
    dst = rng.uniform(0, 50, (20, 3, 2))
    a = affine_from_triangles(src, dst)
    mapped = src @ np.transpose(a[:, :, :2], (0, 2, 1)) + a[:, None, :, 2]
    np.testing.assert_allclose(mapped, dst, atol=1e-8)


def test_rasterizer_draws_later_triangles_over_earlier_ones():
    tris = np.array([[[0, 0], [20, 0], [0, 20]], [[5, 5], [15, 5], [5, 15]]], float)
    raster = rasterize_triangles(tris, np.array([0, 1]), (25, 25))
    assert raster[2, 2] == 0 and raster[7, 7] == 1 and raster[22, 22] == -1
    raster = rasterize_triangles(tris, np.array([1, 0]), (25, 25))
    assert raster[7, 7] == 0
    # Origin: the raster starts at full-image pixel (5, 5).
    raster = rasterize_triangles(tris, np.array([1]), (12, 12), origin=(5, 5))
    assert raster[0, 0] == 1 and raster[11, 11] == -1


def test_rasterized_mesh_leaves_no_gaps_and_matches_the_fill_fallback():
    # A jittered grid of small triangles covering [10, 50]^2: every pixel inside is drawn.
    rng = np.random.default_rng(3)
    n = 11
    gx, gy = np.meshgrid(np.linspace(10, 50, n), np.linspace(10, 50, n))
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    inner = (gx.ravel() > 10) & (gx.ravel() < 50) & (gy.ravel() > 10) & (gy.ravel() < 50)
    pts[inner] += rng.uniform(-1.2, 1.2, (inner.sum(), 2))
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    tris = pts[np.vstack([np.column_stack([a, b, d]), np.column_stack([a, d, c])])]
    order = np.arange(len(tris))
    raster = rasterize_triangles(tris, order, (60, 60))
    assert (raster[11:50, 11:50] >= 0).all()
    assert (raster[:9] == -1).all() and (raster[52:] == -1).all()
    # Each pixel lies in the triangle it was given (the barycentric test).
    ys, xs = np.nonzero(raster >= 0)
    t = tris[raster[ys, xs]]
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    l1 = ((xs - t[:, 0, 0]) * e2[:, 1] - (ys - t[:, 0, 1]) * e2[:, 0]) / det
    l2 = ((ys - t[:, 0, 1]) * e1[:, 0] - (xs - t[:, 0, 0]) * e1[:, 1]) / det
    assert (l1 >= -1e-6).all() and (l2 >= -1e-6).all() and (l1 + l2 <= 1 + 1e-6).all()
    # Triangles too big for the vectorised pass take the polygon-fill path: no gaps either.
    big = rasterize_triangles(tris * 8, order, (480, 480))
    assert (big[81:400, 81:400] >= 0).all() and (big[:70] == -1).all()
