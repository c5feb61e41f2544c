"""ONNX export with the model contract's metadata and a numerical check.

Every exported model follows ``ARCHITECTURE.md``: one input ``input`` of shape
``[N, 3, H, W]`` float32 with a dynamic batch axis, one output ``embedding`` of shape
``[N, D]``, and ``mfrkit.*`` ``metadata_props`` saying how to prepare images. An export
is written only after ``onnx.checker`` accepts it and onnxruntime on CPU reproduces the
torch module's output at several batch sizes.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..atomic import atomic_write_bytes, check_new_file
from ..errors import MfrkitError
from ..userfiles import check_user_file
from ..model_input import ModelInput, Provenance
from ..rng import keyed_rng

INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
#: Largest accepted |onnxruntime - torch| on the check batches.
DEFAULT_ATOL = 1e-4


class ExportError(MfrkitError):
    """A model cannot be exported, or its ONNX graph does not reproduce torch."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`write_onnx` wrote and how closely it matches torch.

    Attributes
    ----------
    path : Path
    metadata : dict of str to str
        The ``metadata_props`` written.
    max_abs_diff : dict of int to float
        Per checked batch size: the largest |onnxruntime - torch|, divided by the largest
        embedding norm when that is above 1.
    embedding_dim : int
    """

    path: Path
    metadata: dict[str, str]
    max_abs_diff: dict[int, float] = field(default_factory=dict)
    embedding_dim: int = 0


@contextlib.contextmanager
def _quiet_exporter():
    # The exporter logs (and may print) progress and warnings about optional packages
    # (torchvision); library code must not print, so they are held back meanwhile.
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _check_inputs(preprocessing: ModelInput, batch: int, seed: int) -> np.ndarray:
    # Plausible inputs: random pixels through the model's own normalisation.
    rng = keyed_rng(seed, batch)
    h, w = preprocessing.input_size
    pixels = rng.integers(0, 256, size=(batch, h, w, 3), dtype=np.uint8)
    return preprocessing.to_input(pixels)


def _metadata(preprocessing: ModelInput, extra: Mapping[str, object] | None, dim: int) -> dict[str, str]:
    meta = preprocessing.to_metadata()
    meta["mfrkit.embedding_dim"] = str(dim)
    meta["mfrkit.version"] = __version__
    for key, value in (extra or {}).items():
        key = key if key.startswith("mfrkit.") else f"mfrkit.{key}"
        meta[key] = str(value)
    if "mfrkit.family" not in meta:
        raise ExportError("extra_metadata must name the model family ('family': ...)")
    return meta


def export_steps(check_batches: Sequence[int]) -> int:
    """How many times :func:`write_onnx` calls its ``step``: after the export, the
    checker, each batch compared and the write."""
    return 3 + len(check_batches)


def write_onnx(
    module: nn.Module,
    path: str | os.PathLike,
    preprocessing: ModelInput,
    extra_metadata: Mapping[str, object] | None = None,
    *,
    check_batches: Sequence[int] = (1, 8),
    atol: float = DEFAULT_ATOL,
    seed: int = 0,
    replace: bool = True,
    step: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export ``module`` to a single ONNX file with the contract's metadata.

    The module is deep-copied to CPU in eval mode (the caller's module is untouched),
    exported with torch's default (``torch.export``-based) exporter with a dynamic batch
    axis, checked with ``onnx.checker``, run in onnxruntime (CPU) on random inputs at
    every size in ``check_batches`` and compared with torch; the file is written
    atomically only when every comparison is within ``atol``.

    Parameters
    ----------
    module : nn.Module
        Maps ``(N, 3, H, W)`` float32 to ``(N, D)`` embeddings; ``(H, W)`` is
        ``preprocessing.input_size``.
    path : path-like
        Output ``.onnx`` file (weights embedded, no external data).
    preprocessing : ModelInput
        Written as ``mfrkit.input_size``, ``color``, ``mean``, ``std``, ``align``.
    extra_metadata : mapping
        More ``mfrkit.*`` keys; must include ``family``. Keys without the
        ``mfrkit.`` prefix get it; values are converted with ``str``. ``embedding_dim``
        and ``version`` are filled in.
    check_batches : sequence of int
        Batch sizes compared against torch.
    atol : float
        Largest accepted difference, absolute, or relative to the largest embedding norm
        when that is above 1.
    replace : bool
        False: an existing ``path`` is refused (``OutputFileExistsError``), never replaced.
    step : callable or None
        Called with what comes next after each of the :func:`export_steps` steps (the
        export, the checker, each batch compared, the write), for a progress bar.

    Returns
    -------
    ExportResult

    Raises
    ------
    ExportError
        When export, the checker, or the numerical comparison fails.
    """
    import onnx
    import onnxruntime as ort

    step = step or (lambda what: None)
    model = copy.deepcopy(module).cpu().float().eval()
    h, w = preprocessing.input_size
    # Batch 2, not 1: the exporter specialises a dimension whose example size is 1.
    example = torch.from_numpy(_check_inputs(preprocessing, 2, seed))
    with torch.no_grad():
        out = model(example)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        raise ExportError(f"the module must return an (N, D) tensor, got {getattr(out, 'shape', type(out))}")
    dim = int(out.shape[1])
    meta = _metadata(preprocessing, extra_metadata, dim)

    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                model,
                (example,),
                None,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many unrelated types
        raise ExportError(f"torch.onnx.export failed: {exc}") from exc
    step("checking the ONNX graph")
    proto = program.model_proto
    del proto.metadata_props[:]
    for key, value in sorted(meta.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"mfrkit {meta['mfrkit.family']} embedding model"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejected the exported graph: {exc}") from exc

    data = proto.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    diffs: dict[int, float] = {}
    for batch in check_batches:
        step(f"comparing onnxruntime with torch at batch {batch}")
        x = _check_inputs(preprocessing, int(batch), seed + 1)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        if got.shape != expected.shape:
            raise ExportError(f"onnxruntime output shape {got.shape} != torch {expected.shape} at batch {batch}")
        # Relative to the embeddings' norm (when above 1): a briefly trained network can put
        # out norms of 1e6, where float32 rounding alone exceeds any absolute limit, while
        # what a face-recognition model is used for (cosine scores) is unchanged.
        scale = max(1.0, float(np.max(np.linalg.norm(expected.astype(np.float64), axis=1))))
        diffs[int(batch)] = float(np.max(np.abs(got - expected))) / scale
        if not diffs[int(batch)] <= atol:
            raise ExportError(
                f"onnxruntime differs from torch by {diffs[int(batch)]:.3g} of the embedding norm at batch {batch} "
                f"(limit {atol:g}); nothing was written"
            )
    step("writing the file")
    atomic_write_bytes(path, data, replace=replace)
    step("done")
    return ExportResult(path=Path(path), metadata=meta, max_abs_diff=diffs, embedding_dim=dim)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, as a dict (weights are not loaded)."""
    import onnx

    path = Path(path)
    check_user_file(path, "onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise MfrkitError(f"cannot read ONNX model {path}: {exc}") from exc
    return {p.key: p.value for p in model.metadata_props}


def calibrate_batchnorm(module: nn.Module, preprocessing: ModelInput, *, batches: int = 4, batch_size: int = 8, seed: int = 0) -> nn.Module:
    """Set every BatchNorm's running statistics from random images, in place.

    An untrained network keeps BatchNorm's initial statistics (mean 0, variance 1), so
    in eval mode nothing normalises its activations and they grow layer by layer (to
    1e8 in an untrained IResNet), where float32 rounding alone exceeds any sensible
    tolerance. Calibrated statistics give the activation scale of a trained network;
    used for untrained exports (speed benchmarks), never on trained weights.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in norms]
    was_training = module.training
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
        module.train()
        with torch.no_grad():
            for i in range(batches):
                module(torch.from_numpy(_check_inputs(preprocessing, batch_size, seed + 100 + i)))
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        module.train(was_training)
    return module


