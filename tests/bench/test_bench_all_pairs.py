"""All-pairs protocols through the bench, and every number of a run rechecked from its folder."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from tests.support.bench import all_pairs, config, write_protocol
from tests.support.fake_data import make_dataset

from mfrkit.bench.metrics import bundle as E
from mfrkit.bench import metrics as M
from mfrkit.bench.benchmark import BenchConfig, run_benchmark
from mfrkit.bench.embed.embeddings_file import read_embeddings
from mfrkit.bench.report.leaderboard import collect_leaderboard
from mfrkit.bench.score.search import pair_scores
from mfrkit.protocols import make_all_pairs, save_protocol


def close(a, b) -> bool:
    """Equal, NaN equal to NaN/None (JSON), floats to the last bit."""
    if isinstance(a, dict):
        return set(a) == set(b) and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(b, str) and b in ("inf", "-inf") and not isinstance(a, str):
        return a == float(b)
    return a == b


def json_round_trip(obj):
    from mfrkit.bench.results.files import _clean

    return json.loads(json.dumps(_clean(obj)))


# --- recomputing a run from its folder alone --------------------------------------------------------


def embeddings_of(run_folder, model, role, fingerprint):
    rows, vec = read_embeddings(run_folder / model / "embeddings.parquet")
    sel = (rows["role"] == role) & (rows["manifest_fingerprint"] == fingerprint)
    rows, vec = rows[sel].reset_index(drop=True), vec[sel.to_numpy()]
    return rows.set_index("image_id"), vec


def recheck_pairs(run_folder, model, proto_dir, res):
    """Every number of a pair-list protocol's metrics.json, from embeddings.parquet and scores.csv."""
    man = res["protocol"]["manifests"]
    ref_rows, ref_vec = embeddings_of(run_folder, model, "reference", man["reference"]["fingerprint"])
    prb_rows, prb_vec = embeddings_of(run_folder, model, "probe", man["probe"]["fingerprint"])
    scores = pd.read_csv(proto_dir / "scores.csv", dtype={"left_id": str, "right_id": str}, float_precision="round_trip")
    li = ref_rows.index.get_indexer(scores["left_id"])
    ri = prb_rows.index.get_indexer(scores["right_id"])
    s = pair_scores(ref_vec, prb_vec, left_index=li, right_index=ri, left_ok=ref_rows["fta_reason"].isna().to_numpy(),
                    right_ok=prb_rows["fta_reason"].isna().to_numpy())
    np.testing.assert_array_equal(s, scores["score"].to_numpy())  # the scores themselves
    settings = res["settings"]
    pairs = scores.copy()
    for side, rows, idx in (("left", ref_rows, li), ("right", prb_rows, ri)):
        for c in ("identity", "mask_type", "coverage", "region"):
            pairs[f"{side}_{c}"] = rows[c].to_numpy()[idx]
    use = pairs if settings["fta_policy"] == "reject" else pairs[~pairs["fta"]]
    clusters = use["left_identity"].where(use["left_identity"].notna(), use["left_id"]).astype(str).to_numpy()
    m = E.verification_metrics(use["label"].to_numpy(), use["score"].to_numpy(), use["fold"].to_numpy(), clusters,
                               far_targets=settings["far_targets"], n_boot=settings["n_boot"], seed=settings["seed"],
                               confidence=settings["confidence"])
    m["n_fta_excluded"] = int(len(pairs) - len(use))
    assert close(json_round_trip(m), res["metrics"]), list(_diff(json_round_trip(m), res["metrics"]))[:5]
    b = E.verification_breakdowns(use, thresholds=E.overall_thresholds(m), far_targets=settings["far_targets"])
    assert close(json_round_trip(b), res["breakdowns"])
    return use


