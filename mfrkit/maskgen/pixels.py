"""Per-channel arithmetic on small colour images, the way the renderers need it fast.

numpy broadcasts a field of shape (h, w) against colours of shape (h, w, 3) with an
inner loop over the last axis, three elements long: ten times slower than the same
arithmetic on whole arrays. These helpers do it with OpenCV's per-channel operations
(or numpy on flat arrays) instead. All take and return float32 arrays; colours are
sRGB or linear triples as the caller uses them.
"""

from __future__ import annotations

import cv2
import numpy as np


def channels(field: np.ndarray, n: int = 3) -> np.ndarray:
    """``field`` (h, w) repeated into ``n`` channels, (h, w, n)."""
    return cv2.merge((field,) * n)


def scale(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Every channel of ``image`` (h, w, c) times ``field`` (h, w): a new array."""
    return cv2.multiply(image, channels(field, image.shape[2]))


def paint(field: np.ndarray, color) -> np.ndarray:
    """A colour image (h, w, len(color)) that is ``field`` (h, w) times ``color``."""
    f = np.asarray(field, dtype=np.float32)
    return cv2.merge(tuple(f * np.float32(c) for c in np.asarray(color, dtype=np.float64)))


def mix(a: np.ndarray, b, weight: np.ndarray) -> np.ndarray:
    """``a * (1 - weight) + b * weight``: ``a`` (h, w, c); ``b`` the same shape or one
    colour (c,); ``weight`` (h, w)."""
    w = np.asarray(weight, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if b.ndim == 1:
        return cv2.add(scale(a, np.float32(1.0) - w), paint(w, b))
    return cv2.add(a, scale(cv2.subtract(b, a), w))


def clip01(x: np.ndarray) -> np.ndarray:
    """``x`` clipped to 0-1 in place (any shape, float32 and C-contiguous) and returned."""
    flat = x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(1, -1)
    cv2.min(flat, 1.0, dst=flat)
    cv2.max(flat, 0.0, dst=flat)
    return x


def transform(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``image`` (h, w, k) times ``matrix`` (m, k) per pixel, (h, w, m) float32.

    ``cv2.transform`` from four channels to three takes a slow path (ten times its
    four-to-four speed): that case goes four-to-four with a zero row and drops it.
    """
    m = np.asarray(matrix, dtype=np.float32)
    if m.shape == (3, 4) and image.shape[2] == 4:
        out = cv2.transform(image, np.vstack([m, np.zeros((1, 4), np.float32)]))
        return cv2.cvtColor(out, cv2.COLOR_RGBA2RGB)
    return cv2.transform(image, m)
