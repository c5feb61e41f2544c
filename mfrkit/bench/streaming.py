"""Streaming all-pairs scoring: every reference x every probe, in tiles, never the full matrix.

:func:`score_all_pairs` computes the cosine scores of all comparisons tile by tile
(a ``(tile_rows, tile_cols)`` block of reference x probe embeddings: numpy/BLAS on the
CPU, torch on a CUDA device) and reduces each tile at once to what the exact metrics
need (:mod:`mfrkit.bench.binned_scores`): per *cell* (a pair of breakdown classes,
one per side) an exact histogram of the impostor scores over 2^16 bins per unit, the
exact impostor scores of the bins around the operating points, and every genuine score.

The method, and what it costs
-----------------------------
1. **Pilot** (large protocols only): a seeded random 3% of the reference images (at
   least 64) is scored against every probe to estimate where each operating point lies
   (TAR@FAR for every target and both rule sets, the EER, the given thresholds), with a
   margin from the spread between 16 groups of the sample. Its genuine scores come from
   a direct pass over the same-identity comparisons.
2. **Main pass**: every tile once. Same-identity positions are found from the sorted
   identity codes; genuine scores are kept, and they and the excluded comparisons
   (same image, same source photo) are overwritten with a sentinel that falls in a
   reserved bin. The tile's bins are counted (``bincount``) and the scores falling in
   the planned bins are kept.
3. **Exact resolution**: the resolvers of :class:`~mfrkit.bench.binned_scores.BinnedScores`
   find each operating point from the histogram and the kept scores; where an operating
   point lies in a bin that was not kept (the pilot's estimate was off), another pass
   over the tiles collects exactly those bins, and this repeats until every number is
   exact. Small protocols (at most ``collect_all`` impostor comparisons) skip the pilot
   and keep every impostor score in the main pass.

Cost: matrix products for 1.03 (pilot and main pass; 2.03 when a second pass is
needed) times all comparisons, plus about ten element-wise passes over each tile.
Memory: the embeddings, one tile and its temporaries (about 17 bytes per tile entry),
one histogram per cell (8 bytes x 163,843 bins = 1.3 MB), 12 bytes per genuine score
and 8 bytes per kept impostor score (the pilot plans a few bins per operating point).
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..errors import MfrkitError
from ..rng import item_rng
from . import binned_scores as BS
from .binned_scores import BinnedScores, MissingBins, ScoreBins

DEVICES = ("auto", "cuda", "cpu")


class StreamingError(MfrkitError):
    """All-pairs scoring cannot go ahead (inputs, device, scores out of range)."""


def resolve_device(device: str = "auto", *, cuda_available: Callable[[], bool] | None = None) -> str:
    """``cuda`` when asked for or (``auto``) when torch sees a CUDA device, else ``cpu``.

    ``cuda_available`` replaces torch's check (tests).
    """
    if device not in DEVICES:
        raise StreamingError(f"unknown scoring device {device!r}; choose one of: {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    if cuda_available is None:
        def cuda_available() -> bool:
            try:
                import torch
            except ImportError:
                return False
            return bool(torch.cuda.is_available())
    has = cuda_available()
    if device == "cuda" and not has:
        raise StreamingError("scoring on cuda was requested but torch sees no CUDA device")
    return "cuda" if has else "cpu"


# --- inputs ----------------------------------------------------------------------------------------


@dataclass
class Side:
    """One side of an all-pairs protocol, as the scanner sees it (usable images only).

    Attributes
    ----------
    vectors : ndarray of float32, shape (n, D), L2-normalised.
    identity, unit : ndarray of int64, shape (n,)
        Codes shared by both sides: equal identity codes make a genuine comparison,
        equal unit codes (same source photo) an excluded one.
    image : ndarray of int64, shape (n,) or None
        Codes of the images when both sides may hold the same image (equal codes: the
        same image, excluded); None when they cannot.
    cell : ndarray of int64, shape (n,)
        Breakdown class of each image (0 ... n_classes - 1).
    """

    vectors: np.ndarray
    identity: np.ndarray
    unit: np.ndarray
    image: np.ndarray | None = None
    cell: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        n = len(self.vectors)
        self.identity = np.asarray(self.identity, np.int64)
        self.unit = np.asarray(self.unit, np.int64)
        self.cell = np.zeros(n, np.int64) if self.cell is None else np.asarray(self.cell, np.int64)
        if self.image is not None:
            self.image = np.asarray(self.image, np.int64)
        if self.vectors.ndim != 2 or any(len(a) != n for a in (self.identity, self.unit, self.cell)):
            raise StreamingError("a side needs (n, D) vectors and n identity, unit and cell codes")
        if self.image is not None and len(self.image) != n:
            raise StreamingError("image codes differ in length from the vectors")

    @property
    def n_cells(self) -> int:
        return int(self.cell.max()) + 1 if len(self.cell) else 1


@dataclass
class ScanResult:
    """What the scan keeps, per cell ``(reference class, probe class)`` flattened to
    ``reference_class * n_probe_classes + probe_class``.

    Attributes
    ----------
    hist : ndarray of int64, shape (n_cells, n_bins): impostor scores per bin.
    collected : ndarray of bool, shape (n_bins,): bins whose impostor scores are kept (every cell).
    values, value_cells : the kept impostor scores (float32) and their cells.
    genuine, genuine_cells : every genuine score (float32) and its cell.
    genuine_rows, genuine_cols : int64 positions of each genuine score in the inputs.
    excluded : int, comparisons left out (same image, same source).
    passes : int, full passes over the tiles (pilot not counted).
    pilot_rows : int, reference images the pilot scored against every probe (0: no pilot).
    seconds : dict of wall-clock time per stage.
    device : ``cpu`` or ``cuda``.
    """

    bins: ScoreBins
    n_cells: int
    hist: np.ndarray
    collected: np.ndarray
    values: list = field(default_factory=list)
    value_cells: list = field(default_factory=list)
    genuine: list = field(default_factory=list)
    genuine_cells: list = field(default_factory=list)
    genuine_rows: list = field(default_factory=list)
    genuine_cols: list = field(default_factory=list)
    excluded: int = 0
    sentinels: int = 0
    passes: int = 0
    pilot_rows: int = 0
    seconds: dict = field(default_factory=dict)
    device: str = "cpu"

    def concat(self) -> None:
        """Join the per-tile pieces into single arrays (once)."""
        for name, dtype in (("values", np.float32), ("value_cells", np.int64), ("genuine", np.float32),
                            ("genuine_cells", np.int64), ("genuine_rows", np.int64), ("genuine_cols", np.int64)):
            parts = getattr(self, name)
            if isinstance(parts, list):
                setattr(self, name, np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype))

    def view(self, cells: Sequence[int], *, fta_impostor: int = 0, fta_genuine: int = 0) -> BinnedScores:
        """The :class:`BinnedScores` of a set of cells, with FtA comparisons added (-inf)."""
        self.concat()
        cells = np.asarray(sorted(set(int(c) for c in cells)), np.int64)
        hist = self.hist[cells].sum(0)
        hist[0] += int(fta_impostor)
        vals = self.values[np.isin(self.value_cells, cells)]
        gen = self.genuine[np.isin(self.genuine_cells, cells)]
        gen = np.r_[gen, np.full(int(fta_genuine), -np.inf, np.float32)]
        return BinnedScores(self.bins, hist, self.collected, vals, gen)


# --- same-identity positions -----------------------------------------------------------------------


def same_identity_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with ``a[i] == b[j]``, as two int64 arrays (rows in order of ``a``)."""
    order = np.argsort(b, kind="stable")
    sb = b[order]
    left = np.searchsorted(sb, a, side="left")
    count = np.searchsorted(sb, a, side="right") - left
    total = int(count.sum())
    rows = np.repeat(np.arange(len(a), dtype=np.int64), count)
    starts = np.repeat(left - (np.cumsum(count) - count), count)
    cols = order[np.arange(total, dtype=np.int64) + starts]
    return rows, cols


