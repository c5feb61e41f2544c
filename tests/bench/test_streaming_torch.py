"""The torch all-pairs scorer (the CUDA code path, run on the CPU) gives exactly what the
numpy scorer gives: the same histogram, kept scores and genuine scores, pass by pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from .test_streaming import TARGETS, sides, views_of

from mfrkit.bench.score import streaming_torch as ST
from mfrkit.bench.score.streaming import ScanOptions, Side, StreamingError, View, score_all_pairs


def _scan(ref, probe, backend, **kw):
    views = views_of(ref, probe)
    return score_all_pairs(ref, probe, views, far_targets=TARGETS, options=ScanOptions(device="cpu", backend=backend, **kw))


def _same_scan(a, b):
    a.concat(), b.concat()
    np.testing.assert_array_equal(a.hist, b.hist)
    np.testing.assert_array_equal(a.collected, b.collected)
    for name in ("values", "value_cells"):
        order_a = np.lexsort((getattr(a, "values"), a.value_cells))
        order_b = np.lexsort((getattr(b, "values"), b.value_cells))
        np.testing.assert_array_equal(getattr(a, name)[order_a], getattr(b, name)[order_b])
    for name in ("genuine", "genuine_cells", "genuine_rows", "genuine_cols"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.excluded, a.sentinels, a.passes, a.pilot_rows) == (b.excluded, b.sentinels, b.passes, b.pilot_rows)


@pytest.mark.parametrize("kw", [{"collect_all": 10**9}, {"collect_all": 0, "pilot_fraction": 0.2}])
@pytest.mark.parametrize("scale", [1.0, 1.25])
def test_torch_scan_equals_numpy_scan(kw, scale):
    """Exact-in-float32 scores, several cells, ragged tiles; ``scale`` 1.25 (exact in float32) puts the norms
    above the bound, so every tile's minimum and maximum are checked instead."""
    ref, probe = sides(3)
    if scale != 1.0:  # |v| <= 0.5 * sqrt(16) / 2 = 1: scores stay inside [-1.25, 1.25]
        ref = Side(ref.vectors * np.float32(scale), ref.identity, ref.unit, ref.image, ref.cell)
    _, res_np, scan_np = _scan(ref, probe, "numpy", tile_rows=64, tile_cols=96, **kw)
    _, res_t, scan_t = _scan(ref, probe, "torch", tile_rows=64, tile_cols=96, **kw)
    _same_scan(scan_np, scan_t)
    for name in res_np:
        np.testing.assert_array_equal(res_t[name]["tar_at_far"].tar, res_np[name]["tar_at_far"].tar)
        assert res_t[name]["eer"] == res_np[name]["eer"]


def test_bounded_norms_skip_the_per_tile_check():
    v = np.eye(4, dtype=np.float32)
    assert ST.norms_bounded(torch, torch.from_numpy(v))
    assert not ST.norms_bounded(torch, torch.from_numpy(v * 1.2))
    v[0, 0] = np.nan
    assert not ST.norms_bounded(torch, torch.from_numpy(v))


@pytest.mark.parametrize("bad", ["large", "nan"])
def test_bad_scores_are_refused_on_torch(bad):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(20, 8)).astype(np.float32)  # not normalised: scores far above 1
    if bad == "nan":
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        v[0, 0] = np.nan
    side = Side(v, np.arange(20) % 4, np.arange(20))
    with pytest.raises(StreamingError, match="above 1.25|below -1.25" if bad == "large" else "NaN"):
        score_all_pairs(side, side, {"overall": View([0])}, far_targets=TARGETS,
                        options=ScanOptions(device="cpu", backend="torch", tile_rows=8, tile_cols=8))


def test_float32_products_are_ieee_inside_the_scan_and_restored(monkeypatch):
    m = torch.backends.cuda.matmul
    before = m.fp32_precision
    m.fp32_precision = "tf32"
    seen = []
    real = torch.matmul

    def spy(*a, **k):
        seen.append(m.fp32_precision)
        return real(*a, **k)

    entered = []
    real_ctx = ST.ieee_float32_matmul

    def counting(*a, **k):
        entered.append(1)
        return real_ctx(*a, **k)

    monkeypatch.setattr(torch, "matmul", spy)
    monkeypatch.setattr(ST, "ieee_float32_matmul", counting)
    try:
        ref, probe = sides(1)
        _scan(ref, probe, "torch", tile_rows=64, tile_cols=64, collect_all=10**9)
        assert seen and set(seen) == {"ieee"}
        assert len(entered) == 1  # once for the whole pass, not per tile
        assert m.fp32_precision == "tf32"
    finally:
        m.fp32_precision = before


