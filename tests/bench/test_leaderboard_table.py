"""`mfrkit leaderboard --table`: the comparison table (models x protocols x metrics) as
Markdown, CSV and LaTeX, checked against hand-written metrics.json files."""

from __future__ import annotations

import json
import re
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mfrkit.bench.report.leaderboard import collect_results
from mfrkit.bench.report.table import (
    metric_value,
    parse_metric,
    pivot_table,
    table_text,
    write_table,
)
from mfrkit.bench.results.files import ReportError
from mfrkit.cli import app


def _tar(far, tar, lo, hi, insufficient=False):
    return {"far_target": far, "tar": tar, "tar_ci_low": lo, "tar_ci_high": hi, "threshold": 0.5, "far": far,
            "insufficient_negatives": insufficient, "budget": 1.0}


def write_result(root: Path, run: str, model: str, protocol: str, *, kind="verification", created="2026-01-01T00:00:00+00:00",
                 metrics=None, settings=None, sha=None) -> Path:
    folder = root / run / model / protocol
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "run_id": run, "created": created, "mfrkit_version": "0.1.0",
        "model": {"name": model, "sha256": sha or (model * 64)[:64], "provider": "cpu"},
        "protocol": {"name": protocol, "kind": kind, "sha256": (protocol * 64)[:64]},
        "settings": {"fta_policy": "reject", "confidence": 0.95, **(settings or {})},
        "preprocessing": {"key": "k"}, "throughput": {}, "fta": {"images": 0},
        "metrics": metrics or {},
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(data))
    return folder


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    write_result(root, "r1", "alpha", "lfw-mr-mp", metrics={"auc": 0.91, "eer": {"eer": 0.12},
                 "tar_at_far": [_tar(1e-3, 0.8, 0.75, 0.85), _tar(1e-4, 0.6, 0.5, 0.7, True)]})
    write_result(root, "r1", "beta", "lfw-mr-mp", metrics={"auc": 0.95, "eer": {"eer": 0.08},
                 "tar_at_far": [_tar(1e-3, 0.9, 0.86, 0.93), _tar(1e-4, 0.7, 0.6, 0.8, True)]})
    write_result(root, "r1", "alpha", "lfw-id", kind="identification", metrics={"rank1": 0.7, "rank1_ci": [0.6, 0.8], "cmc": [0.7, 0.8]})
    # beta on lfw-id: an older run, then a newer one: the newer wins
    write_result(root, "r0", "beta", "lfw-id", kind="identification", created="2025-01-01T00:00:00+00:00", metrics={"rank1": 0.1})
    write_result(root, "r2", "beta", "lfw-id", kind="identification", created="2026-02-01T00:00:00+00:00",
                 metrics={"rank1": 0.75, "rank1_ci": [0.65, 0.85]})
    return root


def test_pivot_by_hand(runs):
    table, cells = pivot_table(collect_results([runs]))
    # the default metrics: TAR@FAR=1e-3 on 1:1 protocols, rank-1 on 1:N ones
    assert list(table.index) == ["alpha", "beta"] and list(table.columns) == ["lfw-id rank-1", "lfw-mr-mp TAR@FAR=1e-3"]
    assert table.loc["alpha", "lfw-mr-mp TAR@FAR=1e-3"] == 0.8 and table.loc["beta", "lfw-mr-mp TAR@FAR=1e-3"] == 0.9
    assert table.loc["beta", "lfw-id rank-1"] == 0.75  # the latest run
    assert (cells[("alpha", "lfw-id rank-1")].low, cells[("alpha", "lfw-id rank-1")].high) == (0.6, 0.8)


def test_markdown_table_exactly(runs):
    table, cells = pivot_table(collect_results([runs]), ["tar@far=1e-4", "auc"])
    assert list(table.columns) == ["lfw-mr-mp TAR@FAR=1e-4", "lfw-mr-mp AUC"]  # no 1:1 metric on lfw-id
    text = table_text(table, cells, fmt="md", digits=2)
    assert text.splitlines()[:4] == [
        "| model | lfw-mr-mp TAR@FAR=1e-4 | lfw-mr-mp AUC |",
        "|---|---|---|",
        "| alpha | 0.60 [0.50, 0.70] † | 0.91 |",
        "| beta | 0.70 [0.60, 0.80] † | 0.95 |",
    ]
    assert "† FAR target below" in text
    no_ci = table_text(table, cells, fmt="md", intervals=False, digits=2)
    assert "| alpha | 0.60 † | 0.91 |" in no_ci


