"""Drawing masks in canonical space: outline, material, relief and parts of each type.

:func:`draw_roles` draws one mask shape (:class:`~mfrkit.maskgen.styles.StyleParams`
without its per-image jitter) into a :class:`RoleLayer` over a fixed window of the
canonical face: per-texel coverage, relief (for shading), surface depth, gloss, and
colour as *weights of colour roles* rather than RGB: the body, up to three other
colours (ear loops, straps, accents, a nose clip) and the body's texture. A drawing's
palette gives each role its colour per image, and the texture is laid in per image
(:mod:`~mfrkit.maskgen.assets`), so one drawing serves every colour and print of a
shape. Everything here is procedural; shapes are placed relative to the canonical
face's own outline (derived data, see ``scripts/make_canonical_face.py``).

A new mask type is a :class:`~mfrkit.maskgen.styles.MaskType` in ``MASK_TYPES`` (its
looks and sampling weights) plus a :class:`Drawing` in :data:`DRAWINGS` (its outline,
painter, bulge and palette).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from ..registry import Registry
from ..landmarks.canonical import CENTRE_U, canonical_face
from ..rng import keyed_rng
from .fit import landmark_model
from .styles import COVERAGES, MASK_TYPES, NATURAL, SHAPES, StyleParams, hex_rgb, top_edge
from .textures import Canvas, aa_coverage, clip, smooth_noise

#: Canonical window masks are drawn in: u0, v0, u1, v1 (units). Each drawing uses the
#: part of it that its mask needs, snapped to whole cells of CELL units (the renderers'
#: warp grid), so texels and grid cells line up.
WINDOW = (-8.0, 40.0, 120.0, 148.0)
CELL = 4.0
#: Canonical chin (lowest point of the face outline) and nose-bridge heights.
CHIN_V = 118.5

#: Colour roles, as one-hot vectors: the body colour, three more per drawing (its
#: palette says which: loops, straps, accents, metal) and the body's texture.
N_ROLES = 4
_ROLE_BASIS = np.eye(N_ROLES + 1, dtype=np.float32)
BODY, ROLE1, ROLE2, ROLE3, TEXTURE = _ROLE_BASIS


@dataclass(frozen=True, eq=False)
class RoleLayer:
    """A mask shape drawn on the canonical window, its colours as role weights.

    Texel ``[i, j]`` sits at canonical ``(u0 + j / res, v0 + i / res)``. The sRGB colour
    of a texel is ``parts @ palette + body * texture`` before lighting (``palette`` the
    roles' colours (4, 3), ``texture`` the body's textured sRGB colours (h, w, 3)).

    Attributes
    ----------
    origin : tuple of float
        ``(u0, v0)``, canonical units.
    res : float
        Texels per canonical unit.
    parts : ndarray of shape (h, w, 4), float32
        Weights of the colour roles that are not textured (loops, straps, valves).
    body : ndarray of shape (h, w), float32
        Weight of the textured body (pleat shadows and hems darken it).
    alpha : ndarray of shape (h, w), float32
        Coverage, 0-1, anti-aliased.
    relief : ndarray of shape (h, w), float32
        Fine relief towards the camera (pleats, seams), units; for shading only.
    depth : ndarray of shape (h, w), float32
        Canonical depth of the mask surface (the face's, pulled taut and raised).
    standoff : ndarray of shape (h, w), float32
        How far the mask stands in front of the taut face there (bulge and raised
        parts), units: ``depth`` is the taut face minus this.
    gloss : ndarray of shape (h, w), float32
        Specular strength, 0-1.
    canvas : Canvas
        The texels' canonical and mask coordinates (textures are laid in on it).
    window : (row, col) or None
        Where texel ``[0, 0]`` lies in the whole window's texel grid at ``res``.
    extent : (v_top, v_bottom, half_width)
        The outline's top and bottom (canonical ``v``) and half width, units.
    """

    origin: tuple[float, float]
    res: float
    parts: np.ndarray
    body: np.ndarray
    alpha: np.ndarray
    relief: np.ndarray
    depth: np.ndarray
    standoff: np.ndarray
    gloss: np.ndarray
    canvas: Canvas
    window: tuple[int, int] | None
    extent: tuple[float, float, float]

    def to_texel(self, uv: np.ndarray) -> np.ndarray:
        """Canonical ``(u, v)`` (..., 2) to texel ``(col, row)`` coordinates."""
        return (np.asarray(uv, dtype=np.float64) - np.asarray(self.origin)) * self.res


@functools.lru_cache(maxsize=1)
def _outline_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Face outline of the canonical mesh sampled per 0.25 unit: half-width by ``v``
    and lower edge by ``u``."""
    outline = landmark_model("mesh").outline
    scale = 4.0
    h, w = 600, 600
    img = np.zeros((h, w), np.uint8)
    cv2.fillPoly(img, [np.round(outline * scale).astype(np.int32)], 1)
    rows = np.arange(h) / scale
    filled = img.any(1)
    left = np.where(filled, img.argmax(1), w) / scale
    half = np.where(filled, CENTRE_U - left, 0.0)
    cols = np.arange(w) / scale
    colfilled = img.any(0)
    bottom = np.where(colfilled, (h - 1 - img[::-1].argmax(0)) / scale, 0.0)
    return rows, half, cols, bottom


def face_half(v: np.ndarray | float) -> np.ndarray:
    """Half-width of the canonical face outline at height ``v``, units."""
    rows, half, _, _ = _outline_tables()
    return np.interp(v, rows, half)


def jaw_v(u: np.ndarray | float) -> np.ndarray:
    """Lower edge (``v``) of the canonical face outline at ``u``, units."""
    _, _, cols, bottom = _outline_tables()
    return np.interp(u, cols, bottom)


# --- outlines -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outline:
    """A mask's outline and the landmarks of its shape, canonical units."""

    polygon: np.ndarray  # (N, 2)
    top_corners: np.ndarray  # (2, 2): image-left, image-right
    bottom_corners: np.ndarray  # (2, 2)


def _chaikin(points: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Round a closed polygon's corners (Chaikin's corner cutting)."""
    for _ in range(rounds):
        q = np.roll(points, -1, axis=0)
        new = np.empty((2 * len(points), 2))
        new[0::2] = 0.75 * points + 0.25 * q
        new[1::2] = 0.25 * points + 0.75 * q
        points = new
    return points


def _wrap_outline(style: StyleParams, top_profile: Callable[[np.ndarray], np.ndarray], corner_v: float, inset: float, hang_scale: float = 1.0) -> Outline:
    """Outline of a mask that wraps the face: a top edge from cheek to cheek, sides
    following the face outline, a lower edge hanging below the jaw line."""
    cov = COVERAGES.get(style.coverage)
    top_centre, top_side = top_edge(style)
    sh = style.shape
    width = float(sh.get("width", 1.0))
    ts = top_side + float(sh.get("side", 0.0))
    tc = top_centre + float(sh.get("top", 0.0))
    hang = (cov.hang + float(sh.get("hang", 0.0))) * hang_scale
    corner_v = max(corner_v, ts + 6.0)
    half_top = (face_half(ts) - inset) * width
    xs = np.linspace(-1.0, 1.0, 81)
    top = np.column_stack([CENTRE_U + xs * half_top, tc + (ts - tc) * top_profile(np.abs(xs))])
    vs = np.linspace(ts, corner_v, 24)
    right = np.column_stack([CENTRE_U + (face_half(vs) - inset) * width, vs])
    half_corner = (face_half(corner_v) - inset) * width
    us = np.linspace(half_corner, -half_corner, 61)
    x = us / half_corner
    # The fabric hangs most below the chin and meets the jaw line at the corners.
    bottom_v = np.maximum(jaw_v(CENTRE_U + us) + hang * (1.0 - 0.85 * np.abs(x) ** 2), corner_v)
    bottom = np.column_stack([CENTRE_U + us, bottom_v])
    left = right[::-1].copy()
    left[:, 0] = 2 * CENTRE_U - left[:, 0]
    polygon = np.vstack([top, right[1:], bottom[1:], left[1:-1]])
    return Outline(
        polygon=polygon,
        top_corners=np.array([top[0], top[-1]]),
        bottom_corners=np.array([bottom[-1], bottom[0]]),
    )


def _cup_outline(style: StyleParams, half_width: float, exponent: float) -> Outline:
    """A moulded cup: a superellipse from the top edge to under the chin."""
    cov = COVERAGES.get(style.coverage)
    sh = style.shape
    tc = top_edge(style)[0] - 1.0 + float(sh.get("top", 0.0))
    bottom = min(CHIN_V + cov.hang + 1.0 + float(sh.get("hang", 0.0)) + (tc - 56.5) * 0.35, CHIN_V + 16.0)
    vc = 0.45 * tc + 0.55 * bottom
    a = half_width * float(sh.get("width", 1.0)) * (1.0 - 0.004 * max(0.0, tc - 57.0))
    theta = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    c, s = np.cos(theta), np.sin(theta)
    bt, bb = vc - tc, bottom - vc
    # Egg-shaped: narrower over the nose than under the chin; pulled down, the cup's
    # widest part lies across the mouth.
    narrow = 0.24 if style.coverage == "proper" else 0.06
    taper = 1.0 - narrow * clip(-s, 0.0, 1.0) ** 1.5
    pu = CENTRE_U + a * taper * np.sign(c) * np.abs(c) ** (2 / exponent)
    pv = vc + np.where(s < 0, bt, bb) * np.sign(s) * np.abs(s) ** (2 / exponent)
    poly = np.column_stack([pu, pv])
    # Corners: where the straps attach, on the sides a third of the way down.
    tv = tc + 0.38 * (bottom - tc)
    bv = tc + 0.8 * (bottom - tc)
    return Outline(
        polygon=poly,
        top_corners=np.array([[CENTRE_U - a * 0.97, tv], [CENTRE_U + a * 0.97, tv]]),
        bottom_corners=np.array([[CENTRE_U - a * 0.8, bv], [CENTRE_U + a * 0.8, bv]]),
    )


def _gas_outline(style: StyleParams) -> Outline:
    sh = style.shape
    tc = top_edge(style)[0] - 1.5 + float(sh.get("top", 0.0))
    bottom = min(CHIN_V + 4.0 + float(sh.get("hang", 0.0)) * 0.5 + max(0.0, tc - 56.0) * 0.4, CHIN_V + 14.0)
    span = bottom - tc
    w = float(sh.get("width", 1.0))
    if style.coverage == "proper":
        # Half-width (units) down the facepiece: a nose cup over the bridge, widening
        # to the cheeks, rounded under the chin.
        ctrl = np.array(
            [[0.0, 0.0], [6.0, 0.02], [14.0, 0.22], [22.0, 0.50], [27.0, 0.70], [27.5, 0.82], [22.0, 0.93], [12.0, 1.0], [0.0, 1.0]]
        )
    else:
        # Pulled down, the nose cup lies flat on the lip or chin: a flat, wide top.
        ctrl = np.array([[0.0, 0.0], [16.0, 0.0], [23.0, 0.10], [27.0, 0.35], [27.5, 0.62], [22.0, 0.88], [12.0, 1.0], [0.0, 1.0]])
    right = np.column_stack([CENTRE_U + ctrl[:, 0] * w, tc + ctrl[:, 1] * span])
    left = right[::-1][1:-1].copy()
    left[:, 0] = 2 * CENTRE_U - left[:, 0]
    poly = _chaikin(np.vstack([right, left]), rounds=3)
    return Outline(
        polygon=poly,
        top_corners=np.array([[CENTRE_U - 15 * w, tc + 0.25 * span], [CENTRE_U + 15 * w, tc + 0.25 * span]]),
        bottom_corners=np.array([[CENTRE_U - 23 * w, tc + 0.9 * span], [CENTRE_U + 23 * w, tc + 0.9 * span]]),
    )


# --- canvas helpers ---------------------------------------------------------------------------------


def _canvas_box(outline: "Outline") -> tuple[float, float, float, float]:
    """The part of the window a mask needs: its outline, plus room for straps and ear
    loops (they reach the face outline at eye to jaw height), snapped to cells."""
    u0, v0, u1, v1 = WINDOW
    lo = np.minimum(outline.polygon.min(0) - 3.0, [CENTRE_U - 48.0, 54.0])
    hi = np.maximum(outline.polygon.max(0) + 3.0, [CENTRE_U + 48.0, 0.0])
    snap_lo = np.floor((lo - (u0, v0)) / CELL) * CELL + (u0, v0)
    snap_hi = np.ceil((hi - (u0, v0)) / CELL) * CELL + (u0, v0)
    return max(u0, snap_lo[0]), max(v0, snap_lo[1]), min(u1, snap_hi[0]), min(v1, snap_hi[1])


@dataclass(frozen=True, eq=False)
class _WindowTables:
    """What every drawing at one resolution shares: the canonical coordinates of the
    whole window's texels and the face's depth maps sampled there. Drawings take
    slices (their boxes are snapped to cells, a whole number of texels at quarter-step
    resolutions)."""

    u: np.ndarray  # (H, W) float32
    v: np.ndarray
    face_z: np.ndarray
    envelope_z: np.ndarray


@functools.lru_cache(maxsize=16)
def _window_tables(res: float) -> _WindowTables:
    u0, v0, u1, v1 = WINDOW
    w = int(round((u1 - u0) * res))
    h = int(round((v1 - v0) * res))
    u = (u0 + np.arange(w, dtype=np.float32) / np.float32(res))[None, :].repeat(h, 0)
    v = (v0 + np.arange(h, dtype=np.float32) / np.float32(res))[:, None].repeat(w, 1)
    face = canonical_face()
    tables = _WindowTables(u=u, v=v, face_z=face.sample(face.face_depth, u, v), envelope_z=face.sample(face.envelope_depth, u, v))
    for arr in (tables.u, tables.v, tables.face_z, tables.envelope_z):
        arr.setflags(write=False)  # shared by every drawing: read-only
    return tables


def _canvas_slice(res: float, box: tuple[float, float, float, float]) -> tuple[slice, slice] | None:
    """Rows and columns of the window tables that ``box`` covers at ``res``; None when
    the box does not start on a whole texel (any resolution but quarter steps)."""
    u0, v0 = WINDOW[0], WINDOW[1]
    c0, r0 = (box[0] - u0) * res, (box[1] - v0) * res
    if abs(c0 - round(c0)) > 1e-6 or abs(r0 - round(r0)) > 1e-6:
        return None
    c0, r0 = int(round(c0)), int(round(r0))
    w = int(round((box[2] - box[0]) * res))
    h = int(round((box[3] - box[1]) * res))
    return slice(r0, r0 + h), slice(c0, c0 + w)


def _canvas_grid(res: float, box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    u0, v0, u1, v1 = box
    w = int(round((u1 - u0) * res))
    h = int(round((v1 - v0) * res))
    u = (u0 + np.arange(w, dtype=np.float32) / res)[None, :].repeat(h, 0)
    v = (v0 + np.arange(h, dtype=np.float32) / res)[:, None].repeat(w, 1)
    return u, v


def _fill(polygon: np.ndarray, shape: tuple[int, int], res: float, origin: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Binary fill and signed distance to the edge (units, > 0 inside) of a polygon.

    The distance is computed on a grid twice as fine and averaged down, so it is good
    to a fraction of a texel (anti-aliased edges, smooth hems).
    """
    ss = 2
    fine = (shape[0] * ss, shape[1] * ss)
    # Fine sample (i, j) sits at texel ((i + 0.5) / ss - 0.5): shift the polygon to match.
    pts = np.round(((polygon - origin) * res * ss + (ss - 1) / 2.0) * 16).astype(np.int32)
    mask = np.zeros(fine, np.uint8)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)
    signed = np.where(mask > 0, inside - 0.5, 0.5 - outside) / (res * ss)
    signed = cv2.resize(signed, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return signed > 0, signed.astype(np.float32)


def _mask_coords(mask: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``s`` across (-1..1 per row) and ``t`` down (0..1 per column) the filled region."""
    h, w = mask.shape
    any_row = mask.any(1)
    first = np.where(any_row, mask.argmax(1), 0)
    last = np.where(any_row, w - 1 - mask[:, ::-1].argmax(1), w - 1)
    centre = CENTRE_U
    ur = u[0]
    halfw = np.maximum(np.maximum(centre - ur[first], ur[last] - centre), 1e-3)
    s = (u - centre) / halfw[:, None]
    any_col = mask.any(0)
    top = np.where(any_col, mask.argmax(0), 0)
    bot = np.where(any_col, h - 1 - mask[::-1].argmax(0), h - 1)
    vc = v[:, 0]
    span = np.maximum(vc[bot] - vc[top], 1e-3)
    t = (v - vc[top][None, :]) / span[None, :]
    return s.astype(np.float32), t.astype(np.float32)


def _curve_distance(u: np.ndarray, v: np.ndarray, points: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Distance of texels to a polyline, or to the nearest of several (all segments at once)."""
    lines = [np.asarray(points)] if isinstance(points, np.ndarray) else [np.asarray(p) for p in points]
    a = np.concatenate([line[:-1] for line in lines])[:, :, None, None]  # (S, 2, 1, 1)
    b = np.concatenate([line[1:] for line in lines])[:, :, None, None]
    ab = b - a
    t = clip(((u - a[:, 0]) * ab[:, 0] + (v - a[:, 1]) * ab[:, 1]) / np.maximum((ab**2).sum(1), 1e-12), 0.0, 1.0)
    return np.hypot(u - (a[:, 0] + t * ab[:, 0]), v - (a[:, 1] + t * ab[:, 1])).min(0).astype(np.float32)


def _bezier(p0, p1, p2, n: int = 7) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)


def _line(d: np.ndarray, width: float, res: float) -> np.ndarray:
    """A soft line profile at signed distance ``d`` (units), at least a texel wide so
    it does not alias."""
    w = max(width, 0.7 / res)
    return np.exp(-((d / w) ** 2))


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


class _Paint:
    """Accumulates the layers of one mask drawing."""

    def __init__(self, u: np.ndarray, v: np.ndarray, res: float) -> None:
        self.u, self.v, self.res = u, v, res
        shape = u.shape
        self.albedo = np.zeros(shape + (N_ROLES + 1,), np.float32)  # colour-role weights
        self.alpha = np.zeros(shape, np.float32)
        self.relief = np.zeros(shape, np.float32)
        self.raise_ = np.zeros(shape, np.float32)
        self.gloss = np.zeros(shape, np.float32)
        self._blank = True

    def over(self, coverage: np.ndarray, color, relief=None, gloss=None, raise_=None, win: tuple[slice, slice] | None = None) -> None:
        """Composite a part with ``coverage`` (0-1) over what is drawn so far.

        ``win`` limits the work to a window of the canvas; the other arrays are then
        given for that window only.
        """
        win = win or (slice(None), slice(None))
        c = coverage[..., None]
        albedo = self.albedo[win]
        col = np.asarray(color, np.float32)
        if self._blank and win == (slice(None), slice(None)):
            # The first part on an empty canvas (the mask's body): nothing to blend with.
            self._blank = False
            np.multiply(col, c, out=albedo)
            self.alpha[...] = coverage
            if relief is not None:
                np.multiply(relief, coverage, out=self.relief)
            if gloss is not None:
                np.multiply(gloss, coverage, out=self.gloss)
            if raise_ is not None:
                np.maximum(self.raise_, raise_ * coverage, out=self.raise_)
            return
        self._blank = False
        albedo[...] = albedo * (1 - c) + col * c
        alpha = self.alpha[win]
        alpha[...] = alpha + coverage * (1 - alpha)
        if relief is not None:
            rel = self.relief[win]
            rel[...] = rel * (1 - coverage) + relief * coverage
        if gloss is not None:
            g = self.gloss[win]
            g[...] = g * (1 - coverage) + gloss * coverage
        if raise_ is not None:
            r = self.raise_[win]
            r[...] = np.maximum(r, raise_ * coverage)

    def window(self, lo, hi) -> tuple[slice, slice] | None:
        """Canvas window holding canonical box ``lo``-``hi`` (None when off the canvas)."""
        u0, v0 = float(self.u[0, 0]), float(self.v[0, 0])
        h, w = self.u.shape
        c0, c1 = max(0, int((lo[0] - u0) * self.res)), min(w, int((hi[0] - u0) * self.res) + 2)
        r0, r1 = max(0, int((lo[1] - v0) * self.res)), min(h, int((hi[1] - v0) * self.res) + 2)
        if c0 >= c1 or r0 >= r1:
            return None
        return (slice(r0, r1), slice(c0, c1))

    def cord(self, points: np.ndarray | list[np.ndarray], width: float, color, gloss: float = 0.0) -> None:
        """A strap or ear loop along a polyline, ``width`` units, rounded profile.

        Several polylines (e.g. the two loops on one side) are drawn in one pass over
        the box holding them all, where they meet the nearer one shows.
        """
        lines = [points] if isinstance(points, np.ndarray) else list(points)
        lo = np.min([line.min(0) for line in lines], axis=0)
        hi = np.max([line.max(0) for line in lines], axis=0)
        win = self.window(lo - width, hi + width)
        if win is None:
            return
        d = _curve_distance(self.u[win], self.v[win], lines)
        cov = aa_coverage(width / 2 - d, self.res)
        profile = np.sqrt(clip(1 - (2 * d / width) ** 2, 0, 1)) * width * 0.4
        shade = (0.85 + 0.15 * clip(1 - 2 * d / width, 0, 1))[..., None]
        self.over(cov, np.asarray(color, np.float32) * shade, relief=profile + 1.0, gloss=gloss, raise_=1.0, win=win)


# --- painters -----------------------------------------------------------------------------------------

def _ear_loops(p: _Paint, outline: Outline, color, width: float, style: StyleParams) -> None:
    if not style.shape.get("loops", True):
        return
    for side in (0, 1):
        sign = -1.0 if side == 0 else 1.0
        tc, bc = outline.top_corners[side], outline.bottom_corners[side]
        # The loops reach round the ear, just outside the face outline.
        ear_top = np.array([CENTRE_U + sign * (face_half(61.0) + 3.0), 61.0])
        ear_low = np.array([CENTRE_U + sign * (face_half(83.0) + 3.0), 83.0])
        # One pass per loop: the two loops' boxes barely overlap, one box holding both
        # would be three times their area.
        p.cord(_bezier(tc, 0.5 * (tc + ear_top) + np.array([0.0, -2.0]), ear_top), width, color)
        p.cord(_bezier(bc, 0.5 * (bc + ear_low) + np.array([sign * 2.0, 2.0]), ear_low), width, color)


def paint_surgical(p: _Paint, style: StyleParams, base: np.ndarray, outline: Outline, edge: np.ndarray, s: np.ndarray, t: np.ndarray) -> None:
    res = p.res
    cov = aa_coverage(edge, res)
    relief = np.zeros_like(edge)
    # Three pleats, folded downwards, bunched towards the side hems: each is a band
    # of fabric sloping out to a fold edge, with a soft shadow cast below the edge.
    span = float(np.ptp(outline.polygon[:, 1]))
    bunch = 1.0 - 0.35 * clip(np.abs(s), 0, 1) ** 3
    shadow = np.zeros_like(edge)
    for t0 in (0.30, 0.50, 0.70):
        tk = 0.5 + (t0 - 0.5) * bunch
        below = (t - tk) * span  # units below the fold edge
        # Fabric slopes out over 6 units to the fold, then drops (softened over a
        # texel or so, so the fold does not alias) and casts a shadow below.
        soft = max(0.4, 0.8 / res)
        drop = _smoothstep(soft, -soft, below)
        relief += 1.4 * clip(1.0 + below / 6.0, 0.0, 1.0) * drop
        shadow = np.maximum(shadow, np.exp(-np.maximum(below, 0.0) / 1.3) * (1.0 - drop))
    base = base * (1.0 - 0.16 * shadow)[..., None]
    # Hems: top (with the nose wire), bottom and sides, slightly raised double fabric.
    side_dist = edge
    hem = _smoothstep(3.2, 2.4, side_dist) * 0.45
    relief += hem
    albedo = base * (1.0 - 0.05 * _smoothstep(2.6, 2.2, side_dist))[..., None]
    stitch = _line(side_dist - 2.6, 0.22, res)
    albedo = albedo * (1.0 - 0.10 * stitch)[..., None]
    win = _near_top(p, outline, 13.0, 4.2)
    if win is not None:
        wire = _smoothstep(13.0, 9.0, np.abs(p.u[win] - CENTRE_U)) * _smoothstep(4.2, 3.0, _top_distance(p, outline, win))
        relief[win] += 0.5 * wire
    p.over(cov, albedo, relief=relief, gloss=0.04)
    _ear_loops(p, outline, ROLE1, 1.3, style)


def _top_edge(outline: Outline) -> tuple[np.ndarray, np.ndarray]:
    """The outline's top edge as increasing ``u`` and its ``v``."""
    poly = outline.polygon
    top = poly[poly[:, 1] <= np.interp(poly[:, 0], *_top_chain(poly))]
    order = np.argsort(top[:, 0])
    return top[order, 0], top[order, 1]


def _top_distance(p: _Paint, outline: Outline, win: tuple[slice, slice] | None = None) -> np.ndarray:
    """How far below the outline's top edge each texel is (of the canvas, or of its
    window ``win``), units (vertically)."""
    tu, tv = _top_edge(outline)
    u, v = (p.u, p.v) if win is None else (p.u[win], p.v[win])
    return v - np.interp(u, tu, tv)


def _near_top(p: _Paint, outline: Outline, half_width: float, below: float) -> tuple[slice, slice] | None:
    """Canvas window holding the band ``below`` units under the top edge within
    ``half_width`` of the centre line: where nose wires and welds are drawn."""
    tu, tv = _top_edge(outline)
    us = np.linspace(CENTRE_U - half_width, CENTRE_U + half_width, 33)
    vs = np.interp(us, tu, tv)
    return p.window((CENTRE_U - half_width - 1.0, float(vs.min()) - 1.0), (CENTRE_U + half_width + 1.0, float(vs.max()) + below + 1.0))


def _top_chain(poly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The upper chain of a polygon as increasing ``u`` and its ``v`` (min per column)."""
    us = np.linspace(poly[:, 0].min(), poly[:, 0].max(), 64)
    idx = np.clip(np.searchsorted(us, poly[:, 0]), 0, len(us) - 1)
    vmin = np.full(len(us), np.inf)
    np.minimum.at(vmin, idx, poly[:, 1])
    ok = np.isfinite(vmin)
    return us[ok], vmin[ok] + 1e-6


def paint_cloth(p: _Paint, style: StyleParams, base: np.ndarray, outline: Outline, edge: np.ndarray, s: np.ndarray, t: np.ndarray) -> None:
    res = p.res
    cov = aa_coverage(edge, res)
    rng = keyed_rng(style.texture_seed + 7)
    wrinkles = 0.6 * smooth_noise(rng, p.u.shape, 5.0 * res)
    albedo = base.copy()
    relief = wrinkles + 0.8 * _smoothstep(2.0, 0.5, edge)  # rolled hem
    # Top-stitching along the edge: a dashed line.
    dash = (np.sin(2 * np.pi * (p.u + p.v) / 2.2) > -0.2).astype(np.float32)
    stitch = _line(edge - 1.8, 0.2, res) * dash
    albedo *= (1.0 - 0.18 * stitch)[..., None]
    if style.extras.get("seam", True):
        seam = _line(p.u - CENTRE_U, 0.45, res)
        relief += 0.9 * np.exp(-(((p.u - CENTRE_U) / 1.6) ** 2)) - 0.6 * seam
        albedo *= (1.0 - 0.25 * seam)[..., None]
    p.over(cov, albedo, relief=relief, gloss=0.03)
    _ear_loops(p, outline, BODY * 0.9, 2.2, style)


def paint_kn95(p: _Paint, style: StyleParams, base: np.ndarray, outline: Outline, edge: np.ndarray, s: np.ndarray, t: np.ndarray) -> None:
    res = p.res
    cov = aa_coverage(edge, res)
    albedo = base.copy()
    relief = np.zeros_like(edge)
    # Welded rim: an embossed band of dots just inside the edge.
    band = _smoothstep(0.4, 0.9, edge) * _smoothstep(3.0, 2.5, edge)
    dots = (0.5 + 0.5 * np.cos(2 * np.pi * (p.u + p.v) / 1.4) * np.cos(2 * np.pi * (p.u - p.v) / 1.4)) * band
    relief += 0.35 * dots - 0.2 * band
    albedo *= (1.0 - 0.06 * band - 0.05 * dots)[..., None]
    # Centre fold: a crisp vertical crease.
    crease = _line(p.u - CENTRE_U, 0.5, res)
    albedo *= (1.0 - 0.08 * crease)[..., None]
    # Nose-clip pocket: a welded line a few units below the top edge.
    win = _near_top(p, outline, 31.0, 6.5)
    if win is not None:
        weld = _line(_top_distance(p, outline, win) - 4.5, 0.3, res) * _smoothstep(31.0, 29.0, np.abs(p.u[win] - CENTRE_U))
        relief[win] -= 0.25 * weld
        albedo[win] *= (1.0 - 0.05 * weld)[..., None]
    p.over(cov, albedo, relief=relief, gloss=0.05)
    _ear_loops(p, outline, ROLE1, 1.6, style)


def paint_n95(p: _Paint, style: StyleParams, base: np.ndarray, outline: Outline, edge: np.ndarray, s: np.ndarray, t: np.ndarray) -> None:
    res = p.res
    cov = aa_coverage(edge, res)
    albedo = base.copy()
    # Crimped rim and a moulded ridge inside it.
    rim = _smoothstep(2.2, 1.2, edge)
    ridge = np.exp(-(((edge - 4.0) / 0.8) ** 2))
    relief = 0.5 * rim + 0.3 * ridge
    albedo *= (1.0 - 0.08 * rim)[..., None]
    # Aluminium nose clip under the fabric.
    win = _near_top(p, outline, 13.0, 4.6)
    if win is not None:
        top_d = _top_distance(p, outline, win)
        clip_ = _smoothstep(13.0, 11.0, np.abs(p.u[win] - CENTRE_U)) * _smoothstep(0.8, 1.4, top_d) * _smoothstep(4.6, 3.8, top_d)
        relief[win] += 0.45 * clip_
        albedo[win] = albedo[win] * (1 - 0.12 * clip_[..., None]) + 0.12 * clip_[..., None] * ROLE1  # aluminium
    p.over(cov, albedo, relief=relief, gloss=0.03)
    strap = ROLE2
    # Head straps leave the cup's sides towards the crown and the nape.
    for side in (0, 1):
        sign = -1.0 if side == 0 else 1.0
        a = outline.top_corners[side]
        b = outline.bottom_corners[side]
        up, down = a[1] - 12.0, b[1] + 3.0
        p.cord(_bezier(a, a + np.array([sign * 6.0, -4.0]), np.array([CENTRE_U + sign * (face_half(up) + 1.0), up])), 2.4, strap)
        p.cord(_bezier(b, b + np.array([sign * 6.0, 1.0]), np.array([CENTRE_U + sign * (face_half(min(down, 100.0)) + 1.0), down])), 2.4, strap)
    if style.extras.get("valve"):
        cu, cv_ = CENTRE_U, outline.polygon[:, 1].min() + 0.62 * np.ptp(outline.polygon[:, 1])
        r = np.hypot(p.u - cu, (p.v - cv_) * 1.1)
        body_v = aa_coverage(8.5 - r, res)
        valve_col = ROLE3
        rings = 0.5 + 0.5 * np.cos(2 * np.pi * r / 1.6)
        slots = (np.abs(np.sin(np.arctan2(p.v - cv_, p.u - cu) * 9)) > 0.6) & (r < 6.5) & (r > 3.0)
        col = valve_col[None, None, :] * (0.9 + 0.1 * rings)[..., None] * np.where(slots, 0.55, 1.0)[..., None]
        p.over(body_v, col, relief=2.0 + 0.3 * rings - 0.8 * slots, gloss=0.25, raise_=3.0 * _smoothstep(8.5, 5.0, r))


def paint_gas(p: _Paint, style: StyleParams, base: np.ndarray, outline: Outline, edge: np.ndarray, s: np.ndarray, t: np.ndarray) -> None:
    res = p.res
    cov = aa_coverage(edge, res)
    rim = _smoothstep(3.0, 1.0, edge)
    relief = 1.2 * rim + 0.4 * _smoothstep(6.0, 10.0, edge)
    albedo = base * (1.0 - 0.1 * rim)[..., None]
    p.over(cov, albedo, relief=relief, gloss=0.35, raise_=1.5 * _smoothstep(0.0, 8.0, edge))
    strap = ROLE1
    for side in (0, 1):
        sign = -1.0 if side == 0 else 1.0
        a, b = outline.top_corners[side], outline.bottom_corners[side]
        down = b[1] + 3.0
        p.cord(_bezier(a, a + np.array([sign * 10.0, -6.0]), np.array([CENTRE_U + sign * (face_half(60.0) + 1.0), 60.0])), 3.6, strap, gloss=0.1)
        p.cord(_bezier(b, b + np.array([sign * 9.0, 3.0]), np.array([CENTRE_U + sign * (face_half(min(down, 100.0)) + 1.0), down])), 3.6, strap, gloss=0.1)
    # Filter cartridges: discs on the cheeks, facing forwards and outwards.
    top_v = outline.polygon[:, 1].min()
    span = np.ptp(outline.polygon[:, 1])
    cart = ROLE2
    for sign in (-1.0, 1.0):
        cu, cv_ = CENTRE_U + sign * 25.0, top_v + 0.64 * span
        du, dv = (p.u - cu) / 0.82, p.v - cv_  # seen obliquely: narrower than tall
        r = np.hypot(du, dv)
        disc = aa_coverage(13.0 - r, res)
        rings = _line(r - 11.2, 0.6, res) + 0.6 * _line(r - 7.0, 0.5, res)
        grille = ((np.sin(2 * np.pi * du / 2.2) > 0.3) & (r < 6.0)).astype(np.float32)
        col = cart[None, None, :] * (1.0 - 0.25 * rings - 0.35 * grille)[..., None]
        p.over(disc, col, relief=3.0 + 0.8 * rings - 0.6 * grille + 1.5 * _smoothstep(13.0, 10.5, r), gloss=0.3,
               raise_=6.0 * _smoothstep(13.0, 9.0, r))
    # Exhalation valve cover below the mouth.
    cu, cv_ = CENTRE_U, top_v + 0.8 * span
    du, dv = p.u - cu, p.v - cv_
    box = np.minimum(8.5 - np.abs(du), 5.5 - np.abs(dv))
    cover = aa_coverage(box, res)
    slots = ((np.sin(2 * np.pi * dv / 2.0) > 0.2) & (np.abs(du) < 6.0) & (np.abs(dv) < 3.8)).astype(np.float32)
    col = base * 0.8 * (1.0 - 0.5 * slots)[..., None]
    p.over(cover, col, relief=2.0 + 0.7 * _smoothstep(0.0, 2.0, box) - 0.6 * slots, gloss=0.35, raise_=3.0 * _smoothstep(0.0, 4.0, box))


def _hump(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clipped mask coordinates and a 0-1 bump that is 0 at the top and bottom edges."""
    return clip(s, -1.0, 1.0), clip(np.sin(np.pi * clip(t, 0.0, 1.0)), 0.0, 1.0)


@dataclass(frozen=True)
class Drawing:
    """How one mask type is drawn.

    Attributes
    ----------
    outline : callable
        ``(style) -> Outline`` in canonical units.
    paint : callable
        ``(paint, style, base, outline, edge, s, t) -> None``: draws the body and its
        parts (straps, valves, cartridges) onto the canvas, over the textured ``base``.
    bulge : callable
        ``(s, t, edge) -> units``: how far the mask stands off the taut face.
    palette : callable
        ``(style) -> (4, 3)`` sRGB colours of the roles (body, ROLE1-3) for one image.
    loops : bool
        Whether the drawing has ear loops (the ``loops`` jitter matters).
    """

    outline: Callable[[StyleParams], Outline]
    paint: Callable[..., None]
    bulge: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    palette: Callable[[StyleParams], np.ndarray]
    loops: bool = True


#: Drawings by mask type (every entry of :data:`~mfrkit.maskgen.styles.MASK_TYPES` has one).
DRAWINGS: Registry = Registry("mask drawing")


def _flat_bulge(s, t, edge):
    s, hump = _hump(s, t)
    return 1.2 * (1.0 - s**2) * hump * clip(edge / 6.0, 0.0, 1.0)


def _cloth_bulge(s, t, edge):
    s, hump = _hump(s, t)
    return 2.5 * (1.0 - s**2) * hump * clip(edge / 6.0, 0.0, 1.0)


def _fold_bulge(s, t, edge):
    # Two flat panels meeting at the centre crease.
    s, hump = _hump(s, t)
    return 5.0 * (1.0 - np.abs(s)) ** 1.2 * hump**0.7 * clip(edge / 6.0, 0.0, 1.0)


def _cup_bulge(s, t, edge):
    s, hump = _hump(s, t)
    return 7.0 * (1.0 - s**2) * hump**0.8 * clip(edge / 6.0, 0.0, 1.0)


def _rubber_bulge(s, t, edge):
    return 4.0 * clip(edge / 8.0, 0.0, 1.0)


def _palette(body, *others) -> np.ndarray:
    out = np.zeros((N_ROLES, 3), np.float32)
    out[0] = body
    for k, color in enumerate(others, start=1):
        out[k] = color
    return out


def _accents(style: StyleParams, default: str) -> list[np.ndarray]:
    return [hex_rgb(c) for c in style.accents] or [hex_rgb(default)]


def _surgical_palette(style: StyleParams) -> np.ndarray:
    body = hex_rgb(style.color_hex)
    # Ear loops: white elastic tinted by the fabric, or black on a black mask.
    loop = body if style.color == "black" else body * 0.15 + 0.85 * np.float32(0.95)
    return _palette(body, loop)


def _kn95_palette(style: StyleParams) -> np.ndarray:
    body = hex_rgb(style.color_hex)
    return _palette(body, body if style.color == "black" else np.full(3, 0.94, np.float32))


def _cloth_palette(style: StyleParams) -> np.ndarray:
    # Prints use the accents (ROLE1-3, the texture's colours after the body).
    return _palette(hex_rgb(style.color_hex), *[hex_rgb(c) for c in style.accents[:3]])


def _n95_palette(style: StyleParams) -> np.ndarray:
    accents = _accents(style, "yellow")
    valve = accents[1 % len(accents)] * 0.5 + 0.5 * np.array([0.55, 0.56, 0.58], np.float32)
    return _palette(hex_rgb(style.color_hex), np.array([0.75, 0.76, 0.78], np.float32), accents[0], valve)


def _gas_palette(style: StyleParams) -> np.ndarray:
    return _palette(hex_rgb(style.color_hex), np.array([0.09, 0.09, 0.1], np.float32), _accents(style, "magenta")[0])


def _surgical_outline(style: StyleParams) -> Outline:
    return _wrap_outline(style, lambda x: 0.55 * x + 0.45 * x**2 - 0.12 * np.exp(-(x / 0.12) ** 2) + 0.12, 101.0, 1.2)


DRAWINGS.add("surgical", Drawing(outline=_surgical_outline, paint=paint_surgical, bulge=_flat_bulge, palette=_surgical_palette))
DRAWINGS.add("cloth", Drawing(outline=lambda style: _wrap_outline(style, lambda x: x**1.6, 97.0, 2.0, hang_scale=1.15), paint=paint_cloth, bulge=_cloth_bulge,
                              palette=_cloth_palette))
DRAWINGS.add("kn95", Drawing(
    outline=lambda style: _wrap_outline(style, lambda x: np.sqrt(x**2 + 0.01) - 0.1, 98.0, 2.5, hang_scale=1.3), paint=paint_kn95, bulge=_fold_bulge,
    palette=_kn95_palette))
DRAWINGS.add("n95", Drawing(outline=lambda style: _cup_outline(style, 32.0, 2.2), paint=paint_n95, bulge=_cup_bulge, palette=_n95_palette, loops=False))
DRAWINGS.add("gas", Drawing(outline=_gas_outline, paint=paint_gas, bulge=_rubber_bulge, palette=_gas_palette, loops=False))


#: Outlines of the :data:`~mfrkit.maskgen.styles.SHAPES` other than ``natural`` (NIST's
#: two shapes, drawn as mfrkit's choice): ``wide`` is the surgical mask's cheek-to-cheek
#: outline, ``round`` a cup a little narrower than the N95's.
SHAPE_OUTLINES: dict[str, Callable[[StyleParams], Outline]] = {
    "wide": _surgical_outline,
    "round": lambda style: _cup_outline(style, 30.0, 2.2),
}


def mask_outline(style: StyleParams) -> Outline:
    """The outline ``style`` is drawn with: its shape's, or its type's own."""
    if style.outline != NATURAL:
        SHAPES.get(style.outline)
        return SHAPE_OUTLINES[style.outline](style)
    return DRAWINGS.get(style.mask_type).outline(style)


def draw_roles(style: StyleParams, res: float) -> RoleLayer:
    """Draw the shape of ``style`` on the canonical window at ``res`` texels per unit.

    Only what shapes the mask is used: type, outline, coverage, nose coverage, the
    ``shape`` values (the assets draw them at zero and move the mask per image
    instead), extras and ``texture_seed`` (cloth wrinkles); colours and texture are
    roles (see :class:`RoleLayer`).

    Parameters
    ----------
    style : StyleParams
    res : float
        Texels per canonical unit, a multiple of 1/4 (boxes then start on whole texels).

    Returns
    -------
    RoleLayer
    """
    mtype = MASK_TYPES.get(style.mask_type)
    drawing: Drawing = DRAWINGS.get(style.mask_type)
    outline = mask_outline(style)
    box = _canvas_box(outline)
    window = _canvas_slice(res, box)
    if window is not None:
        tables = _window_tables(float(res))
        u, v = tables.u[window], tables.v[window]
    else:
        u, v = _canvas_grid(res, box)
    body, edge = _fill(outline.polygon, u.shape, res, (box[0], box[1]))
    s, t = _mask_coords(body, u, v)
    paint = _Paint(u, v, res)
    base = np.broadcast_to(TEXTURE, u.shape + (N_ROLES + 1,))
    drawing.paint(paint, style, base, outline, edge, s, t)
    if window is not None:
        face_z, env_z = tables.face_z[window], tables.envelope_z[window]
    else:
        face = canonical_face()
        face_z = face.sample(face.face_depth, u, v)
        env_z = face.sample(face.envelope_depth, u, v)
    standoff = drawing.bulge(s, t, edge) + paint.raise_
    depth = face_z - mtype.tent * (face_z - env_z) - standoff
    poly = outline.polygon
    extent = (float(poly[:, 1].min()), float(poly[:, 1].max()), float(np.abs(poly[:, 0] - CENTRE_U).max()))
    return RoleLayer(
        origin=(box[0], box[1]),
        res=float(res),
        parts=np.ascontiguousarray(paint.albedo[..., :N_ROLES]),
        body=np.ascontiguousarray(paint.albedo[..., N_ROLES]),
        alpha=paint.alpha,
        relief=paint.relief.astype(np.float32),
        depth=depth.astype(np.float32),
        standoff=standoff.astype(np.float32),
        gloss=paint.gloss,
        canvas=Canvas(u=u, v=v, res=res, s=s, t=t),
        window=None if window is None else (window[0].start, window[1].start),
        extent=extent,
    )
