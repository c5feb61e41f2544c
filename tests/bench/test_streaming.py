"""Streaming all-pairs scoring equals the materialised score matrix's metrics, exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mfrkit.bench import metrics as M
from mfrkit.bench.score.binned_scores import ScoreBins
from mfrkit.bench.score.streaming import ScanOptions, Side, StreamingError, View, resolve_device, same_identity_pairs, score_all_pairs

TARGETS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def grid_side(rng, n, d=16, n_ids=30, n_units=None, cells=1):
    """Embeddings whose dot products are exact in float32 (entries k/16, |k| <= 4): any
    summation order gives the same scores, with many ties; identities, units and cells."""
    v = rng.integers(-4, 5, (n, d)).astype(np.float32) / 16
    ident = rng.integers(0, n_ids, n)
    unit = ident * 1000 + rng.integers(0, n_units or 3, n)
    return v, ident, unit, rng.integers(0, cells, n)


def sides(seed, n_ref=300, n_probe=400, cells=2, same=False, exact=True, d=16):
    rng = np.random.default_rng(seed)
    if exact:
        vr, ir, ur, cr = grid_side(rng, n_ref, d, cells=cells)
        vq, iq, uq, cq = grid_side(rng, n_probe, d, cells=cells)
        # genuine pairs score higher: add a per-identity direction
        base = (rng.integers(-4, 5, (40, d)) / 16).astype(np.float32)
        vr = np.clip(vr + base[ir], -0.5, 0.5) / 2
        vq = np.clip(vq + base[iq], -0.5, 0.5) / 2
    else:
        ident_dirs = rng.normal(size=(40, d))
        ir, iq = rng.integers(0, 30, n_ref), rng.integers(0, 30, n_probe)
        vr = ident_dirs[ir] + rng.normal(size=(n_ref, d))
        vq = ident_dirs[iq] + rng.normal(size=(n_probe, d))
        vr = (vr / np.linalg.norm(vr, axis=1, keepdims=True)).astype(np.float32)
        vq = (vq / np.linalg.norm(vq, axis=1, keepdims=True)).astype(np.float32)
        ur, uq = ir * 1000 + rng.integers(0, 3, n_ref), iq * 1000 + rng.integers(0, 3, n_probe)
        cr, cq = rng.integers(0, cells, n_ref), rng.integers(0, cells, n_probe)
    img_r = img_q = None
    if same:  # both sides the same images
        vq, iq, uq, cq = vr, ir, ur, cr
        img_r = img_q = np.arange(n_ref)
    order_r = np.lexsort((ir, cr))
    order_q = np.lexsort((iq, cq))
    ref = Side(vr[order_r], ir[order_r], ur[order_r], None if img_r is None else img_r[order_r], cr[order_r])
    probe = Side(vq[order_q], iq[order_q], uq[order_q], None if img_q is None else img_q[order_q], cq[order_q])
    return ref, probe


def materialise(ref, probe, allow_same_source=False):
    S = ref.vectors @ probe.vectors.T
    labels = ref.identity[:, None] == probe.identity[None, :]
    keep = np.ones(S.shape, bool)
    if not allow_same_source:
        keep &= ref.unit[:, None] != probe.unit[None, :]
    if ref.image is not None:
        keep &= ref.image[:, None] != probe.image[None, :]
    cells = ref.cell[:, None] * probe.n_cells + probe.cell[None, :]
    return S, labels, keep, cells


def views_of(ref, probe):
    n = ref.n_cells * probe.n_cells
    v = {"overall": View(list(range(n)), fta_impostor=7, fta_genuine=2)}
    for c in range(n):
        v[f"cell{c}"] = View([c])
    v["first-row"] = View([c for c in range(n) if c // probe.n_cells == 0])
    return v


def check(ref, probe, views, binned, resolved, allow_same_source=False):
    S, labels, keep, cells = materialise(ref, probe, allow_same_source)
    for name, view in views.items():
        sel = keep & np.isin(cells, view.cells)
        y = np.r_[labels[sel], np.ones(view.fta_genuine, bool), np.zeros(view.fta_impostor, bool)]
        s = np.r_[S[sel].astype(np.float64), np.full(view.fta_genuine + view.fta_impostor, -np.inf)]
        b = binned[name]
        assert b.n_genuine == y.sum() and b.n_impostor == (~y).sum()
        np.testing.assert_array_equal(np.sort(b.genuine.astype(np.float64)), np.sort(s[y]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            want_m = M.tar_at_far(y, s, TARGETS)
            want_i = M.tar_at_far_nearest(y, s, TARGETS)
            want_e = M.eer(y, s)
        r = resolved[name]
        for field in ("tar", "far", "threshold", "true_accepts", "false_accepts"):
            np.testing.assert_array_equal(getattr(r["tar_at_far"], field), getattr(want_m, field), err_msg=name)
            np.testing.assert_array_equal(getattr(r["nearest"], field), getattr(want_i, field), err_msg=name)
        assert r["eer"] == want_e, name
        for t, rate in zip(view.thresholds, r["rates"]):
            assert rate == M.rates_at_threshold(y, s, t)
        auc, err = b.auc()
        assert abs(auc - M.roc_auc(y, s)) <= err + 1e-12


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("mode", ["collect-all", "pilot", "threads", "torch"])
def test_exact_on_tied_scores(seed, mode):
    ref, probe = sides(seed)
    views = views_of(ref, probe)
    views["overall"].thresholds = [0.05, 0.2]
    kw = {"collect_all": 10**9} if mode == "collect-all" else {"collect_all": 0, "pilot_fraction": 0.2}
    if mode == "threads":
        kw["workers"] = 3
    if mode == "torch":  # the GPU code path (torch tensors, bincount, group histograms), run on the CPU
        kw["backend"] = "torch"
    binned, resolved, scan = score_all_pairs(ref, probe, views, far_targets=TARGETS,
                                             options=ScanOptions(device="cpu", tile_rows=64, tile_cols=96, **kw))
    check(ref, probe, views, binned, resolved)
    assert scan.passes <= 3 and (mode == "collect-all") == (scan.pilot_rows == 0)
    assert scan.device == "cpu"


@pytest.mark.parametrize("seed", range(2))
def test_exact_on_continuous_scores_in_one_tile(seed):
    # one tile: the scanner's product is the same BLAS call as the materialised one
    ref, probe = sides(seed, exact=False, n_ref=500, n_probe=700, d=32)
    views = views_of(ref, probe)
    binned, resolved, scan = score_all_pairs(ref, probe, views, far_targets=TARGETS,
                                             options=ScanOptions(device="cpu", tile_rows=500, tile_cols=700, collect_all=0))
    check(ref, probe, views, binned, resolved)


def test_same_images_on_both_sides_and_allow_same_source():
    ref, probe = sides(5, same=True)
    views = {"overall": View([0, 1, 2, 3])}
    for allow in (False, True):
        binned, resolved, scan = score_all_pairs(ref, probe, views, far_targets=TARGETS,
                                                 options=ScanOptions(device="cpu", tile_rows=50, tile_cols=70,
                                                                     allow_same_source=allow, collect_all=0,
                                                                     pilot_fraction=0.3))
        check(ref, probe, views, binned, resolved, allow_same_source=allow)
        S, labels, keep, _ = materialise(ref, probe, allow)
        assert scan.excluded == (labels & ~keep).sum()
        # genuine positions point at genuine comparisons
        scan.concat()
        assert labels[scan.genuine_rows, scan.genuine_cols].all() and keep[scan.genuine_rows, scan.genuine_cols].all()
        np.testing.assert_array_equal(scan.genuine, S[scan.genuine_rows, scan.genuine_cols])


def test_groups_wait_for_the_overall_thresholds():
    ref, probe = sides(1)
    views = views_of(ref, probe)

    def thresholds_of(name, resolved):
        if name == "overall":
            return []
        if "overall" not in resolved:
            return None
        return resolved["overall"]["tar_at_far"].threshold.tolist()

    binned, resolved, scan = score_all_pairs(ref, probe, views, far_targets=TARGETS,
                                             options=ScanOptions(device="cpu", tile_rows=64, tile_cols=64, collect_all=0),
                                             thresholds_of=thresholds_of)
    for name in views:
        if name != "overall":
            views[name].thresholds = resolved["overall"]["tar_at_far"].threshold.tolist()
    check(ref, probe, views, binned, resolved)
    assert len(resolved["cell0"]["rates"]) == len(TARGETS)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_coarse_bins_need_more_passes_and_stay_exact(backend):
    ref, probe = sides(2)
    views = views_of(ref, probe)
    binned, resolved, scan = score_all_pairs(ref, probe, views, far_targets=TARGETS,
                                             options=ScanOptions(device="cpu", tile_rows=64, tile_cols=64, collect_all=0,
                                                                 bins=ScoreBins(bins_per_unit=2**10), backend=backend))
    check(ref, probe, views, binned, resolved)


def test_bad_scores_are_refused():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(20, 8)).astype(np.float32)  # not normalised: scores far above 1
    side = Side(v, np.arange(20) % 4, np.arange(20))
    with pytest.raises(StreamingError, match="above 1.25|below -1.25"):
        score_all_pairs(side, side, {"overall": View([0])}, far_targets=TARGETS, options=ScanOptions(device="cpu"))
    v[0, 0] = np.nan
    side = Side(v / np.linalg.norm(v, axis=1, keepdims=True), np.arange(20) % 4, np.arange(20))
    with pytest.raises(StreamingError, match="NaN"):
        score_all_pairs(side, side, {"overall": View([0])}, far_targets=TARGETS, options=ScanOptions(device="cpu"))


def test_same_identity_pairs_equal_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 20, 100), rng.integers(0, 20, 150)
    rows, cols = same_identity_pairs(a, b)
    want = {(i, j) for i in range(100) for j in range(150) if a[i] == b[j]}
    assert set(zip(rows.tolist(), cols.tolist())) == want and len(rows) == len(want)


def test_device_selection():
    assert resolve_device("cpu", cuda_available=lambda: True) == "cpu"
    assert resolve_device("auto", cuda_available=lambda: True) == "cuda"
    assert resolve_device("auto", cuda_available=lambda: False) == "cpu"
    assert resolve_device("cuda", cuda_available=lambda: True) == "cuda"
    with pytest.raises(StreamingError, match="no CUDA device"):
        resolve_device("cuda", cuda_available=lambda: False)
    with pytest.raises(StreamingError, match="unknown scoring device"):
        resolve_device("tpu")


def test_a_side_with_no_usable_image_gives_the_materialised_answers():
    """Every reference failed to acquire: only -inf comparisons, counted through the view."""
    rng = np.random.default_rng(0)
    v = rng.normal(size=(10, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    empty = Side(np.zeros((0, 8), np.float32), np.zeros(0, int), np.zeros(0, int))
    full = Side(v, np.arange(10) % 3, np.arange(10))
    binned, resolved, _ = score_all_pairs(empty, full, {"overall": View([0], fta_impostor=20, fta_genuine=5)},
                                          far_targets=(1e-1, 1e-3), options=ScanOptions(device="cpu"))
    y, s = np.r_[np.ones(5, bool), np.zeros(20, bool)], np.full(25, -np.inf)
    r = resolved["overall"]
    np.testing.assert_array_equal(r["tar_at_far"].tar, M.tar_at_far(y, s, (1e-1, 1e-3)).tar)
    np.testing.assert_array_equal(r["nearest"].threshold, M.tar_at_far_nearest(y, s, (1e-1, 1e-3)).threshold)
    assert r["eer"] == M.eer(y, s) and binned["overall"].auc() == (M.roc_auc(y, s), 0.0)
