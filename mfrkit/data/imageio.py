"""Safe image reading and atomic writing: the one reader of every image a manifest names.

A manifest ``path`` names a file (``Aaron/Aaron_0001.jpg``) or a record inside a
container file (``train.rec#17``: key 17 of insightface's RecordIO, read through
``train.idx`` with no extraction; see :mod:`mfrkit.data.recordio`), or an image of an
insightface verification ``.bin`` (``lfw.bin#7``; :mod:`mfrkit.data.verification_bin`).
:func:`read_image_bytes` returns either's encoded bytes and :func:`read_image` its pixels,
so every stage (scan, landmarks, synth, partial, bench crops, pack, train, report
galleries, contact sheets) reads both kinds the same way.

:func:`read_image` always returns an (H, W, 3) uint8 RGB array with the EXIF
orientation applied, whatever the file's mode (grayscale, RGBA, palette, 16-bit,
CMYK), or raises an :class:`~mfrkit.errors.ImageError` subclass whose ``reason`` is
the short status that goes into the manifest, whatever a malformed file makes Pillow
raise. Pillow's global decompression-bomb setting is never touched; the pixel limit is
checked from the header before decoding.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..atomic import atomic_path
from ..userfiles import KINDS, UserFileError, check_read_size, read_user_bytes
from .recordio import parse_record_ref, read_record_image
from .verification_bin import parse_bin_ref, read_bin_image
from ..errors import (
    CorruptImageError,
    ImageTooLargeError,
    MissingImageError,
    NotAFileError,
    UnreadableImageError,
    UnsupportedImageError,
)

#: Default pixel limit (width x height), about a 10k x 10k photo. Face datasets never
#: come near it; a decompression bomb does.
MAX_PIXELS = 100_000_000
#: Default file size limit, bytes (the ``image`` kind of :mod:`mfrkit.userfiles`): above an
#: uncompressed image of MAX_PIXELS (300 MB). A face photo is a few hundred kilobytes.
MAX_FILE_BYTES = KINDS.get("image").max_bytes

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})


def is_image_file(path: str | os.PathLike) -> bool:
    """True when ``path`` has a common image extension (any case)."""
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit / 32-bit single channel: rescale the full range to 8 bits.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if mode.startswith("I;16") else (float(arr.min()), float(arr.max()))
        if mode == "I" and arr.min() >= 0 and arr.max() <= 65535:
            lo, hi = 0.0, 65535.0 if arr.max() > 255 else 255.0
        arr = np.clip((arr - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Composite over white: transparent regions become background, not black ink.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


@contextlib.contextmanager
def _opened(source, max_pixels: int) -> Iterator[Image.Image]:
    """The image opened lazily (header only), its size checked against ``max_pixels``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(source)
        except FileNotFoundError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(f"image exceeds the pixel limit: {exc}") from None
        except UnidentifiedImageError as exc:
            raise CorruptImageError(f"not a readable image: {exc}") from None
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - Pillow's parsers raise many types on malformed files
            raise CorruptImageError(f"cannot open image: {type(exc).__name__}: {exc}") from None
    with img:
        w, h = img.size
        if w * h > max_pixels:
            raise ImageTooLargeError(f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}")
        if w == 0 or h == 0:
            raise CorruptImageError("image has zero size")
        yield img


def _open(source, max_pixels: int) -> np.ndarray:
    with _opened(source, max_pixels) as img:
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise CorruptImageError(f"image is corrupt or truncated: {exc}") from None
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(str(exc)) from None
        except (KeyError, TypeError) as exc:
            raise UnsupportedImageError(f"unsupported image mode {img.mode!r}: {exc}") from None
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - as above: malformed data, not a bug of ours
            raise CorruptImageError(f"image is corrupt: {type(exc).__name__}: {exc}") from None
        arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise UnsupportedImageError(f"decoded to shape {arr.shape}, expected (H, W, 3)")
    return np.ascontiguousarray(arr)


#: EXIF orientations that turn the image a quarter (transpose, rotate 90/270, transverse).
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


#: JPEG start-of-frame markers (baseline, extended, progressive, lossless; not DHT/JPG/DAC).
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """``(marker, pos, length)`` of each marker segment of a JPEG after its SOI, in order,
    ``pos`` at the segment's 0xFF and ``length`` its length field (fill bytes skipped).
    Stops at the first thing that is not a whole segment, and at an EXIF block (its
    orientation is Pillow's to apply): callers that did not find what they look for by
    then leave the file to Pillow."""
    n, pos = len(data), 2
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1  # fill byte
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2 or pos + 2 + length > n or (marker == 0xE1 and data[pos + 4 : pos + 8] == b"Exif"):
            return
        yield marker, pos, length
        pos += 2 + length


