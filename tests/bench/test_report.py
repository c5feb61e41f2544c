"""The HTML report of bench runs: content, self-containment, the galleries' choice, and
the page as a real browser (headless Chromium) renders it."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from tests.support.fake_data import sample_and_masked_copy
from tests.support.tiny_onnx import ARC112, make_model

from mfrkit.bench.report.leaderboard import collect_results
from mfrkit.bench.report.page import REPORT_NAME, build_report, write_report
from mfrkit.bench.report.gallery import hardest_pairs
from mfrkit.bench.results.files import ReportError
from mfrkit.jobs import ExecutorSpec



@pytest.fixture(scope="module")
def demo_like_run(tmp_path_factory):
    """What `mfrkit demo` makes, smaller, plus what the demo lacks: a second model, a 1:N
    protocol and an image without a face (a failure to acquire). Two tiny random ONNX
    models with ArcFace alignment; landmarks from mediapipe; the bench writes report.html."""
    from mfrkit.bench.benchmark import BenchConfig, run_benchmark
    from mfrkit.protocols.workflow import make_protocol_folder

    root = tmp_path_factory.mktemp("demo-like")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MFRKIT_HOME", str(root / "home"))
        reference, masked = sample_and_masked_copy(root)
        protocols = []
        for spec, ref, probe in (("umr-ump", reference, None), ("umr-mp", reference, masked), ("mr-mp", masked, None)):
            make_protocol_folder(root / "protocols" / spec, ref, probe, spec=spec, seed=0, n_folds=1, allow_fewer=True)
            protocols.append(str(root / "protocols" / spec))
        make_protocol_folder(root / "protocols" / "id", reference, masked, spec="umr-mp", kind="identification",
                             seed=0, mode="closed", gallery_per_identity=1)
        protocols.append(str(root / "protocols" / "id"))
        models = [make_model(root / "models" / f"tiny-{k}.onnx", size=112, dim=16, seed=i, meta=ARC112) for i, k in enumerate("ab")]
        run = run_benchmark(BenchConfig(models=[str(m) for m in models], protocols=protocols, out=root / "runs", n_boot=0,
                                        executor=ExecutorSpec(workers=0), cache_dir=None))  # fmt: skip
    return run


def test_bench_writes_the_report_into_the_run_folder(demo_like_run):
    path = demo_like_run.folder / REPORT_NAME
    assert path.is_file()
    text = path.read_text(encoding="utf-8")
    for name in ("umr-ump", "umr-mp", "mr-mp", "id", "tiny-a", "tiny-b"):
        assert name in text


def test_report_is_self_contained(demo_like_run):
    text = (demo_like_run.folder / REPORT_NAME).read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "<link" not in text.lower() and "@import" not in text
    refs = re.findall(r'(?:src|href)="([^"#][^"]*)"', text)
    assert refs and all(r.startswith("data:") for r in refs), [r[:60] for r in refs if not r.startswith("data:")]
    assert "url(" not in text  # no CSS fetches either


def test_report_sections_and_numbers_agree_with_metrics_json(demo_like_run):
    results = collect_results([demo_like_run.folder])
    html = build_report(results)
    # comparison table: both models x the four protocols; the cell shows metrics.json's value
    for r in results:
        m = r.data["metrics"]
        if r.verification:
            t = next(e for e in m["tar_at_far"] if np.isclose(e["far_target"], 1e-3))
            assert f"{t['tar']:.4f}" in html
            # the galleries' threshold is the metric's threshold: same rule, same scores
            assert f"Threshold {t['threshold']:.4f}" in html
            n_fr = int(round(t["n_genuine"] - t["true_accepts"]))
            assert f"{n_fr:,} false reject(s) of {int(t['n_genuine']):,} genuine" in html
        else:
            assert f"{m['rank1']:.4f}" in html
    for heading in ("Comparison", "Models", "ROC and DET", "Score distributions", "CMC", "Breakdowns",
                    "Hardest comparisons", "Hardest probes", "Failures to acquire", "Threshold drift"):
        assert f">{heading}<" in html, heading
    assert html.count('class="star"') >= 1  # a best cell per column with two models
    assert "mfrkit</b>: TAR@FAR" in html  # the rule set is named and described


def test_an_insightface_page_uses_the_insightface_rule_everywhere(demo_like_run):
    # the same results shown by the insightface rule set: the table's TAR@FAR, the galleries'
    # threshold and the histogram line all come from insightface's nearest ROC point
    results = collect_results([demo_like_run.folder])
    html = build_report(results, rules="insightface")
    assert "by the mfrkit rule, accept" not in html and "FAR = 1e-3 by the insightface rule" in html
    for r in results:
        if r.verification:
            t = next(e for e in r.data["metrics"]["insightface"]["tar_at_far"] if np.isclose(e["far_target"], 1e-3))
            assert f"Threshold {t['threshold']:.4f} (FAR = 1e-3 by the insightface rule" in html
    # the breakdowns name their (mfrkit) thresholds rather than borrow the page's name
    assert "by the mfrkit rule (the breakdowns are computed at that rule" in html


def test_failures_to_acquire_are_shown_with_their_reason(demo_like_run):
    results = collect_results([demo_like_run.folder])
    fta = [r for r in results if r.data["fta"]["images"]]
    assert fta, "the blank image fails to acquire on the protocols drawing from the sample"
    html = build_report(results)
    assert "grace_hopper/blank.jpg" in html and "no_face" in html
    # the blank image is shown (as it is on disk: it has no landmarks to align with)
    assert re.search(r'<figure class="single fta"><img class="face" alt="grace_hopper/blank.jpg" src="data:image/jpeg;base64,', html)


def test_galleries_hold_eight_comparisons_each(demo_like_run):
    results = collect_results([demo_like_run.folder])
    html = build_report(results)
    n_verif = sum(r.verification for r in results)
    assert html.count('<figure class="pair">') == n_verif * 16  # 8 genuine + 8 impostor per model x protocol
    # every pair tile shows two aligned crops (all images of these pairs have landmarks)
    tiles = re.findall(r'<figure class="pair">(.*?)</figure>', html, flags=re.S)
    assert all(t.count('<img class="face"') == 2 for t in tiles)


def test_hardest_pairs_by_hand():
    df = pd.DataFrame({
        "left_id": ["a", "b", "c", "d", "e", "f", "g"],
        "right_id": ["x", "y", "z", "w", "v", "u", "t"],
        "label": [1, 1, 1, 0, 0, 0, 1],
        "score": [0.9, 0.2, 0.5, 0.6, 0.1, 0.55, -np.inf],
    })  # fmt: skip
    genuine, impostor = hardest_pairs(df, threshold=0.55, n=2)
    # lowest genuine first; -inf (a failure to acquire) is not a comparison to show
    assert [(c.left_id, c.score, c.error) for c in genuine] == [("b", 0.2, True), ("c", 0.5, True)]
    # highest impostor first; accept iff score >= threshold, so 0.55 is a false accept
    assert [(c.left_id, c.score, c.error) for c in impostor] == [("d", 0.6, True), ("f", 0.55, True)]
    genuine, impostor = hardest_pairs(df, threshold=0.3, n=8)
    assert [c.error for c in genuine] == [True, False, False] and [c.error for c in impostor] == [True, True, False]


def test_hardest_pairs_ties_are_broken_by_id():
    df = pd.DataFrame({"left_id": ["q", "p", "r"], "right_id": ["1", "1", "1"], "label": [1, 1, 1], "score": [0.5, 0.5, 0.5]})
    genuine, _ = hardest_pairs(df, threshold=0.0, n=2)
    assert [c.left_id for c in genuine] == ["p", "q"]


def test_report_errors(tmp_path, demo_like_run):
    with pytest.raises(ReportError, match="no results folder"):
        write_report([tmp_path / "nowhere"], tmp_path / "r.html")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no metrics.json"):
        write_report([tmp_path / "empty"], tmp_path / "r.html")
    with pytest.raises(ReportError, match="is a folder"):
        write_report([demo_like_run.folder], tmp_path)
    with pytest.raises(ReportError, match="unknown metric"):
        write_report([demo_like_run.folder], tmp_path / "r.html", metrics=["tar@far=abc"])
    assert not (tmp_path / "r.html").exists()


def test_report_survives_moved_images(tmp_path, demo_like_run):
    # A run folder copied elsewhere, its manifests gone: the numbers and curves stay, the
    # faces become notes saying why.
    copy = tmp_path / "run"
    shutil.copytree(demo_like_run.folder, copy)
    for mj in copy.rglob("metrics.json"):
        d = json.loads(mj.read_text())
        for role in d["protocol"]["manifests"].values():
            role["path"] = str(tmp_path / "gone" / "manifest.parquet")
        mj.write_text(json.dumps(d))
    html = build_report(collect_results([copy]))
    assert "cannot read the manifest" in html and "ROC and DET" in html


def test_report_cli(tmp_path, demo_like_run):
    from typer.testing import CliRunner

    from mfrkit.cli import app

    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(demo_like_run.folder), "--out", str(out), "--metric", "auc", "--metric", "rank1"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "AUC" in out.read_text(encoding="utf-8")


# --- the page in a real browser --------------------------------------------------------------------


def _chromium_or_skip():
    from tests.support.chromium_cdp import find_chromium

    if find_chromium() is None:
        if os.environ.get("MFRKIT_REQUIRE_BROWSER"):
            pytest.fail("MFRKIT_REQUIRE_BROWSER is set but no chromium is installed (apt-get install chromium)")
        pytest.skip("no chromium installed (Debian: apt-get install chromium; .ci/run installs it)")


def test_report_renders_in_headless_chromium(tmp_path, demo_like_run):
    _chromium_or_skip()
    from tests.support.chromium_cdp import render

    html_file = demo_like_run.folder / REPORT_NAME
    shot = tmp_path / "report.png"
    page = render(html_file, shot)
    p = page.probe
    assert page.errors == [], page.errors
    assert page.requests == [] and p["resources"] == [], "a self-contained page fetches nothing"
    assert p["scripts"] == 0
    # sections present
    assert p["sections"][:2] == ["comparison", "models"] and p["sections"][-1] == "drift"
    assert {f"protocol-{n}" for n in ("umr-ump", "umr-mp", "mr-mp", "id")} <= set(p["sections"])
    for heading in ("Comparison", "ROC and DET", "CMC", "Score distributions", "Breakdowns", "Hardest comparisons",
                    "Failures to acquire", "Threshold drift"):
        assert heading in p["headings"], heading
    # every image decoded: figures (SVG) and faces (JPEG)
    assert p["broken"] == []
    text = html_file.read_text(encoding="utf-8")
    assert p["images"] == text.count("<img ") and p["figures"] >= 10 and p["faces"] >= 3 * 2 * 16
    assert p["best"] >= 1
    # the screenshot is the whole page
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size[0] == 1400 and im.size[1] == p["height"] > 3000
        # not a blank page: the top holds dark text on white
        top = np.asarray(im.convert("L").crop((0, 0, 800, 200)))
        assert top.min() < 80 and np.median(top) > 200


def test_models_table_cells_of_a_heterogeneous_pair():
    """A heterogeneous pair's run.json entry has no spec of its own: the table showed
    'None, None, None' and no family; it shows its halves' input (once when they agree)."""
    from mfrkit.bench.report.page import model_family_and_input

    half = {"input_size": [112, 112], "color": "RGB", "align": "arcface112", "family": "heterogeneous"}
    pair = {"name": "het-reference+het-probe", "heterogeneous": True,
            "reference": {"spec": {**half, "domain": "reference"}}, "probe": {"spec": {**half, "domain": "probe"}}}
    assert model_family_and_input(pair) == ("heterogeneous", "112x112, RGB, arcface112")
    pair["probe"]["spec"] = {**half, "input_size": [160, 160], "align": "arcface160p30"}
    assert model_family_and_input(pair) == ("heterogeneous", "reference: 112x112, RGB, arcface112; probe: 160x160, RGB, arcface160p30")
    assert model_family_and_input({"spec": {**half, "family": "csn"}}) == ("csn", "112x112, RGB, arcface112")
    assert model_family_and_input({"spec": {"input_size": [150, 150], "color": "RGB", "align": "dlib150"}}) == ("–", "150x150, RGB, dlib150")


def test_score_histograms_say_their_y_axis_is_a_density():
    """The histograms are densities (30 impostors drew bars up to 45): the axis says so."""
    from mfrkit.bench.report.figures import score_histograms

    edges = np.linspace(0, 1, 11)
    svg = score_histograms([("m", edges, [0] * 7 + [10, 15, 5], [5, 20, 5] + [0] * 7, 0.5)], "t").decode()
    assert "density" in svg