def test_older_torch_uses_allow_tf32():
    class Matmul:
        allow_tf32 = True

    class Fake:
        class backends:
            class cuda:
                matmul = Matmul()

    with ST.ieee_float32_matmul(Fake):
        assert Fake.backends.cuda.matmul.allow_tf32 is False
    assert Fake.backends.cuda.matmul.allow_tf32 is True


# --- the Triton kernel (run by Triton's interpreter on CPU tensors) ----------------------------------


@pytest.fixture
def interpreted_triton(monkeypatch):
    """The kernel module imported afresh with ``TRITON_INTERPRET=1`` (Triton reads it when
    the kernel is defined), and the reducer forced to it; skipped without Triton."""
    import importlib
    import sys

    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    sys.modules.pop("mfrkit.bench.score.streaming_triton", None)
    module = importlib.import_module("mfrkit.bench.score.streaming_triton")
    monkeypatch.setattr(ST, "REDUCER", "triton")
    yield module
    sys.modules.pop("mfrkit.bench.score.streaming_triton", None)  # later imports compile for a GPU again


@pytest.mark.parametrize("kw", [{"collect_all": 10**9}, {"collect_all": 0, "pilot_fraction": 0.2}])
@pytest.mark.parametrize("scale", [1.0, 1.25])
def test_triton_kernel_scan_equals_numpy_scan(interpreted_triton, kw, scale):
    """Several cells (row and column offsets), ragged tiles, the pilot's row groups, an extra
    pass, and (scale 1.25) the per-tile check: bin for bin what numpy gives."""
    ref, probe = sides(3)
    if scale != 1.0:
        ref = Side(ref.vectors * np.float32(scale), ref.identity, ref.unit, ref.image, ref.cell)
    _, res_np, scan_np = _scan(ref, probe, "numpy", tile_rows=64, tile_cols=96, **kw)
    _, res_t, scan_t = _scan(ref, probe, "torch", tile_rows=64, tile_cols=96, **kw)
    assert scan_t.reducer == "triton"
    _same_scan(scan_np, scan_t)
    for name in res_np:
        np.testing.assert_array_equal(res_t[name]["tar_at_far"].tar, res_np[name]["tar_at_far"].tar)


def test_triton_int32_counts_are_flushed_before_they_could_overflow(interpreted_triton, monkeypatch):
    ref, probe = sides(1)
    _, _, want = _scan(ref, probe, "numpy", tile_rows=64, tile_cols=64, collect_all=10**9)
    flushes = []
    real = ST.TorchTiles._flush

    def counting(self):
        flushes.append(self._since_flush)
        real(self)

    monkeypatch.setattr(ST, "FLUSH_AT", 64 * 64 * 2)  # at most two tiles' counts in int32
    monkeypatch.setattr(ST.TorchTiles, "_flush", counting)
    _, _, got = _scan(ref, probe, "torch", tile_rows=64, tile_cols=64, collect_all=10**9)
    assert len(flushes) > 2 and max(flushes) <= 64 * 64 * 2
    _same_scan(want, got)


def test_triton_bad_scores_are_refused(interpreted_triton):
    v = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)  # scores far above 1
    side = Side(v, np.arange(20) % 4, np.arange(20))
    with pytest.raises(StreamingError, match="above 1.25|below -1.25"):
        score_all_pairs(side, side, {"overall": View([0])}, far_targets=TARGETS,
                        options=ScanOptions(device="cpu", backend="torch", tile_rows=8, tile_cols=8))


