"""The HTML report of an all-pairs result: what reading it costs, and the impostor pass.

Part 1 (``--genuine``, ``--impostors``): writes one synthetic all-pairs result folder of
the size of the field's large protocols (``genuine.csv`` of ``--genuine`` rows with ids,
``histogram.csv`` holding ``--impostors`` impostor comparisons spread over 2^16 bins per
unit, ``images.csv``, ``metrics.json``; no embeddings, manifests missing, so the
galleries are notes and crops), then times, each in a fresh process with its own peak
RSS: reading ``histogram.csv``, the streaming pass over ``genuine.csv``, and the whole
``build_report``.

Part 2 (``--refs``, ``--probes``): the pass that finds the highest-scoring impostor pairs
from saved embeddings (:func:`mfrkit.bench.report.impostors.top_impostors`), beside the
bare float32 matrix product of the same size (tile by tile into one buffer), with the
histogram's cut (about the 8th highest impostor score) and without one (-inf: the
running top-8 raises the floor after the first tile). Asserts nothing.

    python benchmarks/report_all_pairs.py [--genuine 2000000] [--impostors 1e9]
        [--refs 20000] [--probes 20000] [--dim 512] [--skip-pass]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _rss import measure  # noqa: E402
from all_pairs import make_side  # noqa: E402


def write_result(root: Path, n_genuine: int, n_impostor: float, n_images: int, seed: int = 0) -> Path:
    """A synthetic all-pairs result folder (see the module docstring); returns it."""
    from scipy.stats import norm

    from mfrkit.bench.score.binned_scores import ScoreBins

    rng = np.random.default_rng(seed)
    folder = root / "run" / "model" / "proto"
    folder.mkdir(parents=True)
    gen = rng.normal(0.55, 0.12, n_genuine).clip(-1, 1).astype(np.float32)
    ident = rng.integers(0, n_images // 4, n_genuine)
    pd.DataFrame({"left_id": [f"id{i:06d}/img_{k % 4}.jpg" for k, i in enumerate(ident)],
                  "right_id": [f"id{i:06d}/img_{(k + 1) % 4}.jpg" for k, i in enumerate(ident)],
                  "score": gen.astype(np.float64), "fta": False}).to_csv(folder / "genuine.csv", index=False)
    bins = ScoreBins()
    b = np.arange(2, bins.n_bins)
    lower = bins.lower_edge(b)
    upper = bins.lower_edge(b + 1)
    imp = np.round(np.diff(norm.cdf(np.r_[lower, upper[-1]], 0.0, 0.045)) * n_impostor).astype(np.int64)
    g = np.bincount(bins.of(gen), minlength=bins.n_bins)[b]
    keep = (imp > 0) | (g > 0)
    pd.DataFrame({"bin": b[keep], "lower": lower[keep], "upper": upper[keep], "impostor": imp[keep],
                  "genuine": g[keep]}).to_csv(folder / "histogram.csv", index=False)
    pd.DataFrame({"role": ["reference"] * n_images + ["probe"] * n_images,
                  "image_id": [f"id{i // 4:06d}/img_{i % 4}.jpg" for i in range(n_images)] * 2,
                  "identity": [f"id{i // 4:06d}" for i in range(n_images)] * 2,
                  "unit": [f"id{i // 4:06d}/img_{i % 4}.jpg" for i in range(n_images)] * 2,
                  "fta": False}).to_csv(folder / "images.csv", index=False)
    n_imp = int(imp.sum())
    above = np.cumsum(imp[keep][::-1])
    k = int(np.searchsorted(above, 1e-3 * n_imp, side="right"))
    t = float(lower[keep][::-1][max(k - 1, 0)])
    tar = float((gen >= t).mean())
    taf = [{"far_target": 1e-3, "threshold": t, "tar": tar, "far": float(above[max(k - 1, 0)] / n_imp),
            "false_accepts": float(above[max(k - 1, 0)]), "true_accepts": float((gen >= t).sum()),
            "n_genuine": float(n_genuine), "n_impostor": float(n_imp), "tar_ci_low": tar, "tar_ci_high": tar,
            "budget": float(int(1e-3 * n_imp)), "insufficient_negatives": False}]
    data = {"run_id": "run", "created": "2026-01-01T00:00:00+00:00", "mfrkit_version": "bench",
            "model": {"name": "model", "sha256": "m" * 64, "spec": {}}, "settings": {"confidence": 0.95},
            "protocol": {"name": "proto", "kind": "all-pairs", "sha256": "p" * 64, "n_pairs": n_genuine + n_imp,
                         "counts": {"references": n_images, "probes": n_images, "genuine": n_genuine,
                                    "impostor": n_imp, "excluded_self": 0, "excluded_same_source": 0},
                         "manifests": {r: {"path": str(root / "missing" / "manifest.parquet"), "fingerprint": r}
                                       for r in ("reference", "probe")}},
            "preprocessing": {"key": "k"}, "fta": {"images": 0},
            "metrics": {"n_pairs": n_genuine + n_imp, "n_genuine": n_genuine, "n_impostor": n_imp, "tar_at_far": taf,
                        "all_pairs": {"bin_width": 2**-16}}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(data))
    return folder


def read_histogram(folder: str) -> int:
    from mfrkit.bench.report.scores import BinnedHistogram

    return len(BinnedHistogram.read(Path(folder) / "histogram.csv").lower)


def scan(folder: str) -> int:
    from mfrkit.bench.report.scores import scan_genuine

    return scan_genuine(Path(folder) / "genuine.csv", 8, [0.5]).n


def report(folder: str) -> int:
    from mfrkit.bench.report.leaderboard import collect_results
    from mfrkit.bench.report.page import build_report

    return len(build_report(collect_results([Path(folder).parent.parent])).encode())


def timed(fn, *args):
    t0 = time.perf_counter()
    rss = measure(fn, *args)
    return time.perf_counter() - t0, rss


def impostor_pass(args) -> None:
    from mfrkit.bench.report.impostors import top_impostors

    ref, ir = make_side(args.refs, 4, args.dim, 0, 1)
    probe, iq = make_side(args.probes, 4, args.dim, 0, 2)
    n = len(ref) * len(probe)
    out = np.empty((2048, 2048), np.float32)
    rows = []
    for repeat in range(2):  # interleaved: the machine is shared
        t0 = time.perf_counter()
        for r0 in range(0, len(ref), 2048):
            for c0 in range(0, len(probe), 2048):
                a, b = ref[r0 : r0 + 2048], probe[c0 : c0 + 2048]
                np.matmul(a, b.T, out=out[: len(a), : len(b)])
        bare = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, _, s = top_impostors(ref, probe, ir, iq, -np.inf, 8)
        free = time.perf_counter() - t0
        cut = float(np.sort(s)[-8]) - 4.0 / 2**16  # what the histogram's cut gives, lowered by the margin
        t0 = time.perf_counter()
        top_impostors(ref, probe, ir, iq, cut, 8)
        with_cut = time.perf_counter() - t0
        rows.append((bare, with_cut, free))
    print(f"\nimpostor pass: {len(ref):,} x {len(probe):,} = {n:.3g} comparisons of {args.dim}-d float32 (2 repeats)")
    print(f"{'what':<44}{'seconds':>10}{'s per 1e9':>11}{'x bare':>8}")
    for k, (bare, with_cut, free) in enumerate(rows):
        for name, sec in (("bare float32 matrix product", bare), ("top-8 impostors, histogram's cut", with_cut),
                          ("top-8 impostors, no cut (-inf)", free)):
            print(f"{name + f' (run {k + 1})':<44}{sec:>10.2f}{sec / n * 1e9:>11.2f}{sec / bare:>8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genuine", type=int, default=2_000_000)
    ap.add_argument("--impostors", type=float, default=1e9)
    ap.add_argument("--images", type=int, default=40_000, help="images per side in images.csv")
    ap.add_argument("--refs", type=int, default=20_000)
    ap.add_argument("--probes", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--skip-pass", action="store_true")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (figures are noisy when other work runs)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_result(Path(tmp), args.genuine, args.impostors, args.images)
        sizes = {f: (folder / f).stat().st_size / 1e6 for f in ("genuine.csv", "histogram.csv", "images.csv")}
        print(f"result: {args.genuine:,} genuine, {args.impostors:.3g} impostor comparisons; "
              + ", ".join(f"{f} {mb:.1f} MB" for f, mb in sizes.items()))
        print(f"{'what':<44}{'seconds':>10}{'peak RSS MiB':>14}")
        for name, fn in (("read histogram.csv", read_histogram), ("stream genuine.csv (8 lowest)", scan),
                         ("build_report (whole page)", report)):
            sec, rss = timed(fn, str(folder))
            print(f"{name:<44}{sec:>10.2f}{rss.largest_mib:>14.0f}")
        print("(each in a fresh process: the seconds include starting it and importing mfrkit)")
    if not args.skip_pass:
        impostor_pass(args)


if __name__ == "__main__":
    main()
