"""Mask assets: each mask shape drawn once per process, and what each image adds.

Drawing a mask (:func:`~mfrkit.maskgen.draw.draw_roles`: outline, pleats, hems, loops,
valves, relief, depth) is most of a render's work, yet it depends on a handful of
choices only: type, outline, coverage, nose coverage, whether there are ear loops,
the type's extras (an N95's valve, a cloth mask's seam) and, for cloth, which of
:data:`CLOTH_VARIANTS` wrinkle patterns. A :class:`MaskAsset` is that drawing at one of
:data:`ASSET_RESOLUTIONS`, with what lighting needs precomputed (canonical normals of
the surface with and without its fine relief), cached per process (:func:`mask_asset`).

Per image, cheaply:

* **colour** (:func:`mask_albedo`): the drawing's role weights times the image's
  palette (body colour, loops, straps, accents: one ``cv2.transform``), plus the body
  weight times the texture, laid in on the asset's canvas with noise cut from tiles at
  a per-image offset (:class:`~mfrkit.maskgen.textures.TextureNoise`);
* **shape jitter** (:func:`deformed_uv`): the sampled ``top``, ``side``, ``hang`` and
  ``width`` move the mask on the face as a smooth deformation of where the warp reads
  the asset, not by drawing it again.

A texture file (``--texture PATH``) is one more texture: the image tiled over the
body in canonical units (:mod:`~mfrkit.maskgen.texture_files`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from ..landmarks.canonical import CENTRE_U
from ..rng import keyed_rng
from .draw import CELL, DRAWINGS, RoleLayer, draw_roles
from .styles import StyleParams, hex_rgb
from .pixels import clip01, scale, transform
from .texture_files import is_texture_file, tiled_texture
from .textures import TEXTURES, TextureNoise

#: The drawing's version, in every synthesized copy's description (and so its card):
#: 2 draws each shape once as an asset (this module); images of the same seed differ
#: from version 1's (each image drew its own mask), though the looks are the same.
#: 3 softens every mask edge a little more in the composite (``blend.MIN_EDGE_BLUR``
#: 0.45 -> 0.55 px): version 2's edges measured just over the boundary-gradient band.
DRAWING_VERSION = 3

#: Texels per canonical unit assets are drawn at (multiples of 1/4 so that boxes start on
#: whole texels); a face gets the smallest at least as fine as the photo shows it.
ASSET_RESOLUTIONS = (1.0, 1.5, 2.0, 3.0, 4.0)
#: Wrinkle patterns of cloth masks (chosen by ``texture_seed``): each is one asset.
CLOTH_VARIANTS = 3


def asset_resolution(scale: float, blur: float = 0.0) -> float:
    """Texels per unit for a face at ``scale`` pixels per unit in a photo blurred by
    ``blur`` (sigma, pixels): about one texel per pixel, fewer when the photo is soft
    (detail finer than its blur would not show), from :data:`ASSET_RESOLUTIONS`."""
    sharp = float(scale) / max(1.0, float(blur) / 0.8)
    for res in ASSET_RESOLUTIONS:
        if res >= 0.9 * sharp:
            return res
    return ASSET_RESOLUTIONS[-1]


@dataclass(frozen=True)
class AssetKey:
    """What a mask's drawing depends on (every other style field is applied per image)."""

    mask_type: str
    outline: str
    coverage: str
    nose: str | None
    loops: bool
    extras: tuple[tuple[str, object], ...]
    variant: int


def asset_key(style: StyleParams) -> AssetKey:
    """The asset ``style`` is drawn from."""
    drawing = DRAWINGS.get(style.mask_type)
    loops = bool(style.shape.get("loops", True)) if drawing.loops else True
    variant = int(style.texture_seed) % CLOTH_VARIANTS if style.mask_type == "cloth" else 0
    return AssetKey(style.mask_type, style.outline, style.coverage, style.nose, loops, tuple(sorted(style.extras.items())), variant)


def _key_style(key: AssetKey) -> StyleParams:
    """The style an asset is drawn with: no jitter, placeholder colours (they are roles)."""
    return StyleParams(mask_type=key.mask_type, color="white", color_hex="#ffffff", texture="plain", coverage=key.coverage,
                       shape={"top": 0.0, "side": 0.0, "hang": 0.0, "width": 1.0, "loops": key.loops}, extras=dict(key.extras),
                       texture_seed=key.variant, outline=key.outline, nose=key.nose)


def canonical_normals(depth: np.ndarray, res: float) -> np.ndarray:
    """Unit normals (towards the camera, canonical frame) of a depth map with ``res``
    texels per unit, (h, w, 3) float32."""
    dzdv, dzdu = np.gradient(np.asarray(depth, dtype=np.float32))
    gx, gy = dzdu * np.float32(res), dzdv * np.float32(res)
    inv = 1.0 / np.sqrt(gx * gx + gy * gy + np.float32(1.0))
    return cv2.merge([gx * inv, gy * inv, -inv])


