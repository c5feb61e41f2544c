"""Mask renderers: one interface, two ways of placing the canonical mask in a photo.

Both renderers take the mask's drawing on the canonical face from a per-process cache
(:mod:`~mfrkit.maskgen.assets`: drawn once per shape), colour and texture it for the
image, light it from the photo (:mod:`~mfrkit.maskgen.blend`) and warp it into the
image through a regular grid of canonical points, triangle by triangle (the image's
shape jitter moves where the grid reads the drawing):

* ``template`` places the grid with the 68 iBUG landmarks: a piecewise-affine warp over
  their triangulation (so the mask bends with the jaw), extended rigidly below the jaw
  with a scaled-orthographic pose fitted to the same points (so the far side of a
  turned face is foreshortened and the near side's ear loop shows).
* ``mesh`` places it with mediapipe's 468-vertex mesh and its 3D pose: the mask
  surface is the face surface pulled taut (bridging the nose-cheek grooves, hanging
  from the chin), so it follows yaw, pitch and roll; back-facing triangles are culled
  and the rest drawn far to near.

The warp is one ``cv2.remap`` of the lit texture through a per-pixel map built from a
triangle-index raster, not a loop of per-triangle warps.

Sampling and applying are separate (``sample(rng, landmarks, spec) -> params``, then
``apply(image, params) -> Rendered``); ``apply`` is a pure function of its inputs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from ..errors import MfrkitError
from ..landmarks.base import Landmarks
from ..landmarks.canonical import canonical_face
from ..registry import Registry
from ..rng import keyed_rng
from .blend import (
    Lighting,
    composite_rgba,
    estimate_blur,
    estimate_lighting,
    estimate_noise,
    sample_at,
    shade,
    smooth_luminance,
)
from .assets import MaskAsset, asset_of, asset_resolution, deformed_uv, mask_albedo, sample_nearest
from .draw import CELL, WINDOW, RoleLayer
from .fit import Anchors, FaceFit, check_landmarks, fit_landmarks, landmark_model
from .geometry import affine_from_triangles, invert_grid, rasterize_triangles
from .pixels import scale
from .texture_files import texture_label
from .styles import MASK_TYPES, StyleParams, StyleSpec, sample_style

#: Spacing of the warp grid, canonical units (about 4 px on an LFW face).
GRID_STEP = CELL


@dataclass(frozen=True, eq=False)
class RenderParams:
    """Everything ``apply`` needs besides the image.

    Attributes
    ----------
    renderer : str
    style : StyleParams
    landmarks : Landmarks
        The face the mask goes on, in the image's pixels.
    noise_seed : int
        Seeds the grain matched to the photo's noise.
    """

    renderer: str
    style: StyleParams
    landmarks: Landmarks
    noise_seed: int

    def record(self) -> dict:
        """The manifest's mask fields (``mask_type``, ``mask_color``, ``mask_texture``,
        ``coverage``)."""
        return {
            "mask_type": self.style.mask_type,
            "mask_color": self.style.color,
            "mask_texture": texture_label(self.style.texture),
            "coverage": self.style.coverage,
        }


@dataclass(frozen=True, eq=False)
class Rendered:
    """A renderer's output.

    Attributes
    ----------
    image : ndarray of shape (H, W, 3), uint8
        The masked photo.
    occlusion : ndarray of shape (H, W), bool
        Pixels the mask covers (final alpha > 0.5).
    alpha : ndarray of shape (H, W), float32
        The mask's coverage, 0-1.
    params : dict
        JSON-serialisable: the style used and what was measured (pose, blur, noise,
        lighting, texture resolution).
    """

    image: np.ndarray
    occlusion: np.ndarray
    alpha: np.ndarray
    params: dict

    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True)


# --- shared machinery ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Grid:
    uv: np.ndarray  # (P, 2)
    shape: tuple[int, int]  # (rows, cols) of vertices
    triangles: np.ndarray  # (T, 3)
    cell: np.ndarray  # (T,) flat cell index
    anchors: Anchors


@functools.lru_cache(maxsize=None)
def _grid(model: str) -> _Grid:
    u0, v0, u1, v1 = WINDOW
    nu = int(np.ceil((u1 - u0) / GRID_STEP)) + 1
    nv = int(np.ceil((v1 - v0) / GRID_STEP)) + 1
    uu, vv = np.meshgrid(u0 + GRID_STEP * np.arange(nu), v0 + GRID_STEP * np.arange(nv))
    uv = np.column_stack([uu.ravel(), vv.ravel()])
    idx = np.arange(nu * nv).reshape(nv, nu)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    cells = np.arange((nv - 1) * (nu - 1))
    # Both triangles have positive signed area on screen (x right, y down), like the
    # canonical triangulations: that is the front face.
    triangles = np.vstack([np.column_stack([a, b, d]), np.column_stack([a, d, c])])
    return _Grid(uv=uv, shape=(nv, nu), triangles=triangles, cell=np.concatenate([cells, cells]),
                 anchors=landmark_model(model).anchors(uv))


@dataclass(frozen=True, eq=False)
class _SkinSamples:
    uv: np.ndarray  # (P, 2)
    normals: np.ndarray  # (P, 3) canonical face normals
    anchors: Anchors
    vertex: np.ndarray  # (P,) flat index of the grid vertex nearest each sample


def _face_normals(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    face = canonical_face()
    eps = 1.0
    dzdu = (face.sample(face.face_depth, u + eps, v) - face.sample(face.face_depth, u - eps, v)) / (2 * eps)
    dzdv = (face.sample(face.face_depth, u, v + eps) - face.sample(face.face_depth, u, v - eps)) / (2 * eps)
    n = np.stack([dzdu, dzdv, -np.ones_like(dzdu)], -1).astype(np.float64)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


@functools.lru_cache(maxsize=None)
def _skin(model: str) -> _SkinSamples:
    """Skin points spread over the canonical face, away from eyes, brows, nostrils
    and lips, for estimating the lighting."""
    uu, vv = np.meshgrid(np.arange(22.0, 91.0, 4.0), np.arange(30.0, 119.0, 4.0))
    u, v = uu.ravel(), vv.ravel()
    from .draw import face_half, jaw_v

    inside = (np.abs(u - 56.0) < face_half(v) - 3.0) & (v < jaw_v(u) - 3.0)
    eyes = (np.abs(v - 50.0) < 9.0) & (np.abs(np.abs(u - 56.0) - 20.0) < 13.0)
    nostrils = (np.abs(v - 79.0) < 4.0) & (np.abs(u - 56.0) < 11.0)
    lips = (np.abs(v - 93.0) < 9.0) & (np.abs(u - 56.0) < 21.0)
    keep = inside & ~eyes & ~nostrils & ~lips
    uv = np.column_stack([u[keep], v[keep]])
    grid = _grid(model)
    vertex = ((grid.uv[:, None, :] - uv[None, :, :]) ** 2).sum(-1).argmin(0)
    return _SkinSamples(uv=uv, normals=_face_normals(uv[:, 0], uv[:, 1]), anchors=landmark_model(model).anchors(uv), vertex=vertex)


def _place_smooth(fit: FaceFit, uvz: np.ndarray, grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Place the grid, keeping the rigid pose exact and smoothing what the landmarks
    add to it over about a cell: the landmarks' own jitter would otherwise put a kink
    in every mask edge at every triangle."""
    xy, z = fit.place(uvz, grid.anchors)
    rigid = uvz @ fit.linear.T + fit.translation
    resid = (np.column_stack([xy, z]) - rigid).reshape(grid.shape[0], grid.shape[1], 3).astype(np.float32)
    resid = cv2.GaussianBlur(resid, (5, 5), 1.0, borderType=cv2.BORDER_REPLICATE).reshape(-1, 3)
    placed = rigid + resid
    return placed[:, :2], placed[:, 2]


