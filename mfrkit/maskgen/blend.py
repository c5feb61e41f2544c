"""Making a drawn mask look photographed: lighting from the face, blur and noise
matched to the photo, feathered compositing.

* **Lighting.** The skin's luminance at points spread over the face is regressed on the
  face surface normals there (a first-order spherical-harmonic model,
  ``L = a + b . n``), robustly, so a side-lit face gives a side-lit mask. The mask is
  lit with that model at *its own* normals (taut fabric, pleats, cartridges), scaled
  so white fabric is as bright as the photo's whites near the face, and multiplied by
  the face's own low-frequency deviation from the model (cast shadows).
* **Blur and noise.** The photo's blur is estimated from how much a known extra blur
  removes gradient energy; its noise from the median absolute Laplacian. The mask
  gets the same.
* **Compositing.** Premultiplied alpha, feathered by half a pixel plus the photo's blur,
  in linear light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .pixels import channels, scale

# sRGB <-> linear light.
_LUT_LINEAR = np.where(
    (np.arange(256) / 255.0) <= 0.04045,
    (np.arange(256) / 255.0) / 12.92,
    (((np.arange(256) / 255.0) + 0.055) / 1.055) ** 2.4,
).astype(np.float32)
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
# The same tables shaped for cv2.LUT, which maps uint8 pixels several times faster
# than numpy's fancy indexing.
_CV_LINEAR = _LUT_LINEAR.reshape(1, 256)
_CV_LUMA = np.ascontiguousarray((_LUT_LINEAR[:, None] * _LUMA[None, :]).reshape(1, 256, 3))
_ONES = np.ones((1, 3), np.float32)

#: The least blur (sigma, pixels) the composite adds to a layer, whatever the photo's
#: own: an edge a camera took is never a texel-sharp step. 0.55 (0.45 before drawing version 3) puts
#: the pooled boundary-gradient ratio of ``benchmarks/synth.py --quality 400`` at 1.66
#: (was 1.71, over the 1.30-1.70 band; MaskTheFace's pasted masks measure 2.71).
MIN_EDGE_BLUR = 0.55


def to_linear(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB (any shape) to float32 linear light in 0-1."""
    image = np.asarray(image)
    if image.dtype == np.uint8 and image.ndim <= 3 and image.size and (image.ndim < 3 or image.shape[2] <= 4):
        return cv2.LUT(np.ascontiguousarray(image), _CV_LINEAR)
    return _LUT_LINEAR[image]


