"""Hostile names and edited results: models whose names collide once sanitised or hold
Markdown/LaTeX/HTML/formula/terminal specials, results folders a user edited, report and
leaderboard arguments that make no sense, explicit output files that already exist."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from tests.support.bench import all_pairs, write_protocol
from tests.support.fake_data import make_dataset
from tests.support.tiny_onnx import make_model
from tests.support.checks import one_line_error, tree_digest

from mfrkit.bench.benchmark import BenchConfig, run_benchmark
from mfrkit.jobs import ExecutorSpec

HOSTILE = "a|b\\input{x}<img src=x onerror=alert(1)>"
FORMULA = "=2+5"
TERMINAL = "evil\x1b[2J"
MATHTEXT = "tex$\\input{x}$"  # matplotlib would parse it as mathtext and fail the plot
NAMES = ("model v1", "model_v1", HOSTILE, FORMULA, TERMINAL, MATHTEXT)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One bench run of five tiny models named as a hostile user would (seeded: the same
    files every time), on one small pair protocol."""
    root = tmp_path_factory.mktemp("hostile-run")
    manifest = make_dataset(root / "data", n_ids=4, per_id=2)
    proto = write_protocol(root / "p", [manifest], name="p", pairs=all_pairs(manifest))
    models = [make_model(root / "m" / f"{name}.onnx", seed=i) for i, name in enumerate(NAMES)]
    cfg = BenchConfig(models=[str(m) for m in models], protocols=[str(proto)], out=root / "runs",
                      cache_dir=root / "cache", n_boot=0, plots=True, executor=ExecutorSpec(workers=0))
    result = run_benchmark(cfg)
    return result.folder, proto, models


@pytest.fixture
def runs(run, tmp_path):
    """A copy of the run's folder the test may edit."""
    return shutil.copytree(run[0], tmp_path / "runs" / run[0].name).parent


def test_names_that_sanitise_alike_get_their_own_folders(run):
    # was: "model v1" and "model_v1" shared one folder, the second overwrote the first
    folder, _, _ = run
    results = sorted(folder.glob("*/p/metrics.json"))
    assert len(results) == len(NAMES) and len({r.parent.parent for r in results}) == len(NAMES)
    assert sorted(json.loads(r.read_text())["model"]["name"] for r in results) == sorted(NAMES)
    assert sorted(pd.read_csv(folder / "leaderboard.csv", keep_default_na=False)["model"]) == sorted(
        ("'" + n if n.startswith("=") else n) for n in NAMES)


def test_the_same_model_twice_is_refused_before_anything_is_written(cli, run, tmp_path):
    _, proto, models = run
    code, _, err = cli("bench", "--model", models[0], "--model", models[0], "--protocol", proto, "--out", tmp_path / "o",
                       "-j", "0", "--no-plots", "--bootstrap", "0")
    one_line_error(code, err, "cannot be told apart")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_markdown_tables_escape_cell_separators_and_html(cli, runs, tmp_path):
    code, _, err = cli("leaderboard", runs, "--md", tmp_path / "b.md", "--table", tmp_path / "t.md")
    assert code == 0, err
    for f in ("b.md", "t.md"):
        text = (tmp_path / f).read_text()
        assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
        assert "a\\|b\\\\input{x}" in text
        row = next(line for line in text.splitlines() if "onerror" in line)
        # the pipe inside the name does not split its cell: the row has as many cells as the header
        header = text.splitlines()[0]
        assert row.replace("\\|", "").count("|") == header.count("|")


def test_latex_escapes_every_special_character_once(cli, runs, tmp_path):
    code, _, err = cli("leaderboard", runs, "--table", tmp_path / "t.tex")
    assert code == 0, err
    text = (tmp_path / "t.tex").read_text()
    assert "\\textbackslash{}input\\{x\\}" in text and "\\textbackslash\\{\\}" not in text
    assert "model\\_v1" in text and "\\input{x}" not in text


def test_csv_cells_cannot_run_as_formulas(cli, runs, tmp_path):
    code, _, err = cli("leaderboard", runs, "--csv", tmp_path / "b.csv", "--table", tmp_path / "t.csv")
    assert code == 0, err
    for f in ("b.csv", "t.csv"):
        cells = [c for row in pd.read_csv(tmp_path / f, keep_default_na=False, dtype=str).itertuples(index=False) for c in row]
        assert "'" + FORMULA in cells and FORMULA not in cells
        assert not any(c.startswith(("=", "+", "@")) for c in cells if c)


def test_the_html_report_escapes_names(run):
    html = (run[0] / "report.html").read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "\x1b" not in html


