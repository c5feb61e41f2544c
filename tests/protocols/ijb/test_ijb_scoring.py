"""IJB templates scored end to end (release -> protocol -> aligned crops -> a fixed ONNX
model -> templates -> 1:1 and 1:N), against insightface's IJB steps written out in the
test (ijb_helpers: its alignment, flip test, pooling, roc_curve and 1:N loops)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.support.fake_data import make_release
from tests.support.insightface_ijb import X_LABELS, insightface_1n, insightface_11, insightface_features
from tests.support.tiny_onnx import make_ijb_model

from mfrkit.bench.evaluators.ijb import evaluate_ijb
from mfrkit.bench.score.ijb_templates import IjbPooling, IjbScoringError
from mfrkit.jobs import ExecutorSpec
from mfrkit.onnx_model import load_models
from mfrkit.protocols import load_protocol
from mfrkit.protocols.ijb import import_ijb


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A release hard enough for the model (noisy faces: TAR from about 0.6 at 1e-6 to 0.9
    at 1e-1) with 24 subjects, about 360 faces and 2,304 template pairs."""
    root = tmp_path_factory.mktemp("ijb-scored")
    release = make_release(root, n_subjects=24, noise=300, seed=3)
    import_ijb(release, root / "protocol")
    model_file = make_ijb_model(root / "tiny-ijb.onnx")
    feats, faceness = insightface_features(release, model_file)
    return release, load_protocol(root / "protocol"), load_models([model_file])[0], feats, faceness


def _run(protocol, ms, pooling="flip,norm,detector", **kw):
    return evaluate_ijb(protocol, (ms.reference, ms.probe), pooling=IjbPooling.parse(pooling),
                        embed_options={"batch_size": 16, "executor": ExecutorSpec(workers=0), "cache_dir": None},
                        far_targets=tuple(reversed(X_LABELS)), **kw)


def test_crops_and_embeddings_are_insightfaces(scored):
    release, protocol, ms, feats, faceness = scored
    out = _run(protocol, ms)
    # the flip test's raw sum per face, as ijb_onnx.py's F2 = emb + emb of the flipped crop
    assert out.faces["status"].eq("ok").all()
    from mfrkit.bench.evaluators.ijb import embed_sides

    sides = embed_sides(protocol, (ms.reference, ms.probe), IjbPooling(), embed_options={"executor": ExecutorSpec(workers=0), "cache_dir": None},
                        progress=lambda n, d: __import__("contextlib").nullcontext(lambda k=1: None), log=lambda m: None)
    raw = sides["reference"][1]
    d = feats.shape[1] // 2
    want = feats[:, :d] + feats[:, d:]
    # skimage's and mfrkit's similarity fits differ in the last bits, warpAffine rounds to 1/32 px
    np.testing.assert_allclose(raw, want, rtol=0, atol=2e-3 * np.abs(want).max())


@pytest.mark.parametrize("pooling", ["flip,norm,detector", "none", "flip", "norm,detector"])
def test_tar_at_far_is_insightfaces(scored, pooling):
    release, protocol, ms, feats, faceness = scored
    modes = IjbPooling.parse(pooling)
    out = _run(protocol, ms, pooling)
    want = insightface_11(release, feats, faceness, flip=modes.flip, norm=modes.norm, detector=modes.detector)
    got = {r["far_target"]: r["tar"] for r in out.metrics["insightface"]["tar_at_far"]}
    np.testing.assert_allclose([got[x] for x in X_LABELS], want, atol=1e-12)
    assert min(want) < 0.9  # not a separable toy
    # mfrkit's rule on the same scores: never above the budget
    for r in out.metrics["tar_at_far"]:
        assert r["false_accepts"] <= r["budget"]
    m = out.metrics
    assert m["n_genuine"] + m["n_impostor"] == protocol.info["counts"]["pairs"]
    assert m["n_genuine"] == protocol.info["counts"]["genuine"] and m["n_fta"] == 0


def test_one_to_n_is_insightfaces(scored):
    release, protocol, ms, feats, faceness = scored
    out = _run(protocol, ms)
    want = insightface_1n(release, feats, faceness)
    got = out.metrics["insightface"]["identification"]
    for k in (1, 5, 10):
        assert got[f"top{k}"] == pytest.approx(want[f"top{k}"], abs=1e-12)
    for r in got["tpir_at_fpir"]:
        assert r["tpir"] == pytest.approx(want[f"tpir@{r['fpir_target']}"], abs=1e-12)
    # mfrkit's open-set rule per gallery: S1's mated probes are the S1 subjects' probes
    g = out.metrics["identification"]
    assert set(g) == {"S1", "S2"} and g["S1"]["n_mated"] == g["S2"]["n_nonmated"] == 48
    assert 0 <= g["S1"]["rank1"] <= g["S1"]["rank5"] <= 1


