"""Every GPU path of mfrkit, run once and timed: one table, non-zero exit on any failure.

Sections (``--sections``; all by default):

``onnx``       a family exported to ONNX, run by the bench's :class:`~mfrkit.onnx_model.OnnxModel`
               on onnxruntime's CUDA provider with I/O binding: images/s beside a bare
               ``session.run`` loop on the same session, and the embeddings against the CPU
               provider's. Needs onnxruntime-gpu (``mfrkit[gpu]``): without a CUDA provider
               the section fails, it does not fall back.
``topk``       1:N search with torch on CUDA (:func:`~mfrkit.bench.score.search.topk_search`),
               10k probes x 1M gallery, 512-d; a sample of probes checked against numpy.
``all-pairs``  streaming all-pairs scoring on CUDA (:func:`~mfrkit.bench.score.streaming.score_all_pairs`):
               exactness against the materialised metrics on embeddings whose scores are
               exact in float32, then >= 1e11 comparisons timed beside the device's bare
               float32 matrix-product rate over the same tiles, measured in the same run.
``train``      mixed-precision training steps/s of every family through the public training
               API (:func:`mfrkit.models.train.train`, ``TrainConfig(amp=True)``) on a synthetic
               aligned dataset; losses must stay finite. To time another precision or a
               distributed run, add an entry to :data:`TRAIN_VARIANTS`.

``--cpu-smoke`` runs every section on the CPU at tiny sizes (what the CPU tests run); on a
GPU machine, ``python benchmarks/gpu_check.py`` should finish in under 8 minutes.

    python benchmarks/gpu_check.py [--cpu-smoke] [--sections onnx,topk,all-pairs,train] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

OK, FAIL = "ok", "FAIL"


@dataclass
class Row:
    """One line of the table."""

    section: str
    check: str
    result: str
    status: str = OK


@dataclass(frozen=True)
class Sizes:
    """How big each section's work is."""

    onnx_family_options: dict = field(default_factory=dict)
    onnx_batch: int = 128
    onnx_batches: int = 30
    topk_probes: int = 10_000
    topk_gallery: int = 1_000_000
    topk_dim: int = 512
    topk_check: int = 64
    all_pairs_side: int = 320_000  # 320k x 320k = 1.02e11 comparisons
    all_pairs_exact_side: int = 3_000
    all_pairs_dim: int = 512
    all_pairs_tile: int = 16_384
    train_options: dict = field(default_factory=dict)
    train_batch: int = 128
    train_steps: int = 20
    train_identities: int = 64
    train_per_identity: int = 8
    workers: int = 8


GPU_SIZES = Sizes()
#: Tiny sizes: every section in seconds on two CPU cores.
SMOKE_SIZES = Sizes(
    onnx_family_options={"backbone": "iresnet18", "width": 4, "embedding_dim": 16, "concept_hidden": 8},
    onnx_batch=8, onnx_batches=3, topk_probes=200, topk_gallery=5_000, topk_dim=32, topk_check=16,
    all_pairs_side=1_500, all_pairs_exact_side=600, all_pairs_dim=32, all_pairs_tile=512, train_batch=4,
    train_steps=1,
    train_identities=4, train_per_identity=3, workers=0,
)  # fmt: skip
#: Tiny family configs for the smoke run (the GPU run uses each family's defaults).
SMOKE_FAMILY_OPTIONS = {
    "csn": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16, "concept_hidden": 8},
    "attention": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16, "n_maps": 3, "input_size": 64},
    "heterogeneous": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16},
    "domain_adapt": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16, "domain_hidden": 8},
    "cosface": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16},
}
#: Training variants timed per family: name -> TrainConfig fields. Add e.g. a bf16 or a
#: distributed variant here once TrainConfig offers it.
TRAIN_VARIANTS = {"amp": {"amp": True}}
SECTIONS = ("onnx", "topk", "all-pairs", "train")


class CheckFailed(Exception):
    """A check ran and its result is wrong."""


