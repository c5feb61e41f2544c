"""Occlusion masks written beside synthesized images (``mfrkit synth --save-occlusion``).

Format: an 8-bit greyscale PNG the size of the image, 255 where the synthetic mask
covers the face (the renderer's occlusion: final coverage above one half), 0 elsewhere;
it sits beside the image as ``<stem>_occlusion.png`` and the manifest's
``occlusion_path`` column names it. Encoding is deterministic (same mask, same bytes).
"""

from __future__ import annotations

from pathlib import PurePosixPath

import cv2
import numpy as np

from ..errors import ImageError

SUFFIX = "_occlusion.png"


def occlusion_rel(image_rel: str) -> str:
    """Where the occlusion mask of an output image goes: beside it, ``<stem>_occlusion.png``."""
    p = PurePosixPath(image_rel)
    return str(p.with_name(p.stem + SUFFIX))


def encode_occlusion(occlusion: np.ndarray) -> bytes:
    """PNG bytes of a boolean (H, W) occlusion mask (255 = covered)."""
    mask = np.asarray(occlusion)
    if mask.ndim != 2:
        raise ImageError(f"an occlusion mask is (H, W), got {mask.shape}")
    ok, data = cv2.imencode(".png", np.where(mask.astype(bool), 255, 0).astype(np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise ImageError("could not encode the occlusion mask")
    return data.tobytes()


def decode_occlusion(data: bytes) -> np.ndarray:
    """The boolean (H, W) mask of :func:`encode_occlusion`'s bytes."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 2:
        raise ImageError("not an occlusion mask (an 8-bit greyscale PNG)")
    return img > 127