def test_csv_and_tex(runs, tmp_path):
    results = collect_results([runs])
    path = write_table(results, tmp_path / "t.csv", metrics=["tar@far=1e-3", "rank1", "eer"])
    df = pd.read_csv(path)
    assert list(df["model"]) == ["alpha", "beta"]
    assert df.loc[1, "lfw-mr-mp TAR@FAR=1e-3"] == 0.9 and df.loc[1, "lfw-mr-mp TAR@FAR=1e-3_low"] == 0.86
    assert df.loc[0, "lfw-id rank-1_high"] == 0.8 and math.isnan(df.loc[0, "lfw-mr-mp EER_low"])  # EER has no interval
    path = write_table(results, tmp_path / "t.tex", metrics=["tar@far=1e-4"])
    tex = path.read_text()
    assert r"\begin{tabular}{lr}" in tex and r"0.7000 [0.6000, 0.8000]$^\dagger$" in tex
    assert r"\caption{1:1 numbers by the mfrkit rule set." in tex and "95\\%" in tex


def test_rule_set_chosen_by_run_or_option(tmp_path):
    root = tmp_path / "runs"
    m = {"tar_at_far": [_tar(1e-3, 0.5, 0.4, 0.6)], "insightface": {"tar_at_far": [_tar(1e-3, 0.55, 0.45, 0.65)]}}
    write_result(root, "r", "alpha", "p", metrics=m, settings={"rules": "insightface"})
    results = collect_results([root])
    spec = parse_metric("tar@far=1e-3")
    assert metric_value(results[0].data, spec).value == 0.55  # the run's rule set
    assert metric_value(results[0].data, spec, "mfrkit").value == 0.5
    text = write_table(results, tmp_path / "t.md").read_text()
    assert "by the insightface rule set" in text and "0.5500" in text


def test_same_name_different_models_are_told_apart(tmp_path):
    root = tmp_path / "runs"
    write_result(root, "r", "m", "p", sha="a" * 64, metrics={"auc": 0.5})
    write_result(root, "r2", "m", "p", sha="b" * 64, metrics={"auc": 0.6})
    table, _ = pivot_table(collect_results([root]), ["auc"])
    assert sorted(table.index) == ["m (aaaaaaaa)", "m (bbbbbbbb)"]


def test_table_errors(runs, tmp_path):
    results = collect_results([runs])
    with pytest.raises(ReportError, match="unknown metric 'tar@frr=1'"):
        write_table(results, tmp_path / "t.md", metrics=["tar@frr=1"])
    with pytest.raises(ReportError, match="name it .md, .csv or .tex"):
        write_table(results, tmp_path / "t.xlsx")
    with pytest.raises(ReportError, match="no result holds"):
        write_table(results, tmp_path / "t.md", metrics=["tpir@fpir=1e-2"])
    assert not list(tmp_path.glob("t.*"))


def test_leaderboard_cli_table(runs, tmp_path):
    out = tmp_path / "table.md"
    result = CliRunner().invoke(app, ["leaderboard", str(runs), "--table", str(out), "--metric", "tar@far=1e-3", "--no-intervals"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    assert "| alpha | 0.8000 |" in out.read_text()


def test_report_marks_the_best_by_the_metric_direction(runs):
    # metrics.json files alone (no scores, no images): the report still builds, with notes
    from mfrkit.bench.report.page import build_report

    html = build_report(collect_results([runs]), metrics=["eer", "auc"])
    rows = dict(re.findall(r"<tr><th>(alpha|beta)</th>(.*?)</tr>", html))
    # beta has the lower EER (0.08 < 0.12) and the higher AUC (0.95 > 0.91): both its cells are best
    assert rows["beta"].count('class="best"') == 2 and 'class="best"' not in rows["alpha"]
    assert "No per-comparison scores" in html
