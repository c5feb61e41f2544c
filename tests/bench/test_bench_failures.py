"""The bench says what it skipped and leaves no half-written run folder behind."""

from __future__ import annotations

import json

import pytest
from bench_helpers import all_pairs, write_protocol

from mfrkit.bench import benchmark as B
from mfrkit.bench.benchmark import BenchConfig, run_benchmark
from mfrkit.bench.leaderboard import collect_leaderboard


def _config(tmp_path, model, protocols, **kw):
    return BenchConfig(models=[str(model)], protocols=[str(p) for p in protocols], out=tmp_path / "runs",
                       cache_dir=tmp_path / "cache", n_boot=0, plots=False, **kw)


def test_one_fold_protocol_says_accuracy_is_skipped(tmp_path, dataset, tiny_model):
    one_fold = [(0, a, b, lab) for _, a, b, lab in all_pairs(dataset)]
    proto = write_protocol(tmp_path / "one", [dataset], name="one", pairs=one_fold)
    lines = []
    run = run_benchmark(_config(tmp_path, tiny_model, [proto]), log=lines.append)
    metrics = json.loads((run.folder / "tiny" / "one" / "metrics.json").read_text())["metrics"]
    assert "accuracy" not in metrics
    assert "2 folds" in metrics["skipped"]["accuracy"] and "has 1" in metrics["skipped"]["accuracy"]
    assert any("accuracy skipped" in line and "tiny on one" in line for line in lines)


def test_two_fold_protocol_skips_nothing(tmp_path, dataset, tiny_model):
    proto = write_protocol(tmp_path / "two", [dataset], name="two", pairs=all_pairs(dataset))
    run = run_benchmark(_config(tmp_path, tiny_model, [proto]))
    metrics = json.loads((run.folder / "tiny" / "two" / "metrics.json").read_text())["metrics"]
    assert "accuracy" in metrics and "skipped" not in metrics


def test_a_failed_run_leaves_no_run_folder(tmp_path, dataset, tiny_model, monkeypatch):
    proto = write_protocol(tmp_path / "p", [dataset], name="p", pairs=all_pairs(dataset))

    def boom(*a, **k):
        raise RuntimeError("embedding failed")

    monkeypatch.setattr(B, "_embed_for", boom)
    with pytest.raises(RuntimeError, match="embedding failed"):
        run_benchmark(_config(tmp_path, tiny_model, [proto]))
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # no folder holding only run.json


def test_a_run_failing_after_a_model_finished_is_marked_failed(tmp_path, dataset, tiny_model, monkeypatch):
    from bench_helpers import make_model

    second = make_model(tmp_path / "models" / "second.onnx")
    proto = write_protocol(tmp_path / "p", [dataset], name="p", pairs=all_pairs(dataset))
    real, calls = B._embed_for, []

    def second_fails(ms, *a, **k):
        calls.append(ms.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(ms, *a, **k)

    monkeypatch.setattr(B, "_embed_for", second_fails)
    cfg = BenchConfig(models=[str(tiny_model), str(second)], protocols=[str(proto)], out=tmp_path / "runs",
                      cache_dir=tmp_path / "cache", n_boot=0, plots=False)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(cfg)
    (folder,) = list((tmp_path / "runs").iterdir())
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "failed" and "KeyboardInterrupt" in run["error"]
    board = collect_leaderboard(tmp_path / "runs")  # the finished (model, protocol) stays usable
    assert board["model"].tolist() == [calls[0]]


@pytest.mark.parametrize("content", ["[]", "{}", '{"metrics": []}', "null",
                                     '{"model": {"name": "m"}, "protocol": {"name": "p", "kind": "verification"}, '
                                     '"metrics": {"eer": 5}}'])
def test_leaderboard_over_a_foreign_metrics_json_is_a_one_line_error(tmp_path, content):
    from mfrkit.bench.results import ReportError

    (tmp_path / "runs" / "x").mkdir(parents=True)
    (tmp_path / "runs" / "x" / "metrics.json").write_text(content)
    with pytest.raises(ReportError, match="metrics.json"):
        collect_leaderboard(tmp_path / "runs")
