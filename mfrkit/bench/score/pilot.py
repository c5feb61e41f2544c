"""Planning a scan: the pilot scores a random sample of reference images against every
probe and plans which bins the main pass keeps exact, with margins from the spread
between groups of the sample (see :mod:`.streaming`, step 1).
"""

from __future__ import annotations

import math

import numpy as np

from ...rng import item_rng
from .bins import ScoreBins
from .scan import ScanResult, View, same_identity_pairs
from .tiles import Plan, Tiles

def pilot_collect(tiles: Tiles, views: dict[str, View], far_targets, res: ScanResult, fraction: float, seed: int) -> np.ndarray:
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
    plan = Plan(histogram=True, genuine=False, lut=None, row_groups=groups)
    for tile in sub.tiles:
        sub.run(tile, plan, scratch, h)
    h = sub.group_histogram(h)
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


def _view_impostors(tiles: Tiles, cells: np.ndarray) -> float:
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


def _planning_genuine(tiles: Tiles, seed: int, sample: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
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