def test_bad_pooling_switch_is_named():
    with pytest.raises(IjbScoringError, match="unknown IJB pooling switch 'flop'"):
        IjbPooling.parse("flip,flop")


@pytest.mark.parametrize("policy", ["reject", "exclude"])
def test_streamed_template_pairs_equal_the_materialised_rules(policy):
    import warnings

    from mfrkit.bench import metrics as M
    from mfrkit.bench.score.bins import ScoreBins
    from mfrkit.bench.score.ijb_templates import score_template_pairs
    from mfrkit.protocols.ijb_templates import pair_scores, pool_templates

    rng = np.random.default_rng(4)
    n_t, n_faces = 120, 500
    subject = rng.integers(0, 30, n_t)
    centres = rng.normal(size=(30, 16))
    templates = rng.integers(0, n_t, n_faces)
    x = centres[subject[templates]] + rng.normal(0, 1.2, (n_faces, 16))
    usable = rng.random(n_faces) > 0.1
    usable[templates == 7] = False  # template 7: every face failed, a failure to enrol
    tf = pool_templates(x, templates, np.arange(n_faces), usable)
    t1, t2 = rng.choice(tf.ids, 5000), rng.choice(tf.ids, 5000)
    label = (subject[t1] == subject[t2]).astype(np.int8)
    chunks = lambda: ((t1[i:i + 700], t2[i:i + 700], label[i:i + 700]) for i in range(0, 5000, 700))  # noqa: E731
    targets = (1e-1, 1e-2, 1e-3, 1e-4)
    # coarse bins: the operating points need more passes over the pairs
    got, resolved = score_template_pairs(chunks, tf, tf, far_targets=targets, fta_policy=policy,
                                         bins=ScoreBins(bins_per_unit=2**6), thresholds=[0.3])
    assert got.passes > 1
    s = pair_scores(tf, tf, t1, t2).astype(np.float32).astype(np.float64)
    y = label.astype(bool)
    assert np.isneginf(s).any()
    if policy == "exclude":
        keep = np.isfinite(s)
        y, s = y[keep], s[keep]
        assert got.n_fta_excluded == (~keep).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        for name, rule in (("tar_at_far", M.tar_at_far), ("nearest", M.tar_at_far_nearest)):
            want = rule(y, s, targets)
            for f in ("tar", "far", "threshold", "true_accepts", "false_accepts"):
                np.testing.assert_array_equal(getattr(resolved[name], f), getattr(want, f), err_msg=f"{name} {f}")
        assert resolved["eer"] == M.eer(y, s)
        assert resolved["rates"][0] == M.rates_at_threshold(y, s, 0.3)
    assert got.binned.n_genuine == y.sum() and got.binned.n_impostor == (~y).sum()


def test_masked_probe_side_against_insightface_steps(scored, tmp_path):
    """protocol make --from IJB -p MASKED: the probe side (pair column 2, 1:N probes) from
    the masked copies, the gallery side untouched, compared with insightface's steps run
    on unmasked TEMPLATE_1 and masked TEMPLATE_2 faces."""
    import pandas as pd
    from tests.support.fake_data import make_masked_copy
    from tests.support.insightface_ijb import insightface_11_two_sides
    from typer.testing import CliRunner

    from mfrkit.cli import app

    release, protocol, ms, feats, faceness = scored
    masked = make_masked_copy(release, tmp_path / "masked")
    result = CliRunner().invoke(app, ["protocol", "make", str(tmp_path / "mp"), "--from", str(protocol.folder), "-p",
                                      str(masked), "--no-register"])
    assert result.exit_code == 0, result.output
    assert "of" in result.output and "probe-side faces masked" in result.output
    derived = load_protocol(tmp_path / "mp")
    assert derived.kind == "ijb-templates" and derived.manifest("probe").fingerprint() != protocol.manifest("probe").fingerprint()
    out = _run(derived, ms)
    m = pd.read_parquet(masked)
    images = {src: masked.parent / path for src, path in zip(m["source_id"], m["path"])}
    feats_masked, _ = insightface_features(release, protocol.folder.parent / "tiny-ijb.onnx", images=images)
    want = insightface_11_two_sides(release, feats, feats_masked, faceness)
    got = {r["far_target"]: r["tar"] for r in out.metrics["insightface"]["tar_at_far"]}
    np.testing.assert_allclose([got[x] for x in X_LABELS], want, atol=1e-12)
    unmasked = {r["far_target"]: r["tar"] for r in _run(protocol, ms).metrics["insightface"]["tar_at_far"]}
    assert got != unmasked  # the masks changed the scores
    assert (out.faces.loc[out.faces["side"] == "probe", "status"] == "ok").all()


