"""The bench says what it skipped and leaves no half-written run folder behind."""

from __future__ import annotations

import json

import pytest
from tests.support.bench import all_pairs, config, write_protocol

from mfrkit.bench import benchmark as B
from mfrkit.bench.benchmark import BenchConfig, run_benchmark
from mfrkit.bench.report.leaderboard import collect_leaderboard


def _config(tmp_path, model, protocols, **kw):
    return config(tmp_path, [model], protocols, n_boot=0, plots=False, **kw)


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
    from tests.support.tiny_onnx import make_model

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
    from mfrkit.bench.results.files import ReportError

    (tmp_path / "runs" / "x").mkdir(parents=True)
    (tmp_path / "runs" / "x" / "metrics.json").write_text(content)
    with pytest.raises(ReportError, match="metrics.json"):
        collect_leaderboard(tmp_path / "runs")


def _truncate(path, keep: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


@pytest.mark.parametrize("damage", ["truncated_emb", "truncated_keys", "rows_differ", "other_dim", "garbage"])
def test_a_broken_cache_part_is_dropped_and_rebuilt(tmp_path, damage):
    import numpy as np

    from mfrkit.bench.embed import embedding_cache as C

    root = tmp_path / "c"
    with C.EmbeddingCache(root, "m" * 64, "k", flush_every=2) as cache:
        cache.put(["a", "b"], np.eye(2, 3, dtype=np.float32))
        cache.put(["c", "d"], np.eye(2, 3, k=1, dtype=np.float32))
        cache.put(["e", "f"], np.eye(2, 3, dtype=np.float32))  # most parts have the model's dimension
    keys_files = sorted(root.rglob("part-*.keys.npy"))
    broken = next(p for p in keys_files if "c" in np.load(p).tolist())
    emb = broken.with_name(broken.name.replace(".keys.npy", ".emb.npy"))
    if damage == "truncated_emb":
        _truncate(emb, emb.stat().st_size - 5)
    elif damage == "truncated_keys":
        _truncate(broken, 60)
    elif damage == "rows_differ":
        np.save(emb, np.ones((3, 3), np.float32))
    elif damage == "other_dim":
        np.save(emb, np.ones((2, 5), np.float32))
    else:
        emb.write_bytes(b"not an npy file")
    reopened = C.EmbeddingCache(root, "m" * 64, "k")
    assert reopened.dropped_parts == 1
    found, vec = reopened.get(["a", "b", "c", "d", "e"])
    assert found.tolist() == [True, True, False, False, True]
    np.testing.assert_array_equal(vec[1], [0, 1, 0])
    reopened.put(["c", "d"], np.eye(2, 3, k=1, dtype=np.float32))  # embedded again
    reopened.flush()  # the writer removes the broken part
    assert not broken.exists() and not emb.exists()
    again = C.EmbeddingCache(root, "m" * 64, "k")
    assert again.dropped_parts == 0 and again.get(["c", "d"])[0].all()


def test_bench_after_a_truncated_cache_part_runs_and_rebuilds(tmp_path, dataset, tiny_model):
    proto = write_protocol(tmp_path / "p", [dataset], name="p", pairs=all_pairs(dataset))
    first = run_benchmark(_config(tmp_path, tiny_model, [proto]))
    parts = sorted((tmp_path / "cache").rglob("part-*.emb.npy"))
    assert parts
    _truncate(parts[0], parts[0].stat().st_size // 2)
    second = run_benchmark(_config(tmp_path, tiny_model, [proto]))  # used to raise on every later run
    a = json.loads((first.folder / "tiny" / "p" / "metrics.json").read_text())["metrics"]
    b = json.loads((second.folder / "tiny" / "p" / "metrics.json").read_text())["metrics"]
    assert b["auc"] == pytest.approx(a["auc"]) and b["n_pairs"] == a["n_pairs"]
    assert json.loads((second.folder / "tiny" / "p" / "metrics.json").read_text())["throughput"]["computed"] > 0


@pytest.mark.parametrize("where", ["metadata", "option"])
def test_a_huge_input_size_on_a_dynamic_model_is_a_clear_error(tmp_path, dataset, where):
    """A model with dynamic H and W takes any input_size: 30000 ended in a MemoryError."""
    from tests.support.tiny_onnx import ARCFACE_META, make_model

    from mfrkit.errors import ModelError

    meta = {**ARCFACE_META, "mfrkit.input_size": "30000"} if where == "metadata" else ARCFACE_META
    model = make_model(tmp_path / "dyn.onnx", meta=meta, input_shape=["N", 3, "H", "W"])
    proto = write_protocol(tmp_path / "p", [dataset], name="p", pairs=all_pairs(dataset))
    options = {"input_size": "30000"} if where == "option" else {}
    with pytest.raises(ModelError, match="over the limit of 2048 a side"):
        run_benchmark(_config(tmp_path, model, [proto], model_options=options))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_model_input_refuses_sides_over_the_limit():
    from mfrkit.errors import ModelError
    from mfrkit.model_input import MAX_INPUT_SIDE, ModelInput

    assert ModelInput(input_size=(MAX_INPUT_SIDE, 112), align="none").input_size == (MAX_INPUT_SIDE, 112)
    with pytest.raises(ModelError, match="over the limit"):
        ModelInput(input_size=(112, MAX_INPUT_SIDE + 1), align="none")


def test_manifest_option_with_an_unknown_role_is_named(tmp_path, tiny_model, dataset, monkeypatch):
    from mfrkit.bench.protocol_io import parse_manifest_options
    from mfrkit.protocols import ProtocolError

    with pytest.raises(ProtocolError, match="unknown role 'foo'.*reference=PATH or probe=PATH"):
        parse_manifest_options(["foo=bar"])
    with pytest.raises(ProtocolError, match="unknown role 'refrence'"):
        parse_manifest_options(["refrence=data/lfw"])
    with pytest.raises(ProtocolError, match="after '='"):
        parse_manifest_options(["probe="])
    odd = tmp_path / "run=1"  # a real folder whose name holds '=' is still a path
    odd.mkdir()
    monkeypatch.chdir(tmp_path)
    assert parse_manifest_options(["run=1"]) == {"reference": "run=1", "probe": "run=1"}
    assert parse_manifest_options(["a.parquet", "probe=b"]) == {"reference": "a.parquet", "probe": "b"}
    cfg = BenchConfig(models=[str(tiny_model)], protocols=["umr-ump"], manifests=["foo=bar"], out=tmp_path / "runs",
                      cache_dir=tmp_path / "cache", n_boot=0, plots=False)
    with pytest.raises(ProtocolError, match="unknown role"):
        run_benchmark(cfg)


@pytest.mark.parametrize("name, message", [
    ("arcface112p999", "padding of 999% is over the limit of 100%"),
    ("arcface112p101", "over the limit of 100%"),
    ("arcface99999", "crop size must be 1 to 2048"),
    ("arcface0", "crop size must be 1 to 2048"),
])
def test_alignment_names_out_of_bounds_are_refused(tmp_path, dataset, tiny_model, name, message):
    from mfrkit.alignments import get_alignment
    from mfrkit.errors import MfrkitError

    with pytest.raises(MfrkitError, match=message):
        get_alignment(name)
    proto = write_protocol(tmp_path / "p", [dataset], name="p", pairs=all_pairs(dataset))
    with pytest.raises(MfrkitError, match=message):  # bench --align NAME
        run_benchmark(_config(tmp_path, tiny_model, [proto], model_options={"align": name}))


@pytest.mark.parametrize("name", ["arcface112", "arcface160p30", "arcface112p100", "arcface2048"])
def test_alignment_names_within_bounds_are_accepted(name):
    from mfrkit.alignments import get_alignment

    assert get_alignment(name).needs_landmarks
