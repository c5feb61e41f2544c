"""The tile work of a scan on torch: the tiles of :mod:`.tiles` on a CUDA device
(``--search-device cuda``), or on the CPU with ``backend="torch"``, which runs the same
code, so the CPU tests cover the GPU path. The same keys, bins and outputs as the numpy
tiles.

Per tile, in order on the device's stream (``S``: the tile's float32 scores):

1. ``S = R @ Q.T`` in full float32 (TF32 off for the whole scan, set once);
2. the same-identity positions (found on the CPU by a helper thread one tile ahead, and
   uploaded as one flat index) give the genuine scores, kept on the device, and are
   overwritten with the sentinel of the reserved bin;
3. the keys ``int32(S * 2^k + offset)`` plus the cells' (and the pilot's row groups')
   offsets are counted into the histogram and, when the pass keeps some bins' scores,
   looked up in the bins' table; the positions found (``nonzero``, the one host sync of a
   tile) give the kept scores and their cells.

Step 3 is one Triton kernel on CUDA (:mod:`mfrkit.bench.score.streaming_triton`: one read of the
scores, int32 atomic counts added to the int64 histogram before any bin could overflow,
one byte written per score) where Triton imports and compiles (it comes with torch's CUDA
wheels; :data:`REDUCER`). Elsewhere, and if the kernel fails (a warning, never a different
result), torch operations do it: ``T = S * 2^k + offset`` (one ``addcmul``: the product by
a power of two is exact, the sum rounds once, as numpy's two steps do), its int32
truncation, the offsets, ``index_add_`` (no host sync, unlike ``bincount``, which reads the
keys' minimum and maximum back first) and ``index_select`` in the bins' table.

A key outside the histogram would be an out-of-range index on the device, so keys are
checked before they are used. When every embedding is finite with a norm at most
:data:`BOUNDED_NORM`, no float32 score can leave [-1.25, 1.25] (``|r.q| <= |r||q|`` plus
float32 rounding of a dot product, far below the margin), which one check of the norms
per scan proves; otherwise each tile's minimum and maximum are read back and checked.

Two sets of tile buffers alternate: tile ``i + 1``'s product is queued before tile ``i``'s
lookups, so the device computes while the host waits for a tile's positions. Genuine
and kept scores stay on the device until the end of the pass: one copy each.

Memory on the device: both sides' embeddings, two tiles of 4 bytes per entry (scores;
12 with torch operations: ``T`` and keys too) and one byte per entry (the lookup mask),
the histogram (8 bytes x cells x 163,843 bins, x 16 groups in the pilot; 4 more with the
kernel).
"""

from __future__ import annotations

import contextlib
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from .scan import ScanResult, StreamingError
from .tiles import Plan, Tiles

#: Scores the Triton kernel counts into int32 before they are added to the int64 counts:
#: no bin can overflow in between.
FLUSH_AT = 2**31 - 1
#: Embeddings whose norms are all at most this (and finite) give scores inside the bins
#: without a per-tile check: 1.1^2 = 1.21 < 1.25.
BOUNDED_NORM = 1.1


@contextlib.contextmanager
def ieee_float32_matmul(torch_module=None):
    """Float32 matrix products in full float32 (no TF32) inside the block, whatever the
    caller had set; restored after.

    Uses ``torch.backends.cuda.matmul.fp32_precision`` (``"ieee"``) where torch has it
    (2.9 and later: mixing it with the older ``allow_tf32`` flag raises there once the new
    one was set), else ``allow_tf32 = False``. Set once per scan, never per tile.
    """
    torch = torch_module
    if torch is None:
        import torch
    m = torch.backends.cuda.matmul
    if hasattr(m, "fp32_precision"):
        before = m.fp32_precision
        m.fp32_precision = "ieee"
        try:
            yield
        finally:
            m.fp32_precision = before
        return
    before = m.allow_tf32
    m.allow_tf32 = False
    try:
        yield
    finally:
        m.allow_tf32 = before


