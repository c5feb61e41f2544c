"""The learning table: held-out accuracy of every family and the CosFace baseline on
synthetic identities, unmasked (umr-ump) and masked (umr-mp) probes.

A check of the training machinery (:mod:`mfrkit.learning_check`), never a benchmark of
face recognition: the identities are morphs of two real portraits. It builds the data
(synthetic identities, masked copies, a pack, two 10-fold protocols on held-out
identities), trains each model small on the CPU, exports it to ONNX and scores it with
``mfrkit bench``. Everything lands in ``--out`` and is reused on a rerun (delete
``--out/runs`` and ``--out/models`` to train again).

    python benchmarks/learning.py [--out /tmp/mfrkit-learning] [--identities 300] [--epochs 12]
        [--models cosface-unmasked,csn] [--workers 2]

Prints the table (Markdown) and, per protocol, the accuracy a chance-level model
exceeds with probability below 1e-6. The masked gap is umr-ump minus umr-mp.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path


def main() -> None:
    from mfrkit.jobs import ExecutorSpec
    from mfrkit.learning_check import CheckConfig, run_learning_check, small_models

    defaults = CheckConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/mfrkit-learning"))
    parser.add_argument("--identities", type=int, default=defaults.n_identities)
    parser.add_argument("--captures", type=int, default=defaults.captures)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--input-size", type=int, default=defaults.input_size)
    parser.add_argument("--models", default="", help="Comma-separated names (default: all): " + ", ".join(m.name for m in small_models()))
    parser.add_argument("--workers", type=int, default=2, help="Processes for the data preparation.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cfg = dataclasses.replace(defaults, n_identities=args.identities, captures=args.captures, epochs=args.epochs, batch_size=args.batch_size,
                              lr=args.lr, width=args.width, input_size=args.input_size, executor=ExecutorSpec(workers=args.workers),
                              seed=args.seed)  # fmt: skip
    models = small_models(cfg)
    if args.models:
        wanted = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = sorted(set(wanted) - {m.name for m in models})
        if unknown:
            parser.error(f"unknown model(s) {unknown}")
        models = [m for m in models if m.name in wanted]
    started = time.time()
    result = run_learning_check(args.out, cfg, models=models, log=lambda m: print(f"[{time.time() - started:6.0f} s] {m}", flush=True))
    print()
    print(f"# learning check ({platform.processor() or platform.machine()}, {cfg.backbone} width {cfg.width}, {cfg.input_size} px, "
          f"{cfg.epochs} epochs, batch {cfg.batch_size}; {time.time() - started:.0f} s in all)")
    print(result.table())
    print(f"\nbench run: {result.bench_folder}")


if __name__ == "__main__":
    main()
