"""A rank of the data-parallel test (spawned twice by test_distributed.py)."""

from __future__ import annotations

import json
import os
import traceback


def run_rank(rank: int, world: int, ports: list[int], manifest: str, out: str, report: str) -> None:
    import torch

    torch.set_num_threads(1)
    from tests.support.models import TINY

    from mfrkit.models.train import TrainConfig, train

    os.environ.update(MASTER_ADDR="127.0.0.1", WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    cfg = TrainConfig(batch_size=3, lr=0.02, workers=0, log_every=1, checkpoint_every=2, epochs=2, device="cpu", seed=3)
    results = {}
    try:
        # The same run straight through, then interrupted after 2 steps and resumed to 4.
        for name, folder, steps, port in (("straight", "a", 4, ports[0]), ("first", "b", 2, ports[1]), ("resumed", "b", 4, ports[2])):
            os.environ["MASTER_PORT"] = str(port)
            r = train("csn", manifest, os.path.join(out, folder), options=TINY["csn"], config=cfg, aligned=True, max_steps=steps)
            results[name] = {"digest": r.weights_digest, "step": r.step, "resumed_from": r.resumed_from, "world": r.world,
                             "rank": r.rank, "n_samples": r.n_samples}
    except BaseException:  # noqa: BLE001 - reported to the test
        results["error"] = traceback.format_exc()
    with open(report, "w") as f:
        json.dump(results, f)