def choose_device(cpu_smoke: bool, cuda_available: bool) -> str:
    """``cpu`` for the smoke run, else ``cuda``; no CUDA without ``--cpu-smoke`` is an error."""
    if cpu_smoke:
        return "cpu"
    if not cuda_available:
        raise SystemExit("gpu_check: torch sees no CUDA device; run with --cpu-smoke to check the script on a CPU")
    return "cuda"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _normalised(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


# --- onnx --------------------------------------------------------------------------------------------


def check_onnx(device: str, sizes: Sizes, tmp: Path) -> list[Row]:
    import onnxruntime as ort

    from mfrkit.onnx_model import OnnxModel
    from mfrkit.models.export import export_family

    rows = []
    t0 = time.perf_counter()
    result = export_family("csn", tmp / "onnx", options=sizes.onnx_family_options or None)[0]
    rows.append(Row("onnx", "export csn (torch -> ONNX, checked)", f"{time.perf_counter() - t0:.1f} s, "
                    f"max |ort - torch| {max(result.max_abs_diff.values()):.1e}"))
    model = OnnxModel(result.path, provider=device, threads=0)
    if model.provider != device:
        raise CheckFailed(f"asked for {device}, onnxruntime runs on {model.provider}")
    cpu = OnnxModel(result.path, provider="cpu")
    h, w = model.spec.input_size
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((sizes.onnx_batch, 3, h, w), dtype=np.float32) for _ in range(sizes.onnx_batches)]
    for b in batches[:2]:  # warm-up: CUDA kernels, cuDNN autotuning
        model.run(b)
        model.session.run([model.output_name], {model.input_name: b})
    t0 = time.perf_counter()
    outs = [model.run(b) for b in batches]
    bound = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b in batches:
        model.session.run([model.output_name], {model.input_name: b})
    bare = time.perf_counter() - t0
    n = sizes.onnx_batch * sizes.onnx_batches
    path = "I/O binding" if model.provider == "cuda" else "session.run"
    rows.append(Row("onnx", f"OnnxModel.run on {model.provider} ({path}), batch {sizes.onnx_batch}",
                    f"{n / bound:,.0f} img/s; bare session.run loop {n / bare:,.0f} img/s ({bare / bound:.2f}x)"))
    ref = cpu.run(batches[0])
    diff = float(np.abs(outs[0] - ref).max())
    scale = float(np.abs(ref).max())
    status = OK if diff <= 1e-3 * max(scale, 1.0) else FAIL
    rows.append(Row("onnx", f"{model.provider} vs cpu provider embeddings", f"max |diff| {diff:.1e} (scale {scale:.2g})",
                    status))
    rows.append(Row("onnx", "onnxruntime providers", ", ".join(ort.get_available_providers())))
    return rows


# --- topk --------------------------------------------------------------------------------------------


def check_topk(device: str, sizes: Sizes, tmp: Path) -> list[Row]:
    from mfrkit.bench.score.search import topk_search

    rng = np.random.default_rng(1)
    Q = _normalised(rng, sizes.topk_probes, sizes.topk_dim)
    G = _normalised(rng, sizes.topk_gallery, sizes.topk_dim)
    topk_search(Q[:256], G[:4096], 20, device=device)  # warm-up
    t0 = time.perf_counter()
    s, i, used = topk_search(Q, G, 20, device=device)
    _sync(used)
    seconds = time.perf_counter() - t0
    if used != device:
        raise CheckFailed(f"the search ran on {used}, not {device}")
    rows = [Row("topk", f"1:N top-20, {sizes.topk_probes:,} x {sizes.topk_gallery:,}, {sizes.topk_dim}-d on {used}",
                f"{seconds:.2f} s, {sizes.topk_probes * sizes.topk_gallery / seconds:.3g} scores/s")]
    k = sizes.topk_check
    exact = Q[:k] @ G.T
    want = np.sort(exact, axis=1)[:, ::-1][:, :20]
    diff = float(np.abs(want - s[:k]).max())
    same_idx = float(np.mean([len(set(a) & set(b)) / 20 for a, b in zip(np.argsort(-exact, axis=1)[:, :20], i[:k])]))
    status = OK if diff < 1e-4 and same_idx > 0.99 else FAIL
    rows.append(Row("topk", f"{k} probes against numpy's exact top-20", f"max |score diff| {diff:.1e}, "
                    f"{same_idx:.1%} same candidates", status))
    return rows


# --- all-pairs ----------------------------------------------------------------------------------------


