"""Data-parallel training (torchrun's setting) on the CPU: two gloo processes.

The weights must stay bit-identical across ranks, the ranks must train on disjoint
shards of each global batch, and a run interrupted and resumed must end exactly where
an uninterrupted one does.
"""

from __future__ import annotations

import json
import multiprocessing
import socket

import torch

from mfrkit.models.checkpoint import load_checkpoint
from mfrkit.models.distributed import env_world, rank_batches
from mfrkit.models.train import epoch_batches


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_rank_batches_shard_each_global_batch_disjointly():
    batches = epoch_batches(23, 6, seed=1, epoch=0, min_size=4)
    shards = [rank_batches(batches, r, 2) for r in range(2)]
    for k, b in enumerate(batches):
        assert sorted(shards[0][k] + shards[1][k]) == sorted(b) and not set(shards[0][k]) & set(shards[1][k])
    assert all(len(s) >= 2 for shard in shards for s in shard)  # BatchNorm needs two per rank
    assert [len(b) for b in batches] == [6, 6, 6, 5]


def test_env_world_defaults_to_a_single_process(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert env_world() == (1, 0, 0)


def test_two_gloo_ranks_stay_in_sync_and_resume_exactly(tiny_dataset, tmp_path):
    from tests.models.ddp_worker import run_rank

    ctx = multiprocessing.get_context("spawn")
    ports = _free_ports(3)
    reports = [tmp_path / f"rank{r}.json" for r in range(2)]
    procs = [ctx.Process(target=run_rank, args=(r, 2, ports, str(tiny_dataset.path), str(tmp_path), str(reports[r]))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0, f"rank exited with {p.exitcode}"
    got = [json.loads(r.read_text()) for r in reports]
    for g in got:
        assert "error" not in g, g["error"]
    # Both ranks hold the same weights after every run.
    for name in ("straight", "first", "resumed"):
        assert got[0][name]["digest"] == got[1][name]["digest"], name
        assert (got[0][name]["world"], got[0][name]["rank"], got[1][name]["rank"]) == (2, 0, 1)
    assert (got[0]["first"]["step"], got[0]["resumed"]["resumed_from"], got[0]["resumed"]["step"]) == (2, 2, 4)
    # The resumed run ends exactly where the uninterrupted one does.
    assert got[0]["resumed"]["digest"] == got[0]["straight"]["digest"]
    a, b = load_checkpoint(tmp_path / "a" / "checkpoint.pt"), load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert a["world"] == 2 and a["step"] == b["step"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    log = [json.loads(line) for line in (tmp_path / "b" / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]  # rank 0 alone writes, and the resume trimmed nothing twice
