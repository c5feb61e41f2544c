"""The tile work of a scan on torch: CUDA (``--search-device cuda``), or the CPU with
``backend="torch"`` so that the CPU tests check the GPU code path. The same keys, bins
and outputs as the numpy tiles (:mod:`.tiles`); the histogram stays on the device until
the pass ends.
"""

from __future__ import annotations

import numpy as np

from .scan import ScanResult, StreamingError
from .tiles import Plan, Tiles


class TorchTiles(Tiles):
    """:class:`~mfrkit.bench.score.tiles.Tiles` whose products and reductions run on torch;
    the embeddings are copied to the device once (a pilot's subset shares them)."""

    backend = "torch"

    def __init__(self, ref, probe, bins, *, device: str, parent: "TorchTiles | None" = None,
                 rows: np.ndarray | None = None, **kw) -> None:
        super().__init__(ref, probe, bins, device=device, **kw)
        import torch

        self._torch = torch
        self._dev = torch.device(device)
        if parent is not None:  # a subset of the parent's reference rows: share what is on the device
            self._R = parent._R[torch.from_numpy(np.asarray(rows, np.int64)).to(self._dev)]
            self._Q = parent._Q
        else:
            self._R = torch.from_numpy(ref.vectors).to(self._dev)
            self._Q = torch.from_numpy(probe.vectors).to(self._dev)
        n = self.n_cells * bins.n_bins
        self._hist = torch.zeros(n, dtype=torch.int64, device=self._dev)

    def _of(self, ref, *, tile_rows: int, tile_cols: int, n_cells, rows: np.ndarray) -> "TorchTiles":
        return TorchTiles(ref, self.probe, self.bins, allow_same_source=self.allow_same_source, tile_rows=tile_rows,
                          tile_cols=tile_cols, device=self.device, n_cells=n_cells, parent=self, rows=rows)

    def run(self, tile: tuple[int, int], plan: Plan, out: ScanResult, hist: np.ndarray | None) -> None:
        """Reduce one tile by ``plan`` into ``out`` and the device histogram (``hist`` is unused)."""
        torch = self._torch
        r0, c0 = tile
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False  # full float32 products, whatever the caller set
        try:
            S = self._R[r0 : r0 + self.tr] @ self._Q[c0 : c0 + self.tc].T
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        rows, cols, excluded = self.positions(r0, c0)
        offs = self.cell_offsets(r0, c0)
        tr = torch.from_numpy(rows).to(self._dev)
        tc = torch.from_numpy(cols).to(self._dev)
        if plan.genuine and len(rows):
            keep = ~excluded
            g = S[tr, tc].cpu().numpy()[keep]
            g_r, g_c = rows[keep], cols[keep]
            out.genuine.append(g)
            out.genuine_rows.append(g_r + r0)
            out.genuine_cols.append(g_c + c0)
            out.genuine_cells.append((self.ref.cell[r0 + g_r] * self.n_probe_cells + self.probe.cell[c0 + g_c]).astype(np.int64))
            out.excluded += int(excluded.sum())
        if len(rows):
            S[tr, tc] = float(self.sentinel)
        out.sentinels += len(rows)
        keys = (S * float(self.bins.bins_per_unit) + float(self.bins.offset)).to(torch.int64)
        if offs is not None:
            keys += torch.from_numpy(offs[0].astype(np.int64)).to(self._dev)[:, None]
            keys += torch.from_numpy(offs[1].astype(np.int64)).to(self._dev)[None, :]
        target = self._hist
        if plan.row_groups is not None:
            g = plan.row_groups[r0 : r0 + S.shape[0]] * (self.n_cells * self.bins.n_bins)
            keys += torch.from_numpy(g.astype(np.int64)).to(self._dev)[:, None]
            size = (int(plan.row_groups.max()) + 1) * self.n_cells * self.bins.n_bins
            if getattr(self, "_group_hist", None) is None or len(self._group_hist) != size:
                self._group_hist = torch.zeros(size, dtype=torch.int64, device=self._dev)
            target = self._group_hist
        if plan.histogram:
            flat = keys.reshape(-1)
            if bool((flat < 0).any()) or bool((flat >= len(target)).any()):
                raise StreamingError("a score is NaN, infinite or outside [-1.25, 1.25]: embeddings must be finite "
                                     "and L2-normalised")
            target += torch.bincount(flat, minlength=len(target))
        if plan.lut is not None:
            lut = self._lut_for(plan.lut)
            mask = lut[keys]
            if bool(mask.any()):
                out.values.append(S[mask].cpu().numpy())
                out.value_cells.append((keys[mask] // self.bins.n_bins).cpu().numpy().astype(np.int64))

    def _lut_for(self, lut: np.ndarray):
        if getattr(self, "_lut_src", None) is not lut:
            self._lut_src, self._lut_dev = lut, self._torch.from_numpy(lut).to(self._dev)
        return self._lut_dev

    def histogram(self, flat: np.ndarray) -> np.ndarray:
        return self._hist.cpu().numpy().reshape(self.n_cells, self.bins.n_bins)

    def group_histogram(self, flat: np.ndarray) -> np.ndarray:
        return self._group_hist.cpu().numpy()

    def synchronize(self) -> None:
        if self.device == "cuda":
            self._torch.cuda.synchronize()