def recheck_all_pairs(run_folder, model, proto_dir, res):
    """Every exact number of an all-pairs protocol's metrics.json, from embeddings.parquet
    and images.csv, by materialising the score matrix."""
    man = res["protocol"]["manifests"]
    images = pd.read_csv(proto_dir / "images.csv", dtype={"image_id": str, "identity": str, "unit": str})
    refs, probes = images[images["role"] == "reference"], images[images["role"] == "probe"]
    ref_rows, ref_vec = embeddings_of(run_folder, model, "reference", man["reference"]["fingerprint"])
    prb_rows, prb_vec = embeddings_of(run_folder, model, "probe", man["probe"]["fingerprint"])
    li, ri = ref_rows.index.get_indexer(refs["image_id"]), prb_rows.index.get_indexer(probes["image_id"])
    ok_r, ok_q = ref_rows["fta_reason"].isna().to_numpy()[li], prb_rows["fta_reason"].isna().to_numpy()[ri]
    S = np.full((len(refs), len(probes)), -np.inf)
    S[np.ix_(ok_r, ok_q)] = ref_vec[li[ok_r]] @ prb_vec[ri[ok_q]].T  # usable rows in list order, as scored
    labels = refs["identity"].to_numpy()[:, None] == probes["identity"].to_numpy()[None, :]
    keep = refs["unit"].to_numpy()[:, None] != probes["unit"].to_numpy()[None, :]
    if man["reference"]["fingerprint"] == man["probe"]["fingerprint"]:
        keep &= refs["image_id"].to_numpy()[:, None] != probes["image_id"].to_numpy()[None, :]
    if res["metrics"]["all_pairs"]["unordered"]:  # one set of images: each unordered pair once
        assert refs["image_id"].tolist() == probes["image_id"].tolist()
        keep &= np.triu(np.ones(keep.shape, bool), k=1)
    if res["settings"]["fta_policy"] == "exclude":
        keep &= np.isfinite(S)
    far = res["settings"]["far_targets"]

    def check(metrics, sel):
        y, s = labels[sel], S[sel]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            assert close(M.tar_at_far(y, s, far).records(), json_round_trip(metrics["tar_at_far"]))
            assert close(M.tar_at_far_nearest(y, s, far).records(), metrics["insightface"]["tar_at_far"])
            assert close(M.eer(y, s).as_dict(), metrics["eer"])
            auc = M.roc_auc(y, s)
        if metrics["auc"] is None:  # NaN (a group without genuine comparisons)
            assert math.isnan(auc)
        else:
            assert abs(auc - metrics["auc"]) <= metrics["auc_max_error"] + 1e-12
        assert (metrics["n_genuine"], metrics["n_impostor"], metrics["n_fta"]) == (y.sum(), (~y).sum(),
                                                                                   np.isneginf(s).sum())

    m = res["metrics"]
    check(m, keep)
    thresholds = [r["threshold"] for r in m["tar_at_far"]]
    for col, groups in res["breakdowns"].items():
        vr = ref_rows[col].to_numpy()[li]
        vq = prb_rows[col].to_numpy()[ri]
        names = np.array([[E._group_key([a, b]) for b in vq] for a in vr], dtype=object)
        for g, gm in groups.items():
            sel = keep & (names == g)
            check(gm, sel)
            for t, rate in zip(thresholds, gm["at_overall_threshold"]):
                got = M.rates_at_threshold(labels[sel], S[sel], float(t) if not isinstance(t, str) else float(t))
                assert close(json_round_trip(got.as_dict()), {k: v for k, v in rate.items() if k != "far_target"})
    genuine = pd.read_csv(proto_dir / "genuine.csv", dtype={"left_id": str, "right_id": str})
    assert len(genuine) == (labels & keep).sum()
    return labels, S, keep


# --- tests -------------------------------------------------------------------------------------------


@pytest.fixture
def masked_dataset(tmp_path):
    return make_dataset(tmp_path / "data", n_ids=5, per_id=4, masked_every=2)


