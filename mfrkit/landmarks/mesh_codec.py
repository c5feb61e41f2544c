"""The dense mesh in 16-bit fixed point: half the bytes of float32, within 1/64 px.

A mediapipe mesh (478 vertices, ``x, y, z`` in pixels) is stored per face as an origin
(its per-axis minimum, float32) and each coordinate's offset from it in steps of
:data:`MESH_STEP` = 1/32 px, rounded to the nearest step: an unsigned 16-bit integer
``q = round((v - origin) * 32)``. Decoding gives ``origin + q / 32``, so every coordinate
is off by at most half a step, :data:`MAX_MESH_ERROR` = 1/64 px = 0.0156 px, and a
vertex by at most ``sqrt(2) / 64`` = 0.022 px in the image plane (``sqrt(3) / 64`` =
0.027 px in 3D), under the 0.05 px mfrkit allows (plus float32 rounding, under 1e-3 px
for coordinates below 16,000 px). A face larger than ``65535 / 32`` = 2047.97 px along
an axis, or a mesh with a non-finite value, does not fit: its row keeps the float32 mesh
instead (:func:`encode_meshes` says which).

The integers are stored as two byte planes, the 1434 high bytes then the 1434 low
bytes, each axis-major (every ``x``, then every ``y``, then every ``z``): for faces of a
few hundred pixels the high bytes are small and alike, and the planes compress to about
2 kB per face against 5.7 kB for float32 (``benchmarks/landmark_store.py``).
"""

from __future__ import annotations

import numpy as np

#: Fixed-point step of a stored mesh coordinate, pixels.
MESH_STEP = 1.0 / 32.0
#: Largest difference between a stored and a decoded mesh coordinate from the fixed
#: point alone, pixels (half a step).
MAX_MESH_ERROR = MESH_STEP / 2
#: Largest offset from the origin the 16-bit integers hold, pixels.
MAX_EXTENT = 65535 * MESH_STEP


def encoded_width(n_points: int) -> int:
    """Bytes of one encoded mesh of ``n_points`` vertices (two bytes per coordinate)."""
    return 2 * 3 * n_points


def encode_meshes(meshes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode meshes into origins and byte planes.

    Parameters
    ----------
    meshes : ndarray of shape (n, P, 3), float
        Vertices in pixels.

    Returns
    -------
    origin : ndarray of shape (n, 3), float32
        Per-axis minimum of each mesh.
    planes : ndarray of shape (n, 6 * P), uint8
        High-byte plane then low-byte plane of the 16-bit offsets, axis-major (see the
        module docstring); zeros where ``fits`` is False.
    fits : ndarray of shape (n,), bool
        False for a mesh that cannot be encoded (an extent of :data:`MAX_EXTENT` or more,
        or a non-finite value): keep that one in float32.
    """
    m = np.asarray(meshes, dtype=np.float32)
    if m.ndim != 3 or m.shape[2] != 3:
        raise ValueError(f"meshes must have shape (n, P, 3), got {m.shape}")
    n, p = m.shape[:2]
    finite = np.isfinite(m).all(axis=(1, 2))
    safe = np.where(finite[:, None, None], m, 0.0).astype(np.float32)
    origin = safe.min(axis=1) if p else np.zeros((n, 3), np.float32)
    # Offsets from the float32 origin, in float64, so that decoding's origin + q/16 is
    # within half a step of the float32 input.
    steps = np.rint((safe.astype(np.float64) - origin[:, None, :].astype(np.float64)) / MESH_STEP)
    fits = finite & (steps.max(axis=(1, 2), initial=0.0) <= 65535)
    q = np.where(fits[:, None, None], steps, 0.0).astype(np.uint16)
    axis_major = q.transpose(0, 2, 1).reshape(n, 3 * p)
    planes = np.concatenate([(axis_major >> 8).astype(np.uint8), (axis_major & 0xFF).astype(np.uint8)], axis=1)
    return origin.astype(np.float32), planes, fits


def decode_meshes(origin: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_meshes` (for the meshes that fit).

    Parameters
    ----------
    origin : ndarray of shape (n, 3), float32
    planes : ndarray of shape (n, 6 * P), uint8

    Returns
    -------
    ndarray of shape (n, P, 3), float32, pixels
    """
    planes = np.asarray(planes, dtype=np.uint8)
    n, width = planes.shape
    if width % 6:
        raise ValueError(f"an encoded mesh has 6 bytes per vertex; got rows of {width} bytes")
    p = width // 6
    half = 3 * p
    q = (planes[:, :half].astype(np.uint16) << 8) | planes[:, half:]
    xyz = q.reshape(n, 3, p).transpose(0, 2, 1).astype(np.float64) * MESH_STEP
    return (xyz + np.asarray(origin, np.float64)[:, None, :]).astype(np.float32)
