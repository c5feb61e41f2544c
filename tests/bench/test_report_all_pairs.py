"""The HTML report of all-pairs protocols: curves, histograms, galleries and drift from
histogram.csv, genuine.csv, images.csv and (when saved) embeddings.parquet, checked
against the materialised score matrix, and the page as headless Chromium renders it."""

from __future__ import annotations

import math
import re
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from tests.support.fake_data import sample_and_masked_copy
from tests.support.tiny_onnx import ARC112, make_model

from mfrkit.bench import metrics as M
from mfrkit.bench.score.binned_scores import ScoreBins
from mfrkit.bench.embed.embeddings_file import read_embeddings
from mfrkit.bench.report.leaderboard import collect_results
from mfrkit.bench.report.page import REPORT_NAME, build_report
from mfrkit.bench.report.gallery import hardest_pairs
from mfrkit.bench.report.impostors import top_impostors
from mfrkit.bench.report.scores import AllPairsScores, BinnedHistogram, Errors, Missing, display_edges, scan_genuine
from mfrkit.jobs import ExecutorSpec

PROTOCOLS = ("umr-ump-all", "umr-mp-all", "mr-mp-all")


@pytest.fixture(scope="module")
def all_pairs_run(tmp_path_factory):
    """The demo-like sample (real photos, an image without a face, a masked copy) scored
    all-pairs on umr-ump (the transfer source), umr-mp and mr-mp by two tiny models, with
    --save-embeddings; the bench writes report.html."""
    from mfrkit.bench.benchmark import BenchConfig, run_benchmark
    from mfrkit.protocols.workflow import make_protocol_folder

    root = tmp_path_factory.mktemp("all-pairs-report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MFRKIT_HOME", str(root / "home"))
        reference, masked = sample_and_masked_copy(root)
        protocols = []
        for name, ref, probe in (("umr-ump-all", reference, None), ("umr-mp-all", reference, masked),
                                 ("mr-mp-all", masked, None)):
            make_protocol_folder(root / "protocols" / name, ref, probe, spec=name[:-4], kind="all-pairs", seed=0)
            protocols.append(str(root / "protocols" / name))
        models = [make_model(root / "models" / f"tiny-{k}.onnx", size=112, dim=16, seed=i, meta=ARC112) for i, k in enumerate("ab")]
        run = run_benchmark(BenchConfig(models=[str(m) for m in models], protocols=protocols, out=root / "runs", n_boot=0,
                                        executor=ExecutorSpec(workers=0), cache_dir=None, save_embeddings=True, transfer_from="umr-ump-all"))
    return run


def materialised(result):
    """(labels, scores, keep) of the full reference x probe matrix of an all-pairs result,
    from images.csv and embeddings.parquet (FtA rows -inf), and the two image tables."""
    folder, data = result.folder, result.data
    images = pd.read_csv(folder / "images.csv", dtype={"image_id": str, "identity": str, "unit": str})
    refs = images[images["role"] == "reference"].reset_index(drop=True)
    probes = images[images["role"] == "probe"].reset_index(drop=True)
    rows, vec = read_embeddings(folder.parent / "embeddings.parquet")
    man = data["protocol"]["manifests"]

    def vectors(role, side):
        sel = ((rows["role"] == role) & (rows["manifest_fingerprint"] == man[role]["fingerprint"])).to_numpy()
        at = pd.Index(rows["image_id"][sel]).get_indexer(side["image_id"])
        return vec[np.flatnonzero(sel)[at]], rows["fta_reason"][sel].isna().to_numpy()[at]

    (vr, ok_r), (vq, ok_q) = vectors("reference", refs), vectors("probe", probes)
    S = np.full((len(refs), len(probes)), -np.inf)
    S[np.ix_(ok_r, ok_q)] = vr[ok_r] @ vq[ok_q].T
    labels = refs["identity"].to_numpy()[:, None] == probes["identity"].to_numpy()[None, :]
    keep = refs["unit"].to_numpy()[:, None] != probes["unit"].to_numpy()[None, :]
    if man["reference"]["fingerprint"] == man["probe"]["fingerprint"]:
        keep &= refs["image_id"].to_numpy()[:, None] != probes["image_id"].to_numpy()[None, :]
    if data["metrics"]["all_pairs"]["unordered"]:  # one set of images: each unordered pair once
        assert refs["image_id"].tolist() == probes["image_id"].tolist()
        keep &= np.triu(np.ones(keep.shape, bool), k=1)
    return labels, S, keep, refs, probes


def comparisons_table(labels, S, keep, refs, probes) -> pd.DataFrame:
    r, c = np.nonzero(keep)
    return pd.DataFrame({"left_id": refs["image_id"].to_numpy()[r], "right_id": probes["image_id"].to_numpy()[c],
                         "label": labels[r, c].astype(int), "score": S[r, c]})


