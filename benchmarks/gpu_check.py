"""Every GPU path of mfrkit, run once and timed: one table, non-zero exit on any failure.

Runs from a plain copy of the repository on a bare CUDA machine, with nothing installed
but torch, numpy, pandas, pyarrow, onnx, scikit-learn and (CPU) onnxruntime::

    PYTHONPATH=. python benchmarks/gpu_check.py [--cpu-smoke] [--sections ...] [--json out.json]

mfrkit is not installed there, and mediapipe, dlib, OpenCV, Pillow, typer, rich and
onnxscript may all be missing: only modules that import without them are used (a test
runs ``--cpu-smoke`` with all of them hidden). Meant to take about 3 minutes on one
H100 (the limit is 6).

Sections (``--sections``; all by default):

``env``        versions, the device, onnxruntime's providers, the optional modules missing.
``onnx``       a family exported to ONNX (mfrkit's exporter, or torch's TorchScript
               exporter where onnxscript is missing) and run by the bench's
               :class:`~mfrkit.onnx_model.OnnxModel` on onnxruntime's CUDA provider
               (I/O binding, padded batches): images/s beside a bare ``session.run`` loop,
               and the embeddings against the CPU provider's with TF32 off (limit 1e-3 of
               the embedding norm) and on (limit 2e-2). Without onnxruntime-gpu the rows
               say "skipped: onnxruntime has no CUDA provider here"; they do not fail.
``embed``      embedding images/s on the GPU of every family's embedding graph as a torch
               module (what its ONNX file holds: no onnxruntime-gpu needed), in full
               float32 and in bf16 autocast, with the float32 embeddings against the same
               module's on the CPU (limit 1e-3 of the norm).
``topk``       1:N search with torch (:func:`~mfrkit.bench.score.search.topk_search`), 10k probes x
               1M gallery, 512-d; a sample of probes checked against numpy.
``all-pairs``  streaming all-pairs scoring (:func:`~mfrkit.bench.score.streaming.score_all_pairs`):
               exactness against the materialised metrics on embeddings whose scores are
               exact in float32, then >= 1e11 comparisons timed beside the device's bare
               float32 matrix product over the same tiles, measured in the same run
               (goal: at most 1.5x of it).
``train``      training steps/s of every family in bf16 through the training step of
               ``mfrkit models train`` (:func:`mfrkit.models.speed.run_training_steps`:
               random batches already on the device, so no loader start-up and no
               checkpoint is timed); losses must stay finite.

Exit code: 1 when a check failed (a wrong result or an error), else 3 when torch found no
GPU (status ``NO GPU``, first row: the reason, and every section ran on the CPU at the
smoke sizes instead), else 2 when every result was right but a speed goal was missed
(status ``MISSED``), else 0. ``--cpu-smoke`` runs every section on the CPU at tiny sizes
(what the CPU tests run; no goal applies; exit code 0 when all passed).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

OK, FAIL, SKIP = "ok", "FAIL", "skipped"
#: Right results, but slower than the section's goal (exit code 2 when nothing failed).
MISSED = "MISSED"
#: A run meant for the GPU that found none and ran the CPU smoke checks (exit code 3).
NO_GPU = "NO GPU"
NO_CUDA_ORT = "skipped: onnxruntime has no CUDA provider here"


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

    family_options: dict = field(default_factory=dict)
    embed_family: str = "csn"
    embed_batch: int = 256
    embed_batches: int = 20
    onnx_batches: int = 10
    topk_probes: int = 10_000
    topk_gallery: int = 1_000_000
    topk_dim: int = 512
    topk_check: int = 64
    all_pairs_side: int = 320_000  # 320k x 320k = 1.02e11 comparisons
    all_pairs_exact_side: int = 3_000
    all_pairs_dim: int = 512
    all_pairs_tile: int = 16_384
    all_pairs_goal: float | None = 1.5  # the scorer's time / the bare product's (None: reported only)
    train_batch: int = 128
    train_steps: int = 20
    train_warmup: int = 3
    train_classes: int = 1000


GPU_SIZES = Sizes()
#: Tiny family configs for the smoke run (the GPU run uses each family's defaults).
SMOKE_FAMILY_OPTIONS = {
    "csn": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16, "concept_hidden": 8},
    "attention": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16, "n_maps": 3, "input_size": 64},
    "heterogeneous": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16},
    "domain_adapt": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16, "domain_hidden": 8},
    "cosface": {"backbone": "iresnet18", "width": 4, "embedding_dim": 16},
}
#: Tiny sizes: every section in seconds on two CPU cores.
SMOKE_SIZES = Sizes(
    family_options=SMOKE_FAMILY_OPTIONS, embed_batch=8, embed_batches=2, onnx_batches=2, topk_probes=200,
    topk_gallery=5_000, topk_dim=32, topk_check=16, all_pairs_side=1_500, all_pairs_exact_side=600, all_pairs_dim=32,
    all_pairs_tile=512, all_pairs_goal=None, train_batch=4, train_steps=1, train_warmup=1, train_classes=8,
)  # fmt: skip
#: Precision of the training rows (:data:`mfrkit.models.train_config.PRECISIONS`).
TRAIN_PRECISION = "bf16"
SECTIONS = ("env", "onnx", "embed", "topk", "all-pairs", "train")
#: What a bare GPU machine may lack; nothing here is needed (the tests hide them all).
OPTIONAL_MODULES = ("mediapipe", "dlib", "cv2", "typer", "rich", "onnxscript", "PIL", "matplotlib", "yaml")


class CheckFailed(Exception):
    """A check ran and its result is wrong."""


def choose_device(cpu_smoke: bool, cuda_available: bool) -> str:
    """``cpu`` for the smoke run or where torch sees no CUDA device, else ``cuda``."""
    return "cuda" if cuda_available and not cpu_smoke else "cpu"


def no_gpu_row(reason: str) -> Row:
    """The first row of a run that asked for the GPU and found none: what ran instead."""
    return Row("env", "CUDA device", f"none: {reason}; every section ran on the CPU at the smoke sizes, so no "
               "figure here measures a GPU (exit code 3)", NO_GPU)


def module_available(name: str) -> bool:
    """Whether ``name`` can be found (a finder that refuses it, as the tests' blocker
    does, counts as missing)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def cuda_status() -> tuple[bool, str]:
    """Whether torch can use a CUDA device, and if not why (a CPU build of torch, no
    driver, no device), from CUDA's own initialisation error where there is one."""
    try:
        import torch
    except ImportError:
        return False, "torch does not import"
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU-only build"
    try:
        torch.cuda.init()
    except Exception as exc:  # noqa: BLE001 - CUDA's reason, whatever its type
        return False, f"torch {torch.__version__} (CUDA {torch.version.cuda}) found no usable GPU: {str(exc)[:160]}"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
    return True, ""


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _normalised(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


@contextlib.contextmanager
def full_float32():
    """Float32 products and convolutions without TF32 (what the scorers and the CPU compute)."""
    import torch

    from mfrkit.bench.score.streaming_torch import ieee_float32_matmul

    conv = getattr(torch.backends.cudnn, "conv", None)
    with ieee_float32_matmul(torch):
        if conv is not None and hasattr(conv, "fp32_precision"):
            before, conv.fp32_precision = conv.fp32_precision, "ieee"
            try:
                yield
            finally:
                conv.fp32_precision = before
            return
        before, torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.allow_tf32, False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = before


def _rel_diff(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(max |got - want| / scale, scale): scale = the largest embedding norm, at least 1."""
    scale = max(1.0, float(np.max(np.linalg.norm(want.astype(np.float64), axis=1))))
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale, scale


# --- env ---------------------------------------------------------------------------------------------


def check_env(device: str, sizes: Sizes, tmp: Path) -> list[Row]:
    import onnxruntime as ort
    import torch

    rows = [Row("env", "python, numpy", f"{platform.python_version()}, numpy {np.__version__}"),
            Row("env", "torch", f"{torch.__version__} (CUDA build {torch.version.cuda or 'none'})"),
            Row("env", "onnxruntime providers", f"{ort.__version__}: {', '.join(ort.get_available_providers())}")]
    if device == "cuda":
        from mfrkit.models.precision import native_bf16

        dev = torch.device("cuda", 0)
        cap = ".".join(map(str, torch.cuda.get_device_capability(dev)))
        mem = torch.cuda.get_device_properties(dev).total_memory / 2**30
        rows.append(Row("env", "device", f"{torch.cuda.get_device_name(dev)}, compute {cap}, {mem:.0f} GiB, "
                        f"native bf16: {native_bf16(dev)}"))
    triton = "not installed (all-pairs tiles reduced by torch operations)"
    if module_available("triton"):
        import importlib.metadata as md

        try:
            triton = f"triton {md.version('triton')} (the all-pairs kernel)"
        except md.PackageNotFoundError:
            triton = "triton (version unknown)"
    rows.append(Row("env", "triton", triton))
    missing = [m for m in OPTIONAL_MODULES if not module_available(m)]
    rows.append(Row("env", "optional modules missing here", ", ".join(missing) or "none"))
    return rows


# --- onnx --------------------------------------------------------------------------------------------


def export_onnx(family: str, options: dict, path: Path) -> tuple[Path, str]:
    """``family`` (untrained) as an ONNX file with mfrkit's metadata; (path, how).

    mfrkit's exporter (``torch.export``) needs onnxscript; where it is missing (a bare GPU
    machine) torch's TorchScript exporter writes the same graph contract and metadata,
    checked here against the torch module on onnxruntime's CPU provider.
    """
    if module_available("onnxscript"):
        from mfrkit.models.export import export_family

        result = export_family(family, path, options=options)[0]
        return result.path, f"mfrkit export, max |ort - torch| {max(result.max_abs_diff.values()):.1e} of the norm"
    import io

    import onnx
    import onnxruntime as ort
    import torch

    from mfrkit.models.families import create_family

    torch.manual_seed(0)
    model = create_family(family, n_classes=2, **options)
    module = next(iter(model.export_modules().values())).eval()
    h, w = model.preprocessing.input_size
    x = torch.randn(8, 3, h, w, generator=torch.Generator().manual_seed(3))
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, not gone
        want = module(x).numpy()
        torch.onnx.export(module, (x[:2],), buf, dynamo=False, input_names=["input"], output_names=["embedding"],
                          dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=17)
    proto = onnx.load_from_string(buf.getvalue())
    meta = {**model.preprocessing.to_metadata(), "mfrkit.embedding_dim": str(want.shape[1]), "mfrkit.family": family,
            "mfrkit.weights": "untrained"}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    diff, _ = _rel_diff(got, want)
    if not diff <= 1e-4:
        raise CheckFailed(f"the TorchScript export of {family} differs from torch by {diff:.1e} of the norm")
    return path, f"TorchScript exporter (no onnxscript here), max |ort - torch| {diff:.1e} of the norm"


def check_onnx(device: str, sizes: Sizes, tmp: Path) -> list[Row]:
    import onnxruntime as ort

    from mfrkit.onnx_model import CudaOptions, OnnxModel

    names = ("OnnxModel.run on cuda (I/O binding, padded batches)", "cuda vs cpu provider embeddings, TF32 off",
             "cuda vs cpu provider embeddings, TF32 on")
    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return [Row("onnx", name, NO_CUDA_ORT, SKIP) for name in names]
    family = sizes.embed_family
    t0 = time.perf_counter()
    path, how = export_onnx(family, sizes.family_options.get(family, {}), tmp / "onnx" / f"{family}.onnx")
    rows = [Row("onnx", f"export {family} to ONNX", f"{time.perf_counter() - t0:.1f} s, {how}")]
    cpu = OnnxModel(path, provider="cpu")
    h, w = cpu.spec.input_size
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((sizes.embed_batch, 3, h, w), dtype=np.float32) for _ in range(sizes.onnx_batches)]
    ref = cpu.run(batches[0][:8])
    for tf32, name in ((False, names[1]), (True, names[2])):
        model = OnnxModel(path, provider=device, cuda=CudaOptions(tf32=tf32))
        if model.provider != device:
            raise CheckFailed(f"asked for {device}, onnxruntime runs on {model.provider}")
        model.pad_batches(sizes.embed_batch)
        if not tf32:
            rows.append(_onnx_speed(model, batches, names[0] if device == "cuda" else "OnnxModel.run on cpu"))
        diff, scale = _rel_diff(model.run(batches[0][:8]), ref)
        limit = 2e-2 if tf32 else 1e-3  # TF32: about 1e-3 per product, reported with room
        rows.append(Row("onnx", name if device == "cuda" else f"cpu vs cpu provider, tf32={tf32} (ignored)",
                        f"max |diff| {diff:.1e} of the norm (scale {scale:.2g}; limit {limit:g})",
                        OK if diff <= limit else FAIL))
    return rows


def _onnx_speed(model, batches, name: str) -> Row:
    for b in batches[:2]:  # warm-up: CUDA kernels, cuDNN, the bound buffers
        model.run(b)
        model.session.run([model.output_name], {model.input_name: b})
    t0 = time.perf_counter()
    for b in batches:
        model.run(b)
    bound = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b in batches:
        model.session.run([model.output_name], {model.input_name: b})
    bare = time.perf_counter() - t0
    n = sum(len(b) for b in batches)
    return Row("onnx", f"{name}, batch {len(batches[0])}",
               f"{n / bound:,.0f} img/s; bare session.run loop {n / bare:,.0f} img/s ({bare / bound:.2f}x)")


# --- embed (torch) -----------------------------------------------------------------------------------


def check_embed(device: str, sizes: Sizes, tmp: Path) -> list[Row]:
    """Embedding images/s of every family's embedding graph (what its ONNX file holds) as a
    torch module: what a GPU without onnxruntime-gpu can measure."""
    from mfrkit.models import family_names

    return [_embed_family(family, device, sizes) for family in family_names()]


def _embed_family(family: str, device: str, sizes: Sizes) -> Row:
    import torch

    from mfrkit.models.families import create_family
    from mfrkit.models.precision import device_precision

    torch.manual_seed(0)
    model = create_family(family, n_classes=2, **sizes.family_options.get(family, {}))
    part, module = next(iter(model.export_modules().items()))  # what export writes to the (first) ONNX file
    module.eval()
    h, w = model.preprocessing.input_size
    dev = torch.device(device)
    x = torch.randn(sizes.embed_batch, 3, h, w, generator=torch.Generator().manual_seed(1))
    cpu_module = copy.deepcopy(module)
    module = module.to(dev)
    xd = x.to(dev)
    outs, rates = {}, {}
    bf16 = device_precision("bf16", dev)  # bf16 autocast (an error on a GPU without native bf16)
    for name, ctx in (("fp32", full_float32), ("bf16", lambda: bf16.autocast(dev.type))):
        with torch.inference_mode(), ctx():
            for _ in range(2):  # warm-up: kernels, cuDNN's choices
                outs[name] = module(xd)
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(sizes.embed_batches):
                module(xd)
            _sync(device)
            rates[name] = sizes.embed_batch * sizes.embed_batches / (time.perf_counter() - t0)
    with torch.inference_mode():
        want = cpu_module(x[:8]).numpy()
    diff, _ = _rel_diff(outs["fp32"][:8].float().cpu().numpy(), want)
    a, b = (torch.nn.functional.normalize(outs[k].float(), dim=1) for k in ("fp32", "bf16"))
    cos = float((a * b).sum(1).min())
    # untrained deep networks in bf16 drift more than trained ones; garbage (a wrong
    # layout or dtype) gives cosines near 0
    ok = diff <= 1e-3 and cos >= 0.98
    label = f"{family}{f' ({part})' if part else ''} torch module on {device}, batch {sizes.embed_batch}"
    return Row("embed", label, f"fp32 (no TF32) {rates['fp32']:,.0f} img/s, bf16 autocast {rates['bf16']:,.0f} img/s; "
               f"fp32 vs CPU max |diff| {diff:.1e} of the norm (limit 1e-3), bf16 vs fp32 lowest cosine {cos:.4f} "
               "(limit 0.98)", OK if ok else FAIL)


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
                f"{seconds:.2f} s (gallery upload included), {sizes.topk_probes * sizes.topk_gallery / seconds:.3g} scores/s")]
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


def _exactness_row(device: str, sizes: Sizes) -> Row:
    from mfrkit.bench import metrics as M
    from mfrkit.bench.score.streaming import ScanOptions, View, score_all_pairs

    targets = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    ne = sizes.all_pairs_exact_side
    ref, probe = _exact_grid_sides(0, ne)
    _, resolved, scan = score_all_pairs(ref, probe, {"overall": View([0])}, far_targets=targets,
                                        options=ScanOptions(device=device, backend="torch", tile_rows=ne // 3,
                                                            tile_cols=ne // 3, collect_all=0))
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
    return Row("all-pairs", f"exact on {scan.device} ({scan.reducer}): {ne} x {ne} vs materialised metrics (both rule "
               "sets, EER)",
               "identical" if same else "DIFFERENT", OK if same and scan.device == device else FAIL)


def check_all_pairs(device: str, sizes: Sizes, tmp: Path) -> list[Row]:
    from mfrkit.bench.score.streaming import ScanOptions, Side, View, score_all_pairs

    targets = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    rows = [_exactness_row(device, sizes)]
    n, d, tile = sizes.all_pairs_side, sizes.all_pairs_dim, sizes.all_pairs_tile
    rng = np.random.default_rng(2)
    ids = np.arange(n) // 4
    base = _normalised(rng, n // 4 + 1, d)

    def side(salt):
        v = base[ids] + _normalised(np.random.default_rng([2, salt]), n, d)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return Side(v.astype(np.float32), ids, ids * 2 + salt)

    R, P = side(0), side(1)
    rows.append(_reducers_row(device, R, P, tile))  # also compiles the kernel for these tiles
    bare = _bare_matmul_seconds(R.vectors, P.vectors, tile, device)
    t0 = time.perf_counter()
    binned, resolved, scan = score_all_pairs(R, P, {"overall": View([0])}, far_targets=targets,
                                             options=ScanOptions(device=device, backend="torch", tile_rows=tile,
                                                                 tile_cols=tile))
    seconds = time.perf_counter() - t0
    cmp = n * n
    rows.append(Row("all-pairs", f"bare float32 matrix product, {n:,} x {n:,} x {d} in {tile} tiles on {device}",
                    f"{bare:.2f} s, {cmp / bare:.3g} comparisons/s, {2 * cmp * d / bare / 1e12:.1f} TFLOP/s"))
    tar = resolved["overall"]["tar_at_far"].tar
    ratio = seconds / bare
    goal = sizes.all_pairs_goal
    right = scan.device == device and np.isfinite(tar).all()
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in scan.seconds.items() if k != "total")
    status = OK if goal is None or ratio <= goal else MISSED
    rows.append(Row("all-pairs", f"all-pairs exact scoring, {cmp:.3g} comparisons on {scan.device} ({scan.reducer})",
                    f"{seconds:.2f} s, {cmp / seconds:.3g} comparisons/s, {ratio:.2f}x bare"
                    f"{'' if goal is None else f' (goal <= {goal}x)'}; {scan.passes} pass(es), pilot "
                    f"{scan.pilot_rows:,} rows ({stages}); TAR@1e-6 {tar[-1]:.4f}", status if right else FAIL))
    return rows


def _reducers_row(device: str, R, P, tile: int) -> Row:
    """The Triton kernel against torch operations on the same scores (the same product,
    so the scans must be identical bin for bin), on a slice of the timed protocol."""
    from mfrkit.bench.score import streaming_torch as ST
    from mfrkit.bench.score.streaming import ScanOptions, Side, StreamingError, View, score_all_pairs

    n_r, n_p = min(len(R.vectors), 2 * tile), min(len(P.vectors), 4 * tile)
    name = f"Triton kernel vs torch operations, {n_r:,} x {n_p:,}"
    if device != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":  # interpreted on the CPU: the tests
        return Row("all-pairs", name, "skipped: the kernel is for CUDA devices (the CPU tests run it interpreted)", SKIP)
    part = [Side(s.vectors[:k], s.identity[:k], s.unit[:k]) for s, k in ((R, n_r), (P, n_p))]
    scans, before = {}, ST.REDUCER
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            for reducer in ("torch", "triton"):
                ST.REDUCER = reducer
                opt = ScanOptions(device=device, backend="torch", tile_rows=tile, tile_cols=tile, collect_all=0)
                scans[reducer] = score_all_pairs(*part, {"overall": View([0])}, far_targets=(1e-3, 1e-5), options=opt)[2]
    except StreamingError as exc:  # no Triton here
        return Row("all-pairs", name, f"skipped: {exc}", SKIP)
    finally:
        ST.REDUCER = before
    a, b = scans["torch"], scans["triton"]
    if b.reducer != "triton":  # right results, the slower way
        why = "; ".join(str(w.message) for w in said)[:300]
        return Row("all-pairs", name, f"the kernel failed here, torch operations took over: {why}", MISSED)
    a.concat(), b.concat()
    oa, ob = np.lexsort((a.values, a.value_cells)), np.lexsort((b.values, b.value_cells))
    same = (np.array_equal(a.hist, b.hist) and np.array_equal(a.values[oa], b.values[ob])
            and np.array_equal(a.value_cells[oa], b.value_cells[ob]) and np.array_equal(a.genuine, b.genuine))
    return Row("all-pairs", name, f"{'identical' if same else 'DIFFERENT'} histograms, kept and genuine scores "
               f"({b.passes} pass(es))", OK if same else FAIL)


def _bare_matmul_seconds(A: np.ndarray, B: np.ndarray, tile: int, device: str) -> float:
    """Seconds of the plain float32 products of every tile into one buffer (the bound of
    any exact method: every score is computed once), with torch on ``device``."""
    import torch

    dev = torch.device(device)
    with full_float32(), torch.inference_mode():
        Ad, Bd = torch.from_numpy(A).to(dev), torch.from_numpy(B).to(dev)
        out = torch.empty((tile, tile), device=dev)
        torch.mm(Ad[:tile], Bd[:tile].T, out=out[: min(tile, len(A)), : min(tile, len(B))])  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        for r in range(0, len(A), tile):
            for c in range(0, len(B), tile):
                a, b = Ad[r : r + tile], Bd[c : c + tile]
                torch.mm(a, b.T, out=out[: len(a), : len(b)])
        _sync(device)
        return time.perf_counter() - t0


# --- train ---------------------------------------------------------------------------------------------


def check_train(device: str, sizes: Sizes, tmp: Path) -> list[Row]:
    from mfrkit.models import family_names
    from mfrkit.models.speed import run_training_steps

    rows = []
    for family in family_names():
        name = f"{family} ({TRAIN_PRECISION}) on {device}, batch {sizes.train_batch}"
        try:
            t = run_training_steps(family, steps=sizes.train_steps, batch_size=sizes.train_batch, device=device,
                                   precision=TRAIN_PRECISION, options=sizes.family_options.get(family),
                                   n_classes=sizes.train_classes, warmup=sizes.train_warmup)
        except Exception as exc:  # a family that cannot train fails this row, not the script
            rows.append(Row("train", name, f"{type(exc).__name__}: {exc}"[:200], FAIL))
            traceback.print_exc(file=sys.stderr)
            continue
        peak = "" if t.peak_memory_bytes is None else f", peak {t.peak_memory_bytes / 2**30:.1f} GiB"
        ok = math.isfinite(t.last_loss) and t.precision == TRAIN_PRECISION and t.device.startswith(device)
        rows.append(Row("train", name, f"{t.steps_per_second:.2f} steps/s ({t.images_per_second:,.0f} img/s) over "
                        f"{t.steps} steps after {sizes.train_warmup} untimed{peak}; loss {t.last_loss:.3g}",
                        OK if ok else FAIL))
    return rows


# --- the table -----------------------------------------------------------------------------------------

CHECKS: dict[str, Callable[[str, Sizes, Path], list[Row]]] = {
    "env": check_env, "onnx": check_onnx, "embed": check_embed, "topk": check_topk, "all-pairs": check_all_pairs,
    "train": check_train,
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
    print(f"{'section':<{w1}}  {'check':<{w2}}  {'status':<7}  result")
    for r in rows:
        print(f"{r.section:<{w1}}  {r.check:<{w2}}  {r.status:<7}  {r.result}")


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
    cuda, why = (False, "") if args.cpu_smoke else cuda_status()
    device = choose_device(args.cpu_smoke, cuda)
    smoke = device == "cpu"
    sizes = SMOKE_SIZES if smoke else GPU_SIZES
    if smoke:
        import torch

        torch.set_num_threads(1)  # tiny models: one thread beats two contended cores
    if not args.cpu_smoke and not cuda:
        print(f"gpu_check: no GPU here ({why}); running the CPU smoke checks instead", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    rows = run_checks(device, sizes, sections)
    if not args.cpu_smoke and not cuda:
        rows.insert(0, no_gpu_row(why))
    rows.append(Row("all", "total wall time", f"{time.perf_counter() - t0:.1f} s"))
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return exit_code(rows)


def exit_code(rows: list[Row]) -> int:
    """1 when a check failed (a wrong result, an error), else 3 when the GPU run found no
    GPU (the CPU checks passed), else 2 when a speed goal was missed, else 0."""
    if any(r.status == FAIL for r in rows):
        return 1
    if any(r.status == NO_GPU for r in rows):
        return 3
    return 2 if any(r.status == MISSED for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