@dataclass(frozen=True, eq=False)
class MaskAsset:
    """A mask shape drawn once, ready to colour, light and warp.

    Attributes
    ----------
    key : AssetKey
    layer : RoleLayer
        The drawing (colour roles, coverage, relief, depth, gloss, canvas).
    normals : ndarray of shape (h, w, 3), float32
        Canonical normals of the surface with its relief (pleats, seams): lighting.
    surface_normals : ndarray of shape (h, w, 3), float32
        Canonical normals of the surface without it: where it turns away.
    reach : ndarray of shape (h, w), uint8
        1 within a warp cell of the mask: which grid cells the warp needs.
    glossy : bool
        Whether any texel has a specular highlight.
    """

    key: AssetKey
    layer: RoleLayer
    normals: np.ndarray
    surface_normals: np.ndarray
    reach: np.ndarray
    glossy: bool = False


@functools.lru_cache(maxsize=96)
def mask_asset(key: AssetKey, res: float) -> MaskAsset:
    """The asset of ``key`` at ``res`` texels per unit, drawn on first use in a process.

    Its arrays are shared by every image drawn from it: read-only.
    """
    layer = draw_roles(_key_style(key), res)
    radius = int(np.ceil(CELL * res))
    reach = cv2.dilate((layer.alpha > 1e-3).astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    asset = MaskAsset(key=key, layer=layer, normals=canonical_normals(layer.depth - layer.relief, res),
                      surface_normals=canonical_normals(layer.depth, res), reach=reach, glossy=bool((layer.gloss > 0).any()))
    for array in (asset.normals, asset.surface_normals, asset.reach, layer.parts, layer.body, layer.alpha, layer.gloss, layer.standoff, layer.depth):
        array.setflags(write=False)
    return asset


def asset_of(style: StyleParams, res: float) -> MaskAsset:
    """The cached asset ``style`` is drawn from at ``res``."""
    return mask_asset(asset_key(style), float(res))


# --- per image ------------------------------------------------------------------------------------


def texture_colors(style: StyleParams) -> np.ndarray:
    """sRGB colours (n, 3) a texture prints with: the body, then the accents."""
    return np.array([hex_rgb(style.color_hex)] + [hex_rgb(c) for c in style.accents], dtype=np.float32)


def mask_albedo(asset: MaskAsset, style: StyleParams) -> np.ndarray:
    """The mask's sRGB colour before lighting, (h, w, 3) float32 in 0-1: the drawing's
    roles in ``style``'s palette, the body textured with ``style``'s texture."""
    layer = asset.layer
    palette = DRAWINGS.get(style.mask_type).palette(style)  # (4, 3)
    noise = TextureNoise(keyed_rng(style.texture_seed), layer.window)
    if is_texture_file(style.texture):
        texture = tiled_texture(style.texture, layer.canvas, style.pattern, noise)
    else:
        texture = TEXTURES.get(style.texture)(layer.canvas, texture_colors(style), style.pattern, noise)
    albedo = transform(layer.parts, palette.T)
    albedo += scale(np.ascontiguousarray(texture, dtype=np.float32), layer.body)
    return clip01(albedo)


def deformed_uv(uv: np.ndarray, style: StyleParams, layer: RoleLayer) -> np.ndarray:
    """Where in the asset each canonical face point ``uv`` (P, 2) reads, (P, 2): the
    style's shape jitter as a smooth deformation.

    ``width`` scales the mask across about the centre line; the top edge moves down by
    ``top`` at the centre and ``side`` at the corners, the lower edge by ``hang``
    (most under the chin), each blended over the mask's height. These are the moves the
    outline itself made when each image drew its own mask.
    """
    shape = style.shape
    width = float(shape.get("width", 1.0))
    top, side, hang = (float(shape.get(k, 0.0)) for k in ("top", "side", "hang"))
    u = CENTRE_U + (uv[:, 0] - CENTRE_U) / width
    v_top, v_bottom, half = layer.extent
    x2 = np.minimum(((u - CENTRE_U) / max(half, 1.0)) ** 2, 1.0)
    shift_top = top + (side - top) * x2
    shift_bottom = hang * (1.0 - 0.85 * x2)
    tau = np.minimum(np.maximum((uv[:, 1] - v_top) / max(v_bottom - v_top, 1.0), 0.0), 1.0)  # np.clip, without its wrapper's cost
    return np.column_stack([u, uv[:, 1] - (shift_top * (1.0 - tau) + shift_bottom * tau)])


def sample_nearest(values: np.ndarray, texel: np.ndarray, outside: float = 0.0) -> np.ndarray:
    """``values`` (h, w) at texel ``(col, row)`` points (P, 2), nearest texel; ``outside``
    beyond the layer."""
    h, w = values.shape
    cols = np.round(texel[:, 0]).astype(np.int64)
    rows = np.round(texel[:, 1]).astype(np.int64)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    out = np.full(len(texel), outside, dtype=np.float64)
    out[inside] = values[rows[inside], cols[inside]]
    return out
