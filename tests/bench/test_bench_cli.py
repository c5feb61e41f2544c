"""`mfrkit bench` and `mfrkit leaderboard`: option mapping, a real run on the demo sample, errors."""

from __future__ import annotations

import sys

import pandas as pd
from tests.support.bench import all_pairs, write_protocol
from tests.support.tiny_onnx import ARCFACE_META, make_model

from mfrkit import cli
from mfrkit.bench import benchmark as run_module


def invoke(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["mfrkit", *map(str, args)])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_bench_options_map_to_config(monkeypatch, capsys, tmp_path):
    seen = {}

    def fake(cfg, **kw):
        seen["cfg"] = cfg
        return run_module.BenchRun(folder=tmp_path, results=[], leaderboard=pd.DataFrame({"model": ["m"], "protocol": ["p"], "provider": ["cpu"], "auc": [0.5]}))

    monkeypatch.setattr(run_module, "run_benchmark", fake)
    code, out, _ = invoke(
        monkeypatch, capsys, "bench", "--model", "a.onnx", "--model", "models/", "--protocol", "proto", "--tta", "flip", "--no-cache",
        "--far", "1e-2,1e-3", "--mean", "127.5", "--align", "none", "--fta", "exclude", "--bootstrap", "0",
        "--transfer-from", "", "--batch", "8", "--provider", "cpu", "--confidence", "0.9", "-m", "probe=masked",
        "-j", "3", "-o", tmp_path / "runs",
    )  # fmt: skip
    assert code == 0, out
    cfg = seen["cfg"]
    assert [str(m) for m in cfg.models] == ["a.onnx", "models/"] and cfg.protocols == ["proto"]
    assert cfg.tta == "flip" and cfg.cache_dir is None and cfg.far_targets == (1e-2, 1e-3)
    assert cfg.model_options == {"mean": "127.5", "align": "none"} and cfg.fta_policy == "exclude"
    assert cfg.n_boot == 0 and cfg.transfer_from is None and cfg.batch_size == 8 and cfg.provider == "cpu"
    assert cfg.confidence == 0.9 and cfg.manifests == ["probe=masked"] and cfg.workers == 3 and cfg.out == tmp_path / "runs"
    # what was not given keeps the dataclass default
    assert cfg.plots is True and cfg.seed == 0 and cfg.landmarks == "mediapipe" and cfg.max_rank == 20
    assert "run folder" in out


def test_bench_on_the_demo_sample_with_landmark_alignment(monkeypatch, capsys, tmp_path, sample_manifest):
    # Real photos, mediapipe landmarks from the cache, ArcFace alignment, then the leaderboard.
    # A copy of the session's sample: the landmark cache written beside it must not leak
    # into other tests.
    import shutil

    from mfrkit.data.manifest import read_manifest

    shutil.copytree(sample_manifest.root, tmp_path / "sample")
    sample_manifest = read_manifest(tmp_path / "sample")
    model = make_model(tmp_path / "arc.onnx", size=112, meta={**ARCFACE_META, "mfrkit.input_size": "112", "mfrkit.align": "arcface112"})
    proto = write_protocol(tmp_path / "demo-pairs", [sample_manifest], name="demo-pairs", pairs=all_pairs(sample_manifest))
    runs = tmp_path / "runs"
    code, out, err = invoke(
        monkeypatch, capsys, "bench", "--model", model, "--protocol", proto, "--out", runs, "--cache", tmp_path / "cache",
        "--bootstrap", "10", "--landmarks", "mediapipe",
    )  # fmt: skip
    assert code == 0, err
    assert "demo-pairs" in out and "cpu" in out
    res = next(runs.rglob("metrics.json"))
    import json

    m = json.loads(res.read_text())
    assert m["metrics"]["n_pairs"] == len(all_pairs(sample_manifest))
    assert m["settings"]["landmarks"] == "mediapipe" and m["model"]["spec"]["align"] == "arcface112"
    assert m["fta"]["images"] == 0  # every capture of the sample has a face
    code, out, _ = invoke(monkeypatch, capsys, "leaderboard", runs, "--csv", tmp_path / "lb.csv", "--md", tmp_path / "lb.md")
    assert code == 0 and (tmp_path / "lb.csv").is_file() and (tmp_path / "lb.md").is_file()
    assert pd.read_csv(tmp_path / "lb.csv").loc[0, "protocol"] == "demo-pairs"
    # the files hold the rows: the console says where, without printing them again
    assert out.count("wrote ") == 2 and "demo-pairs" not in out


def test_errors_are_one_line_messages(monkeypatch, capsys, tmp_path, dataset):
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    proto = write_protocol(tmp_path / "p", [dataset], name="p", pairs=all_pairs(dataset))
    code, _, err = invoke(monkeypatch, capsys, "bench", "--model", bad, "--protocol", proto, "--out", tmp_path / "runs")
    assert code == 1 and "not a loadable ONNX model" in err and "Traceback" not in err
    code, _, err = invoke(monkeypatch, capsys, "bench", "--model", bad, "--protocol", tmp_path / "nowhere", "--out", tmp_path / "runs")
    assert code == 1 and "neither a protocol folder nor a spec" in err
    code, _, err = invoke(monkeypatch, capsys, "leaderboard", tmp_path / "empty")
    assert code == 1 and "no results folder" in err
    model = make_model(tmp_path / "m.onnx")
    code, _, err = invoke(monkeypatch, capsys, "bench", "--model", model, "--protocol", proto, "--far", "abc", "--out", tmp_path / "runs")
    assert code != 0 and "comma-separated" in err
    # messages are printed as written, brackets included (not eaten as rich markup)
    monkeypatch.setattr(run_module, "run_benchmark", lambda *a, **k: (_ for _ in ()).throw(run_module.BenchError("install mfrkit[gpu] [/]")))
    code, _, err = invoke(monkeypatch, capsys, "bench", "--model", model, "--protocol", proto, "--out", tmp_path / "runs")
    assert code == 1 and "install mfrkit[gpu] [/]" in err


def test_far_targets_out_of_range_name_the_flag(monkeypatch, capsys):
    code, out, err = invoke(monkeypatch, capsys, "bench", "--model", "a.onnx", "--protocol", "p", "--far", "1e-3,2")
    assert code == 2 and "--far" in err and "(0, 1]" in err


def test_an_unknown_landmark_backend_fails_before_reading_the_dataset(monkeypatch, capsys):
    code, out, err = invoke(monkeypatch, capsys, "landmarks", "no-such-dataset", "--backend", "foo")
    assert code == 1 and "unknown landmark backend 'foo'" in err
