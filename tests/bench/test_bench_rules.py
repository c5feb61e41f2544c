"""A bench run carries both rule sets in metrics.json; the leaderboard shows the chosen one."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tests.support.bench import all_pairs, config, write_protocol

from mfrkit.bench.report import leaderboard as L
from mfrkit.bench import metrics as M
from mfrkit.bench.benchmark import run_benchmark
from mfrkit.bench.metrics.bundle import rule_metrics
from mfrkit.errors import MfrkitError


def test_both_rule_sets_in_metrics_and_the_chosen_one_on_the_board(tmp_path, dataset, tiny_model):
    proto = write_protocol(tmp_path / "pairs", [dataset], name="pairs", pairs=all_pairs(dataset, n_folds=3))
    runs = {}
    for rules in ("mfrkit", "insightface"):
        runs[rules] = run_benchmark(config(tmp_path, [tiny_model], [proto], rules=rules, plots=False))
    res = json.loads((runs["insightface"].folder / "tiny" / "pairs" / "metrics.json").read_text())
    m = res["metrics"]
    assert res["settings"]["rules"] == "insightface"
    scores = pd.read_csv(runs["insightface"].folder / "tiny" / "pairs" / "scores.csv")
    y, s, f = scores["label"].to_numpy(), scores["score"].to_numpy(), scores["fold"].to_numpy()
    # mfrkit's rules at the top level, insightface's under its name: both recomputable
    assert [r["tar"] for r in m["tar_at_far"]] == M.tar_at_far(y, s).tar.tolist()
    assert [r["tar"] for r in m["insightface"]["tar_at_far"]] == M.tar_at_far_nearest(y, s).tar.tolist()
    assert m["insightface"]["accuracy"]["accuracy"] == M.grid_kfold_accuracy(y, s, f).accuracy.tolist()
    assert m["insightface"]["accuracy"]["ddof"] == 0 and m["accuracy"]["ddof"] == 1
    assert m["accuracy"]["sem"] == pytest.approx(M.kfold_accuracy(y, s, f).sem)
    assert set(m["insightface"]["bootstrap"]) == {"tar", "accuracy", "unit"}
    assert len(m["insightface"]["bootstrap"]["tar"]["low"]) == len(M.DEFAULT_FAR_TARGETS)
    assert rule_metrics(m, "insightface")["accuracy"] == m["insightface"]["accuracy"]
    # the board: a rules column and the chosen set's numbers
    board = L.collect_leaderboard(tmp_path / "runs")
    assert sorted(board["rules"]) == ["insightface", "mfrkit"]
    ins = board[board["rules"] == "insightface"].iloc[0]
    mf = board[board["rules"] == "mfrkit"].iloc[0]
    assert ins["acc_mean"] == pytest.approx(m["insightface"]["accuracy"]["mean"])
    assert mf["acc_mean"] == pytest.approx(m["accuracy"]["mean"])
    assert ins["acc_std_ddof"] == 0 and mf["acc_std_ddof"] == 1 and ins["acc_sem"] > 0
    assert ins["tar@far=1e-01"] == pytest.approx(m["insightface"]["tar_at_far"][0]["tar"])
    assert "far@far=1e-01" in board.columns
    assert "| rules |" in L.to_markdown(board)


def test_unknown_rule_set_is_refused(tmp_path, dataset, tiny_model):
    proto = write_protocol(tmp_path / "pairs", [dataset], name="pairs", pairs=all_pairs(dataset))
    with pytest.raises(MfrkitError, match="unknown rule set 'nist'"):
        run_benchmark(config(tmp_path, [tiny_model], [proto], rules="nist"))


def test_cli_flags_fill_the_config(monkeypatch, capsys, tmp_path):
    import sys

    from mfrkit import cli
    from mfrkit.bench import benchmark as run_module

    seen = {}

    def fake(cfg, **kw):
        seen["cfg"] = cfg
        return run_module.BenchRun(folder=tmp_path, results=[], leaderboard=pd.DataFrame(
            {"model": ["m"], "protocol": ["p"], "provider": ["cpu"], "auc": [0.5]}))

    monkeypatch.setattr(run_module, "run_benchmark", fake)
    for args, want in ((["--rules", "insightface", "--save-embeddings", "--search-device", "cpu"],
                        ("insightface", True, "cpu")), ([], ("mfrkit", False, "auto"))):
        monkeypatch.setattr(sys, "argv", ["mfrkit", "bench", "--model", "a.onnx", "--protocol", "p", *args])
        try:
            cli.main()
        except SystemExit as exc:
            assert not exc.code
        cfg = seen["cfg"]
        assert (cfg.rules, cfg.save_embeddings, cfg.search_device) == want