def _exact_grid_sides(seed: int, n: int):
    """Embeddings whose dot products are exact in float32 (entries k/64): any device and
    any summation order give the same scores, so results must equal the CPU oracle."""
    from mfrkit.bench.score.streaming import Side

    rng = np.random.default_rng(seed)
    out = []
    for salt in (0, 1):
        ident = rng.integers(0, n // 4, n)
        base = rng.integers(-3, 4, (n // 4, 16))
        v = (np.clip(base[ident] + rng.integers(-2, 3, (n, 16)), -4, 4) / 64).astype(np.float32)
        out.append(Side(v, ident, ident * 10 + salt))
    return out


def check_all_pairs(device: str, sizes: Sizes, tmp: Path) -> list[Row]:
    import warnings

    from mfrkit.bench import metrics as M
    from mfrkit.bench.score.streaming import ScanOptions, Side, View, score_all_pairs

    targets = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    rows = []
    # exactness on the device
    ne = sizes.all_pairs_exact_side
    ref, probe = _exact_grid_sides(0, ne)
    _, resolved, scan = score_all_pairs(ref, probe, {"overall": View([0])}, far_targets=targets,
                                        options=ScanOptions(device=device, tile_rows=ne // 3, tile_cols=ne // 3, collect_all=0))
    S = ref.vectors.astype(np.float64) @ probe.vectors.astype(np.float64).T
    keep = ref.unit[:, None] != probe.unit[None, :]
    y = (ref.identity[:, None] == probe.identity[None, :])[keep]
    s = S[keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        want_m, want_i, want_e = M.tar_at_far(y, s, targets), M.tar_at_far_nearest(y, s, targets), M.eer(y, s)
    got = resolved["overall"]
    same = (np.array_equal(got["tar_at_far"].tar, want_m.tar) and np.array_equal(got["nearest"].tar, want_i.tar)
            and np.array_equal(got["tar_at_far"].threshold, want_m.threshold) and got["eer"] == want_e)
    rows.append(Row("all-pairs", f"exact on {scan.device}: {ne} x {ne} vs materialised metrics (both rule sets, EER)",
                    "identical" if same else "DIFFERENT", OK if same and scan.device == device else FAIL))
    # scale
    n, d, tile = sizes.all_pairs_side, sizes.all_pairs_dim, sizes.all_pairs_tile
    rng = np.random.default_rng(2)
    ids = np.arange(n) // 4
    base = _normalised(rng, n // 4 + 1, d)

    def side(salt):
        v = base[ids] + _normalised(np.random.default_rng([2, salt]), n, d)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return Side(v.astype(np.float32), ids, ids * 2 + salt)

    R, P = side(0), side(1)
    bare = _bare_matmul_seconds(R.vectors, P.vectors, tile, device)
    t0 = time.perf_counter()
    binned, resolved, scan = score_all_pairs(R, P, {"overall": View([0])}, far_targets=targets,
                                             options=ScanOptions(device=device, tile_rows=tile, tile_cols=tile))
    seconds = time.perf_counter() - t0
    cmp = n * n
    rows.append(Row("all-pairs", f"bare float32 matrix product, {n:,} x {n:,} x {d} in {tile} tiles on {device}",
                    f"{bare:.2f} s, {cmp / bare:.3g} comparisons/s, {2 * cmp * d / bare / 1e12:.1f} TFLOP/s"))
    tar = resolved["overall"]["tar_at_far"].tar
    rows.append(Row("all-pairs", f"all-pairs exact scoring, {cmp:.3g} comparisons on {scan.device}",
                    f"{seconds:.2f} s, {cmp / seconds:.3g} comparisons/s ({seconds / bare:.2f}x bare); "
                    f"{scan.passes} pass(es), pilot {scan.pilot_rows:,} rows; TAR@1e-6 {tar[-1]:.4f}",
                    OK if scan.device == device and np.isfinite(tar).all() else FAIL))
    return rows


def _bare_matmul_seconds(A: np.ndarray, B: np.ndarray, tile: int, device: str) -> float:
    """Seconds of the plain float32 products of every tile (the physical bound)."""
    if device == "cuda":
        import torch

        with _no_tf32():
            Ad, Bd = torch.from_numpy(A).cuda(), torch.from_numpy(B).cuda()
            out = torch.empty((tile, tile), device="cuda")
            torch.mm(Ad[:tile], Bd[:tile].T, out=out[: min(tile, len(A)), : min(tile, len(B))])
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for r in range(0, len(A), tile):
                for c in range(0, len(B), tile):
                    a, b = Ad[r : r + tile], Bd[c : c + tile]
                    torch.mm(a, b.T, out=out[: len(a), : len(b)])
            torch.cuda.synchronize()
            return time.perf_counter() - t0
    out = np.empty((tile, tile), np.float32)
    t0 = time.perf_counter()
    for r in range(0, len(A), tile):
        for c in range(0, len(B), tile):
            a, b = A[r : r + tile], B[c : c + tile]
            np.matmul(a, b.T, out=out[: len(a), : len(b)])
    return time.perf_counter() - t0


class _no_tf32:
    """float32 products in full float32 (no TF32), as the scorer computes them."""

    def __enter__(self):
        import torch

        self.before = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc):
        import torch

        torch.backends.cuda.matmul.allow_tf32 = self.before


# --- train ---------------------------------------------------------------------------------------------


def _synthetic_dataset(root: Path, identities: int, per_identity: int):
    """Aligned 112x112 crops: a smooth texture per identity, noise per capture, and a
    masked copy of each (``source_id``), so that every family has both domains."""
    import cv2

    from mfrkit.data.imageio import write_image
    from mfrkit.data.manifest import Manifest, make_table, write_manifest

    rows = []
    for i in range(identities):
        base = np.random.default_rng([i]).uniform(0, 255, (8, 8, 3)).astype(np.float32)
        face = cv2.resize(base, (112, 112), interpolation=cv2.INTER_CUBIC)
        for c in range(per_identity):
            img = np.clip(face + np.random.default_rng([i, c]).normal(0, 10, face.shape), 0, 255).astype(np.uint8)
            rel = f"id{i:04d}/{c}.png"
            write_image(root / rel, img)
            rows.append({"image_id": rel, "path": rel, "identity": f"id{i:04d}", "variant": "unmasked",
                         "status": "ok", "width": 112, "height": 112})
            masked = img.copy()
            masked[62:] = (40, 90, 200)  # a flat "mask" over the lower face
            mrel = f"masked/id{i:04d}/{c}.png"
            write_image(root / mrel, masked)
            rows.append({"image_id": mrel, "path": mrel, "identity": f"id{i:04d}", "variant": "masked",
                         "source_id": rel, "mask_type": "surgical", "status": "ok", "width": 112, "height": 112})
    m = Manifest(make_table(rows), {"name": "gpu-check", "root": "."})
    write_manifest(m, root / "manifest.parquet")
    return m


def check_train(device: str, sizes: Sizes, tmp: Path) -> list[Row]:
    from mfrkit.models import family_names
    from mfrkit.models.train import TrainConfig, train

    data = _synthetic_dataset(tmp / "train-data", sizes.train_identities, sizes.train_per_identity)
    rows = []
    smoke = device == "cpu"
    for family in family_names():
        options = SMOKE_FAMILY_OPTIONS.get(family, {}) if smoke else {}
        for variant, fields in TRAIN_VARIANTS.items():
            cfg = TrainConfig(epochs=1000, batch_size=sizes.train_batch, device=device, workers=sizes.workers,
                              log_every=1, checkpoint_every=10**6, lr=0.01, **fields)
            out = tmp / f"train-{family}-{variant}"
            warm = 1 if smoke else 3  # CUDA context, cuDNN autotuning, first loader workers: not timed
            try:
                res = train(family, data, out, options=options, config=cfg, aligned=True,
                            max_steps=warm + sizes.train_steps)
            except Exception as exc:  # a family that cannot train fails this check, not the script
                rows.append(Row("train", f"{family} ({variant}) on {device}", f"{type(exc).__name__}: {exc}"[:160], FAIL))
                continue
            # every step is logged with its wall-clock time (log_every=1)
            times = [json.loads(line)["time"] for line in (out / "losses.jsonl").read_text().splitlines()]
            timed = times[warm - 1 :]
            steps_per_s = (len(timed) - 1) / max(timed[-1] - timed[0], 1e-9)
            finite = all(math.isfinite(v) for v in res.last_losses.values())
            rows.append(Row("train", f"{family} ({variant}) on {res.device}, batch {sizes.train_batch}",
                            f"{steps_per_s:.2f} steps/s ({steps_per_s * sizes.train_batch:,.0f} img/s) over "
                            f"{len(timed) - 1} steps; loss {res.last_losses.get('loss', float('nan')):.3g}",
                            OK if finite and res.device.startswith(device) else FAIL))
    return rows


# --- the table -----------------------------------------------------------------------------------------

CHECKS: dict[str, Callable[[str, Sizes, Path], list[Row]]] = {
    "onnx": check_onnx, "topk": check_topk, "all-pairs": check_all_pairs, "train": check_train,
}


def run_checks(device: str, sizes: Sizes, sections=SECTIONS) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="mfrkit-gpu-check-") as tmp:
        for name in sections:
            t0 = time.perf_counter()
            try:
                rows += CHECKS[name](device, sizes, Path(tmp))
            except CheckFailed as exc:
                rows.append(Row(name, "check", str(exc), FAIL))
            except Exception as exc:
                rows.append(Row(name, "error", f"{type(exc).__name__}: {exc}"[:300], FAIL))
                traceback.print_exc(file=sys.stderr)
            rows.append(Row(name, "section wall time", f"{time.perf_counter() - t0:.1f} s"))
    return rows


def print_table(rows: list[Row]) -> None:
    w1 = max(len(r.section) for r in rows)
    w2 = max(len(r.check) for r in rows)
    print(f"{'section':<{w1}}  {'check':<{w2}}  status  result")
    for r in rows:
        print(f"{r.section:<{w1}}  {r.check:<{w2}}  {r.status:<6}  {r.result}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="every section on the CPU at tiny sizes")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    device = choose_device(args.cpu_smoke, _cuda_available())
    sizes = SMOKE_SIZES if args.cpu_smoke else GPU_SIZES
    if args.cpu_smoke:
        import torch

        torch.set_num_threads(1)  # tiny models: one thread beats two contended cores
    t0 = time.perf_counter()
    rows = run_checks(device, sizes, sections)
    rows.append(Row("all", "total wall time", f"{time.perf_counter() - t0:.1f} s"))
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    failed = [r for r in rows if r.status != OK]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