def norms_bounded(torch, vectors, limit: float = BOUNDED_NORM) -> bool:
    """True when every row of ``vectors`` (a device tensor) is finite with norm <= ``limit``."""
    if vectors.numel() == 0:
        return True
    norms = torch.linalg.vector_norm(vectors, dim=1)
    return bool((norms <= limit).all())  # NaN compares False


class _HostValue:
    """A small device tensor on its way to the host: the copy is queued now (pinned,
    non-blocking on CUDA) and waited for only when the value is read."""

    def __init__(self, torch, tensor) -> None:
        if tensor.device.type == "cuda":
            self._host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            self._host.copy_(tensor, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host, self._event = tensor, None

    def numpy(self) -> np.ndarray:
        if self._event is not None:
            self._event.synchronize()
        return self._host.numpy()


class _TileInput:
    """What the CPU prepares for a tile: geometry, genuine positions, key offsets."""

    __slots__ = ("r0", "c0", "rows", "cols", "flat", "keep", "cells", "excluded", "row_off", "col_off", "n_lower")


class TorchTiles(Tiles):
    """:class:`~mfrkit.bench.score.tiles.Tiles` whose products and reductions run on torch,
    a whole pass at a time (:meth:`scan`); the embeddings are copied to the device once.

    Parameters
    ----------
    ref, probe, bins, kw : as :class:`~mfrkit.bench.score.tiles.Tiles`.
    parent : TorchTiles, optional
        For a subset of the parent's reference rows (the pilot): shares the probe side
        on the device and takes those rows from its reference side.
    rows : ndarray of int64, the parent's reference rows of this subset.
    """

    backend = "torch"

    def __init__(self, ref, probe, bins, *, device: str, parent: "TorchTiles | None" = None,
                 rows: np.ndarray | None = None, **kw) -> None:
        super().__init__(ref, probe, bins, device=device, **kw)
        import torch

        self.torch = torch
        self.dev = torch.device(device)
        if parent is not None:
            self.R = parent.R[torch.from_numpy(np.asarray(rows, np.int64)).to(self.dev)]
            self.Q = parent.Q
            self.bounded = parent.bounded
        else:
            self.R = torch.from_numpy(ref.vectors).to(self.dev)
            self.Q = torch.from_numpy(probe.vectors).to(self.dev)
            self.bounded = norms_bounded(torch, self.R) and norms_bounded(torch, self.Q)

    def _of(self, ref, *, tile_rows: int, tile_cols: int, n_cells, rows: np.ndarray) -> "TorchTiles":
        return TorchTiles(ref, self.probe, self.bins, allow_same_source=self.allow_same_source, tile_rows=tile_rows,
                          tile_cols=tile_cols, device=self.device, n_cells=n_cells, parent=self, rows=rows)

    def run(self, tile: tuple[int, int], plan: Plan, out: ScanResult, hist: np.ndarray | None) -> None:
        """One tile by ``plan`` (a pass of one tile: :meth:`scan` is the fast way)."""
        self._pass([tile], plan, out, hist, None)

    # --- the CPU side (a helper thread, one tile ahead) --------------------------------------

    def _prepare(self, tile: tuple[int, int], plan: Plan, stride: int) -> _TileInput:
        t = self
        r0, c0 = tile
        width = min(t.tc, len(t.probe.vectors) - c0)
        rows, cols, excluded = t.positions(r0, c0)
        x = _TileInput()
        x.r0, x.c0, x.rows, x.cols, x.excluded = r0, c0, rows, cols, excluded
        x.keep = ~excluded
        x.flat = self._upload(rows * width + cols) if len(rows) else None
        x.cells = None
        x.n_lower = self._lower_count(r0, c0)
        if plan.genuine and len(rows):
            g_r, g_c = rows[x.keep], cols[x.keep]
            x.cells = (t.ref.cell[r0 + g_r] * t.n_probe_cells + t.probe.cell[c0 + g_c]).astype(np.int64)
        offs = t.cell_offsets(r0, c0)
        height = min(t.tr, len(t.ref.vectors) - r0)
        row_off = None if offs is None else offs[0]
        if plan.row_groups is not None:
            groups = plan.row_groups[r0 : r0 + height].astype(np.int64) * stride
            row_off = groups if row_off is None else row_off + groups
        x.row_off = None if row_off is None else self._upload(row_off)
        x.col_off = None if offs is None else self._upload(offs[1])
        return x

    def _lower_count(self, r0: int, c0: int) -> int:
        """How many positions of the tile at (r0, c0) :meth:`lower_mask` covers (counted on
        the host, so the device mask needs no sync): row i holds ``r0 + i - c0 + 1`` of
        them, clipped to the tile's width."""
        if not self.triangle:
            return 0
        height = min(self.tr, len(self.ref.vectors) - r0)
        width = min(self.tc, len(self.probe.vectors) - c0)
        return int(np.clip(r0 + np.arange(height) - c0 + 1, 0, width).sum())

    def _upload(self, a: np.ndarray):
        t = self.torch.from_numpy(np.ascontiguousarray(a, np.int64))
        if self.dev.type == "cuda":
            return t.pin_memory().to(self.dev, non_blocking=True)
        return t

    # --- the device side --------------------------------------------------------------------

    def scan(self, plan: Plan, out: ScanResult, hist: np.ndarray | None,
             progress: Callable[[int], None] | None = None) -> None:
        """One pass over every tile with ``plan``; adds the counts to ``hist`` (flat int64)
        and the genuine and kept scores to ``out``, as the numpy path does."""
        self._pass(self.tiles, plan, out, hist, progress)

    def _pass(self, tiles: list, plan: Plan, out: ScanResult, hist: np.ndarray | None,
              progress: Callable[[int], None] | None) -> None:
        """A pass over ``tiles`` (their (r0, c0) corners), in order."""
        torch = self.torch
        t = self
        if not tiles:
            return
        stride = t.n_cells * t.bins.n_bins
        size = len(hist) if hist is not None else stride
        n = t.tr * t.tc
        # int32 keys: half the memory traffic of int64 (the key range of any realistic
        # breakdown fits; a huge one falls back to int64 on torch operations)
        self._key_dtype = torch.int32 if size < 2**31 else torch.int64
        self._kernel = _triton_kernel(self.dev) if size < 2**31 else None
        out.reducer = "triton" if self._kernel is not None else "torch"
        self._fell_back = False
        self._bufs = [{"S": torch.empty(n, dtype=torch.float32, device=self.dev)} for _ in range(2)]
        self._hist = torch.zeros(size, dtype=torch.int64, device=self.dev) if plan.histogram else None
        # the kernel counts into int32, added to the int64 counts before any bin could overflow
        self._hist32 = torch.zeros(size, dtype=torch.int32, device=self.dev) if plan.histogram and self._kernel else None
        self._since_flush = 0
        self._lut = None if plan.lut is None else torch.from_numpy(np.ascontiguousarray(plan.lut)).to(self.dev)
        self._lut8 = None if self._lut is None else self._lut.to(torch.uint8)
        self._mask = None if self._lut is None else torch.empty(n, dtype=torch.uint8 if self._kernel else torch.bool,
                                                                device=self.dev)
        self._ones = torch.ones((), dtype=torch.int64, device=self.dev).expand(n)
        self._off = torch.tensor(float(t.bins.offset), dtype=torch.float32, device=self.dev)
        self._scale = torch.tensor(float(t.bins.bins_per_unit), dtype=torch.float32, device=self.dev)
        self._genuine, self._genuine_keep, self._values, self._value_cells = [], [], [], []
        with ieee_float32_matmul(torch), torch.inference_mode(), ThreadPoolExecutor(1) as helper:
            ahead = deque(helper.submit(self._prepare, tile, plan, stride) for tile in tiles[:2])
            pending = None
            for i in range(len(tiles)):
                x = ahead.popleft().result()
                if i + 2 < len(tiles):
                    ahead.append(helper.submit(self._prepare, tiles[i + 2], plan, stride))
                staged = self._score(x, plan, out, self._bufs[i % 2])
                if pending is not None:  # the previous tile's lookups queue behind this product
                    self._reduce(pending[0], *pending[1])
                    if progress:
                        progress(1)
                pending = (x, staged)
            self._reduce(pending[0], *pending[1])
            if progress:
                progress(1)
        self._collect(out, hist)

    def _score(self, x: _TileInput, plan: Plan, out: ScanResult, buf: dict):
        """Product, genuine scores and sentinels of one tile (all queued, no sync)."""
        torch = self.torch
        t = self
        A = self.R[x.r0 : x.r0 + t.tr]
        B = self.Q[x.c0 : x.c0 + t.tc]
        m = len(A) * len(B)
        S = torch.matmul(A, B.T, out=buf["S"][:m].view(len(A), len(B))).view(-1)
        if x.flat is not None:
            if plan.genuine:
                self._genuine.append(S[x.flat])
                self._genuine_keep.append(x.keep)
                out.genuine_rows.append(x.rows[x.keep] + x.r0)
                out.genuine_cols.append(x.cols[x.keep] + x.c0)
                out.genuine_cells.append(x.cells)
                out.excluded += int(x.excluded.sum())
            S[x.flat] = float(t.sentinel)
        out.sentinels += len(x.rows)
        if x.n_lower:  # triangle mode: the mirror half and the diagonal are not comparisons
            rows_at = torch.arange(x.r0, x.r0 + len(A), device=self.dev)
            cols_at = torch.arange(x.c0, x.c0 + len(B), device=self.dev)
            S.view(len(A), len(B)).masked_fill_(cols_at[None, :] <= rows_at[:, None], float(t.sentinel))
            out.sentinels += x.n_lower
        check = None if self.bounded else _HostValue(torch, torch.stack(torch.aminmax(S)))
        return S, (len(A), len(B)), check, buf

    def _check(self, check: _HostValue) -> None:
        """The tile's lowest and highest scores must fall inside the bins (NaN never does)."""
        bins = self.bins
        lo, hi = (np.float32(v) * np.float32(bins.bins_per_unit) + np.float32(bins.offset) for v in check.numpy())
        if not lo >= 1.0:  # NaN too
            raise StreamingError("a score is NaN, infinite or below -1.25: embeddings must be finite and "
                                 "L2-normalised")
        if not hi < bins.n_bins:
            raise StreamingError("a score is above 1.25: embeddings must be L2-normalised")

    def _reduce(self, x: _TileInput, S, shape: tuple[int, int], check: _HostValue | None, buf: dict) -> None:
        """Check (unbounded inputs only), then count and look up one tile's keys."""
        if check is not None:
            self._check(check)
        if self._kernel is not None:
            try:
                self._reduce_fused(x, S, shape)
                return
            except Exception as exc:  # noqa: BLE001 - a kernel that cannot compile here: torch operations
                warnings.warn(f"all-pairs: the Triton kernel failed ({type(exc).__name__}: {str(exc)[:200]}); "
                              "scoring the remaining tiles with torch operations", RuntimeWarning, stacklevel=2)
                self._flush()
                self._kernel = self._hist32 = None
                self._fell_back = True
                if self._mask is not None:
                    self._mask = self._mask.bool()
        self._reduce_ops(x, S, shape, buf)

    def _reduce_fused(self, x: _TileInput, S, shape: tuple[int, int]) -> None:
        """The Triton kernel: keys counted and looked up in one read of the scores; the kept
        scores' keys made again, for those few, by the same exact arithmetic."""
        torch = self.torch
        rows, cols = shape
        m = rows * cols
        if self._hist32 is not None and self._since_flush + m > FLUSH_AT:
            self._flush()
        keep = None if self._lut8 is None else self._mask[:m]
        self._kernel(S.view(rows, cols), float(self.bins.bins_per_unit), float(self.bins.offset),
                     x.row_off, x.col_off, self._hist32, self._lut8, keep)
        self._since_flush += m
        if keep is not None:
            at = torch.nonzero(keep).view(-1)
            if at.numel():
                values = S[at]
                keys = torch.addcmul(self._off, values, self._scale).to(torch.int64)
                if x.row_off is not None:
                    keys += x.row_off[at // cols]
                if x.col_off is not None:
                    keys += x.col_off[at % cols]
                self._values.append(values)
                self._value_cells.append(keys // self.bins.n_bins)

    def _reduce_ops(self, x: _TileInput, S, shape: tuple[int, int], buf: dict) -> None:
        """Torch operations: ``T = S * 2^k + offset`` (one ``addcmul``), its integer keys,
        the offsets, ``index_add_`` into the histogram, the kept bins' lookup."""
        torch = self.torch
        nb = self.bins.n_bins
        m = S.numel()
        if "T" not in buf:  # made on first use: the Triton path needs neither
            n = len(buf["S"])
            buf["T"] = torch.empty(n, dtype=torch.float32, device=self.dev)
            buf["K"] = torch.empty(n, dtype=self._key_dtype, device=self.dev)
        T = torch.addcmul(self._off, S, self._scale, out=buf["T"][:m])
        K = buf["K"][:m]
        K.copy_(T)  # truncation = floor: every checked value is >= 1
        K2 = K.view(shape)
        if x.row_off is not None:
            K2 += x.row_off.to(K.dtype)[:, None]
        if x.col_off is not None:
            K2 += x.col_off.to(K.dtype)[None, :]
        if self._hist is not None:
            self._hist.index_add_(0, K, self._ones[:m])
        if self._lut is not None:
            mask = torch.index_select(self._lut, 0, K, out=self._mask[:m])
            at = torch.nonzero(mask).view(-1)
            if at.numel():
                self._values.append(S[at])
                self._value_cells.append(K[at].to(torch.int64) // nb)

    def _flush(self) -> None:
        """The kernel's int32 counts into the int64 histogram."""
        if self._hist32 is not None:
            self._hist += self._hist32
            self._hist32.zero_()
        self._since_flush = 0

    def _collect(self, out: ScanResult, hist: np.ndarray | None) -> None:
        """The pass's device results into ``out`` and ``hist`` (one copy each)."""
        torch = self.torch
        self._flush()
        if self._fell_back:
            out.reducer = FELL_BACK
        if self._genuine:
            # every same-identity score was gathered; the excluded ones (same image, same
            # source) are dropped here, on the host
            g = torch.cat(self._genuine).cpu().numpy()
            out.genuine.append(g[np.concatenate(self._genuine_keep)])
        if self._values:
            out.values.append(torch.cat(self._values).cpu().numpy())
            out.value_cells.append(torch.cat(self._value_cells).cpu().numpy())
        if hist is not None and self._hist is not None:
            hist += self._hist.cpu().numpy()
        self._genuine, self._genuine_keep, self._values, self._value_cells = [], [], [], []
        self._hist = self._hist32 = self._lut = self._lut8 = self._mask = self._bufs = None


#: The element-wise reduction of the torch scorer: ``auto`` (the Triton kernel on CUDA
#: where Triton imports, else torch operations), ``triton`` (also on CPU tensors when
#: ``TRITON_INTERPRET=1``: the tests) or ``torch``.
REDUCER = "auto"
REDUCERS = ("auto", "triton", "torch")
#: :attr:`~mfrkit.bench.score.scan.ScanResult.reducer` of a scan whose kernel failed.
FELL_BACK = "torch (the Triton kernel failed)"


def _triton_kernel(dev) -> Callable | None:
    """:func:`~mfrkit.bench.score.streaming_triton.tile_keys` when :data:`REDUCER` allows it and
    Triton imports, else None."""
    if REDUCER not in REDUCERS:
        raise StreamingError(f"unknown all-pairs reducer {REDUCER!r}; choose one of: {', '.join(REDUCERS)}")
    if REDUCER == "torch" or (REDUCER == "auto" and dev.type != "cuda"):
        return None
    try:
        from .streaming_triton import tile_keys
    except Exception as exc:  # noqa: BLE001 - no Triton, or one that cannot load here
        if REDUCER == "triton":
                raise StreamingError(f"the Triton all-pairs kernel was asked for but Triton does not import: {exc}") from None
        return None
    return tile_keys