@dataclass(frozen=True, eq=False)
class _PhotoStats:
    skin_xy: np.ndarray  # (P, 2) skin sample points in the photo
    skin_n: np.ndarray  # (P, 3) their normals, camera frame
    face_box: tuple[int, int, int, int]
    blur: float
    noise: float


def _photo_stats(img: np.ndarray, fit: FaceFit, skin: _SkinSamples) -> _PhotoStats:
    """Where the skin is, and how blurred and noisy the photo is around the face."""
    h, w = img.shape[:2]
    # What depends on the fit alone is kept with it: an aligned input's fit serves every image.
    skin_xy, skin_n, lo, hi = fit.memo("skin", lambda: _skin_placed(fit, skin))
    pad = 0.3 * (hi - lo)
    face_box = tuple(int(x) for x in (*(lo - pad), *(hi + pad)))
    x0, y0 = max(0, int(lo[0])), max(0, int(lo[1]))
    x1, y1 = min(w, int(hi[0]) + 1), min(h, int(hi[1]) + 1)
    if x1 > x0 + 8 and y1 > y0 + 8:
        gray = cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32)
    else:
        gray = np.zeros((1, 1), np.float32)
    return _PhotoStats(skin_xy, skin_n, face_box, estimate_blur(gray), estimate_noise(gray))