def results_of(run):
    return [r for r in collect_results([run.folder]) if r.kind == "all-pairs"]


# --- against the materialised matrix ---------------------------------------------------------------


def test_errors_and_galleries_match_the_materialised_matrix(all_pairs_run):
    results = results_of(all_pairs_run)
    assert len(results) == 2 * len(PROTOCOLS)
    for r in results:
        labels, S, keep, refs, probes = materialised(r)
        src = AllPairsScores.read(r.data, r.folder)
        y, s = labels[keep], S[keep]
        # the histogram holds every comparison of the protocol
        assert (src.hist.n_genuine, src.hist.n_impostor) == (y.sum(), (~y).sum())
        assert src.n_minus_inf == np.isneginf(s).sum()
        # the gallery threshold and its errors: the materialised rule's
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            t = float(M.tar_at_far(y, s, [1e-3]).threshold[0])
        e = src.errors()
        assert isinstance(e, Errors) and e.threshold == t
        assert (e.false_rejects, e.false_accepts) == ((y & (s < t)).sum(), (~y & (s >= t)).sum())
        # the hardest comparisons: the same pairs, in the same order, as from the full list
        want_gen, want_imp = hardest_pairs(comparisons_table(labels, S, keep, refs, probes), t, 8)
        genuine, impostor = src.hardest(8)
        assert [(c.left_id, c.right_id, c.error) for c in genuine] == [(c.left_id, c.right_id, c.error) for c in want_gen]
        assert [(c.left_id, c.right_id, c.error) for c in impostor] == [(c.left_id, c.right_id, c.error) for c in want_imp]
        np.testing.assert_allclose([c.score for c in impostor], [c.score for c in want_imp], atol=1e-6)
        ident = dict(zip(refs["image_id"], refs["identity"]))
        assert all(c.left_identity == ident[c.left_id] != c.right_identity for c in impostor)


def test_curves_and_histograms_are_the_exact_counts(all_pairs_run):
    for r in results_of(all_pairs_run):
        labels, S, keep, *_ = materialised(r)
        y, s = labels[keep], S[keep]
        src = AllPairsScores.read(r.data, r.folder)
        far, tar = src.roc()
        # every point is the materialised ROC at a bin's lower edge (accept iff score >= edge)
        edges = src.hist.lower[::-1]
        np.testing.assert_array_equal(far[1:], [(~y & (s >= t)).sum() / (~y).sum() for t in edges])
        np.testing.assert_array_equal(tar[1:], [(y & (s >= t)).sum() / y.sum() for t in edges])
        fin = np.isfinite(s)
        lo, hi = src.score_range()
        assert lo <= s[fin].min() and s[fin].max() - hi < 2**-16
        gen, imp = src.histogram(display_edges(lo, hi))
        assert (gen.sum(), imp.sum()) == ((y & fin).sum(), (~y & fin).sum())


def test_drift_of_an_all_pairs_transfer_source(all_pairs_run):
    for r in results_of(all_pairs_run):
        if r.protocol != "umr-ump-all":
            assert r.data["transfer"]["from"] == "umr-ump-all"
            continue
        ts = r.data["transfer_source"]
        labels, S, keep, *_ = materialised(r)
        want = M.rates_at_threshold(labels[keep], S[keep], ts["threshold"]).as_dict()
        got = AllPairsScores.read(r.data, r.folder).rates_at(ts["threshold"], ts)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-12), k
    html = build_report(collect_results([all_pairs_run.folder]))
    drift = html[html.index('<section id="drift">') :]
    assert "From umr-ump-all" in drift and drift.count("<td>–</td>") == 0  # every cell has its numbers


# --- the page ------------------------------------------------------------------------------------------


def test_report_of_all_pairs_protocols(all_pairs_run):
    html = (all_pairs_run.folder / REPORT_NAME).read_text(encoding="utf-8")
    for name in PROTOCOLS:
        sec = html[html.index(f'id="protocol-{name}"') :]
        sec = sec[: sec.index("</section>")]
        for heading in ("ROC and DET", "Score distributions", "Hardest comparisons", "Failures to acquire"):
            assert f">{heading}<" in sec, (name, heading)
        assert "1:1 all-pairs" in sec and "exact ROC points at the bin edges" in sec
        assert sec.count('<figure class="pair">') == 2 * 16  # 8 genuine + 8 impostor for each model
        assert "Not available" not in sec and "No per-comparison scores" not in sec
        if name != "umr-ump-all":
            assert ">Breakdowns<" in sec  # masked protocols: per mask type and coverage
    for r in results_of(all_pairs_run):
        t = next(e for e in r.data["metrics"]["tar_at_far"] if math.isclose(e["far_target"], 1e-3))
        n_fr = round(t["n_genuine"] - t["true_accepts"])
        assert f"Threshold {t['threshold']:.4f}" in html
        assert f"{n_fr:,} false reject(s) of {int(t['n_genuine']):,} genuine, {int(t['false_accepts']):,} false accept(s)" in html


