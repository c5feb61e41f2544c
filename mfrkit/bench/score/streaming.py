"""Streaming all-pairs scoring: every reference x every probe, in tiles, never the full matrix.

:func:`score_all_pairs` computes the cosine scores of all comparisons tile by tile
(a ``(tile_rows, tile_cols)`` block of reference x probe embeddings: numpy/BLAS on the
CPU, torch on a CUDA device) and reduces each tile at once to what the exact metrics
need (:mod:`mfrkit.bench.score.binned_scores`): per *cell* (a pair of breakdown classes,
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
3. **Exact resolution**: the resolvers of :class:`~mfrkit.bench.score.binned_scores.BinnedScores`
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

The scan's inputs and result are in :mod:`.scan`, the tile work in :mod:`.tiles` (numpy)
and :mod:`.streaming_torch` (torch), the pilot's planning in :mod:`.pilot`.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import binned_scores as BS
from .binned_scores import BinnedScores, MissingBins, ScoreBins
from .pilot import pilot_collect
from .scan import DEVICES, ScanResult, Side, StreamingError, View, resolve_device, same_identity_pairs
from .tiles import Plan, Tiles, blas_threads, make_tiles

__all__ = ["ScanOptions", "score_all_pairs", "Side", "View", "ScanResult", "StreamingError", "resolve_device",
           "same_identity_pairs", "DEVICES"]  # fmt: skip


@dataclass(frozen=True)
class ScanOptions:
    """How :func:`score_all_pairs` scans the comparisons. Only ``allow_same_source``,
    ``n_cells`` and ``bins`` change what is computed; the others change time and memory,
    never a number.

    Attributes
    ----------
    allow_same_source : compare different images of one source photo (genuine).
    n_cells : (reference classes, probe classes); default: from the sides' cell codes.
    bins : the binning of the score axis (default :class:`~mfrkit.bench.score.binned_scores.ScoreBins`).
    device : ``auto`` | ``cuda`` | ``cpu``.
    tile_rows, tile_cols : tile size (memory: about 17 bytes per tile entry).
    collect_all : keep every impostor score (no pilot) up to this many comparisons.
    pilot_fraction, seed : the pilot's share of the reference images and its seed.
    max_passes : passes after which a still missing bin is an error (never seen: each
        extra pass asks for the bins the resolvers need, with room to spare).
    workers : CPU threads scoring tiles at once (default 1; each gets its own buffers).
    backend : ``auto`` (torch on CUDA, numpy on the CPU) or ``torch`` (torch on the CPU
        too: the GPU code path, checkable without a GPU).
    """

    allow_same_source: bool = False
    n_cells: tuple[int, int] | None = None
    bins: ScoreBins | None = None
    device: str = "auto"
    tile_rows: int = 2048
    tile_cols: int = 2048
    collect_all: int = 4_000_000
    pilot_fraction: float = 0.03
    seed: int = 0
    max_passes: int = 8
    workers: int | None = None
    backend: str = "auto"


def score_all_pairs(
    reference: Side,
    probe: Side,
    views: dict[str, View],
    *,
    far_targets,
    options: ScanOptions | None = None,
    thresholds_of: Callable[[str, dict], list] | None = None,
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
    options : ScanOptions (default: its defaults).
    progress : called with 1 after each tile of the main pass; log : messages (extra passes).

    Returns
    -------
    (binned, resolved, scan): per view its BinnedScores and the dict of
    :func:`~mfrkit.bench.score.binned_scores.resolve_all` (``tar_at_far``, ``nearest``, ``eer``,
    ``rates``), and the ScanResult (genuine positions, passes, timings).
    """
    opt = options or ScanOptions()
    log = log or (lambda msg: None)
    bins = opt.bins or ScoreBins()
    if reference.vectors.shape[1:] != probe.vectors.shape[1:]:
        raise StreamingError(f"reference and probe embeddings differ in dimension: {reference.vectors.shape} and "
                             f"{probe.vectors.shape}")
    used = resolve_device(opt.device)
    tiles = make_tiles(reference, probe, bins, allow_same_source=opt.allow_same_source, tile_rows=opt.tile_rows,
                       tile_cols=opt.tile_cols, device=used, n_cells=opt.n_cells, backend=opt.backend)
    nb = bins.n_bins
    res = ScanResult(bins=bins, n_cells=tiles.n_cells, hist=np.zeros((tiles.n_cells, nb), np.int64),
                     collected=np.zeros(nb, bool), device=used)
    t_start = time.perf_counter()

    collect = np.zeros(nb, bool)
    if len(reference.vectors) * len(probe.vectors) <= opt.collect_all:
        collect[2:] = True
    elif tiles.tiles:
        collect = pilot_collect(tiles, views, far_targets, res, opt.pilot_fraction, opt.seed)
    res.seconds["pilot"] = time.perf_counter() - t_start

    scan = _Scanner(tiles, res, 1 if tiles.backend == "torch" else (opt.workers or 1), progress)
    t0 = time.perf_counter()
    flat_hist = np.zeros(tiles.n_cells * nb, np.int64)
    scan(Plan(histogram=True, genuine=True, lut=np.tile(collect, tiles.n_cells)), flat_hist, report=True)
    res.hist = tiles.histogram(flat_hist)
    # bin 1 holds exactly the comparisons overwritten with the sentinel, unless a score
    # fell below -1.25
    if int(res.hist[:, 1].sum()) != res.sentinels or res.hist[:, 0].any():
        raise StreamingError("a score is below -1.25: embeddings must be L2-normalised")
    res.hist[:, 1] = 0
    res.collected = collect.copy()
    res.passes = 1
    res.seconds["main_pass"] = time.perf_counter() - t0

    binned, resolved = _resolve_views(scan, views, far_targets, thresholds_of, opt.max_passes, log)
    res.seconds["total"] = time.perf_counter() - t_start
    return binned, resolved, res