def _frame_size(data: bytes, pos: int) -> tuple[int, int] | None:
    """``(width, height)`` of the start-of-frame segment at ``pos``; None when either is 0."""
    h, w = (data[pos + 5] << 8) | data[pos + 6], (data[pos + 7] << 8) | data[pos + 8]
    return (w, h) if w and h else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a plain JPEG's start-of-frame segment, walking the marker
    segments before it (a few per file: ~5 us against ~100 us for Pillow's parser, which
    a scan of millions of records feels). None, for Pillow to decide, when the file is
    not such a JPEG, holds an EXIF block before its frame (the orientation may turn it),
    or anything looks odd."""
    for marker, pos, length in _jpeg_segments(data):
        if marker in _SOF:
            return _frame_size(data, pos) if length >= 8 else None
        if marker in (0xD9, 0xDA):  # end of image or scan data before any frame: odd
            return None
    return None


def image_size(data: bytes, *, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """``(width, height)`` in pixels of encoded image bytes, from the header alone.

    The EXIF orientation is applied, so the size is that of :func:`read_image`'s array.
    Truncated pixel data goes unnoticed (nothing is decoded); the header's errors raise
    the same :class:`~mfrkit.errors.ImageError` subclasses as :func:`read_image`. A plain
    JPEG (no EXIF block) is measured from its frame header directly.
    """
    fast = _jpeg_size(data)
    if fast is not None:
        if fast[0] * fast[1] > max_pixels:
            raise ImageTooLargeError(f"image is {fast[0]}x{fast[1]} = {fast[0] * fast[1]} pixels, over the limit of {max_pixels}")
        return fast
    with _opened(io.BytesIO(data), max_pixels) as img:
        w, h = img.size
        try:
            turned = img.getexif().get(0x0112) in _QUARTER_TURNS
        except Exception as exc:  # noqa: BLE001 - a malformed EXIF block
            raise CorruptImageError(f"unreadable EXIF block: {type(exc).__name__}: {exc}") from None
    return (h, w) if turned else (w, h)


#: What each of :mod:`mfrkit.userfiles`' problems is as an image status.
_IMAGE_ERRORS = {"missing": MissingImageError, "not_a_file": NotAFileError, "too_large": ImageTooLargeError}


def read_file_bytes(path: str | os.PathLike, *, max_bytes: int | None = None) -> bytes:
    """The bytes of an image file, read by :func:`mfrkit.userfiles.read_user_bytes`: only
    a regular file, at most ``max_bytes`` (default: the ``image`` kind's cap, 512 MiB,
    ``MFRKIT_MAX_IMAGE_BYTES``).

    The file is opened without blocking and checked with ``fstat`` before anything is
    read, so a FIFO named ``x.jpg`` cannot hang the caller and a link to ``/dev/zero`` or
    a growing file cannot fill memory.

    Raises
    ------
    MissingImageError
        No such file.
    UnreadableImageError
        Permission denied or an I/O error (``reason`` ``unreadable``).
    NotAFileError
        A FIFO, device, socket or folder (``reason`` ``not_a_file``).
    ImageTooLargeError
        Over ``max_bytes``.
    """
    try:
        return read_user_bytes(path, "image", max_bytes=max_bytes)
    except UserFileError as exc:
        raise _IMAGE_ERRORS.get(exc.problem, UnreadableImageError)(str(exc)) from None


def read_image_bytes(path: str | os.PathLike, *, max_bytes: int | None = None) -> bytes:
    """The encoded bytes of an image a manifest names: a file (read by
    :func:`read_file_bytes`) or a record (``<dir>/train.rec#17``, read through the
    ``.idx`` offsets by :func:`mfrkit.data.recordio.read_record_image`, open files kept
    per process).

    Raises
    ------
    ImageError
        As :func:`read_file_bytes`; for a record also ``MissingImageError`` (no such file
        or key) and ``BadRecordError`` (reason ``bad_record``: wrong magic, truncated, ...).
    """
    ref, binref = parse_record_ref(path), parse_bin_ref(path)
    if ref is not None or binref is not None:
        data = read_record_image(*ref) if ref is not None else read_bin_image(*binref)
        try:  # the image kind's cap holds for a record as for a file (MFRKIT_MAX_IMAGE_BYTES)
            check_read_size(len(data), path, "image", max_bytes=max_bytes)
        except UserFileError as exc:
            raise ImageTooLargeError(str(exc)) from None
        return data
    return read_file_bytes(path, max_bytes=max_bytes)


def read_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image (a file, or a record such as ``train.rec#17``) as RGB.

    Parameters
    ----------
    path : path-like
    max_pixels : int
        Refuse images with more pixels than this (checked before decoding).

    Returns
    -------
    ndarray of shape (H, W, 3), uint8, RGB, EXIF orientation applied.

    Raises
    ------
    MissingImageError, UnreadableImageError, NotAFileError, CorruptImageError,
    ImageTooLargeError, UnsupportedImageError (see :func:`read_file_bytes`)
    """
    return decode_image(read_image_bytes(path), max_pixels=max_pixels)


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """:func:`read_image` for encoded bytes already in memory: (H, W, 3) uint8 RGB.

    A plain JPEG whose structure checks out (:func:`_plain_jpeg_size`) is decoded by
    OpenCV, whose libjpeg-turbo gives the same pixels as Pillow's in half the time on a
    face crop; anything else, and anything OpenCV refuses, goes through Pillow, which
    decides the error.
    """
    size = _plain_jpeg_size(data)
    if size is not None and size[0] * size[1] <= max_pixels:
        import cv2  # here: a command that never decodes does not pay for importing OpenCV

        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if bgr is not None and bgr.shape == (size[1], size[0], 3):
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return _open(io.BytesIO(data), max_pixels)