def _srgb_to_linear_exact(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


# sRGB -> linear through a 4k-entry table: the curve's steepest step (at white) is
# then under 3e-4, a fifteenth of an 8-bit level.
_LUT_TO_LINEAR_SIZE = 4096
_LUT_TO_LINEAR = _srgb_to_linear_exact(np.arange(_LUT_TO_LINEAR_SIZE + 1, dtype=np.float64) / _LUT_TO_LINEAR_SIZE)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """float sRGB in 0-1 to linear light (table lookup, error < 3e-4)."""
    x = np.asarray(x, dtype=np.float32)
    idx = (np.clip(x, 0.0, 1.0) * np.float32(_LUT_TO_LINEAR_SIZE) + np.float32(0.5)).astype(np.int32)
    return _LUT_TO_LINEAR[idx]


def _srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


# linear -> sRGB through a 16k-entry table: the curve's steepest step (at black) is
# then under a tenth of an 8-bit level.
_LUT_SRGB_SIZE = 16384
_LUT_SRGB = _srgb(np.arange(_LUT_SRGB_SIZE + 1, dtype=np.float64) / _LUT_SRGB_SIZE).astype(np.float32)
_LUT_SRGB_255 = (_LUT_SRGB * 255.0).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """float linear light to float sRGB in 0-1 (table lookup, error < 1e-3)."""
    idx = (np.clip(x, 0.0, 1.0) * _LUT_SRGB_SIZE + 0.5).astype(np.int32)
    return _LUT_SRGB[idx]


def luminance(linear_rgb: np.ndarray) -> np.ndarray:
    """Relative luminance of linear RGB (..., 3)."""
    x = np.asarray(linear_rgb)
    # Three multiply-adds beat a matrix product with a length-3 inner axis.
    return x[..., 0] * _LUMA[0] + x[..., 1] * _LUMA[1] + x[..., 2] * _LUMA[2]


_LUT_LUMA = _LUT_LINEAR[None, :] * _LUMA[:, None]  # (3, 256): channel -> its luminance share


def luminance_u8(image: np.ndarray) -> np.ndarray:
    """Linear relative luminance of a uint8 sRGB image (..., 3), by table lookup."""
    image = np.asarray(image)
    if image.ndim == 3 and image.size:
        h, w = image.shape[:2]
        return cv2.transform(cv2.LUT(np.ascontiguousarray(image), _CV_LUMA), _ONES).reshape(h, w)
    return _LUT_LUMA[0][image[..., 0]] + _LUT_LUMA[1][image[..., 1]] + _LUT_LUMA[2][image[..., 2]]


# Standard normal quantiles of the 256 byte values: random bytes through this table
# are Gaussian noise (unit variance, tails cut at 2.9 sigma) at a twentieth of the cost
# of numpy's normal sampler. Grain and fabric mottling need the variance and the
# independence, not the far tails.
def _normal_table() -> np.ndarray:
    from statistics import NormalDist

    q = np.array([NormalDist().inv_cdf((k + 0.5) / 256.0) for k in range(256)])
    return (q / q.std()).astype(np.float32).reshape(1, 256)


_NORMAL_BYTES = _normal_table()


def normal_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance Gaussian noise of ``shape`` ((h, w) or (h, w, c) with c <= 4),
    float32, from ``rng``'s random bytes (see ``_NORMAL_BYTES``)."""
    n = int(np.prod(shape))
    if n == 0:
        return np.zeros(shape, np.float32)
    raw = np.frombuffer(rng.bytes(n), dtype=np.uint8).reshape(shape)
    return cv2.LUT(raw, _NORMAL_BYTES)


# --- photo statistics -----------------------------------------------------------------------------------


def estimate_noise(gray: np.ndarray) -> float:
    """Standard deviation of additive noise in a grey image (0-255), robust to edges.

    The 3x3 Laplacian-difference kernel of Immerkaer (1996) cancels smooth image
    structure; for white noise of std ``s`` its response has std ``6 s``. The median
    absolute response (over a Gaussian: 0.6745 std) ignores the few edge pixels.
    """
    g = np.asarray(gray, dtype=np.float32)
    if min(g.shape) < 3:
        return 0.0
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    r = cv2.filter2D(g, -1, kernel, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    # Every other row and column: a quarter of the responses hold the median to a few
    # percent (the estimate's own spread is larger), at a quarter of the sort.
    if r.size > 4096:
        r = r[::2, ::2]
    return median(np.abs(r)) / (0.6745 * 6.0)


def median(values: np.ndarray) -> float:
    """The median of an array of finite values, as ``np.median`` defines it (the mean of
    the two middle values for an even count, here in float64), without its copies and
    checks."""
    x = np.asarray(values).ravel()
    n = x.size
    if n == 0:
        return float("nan")
    k = n // 2
    if n % 2:
        return float(np.partition(x, k)[k])
    part = np.partition(x, [k - 1, k])
    return 0.5 * (float(part[k - 1]) + float(part[k]))


def estimate_blur(gray: np.ndarray) -> float:
    """Gaussian blur (sigma, pixels) of a grey image, from its edges.

    For a step edge blurred by ``b``, squared-gradient energy falls as ``1 / b``; an
    extra blur of 1 px turns it into ``1 / sqrt(b^2 + 1)``. The ratio ``r`` of the two
    energies therefore gives ``b = r / sqrt(1 - r^2)``. Clipped to 0.3-4 px.
    """
    g = np.asarray(gray, dtype=np.float32)
    if min(g.shape) < 8:
        return 0.5

    def energy(x: np.ndarray) -> float:
        # The central differences of a 1-tap Sobel (x[i+1] - x[i-1], exactly its float32
        # values) away from the border, by slicing: no filter pass over the whole crop.
        gx = x[2:-2, 3:-1] - x[2:-2, 1:-3]
        gy = x[3:-1, 2:-2] - x[1:-3, 2:-2]
        return (cv2.norm(gx, cv2.NORM_L2SQR) + cv2.norm(gy, cv2.NORM_L2SQR)) / gx.size

    e0 = energy(g)
    if e0 < 1e-6:
        return 0.5
    e1 = energy(cv2.GaussianBlur(g, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT))
    r = min(e1 / e0, 0.998)
    return float(min(max(r / math.sqrt(1.0 - r * r), 0.3), 4.0))  # np.clip's, without its overhead on a scalar


@dataclass(frozen=True)
class Lighting:
    """Skin luminance model ``L(n) = ambient + direction . n`` (linear light) and the
    photo's white level near the face.

    Attributes
    ----------
    ambient : float
    direction : ndarray of shape (3,)
        Camera frame (x right, y down, z away); normals point towards the camera.
    skin : float
        Median skin luminance.
    white : float
        Luminance that white fabric takes under the average skin lighting.
    tint : ndarray of shape (3,)
        Light colour, luminance-normalised.
    saturation : float
        0-1: how colourful the photo is near the face (0 for a greyscale photo);
        the mask's colour is scaled by it.
    """

    ambient: float
    direction: np.ndarray
    skin: float
    white: float
    tint: np.ndarray
    saturation: float = 1.0

    def irradiance(self, normals: np.ndarray) -> np.ndarray:
        """Relative irradiance at camera-frame ``normals`` (..., 3): 1 is the skin's median."""
        lum = self.ambient + normals @ self.direction
        return np.clip(lum, 0.12 * self.skin, None) / self.skin

    def record(self) -> dict:
        d = self.direction
        return {
            "light_ambient": round(float(self.ambient), 4),
            "light_direction": [round(float(x), 4) for x in d],
            "skin_luminance": round(float(self.skin), 4),
            "white_level": round(float(self.white), 4),
            "saturation": round(float(self.saturation), 3),
        }


def _box(face_box: tuple[int, int, int, int], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    x0, y0, x1, y1 = (int(v) for v in face_box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0, 0, w, h
    return x0, y0, x1, y1


def smooth_luminance(image: np.ndarray, face_box: tuple[int, int, int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Low-pass linear luminance of the face box of a uint8 sRGB image.

    Returns the smoothed crop and its top-left corner ``(x0, y0)`` in the image. The
    blur (a sixtieth of the box width) keeps shading and drops texture (pores, stubble).
    """
    x0, y0, x1, y1 = _box(face_box, image.shape)
    lum = luminance_u8(image[y0:y1, x0:x1])
    return cv2.GaussianBlur(lum, (0, 0), max(1.0, (x1 - x0) / 60.0)), (x0, y0)


def sample_at(smooth: np.ndarray, origin: tuple[int, int], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``smooth`` (h, w), whose top-left pixel is image pixel ``origin``, at
    image ``points`` (P, 2) (nearest pixel), and which points fall inside it: two (P,)
    arrays."""
    h, w = smooth.shape
    x = points[:, 0] - origin[0]
    y = points[:, 1] - origin[1]
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    xi = np.minimum(np.maximum(np.round(x).astype(int), 0), w - 1)  # np.clip, without its wrapper's cost
    yi = np.minimum(np.maximum(np.round(y).astype(int), 0), h - 1)
    return smooth[yi, xi], inside


def estimate_lighting(image: np.ndarray, points: np.ndarray, normals: np.ndarray, face_box: tuple[int, int, int, int],
                      smooth: tuple[np.ndarray, tuple[int, int]] | None = None) -> Lighting:
    """Fit the skin lighting model to sample points.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8 sRGB
    points : ndarray of shape (P, 2)
        Skin sample points, pixels.
    normals : ndarray of shape (P, 3)
        Face normals there, camera frame, unit length.
    face_box : (x0, y0, x1, y1)
        The face and its surroundings: its highlights set the white level, its colours
        the light's tint and the photo's colourfulness.
    smooth : (ndarray, (x0, y0)), optional
        :func:`smooth_luminance` of ``image`` and ``face_box``, when the caller has it.
    """
    smooth, origin = smooth if smooth is not None else smooth_luminance(image, face_box)
    values, inside = sample_at(smooth, origin, points)
    visible = inside & (normals[:, 2] < -0.2)
    skin = median(values[visible]) if visible.sum() >= 8 else median(smooth)
    skin = max(skin, 1e-3)
    ambient, direction = skin, np.zeros(3)
    if visible.sum() >= 12:
        design = np.column_stack([np.ones(int(visible.sum())), normals[visible]])
        y = values[visible].astype(np.float64)
        keep = np.ones(len(y), dtype=bool)
        coef = np.zeros(4)
        ridge = np.diag([0.0, 1.0, 1.0, 1.0]) * 0.5
        # Rounds of trimming: eyebrows, beard, glasses and hair are outliers.
        for _ in range(3):
            # A small ridge keeps the direction sane when the normals barely vary.
            d = design[keep]
            coef = np.linalg.solve(d.T @ d + ridge, d.T @ y[keep])
            resid = y - design @ coef
            mad = median(np.abs(resid[keep])) + 1e-6
            keep = np.abs(resid) < 2.5 * 1.4826 * mad
        ambient, direction = float(coef[0]), coef[1:]
    x0, y0, x1, y1 = _box(face_box, image.shape)
    # Every other pixel is plenty for statistics of the whole box.
    crop = np.ascontiguousarray(image[y0:y1:2, x0:x1:2])
    lin = to_linear(crop)
    lum = luminance_u8(crop).ravel()
    k = int(0.98 * (len(lum) - 1))
    white = float(np.partition(lum, k)[k])
    white = min(max(white, 1.5 * skin), 6.0 * skin, 1.0)
    mean_rgb = np.array(cv2.mean(lin)[:3]) + 1e-4
    tint = (mean_rgb / luminance(mean_rgb)) ** 0.25
    tint = (tint / luminance(tint)).astype(np.float32)
    # Colourfulness: mean channel spread (sRGB levels); skin in a colour photo spreads
    # 30-60 levels, a greyscale photo none.
    # (HSV's value is the largest channel, its saturation the spread over it.)
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    spread = float(cv2.mean(cv2.multiply(hsv[..., 2], hsv[..., 1], scale=1.0 / 255.0, dtype=cv2.CV_32F))[0])
    saturation = min(max(spread / 20.0, 0.0), 1.0)
    return Lighting(ambient=ambient, direction=np.asarray(direction, dtype=np.float64), skin=skin, white=white, tint=tint, saturation=saturation)


def shade(
    albedo_srgb: np.ndarray,
    normals: np.ndarray,
    gloss: np.ndarray,
    lighting: Lighting,
    local: np.ndarray | float = 1.0,
    view: np.ndarray | None = None,
) -> np.ndarray:
    """Light a mask.

    Parameters
    ----------
    albedo_srgb : ndarray of shape (h, w, 3), sRGB 0-1
    normals : ndarray of shape (h, w, 3)
        Camera frame, unit, towards the camera.
    gloss : ndarray of shape (h, w) or None
        Specular strength (None: matte).
    lighting : Lighting
    local : ndarray of shape (h, w) or float
        Low-frequency shading of the face itself relative to the model.
    view : ndarray of shape (3,), optional
        Towards the viewer, in the frame of ``normals`` and ``lighting.direction``
        (default the camera's ``(0, 0, -1)``; renderers light cached canonical normals
        with the light and the view turned into the canonical frame).

    Returns
    -------
    ndarray of shape (h, w, 3), linear light.
    """
    # To linear light through the 8-bit table (the albedo is a flat colour and fabric
    # noise: 8 bits hold it), saturating what lies outside 0-1.
    albedo = cv2.LUT(cv2.convertScaleAbs(np.asarray(albedo_srgb, dtype=np.float32), alpha=255.0), _CV_LINEAR)
    # The light's tint per channel and, on a greyscale photo, the desaturation towards
    # the albedo's luminance: one 3x3 colour matrix.
    colour = np.diag(np.asarray(lighting.tint, np.float64))
    if lighting.saturation < 1.0:
        sat = float(lighting.saturation)
        colour = colour @ (sat * np.eye(3) + (1.0 - sat) * np.outer(np.ones(3), _LUMA))
    normals = np.asarray(normals, dtype=np.float32)
    d = np.asarray(lighting.direction, dtype=np.float64)
    # n . d per texel: cv2.transform does the length-3 dot products in one pass.
    hw = normals.shape[:2]
    lum = cv2.transform(normals, d.reshape(1, 3).astype(np.float32)).reshape(hw) + np.float32(lighting.ambient)
    e = np.maximum(lum, np.float32(0.12 * lighting.skin)) * np.float32(lighting.white / lighting.skin)
    e = e * local
    diffuse = scale(cv2.transform(albedo, colour.astype(np.float32)), e.astype(np.float32, copy=False))
    norm = float(np.linalg.norm(d))
    if norm > 1e-6 and gloss is not None and np.any(gloss > 0):
        # Blinn-Phong towards the fitted light; the viewer looks along +z.
        light = d / norm  # normals facing this way are brightest: towards the light
        half = light + (np.array([0.0, 0.0, -1.0]) if view is None else np.asarray(view, dtype=np.float64))
        half /= np.linalg.norm(half) + 1e-9
        c = np.clip(cv2.transform(normals, half.reshape(1, 3).astype(np.float32)).reshape(hw), 0.0, 1.0)
        c2 = c * c
        c8 = c2 * c2
        c8 *= c8
        spec = c8 * c8 * c8  # c ** 24
        strength = min(1.0, norm / max(lighting.skin, 1e-3))
        diffuse += channels((gloss * spec * np.float32(lighting.white * strength)).astype(np.float32, copy=False))
    return diffuse


def composite(
    image: np.ndarray,
    color_linear: np.ndarray,
    alpha: np.ndarray,
    *,
    blur: float,
    noise: float,
    rng: np.random.Generator,
    origin: tuple[int, int] = (0, 0),
    softness: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Composite a mask layer onto ``image``, matched to its blur and noise.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8 sRGB
    color_linear : ndarray of shape (h, w, 3), float32
        Mask colour in linear light, *premultiplied* by ``alpha``.
    alpha : ndarray of shape (h, w), float32
    blur : float
        The photo's blur (sigma, pixels); the layer is blurred to match.
    noise : float
        The photo's noise (std, 0-255 levels); added to the layer.
    rng : Generator
        Source of the noise.
    origin : (x0, y0)
        Where the layer's top-left pixel lies in ``image``.
    softness : float
        Blur (sigma, pixels) the layer already has from being drawn and warped.

    Returns
    -------
    image : ndarray of shape (H, W, 3), uint8
    coverage : ndarray of shape (h, w), float32
        The final alpha.
    """
    rgba = np.concatenate([np.asarray(color_linear, np.float32), np.asarray(alpha, np.float32)[..., None]], -1)
    return composite_rgba(image, rgba, blur=blur, noise=noise, rng=rng, origin=origin, softness=softness)


def composite_rgba(
    image: np.ndarray,
    rgba: np.ndarray,
    *,
    blur: float,
    noise: float,
    rng: np.random.Generator,
    origin: tuple[int, int] = (0, 0),
    softness: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`composite` with colour and alpha in one (h, w, 4) float32 array
    (premultiplied linear RGB, alpha): blurred in one pass, blended as four channels
    (OpenCV's per-channel arithmetic is several times faster than numpy's broadcasting
    over a last axis of 3)."""
    extra = float(np.sqrt(max(blur * blur - softness * softness, 0.0)))
    sigma = max(extra, MIN_EDGE_BLUR)
    layer = cv2.GaussianBlur(np.ascontiguousarray(rgba, dtype=np.float32), (0, 0), sigma)
    alpha = layer[..., 3].copy()
    x0, y0 = origin
    h, w = alpha.shape
    crop = np.ascontiguousarray(image[y0 : y0 + h, x0 : x0 + w])
    # The photo in linear light with a fourth channel that is carried along unused.
    out = cv2.LUT(cv2.cvtColor(crop, cv2.COLOR_RGB2RGBA), _CV_LINEAR)
    keep = 1.0 - alpha
    out = cv2.multiply(out, cv2.merge((keep, keep, keep, keep)))
    out += layer
    out = cv2.cvtColor(out, cv2.COLOR_RGBA2RGB)
    np.clip(out, 0.0, 1.0, out=out)
    out *= np.float32(_LUT_SRGB_SIZE)
    out += np.float32(0.5)
    srgb = np.take(_LUT_SRGB_255, out.astype(np.int32))
    if noise > 0.05:
        # Grain: one luminance field (the fourth channel) plus weaker colour noise.
        field = normal_noise(rng, (h, w, 4))
        lum = field[..., 3].copy()
        grain = cv2.scaleAdd(cv2.cvtColor(field, cv2.COLOR_RGBA2RGB), 0.35, cv2.merge((lum, lum, lum)))
        weight = alpha * np.float32(noise)
        srgb += cv2.multiply(grain, cv2.merge((weight, weight, weight)))
    srgb += np.float32(0.5)
    np.clip(srgb, 0, 255, out=srgb)
    result = image.copy()
    # Only the pixels the mask touches change (the rest stay byte-identical).
    cv2.copyTo(srgb.astype(np.uint8), cv2.compare(alpha, 0.0, cv2.CMP_GT), result[y0 : y0 + h, x0 : x0 + w])
    return result, alpha
