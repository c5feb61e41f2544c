"""The tile work of a scan: tile geometry, same-identity positions per tile, and one
tile's reduction on numpy / BLAS (scores -> bin keys -> histogram counts and kept
scores). The torch version of a tile (CUDA, or the CPU to test that path) is
:class:`~mfrkit.bench.score.streaming_torch.TorchTiles`.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from .bins import ScoreBins
from .scan import ScanResult, Side, StreamingError, same_identity_pairs

# --- the tile work ---------------------------------------------------------------------------------


@dataclass
class Plan:
    """What one pass does with each tile."""

    histogram: bool
    genuine: bool
    lut: np.ndarray | None  # bool (n_cells * n_bins,): keep scores of these (cell, bin) keys
    # the pilot: a histogram per group of reference rows (group id of each row), the
    # histogram argument then holding n_groups * n_cells * n_bins counts
    row_groups: np.ndarray | None = None


class Tiles:
    """Tile geometry and the per-tile work shared by the passes, on numpy / BLAS.

    :func:`make_tiles` picks this class or its torch twin
    (:class:`~mfrkit.bench.score.streaming_torch.TorchTiles`).
    """

    backend = "numpy"

    def __init__(self, ref: Side, probe: Side, bins: ScoreBins, *, allow_same_source: bool, tile_rows: int,
                 tile_cols: int, device: str, n_cells: tuple[int, int] | None = None) -> None:
        self.ref, self.probe, self.bins = ref, probe, bins
        self.allow_same_source = allow_same_source
        self.tr, self.tc = max(1, int(tile_rows)), max(1, int(tile_cols))
        self.device = device
        n_ref_cells, self.n_probe_cells = n_cells or (ref.n_cells, probe.n_cells)
        if n_ref_cells < ref.n_cells or self.n_probe_cells < probe.n_cells:
            raise StreamingError("n_cells is smaller than the sides' cell codes")
        self.n_cells = n_ref_cells * self.n_probe_cells
        self.tiles = [(r, c) for r in range(0, len(ref.vectors), self.tr) for c in range(0, len(probe.vectors), self.tc)]
        self.sentinel = bins.excluded_value
        self._local = threading.local()

    def positions(self, r0: int, c0: int):
        """Same-identity (rows, cols) of a tile, and which of them are excluded."""
        ref, probe = self.ref, self.probe
        r1, c1 = min(r0 + self.tr, len(ref.vectors)), min(c0 + self.tc, len(probe.vectors))
        rows, cols = same_identity_pairs(ref.identity[r0:r1], probe.identity[c0:c1])
        excluded = np.zeros(len(rows), bool)
        if not self.allow_same_source:
            excluded |= ref.unit[r0 + rows] == probe.unit[c0 + cols]
        if ref.image is not None and probe.image is not None:
            excluded |= ref.image[r0 + rows] == probe.image[c0 + cols]
        return rows, cols, excluded

    def subset(self, rows: np.ndarray) -> "Tiles":
        """The same scoring for some reference rows only (all of them in one tile row)."""
        r = self.ref
        sub = Side(r.vectors[rows], r.identity[rows], r.unit[rows], None if r.image is None else r.image[rows],
                   r.cell[rows])
        return self._of(sub, tile_rows=len(rows), tile_cols=max(self.tc, (self.tr * self.tc) // max(len(rows), 1)),
                        n_cells=(self.n_cells // self.n_probe_cells, self.n_probe_cells), rows=rows)

    def _of(self, ref: Side, *, tile_rows: int, tile_cols: int, n_cells: tuple[int, int], rows: np.ndarray) -> "Tiles":
        """Tiles of the same kind over ``ref``, the reference rows ``rows`` of this one."""
        return Tiles(ref, self.probe, self.bins, allow_same_source=self.allow_same_source, tile_rows=tile_rows,
                     tile_cols=tile_cols, device=self.device, n_cells=n_cells)

    def cell_offsets(self, r0: int, c0: int):
        """Per-row and per-column key offsets of a tile (None with a single cell)."""
        if self.n_cells == 1:
            return None
        nb = self.bins.n_bins
        r1, c1 = min(r0 + self.tr, len(self.ref.vectors)), min(c0 + self.tc, len(self.probe.vectors))
        return (self.ref.cell[r0:r1] * self.n_probe_cells * nb).astype(np.int64), (self.probe.cell[c0:c1] * nb).astype(np.int64)

    def run(self, tile: tuple[int, int], plan: Plan, out: ScanResult, hist: np.ndarray | None) -> None:
        """Reduce one tile by ``plan`` into ``out`` and (a histogram pass) ``hist``."""
        self._run_numpy(tile, plan, out, hist)

    def histogram(self, flat: np.ndarray) -> np.ndarray:
        """The pass's histogram, shape (n_cells, n_bins), from the flat counts it filled."""
        return flat.reshape(self.n_cells, self.bins.n_bins)

    def group_histogram(self, flat: np.ndarray) -> np.ndarray:
        """The pilot's per-group counts (flat) it filled."""
        return flat

    def synchronize(self) -> None:
        """Wait for the tiles' work to finish (nothing to wait for on numpy)."""

    # numpy / BLAS
    def _buffers(self, shape: tuple[int, int]):
        """Score, scratch and key buffers of a tile, allocated once per thread (no page
        faults per tile)."""
        bufs = getattr(self._local, "bufs", None)
        if bufs is None:
            n = self.tr * self.tc
            # int64 keys: bincount takes them as they are (int32 would be converted first, twice the cost)
            bufs = self._local.bufs = (np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n, np.int64))
        size = shape[0] * shape[1]
        return tuple(b[:size].reshape(shape) for b in bufs)

    def _run_numpy(self, tile, plan: Plan, out: ScanResult, hist: np.ndarray | None) -> None:
        r0, c0 = tile
        A = self.ref.vectors[r0 : r0 + self.tr]
        B = self.probe.vectors[c0 : c0 + self.tc]
        S, T, keys = self._buffers((len(A), len(B)))
        np.matmul(A, B.T, out=S)
        rows, cols, excluded = self.positions(r0, c0)
        offs = self.cell_offsets(r0, c0)
        if plan.genuine and len(rows):
            keep = ~excluded
            g_r, g_c = rows[keep], cols[keep]
            out.genuine.append(S[g_r, g_c].copy())
            out.genuine_rows.append(g_r + r0)
            out.genuine_cols.append(g_c + c0)
            cells = (self.ref.cell[r0 + g_r] * self.n_probe_cells + self.probe.cell[c0 + g_c]).astype(np.int64)
            out.genuine_cells.append(cells)
            out.excluded += int(excluded.sum())
        S[rows, cols] = self.sentinel
        out.sentinels += len(rows)
        # bin = floor(s * 2^k + offset): the product is exact, the sum rounds once (as on the GPU)
        np.multiply(S, np.float32(self.bins.bins_per_unit), out=T)
        T += np.float32(self.bins.offset)
        with np.errstate(invalid="ignore"):  # NaN: a negative key, refused below
            np.copyto(keys, T, casting="unsafe")  # truncation = floor: every value is >= 1
        if offs is not None:
            keys += offs[0][:, None]
            keys += offs[1][None, :]
        if plan.row_groups is not None:
            keys += (plan.row_groups[r0 : r0 + len(A)] * (self.n_cells * self.bins.n_bins))[:, None]
        if plan.histogram:
            assert hist is not None
            try:
                counts = np.bincount(keys.ravel(), minlength=len(hist))
            except ValueError:  # a negative key: NaN, -inf or a score far below -1.25
                raise StreamingError("a score is NaN, infinite or below -1.25: embeddings must be finite and "
                                     "L2-normalised") from None
            if len(counts) > len(hist):
                raise StreamingError("a score is above 1.25: embeddings must be L2-normalised")
            hist += counts
        if plan.lut is not None:
            mask = getattr(self._local, "mask", None)
            if mask is None or mask.size < keys.size:
                mask = self._local.mask = np.empty(self.tr * self.tc, bool)
            mask = mask[: keys.size].reshape(keys.shape)
            np.take(plan.lut, keys, out=mask)
            if mask.any():
                out.values.append(S[mask])
                out.value_cells.append((keys[mask] // self.bins.n_bins).astype(np.int64))

    # torch / CUDA

def make_tiles(ref: Side, probe: Side, bins: ScoreBins, *, device: str, backend: str = "auto", **kw) -> Tiles:
    """Tiles on torch when the device is CUDA (or ``backend="torch"``, the GPU code path on
    the CPU), else on numpy; ``kw`` as :class:`Tiles`."""
    if device == "cuda" or backend == "torch":
        from .streaming_torch import TorchTiles

        return TorchTiles(ref, probe, bins, device=device, **kw)
    return Tiles(ref, probe, bins, device=device, **kw)


def blas_threads(n: int):
    """Limit BLAS to ``n`` threads while several scoring threads run (threadpoolctl, when
    installed; otherwise a no-op)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(n, user_api="blas")
