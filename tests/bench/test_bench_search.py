"""1:1 pair scores and the blocked 1:N search against dense references."""

from __future__ import annotations

import numpy as np
import pytest

from mfrkit.bench import metrics as M
from mfrkit.bench.score import search as S


def unit(rng, n, d=16):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_pair_scores_indexed_and_fta():
    rng = np.random.default_rng(0)
    a, b = unit(rng, 5), unit(rng, 4)
    ia, ib = np.array([0, 4, 2, 2]), np.array([3, 0, 1, 1])
    ok_a = np.array([True, True, False, True, True])
    s = S.pair_scores(a, b, left_index=ia, right_index=ib, left_ok=ok_a)
    ref = (a[ia] * b[ib]).sum(1)
    np.testing.assert_allclose(s[[0, 1]], ref[[0, 1]], rtol=1e-6)
    assert np.isneginf(s[2]) and np.isneginf(s[3])  # image 2 failed to acquire
    np.testing.assert_allclose(S.pair_scores(a[:4], b), (a[:4] * b).sum(1), rtol=1e-6)
    with pytest.raises(S.ScoringError, match="out of range"):
        S.pair_scores(a, b, left_index=[9], right_index=[0])


@pytest.mark.parametrize("blocks", [(7, 5), (64, 1000), (3, 2)])
@pytest.mark.parametrize("k", [1, 4, 40])
def test_topk_equals_dense(blocks, k):
    rng = np.random.default_rng(1)
    Q, G = unit(rng, 23), unit(rng, 31)
    s, i, dev = S.topk_search(Q, G, k, device="cpu", probe_block=blocks[0], gallery_block=blocks[1])
    assert dev == "cpu" and s.shape == (23, k)
    dense = Q @ G.T
    kk = min(k, 31)
    ref_i = np.argsort(-dense, axis=1, kind="stable")[:, :kk]
    np.testing.assert_array_equal(i[:, :kk], ref_i)
    np.testing.assert_allclose(s[:, :kk], np.take_along_axis(dense, ref_i, 1), atol=1e-6)
    if k > 31:
        assert (i[:, 31:] == -1).all() and np.isneginf(s[:, 31:]).all()


def test_topk_torch_path_matches_numpy():
    # The GPU path is torch; on this machine it runs on the CPU device but is the same code.
    rng = np.random.default_rng(2)
    Q, G = unit(rng, 40), unit(rng, 100)
    s_np, i_np = S._topk_numpy(Q, G, 5, 16, 32, None)
    s_t, i_t = S._topk_torch(Q, G, 5, 16, 32, "cpu", None)
    o1, o2 = np.argsort(-s_np, 1, kind="stable"), np.argsort(-s_t, 1, kind="stable")
    np.testing.assert_array_equal(np.take_along_axis(i_np, o1, 1), np.take_along_axis(i_t, o2, 1))


def test_search_device_resolution():
    assert S.resolve_search_device("cpu") == "cpu"
    assert S.resolve_search_device("auto") == "cpu"  # no CUDA on this machine
    with pytest.raises(S.ScoringError, match="no CUDA"):
        S.resolve_search_device("cuda")
    with pytest.raises(S.ScoringError, match="unknown search device"):
        S.resolve_search_device("tpu")


@pytest.mark.parametrize("k", [1, 3, 10])
def test_identify_ranks_equal_dense_reference(k):
    rng = np.random.default_rng(3)
    T = unit(rng, 30)
    probes = unit(rng, 50)
    mate = rng.integers(-1, 30, 50)
    # make mated probes near their mate so ranks spread over 1..many
    mix = rng.random(50)[:, None]
    probes = np.where((mate >= 0)[:, None], mix * T[np.maximum(mate, 0)] + (1 - mix) * probes, probes)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    ok = np.ones(50, bool)
    ok[[4, 7]] = False
    res = S.identify(probes, ok, T, mate, k=k, device="cpu", probe_block=8, gallery_block=7)
    dense = np.where(ok[:, None], probes @ T.T, -np.inf)
    ref = M.mate_ranks(dense, mate)
    ref = np.where(ref <= k, ref, np.where(np.isnan(ref), np.nan, np.inf))
    np.testing.assert_array_equal(res.ranks, ref)
    np.testing.assert_allclose(M.cmc(res.ranks, k), M.cmc(M.mate_ranks(dense, mate), k))
    np.testing.assert_allclose(res.best_scores[ok], dense[ok].max(1), atol=1e-6)
    assert np.isneginf(res.best_scores[~ok]).all()
    mated_ok = (mate >= 0) & ok
    np.testing.assert_allclose(res.mated_scores[mated_ok], dense[mated_ok, mate[mated_ok]], atol=1e-6)


def test_identify_exact_ties_count_as_misses():
    # Templates 0 and 1 are identical: a probe mated to 1 ties with non-mate 0, so rank 2.
    # Values are multiples of 1/2 so every dot product is exact in float32.
    T = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], np.float32)
    P = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 0.5, 0.5, 0], [0.5, 0.5, 0.5, 0.5]], np.float32)
    mate = np.array([1, 0, 2, 3])
    for k in (1, 2, 3):
        res = S.identify(P, np.ones(4, bool), T, mate, k=k, device="cpu")
        ref = M.mate_ranks(P @ T.T, mate)
        expect = np.where(ref <= k, ref, np.inf)
        np.testing.assert_array_equal(res.ranks, expect)
    assert M.mate_ranks(P @ T.T, mate).tolist() == [2, 2, 2, 4]


def test_constant_model_gets_no_hits():
    T = np.tile(np.array([[1, 0, 0]], np.float32), (5, 1))
    P = np.tile(np.array([[1, 0, 0]], np.float32), (5, 1))
    res = S.identify(P, np.ones(5, bool), T, np.arange(5), k=3, device="cpu")
    assert np.isinf(res.ranks).all()


def test_identity_templates():
    E = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.float32)
    ids = np.array(["b", "b", "a", "c"])
    ok = np.array([True, True, True, False])
    T, names, lost = S.identity_templates(E, ok, ids)
    assert names == ["a", "b"] and lost.tolist() == ["c"]
    np.testing.assert_allclose(T[1], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)


def test_identify_identity_without_template_is_a_miss():
    T = np.eye(3, dtype=np.float32)
    res = S.identify(T[:2], np.ones(2, bool), T, np.array([0, -2]), k=2, device="cpu")
    assert res.ranks[0] == 1 and res.ranks[1] == np.inf and np.isneginf(res.mated_scores[1])


def test_megaface_rows_equal_dense_reference():
    rng = np.random.default_rng(6)
    D = unit(rng, 40)
    P = unit(rng, 12)
    mates = unit(rng, 12)
    mates[3] = D[5]  # a mate identical to a distractor: a tie, so a miss at rank 1
    P[3] = D[5]
    mix = rng.random(12)[:, None]
    P = mix * mates + (1 - mix) * P
    P /= np.linalg.norm(P, axis=1, keepdims=True)
    P[3] = D[5]
    ok = np.ones(12, bool)
    mok = np.ones(12, bool)
    mok[7] = False  # mate failed to acquire
    for k in (1, 4):
        res = S.identify_with_distractors(P, ok, D, mates, mok, k=k, device="cpu", probe_block=5, gallery_block=9)
        for r in range(12):
            dense = np.r_[P[r] @ D.T, P[r] @ mates[r]][None, :]
            ref = M.mate_ranks(dense, [len(D)])[0]
            expect = np.inf if (not mok[r] or ref > k) else ref
            assert res.ranks[r] == expect, (r, k)
    assert res.ranks[3] >= 2 and np.isinf(res.ranks[7])
