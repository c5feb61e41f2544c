"""One Triton kernel for the element-wise work of an all-pairs tile on a GPU.

:mod:`mfrkit.bench.score.streaming_torch` makes a tile's scores ``S`` with one float32 matrix
product; the rest (bin keys, histogram, the kept bins' lookup) is memory-bound. As
separate torch operations it reads and writes each score about ten times (``T = S * 2^k +
offset``, its int32 copy, the offsets, the histogram's reads, the lookup's mask); this
kernel reads each score once, counts it into an int32 histogram with an atomic add and
writes one byte (kept or not) when the pass keeps some bins.

The keys are those of the torch and numpy paths: ``int32(S * bins_per_unit + offset)``
plus the row's and the column's offsets, and ``bins_per_unit`` is a power of two, so the
product is exact and the sum rounds once whether or not it is fused into an FMA. Keys are
clamped into the histogram: never needed when the scores are checked (bounded norms, or
the tile's minimum and maximum), it keeps a bad score from writing outside it.

Imported only where Triton is installed (it comes with torch's CUDA wheels on Linux).
With ``TRITON_INTERPRET=1`` Triton runs the kernel on CPU tensors, which is how the
tests check it against the torch path without a GPU.
"""

from __future__ import annotations

import triton
import triton.language as tl

#: Rows x columns of the tile each program handles (16 x 256 scores: 16 KB read, and
#: each row's 256 columns are one contiguous 1 KB span).
BLOCK_ROWS, BLOCK_COLS = 16, 256


@triton.jit
def _tile_keys(S, n_rows, n_cols, scale, offset, row_off, col_off, hist, size, lut, keep,
               HAS_ROW: tl.constexpr, HAS_COL: tl.constexpr, HIST: tl.constexpr, LUT: tl.constexpr,
               BR: tl.constexpr, BC: tl.constexpr):  # fmt: skip
    r = tl.program_id(0) * BR + tl.arange(0, BR)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    inside = (r[:, None] < n_rows) & (c[None, :] < n_cols)
    at = r[:, None].to(tl.int64) * n_cols + c[None, :]
    s = tl.load(S + at, mask=inside, other=0.0)
    key = (s * scale + offset).to(tl.int32)
    if HAS_ROW:
        key += tl.load(row_off + r, mask=r < n_rows, other=0).to(tl.int32)[:, None]
    if HAS_COL:
        key += tl.load(col_off + c, mask=c < n_cols, other=0).to(tl.int32)[None, :]
    key = tl.minimum(tl.maximum(key, 0), size - 1)
    if HIST:
        tl.atomic_add(hist + key, 1, mask=inside, sem="relaxed")
    if LUT:
        tl.store(keep + at, tl.load(lut + key, mask=inside, other=0), mask=inside)


def tile_keys(S, scale: float, offset: float, row_off, col_off, hist, lut, keep) -> None:
    """Count the keys of tile ``S`` into ``hist`` and mark the kept ones in ``keep``.

    Parameters
    ----------
    S : float32 tensor of shape (rows, cols), contiguous: the tile's scores.
    scale, offset : the bins' ``bins_per_unit`` and ``offset``.
    row_off, col_off : int64 tensors of shape (rows,) and (cols,), or None: added to the keys.
    hist : int32 tensor of ``size`` counts (< 2^31), or None (no histogram this pass).
    lut : uint8 tensor of ``size`` (1: keep the scores of that key), or None.
    keep : uint8 tensor of shape (rows * cols,): set to ``lut[key]`` (with ``lut``).
    """
    rows, cols = S.shape
    size = len(hist) if hist is not None else len(lut)
    grid = (triton.cdiv(rows, BLOCK_ROWS), triton.cdiv(cols, BLOCK_COLS))
    _tile_keys[grid](S, rows, cols, float(scale), float(offset),
                     S if row_off is None else row_off, S if col_off is None else col_off,
                     S if hist is None else hist, size, S if lut is None else lut, S if keep is None else keep,
                     HAS_ROW=row_off is not None, HAS_COL=col_off is not None, HIST=hist is not None,
                     LUT=lut is not None, BR=BLOCK_ROWS, BC=BLOCK_COLS)  # fmt: skip
