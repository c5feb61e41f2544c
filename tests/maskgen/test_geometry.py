"""Geometric helpers: 3D similarity, barycentric weights, per-triangle affines, the rasteriser."""

import numpy as np

from mfrkit.maskgen.geometry import affine_from_triangles, barycentric_weights, rasterize_triangles, similarity_3d


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