def test_probe_faces_without_a_masked_copy_are_failures_to_acquire(scored, tmp_path):
    from mfrkit.protocols.errors import InsufficientDataError
    from mfrkit.protocols.ijb_masked import derive_masked_ijb

    from tests.support.fake_data import make_masked_copy

    release, protocol, ms, feats, faceness = scored
    sparse = make_masked_copy(release, tmp_path / "m3", skip_every=3)
    info = derive_masked_ijb(protocol, sparse, tmp_path / "p3")
    c = info["counts"]
    assert 0 < c["probe_faces_masked"] < c["probe_faces"]
    out = _run(load_protocol(tmp_path / "p3"), ms)
    probe = out.faces[out.faces["side"] == "probe"]
    assert (probe["status"] == "no_masked_copy").sum() == c["probe_faces"] - c["probe_faces_masked"]
    from mfrkit.protocols import validate_protocol

    report = validate_protocol(tmp_path / "p3")
    assert [p.kind for p in report.problems] == ["no_masked_copy"] and report.ok  # a warning, not an error
    # too few: refused unless allowed
    few = make_masked_copy(release, tmp_path / "m1", keep_every=4)
    with pytest.raises(InsufficientDataError, match="probe-side faces of .* have a masked image"):
        derive_masked_ijb(protocol, few, tmp_path / "p1")
    assert not (tmp_path / "p1").exists()
    info = derive_masked_ijb(protocol, few, tmp_path / "p1", allow_missing=True)
    assert info["counts"]["probe_faces_masked"] < info["counts"]["probe_faces"] / 2


def test_mfrkit_bench_scores_an_ijb_protocol_end_to_end(scored, tmp_path):
    """`mfrkit bench --model M --protocol <ijb protocol>`: metrics.json, files, leaderboard
    row, console table, against insightface's steps."""
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from mfrkit.cli import app

    release, protocol, ms, feats, faceness = scored
    model = protocol.folder.parent / "tiny-ijb.onnx"
    result = CliRunner().invoke(app, ["bench", "--model", str(model), "--protocol", str(protocol.folder), "-o",
                                      str(tmp_path / "runs"), "--cache", str(tmp_path / "cache"), "-j", "0",
                                      "--far", "1e-1,1e-2,1e-3,1e-4,1e-5,1e-6"])
    assert result.exit_code == 0, result.output
    assert "1:1 results (mfrkit rule set)" in result.output and "gallery S1" in result.output
    res = json.loads(next((tmp_path / "runs").rglob("metrics.json")).read_text())
    assert res["protocol"]["kind"] == "ijb-templates" and res["protocol"]["n_pairs"] == protocol.info["counts"]["pairs"]
    got = {r["far_target"]: r["tar"] for r in res["metrics"]["insightface"]["tar_at_far"]}
    np.testing.assert_allclose([got[x] for x in X_LABELS], insightface_11(release, feats, faceness), atol=1e-12)
    one_n = insightface_1n(release, feats, faceness)
    assert res["metrics"]["insightface"]["identification"]["top1"] == pytest.approx(one_n["top1"], abs=1e-12)
    folder = next((tmp_path / "runs").rglob("metrics.json")).parent
    for f in ("genuine.csv", "histogram.csv", "templates.csv", "faces.csv", "fta.csv", "roc.png"):
        assert (folder / f).is_file(), f
    assert res["model"]["provenance"]["status"] == "unknown"  # a foreign model: not called trained
    board = pd.read_csv(next((tmp_path / "runs").rglob("leaderboard.csv")))
    row = board.iloc[0]
    assert row["weights"] == "unknown" and row["kind"] == "ijb-templates" and "rank1_S1" in board.columns
    # a second run reads every face embedding from the cache
    again = CliRunner().invoke(app, ["bench", "--model", str(model), "--protocol", str(protocol.folder), "-o",
                                     str(tmp_path / "runs2"), "--cache", str(tmp_path / "cache"), "-j", "0"])
    assert again.exit_code == 0, again.output
    res2 = json.loads(next((tmp_path / "runs2").rglob("metrics.json")).read_text())
    assert res2["throughput"]["computed"] == 0 and res2["throughput"]["cached"] == len(protocol.ijb.faces)
    assert res2["metrics"]["insightface"]["tar_at_far"] == res["metrics"]["insightface"]["tar_at_far"]