def test_all_pairs_run_rechecked_from_the_run_folder(tmp_path, masked_dataset, tiny_model):
    pairs = write_protocol(tmp_path / "umr-ump", [masked_dataset], name="umr-ump", pairs=all_pairs(masked_dataset))
    ap = save_protocol(make_all_pairs(masked_dataset, spec="umr-mp", name="ap-umr-mp"), tmp_path / "ap")
    run = run_benchmark(config(tmp_path, [tiny_model], [ap, pairs], save_embeddings=True, transfer_from="umr-ump"))
    d = run.folder / "tiny" / "ap-umr-mp"
    for f in ("metrics.json", "genuine.csv", "histogram.csv", "images.csv", "fta.csv", "roc.png", "det.png"):
        assert (d / f).is_file(), f
    assert (run.folder / "tiny" / "embeddings.parquet").is_file()
    res = json.loads((d / "metrics.json").read_text())
    m = res["metrics"]
    assert res["protocol"]["kind"] == "all-pairs" and m["all_pairs"]["passes"] == 1
    assert m["n_pairs"] == res["protocol"]["counts"]["comparisons"]
    assert {"accuracy", "bootstrap"} <= set(m["skipped"]) and "accuracy" not in m
    labels, S, keep = recheck_all_pairs(run.folder, "tiny", d, res)
    src = json.loads((run.folder / "tiny" / "umr-ump" / "metrics.json").read_text())
    use = recheck_pairs(run.folder, "tiny", run.folder / "tiny" / "umr-ump", src)
    # threshold transfer from the pair list onto the all-pairs protocol, exactly, at the
    # smallest FAR the pair list's impostors resolve (too few for the 1e-4 asked: said so)
    n_imp = int((use["label"] == 0).sum())
    far = min(f for f in (1e-1, 1e-2, 1e-3, 1e-4) if f * n_imp >= 1)
    assert src["transfer_source"]["far_target"] == far and src["transfer_source"]["asked_far_target"] == 1e-4
    assert "smallest FAR it resolves" in src["transfer_source"]["note"]
    t = M.tar_at_far(use["label"], use["score"], [far]).threshold[0]
    assert src["transfer_source"]["threshold"] == t
    want = M.rates_at_threshold(labels[keep], S[keep], t).as_dict()
    assert close(json_round_trip(want), {k: v for k, v in res["transfer"].items() if k not in ("from", "far_target", "asked_far_target")})
    board = collect_leaderboard(tmp_path / "runs")
    row = board[board["protocol"] == "ap-umr-mp"].iloc[0]
    assert row["kind"] == "all-pairs" and row["rules"] == "mfrkit" and row["n_pairs"] == m["n_pairs"]
    assert row["tar@far=1e-01"] == m["tar_at_far"][0]["tar"]


def test_all_pairs_as_transfer_source_and_fta_policies(tmp_path, masked_dataset, tiny_model):
    (masked_dataset.root / "id1" / "img1.png").unlink()  # a masked probe that fails to acquire
    (masked_dataset.root / "id2" / "img0.png").unlink()  # an unmasked reference that fails
    pairs = write_protocol(tmp_path / "pl", [masked_dataset], name="pl", pairs=all_pairs(masked_dataset))
    ap = save_protocol(make_all_pairs(masked_dataset, spec="umr-mp", name="src"), tmp_path / "ap")
    for policy in ("reject", "exclude"):
        run = run_benchmark(config(tmp_path, [tiny_model], [pairs, ap], save_embeddings=True, transfer_from="src",
                                   fta_policy=policy, plots=False, n_boot=0))
        d = run.folder / "tiny" / "src"
        res = json.loads((d / "metrics.json").read_text())
        labels, S, keep = recheck_all_pairs(run.folder, "tiny", d, res)
        fta = json.loads((run.folder / "tiny" / "pl" / "metrics.json").read_text())
        m = res["metrics"]
        if policy == "reject":
            assert m["n_fta"] > 0 and m["n_fta_excluded"] == 0
        else:
            assert m["n_fta"] == 0 and m["n_fta_excluded"] > 0
        assert res["fta"]["images"] == 2
        # the all-pairs protocol's threshold, applied to the pair list (at the smallest FAR it resolves)
        far = res["transfer_source"]["far_target"]
        assert far * res["protocol"]["counts"]["impostor"] >= 1
        t = M.tar_at_far(labels[keep], S[keep], [far]).threshold[0]
        assert res["transfer_source"]["threshold"] == t and fta["transfer"]["threshold"] == t
        genuine = pd.read_csv(d / "genuine.csv")
        assert genuine["fta"].any() == (policy == "reject")
        rows, vec = read_embeddings(run.folder / "tiny" / "embeddings.parquet")
        failed = rows[rows["fta_reason"].notna()]
        assert sorted(set(failed["image_id"])) == ["id1/img1.png", "id2/img0.png"]  # in both roles
        assert set(failed["fta_reason"]) == {"missing"} and not vec[failed.index].any()
        assert np.allclose(np.linalg.norm(vec[rows["fta_reason"].isna().to_numpy()], axis=1), 1, atol=1e-6)
        assert set(rows["role"]) == {"reference", "probe"} and not rows.duplicated(["role", "manifest", "image_id"]).any()


