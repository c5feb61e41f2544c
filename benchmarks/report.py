"""Time and size of ``mfrkit report`` on large 1:1 protocols. Prints figures; asserts nothing.

Writes synthetic result folders (``metrics.json`` + ``scores.csv`` with ``--pairs``
comparisons each, genuine and impostor scores from two normal distributions, mask-type
breakdowns) for ``--models`` x ``--protocols``, then times :func:`build_report` and
reports the page's size. The manifests named by the results do not exist, so the
galleries are notes: this measures the part that grows with the protocol (reading the
scores, the ROC/DET curves, the histograms, the SVGs); the crops are a fixed
``16 x 2`` per model x protocol (about 5 KB each, see ``mfrkit.bench.report.gallery.jpeg_bytes``).

    python benchmarks/report.py [--pairs 600000] [--models 3] [--protocols 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mfrkit.bench import metrics as M
from mfrkit.bench.report.leaderboard import collect_results
from mfrkit.bench.report.page import build_report


def write_result(root: Path, model: str, protocol: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder = root / "run" / model / protocol
    folder.mkdir(parents=True)
    label = (rng.random(n) < 0.5).astype(int)
    score = np.where(label == 1, rng.normal(0.6, 0.12, n), rng.normal(0.1, 0.1, n))
    pd.DataFrame({"fold": np.arange(n) % 10, "left_id": [f"a{i}" for i in range(n)], "right_id": [f"b{i}" for i in range(n)],
                  "label": label, "score": score, "fta": False}).to_csv(folder / "scores.csv", index=False)
    taf = M.tar_at_far(label, score, [1e-3, 1e-4]).records()
    groups = {g: {"at_overall_threshold": [{"far_target": 1e-3, "fnmr": float(rng.random() * 0.2), "fnmr_ci_low": 0.0, "fnmr_ci_high": 0.3}]}
              for g in ("cloth", "surgical", "cloth+surgical", "n95")}
    data = {"run_id": "run", "created": "2026-01-01T00:00:00+00:00", "mfrkit_version": "bench",
            "model": {"name": model, "sha256": (model * 64)[:64], "spec": {}}, "settings": {"confidence": 0.95},
            "protocol": {"name": protocol, "kind": "verification", "sha256": (protocol * 64)[:64], "n_pairs": n,
                         "manifests": {r: {"path": str(root / "missing" / "manifest.parquet")} for r in ("reference", "probe")}},
            "preprocessing": {"key": "k"}, "fta": {"images": 0},
            "metrics": {"n_pairs": n, "auc": float(M.roc_auc(label, score)), "tar_at_far": taf},
            "breakdowns": {"mask_type": groups}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=600_000)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--protocols", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {args.models} models x {args.protocols} protocols x {args.pairs:,} comparisons")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for m in range(args.models):
            for p in range(args.protocols):
                write_result(root, f"model{m}", f"proto{p}", args.pairs, seed=m * 100 + p)
        results = collect_results([root])
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            page = build_report(results)
            times.append(time.perf_counter() - t0)
    print(f"build_report: best {min(times):.1f} s, median {float(np.median(times)):.1f} s over {args.repeats} runs; "
          f"page {len(page.encode()) / 1e6:.2f} MB (no face crops)")


if __name__ == "__main__":
    main()