def test_names_are_drawn_as_text_not_mathtext(run):
    # was: a model named tex$\input{x}$ failed its plots (matplotlib mathtext ParseFatalException)
    folder = next(p.parent for p in run[0].glob("*/p/metrics.json") if "tex" in p.parent.parent.name)
    assert (folder / "roc.png").stat().st_size > 0 and (folder / "det.png").stat().st_size > 0


def test_the_console_shows_control_characters_instead_of_obeying_them(cli, runs):
    code, out, err = cli("leaderboard", runs)
    assert code == 0, err
    assert "\x1b[2J" not in out + err and "evil\\x1b[2J" in out


@pytest.mark.parametrize("command", ["report", "leaderboard"])
@pytest.mark.parametrize("args, needle", [(["--metric", "tar@far=nan"], "(0, 1]"), (["--metric", "tar@far=-1"], "(0, 1]"),
                                          (["--metric", "tpir@fpir=2"], "(0, 1]"), (["--rules", "foo"], "unknown rule set")])
def test_nonsense_metrics_and_rules_are_refused(cli, runs, tmp_path, command, args, needle):
    # was: a ValueError traceback (nan) or an empty table with exit 0 (-1, --rules foo)
    out = ["--out", tmp_path / "r.html"] if command == "report" else ["--table", tmp_path / "t.md"]
    code, _, err = cli(command, runs, *args, *out)
    one_line_error(code, err, needle)
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "t.md").exists()


def test_a_metric_no_result_holds_is_refused_naming_what_they_hold(cli, runs, tmp_path):
    code, _, err = cli("report", runs, "--metric", "rank1", "--out", tmp_path / "r.html")
    one_line_error(code, err, "no result holds", "tar@far=")


@pytest.mark.parametrize("command", ["report", "leaderboard"])
def test_a_metrics_json_that_is_a_list_is_one_line(cli, runs, tmp_path, command):
    # was: AttributeError traceback
    victim = sorted(runs.glob("*/*/p/metrics.json"))[0]
    victim.write_text("[1, 2, 3]")
    out = ["--out", tmp_path / "r.html"] if command == "report" else []
    code, _, err = cli(command, runs, *out)
    one_line_error(code, err, "metrics.json")


def test_a_result_table_missing_a_column_is_one_line(cli, runs, tmp_path):
    # was: ArrowKeyError traceback (an all-pairs histogram.csv; every result table is read the same way)
    victim = sorted(runs.glob("*/model_v1*/p/scores.csv"))[0]
    table = pd.read_csv(victim)
    table.drop(columns=["score"]).to_csv(victim, index=False)
    code, _, err = cli("report", runs, "--out", tmp_path / "r.html")
    one_line_error(code, err, "scores.csv", "score")


def test_explicit_output_files_are_not_overwritten_without_force(cli, runs, tmp_path):
    # was: report --out, leaderboard --csv/--md/--table replaced a user's file
    files = {name: tmp_path / name for name in ("r.html", "b.csv", "b.md", "t.tex")}
    for f in files.values():
        f.write_text("the user's own file\n")
    before = tree_digest(tmp_path)
    for args in (["report", runs, "--out", files["r.html"]], ["leaderboard", runs, "--csv", files["b.csv"]],
                 ["leaderboard", runs, "--md", files["b.md"]], ["leaderboard", runs, "--table", files["t.tex"]]):
        code, _, err = cli(*args)
        one_line_error(code, err, "exists", "--force")
    assert tree_digest(tmp_path) == before
    code, _, err = cli("report", runs, "--out", files["r.html"], "--force")
    assert code == 0 and files["r.html"].read_text().startswith("<!DOCTYPE html>"), err
    code, _, err = cli("leaderboard", runs, "--csv", files["b.csv"], "--force")
    assert code == 0 and "model" in files["b.csv"].read_text().splitlines()[0], err


def test_an_all_pairs_histogram_missing_a_column_is_one_line(cli, tmp_path):
    # was: ArrowKeyError traceback from `report` of an all-pairs run whose histogram.csv lost a column
    from mfrkit.protocols.workflow import make_protocol_folder

    make_dataset(tmp_path / "data", n_ids=3, per_id=2)
    make_protocol_folder(tmp_path / "ap", tmp_path / "data" / "manifest.parquet", None, spec="umr-ump", kind="all-pairs",
                         seed=0)
    model = make_model(tmp_path / "tiny.onnx")
    run = run_benchmark(BenchConfig(models=[str(model)], protocols=[str(tmp_path / "ap")], out=tmp_path / "runs",
                                    cache_dir=tmp_path / "cache", n_boot=0, plots=False, executor=ExecutorSpec(workers=0), report=False))
    victim = next(run.folder.glob("*/*/histogram.csv"))
    pd.read_csv(victim).drop(columns=["genuine"]).to_csv(victim, index=False)
    code, _, err = cli("report", run.folder, "--out", tmp_path / "r.html")
    one_line_error(code, err, "histogram.csv", "genuine")