@pytest.mark.parametrize("policy", ["reject", "exclude"])
def test_one_manifest_all_pairs_scores_each_unordered_pair_once(tmp_path, tiny_model, policy):
    # mr-mp on one manifest: both sides are the same masked images (two mask types, so
    # breakdown cells across classes), one of them failing to acquire
    data = make_dataset(tmp_path / "data", n_ids=6, per_id=4, masked_every=1)
    (data.root / "id3" / "img2.png").unlink()
    ap = save_protocol(make_all_pairs(data, spec="mr-mp", name="mr-mp-all"), tmp_path / "ap")
    run = run_benchmark(config(tmp_path, [tiny_model], [ap], save_embeddings=True, plots=False, n_boot=0,
                               fta_policy=policy))
    d = run.folder / "tiny" / "mr-mp-all"
    res = json.loads((d / "metrics.json").read_text())
    counts, m = res["protocol"]["counts"], res["metrics"]
    n = len(data.table)
    assert counts["symmetric"] and m["all_pairs"]["unordered"]
    # 24 images: 24 x 23 / 2 unordered comparisons; the ordered (N^2-style) counts beside them
    assert counts["comparisons"] == n * (n - 1) // 2 and counts["genuine"] == 6 * 4 * 3 // 2
    assert counts["ordered"]["comparisons"] == n * (n - 1) and counts["ordered"]["cross"] == n * n
    assert m["all_pairs"]["ordered"]["comparisons"] == n * (n - 1)
    n_fta_pairs = n - 1  # the failed image against each other one, once
    assert m["n_pairs"] == counts["comparisons"] - (n_fta_pairs if policy == "exclude" else 0)
    labels, S, keep = recheck_all_pairs(run.folder, "tiny", d, res)  # breakdowns too, on the upper triangle
    assert set(res["breakdowns"]["mask_type"]) == {"cloth", "surgical", "cloth+surgical"}
    genuine = pd.read_csv(d / "genuine.csv", dtype=str)
    pairs = {frozenset(p) for p in zip(genuine["left_id"], genuine["right_id"])}
    assert len(pairs) == len(genuine) == (labels & keep).sum()  # never A/B and B/A


def test_all_pairs_from_a_spec_name_and_insightface_rules(tmp_path, masked_dataset, tiny_model):
    cfg = config(tmp_path, [tiny_model], ["umr-mp:all-pairs"], manifests=[str(masked_dataset.path)],
                 rules="insightface", plots=False)
    run = run_benchmark(cfg)
    res = json.loads((run.folder / "tiny" / "umr-mp_all-pairs" / "metrics.json").read_text())
    assert res["protocol"]["kind"] == "all-pairs"
    row = run.leaderboard.iloc[0]
    assert row["rules"] == "insightface"
    assert row["tar@far=1e-01"] == res["metrics"]["insightface"]["tar_at_far"][0]["tar"]


def test_all_pairs_on_the_demo_sample(tmp_path, mfrkit_home):
    """The demo's real photos, landmarks, masked copy and dlib model, scored all-pairs."""
    from mfrkit.demo import run_demo

    demo = run_demo(tmp_path / "demo")
    proto = save_protocol(make_all_pairs(demo.manifest, tmp_path / "demo" / "sample-masked" / "manifest.parquet",
                                         spec="umr-mp", name="demo-all-pairs"), tmp_path / "ap")
    run = run_benchmark(BenchConfig(models=[str(demo.model)], protocols=[str(proto)], out=tmp_path / "runs",
                                    landmarks="mediapipe", save_embeddings=True, n_boot=0,
                                    cache_dir=tmp_path / "cache"))
    model = demo.model.stem
    d = run.folder / model / "demo-all-pairs"
    res = json.loads((d / "metrics.json").read_text())
    # every unmasked reference x every masked probe, each masked copy excluded against its source
    n = len(demo.manifest.table)
    assert res["protocol"]["counts"]["excluded_same_source"] == n
    assert res["metrics"]["n_pairs"] == n * n - n
    recheck_all_pairs(run.folder, model, d, res)


def _diff(a, b, path=""):
    if isinstance(a, dict):
        for k in set(a) | set(b):
            if k not in a or k not in b:
                yield f"{path}/{k} missing"
            else:
                yield from _diff(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _diff(x, y, f"{path}[{i}]")
    elif not close(a, b):
        yield f"{path}: {a!r} != {b!r}"
