"""``bench --model checkpoint.pt`` (issue 21 item 7): exported on the fly, cached by the
checkpoint's hash, exported again when the checkpoint changes."""

from __future__ import annotations

import pandas as pd

from mfrkit.bench.benchmark import BenchConfig, run_benchmark
from mfrkit.jobs import ExecutorSpec
from mfrkit.models import export as export_module

from tests.support.bench import all_pairs, write_protocol
from tests.support.fake_data import make_dataset


def _checkpoint(path, seed=0):
    import torch

    from mfrkit.models.checkpoint import save_checkpoint
    from mfrkit.models.families import config_dict, create_family

    torch.manual_seed(seed)
    model = create_family("cosface", backbone="iresnet18", width=4, embedding_dim=16, input_size=64)
    return save_checkpoint(path, {"family": "cosface", "config": config_dict(model.config), "n_classes": 2, "model": model.state_dict()})


def test_a_checkpoint_is_benched_through_its_cached_export(tmp_path, mfrkit_home, monkeypatch):
    manifest = make_dataset(tmp_path / "data", n_ids=3, per_id=2, size=32)
    proto = write_protocol(tmp_path / "proto", [manifest], name="tiny-pairs", pairs=all_pairs(manifest))
    ckpt = _checkpoint(tmp_path / "runs" / "tinycos" / "checkpoint.pt")
    calls = []
    real = export_module.export_family
    monkeypatch.setattr(export_module, "export_family", lambda *a, **k: calls.append(a) or real(*a, **k))
    logged = []

    def bench(out):
        cfg = BenchConfig(models=[str(ckpt)], protocols=[str(proto)], out=tmp_path / out, n_boot=0, plots=False, report=False,
                          model_options={"align": "none"}, cache_dir=tmp_path / "emb", executor=ExecutorSpec(workers=0))  # fmt: skip
        return run_benchmark(cfg, log=logged.append)

    run = bench("r1")
    assert run.leaderboard["model"].tolist() == ["tinycos"] and pd.notna(run.leaderboard["auc"]).all()
    assert len(calls) == 1 and any("exporting checkpoint" in m for m in logged)
    (cached,) = list((mfrkit_home / "cache" / "checkpoints").glob("*/tinycos/*.onnx"))
    bench("r2")
    assert len(calls) == 1  # the same bytes: the cached export
    _checkpoint(ckpt, seed=1)  # training went on: new weights, a new export
    bench("r3")
    assert len(calls) == 2 and len(list((mfrkit_home / "cache" / "checkpoints").glob("*/tinycos/*.onnx"))) == 2
    assert not list((mfrkit_home / "cache" / "checkpoints").rglob("*.tmp"))
