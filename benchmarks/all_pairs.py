"""All-pairs 1:1 scoring at scale: time and peak memory beside a bare matrix product.

Makes ``--refs`` reference and ``--probes`` probe embeddings (``--dim``-d float32,
L2-normalised; ``--per-identity`` images per identity and side, genuine cosines from
about 0.05 to 0.5, impostors about 0 +- 0.045: a middling face model, TAR@FAR=1e-4 about
0.6), then, each in its own
child process so that peak memory is its own:

1. **bare**: the float32 matrix product of the same size, tile by tile into one reused
   buffer (numpy/BLAS; the whole 40k x 40k product would be 6.4 GB): the physical
   bound of any exact method, since every score must be computed once;
2. **all-pairs**: :func:`mfrkit.bench.score.streaming.score_all_pairs` with FAR targets
   1e-1 ... 1e-6: exact TAR@FAR by both rule sets, EER, AUC bound, genuine scores kept.

Prints one table: comparisons, seconds, comparisons per second, peak RSS (the
process's resident high-water mark, embeddings included), the ratio to the bare
product, and the figures scaled to 1e9 comparisons. Asserts nothing.

    python benchmarks/all_pairs.py [--refs 40000] [--probes 40000] [--dim 512] [--per-identity 4]
        [--tile 2048] [--device cpu] [--workers 1[,2]] [--seed 0]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import time

import numpy as np

TARGETS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def make_side(n: int, per_identity: int, dim: int, seed: int, salt: int):
    """Embeddings of ``n // per_identity`` identities: identity direction plus noise."""
    rng = np.random.default_rng([seed, salt])
    n_ids = max(1, n // per_identity)
    ident = np.arange(n) % n_ids
    base = np.random.default_rng([seed, 7]).standard_normal((n_ids, dim), dtype=np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    # how much of the identity each image shows (pose, occlusion, mask): genuine cosines
    # spread from about 0.05 to 0.5, impostors about 0 +- 1/sqrt(dim)
    w = rng.uniform(0.25, 1.0, (n, 1)).astype(np.float32)
    v = base[ident] * w + v
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    order = np.argsort(ident, kind="stable")
    return v[order], ident[order]


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def bare(args, queue) -> None:
    ref, _ = make_side(args.refs, args.per_identity, args.dim, args.seed, 1)
    probe, _ = make_side(args.probes, args.per_identity, args.dim, args.seed, 2)
    base = peak_rss_gb()
    out = np.empty((args.tile, args.tile), np.float32)
    t0 = time.perf_counter()
    for r in range(0, len(ref), args.tile):
        a = ref[r : r + args.tile]
        for c in range(0, len(probe), args.tile):
            b = probe[c : c + args.tile]
            np.matmul(a, b.T, out=out[: len(a), : len(b)])
    queue.put({"seconds": time.perf_counter() - t0, "peak_gb": peak_rss_gb(), "inputs_gb": base})


def all_pairs(args, queue) -> None:
    from mfrkit.bench.score.streaming import ScanOptions, Side, View, score_all_pairs

    ref, ir = make_side(args.refs, args.per_identity, args.dim, args.seed, 1)
    probe, iq = make_side(args.probes, args.per_identity, args.dim, args.seed, 2)
    base = peak_rss_gb()
    t0 = time.perf_counter()
    binned, resolved, scan = score_all_pairs(
        Side(ref, ir, np.arange(len(ref))), Side(probe, iq, np.arange(len(probe)) + len(ref)),
        {"overall": View([0])}, far_targets=TARGETS,
        options=ScanOptions(device=args.device, tile_rows=args.tile, tile_cols=args.tile, seed=args.seed, workers=args.workers),
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    r = resolved["overall"]
    auc, auc_err = binned["overall"].auc()
    queue.put({
        "seconds": seconds, "peak_gb": peak_rss_gb(), "inputs_gb": base, "passes": scan.passes,
        "pilot_rows": scan.pilot_rows, "tiles": len(range(0, len(ref), args.tile)) * len(range(0, len(probe), args.tile)),
        "stages": {k: round(v, 2) for k, v in scan.seconds.items()},
        "genuine": binned["overall"].n_genuine, "impostor": binned["overall"].n_impostor,
        "tar": r["tar_at_far"].tar.tolist(), "tar_insightface": r["nearest"].tar.tolist(),
        "far_insightface": r["nearest"].far.tolist(), "eer": r["eer"].eer, "auc": auc, "auc_err": auc_err,
        "kept_values": int(len(scan.values)),
    })  # fmt: skip


def run(target, args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(args, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refs", type=int, default=40000)
    ap.add_argument("--probes", type=int, default=40000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--per-identity", type=int, default=4)
    ap.add_argument("--tile", type=int, default=2048)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", default="1", help="scoring threads (each with its own tile buffers); a comma list "
                    "such as 1,2 times each, in the same run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n = args.refs * args.probes
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (figures are noisy when other work runs)")
    print(f"{args.refs} x {args.probes} = {n:.3g} comparisons of {args.dim}-d float32, tiles of {args.tile}, "
          f"device {args.device}")
    b = run(bare, args)
    runs = []
    for w in [int(x) for x in str(args.workers).split(",") if x]:
        runs.append((w, run(all_pairs, argparse.Namespace(**{**vars(args), "workers": w}))))
    a = runs[0][1]
    print()
    print(f"{'what':<40}{'seconds':>10}{'cmp/s':>12}{'peak RSS GB':>13}{'s per 1e9':>11}{'x bare':>8}")
    rows = [("bare float32 matrix product", b)] + [(f"all-pairs, exact, {w} thread(s)", r) for w, r in runs]
    for name, r in rows:
        print(f"{name:<40}{r['seconds']:>10.1f}{n / r['seconds']:>12.3g}{r['peak_gb']:>13.2f}"
              f"{r['seconds'] / n * 1e9:>11.1f}{r['seconds'] / b['seconds']:>8.2f}")
    print(f"(the inputs alone: {a['inputs_gb']:.2f} GB peak RSS before scoring)")
    print()
    print(f"all-pairs: {a['genuine']:,} genuine, {a['impostor']:,} impostor comparisons; {a['passes']} pass(es) after a "
          f"pilot of {a['pilot_rows']:,} reference images x every probe; {a['tiles']} tiles; {a['kept_values']:,} impostor scores kept; "
          f"stages {a['stages']}")
    for t, m, i, f in zip(TARGETS, a["tar"], a["tar_insightface"], a["far_insightface"]):
        print(f"  TAR@FAR={t:.0e}: mfrkit {m:.5f}   insightface {i:.5f} (at FAR {f:.3g})")
    print(f"  EER {a['eer']:.5f}, AUC {a['auc']:.6f} +- {a['auc_err']:.1e}")


if __name__ == "__main__":
    main()
