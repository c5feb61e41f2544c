"""Photo statistics and compositing: noise, blur, lighting."""

import cv2
import numpy as np
import pytest

from mfrkit.maskgen.blend import (
    composite,
    estimate_blur,
    estimate_lighting,
    estimate_noise,
    linear_to_srgb,
    srgb_to_linear,
)


def _scene(size=200):
    """Flat discs and bars: hard edges on a smooth background."""
    img = np.full((size, size), 90, np.float32)
    yy, xx = np.mgrid[:size, :size]
    img += 0.2 * xx
    for k in range(6):
        cv2.circle(img, (30 + 28 * k, 60 + 13 * (k % 3)), 11, 200 - 15 * k, -1)
    img[130:170, 20:180:20] = 30
    return img


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_noise_estimate(sigma):
    rng = np.random.default_rng(0)
    noisy = _scene() + rng.normal(0, sigma, (200, 200))
    assert abs(estimate_noise(noisy) - sigma) < 0.2 * sigma
    assert estimate_noise(_scene()) < 0.5


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.5])
def test_blur_estimate(sigma):
    blurred = cv2.GaussianBlur(_scene(), (0, 0), sigma)
    assert abs(estimate_blur(blurred) - sigma) < 0.35 * sigma
    assert estimate_blur(_scene()) < estimate_blur(cv2.GaussianBlur(_scene(), (0, 0), 1.0))


def test_lighting_recovers_a_side_light():
    # A lit sphere: luminance 0.3 + n . light at every pixel of a disc.
    size, radius = 300, 120.0
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    nx, ny = (xx - 150) / radius, (yy - 150) / radius
    light = np.array([0.15, -0.05, 0.0])  # brighter towards image right and up
    lum = np.where(nx**2 + ny**2 < 1, 0.3 + nx * light[0] + ny * light[1], 0.3)
    image = np.repeat((linear_to_srgb(lum) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    rng = np.random.default_rng(1)
    pts = 150 + rng.uniform(-0.7, 0.7, (200, 2)) * radius
    normals = np.column_stack([(pts - 150) / radius, -np.sqrt(1 - (((pts - 150) / radius) ** 2).sum(1))])
    fit = estimate_lighting(image, pts, normals, (0, 0, size, size))
    assert np.allclose(fit.direction[:2], light[:2], atol=0.03)
    assert fit.irradiance(np.array([0.5, 0.0, -0.87])) > fit.irradiance(np.array([-0.5, 0.0, -0.87]))
    assert fit.saturation == 0.0  # a grey image


def test_composite_leaves_uncovered_pixels_untouched():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    alpha = np.zeros((20, 30), np.float32)
    alpha[5:15, 5:25] = 1.0
    color = np.zeros((20, 30, 3), np.float32) + alpha[..., None] * 0.5
    out, cover = composite(image, color, alpha, blur=0.5, noise=0.0, rng=rng, origin=(10, 20))
    untouched = np.ones((60, 80), bool)
    untouched[20:40, 10:40] = cover <= 0
    np.testing.assert_array_equal(out[untouched], image[untouched])
    # Fully covered pixels take the layer's colour (linear 0.5 = sRGB 188).
    assert abs(int(out[30, 25, 0]) - 188) <= 1


def test_srgb_round_trip():
    x = np.linspace(0, 1, 256, dtype=np.float32)
    # linear -> sRGB is a table lookup: within a tenth of an 8-bit level.
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=0.1 / 255)