def test_a_kernel_that_fails_falls_back_to_torch_operations(monkeypatch):
    """A Triton that cannot compile here (no C compiler, an old GPU) costs speed, never
    the result: a warning, then torch operations from that tile on."""
    calls = []

    def broken(*a, **k):
        calls.append(1)
        if len(calls) == 2:  # one tile counted by the "kernel", then it fails
            raise RuntimeError("Failed to find C compiler")
        _kernel_by_torch_ops(*a, **k)

    ref, probe = sides(1)
    _, _, want = _scan(ref, probe, "numpy", tile_rows=64, tile_cols=64, collect_all=10**9)
    monkeypatch.setattr(ST, "_triton_kernel", lambda dev: broken)
    with pytest.warns(RuntimeWarning, match="Triton kernel failed.*torch operations"):
        _, _, got = _scan(ref, probe, "torch", tile_rows=64, tile_cols=64, collect_all=10**9)
    assert got.reducer == ST.FELL_BACK and len(calls) == 2
    _same_scan(want, got)


def _kernel_by_torch_ops(S, scale, offset, row_off, col_off, hist, lut, keep):
    """What :func:`~mfrkit.bench.score.streaming_triton.tile_keys` computes, in torch (for the fallback test)."""
    key = (S * scale + offset).to(torch.int32)
    if row_off is not None:
        key += row_off.to(torch.int32)[:, None]
    if col_off is not None:
        key += col_off.to(torch.int32)[None, :]
    key = key.reshape(-1).clamp(0, len(hist if hist is not None else lut) - 1).long()
    if hist is not None:
        hist.index_add_(0, key, torch.ones_like(key, dtype=torch.int32))
    if lut is not None:
        keep.copy_(lut[key])


def test_the_reducer_on_the_cpu_is_torch_operations_unless_asked():
    ref, probe = sides(1)
    assert _scan(ref, probe, "torch", tile_rows=64, tile_cols=64)[2].reducer == "torch"
    assert _scan(ref, probe, "numpy", tile_rows=64, tile_cols=64)[2].reducer == "numpy"


# --- which reducer a scan gets -------------------------------------------------------------------


class _Dev:
    """A ``torch.device`` stand-in: the choice reads only ``type``."""

    def __init__(self, kind):
        self.type = kind


@pytest.fixture
def triton_unimportable(monkeypatch):
    """``import triton`` fails (as on a machine without it), the kernel module forgotten."""
    import sys

    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.delitem(sys.modules, "mfrkit.bench.score.streaming_triton", raising=False)


def test_auto_picks_the_kernel_on_cuda_only_where_triton_imports(monkeypatch, triton_unimportable):
    monkeypatch.setattr(ST, "REDUCER", "auto")
    assert ST._triton_kernel(_Dev("cpu")) is None
    assert ST._triton_kernel(_Dev("cuda")) is None  # no Triton: torch operations, no error