# --- the tile work ---------------------------------------------------------------------------------


@dataclass
class _Plan:
    """What one pass does with each tile."""

    histogram: bool
    genuine: bool
    lut: np.ndarray | None  # bool (n_cells * n_bins,): keep scores of these (cell, bin) keys
    # the pilot: a histogram per group of reference rows (group id of each row), the
    # histogram argument then holding n_groups * n_cells * n_bins counts
    row_groups: np.ndarray | None = None


class _Tiles:
    """Tile geometry and the per-tile work shared by the passes."""

    def __init__(self, ref: Side, probe: Side, bins: ScoreBins, *, allow_same_source: bool, tile_rows: int,
                 tile_cols: int, device: str, n_cells: tuple[int, int] | None = None,
                 parent: "_Tiles | None" = None, rows: np.ndarray | None = None, backend: str = "auto",
                 triangle: bool = False) -> None:
        self.ref, self.probe, self.bins = ref, probe, bins
        # one set of images on both sides: only comparisons (i, j) with i < j are made
        self.triangle = bool(triangle)
        self.allow_same_source = allow_same_source
        self.tr, self.tc = max(1, int(tile_rows)), max(1, int(tile_cols))
        self.device = device
        # torch runs the tiles on a CUDA device; backend="torch" also on the CPU, which lets
        # the CPU tests check the GPU code path
        self.backend = "torch" if device == "cuda" else ("numpy" if backend == "auto" else backend)
        n_ref_cells, self.n_probe_cells = n_cells or (ref.n_cells, probe.n_cells)
        if n_ref_cells < ref.n_cells or self.n_probe_cells < probe.n_cells:
            raise StreamingError("n_cells is smaller than the sides' cell codes")
        self.n_cells = n_ref_cells * self.n_probe_cells
        self.tiles = [(r, c) for r in range(0, len(ref.vectors), self.tr) for c in range(0, len(probe.vectors), self.tc)
                      if not self.triangle or min(c + self.tc, len(probe.vectors)) - 1 > r]
        self.sentinel = bins.excluded_value
        self._local = threading.local()
        self._torch = None
        if self.backend == "torch":
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
        if self.triangle:  # the mirror half is overwritten by lower_mask
            upper = r0 + rows < c0 + cols
            rows, cols, excluded = rows[upper], cols[upper], excluded[upper]
        return rows, cols, excluded

    def lower_mask(self, r0: int, shape: tuple[int, int], c0: int) -> np.ndarray | None:
        """Triangle mode: the tile's positions (i, j) with i >= j (the mirror of a comparison
        made elsewhere, or an image against itself), None when there is none."""
        if not self.triangle or c0 > r0 + shape[0] - 1:
            return None
        return (c0 + np.arange(shape[1]))[None, :] <= (r0 + np.arange(shape[0]))[:, None]

    def subset(self, rows: np.ndarray) -> "_Tiles":
        """The same scoring for some reference rows only (all of them in one tile row)."""
        r = self.ref
        sub = Side(r.vectors[rows], r.identity[rows], r.unit[rows], None if r.image is None else r.image[rows],
                   r.cell[rows])
        return _Tiles(sub, self.probe, self.bins, allow_same_source=self.allow_same_source, tile_rows=len(rows),
                      tile_cols=max(self.tc, (self.tr * self.tc) // max(len(rows), 1)), device=self.device,
                      n_cells=(self.n_cells // self.n_probe_cells, self.n_probe_cells), parent=self, rows=rows,
                      backend=self.backend)

    def cell_offsets(self, r0: int, c0: int):
        """Per-row and per-column key offsets of a tile (None with a single cell)."""
        if self.n_cells == 1:
            return None
        nb = self.bins.n_bins
        r1, c1 = min(r0 + self.tr, len(self.ref.vectors)), min(c0 + self.tc, len(self.probe.vectors))
        return (self.ref.cell[r0:r1] * self.n_probe_cells * nb).astype(np.int64), (self.probe.cell[c0:c1] * nb).astype(np.int64)

    def run(self, tile: tuple[int, int], plan: _Plan, out: ScanResult, hist: np.ndarray | None) -> None:
        if self._torch is not None:
            self._run_torch(tile, plan, out)
        else:
            self._run_numpy(tile, plan, out, hist)

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

    def _run_numpy(self, tile, plan: _Plan, out: ScanResult, hist: np.ndarray | None) -> None:
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
        lower = self.lower_mask(r0, S.shape, c0)
        if lower is not None:
            S[lower] = self.sentinel
            out.sentinels += int(lower.sum())
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
    def _run_torch(self, tile, plan: _Plan, out: ScanResult) -> None:
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
        lower = self.lower_mask(r0, tuple(S.shape), c0)
        if lower is not None:
            S.masked_fill_(torch.from_numpy(lower).to(self._dev), float(self.sentinel))
            out.sentinels += int(lower.sum())
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

    def torch_hist(self) -> np.ndarray:
        return self._hist.cpu().numpy().reshape(self.n_cells, self.bins.n_bins)

    def synchronize(self) -> None:
        if self._torch is not None and self.device == "cuda":
            self._torch.cuda.synchronize()


# --- planning ----------------------------------------------------------------------------------------


@dataclass
class View:
    """A set of comparisons the metrics are computed on: some cells, plus FtA counts.

    Attributes
    ----------
    cells : list of int
    fta_impostor, fta_genuine : comparisons with an image that failed to acquire (-inf).
    thresholds : thresholds whose error rates are needed (threshold transfer, or the
        overall thresholds for a breakdown group).
    """

    cells: list
    fta_impostor: int = 0
    fta_genuine: int = 0
    thresholds: list = field(default_factory=list)


def _plan_bins(pilot_hist: np.ndarray, tile_counts: np.ndarray, pilot_total: np.ndarray, n_total: float,
               ranks: list[float], bins: ScoreBins) -> set[int]:
    """Bins to keep so that each rank's bin is among them with a wide margin.

    ``pilot_hist`` (n_bins,): the pilot's impostor histogram of the view;
    ``tile_counts`` (k, n_bins) cumulative-from-the-top counts per pilot tile of the
    whole protocol (the spread between tiles sets the margin); ``pilot_total``: the
    pilot tiles' comparisons; ``n_total``: the view's comparisons.
    """
    total = pilot_hist.sum()
    if total == 0 or n_total <= 0:
        return set()
    scale = n_total / total
    cum = np.cumsum(pilot_hist[::-1])[::-1].astype(np.float64) * scale  # estimated impostors >= bin
    # relative standard error of the fraction above each bin, from the spread between tiles
    k = len(tile_counts)
    rel = np.full(len(cum), 0.5)
    if k >= 4:
        p_t = tile_counts / np.maximum(pilot_total[:, None], 1)
        p_hat = tile_counts.sum(0) / max(pilot_total.sum(), 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.sqrt(((p_t - p_hat) ** 2).sum(0) / (k * (k - 1))) / p_hat
        rel = np.nan_to_num(rel, nan=0.5, posinf=0.5)
    out: set[int] = set()
    for r in ranks:
        if not (r >= 1):
            r = 1.0
        pos = int(np.clip(np.searchsorted(-cum, -r), 2, len(cum) - 1))  # first bin (from below) with cum < r
        # 6 standard errors from the spread between the sampled groups of rows (the rows are a
        # random sample, so the spread is the estimate's own), a binomial term and a little more
        margin = r * (6 * rel[pos] + 0.005) + 6 * math.sqrt(r * scale) + 64
        hi_bin = int(np.searchsorted(-cum, -(max(r - margin, 0.5))))  # fewer above: higher bin
        lo_bin = int(np.searchsorted(-cum, -(r + margin))) - 1
        out.update(range(max(lo_bin - 1, 2), min(hi_bin + 2, bins.n_bins)))
    return out


# --- the entry point ---------------------------------------------------------------------------------


def score_all_pairs(
    reference: Side,
    probe: Side,
    views: dict[str, View],
    *,
    far_targets,
    allow_same_source: bool = False,
    device: str = "auto",
    tile_rows: int = 2048,
    tile_cols: int = 2048,
    collect_all: int = 4_000_000,
    pilot_fraction: float = 0.03,
    seed: int = 0,
    bins: ScoreBins | None = None,
    thresholds_of: Callable[[str, dict], list] | None = None,
    max_passes: int = 8,
    n_cells: tuple[int, int] | None = None,
    workers: int | None = None,
    backend: str = "auto",
    triangle: bool = False,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, BinnedScores], dict[str, dict], ScanResult]:
    """Score every reference x probe comparison and resolve every view's exact metrics.

    Parameters
    ----------
    reference, probe : Side
        Usable images only (FtA images are counted through the views' FtA counts).
    views : dict name -> View
        ``"overall"`` and, for breakdowns, one per group. Views are resolved in order;
        ``thresholds_of(name, resolved)`` may add thresholds to a view from the views
        resolved before it (the overall thresholds of a breakdown group).
    far_targets : FAR targets of TAR@FAR (both rule sets).
    allow_same_source : compare different images of one source photo (genuine).
    device : ``auto`` | ``cuda`` | ``cpu``.
    tile_rows, tile_cols : tile size (memory: about 17 bytes per tile entry).
    collect_all : keep every impostor score (no pilot) up to this many comparisons.
    pilot_fraction, seed : the pilot's share of the tiles and its seed.
    max_passes : passes after which a still missing bin is an error (never seen: each
        extra pass asks for the bins the resolvers need, with room to spare).
    n_cells : (reference classes, probe classes); default: from the sides' cell codes.
    workers : CPU threads scoring tiles at once (default 1; each gets its own buffers).
    backend : ``auto`` (torch on CUDA, numpy on the CPU) or ``torch`` (torch on the CPU
        too: the GPU code path, checkable without a GPU).
    triangle : both sides are one set of images in the same order (a symmetric
        all-pairs protocol): each unordered comparison is scored once, (i, j) with i < j;
        tiles wholly below the diagonal are skipped. The pilot still samples whole rows
        (it only plans which bins to keep).
    progress : called with 1 after each tile of the main pass; log : messages (extra passes).

    Returns
    -------
    (binned, resolved, scan): per view its BinnedScores and the dict of
    :func:`~mfrkit.bench.binned_scores.resolve_all` (``tar_at_far``, ``nearest``, ``eer``,
    ``rates``), and the ScanResult (genuine positions, passes, timings).
    """
    log = log or (lambda msg: None)
    bins = bins or ScoreBins()
    if reference.vectors.shape[1:] != probe.vectors.shape[1:]:
        raise StreamingError(f"reference and probe embeddings differ in dimension: {reference.vectors.shape} and "
                             f"{probe.vectors.shape}")
    used = resolve_device(device)
    if triangle and (len(reference.vectors) != len(probe.vectors) or not np.array_equal(reference.identity, probe.identity)):
        raise StreamingError("triangle scoring needs one set of images on both sides, in the same order")
    tiles = _Tiles(reference, probe, bins, allow_same_source=allow_same_source, tile_rows=tile_rows,
                   tile_cols=tile_cols, device=used, n_cells=n_cells, backend=backend, triangle=triangle)
    nb = bins.n_bins
    res = ScanResult(bins=bins, n_cells=tiles.n_cells, hist=np.zeros((tiles.n_cells, nb), np.int64),
                     collected=np.zeros(nb, bool), device=used)
    n_cmp = len(reference.vectors) * len(probe.vectors)
    t_start = time.perf_counter()

    collect = np.zeros(nb, bool)
    if n_cmp <= collect_all:
        collect[2:] = True
    elif tiles.tiles:
        collect = _pilot(tiles, views, far_targets, res, pilot_fraction, seed)
    res.seconds["pilot"] = time.perf_counter() - t_start

    n_workers = 1 if tiles.backend == "torch" else (workers or 1)

    def scan(plan: _Plan, hist: np.ndarray | None, report: bool = False) -> None:
        if n_workers == 1:
            for tile in tiles.tiles:
                tiles.run(tile, plan, res, hist)
                if progress and report:
                    progress(1)
            tiles.synchronize()
            return
        # several threads, each with its own buffers, histogram and output; numpy and
        # BLAS release the GIL, so element-wise work of one tile overlaps another's product
        outs = [ScanResult(bins=bins, n_cells=tiles.n_cells, hist=hist, collected=res.collected) for _ in range(n_workers)]
        hists = [None if hist is None else np.zeros_like(hist) for _ in range(n_workers)]
        slots, lock, local = iter(range(n_workers)), threading.Lock(), threading.local()

        def work(tile):
            if not hasattr(local, "slot"):
                with lock:
                    local.slot = next(slots)
            tiles.run(tile, plan, outs[local.slot], hists[local.slot])

        with _blas_threads(max(1, (os.cpu_count() or 1) // n_workers)), ThreadPoolExecutor(n_workers) as ex:
            for _ in ex.map(work, tiles.tiles):
                if progress and report:
                    progress(1)
        for o, h in zip(outs, hists):
            for name in ("values", "value_cells", "genuine", "genuine_cells", "genuine_rows", "genuine_cols"):
                if getattr(o, name):  # genuine scores come from the main pass only
                    getattr(res, name).extend(getattr(o, name))
            res.excluded += o.excluded
            res.sentinels += o.sentinels
            if h is not None:
                hist += h

    t0 = time.perf_counter()
    flat_hist = np.zeros(tiles.n_cells * nb, np.int64)
    scan(_Plan(histogram=True, genuine=True, lut=np.tile(collect, tiles.n_cells)), flat_hist, report=True)
    res.hist = tiles.torch_hist() if tiles.backend == "torch" else flat_hist.reshape(tiles.n_cells, nb)
    # bin 1 holds exactly the comparisons overwritten with the sentinel, unless a score
    # fell below -1.25
    if int(res.hist[:, 1].sum()) != res.sentinels or res.hist[:, 0].any():
        raise StreamingError("a score is below -1.25: embeddings must be L2-normalised")
    res.hist[:, 1] = 0
    res.collected = collect.copy()
    res.passes = 1
    res.seconds["main_pass"] = time.perf_counter() - t0

    binned: dict[str, BinnedScores] = {}
    resolved: dict[str, dict] = {}
    while len(resolved) < len(views):
        res.concat()
        missing: set[int] = set()
        before = len(resolved)
        for name, view in views.items():
            if name in resolved:
                continue
            extra = list(view.thresholds)
            if thresholds_of is not None:
                more = thresholds_of(name, resolved)
                if more is None:  # it needs a view that is not resolved yet
                    continue
                extra += list(more)
            b = binned.get(name)
            if b is None or not np.array_equal(b.collected, res.collected):
                b = binned[name] = res.view(view.cells, fta_impostor=view.fta_impostor, fta_genuine=view.fta_genuine)
            out = BS.resolve_all(b, far_targets, thresholds=extra)
            if isinstance(out, MissingBins):
                missing |= out.bins
            else:
                resolved[name] = out
        if not missing:
            if len(resolved) == before:
                raise StreamingError(f"views {sorted(set(views) - set(resolved))} wait on views that never resolve")
            continue
        if res.passes >= max_passes:
            raise StreamingError(f"the exact operating points still need {len(missing)} bins after {res.passes} passes")
        log(f"all-pairs: pass {res.passes + 1} over the comparisons to collect {len(missing)} more bins")
        t0 = time.perf_counter()
        extra_bins = np.zeros(nb, bool)
        extra_bins[sorted(missing)] = True
        old_v, old_c = res.values, res.value_cells
        res.values, res.value_cells = [], []
        scan(_Plan(histogram=False, genuine=False, lut=np.tile(extra_bins, tiles.n_cells)), None)
        res.concat()
        res.values = np.r_[old_v, res.values].astype(np.float32)
        res.value_cells = np.r_[old_c, res.value_cells].astype(np.int64)
        res.collected |= extra_bins
        res.passes += 1
        res.seconds[f"pass_{res.passes}"] = time.perf_counter() - t0
    res.seconds["total"] = time.perf_counter() - t_start
    return binned, resolved, res


def _pilot(tiles: _Tiles, views: dict[str, View], far_targets, res: ScanResult, fraction: float, seed: int) -> np.ndarray:
    """Score a random sample of reference rows against every probe and plan the bins the
    main pass keeps. The sample is cut into groups; the spread between the groups sets
    the planning margins."""
    bins = tiles.bins
    nb = bins.n_bins
    n = len(tiles.ref.vectors)
    m = min(n, max(64, int(math.ceil(fraction * n))))
    rows = np.sort(item_rng(seed, "all-pairs-pilot").choice(n, size=m, replace=False))
    k = min(16, m)
    groups = np.repeat(np.arange(k), [len(g) for g in np.array_split(np.arange(m), k)])
    sub = tiles.subset(rows)  # one row of tiles: every sampled image in each product
    stride = tiles.n_cells * nb
    h = np.zeros(k * stride, np.int64)
    scratch = ScanResult(bins=bins, n_cells=tiles.n_cells, hist=np.zeros((1, 1), np.int64), collected=np.zeros(nb, bool))
    plan = _Plan(histogram=True, genuine=False, lut=None, row_groups=groups)
    for tile in sub.tiles:
        sub.run(tile, plan, scratch, h)
    if sub.backend == "torch":
        h = sub._group_hist.cpu().numpy()
    per_group = h.reshape(k, tiles.n_cells, nb)
    hist = per_group.sum(0)
    per_bin = per_group[:, :, 2:].sum(1)
    tile_cum = np.c_[np.zeros((k, 2)), np.cumsum(per_bin[:, ::-1], axis=1)[:, ::-1]].astype(np.float64)
    tile_total = per_bin.sum(1).astype(np.float64)
    res.pilot_rows = m
    genuine, genuine_cells = _planning_genuine(tiles, seed)
    collect = np.zeros(nb, bool)
    targets = np.atleast_1d(np.asarray(far_targets, np.float64))
    for view in views.values():
        cells = np.asarray(view.cells, np.int64)
        ph = hist[cells].sum(0)
        ph[:2] = 0
        n_imp = _view_impostors(tiles, cells)
        n_all = n_imp + view.fta_impostor
        ranks = [math.floor(t * n_all) + 1 for t in targets] + [t * n_all for t in targets]
        g = genuine[np.isin(genuine[:, 1].astype(np.int64), cells), 0] if len(genuine) else np.zeros(0)
        n_gen = int(np.isin(genuine_cells, cells).sum())
        ranks += _eer_ranks(ph, n_imp, view, g, n_gen, bins)
        for b in _plan_bins(ph, tile_cum, tile_total, n_imp, ranks, bins):
            collect[b] = True
        for t in view.thresholds:
            b, _ = bins.first_bin_at_or_above(float(t))
            if 2 <= b < nb:
                collect[b] = True
    return collect


def _view_impostors(tiles: _Tiles, cells: np.ndarray) -> float:
    """Impostor comparisons among the usable images of some cells (closed form)."""
    ref, probe = tiles.ref, tiles.probe
    total = 0
    for cell in cells:
        rc, pc = divmod(int(cell), tiles.n_probe_cells)
        ri, pi = ref.identity[ref.cell == rc], probe.identity[probe.cell == pc]
        same = 0
        if len(ri) and len(pi):
            u, cr = np.unique(ri, return_counts=True)
            cp = np.bincount(np.searchsorted(u, pi[np.isin(pi, u)]), minlength=len(u))
            same = int((cr * cp).sum())
        total += len(ri) * len(pi) - same
    return float(total)


def _planning_genuine(tiles: _Tiles, seed: int, sample: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """(score, cell) of up to ``sample`` genuine comparisons drawn at random, computed
    directly, for planning only (the EER's estimated position), and the cell of every
    usable genuine comparison."""
    ref, probe = tiles.ref, tiles.probe
    rows, cols = same_identity_pairs(ref.identity, probe.identity)
    keep = np.ones(len(rows), bool)
    if not tiles.allow_same_source:
        keep &= ref.unit[rows] != probe.unit[cols]
    if ref.image is not None and probe.image is not None:
        keep &= ref.image[rows] != probe.image[cols]
    rows, cols = rows[keep], cols[keep]
    all_cells = ref.cell[rows] * tiles.n_probe_cells + probe.cell[cols]
    if len(rows) > sample:
        pick = item_rng(seed, "all-pairs-genuine-sample").choice(len(rows), size=sample, replace=False)
        rows, cols = rows[pick], cols[pick]
    s = np.einsum("ij,ij->i", ref.vectors[rows], probe.vectors[cols])
    return np.c_[s, ref.cell[rows] * tiles.n_probe_cells + probe.cell[cols]], all_cells


def _eer_ranks(pilot_hist: np.ndarray, n_imp: float, view: View, genuine: np.ndarray, n_gen: int,
               bins: ScoreBins) -> list[float]:
    """Impostor rank where the estimated FAR meets the FRR (``genuine``: a sample of the
    view's ``n_gen`` usable genuine scores)."""
    total = pilot_hist.sum()
    n_all_gen = n_gen + view.fta_genuine
    if total == 0 or n_all_gen == 0 or len(genuine) == 0:
        return []
    n_all = n_imp + view.fta_impostor
    far = np.cumsum(pilot_hist[::-1])[::-1] * (n_imp / total) / n_all  # FAR at each bin's lower edge
    gb = np.sort(bins.of(np.clip(genuine, -bins.limit, bins.limit).astype(np.float32)))
    below = np.searchsorted(gb, np.arange(len(far)), side="left") / len(gb)  # usable genuine below the edge
    frr = (below * n_gen + view.fta_genuine) / n_all_gen
    b = int(np.clip(np.searchsorted(-(far - frr), 0.0), 2, len(far) - 1))
    return [far[b] * n_all + 1]


def _blas_threads(n: int):
    """Limit BLAS to ``n`` threads while several scoring threads run (threadpoolctl, when
    installed; otherwise a no-op)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(n, user_api="blas")
