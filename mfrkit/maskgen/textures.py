"""Procedural mask materials and print patterns, drawn in canonical mask space.

Every texture is a pure function ``(canvas, colors, params, noise) -> colour``:
``canvas`` gives the canonical coordinates of each texel (units: ArcFace-112 pixels)
and the mask's own coordinates, ``colors`` the sRGB colours to use, (n, 3) (first is
the base, then the image's accents), ``params`` the
sampled pattern parameters (scales in canonical units), ``noise`` a
:class:`TextureNoise` seeded from the sampled ``texture_seed``: smooth noise fields cut
at a per-image offset from tiles made once per process, and a generator for small
draws. Patterns are defined in units, not texels, so a pattern looks the same at any
resolution.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from ..registry import Registry
from ..rng import keyed_rng
from .blend import normal_noise
from .pixels import mix, paint


@dataclass(frozen=True, eq=False)
class Canvas:
    """Texel grid in canonical space.

    Attributes
    ----------
    u, v : ndarray of shape (h, w)
        Canonical coordinates of each texel centre, units.
    res : float
        Texels per canonical unit.
    s, t : ndarray of shape (h, w)
        Mask coordinates: ``s`` from -1 (image-left edge) to 1 across the mask,
        ``t`` from 0 (top edge) to 1 (bottom edge).
    """

    u: np.ndarray
    v: np.ndarray
    res: float
    s: np.ndarray
    t: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.u.shape


#: ``(canvas, colors (n, c) float, params, noise) -> (h, w, c) float32``.
TextureFn = Callable[[Canvas, np.ndarray, dict, "TextureNoise"], np.ndarray]
TEXTURES: Registry = Registry("mask texture")


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise of ``shape`` (h, w), float32, unit standard
    deviation; ``sigma`` in texels."""
    # Broad noise is drawn on a coarser grid and enlarged: same look, a fraction of the work.
    step = int(max(1, sigma // 1.5))
    small = (-(-shape[0] // step) + 1, -(-shape[1] // step) + 1)
    noise = normal_noise(rng, small)
    if sigma / step > 0.3:
        noise = cv2.GaussianBlur(noise, (0, 0), sigma / step, borderType=cv2.BORDER_REFLECT)
    if step > 1:
        noise = cv2.resize(noise, (small[1] * step, small[0] * step), interpolation=cv2.INTER_LINEAR)
    noise = np.ascontiguousarray(noise[: shape[0], : shape[1]])
    std = float(cv2.meanStdDev(noise)[1][0, 0]) if noise.size else 0.0
    if std > 1e-8:
        noise *= np.float32(1.0 / std)
    return noise


#: Tiles of smooth noise are the canonical window at the texture's resolution plus this
#: margin (units) each way: the per-image offset moves within it.
NOISE_MARGIN = 24.0
#: Canonical window size (units, width x height) the tiles cover: the drawings' window.
NOISE_WINDOW = (128.0, 108.0)


@functools.lru_cache(maxsize=48)
def _noise_tile(sigma: float, rows: int, cols: int) -> np.ndarray:
    """A read-only tile of :func:`smooth_noise` (fixed seed: the same in every process)."""
    tile = smooth_noise(keyed_rng(17, round(sigma * 4), rows, cols), (rows, cols), sigma)
    tile.setflags(write=False)
    return tile


class TextureNoise:
    """The noise one image's texture draws on.

    Smooth noise fields are cut from tiles made once per process and resolution (a
    fixed seed), at an offset drawn from ``rng`` per field, so masks differ from image
    to image at the price of a slice; a canvas that is not part of the canonical window
    (``window`` None) gets fresh noise from ``rng`` instead.

    Parameters
    ----------
    rng : Generator
        Seeded from the image's ``texture_seed``; also for a texture's small draws
        (``self.rng``: flower positions, colours).
    window : (row, col) or None
        Where the canvas's first texel lies in the whole window's texel grid.
    """

    def __init__(self, rng: np.random.Generator, window: tuple[int, int] | None = None) -> None:
        self.rng = rng
        self.window = window

    def smooth(self, shape: tuple[int, int], sigma: float, res: float) -> np.ndarray:
        """Unit-variance smooth noise of ``shape`` (h, w), ``sigma`` in texels, at ``res``
        texels per unit (read-only when cut from a tile)."""
        if self.window is None:
            return smooth_noise(self.rng, shape, sigma)
        margin = int(round(NOISE_MARGIN * res))
        rows = int(round(NOISE_WINDOW[1] * res)) + margin
        cols = int(round(NOISE_WINDOW[0] * res)) + margin
        sigma_q = max(0.25, round(float(sigma) * 4.0) / 4.0)
        tile = _noise_tile(sigma_q, rows, cols)
        dy, dx = (int(x) for x in self.rng.integers(0, margin + 1, 2))
        r0, c0 = self.window[0] + dy, self.window[1] + dx
        out = tile[r0 : r0 + shape[0], c0 : c0 + shape[1]]
        if out.shape != tuple(shape):  # pragma: no cover - a canvas larger than the window
            return smooth_noise(self.rng, shape, sigma)
        return out


def _fibres(canvas: Canvas, noise: TextureNoise, strength: float) -> np.ndarray:
    """Non-woven fibre mottling: fine speckle plus soft blotches, mean 1."""
    fine = noise.smooth(canvas.shape, 0.35 * canvas.res, canvas.res)
    blotch = noise.smooth(canvas.shape, 2.5 * canvas.res, canvas.res)
    return 1.0 + strength * (0.6 * fine + 0.4 * blotch)


def clip(x, lo: float, hi: float) -> np.ndarray:
    """``np.clip`` without its Python-level overhead (it is called on every texel
    dozens of times per mask)."""
    return np.minimum(np.maximum(x, lo), hi)


def aa_coverage(d: np.ndarray, res: float) -> np.ndarray:
    """Anti-aliased coverage, 0-1, of a signed distance ``d`` (canonical units, > 0
    inside) at ``res`` texels per unit: the edge blends over one texel."""
    return clip(d * res + 0.5, 0.0, 1.0).astype(np.float32, copy=False)


def _rotated(canvas: Canvas, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    a = np.radians(angle_deg)
    return canvas.u * np.cos(a) + canvas.v * np.sin(a), -canvas.u * np.sin(a) + canvas.v * np.cos(a)


@TEXTURES.register("plain")
def plain(canvas: Canvas, colors: np.ndarray, params: dict, noise: TextureNoise) -> np.ndarray:
    """A flat colour with faint mottling."""
    return paint(_fibres(canvas, noise, 0.015), colors[0])


@TEXTURES.register("nonwoven")
def nonwoven(canvas: Canvas, colors: np.ndarray, params: dict, noise: TextureNoise) -> np.ndarray:
    """Spun-bond polypropylene (surgical masks, respirators): speckled fibre mottling."""
    return paint(_fibres(canvas, noise, float(params.get("grain", 0.035))), colors[0])


def _weave_shade(canvas: Canvas, params: dict, noise: TextureNoise) -> np.ndarray:
    """Plain-weave cotton's brightness, mean 1, (h, w): alternating warp and weft
    threads with slub irregularity."""
    period = float(params.get("thread", 0.9))
    a, b = _rotated(canvas, float(params.get("angle", 0.0)))
    pa, pb = 2 * np.pi * a / period, 2 * np.pi * b / period
    # Over-under: a thread is raised where the two square waves agree.
    checker = np.sin(pa) * np.sin(pb)
    thread = 0.5 + 0.5 * np.tanh(2.0 * checker)
    # Fine threads alias below about two texels per period; fade them out there.
    visible = float(np.clip((period * canvas.res - 1.5) / 2.0, 0.0, 1.0))
    slub = noise.smooth(canvas.shape, 1.2 * canvas.res, canvas.res)
    return (1.0 + visible * 0.07 * (thread - 0.5) + 0.025 * slub).astype(np.float32, copy=False)


@TEXTURES.register("weave")
def weave(canvas: Canvas, colors: np.ndarray, params: dict, noise: TextureNoise) -> np.ndarray:
    """Plain-weave cotton: alternating warp and weft threads with slub irregularity."""
    return paint(_weave_shade(canvas, params, noise), colors[0])


@TEXTURES.register("stripes")
def stripes(canvas: Canvas, colors: np.ndarray, params: dict, noise: TextureNoise) -> np.ndarray:
    """Two-colour stripes of a given period (units) and angle (degrees)."""
    period = float(params.get("period", 8.0))
    duty = float(params.get("duty", 0.5))
    a, _ = _rotated(canvas, float(params.get("angle", 0.0)))
    phase = (a / period) % 1.0
    # Signed distance to the stripe edges, for anti-aliasing.
    d = np.minimum(phase, duty - phase) * period
    d = np.where(phase < duty, d, -np.minimum(phase - duty, 1.0 - phase) * period)
    w = aa_coverage(d, canvas.res)
    # One woven cloth printed in two colours.
    shade = _weave_shade(canvas, params, noise)
    return cv2.add(paint(shade * (1.0 - w), colors[0]), paint(shade * w, colors[1]))


@TEXTURES.register("dots")
def dots(canvas: Canvas, colors: np.ndarray, params: dict, noise: TextureNoise) -> np.ndarray:
    """Polka dots on a staggered lattice."""
    period = float(params.get("period", 8.0))
    radius = float(params.get("radius", 1.8))
    row = np.floor(canvas.v / period)
    u = canvas.u + 0.5 * period * (row % 2)
    du = (u / period - np.round(u / period)) * period
    dv = (canvas.v / period - np.floor(canvas.v / period) - 0.5) * period
    w = aa_coverage(radius - np.hypot(du, dv), canvas.res)
    return mix(weave(canvas, colors[:1], params, noise), colors[1], w)


@TEXTURES.register("floral")
def floral(canvas: Canvas, colors: np.ndarray, params: dict, noise: TextureNoise) -> np.ndarray:
    """Scattered five-petal flowers with a centre, on a jittered lattice."""
    period = float(params.get("period", 14.0))
    size = float(params.get("size", 4.0))
    out = weave(canvas, colors[:1], params, noise)
    u0, v0 = float(canvas.u[0, 0]), float(canvas.v[0, 0])
    h, w = canvas.shape
    nu = int(np.ceil(w / canvas.res / period)) + 2
    nv = int(np.ceil(h / canvas.res / period)) + 2
    jitter = noise.rng.uniform(-0.3, 0.3, (nv, nu, 2)) * period
    turn = noise.rng.uniform(0, 2 * np.pi, (nv, nu))
    pick = noise.rng.integers(1, max(2, len(colors) - 1), (nv, nu))
    reach = 1.05 * size
    for j in range(nv):
        for i in range(nu):
            cu = u0 + (i - 0.5 + 0.5 * (j % 2)) * period + jitter[j, i, 0]
            cv_ = v0 + (j - 0.5) * period + jitter[j, i, 1]
            # Only the texels near this flower (the canvas is a regular grid).
            c0, c1 = max(0, int((cu - reach - u0) * canvas.res)), min(w, int((cu + reach - u0) * canvas.res) + 2)
            r0, r1 = max(0, int((cv_ - reach - v0) * canvas.res)), min(h, int((cv_ + reach - v0) * canvas.res) + 2)
            if c0 >= c1 or r0 >= r1:
                continue
            du, dv = canvas.u[r0:r1, c0:c1] - cu, canvas.v[r0:r1, c0:c1] - cv_
            r = np.hypot(du, dv)
            theta = np.arctan2(dv, du) + turn[j, i]
            petal_r = size * (0.55 + 0.45 * np.abs(np.cos(2.5 * theta)))
            petal = aa_coverage(petal_r - r, canvas.res)
            centre = aa_coverage(0.28 * size - r, canvas.res)
            px = mix(np.ascontiguousarray(out[r0:r1, c0:c1]), colors[pick[j, i]], petal)
            out[r0:r1, c0:c1] = mix(px, colors[-1], centre)
    return out


@TEXTURES.register("camo")
def camo(canvas: Canvas, colors: np.ndarray, params: dict, noise: TextureNoise) -> np.ndarray:
    """Camouflage blotches: thresholded smooth noise in three or four colours."""
    scale = float(params.get("scale", 6.0))
    field = noise.smooth(canvas.shape, scale * canvas.res, canvas.res)
    field2 = noise.smooth(canvas.shape, 0.6 * scale * canvas.res, canvas.res)
    f = 0.7 * field + 0.3 * field2
    out = weave(canvas, colors[:1], params, noise)
    for k, level in enumerate((-0.25, 0.35, 0.95)[: len(colors) - 1]):
        w = clip((f - level) / 0.08 + 0.5, 0.0, 1.0)
        out = mix(out, colors[k + 1], w)
    return out


@TEXTURES.register("plaid")
def plaid(canvas: Canvas, colors: np.ndarray, params: dict, noise: TextureNoise) -> np.ndarray:
    """Tartan checks: bands of colour in both directions, blended where they cross."""
    period = float(params.get("period", 12.0))
    base = weave(canvas, colors[:1], params, noise)
    out = base
    for k, axis in enumerate((canvas.u, canvas.v)):
        phase = (axis / period) % 1.0
        wide = aa_coverage(0.18 * period - np.abs(phase - 0.5) * period, canvas.res)
        thin = aa_coverage(0.04 * period - np.abs(phase - 0.12) * period, canvas.res)
        col = colors[1 + (k % max(1, len(colors) - 1))]
        out = mix(out, cv2.add(out * np.float32(0.45), tuple(float(c) for c in 0.55 * col) + (0.0,)), wide)
        out = mix(out, colors[-1], 0.8 * thin)
    return out


@TEXTURES.register("rubber")
def rubber(canvas: Canvas, colors: np.ndarray, params: dict, noise: TextureNoise) -> np.ndarray:
    """Moulded rubber or silicone: near-uniform with a faint matte grain."""
    grain = noise.smooth(canvas.shape, 0.5 * canvas.res, canvas.res)
    return paint(1.0 + 0.02 * grain, colors[0])