def test_without_saved_embeddings_the_report_says_why(tmp_path, all_pairs_run):
    copy = tmp_path / "run"
    shutil.copytree(all_pairs_run.folder, copy)
    for f in copy.glob("*/embeddings.parquet"):
        f.unlink()
    html = build_report(collect_results([copy]))
    assert html.count("Not available: the run did not save its embeddings") == 2 * len(PROTOCOLS)
    assert "--save-embeddings" in html
    assert html.count('<figure class="pair">') == 2 * len(PROTOCOLS) * 8  # the genuine galleries stay
    html = build_report(collect_results([all_pairs_run.folder]), impostor_pass_limit=0)
    assert html.count("--impostor-pass-limit") == 2 * len(PROTOCOLS)


def test_report_cli_impostor_pass_limit(tmp_path, all_pairs_run):
    from typer.testing import CliRunner

    from mfrkit.cli import app

    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(all_pairs_run.folder), "--out", str(out), "--impostor-pass-limit", "10"])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "limit of 10 on the cpu" in text


def test_all_pairs_report_renders_in_headless_chromium(tmp_path, all_pairs_run):
    from .test_report import _chromium_or_skip

    _chromium_or_skip()
    from tests.support.chromium_cdp import render
    from PIL import Image

    html_file = all_pairs_run.folder / REPORT_NAME
    page = render(html_file, tmp_path / "report.png")
    p = page.probe
    assert page.errors == [] and page.requests == [] and p["resources"] == [] and p["scripts"] == 0
    assert {f"protocol-{n}" for n in PROTOCOLS} <= set(p["sections"]) and p["sections"][-1] == "drift"
    for heading in ("ROC and DET", "Score distributions", "Breakdowns", "Lowest-scoring genuine pairs",
                    "Highest-scoring impostor pairs", "Failures to acquire", "Threshold drift", "From umr-ump-all"):
        assert heading in p["headings"], heading
    assert p["broken"] == []
    # per protocol: ROC, DET, histograms (+ breakdown bars on the masked ones); the drift bars
    assert p["figures"] >= 3 * len(PROTOCOLS) + 2 * 2 + 1
    assert p["faces"] >= len(PROTOCOLS) * 2 * 16 * 2  # two aligned crops per tile
    with Image.open(tmp_path / "report.png") as im:
        assert im.size == (1400, p["height"]) and p["height"] > 5000


# --- the pieces, against brute force ---------------------------------------------------------------


def test_binned_histogram_roc_is_the_roc_at_the_bin_edges(tmp_path):
    rng = np.random.default_rng(0)
    gen = np.r_[rng.normal(0.6, 0.1, 300), [0.5] * 20, [-np.inf] * 3].astype(np.float32)
    imp = np.r_[rng.normal(0.1, 0.1, 5000), [0.5] * 40, [-np.inf] * 7].astype(np.float32)
    bins = ScoreBins()
    bg, bi = bins.of(gen), bins.of(imp)
    b = np.unique(np.r_[bg, bi])
    df = pd.DataFrame({"bin": b, "lower": bins.lower_edge(b), "upper": np.where(b == 0, -np.inf, bins.lower_edge(b + 1)),
                       "impostor": [(bi == k).sum() for k in b], "genuine": [(bg == k).sum() for k in b]})
    df.sample(frac=1, random_state=0).to_csv(tmp_path / "histogram.csv", index=False)  # any row order
    h = BinnedHistogram.read(tmp_path / "histogram.csv")
    assert (h.n_genuine, h.n_impostor, h.minus_inf_genuine, h.minus_inf_impostor) == (323, 5047, 3, 7)
    far, tar = h.roc()
    edges = h.lower[::-1]
    np.testing.assert_array_equal(far, np.r_[0, [(imp >= t).sum() / len(imp) for t in edges]])
    np.testing.assert_array_equal(tar, np.r_[0, [(gen >= t).sum() / len(gen) for t in edges]])
    # each is a point of the full ROC (the threshold at a bin edge is a score's threshold)
    y = np.r_[np.ones(len(gen), bool), np.zeros(len(imp), bool)]
    fpr, tpr, _ = M.roc_curve(y, np.r_[gen, imp].astype(np.float64), drop_intermediate=False)
    full = set(zip(fpr.tolist(), tpr.tolist()))
    assert all((a, c) in full for a, c in zip(far.tolist(), tar.tolist()))
    # the cut: at least n finite impostor scores at or above it, fewer above the next edge up
    for n in (1, 8, 40, 41, 5040):
        cut = h.impostor_cut(n)
        assert (imp >= cut).sum() >= n
        higher = h.lower[h.lower > cut]
        assert not len(higher) or (imp >= higher[0]).sum() < n
    assert h.impostor_cut(5041) == -math.inf  # only 5040 finite impostor scores
    edges = display_edges(*h.score_range())
    g, i = h.histogram(edges)
    assert (g.sum(), i.sum()) == (320, 5040)