#: Markers without a length (EOI, restarts, TEM): out of place before the scan.
_STANDALONE = frozenset({0xD9, 0x01, *range(0xD0, 0xD8)})


def _plain_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a JPEG that OpenCV may decode in Pillow's place, else None.

    OpenCV's decoder shrugs off corrupt entropy data that Pillow refuses (libjpeg
    warns, OpenCV goes on), so the file must show no sign of it: SOI first and EOI
    last; one 8-bit, three-component baseline frame (Pillow and OpenCV then convert
    YCbCr alike) and no EXIF block (its orientation is Pillow's to apply); a single
    scan in which every 0xFF byte is stuffing (0xFF00) or a restart marker (a flipped
    bit in the scan usually shows as a stray marker there). Measured on 800 real JPEGs (8,000 variants) with
    truncations, zeroed runs, early EOIs and bit flips: every file this passes decodes
    to Pillow's pixels, and every one Pillow refuses is failed here
    (``tests/data/test_imageio.py``).
    """
    n = len(data)
    if n < 8 or data[-2:] != b"\xff\xd9":
        return None
    size = None
    for marker, pos, length in _jpeg_segments(data):
        if marker in (0xC0, 0xC1):
            if length < 8 or data[pos + 4] != 8 or data[pos + 9] != 3 or size is not None:
                return None
            size = _frame_size(data, pos)
            if size is None:
                return None
        elif marker in _SOF or marker in _STANDALONE or (marker == 0xDA and size is None):
            return None  # progressive, lossless, arithmetic, 12-bit; a marker out of place; a scan before the frame
        if marker == 0xDA:
            start = pos + 2 + length
            scan = np.frombuffer(data, np.uint8, count=n - 2 - start, offset=start)
            if not scan.size or scan[-1] == 0xFF:
                return None
            after = scan[np.flatnonzero(scan[:-1] == 0xFF) + 1]
            return size if bool(((after == 0) | ((after >= 0xD0) & (after <= 0xD7))).all()) else None
    return None


def encode_image(image: np.ndarray, fmt: str = ".jpg", *, quality: int = 95) -> bytes:
    """Encode an (H, W, 3) uint8 RGB array; ``fmt`` is an extension (``.jpg``, ``.png``, ...).

    Encoding is deterministic: the same array gives the same bytes.
    """
    fmt = fmt.lower()
    pil_fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}.get(fmt)
    if pil_fmt is None:
        raise UnsupportedImageError(f"cannot write images as {fmt!r}")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise UnsupportedImageError(f"expected an (H, W, 3) uint8 image, got {arr.shape} {arr.dtype}")
    if pil_fmt == "JPEG":
        # OpenCV's encoder (the pinned opencv-contrib-python's libjpeg-turbo, baseline,
        # 4:2:0) writes the bytes Pillow's does, in three quarters of the time; being
        # pinned, it also keeps the bytes the same from install to install.
        import cv2

        ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if ok:
            return data.tobytes()
    buf = io.BytesIO()
    options = {"quality": quality} if pil_fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(arr, mode="RGB").save(buf, format=pil_fmt, **options)
    return buf.getvalue()


def write_image(path: str | os.PathLike, image: np.ndarray, *, quality: int = 95) -> bytes:
    """Encode ``image``, an (H, W, 3) uint8 RGB array, by the extension of ``path`` and
    write it atomically.

    Returns the bytes written (so callers can hash them without re-reading).
    """
    path = Path(path)
    data = encode_image(image, path.suffix, quality=quality)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return data
