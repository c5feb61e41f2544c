"""End to end: a tiny ONNX model on a tiny dataset through protocols to a run folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tests.support.bench import all_pairs, config, write_protocol
from tests.support.fake_data import make_dataset
from tests.support.tiny_onnx import ARCFACE_META, make_model

from mfrkit.bench.report import leaderboard as R
from mfrkit.bench import metrics as M
from mfrkit.bench.benchmark import run_benchmark
from mfrkit.bench.results.files import ReportError
from mfrkit.errors import MfrkitError
from mfrkit.protocols import ProtocolError, load_protocol


@pytest.fixture
def pairs_protocol(tmp_path, dataset):
    return write_protocol(tmp_path / "umr-ump", [dataset], name="umr-ump", pairs=all_pairs(dataset))


@pytest.fixture
def id_protocol(tmp_path, dataset):
    t = dataset.table
    gallery = [i for i in t["image_id"] if i.endswith("img0.png") and not i.startswith("id3/")]
    probes = [(i, not i.startswith("id3/")) for i in t["image_id"] if not i.endswith("img0.png") or i.startswith("id3/")]
    return write_protocol(tmp_path / "search", [dataset], name="search", gallery=gallery, probes=probes)


def read_metrics(run, model, proto):
    return json.loads((run.folder / model / proto / "metrics.json").read_text())


def test_verification_end_to_end(tmp_path, dataset, tiny_model, pairs_protocol):
    run = run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol]))
    d = run.folder / "tiny" / "umr-ump"
    for f in ("scores.csv", "metrics.json", "fta.csv", "roc.png", "det.png"):
        assert (d / f).is_file(), f
    for f in ("run.json", "leaderboard.csv", "leaderboard.md"):
        assert (run.folder / f).is_file()
    scores = pd.read_csv(d / "scores.csv", dtype={"left_id": str, "right_id": str})
    assert len(scores) == len(all_pairs(dataset)) and not scores["fta"].any()
    res = read_metrics(run, "tiny", "umr-ump")
    m = res["metrics"]
    # the reported numbers are the metrics of the written scores
    assert m["auc"] == pytest.approx(M.roc_auc(scores["label"], scores["score"]))
    taf = M.tar_at_far(scores["label"], scores["score"], M.DEFAULT_FAR_TARGETS)
    assert [r["tar"] for r in m["tar_at_far"]] == pytest.approx(taf.tar.tolist())
    assert m["accuracy"]["ddof"] == 1 and len(m["accuracy"]["accuracy"]) == 2
    assert m["auc"] > 0.9  # the tiny network does separate the tiny identities
    assert set(m["bootstrap"]) >= {"tar", "accuracy"}
    assert res["model"]["provider"] == "cpu" and len(res["model"]["sha256"]) == 64
    assert res["protocol"]["sha256"] == load_protocol(pairs_protocol).sha256
    assert res["throughput"]["images_per_second"] > 0
    # breakdown by mask type: pairs of two unmasked images are 'none', the others by type
    groups = set(res["breakdowns"]["mask_type"])
    assert {"none", "surgical", "cloth"} <= groups
    assert sum(g["n_pairs"] for g in res["breakdowns"]["mask_type"].values()) == len(scores)
    board = pd.read_csv(run.folder / "leaderboard.csv")
    assert len(board) == 1 and board.loc[0, "provider"] == "cpu" and board.loc[0, "auc"] == pytest.approx(m["auc"])
    assert "tar@far=1e-04" in board.columns and board.loc[0, "insufficient@far=1e-04"]


def test_fta_pairs_are_rejections_not_dropped(tmp_path, dataset, tiny_model, pairs_protocol):
    (dataset.root / "id1" / "img2.png").unlink()
    run = run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol], plots=False))
    d = run.folder / "tiny" / "umr-ump"
    fta = pd.read_csv(d / "fta.csv")
    assert fta.to_dict("records") == [
        {"image_id": "id1/img2.png", "role": "reference", "reason": "missing"},
        {"image_id": "id1/img2.png", "role": "probe", "reason": "missing"},
    ]
    scores = pd.read_csv(d / "scores.csv")
    hit = (scores["left_id"] == "id1/img2.png") | (scores["right_id"] == "id1/img2.png")
    assert len(scores) == len(all_pairs(dataset)) and scores.loc[hit, "fta"].all() and np.isneginf(scores.loc[hit, "score"]).all()
    m = read_metrics(run, "tiny", "umr-ump")
    # one image (both roles: two rows of fta.csv), 11 comparisons
    assert m["metrics"]["n_fta"] == hit.sum() and m["fta"]["images"] == 1 and m["fta"]["by_reason"] == {"missing": 1}
    assert m["fta"]["rows"] == 2
    # excluded on request, and counted
    run2 = run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol], plots=False, fta_policy="exclude"))
    m2 = read_metrics(run2, "tiny", "umr-ump")["metrics"]
    assert m2["n_pairs"] == len(scores) - hit.sum() and m2["n_fta_excluded"] == hit.sum()


def test_identification_end_to_end(tmp_path, dataset, tiny_model, id_protocol):
    run = run_benchmark(config(tmp_path, [tiny_model], [id_protocol], max_rank=3))
    d = run.folder / "tiny" / "search"
    for f in ("probes.csv", "candidates.csv", "metrics.json", "cmc.png"):
        assert (d / f).is_file(), f
    probes = pd.read_csv(d / "probes.csv")
    m = read_metrics(run, "tiny", "search")["metrics"]
    assert m["n_mated"] == 6 and m["n_nonmated"] == 3 and len(m["cmc"]) == 3
    # rank-1 equals a dense computation on freshly computed embeddings
    from mfrkit.bench.embed.pipeline import ImageRef, embed_images
    from mfrkit.onnx_model import OnnxModel

    t = dataset.table
    emb = embed_images(OnnxModel(tiny_model), [ImageRef(i, str(dataset.abspath(p))) for i, p in zip(t["image_id"], t["path"])])
    gal_ids = [f"id{i}/img0.png" for i in range(3)]
    T = emb.vectors[emb.rows(gal_ids)]
    mated = probes[probes["mated"]]
    Q = emb.vectors[emb.rows(mated["probe_id"].tolist())]
    mate = np.array([int(pid[2]) for pid in mated["probe_id"]])
    ranks = M.mate_ranks(Q @ T.T, mate)
    assert m["rank1"] == pytest.approx(np.mean(ranks <= 1))
    np.testing.assert_array_equal(np.where(ranks <= 3, ranks, np.inf), mated["rank"].to_numpy())
    cand = pd.read_csv(d / "candidates.csv")
    assert len(cand) == 9 * 3 and set(cand["candidate"]) <= {"id0", "id1", "id2"}
    assert "tpir_at_fpir" in m and m["tpir_at_fpir"][0]["n_impostor"] == 3
    board = pd.read_csv(run.folder / "leaderboard.csv")
    assert board.loc[0, "kind"] == "identification" and board.loc[0, "rank1"] == pytest.approx(m["rank1"])


def test_threshold_transfer_and_cache_reuse(tmp_path, dataset, tiny_model, pairs_protocol):
    masked = [p for p in all_pairs(dataset, 3) if "img1" in p[1] or "img1" in p[2]]
    mr = write_protocol(tmp_path / "mr-mp", [dataset], name="mr-mp", pairs=masked)
    first = run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol]))
    assert json.loads((first.folder / "run.json").read_text())["models"][0]["provider"] == "cpu"
    lines = []
    run = run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol, mr], transfer_far=0.1), log=lines.append)
    # all from the cache: no "0.0 img/s" rate in the log
    assert f"tiny: {len(dataset)} images, 0 embedded, {len(dataset)} from cache, 0 images failed to acquire" in lines, lines
    src = read_metrics(run, "tiny", "umr-ump")
    tgt = read_metrics(run, "tiny", "mr-mp")
    assert tgt["throughput"]["cached"] == len(dataset) and tgt["throughput"]["computed"] == 0  # all reused
    thr = src["transfer_source"]["threshold"]
    assert tgt["transfer"]["from"] == "umr-ump" and tgt["transfer"]["threshold"] == thr
    scores = pd.read_csv(run.folder / "tiny" / "mr-mp" / "scores.csv")
    r = M.rates_at_threshold(scores["label"], scores["score"], thr)
    assert tgt["transfer"]["fnmr"] == pytest.approx(r.fnmr) and tgt["transfer"]["fmr"] == pytest.approx(r.fmr)
    assert "transfer" not in src


def test_transfer_source_found_by_spec_when_no_protocol_has_its_name(tmp_path, dataset, tiny_model):
    from mfrkit.protocols import make_verification, save_protocol

    def made(spec, folder, seed=0):
        p = make_verification(dataset, spec=spec, seed=seed, n_folds=2, genuine_per_fold=2, impostor_per_fold=9,
                              allow_fewer=True, name=folder)
        return save_protocol(p, tmp_path / folder)

    lfw, other, masked = made("umr-ump", "lfw-umr-ump"), made("umr-ump", "calfw-umr-ump", 1), made("umr-mp", "lfw-umr-mp")
    lines = []
    run = run_benchmark(config(tmp_path, [tiny_model], [lfw, masked], n_boot=0, plots=False, far_targets=(0.2, 0.1, 0.01)),
                        log=lines.append)
    tgt = read_metrics(run, "tiny", "lfw-umr-mp")
    assert tgt["transfer"]["from"] == "lfw-umr-ump"
    # 8 impostors cannot resolve the default FAR 1e-4 (nor 0.1): the threshold is taken at 0.2, and said so
    n_imp = int((load_protocol(lfw).pairs["label"] == 0).sum())
    assert 5 <= n_imp < 10
    assert tgt["transfer"]["far_target"] == 0.2 and tgt["transfer"]["asked_far_target"] == 1e-4
    src = read_metrics(run, "tiny", "lfw-umr-ump")["transfer_source"]
    assert src["far_target"] == 0.2 and "the smallest FAR it resolves" in src["note"]
    assert tgt["transfer"]["threshold"] == src["threshold"]
    assert any(line.startswith(f"warning: threshold transfer: lfw-umr-ump has {n_imp} impostor comparisons, too few "
                               "for a threshold at FAR=1e-4 (that needs 10,000)") for line in lines), lines
    # none of --far resolvable: no transfer, with the reason
    lines = []
    run = run_benchmark(config(tmp_path, [tiny_model], [lfw, masked], n_boot=0, plots=False, far_targets=(1e-3,)),
                        log=lines.append)
    assert "transfer" not in read_metrics(run, "tiny", "lfw-umr-mp")
    assert any("threshold transfer skipped: lfw-umr-ump has" in line for line in lines)
    with pytest.raises(MfrkitError, match="2 protocols of spec 'umr-ump'.*--transfer-from"):
        run_benchmark(config(tmp_path, [tiny_model], [lfw, other, masked], n_boot=0, plots=False))
    run = run_benchmark(config(tmp_path, [tiny_model], [lfw, other, masked], n_boot=0, plots=False, transfer_from="calfw-umr-ump",
                               transfer_far=0.2))
    assert read_metrics(run, "tiny", "lfw-umr-mp")["transfer"]["from"] == "calfw-umr-ump"


def test_heterogeneous_pair_and_several_models(tmp_path, dataset, pairs_protocol):
    make_model(tmp_path / "m" / "a.onnx", seed=1)
    het = tmp_path / "m" / "het"
    make_model(het / "r.onnx", meta={**ARCFACE_META, "mfrkit.domain": "reference"}, seed=1)
    make_model(het / "p.onnx", meta={**ARCFACE_META, "mfrkit.domain": "probe"}, seed=2)
    run = run_benchmark(config(tmp_path, [tmp_path / "m"], [pairs_protocol], plots=False, n_boot=0))
    assert sorted(run.leaderboard["model"]) == ["a", "het"]
    res = read_metrics(run, "het", "umr-ump")
    assert res["model"]["heterogeneous"] and res["model"]["probe"]["name"] == "p"
    same = read_metrics(run, "a", "umr-ump")["metrics"]["auc"]
    assert res["metrics"]["auc"] != pytest.approx(same)  # probes really went through the other model


def test_leaderboard_collects_latest_rows(tmp_path, tiny_model, pairs_protocol, id_protocol):
    run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol], plots=False, n_boot=0))
    run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol, id_protocol], plots=False, n_boot=0))
    board = R.collect_leaderboard(tmp_path / "runs")
    assert sorted(board["protocol"]) == ["search", "umr-ump"]  # the repeated (model, protocol) kept once
    run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol], plots=False, n_boot=0, tta="flip"))
    flipped = R.collect_leaderboard(tmp_path / "runs")
    assert sorted(flipped["tta"]) == ["flip", "none", "none"]  # other preprocessing, another entry
    assert flipped["preprocessing"].nunique() == 2
    R.write_leaderboard(board, csv=tmp_path / "lb.csv", md=tmp_path / "lb.md")
    assert pd.read_csv(tmp_path / "lb.csv").shape[0] == 2
    md = (tmp_path / "lb.md").read_text()
    assert md.startswith("| model | protocol |") and "umr-ump" in md
    with pytest.raises(ReportError, match="no metrics.json"):
        R.collect_leaderboard(tmp_path / "cache")


def test_metrics_json_is_strict(tmp_path, tiny_model, pairs_protocol):
    run = run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol], plots=False, n_boot=0))
    text = (run.folder / "tiny" / "umr-ump" / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text)


# --- bad protocols ---------------------------------------------------------------------------------


def test_protocol_with_unknown_ids(tmp_path, dataset, tiny_model):
    p = write_protocol(tmp_path / "bad", [dataset], name="bad", pairs=[(0, "id0/img0.png", "ghost.png", 0)])
    with pytest.raises(ProtocolError, match="1 image id.*.ghost.png."):
        run_benchmark(config(tmp_path, [tiny_model], [p]))


def test_protocol_from_another_manifest(tmp_path, dataset, tiny_model, pairs_protocol):
    other = make_dataset(tmp_path / "other", seed=5)
    with pytest.raises(ProtocolError, match="umr-ump. .* was made from a reference manifest with fingerprint"):
        run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol], manifests=[str(other.path)]))


def test_identification_mated_flag_checked(tmp_path, dataset, tiny_model):
    p = write_protocol(tmp_path / "s", [dataset], name="s", gallery=["id0/img0.png"], probes=[("id1/img1.png", True)])
    with pytest.raises(ProtocolError, match="marked mated"):
        run_benchmark(config(tmp_path, [tiny_model], [p]))


def test_bad_settings(tmp_path, tiny_model, pairs_protocol):
    bad = (({"fta_policy": "drop"}, "FtA policy"), ({"tta": "x"}, "augmentation"), ({"batch_size": 0}, "batch size"),
           ({"n_boot": 1}, "bootstrap"), ({"landmarks": "mtcnn"}, "landmark backend 'mtcnn'"), ({"search_device": "tpu"}, "search device"),
           ({"cache_dir": tiny_model}, "cache .*is a file"))
    for kw, match in bad:
        with pytest.raises(MfrkitError, match=match):
            run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol], **kw))
    assert not (tmp_path / "runs").exists()  # nothing written for a refused run


# --- roles, missing ids, MegaFace mode, recorded hashes ---------------------------------------------


def test_reference_and_probe_manifests_may_share_image_ids(tmp_path, dataset, tiny_model):
    # A second dataset with the same relative paths (as a masked copy has) but other pixels.
    probe_ds = make_dataset(tmp_path / "copy", masked_every=2, seed=7)
    assert list(probe_ds.table["image_id"]) == list(dataset.table["image_id"])
    pairs = [(0, "id0/img0.png", "id0/img0.png", 1), (1, "id1/img0.png", "id1/img0.png", 1)]
    p = write_protocol(tmp_path / "x", {"reference": dataset, "probe": probe_ds}, name="x", pairs=pairs)
    run = run_benchmark(config(tmp_path, [tiny_model], [p], n_boot=0, plots=False))
    scores = pd.read_csv(run.folder / "tiny" / "x" / "scores.csv")
    assert (scores["score"] < 0.999).all()  # different images, although the ids are equal
    same = write_protocol(tmp_path / "y", [dataset], name="y", pairs=pairs)
    run2 = run_benchmark(config(tmp_path, [tiny_model], [same], n_boot=0, plots=False))
    assert (pd.read_csv(run2.folder / "tiny" / "y" / "scores.csv")["score"] > 0.999).all()


def test_empty_id_is_an_image_not_supplied(tmp_path, dataset, tiny_model):
    pairs = all_pairs(dataset)[:5] + [(0, "id0/img0.png", "", 1)]
    p = write_protocol(tmp_path / "m", [dataset], name="m", pairs=pairs)
    run = run_benchmark(config(tmp_path, [tiny_model], [p], n_boot=0, plots=False))
    scores = pd.read_csv(run.folder / "tiny" / "m" / "scores.csv", keep_default_na=False)
    assert len(scores) == 6 and scores.loc[5, "fta"] and scores.loc[5, "right_id"] == ""
    fta = pd.read_csv(run.folder / "tiny" / "m" / "fta.csv", keep_default_na=False)
    assert fta.to_dict("records") == [{"image_id": "", "role": "probe", "reason": "not_supplied"}]


def test_megaface_mode_end_to_end(tmp_path, dataset, tiny_model):
    # Distractors: every image of id2 and id3; each probe row searches them plus its one mate.
    t = dataset.table
    distractors = [i for i in t["image_id"] if i.startswith(("id2/", "id3/"))]
    gallery = distractors + ["id0/img0.png", "id1/img0.png"]
    probes = [("id0/img1.png", True, "id0/img0.png"), ("id0/img2.png", True, "id0/img0.png"),
              ("id1/img1.png", True, "id1/img0.png"), ("id2/img0.png", False, "")]  # fmt: skip
    p = write_protocol(tmp_path / "mf", [dataset], name="mf", gallery=gallery, probes=probes, distractors=distractors)
    run = run_benchmark(config(tmp_path, [tiny_model], [p], n_boot=0, max_rank=3))
    res = read_metrics(run, "tiny", "mf")
    assert res["metrics"]["mode"] == "megaface" and res["metrics"]["distractors"] == 6
    from mfrkit.bench.embed.pipeline import ImageRef, embed_images
    from mfrkit.onnx_model import OnnxModel

    emb = embed_images(OnnxModel(tiny_model), [ImageRef(i, str(dataset.abspath(q))) for i, q in zip(t["image_id"], t["path"])])
    D = emb.vectors[emb.rows(distractors)]
    probes_csv = pd.read_csv(run.folder / "tiny" / "mf" / "probes.csv")
    for row in probes_csv[probes_csv["mated"]].itertuples():
        q = emb.vectors[emb.index[row.probe_id]]
        dense = np.r_[D @ q, q @ emb.vectors[emb.index[row.mate_id]]][None, :]
        ref = M.mate_ranks(dense, [len(D)])[0]
        assert row.rank == (ref if ref <= 3 else np.inf)
    assert res["metrics"]["n_nonmated"] == 1


def test_spec_names_make_1to1_and_1toN_protocols(tmp_path, dataset, tiny_model):
    cfg = config(tmp_path, [tiny_model], ["umr-ump:closed", "umr-ump:open"], manifests=[str(dataset.path)], n_boot=0, plots=False)
    run = run_benchmark(cfg)
    assert list(run.leaderboard["protocol"]) == ["umr-ump-closed", "umr-ump-open"]
    closed, open_ = read_metrics(run, "tiny", "umr-ump-closed"), read_metrics(run, "tiny", "umr-ump-open")
    assert closed["protocol"]["kind"] == "identification" and closed["protocol"]["spec"] == "umr-ump"
    assert closed["metrics"]["n_nonmated"] == 0 and closed["metrics"]["n_mated"] > 0
    assert open_["metrics"]["n_nonmated"] > 0 and "tpir_at_fpir" in open_["metrics"]


def test_manifest_options():
    from mfrkit.bench.protocol_io import parse_manifest_options

    assert parse_manifest_options(["a.parquet", "probe=b.parquet"]) == {"reference": "a.parquet", "probe": "b.parquet"}
    assert parse_manifest_options(["reference=r", "x"]) == {"reference": "x", "probe": "x"}