class _Scanner:
    """One pass over every tile with a plan, on one thread or several."""

    def __init__(self, tiles: Tiles, res: ScanResult, workers: int, progress: Callable[[int], None] | None) -> None:
        self.tiles, self.res, self.workers, self.progress = tiles, res, workers, progress

    def __call__(self, plan: Plan, hist: np.ndarray | None, report: bool = False) -> None:
        tiles, res, progress = self.tiles, self.res, self.progress
        if self.workers == 1:
            for tile in tiles.tiles:
                tiles.run(tile, plan, res, hist)
                if progress and report:
                    progress(1)
            tiles.synchronize()
            return
        # several threads, each with its own buffers, histogram and output; numpy and
        # BLAS release the GIL, so element-wise work of one tile overlaps another's product
        n_workers = self.workers
        outs = [ScanResult(bins=res.bins, n_cells=tiles.n_cells, hist=hist, collected=res.collected) for _ in range(n_workers)]
        hists = [None if hist is None else np.zeros_like(hist) for _ in range(n_workers)]
        slots, lock, local = iter(range(n_workers)), threading.Lock(), threading.local()

        def work(tile):
            if not hasattr(local, "slot"):
                with lock:
                    local.slot = next(slots)
            tiles.run(tile, plan, outs[local.slot], hists[local.slot])

        with blas_threads(max(1, (os.cpu_count() or 1) // n_workers)), ThreadPoolExecutor(n_workers) as ex:
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

    def collect(self, missing: set[int]) -> None:
        """Another pass keeping the impostor scores of the ``missing`` bins too."""
        res, nb = self.res, self.res.bins.n_bins
        t0 = time.perf_counter()
        extra_bins = np.zeros(nb, bool)
        extra_bins[sorted(missing)] = True
        old_v, old_c = res.values, res.value_cells
        res.values, res.value_cells = [], []
        self(Plan(histogram=False, genuine=False, lut=np.tile(extra_bins, self.tiles.n_cells)), None)
        res.concat()
        res.values = np.r_[old_v, res.values].astype(np.float32)
        res.value_cells = np.r_[old_c, res.value_cells].astype(np.int64)
        res.collected |= extra_bins
        res.passes += 1
        res.seconds[f"pass_{res.passes}"] = time.perf_counter() - t0


def _resolve_views(scan: _Scanner, views: dict[str, View], far_targets, thresholds_of, max_passes: int,
                   log: Callable[[str], None]) -> tuple[dict[str, BinnedScores], dict[str, dict]]:
    """Resolve every view exactly, with another pass for the bins still missing, until done."""
    res = scan.res
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
        scan.collect(missing)
    return binned, resolved