def test_auto_on_cuda_gets_the_kernel_when_triton_imports(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setattr(ST, "REDUCER", "auto")
    kernel = ST._triton_kernel(_Dev("cuda"))
    from mfrkit.bench.score.streaming_triton import tile_keys

    assert kernel is tile_keys


def test_torch_reducer_never_uses_the_kernel(monkeypatch):
    monkeypatch.setattr(ST, "REDUCER", "torch")
    assert ST._triton_kernel(_Dev("cuda")) is None


def test_asking_for_triton_without_it_is_a_clear_error(monkeypatch, triton_unimportable):
    monkeypatch.setattr(ST, "REDUCER", "triton")
    with pytest.raises(StreamingError, match="Triton all-pairs kernel was asked for but Triton does not import"):
        ST._triton_kernel(_Dev("cpu"))
    ref, probe = sides(1)
    with pytest.raises(StreamingError, match="asked for"):
        _scan(ref, probe, "torch", tile_rows=64, tile_cols=64)


def test_an_unknown_reducer_is_refused(monkeypatch):
    monkeypatch.setattr(ST, "REDUCER", "cuda-graphs")
    with pytest.raises(StreamingError, match="unknown all-pairs reducer 'cuda-graphs'; choose one of: auto"):
        ST._triton_kernel(_Dev("cuda"))


def test_a_kernel_failing_on_the_first_tile_with_kept_scores_falls_back(monkeypatch):
    """Failing before any count (the usual case: compilation fails at the first launch), in a
    scan that keeps scores (the uint8 mask becomes torch's bool mask): same result, said so."""
    calls = []

    def broken(*a, **k):
        calls.append(1)
        raise RuntimeError("triton.runtime.errors.OutOfResources: shared memory")

    ref, probe = sides(3)
    kw = dict(tile_rows=64, tile_cols=96, collect_all=0, pilot_fraction=0.2)
    _, res_np, want = _scan(ref, probe, "numpy", **kw)
    monkeypatch.setattr(ST, "_triton_kernel", lambda dev: broken)
    scans, real_scan = [], ST.TorchTiles.scan
    monkeypatch.setattr(ST.TorchTiles, "scan", lambda self, *a, **k: scans.append(1) or real_scan(self, *a, **k))
    with pytest.warns(RuntimeWarning, match=r"Triton kernel failed \(RuntimeError: triton.runtime"):
        _, res_t, got = _scan(ref, probe, "torch", **kw)
    assert got.reducer == ST.FELL_BACK
    # each pass over the tiles (pilot, main) tries the kernel once, then keeps to torch operations
    assert len(scans) >= 2 and len(calls) == len(scans)
    _same_scan(want, got)
    for name in res_np:
        np.testing.assert_array_equal(res_t[name]["tar_at_far"].tar, res_np[name]["tar_at_far"].tar)


def test_a_scan_that_worked_says_triton_after_one_that_fell_back(monkeypatch):
    """The fallback is per scan: it does not stick to the module or the next scan's result."""
    ref, probe = sides(1)

    def broken(*a, **k):
        raise RuntimeError("no C compiler")

    monkeypatch.setattr(ST, "_triton_kernel", lambda dev: broken)
    with pytest.warns(RuntimeWarning):
        assert _scan(ref, probe, "torch", tile_rows=64, tile_cols=64)[2].reducer == ST.FELL_BACK
    monkeypatch.setattr(ST, "_triton_kernel", lambda dev: _kernel_by_torch_ops)
    assert _scan(ref, probe, "torch", tile_rows=64, tile_cols=64)[2].reducer == "triton"


def test_one_torch_tile_at_a_time_equals_numpy():
    """``TorchTiles.run`` (one tile: the base class's contract, a pass of one tile) gives
    each tile's counts and kept scores as the numpy tile does."""
    from mfrkit.bench.score.binned_scores import ScoreBins
    from mfrkit.bench.score.scan import ScanResult
    from mfrkit.bench.score.tiles import Plan, make_tiles

    ref, probe = sides(3)
    bins = ScoreBins()
    kw = dict(allow_same_source=False, tile_rows=64, tile_cols=96, device="cpu")
    t_np, t_t = make_tiles(ref, probe, bins, **kw), make_tiles(ref, probe, bins, backend="torch", **kw)
    assert t_t.backend == "torch" and t_np.tiles == t_t.tiles
    lut = np.zeros(t_np.n_cells * bins.n_bins, bool)
    lut[::7] = True
    plan = Plan(histogram=True, genuine=True, lut=lut)
    seen = [0, 0]
    for tile in t_np.tiles[:4]:
        outs, hists = [], []
        for t in (t_np, t_t):
            out = ScanResult(bins=bins, n_cells=t.n_cells, hist=np.zeros((1, 1), np.int64), collected=lut[: bins.n_bins])
            h = np.zeros(t.n_cells * bins.n_bins, np.int64)
            t.run(tile, plan, out, h)
            out.concat()
            outs.append(out), hists.append(h)
        np.testing.assert_array_equal(hists[0], hists[1])
        _same_scan_parts(*outs)
        seen[0] += len(outs[1].values)
        seen[1] += len(outs[1].genuine)
    assert min(seen) > 0  # kept and genuine scores were compared, not only empty lists


def _same_scan_parts(a, b):
    order_a, order_b = np.lexsort((a.values, a.value_cells)), np.lexsort((b.values, b.value_cells))
    np.testing.assert_array_equal(a.values[order_a], b.values[order_b])
    np.testing.assert_array_equal(a.value_cells[order_a], b.value_cells[order_b])
    for name in ("genuine", "genuine_cells", "genuine_rows", "genuine_cols"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.excluded, a.sentinels) == (b.excluded, b.sentinels)
