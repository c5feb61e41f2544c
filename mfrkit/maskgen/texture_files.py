"""Textures from image files (``--texture PATH``), as MaskTheFace's ``--pattern`` takes.

A texture file is one more texture beside the procedural ones of
:mod:`~mfrkit.maskgen.textures`: the image is tiled over the mask's body in canonical
units (so it prints at the same size on every face and at every resolution), with the
same faint fibre mottling as a plain fabric, then lit, warped and blended like any
texture. ``--color`` does not apply to it (the image brings its own colours); the
drawing's other roles (loops, straps, valve) keep the sampled palette.

A texture file is named in a :class:`~mfrkit.maskgen.styles.StyleSpec` by its absolute
path; a folder stands for its image files, sorted by name. Files are read once per
process (cached by path, size and modification time) and checked when the spec is made,
so a missing or corrupt file is a one-line :class:`TextureFileError` before any work.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np

from ..data.imageio import IMAGE_EXTENSIONS, read_image
from ..errors import MfrkitError
from .textures import TEXTURES, Canvas, TextureNoise, _fibres

#: Canonical units (ArcFace-112 pixels) one tile of the image spans across by default: a
#: mask is ~80 units wide, so a pattern repeats a little over twice across it.
TILE_UNITS = 36.0
#: Largest side a texture image is kept at (texels): a finer image only costs memory.
MAX_TEXELS = 512


class TextureFileError(MfrkitError):
    """A ``--texture`` path that is not a readable image (or a folder without one)."""


def is_texture_file(name: str) -> bool:
    """Whether a texture name is a file path (absolute, as :func:`expand_textures`
    writes them) rather than a registered texture's name."""
    return os.path.isabs(str(name))


def expand_textures(items: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``--texture`` items with every path made absolute and every folder replaced by
    its image files (sorted by name); registered names are kept as they are.

    An item is a path when it is not a registered texture and it exists, or it has a
    path separator or an image suffix (so a mistyped file name says the file is missing
    rather than that no texture has that name).

    Raises
    ------
    TextureFileError
        A path that does not exist, a folder with no image files.
    """
    if items is None:
        return None
    out: list[str] = []
    for item in items:
        if item in TEXTURES:
            out.append(item)
            continue
        path = Path(item).expanduser()
        looks_like_path = os.sep in item or "/" in item or path.suffix.lower() in IMAGE_EXTENSIONS
        if not path.exists() and not looks_like_path:
            out.append(item)  # not a path: the texture registry's error lists the names
            continue
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise TextureFileError(f"--texture {item}: the folder holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            out.extend(str(p.resolve()) for p in files)
        elif path.is_file():
            out.append(str(path.resolve()))
        else:
            raise TextureFileError(f"--texture {item}: no such file or folder")
    return tuple(out)


def check_texture_file(path: str) -> None:
    """Read ``path`` once (the cache keeps it): a :class:`TextureFileError` if it is not
    a readable image."""
    texels(path)


def texels(path: str) -> np.ndarray:
    """The texture image of ``path`` as sRGB float32 in 0-1, (h, w, 3), its
    longest side at most :data:`MAX_TEXELS`; read-only, cached per file version."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TextureFileError(f"--texture {path}: {exc.strerror or exc}") from None
    return _texels(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _texels(path: str, size: int, mtime_ns: int) -> np.ndarray:
    try:
        image = read_image(path)
    except MfrkitError as exc:
        raise TextureFileError(f"--texture {path}: {exc}") from None
    h, w = image.shape[:2]
    if min(h, w) < 2:
        raise TextureFileError(f"--texture {path}: the image is {w}x{h} pixels; a texture needs at least 2x2")
    shrink = MAX_TEXELS / max(h, w)
    if shrink < 1:
        image = cv2.resize(image, (max(2, round(w * shrink)), max(2, round(h * shrink))), interpolation=cv2.INTER_AREA)
    out = image.astype(np.float32) / np.float32(255.0)
    out.flags.writeable = False
    return out


def tiled_texture(path: str, canvas: Canvas, params: dict, noise: TextureNoise) -> np.ndarray:
    """The image of ``path`` tiled over ``canvas`` (h, w), (h, w, 3) float32 sRGB.

    One tile spans ``params["tile"]`` canonical units across (default
    :data:`TILE_UNITS`; its height keeps the image's aspect), shifted by
    ``params["offset"]`` (units, (du, dv)); texels are read bilinearly with wrap-around,
    so the tiling has no seams beyond the image's own edges.
    """
    image = texels(path)
    h, w = image.shape[:2]
    tile = float(params.get("tile", TILE_UNITS))
    du, dv = (float(x) for x in params.get("offset", (0.0, 0.0)))
    per_unit = w / tile  # image pixels per canonical unit
    map_x = ((canvas.u + du) * per_unit).astype(np.float32)
    map_y = ((canvas.v + dv) * per_unit).astype(np.float32)
    # cv2.remap's wrap border tiles the image; the modulo keeps the maps small (precision)
    map_x = np.mod(map_x, np.float32(w))
    map_y = np.mod(map_y, np.float32(h))
    out = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return cv2.multiply(out, cv2.merge((_fibres(canvas, noise, 0.015).astype(np.float32),) * 3))


def sample_file_pattern(rng: np.random.Generator) -> dict:
    """A texture file's sampled placement: tile size (units) and offset, so the same
    print does not sit identically on every face."""
    return {"tile": float(rng.uniform(0.85, 1.15) * TILE_UNITS), "offset": (float(rng.uniform(0, TILE_UNITS)), float(rng.uniform(0, TILE_UNITS)))}


def texture_label(name: str) -> str:
    """How a texture is named in a manifest and on a contact sheet: a file by its name
    (``file:cats.png``), a registered texture by its own."""
    return f"file:{Path(name).name}" if is_texture_file(name) else name