def domain_paths(out: str | os.PathLike, domains: Sequence[str]) -> dict[str, Path]:
    """Where each exported graph goes: ``out`` itself for a single graph, else
    ``<stem>-<domain><suffix>`` beside it (``het.onnx`` -> ``het-reference.onnx``...)."""
    out = Path(out)
    if list(domains) == [""]:
        return {"": out}
    suffix = out.suffix or ".onnx"
    return {d: out.with_name(f"{out.stem}-{d}{suffix}") for d in domains}


def export_family(
    family: str | None,
    out: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    options: Mapping[str, object] | None = None,
    check_batches: Sequence[int] = (1, 8),
    atol: float = DEFAULT_ATOL,
    replace: bool = True,
) -> list[ExportResult]:
    """Export a family's embedding graph(s) with :func:`write_onnx`.

    Only the embedding path goes into the graph (no margin heads, teacher projection,
    mask classifier or attribute units). Families with several domains
    (``heterogeneous``) give one file per domain (see :func:`domain_paths`), each with
    ``mfrkit.domain`` and a shared ``mfrkit.pair_id``.

    Parameters
    ----------
    family : str or None
        Family name; may be None with a checkpoint (which names it).
    out : path
        The ``.onnx`` file to write.
    checkpoint : path, optional
        A training checkpoint; without one the weights are untrained (useful for
        benchmarking speed only; BatchNorm statistics come from
        :func:`calibrate_batchnorm`) and ``mfrkit.trained`` says ``false``
        (``mfrkit.weights`` ``untrained``). With one, the provenance keys say ``true``
        and give the checkpoint's sha256, recipe, training-data fingerprint and steps
        (see :mod:`mfrkit.model_input`).
    options : mapping
        Family config options when there is no checkpoint.
    replace : bool
        False (``mfrkit models export`` without ``--force``): an existing output file
        is refused before anything is exported.

    Returns
    -------
    list of ExportResult, one per graph.
    """
    import hashlib

    from ..userfiles import user_file_sha256
    from .checkpoint import load_checkpoint, model_from_checkpoint
    from .families import create_family

    if checkpoint is not None:
        if options:
            raise ExportError("options come from the checkpoint; do not pass both")
        state = load_checkpoint(checkpoint)
        if family is not None and family != state["family"]:
            raise ExportError(f"checkpoint {checkpoint} holds family {state['family']!r}, not {family!r}")
        model = model_from_checkpoint(state)
        weights = f"sha256:{user_file_sha256(checkpoint)}"
        provenance = Provenance.to_metadata(trained=True, weights=weights, recipe=state.get("recipe") or None,
                                            data_fingerprint=state.get("manifest_fingerprint"), steps=state.get("step"))
    else:
        if family is None:
            raise ExportError("name a family or give a checkpoint")
        model = create_family(family, **dict(options or {}))
        for module in model.export_modules().values():
            calibrate_batchnorm(module, model.preprocessing)
        weights = "untrained"
        provenance = Provenance.to_metadata(trained=False, weights=weights, steps=0)
    modules = model.export_modules()
    paths = domain_paths(out, list(modules))
    for p in paths.values():
        check_new_file(p, force=replace, what="ONNX file")
    pair_id = hashlib.sha256(f"{model.name}\n{weights}\n{sorted(modules)}".encode()).hexdigest()[:16]
    results = []
    for domain, module in modules.items():
        extra: dict[str, object] = {"family": model.name, **provenance}
        if domain:
            extra.update(domain=domain, pair_id=pair_id)
        results.append(
            write_onnx(module, paths[domain], model.preprocessing, extra, check_batches=check_batches, atol=atol,
                       replace=replace)
        )
    return results