def _skin_placed(fit: FaceFit, skin: _SkinSamples) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The skin samples in the photo: their points (P, 2), normals in the camera frame
    (P, 3), and the points' lowest and highest x, y (2,) each."""
    xy = fit.place(np.column_stack([skin.uv, skin.anchors.base_z]), skin.anchors)[0]
    out = (xy, skin.normals @ fit.rotation.T, xy.min(0), xy.max(0))
    for array in out:
        array.setflags(write=False)  # shared by every image of the fit
    return out


def _warp(rgba: np.ndarray, tex: np.ndarray, grid: _Grid, xy: np.ndarray, z: np.ndarray, area: np.ndarray, active: np.ndarray,
          box: tuple[int, int, int, int]) -> np.ndarray:
    """Warp the layer's texels into the photo box ``(x0, y0, x1, y1)`` with one
    ``cv2.remap``; ``tex`` is the texel each grid vertex reads, ``xy`` and ``z`` where
    it lies in the photo, ``area`` the triangles' signed areas there, ``active`` the
    triangles drawn.

    Without folds (every drawn triangle keeps its orientation: a face not turned far)
    the grid's map is inverted (:func:`~mfrkit.maskgen.geometry.invert_grid`) and the
    texel map interpolated from it; else, or if that does not converge, the triangles
    (back-facing first, far to near) are rasterised to an index image and each pixel
    mapped through its triangle's affine map.
    """
    x0, y0, x1, y1 = box
    shape, origin = (y1 - y0, x1 - x0), (x0, y0)
    rows, cols = grid.shape
    inverse = None
    if (area[active] > 0).all():
        cells = np.zeros((rows - 1) * (cols - 1), bool)
        cells[grid.cell[active]] = True
        inverse = invert_grid(xy.reshape(rows, cols, 2), cells.reshape(rows - 1, cols - 1), shape, origin)
    if inverse is not None:
        at, drawn = inverse
        texels = np.ascontiguousarray(tex.reshape(rows, cols, 2), dtype=np.float32)
        maps = cv2.remap(texels, at, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped = cv2.remap(rgba, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return cv2.copyTo(warped, drawn.view(np.uint8))  # zero (transparent) off the drawn cells
    # Back-facing triangles go first so any front-facing one over them wins; then far to near.
    order = active[np.lexsort((-z[grid.triangles[active]].mean(1), area[active] > 0))]
    tri_xy = xy[grid.triangles]
    raster = rasterize_triangles(tri_xy, order, shape, origin)
    # Pixel -> texel maps per triangle, relative to the box corner; one extra row for
    # pixels no triangle covers, mapped far off the layer (transparent).
    to_tex = np.zeros((len(tri_xy) + 1, 2, 3), np.float32)
    to_tex[-1, :, 2] = -10.0
    local = tri_xy[order] - np.array([x0, y0], dtype=np.float64)
    to_tex[order] = affine_from_triangles(local, tex[grid.triangles[order]])
    a = to_tex[raster]  # (h, w, 2, 3); raster -1 picks the extra row
    xs = np.arange(x1 - x0, dtype=np.float32)[None, :]
    ys = np.arange(y1 - y0, dtype=np.float32)[:, None]
    map_x = a[..., 0, 0] * xs + a[..., 0, 1] * ys + a[..., 0, 2]
    map_y = a[..., 1, 0] * xs + a[..., 1, 1] * ys + a[..., 1, 2]
    return cv2.remap(rgba, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _triangle_areas(xy: np.ndarray, grid: _Grid) -> np.ndarray:
    """Signed areas (pixels, > 0 facing the camera) of the grid's triangles placed at
    ``xy`` (P, 2): the ``(r, c), (r, c+1), (r+1, c+1)`` halves of the cells, then the
    ``(r, c), (r+1, c+1), (r+1, c)`` halves, as :func:`_grid` lists them."""
    p = xy.reshape(grid.shape[0], grid.shape[1], 2)
    x, y = p[..., 0], p[..., 1]
    xa, ya = x[:-1, :-1], y[:-1, :-1]
    bx, by = x[:-1, 1:] - xa, y[:-1, 1:] - ya
    cx, cy = x[1:, :-1] - xa, y[1:, :-1] - ya
    dx, dy = x[1:, 1:] - xa, y[1:, 1:] - ya
    return np.concatenate([(bx * dy - by * dx).ravel(), (dx * cy - dy * cx).ravel()])


def _active_box(xy: np.ndarray, grid: _Grid, active: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The photo box ``(x0, y0, x1, y1)`` holding the active triangles' cells, with a
    margin, clipped to an image of ``shape`` (h, w)."""
    rows, cols = grid.shape
    cells = np.zeros((rows - 1) * (cols - 1), bool)
    cells[grid.cell[active]] = True
    cells = cells.reshape(rows - 1, cols - 1)
    corner = np.zeros((rows, cols), bool)
    corner[:-1, :-1] |= cells
    corner[:-1, 1:] |= cells
    corner[1:, :-1] |= cells
    corner[1:, 1:] |= cells
    pts = xy[corner.ravel()]
    lo = np.floor(pts.min(0)).astype(int) - 2
    hi = np.ceil(pts.max(0)).astype(int) + 3
    return max(0, lo[0]), max(0, lo[1]), min(shape[1], hi[0]), min(shape[0], hi[1])


@functools.lru_cache(maxsize=None)
def _taut_depth(model: str, tent: float) -> np.ndarray:
    """Canonical depth of the face pulled taut by ``tent`` at each grid vertex, (P,)."""
    face = canonical_face()
    uv = _grid(model).uv
    face_z = face.sample(face.face_depth, uv[:, 0], uv[:, 1]).astype(np.float64)
    env_z = face.sample(face.envelope_depth, uv[:, 0], uv[:, 1]).astype(np.float64)
    out = face_z - tent * (face_z - env_z)
    out.setflags(write=False)
    return out


def _active_triangles(asset: MaskAsset, tex: np.ndarray, grid: _Grid, area: np.ndarray) -> np.ndarray:
    """Triangles the warp draws: those of grid cells with a vertex within a cell of the
    mask (front- and back-facing), not degenerate."""
    near = sample_nearest(asset.reach, tex) > 0
    rows, cols = grid.shape
    v = near.reshape(rows, cols)
    cell = (v[:-1, :-1] | v[:-1, 1:] | v[1:, :-1] | v[1:, 1:]).ravel()
    return np.flatnonzero(cell[grid.cell] & (np.abs(area) > 1e-9))


def render(image: np.ndarray, fit: FaceFit, style: StyleParams, noise_seed: int, *, renderer: str) -> Rendered:
    """Colour, light and warp ``style``'s mask onto ``image`` where ``fit`` places the face.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8 RGB
    fit : FaceFit
    style : StyleParams
    noise_seed : int
    renderer : str
        Name recorded in the parameters.

    Returns
    -------
    Rendered
    """
    img = np.ascontiguousarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise MfrkitError(f"expected an (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}")
    h_img, w_img = img.shape[:2]
    grid = _grid(fit.model.name)
    skin = _skin(fit.model.name)
    stats = _photo_stats(img, fit, skin)
    res = asset_resolution(fit.scale, stats.blur)
    asset = asset_of(style, res)
    layer = asset.layer

    # Place the grid: each vertex reads the asset where the image's jitter moves it; its
    # depth is the taut face's minus the mask's standoff there.
    tex = layer.to_texel(deformed_uv(grid.uv, style, layer))
    depth = _taut_depth(fit.model.name, MASK_TYPES.get(style.mask_type).tent) - sample_nearest(layer.standoff, tex)
    xy, z = _place_smooth(fit, np.column_stack([grid.uv, depth]), grid)
    area = _triangle_areas(xy, grid)
    active = _active_triangles(asset, tex, grid, area)
    yaw, pitch, roll = fit.yaw_pitch_roll
    info = {"renderer": renderer, **style.as_dict(), "texture_res": res, "yaw": round(yaw, 2), "pitch": round(pitch, 2),
            "roll": round(roll, 2), "scale": round(float(fit.scale), 4), "blur": round(stats.blur, 3), "noise": round(stats.noise, 3)}
    empty = np.zeros((h_img, w_img), np.float32)
    if len(active):
        box = _active_box(xy, grid, active, (h_img, w_img))
    if not len(active) or box[2] <= box[0] or box[3] <= box[1]:
        return Rendered(image=img.copy(), occlusion=empty > 0, alpha=empty, params={**info, "visible": False})

    smooth = smooth_luminance(img, stats.face_box)
    lighting = estimate_lighting(img, stats.skin_xy, stats.skin_n, stats.face_box, smooth=smooth)
    local = _local_shading(smooth, stats, lighting, skin, grid, layer)
    rgba = _lit_layer(asset, style, lighting, local, fit.rotation)

    warped = _warp(rgba, tex, grid, xy, z, area, active, box)
    # Bilinear magnification by f softens by about f / sqrt(6) pixels (at least the
    # half pixel any warp costs); the composite adds the rest of the photo's blur.
    softness = max(0.5, 0.41 * fit.scale / res)
    out, alpha = composite_rgba(img, warped, blur=stats.blur, noise=stats.noise, rng=keyed_rng(noise_seed), origin=box[:2],
                                softness=softness)
    full_alpha = empty
    full_alpha[box[1] : box[3], box[0] : box[2]] = alpha
    info.update({**lighting.record(), "visible": True})
    return Rendered(image=out, occlusion=full_alpha > 0.5, alpha=full_alpha, params=info)


def _lit_layer(asset: MaskAsset, style: StyleParams, lighting: Lighting, local: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """The asset coloured for ``style`` and lit, as premultiplied linear RGB + alpha
    (h, w, 4) float32. The light is turned into the canonical frame (``rotation``:
    canonical to camera), so the asset's cached normals are used as they are."""
    rot = np.asarray(rotation, dtype=np.float64)
    canonical_light = dataclasses.replace(lighting, direction=rot.T @ np.asarray(lighting.direction, dtype=np.float64))
    # Surface turning away from the camera fades out smoothly (a silhouette that
    # follows the surface, not the triangle edges); the fine relief does not count.
    facing_z = cv2.transform(asset.surface_normals, rot[2].reshape(1, 3).astype(np.float32))
    facing = np.minimum(np.maximum((-facing_z - np.float32(0.02)) * np.float32(1.0 / 0.12), np.float32(0.0)), np.float32(1.0))
    alpha = asset.layer.alpha * facing
    lit = shade(mask_albedo(asset, style), asset.normals, asset.layer.gloss if asset.glossy else None, canonical_light, local, view=-rot[2])
    alpha = alpha.astype(np.float32, copy=False)
    return cv2.merge((scale(lit, alpha), alpha))


def _local_shading(smooth: tuple[np.ndarray, tuple[int, int]], stats: _PhotoStats, lighting: Lighting, skin: _SkinSamples, grid: _Grid,
                   layer: RoleLayer) -> np.ndarray:
    """The face's own low-frequency shading relative to the lighting model, smoothed
    over the canonical grid and resampled to the layer's texels, clipped to 0.75-1.25.

    ``smooth`` is :func:`~mfrkit.maskgen.blend.smooth_luminance` of the photo's face box.
    """
    shape = layer.alpha.shape
    skin_n = stats.skin_n
    values, inside = sample_at(smooth[0], smooth[1], stats.skin_xy)
    ok = inside & (skin_n[:, 2] < -0.2)
    if ok.sum() < 12:
        return np.ones(shape, np.float32)
    model = lighting.ambient + skin_n @ lighting.direction
    ratio = np.where(ok, values / np.maximum(model, 1e-3), 1.0)
    ratio = np.minimum(np.maximum(ratio, 0.6), 1.4)  # np.clip, without its wrapper's cost
    # Gaussian-weighted average over the grid (12 units): splat, blur, divide.
    size = grid.shape[0] * grid.shape[1]
    num = np.bincount(skin.vertex[ok], weights=ratio[ok], minlength=size).astype(np.float32)
    den = np.bincount(skin.vertex[ok], minlength=size).astype(np.float32)
    sigma = 12.0 / GRID_STEP
    num = cv2.GaussianBlur(num.reshape(grid.shape), (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    den = cv2.GaussianBlur(den.reshape(grid.shape), (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    local = np.where(den > 1e-2, num / np.maximum(den, 1e-6), 1.0)
    local = (np.minimum(np.maximum(local, 0.75), 1.25) ** 0.8).astype(np.float32)
    # Grid vertex (r, c) sits on the layer's texel ((c - c0) k, (r - r0) k): texel
    # (i, j) reads the grid at (j / k + c0, i / k + r0), an affine map.
    k = GRID_STEP * layer.res
    c0 = (layer.origin[0] - WINDOW[0]) / GRID_STEP
    r0 = (layer.origin[1] - WINDOW[1]) / GRID_STEP
    to_grid = np.array([[1.0 / k, 0.0, c0], [0.0, 1.0 / k, r0]])
    return cv2.warpAffine(local, to_grid, (shape[1], shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


# --- the registry -------------------------------------------------------------------------------------


class Renderer:
    """Base of the mask renderers. Subclasses set ``name`` and ``model``."""

    name: ClassVar[str] = ""
    #: The landmark model the renderer fits: ``ibug68`` or ``mesh``.
    model: ClassVar[str] = ""

    def fit(self, landmarks: Landmarks) -> FaceFit:
        """Place the canonical face on ``landmarks``; raises LandmarkError when the
        landmarks lack what this renderer needs.

        The last fit is kept for landmarks whose arrays are read-only (a crop
        template's, shared by every crop of a size): aligned inputs fit once, not per
        image; it is still a pure function of the landmarks.
        """
        last = getattr(self, "_last_fit", None)
        if last is not None and last[0] is landmarks:
            return last[1]
        fit = fit_landmarks(landmarks, self.model)
        arrays = [a for a in (landmarks.points5, landmarks.points68, landmarks.mesh) if a is not None]
        if all(not a.flags.writeable for a in arrays):
            self._last_fit = (landmarks, fit)
        return fit

    def sample(self, rng: np.random.Generator, landmarks: Landmarks, spec: StyleSpec = StyleSpec()) -> RenderParams:
        """Draw the random parameters of one masked image.

        Parameters
        ----------
        rng : Generator
            The image's own generator (``item_rng(seed, image_id)``).
        landmarks : Landmarks
            The face to mask; checked to suit this renderer.
        spec : StyleSpec
            What to draw from.
        """
        check_landmarks(landmarks, self.model)
        style = sample_style(rng, spec)
        return RenderParams(renderer=self.name, style=style, landmarks=landmarks, noise_seed=int(rng.integers(0, 2**31 - 1)))

    def apply(self, image: np.ndarray, params: RenderParams) -> Rendered:
        """Render ``params`` onto ``image``, (H, W, 3) uint8 RGB; a pure function of both."""
        return render(image, self.fit(params.landmarks), params.style, params.noise_seed, renderer=self.name)

    def __call__(self, image: np.ndarray, landmarks: Landmarks, rng: np.random.Generator, spec: StyleSpec = StyleSpec()) -> Rendered:
        return self.apply(image, self.sample(rng, landmarks, spec))


RENDERERS: Registry = Registry("mask renderer")


@RENDERERS.register("template")
class TemplateRenderer(Renderer):
    """Piecewise-affine warp on the 68 iBUG landmarks (dlib, mediapipe or a file)."""

    name = "template"
    model = "ibug68"


@RENDERERS.register("mesh")
class MeshRenderer(Renderer):
    """mediapipe face mesh with 3D pose: follows yaw, pitch and roll, culls back faces."""

    name = "mesh"
    model = "mesh"


def create_renderer(name: str) -> Renderer:
    """The renderer called ``name`` (``template`` or ``mesh``)."""
    return RENDERERS.get(name)()


def landmarks_needed(renderer: str) -> str:
    """What a renderer needs from the landmark backend: ``68`` or ``mesh``."""
    return "mesh" if RENDERERS.get(renderer).model == "mesh" else "68"


__all__ = [
    "RENDERERS",
    "MeshRenderer",
    "RenderParams",
    "Rendered",
    "Renderer",
    "TemplateRenderer",
    "create_renderer",
    "render",
]