def test_scan_genuine_streams_the_lowest_scores(tmp_path):
    rng = np.random.default_rng(1)
    n = 5000
    df = pd.DataFrame({"left_id": [f"{k % 37:03d}" for k in range(n)], "right_id": [f"r{k}" for k in range(n)],
                       "score": np.round(rng.normal(0.6, 0.1, n), 2), "fta": False})
    df.loc[[3, 4000], "left_id"] = ["NA", "None"]  # ids, not missing values
    df.loc[[10, 20, 30], ["score", "fta"]] = [-np.inf, True]
    df.to_csv(tmp_path / "genuine.csv", index=False)
    # a tiny block size: many blocks, ties (scores rounded to 0.01) across their borders
    got = scan_genuine(tmp_path / "genuine.csv", 8, thresholds=[0.5, 0.61, 0.5], block_size=4096)
    fin = df[np.isfinite(df["score"])]
    want = fin.sort_values(["score", "left_id", "right_id"], kind="stable").head(8)
    assert got.lowest.head(8)[["left_id", "right_id"]].values.tolist() == want[["left_id", "right_id"]].values.tolist()
    np.testing.assert_array_equal(got.lowest.head(8)["score"], want["score"])
    assert got.below == {0.5: int((df["score"] < 0.5).sum()), 0.61: int((df["score"] < 0.61).sum())}
    assert (got.n, got.n_minus_inf) == (n, 3)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_top_impostors_is_the_brute_force_top(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(450, 8)).astype(np.float32)
    probe = rng.normal(size=(430, 8)).astype(np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    probe /= np.linalg.norm(probe, axis=1, keepdims=True)
    ir, iq = rng.integers(0, 30, len(ref)), rng.integers(0, 30, len(probe))
    exact = ref.astype(np.float64) @ probe.astype(np.float64).T
    imp = ir[:, None] != iq[None, :]
    ranked = np.sort(exact[imp])[::-1]
    for cut, n in ((-math.inf, 5), (-math.inf, 1), (0.3, 12), (0.9, 100_000)):
        # tiles of 128: every tile border is crossed; cut -inf: > 100k hits, so the running pruning works
        r, c, s = top_impostors(ref, probe, ir, iq, cut, n, tile=128, backend=backend)
        assert (ir[r] != iq[c]).all() and len(set(zip(r.tolist(), c.tolist()))) == len(r)
        np.testing.assert_allclose(s, exact[r, c], atol=1e-6)
        above = ranked[ranked >= cut]
        nth = above[min(n, len(above)) - 1]
        # every impostor that must be among the n highest is there, and nothing far below
        must = imp & (exact > nth + 1e-6) & (exact >= cut + 1e-6)
        got = np.zeros_like(imp)
        got[r, c] = True
        assert not (must & ~got).any()
        assert (exact[r, c] >= max(nth, cut) - 1e-6).all() and len(r) >= min(n, len(above))
    r, c, s = top_impostors(ref, probe, ir, iq, 2.0, 3, backend=backend)  # nothing that high
    assert len(r) == len(c) == len(s) == 0
    # one set of images on both sides: each unordered pair once (row < col), the brute-force top
    square = probe.astype(np.float64) @ probe.astype(np.float64).T
    upper = (iq[:, None] != iq[None, :]) & np.triu(np.ones(square.shape, bool), k=1)
    want = np.sort(square[upper])[::-1][:50]
    r, c, s = top_impostors(probe, probe, iq, iq, -math.inf, 50, tile=128, backend=backend, upper=True)
    assert (r < c).all() and (iq[r] != iq[c]).all() and len(set(zip(r.tolist(), c.tolist()))) == len(r)
    np.testing.assert_allclose(np.sort(s)[::-1][:50], want, atol=1e-6)


def test_impostor_gallery_of_a_run_folder_without_images_csv(tmp_path, all_pairs_run):
    copy = tmp_path / "run"
    shutil.copytree(all_pairs_run.folder, copy)
    for f in copy.glob("*/*/images.csv"):
        f.unlink()
    r = next(r for r in collect_results([copy]) if r.kind == "all-pairs")
    genuine, impostor = AllPairsScores.read(r.data, r.folder).hardest(8)
    assert len(genuine) == 8 and isinstance(impostor, Missing) and "no images.csv" in impostor.reason
    assert re.search("Not available: no images.csv", build_report(collect_results([copy])))
