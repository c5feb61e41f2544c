"""ONNX embedding models: provider choice and a validated onnxruntime session.

The input contract (crop, colour, normalisation) a model declares is read by
:mod:`mfrkit.model_input`; this module loads the file, checks its inputs and outputs
against that contract and runs batches on the CPU or CUDA.

On CUDA (``onnxruntime-gpu``, see :class:`CudaOptions`):

* the CUDA and cuDNN libraries are made findable before the first session
  (:func:`prepare_cuda_libraries`: onnxruntime's provider library carries no path to
  them; torch, once imported, has loaded them, else ``onnxruntime.preload_dlls()`` does);
  a session that still comes up on the CPU is retried once after importing torch, then
  is an error (``--provider cuda``) or a warning (``auto``), never silent;
* each process uses its own GPU (``device_id`` from ``LOCAL_RANK`` under torchrun), the
  arena grows by what is asked (``kSameAsRequested``) up to a limit (half the device's
  memory by default, leaving the rest to torch's scoring), cuDNN picks convolution
  algorithms by heuristic (no search per new batch shape) and batches are padded to one
  fixed size (:meth:`OnnxModel.pad_batches`);
* float32 convolutions and products run in full float32 (``use_tf32=0``) unless TF32 is
  allowed: the choice is recorded in :meth:`OnnxModel.describe` (``metrics.json``) and in
  the embedding cache key (:meth:`OnnxModel.numerics`);
* batches go through I/O binding with device buffers made once per batch shape (the
  input copied into its buffer, the output read from its own), not allocated per call.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .userfiles import user_file_sha256
from .errors import MfrkitError, ModelError
from .model_input import read_provenance, read_sidecar, resolve_model_input, sidecar_path

PROVIDERS = ("auto", "cuda", "cpu")
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"

# --- providers -------------------------------------------------------------------------------------


def select_providers(requested: str, available: list[str]) -> list[str]:
    """onnxruntime execution providers for a request.

    ``auto`` takes CUDA when onnxruntime offers it, else the CPU; ``cuda`` without a
    CUDA provider is an error (never a silent fall-back); ``cpu`` is always the CPU.
    """
    if requested not in PROVIDERS:
        raise ModelError(f"unknown provider {requested!r}; choose one of: {', '.join(PROVIDERS)}")
    has_cuda = _CUDA in available
    if requested == "cuda" and not has_cuda:
        raise ModelError(
            "--provider cuda was requested but this onnxruntime has no CUDA provider (available: "
            + ", ".join(available)
            + "); install mfrkit[gpu] (onnxruntime-gpu) instead of mfrkit[cpu], or use --provider cpu"
        )
    if requested in ("auto", "cuda") and has_cuda:
        return [_CUDA, _CPU]
    return [_CPU]


def provider_name(ort_provider: str) -> str:
    """``CUDAExecutionProvider`` -> ``cuda``, ``CPUExecutionProvider`` -> ``cpu``."""
    return {"CUDAExecutionProvider": "cuda", "CPUExecutionProvider": "cpu"}.get(ort_provider, ort_provider)


CONV_SEARCHES = ("HEURISTIC", "DEFAULT", "EXHAUSTIVE")


@dataclass(frozen=True)
class CudaOptions:
    """How onnxruntime's CUDA provider runs a model (not used on the CPU).

    Attributes
    ----------
    device_id : int or None
        The GPU; None: ``LOCAL_RANK`` (one GPU per torchrun process), else 0.
    tf32 : bool
        Let float32 convolutions and matrix products run in TF32 (Ampere and later:
        faster, about 1e-3 relative error). Off by default: CPU and GPU embeddings of a
        model then agree to float32 rounding.
    memory_limit : int or None
        Bytes the session's memory arena may hold; None: half the device's memory when
        torch can tell it, else no limit.
    conv_search : ``HEURISTIC`` | ``DEFAULT`` | ``EXHAUSTIVE``
        cuDNN's choice of convolution algorithms; EXHAUSTIVE times every algorithm again
        for each new input shape.
    """

    device_id: int | None = None
    tf32: bool = False
    memory_limit: int | None = None
    conv_search: str = "HEURISTIC"

    def __post_init__(self) -> None:
        if self.conv_search not in CONV_SEARCHES:
            raise ModelError(f"unknown cuDNN search {self.conv_search!r}; choose one of: {', '.join(CONV_SEARCHES)}")
        if self.device_id is not None and self.device_id < 0:
            raise ModelError(f"a CUDA device id is >= 0, got {self.device_id}")
        if self.memory_limit is not None and self.memory_limit <= 0:
            raise ModelError(f"the GPU memory limit must be positive, got {self.memory_limit}")

    def resolved_device_id(self) -> int:
        """``device_id``, or this torchrun process's ``LOCAL_RANK`` (0 without torchrun)."""
        if self.device_id is not None:
            return int(self.device_id)
        try:
            return max(0, int(os.environ.get("LOCAL_RANK", "0")))
        except ValueError:
            raise ModelError(f"LOCAL_RANK={os.environ.get('LOCAL_RANK')!r} is not a device number") from None

    def provider_options(self, total_memory: int | None = None) -> dict[str, str]:
        """The ``CUDAExecutionProvider`` options (strings, as onnxruntime takes them).

        ``total_memory``: the device's memory in bytes (for the default limit).
        """
        opts = {
            "device_id": str(self.resolved_device_id()),
            "arena_extend_strategy": "kSameAsRequested",
            "cudnn_conv_algo_search": self.conv_search,
            "use_tf32": "1" if self.tf32 else "0",
        }
        limit = self.memory_limit if self.memory_limit is not None else (total_memory // 2 if total_memory else None)
        if limit:
            opts["gpu_mem_limit"] = str(int(limit))
        return opts


@functools.cache
def prepare_cuda_libraries() -> str:
    """Make the CUDA and cuDNN libraries loadable for onnxruntime's CUDA provider (once
    per process) and say how.

    onnxruntime-gpu's provider library has no path to cuBLAS/cuDNN: it finds them when
    torch was imported first (torch loads its own copies globally) or after
    ``onnxruntime.preload_dlls()``, which loads them from the ``nvidia-*`` packages.
    """
    if _torch_imported():
        return "loaded by torch (imported before the session)"
    import onnxruntime as ort

    if not hasattr(ort, "preload_dlls"):
        return _import_torch_libraries()
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):  # it prints its warnings
            ort.preload_dlls()
    except Exception as exc:  # noqa: BLE001 - any failure: torch may still have them
        return f"onnxruntime.preload_dlls() failed ({type(exc).__name__}: {exc}); " + _import_torch_libraries()
    note = " ".join(said.getvalue().split())
    return "onnxruntime.preload_dlls()" + (f" said: {note[:200]}" if note else "")


def _torch_imported() -> bool:
    return "torch" in sys.modules


def _import_torch_libraries() -> str:
    try:
        import torch  # noqa: F401 - its CUDA libraries are what the provider needs
    except ImportError:
        return "no torch to load them from"
    return "loaded by importing torch"


def _device_memory(device_id: int) -> int | None:
    """Total memory of CUDA device ``device_id`` in bytes, when a CUDA torch is there."""
    try:
        import torch

        if torch.cuda.is_available() and device_id < torch.cuda.device_count():
            return int(torch.cuda.get_device_properties(device_id).total_memory)
    except Exception:  # noqa: BLE001 - no limit is the fallback
        return None
    return None


def tiny_session_providers(*, use_cuda: bool, cuda: CudaOptions | None = None,
                           model_bytes: bytes | None = None) -> tuple[list[str], str]:
    """The providers a tiny real session gets (``mfrkit doctor``): (providers in order,
    how the CUDA libraries were found, "" without CUDA).

    ``get_available_providers()`` lists CUDA whenever onnxruntime-gpu is installed, even
    when its libraries cannot load; only a session tells.
    """
    import onnxruntime as ort

    how, providers = "", [_CPU]
    if use_cuda:
        how = prepare_cuda_libraries()
        providers = [(_CUDA, (cuda or CudaOptions()).provider_options()), _CPU]
    so = ort.SessionOptions()
    so.log_severity_level = 4  # the failure is the answer, not a log line
    session = ort.InferenceSession(model_bytes or _tiny_model_bytes(), sess_options=so, providers=providers)
    x = np.eye(1, 4, dtype=np.float32)
    if not np.array_equal(session.run(None, {"x": x})[0], x):  # W is the identity
        raise ModelError("a one-node session returned wrong numbers")
    return list(session.get_providers()), how


def _tiny_model_bytes() -> bytes:
    """A one-node ONNX model (y = x @ W, 4 x 4 float32) for probing providers."""
    from onnx import TensorProto, helper

    w = helper.make_tensor("W", TensorProto.FLOAT, [4, 4], [1.0 if i % 5 == 0 else 0.0 for i in range(16)])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=[w],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


class _BoundIO:
    """I/O binding with device buffers made once per batch shape: each call copies the
    batch into the input buffer, runs, and reads the output buffer back."""

    def __init__(self, session, input_name: str, output_name: str, device: str, device_id: int, out_dtype) -> None:
        self.session, self.input_name, self.output_name = session, input_name, output_name
        self.device, self.device_id, self.out_dtype = device, device_id, out_dtype
        self.shape: tuple | None = None

    def run(self, x: np.ndarray, dim: int) -> np.ndarray:
        import onnxruntime as ort

        if self.shape != (x.shape, x.dtype, dim):
            self.x = ort.OrtValue.ortvalue_from_shape_and_type(x.shape, x.dtype, self.device, self.device_id)
            self.y = ort.OrtValue.ortvalue_from_shape_and_type((len(x), dim), self.out_dtype, self.device, self.device_id)
            self.binding = self.session.io_binding()
            self.binding.bind_ortvalue_input(self.input_name, self.x)
            self.binding.bind_ortvalue_output(self.output_name, self.y)
            self.shape = (x.shape, x.dtype, dim)
        self.x.update_inplace(x)
        self.session.run_with_iobinding(self.binding)
        # a copy: on the CPU device numpy() is a view of the buffer the next batch overwrites
        return np.array(self.y.numpy(), copy=True)


# --- the session -----------------------------------------------------------------------------------


def _dim(d) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


class OnnxModel:
    """A validated onnxruntime session for one embedding model.

    Parameters
    ----------
    path : path-like
        The ``.onnx`` file.
    provider : ``auto`` | ``cuda`` | ``cpu``
    sidecar : path-like, optional
        ModelInput keys for a model without metadata; default: ``name.mfrkit.json``
        beside the model when it exists.
    options : mapping, optional
        ModelInput keys given on the command line; they win over everything.
    threads : int
        onnxruntime intra-op threads (0: onnxruntime's default, all cores).
    spin : bool
        Let onnxruntime's threads busy-wait between operators (its default). Off by
        default: it competes with the pipeline's workers for the cores.
    cuda : CudaOptions, optional
        How the CUDA provider runs (device, TF32, memory, cuDNN search); default
        :class:`CudaOptions()`.

    Attributes
    ----------
    spec : ModelInput
    sha256 : str, of the ``.onnx`` file's bytes.
    provider : ``cuda`` or ``cpu``, the provider the session actually runs on.
    fixed_batch : int or None; a model exported with a static batch size is fed
        batches of exactly that size (the last one padded).
    cuda_libraries : str or None; how the CUDA libraries were found (CUDA sessions).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        provider: str = "auto",
        sidecar: str | os.PathLike | None = None,
        options: Mapping[str, Any] | None = None,
        threads: int = 0,
        spin: bool = False,
        cuda: CudaOptions | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        # Kept so an executor's workers can open the same model the same way.
        self.sidecar = None if sidecar is None else str(sidecar)
        self.options = dict(options or {})
        self.threads = int(threads)
        self.cuda_options = cuda or CudaOptions()
        self.cuda_libraries: str | None = None
        self.pad_to: int | None = None
        if not self.path.is_file():
            raise ModelError(f"no model file at {self.path}")
        providers = select_providers(provider, ort.get_available_providers())
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.log_severity_level = 3
        if not spin:
            # onnxruntime's CPU threads busy-wait between operators by default; next to the
            # pipeline's worker processes that spinning takes the cores the workers need.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = self._open(ort, so, providers)
        used = self.session.get_providers()[0]
        if _CUDA in providers and used != _CUDA:
            # The provider is installed but did not load: torch's copies of the CUDA
            # libraries are the last place to find them.
            if not _torch_imported() and _import_torch_libraries() == "loaded by importing torch":
                self.cuda_libraries = f"{self.cuda_libraries}; then loaded by importing torch"
                self.session = self._open(ort, so, providers)
                used = self.session.get_providers()[0]
        if provider == "cuda" and used != _CUDA:
            raise ModelError(f"CUDA was requested but onnxruntime fell back to {used} ({self.cuda_libraries}): check "
                             "the driver (>= 580 for CUDA 13), the CUDA 13 / cuDNN 9 libraries (a CUDA torch, or "
                             "pip install 'onnxruntime-gpu[cuda,cudnn]'), and `mfrkit doctor`")
        if _CUDA in providers and used != _CUDA:
            warnings.warn(f"{self.path.name}: onnxruntime lists the CUDA provider but could not load it "
                          f"({self.cuda_libraries}); embedding on the CPU. `mfrkit doctor` says why.",
                          RuntimeWarning, stacklevel=2)
        self.provider = provider_name(used)
        self.sha256 = user_file_sha256(self.path)
        metadata = dict(self.session.get_modelmeta().custom_metadata_map or {})
        side = None
        if sidecar is not None:
            side = read_sidecar(sidecar)
        elif sidecar_path(self.path).is_file():
            side = read_sidecar(sidecar_path(self.path))
        try:
            self.spec = resolve_model_input(metadata, sidecar=side, options=options)
            # trained, untrained or unknown (a foreign model without mfrkit's keys): never guessed
            self.provenance = read_provenance(metadata, side)
        except MfrkitError as exc:
            raise type(exc)(f"{self.path.name}: {exc}") from None
        self._check_io()
        self._bound: _BoundIO | None = None

    def _open(self, ort, so, providers: list[str]):
        """The onnxruntime session (CUDA with this model's provider options first)."""
        listed: list = list(providers)
        if _CUDA in providers:
            self.cuda_libraries = self.cuda_libraries or prepare_cuda_libraries()
            device_id = self.cuda_options.resolved_device_id()
            listed[providers.index(_CUDA)] = (_CUDA, self.cuda_options.provider_options(_device_memory(device_id)))
        try:
            return ort.InferenceSession(str(self.path), sess_options=so, providers=listed)
        except Exception as exc:  # onnxruntime raises its own pybind classes (InvalidProtobuf, Fail, ...)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path} is not a loadable ONNX model: {first}") from None

    @property
    def name(self) -> str:
        return self.path.stem

    def _check_io(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelError(f"{self.name}: expected one input [N, 3, H, W], the model has {len(inputs)}")
        if not outputs:
            raise ModelError(f"{self.name}: the model has no output")
        inp, out = inputs[0], outputs[0]
        self.input_name, self.output_name = inp.name, out.name
        self.output_dtype = np.float16 if out.type == "tensor(float16)" else np.float32
        if inp.type not in ("tensor(float)", "tensor(float16)"):
            raise ModelError(f"{self.name}: input {inp.name!r} is {inp.type}; expected float32 (or float16)")
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        shape = list(inp.shape)
        if len(shape) != 4:
            raise ModelError(f"{self.name}: input {inp.name!r} has rank {len(shape)} {shape}; expected [N, 3, H, W]")
        c, h, w = (_dim(d) for d in shape[1:])
        if c is not None and c != 3:
            raise ModelError(f"{self.name}: input has {c} channels; expected 3 (NCHW layout)")
        want_h, want_w = self.spec.input_size
        if (h is not None and h != want_h) or (w is not None and w != want_w):
            raise ModelError(
                f"{self.name}: input is {shape[2]}x{shape[3]} but the declared input_size is {want_h}x{want_w}"
            )
        self.fixed_batch = _dim(shape[0])
        if out.shape is not None and len(out.shape) != 2:
            raise ModelError(f"{self.name}: output {out.name!r} has shape {out.shape}; expected [N, D]")
        d = _dim(out.shape[1]) if out.shape is not None else None
        if d is not None and self.spec.embedding_dim is not None and d != self.spec.embedding_dim:
            raise ModelError(f"{self.name}: output dimension {d} differs from the declared embedding_dim {self.spec.embedding_dim}")
        self.embedding_dim = d or self.spec.embedding_dim

    # --- running ------------------------------------------------------------------------------------

    def pad_batches(self, batch_size: int | None) -> None:
        """On CUDA, feed every batch as ``batch_size`` rows (the last one padded by
        repeating its last image): one input shape, so cuDNN and the bound buffers are
        set up once. No effect on the CPU or on a model with a static batch size."""
        if batch_size is not None and batch_size < 1:
            raise ModelError(f"batch size must be >= 1, got {batch_size}")
        self.pad_to = batch_size

    def _run_plain(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def _run_bound(self, x: np.ndarray, device: str) -> np.ndarray:
        """One batch through I/O binding on ``device`` (``cuda``; ``cpu`` in tests), into
        buffers made once per batch shape. The output's width is learnt from a plain run
        when the graph does not declare it."""
        if self.embedding_dim is None:
            return self._run_plain(x)
        if self._bound is None or self._bound.device != device:
            device_id = self.cuda_options.resolved_device_id() if device == "cuda" else 0
            self._bound = _BoundIO(self.session, self.input_name, self.output_name, device, device_id, self.output_dtype)
        return self._bound.run(x, self.embedding_dim)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw embeddings of a preprocessed batch.

        Parameters
        ----------
        batch : ndarray of shape (N, 3, H, W), float32

        Returns
        -------
        ndarray of shape (N, D), float32, not normalised (may hold NaN if the model does).
        """
        x = np.ascontiguousarray(batch, dtype=self.input_dtype)
        n = len(x)
        if x.ndim != 4 or x.shape[1:] != (3, *self.spec.input_size):
            raise ModelError(f"{self.name}: batch has shape {x.shape}; expected (N, 3, {self.spec.input_size[0]}, {self.spec.input_size[1]})")
        if n == 0:
            return np.zeros((0, self.embedding_dim or 0), np.float32)
        size = self.fixed_batch or (self.pad_to if self.provider == "cuda" else None)
        if size is not None and n != size:
            parts = []
            for i in range(0, n, size):
                chunk = x[i : i + size]
                pad = size - len(chunk)
                if pad:
                    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
                parts.append(self._run_once(chunk)[: len(chunk) - pad])
            return np.concatenate(parts)
        return self._run_once(x)

    def _run_once(self, x: np.ndarray) -> np.ndarray:
        try:
            y = self._run_bound(x, "cuda") if self.provider == "cuda" else self._run_plain(x)
        except MfrkitError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.name} failed on a batch of shape {x.shape}: {first}") from None
        y = np.asarray(y)
        if y.ndim != 2 or y.shape[0] != len(x):
            raise ModelError(f"{self.name}: output has shape {y.shape} for a batch of {len(x)}; expected ({len(x)}, D)")
        if self.embedding_dim is not None and y.shape[1] != self.embedding_dim:
            raise ModelError(f"{self.name}: output dimension {y.shape[1]} differs from the declared {self.embedding_dim}")
        self.embedding_dim = y.shape[1]
        return y.astype(np.float32, copy=False)

    def numerics(self) -> dict:
        """What besides the model and its inputs changes the embeddings' last bits: the
        provider, and on CUDA whether TF32 was allowed (part of the cache key)."""
        if self.provider != "cuda":
            return {"provider": self.provider}
        return {"provider": "cuda", "tf32": bool(self.cuda_options.tf32)}

    def describe(self) -> dict:
        """What a report records about this model."""
        return {
            "name": self.name,
            "path": str(self.path),
            "sha256": self.sha256,
            "provider": self.provider,
            "embedding_dim": self.embedding_dim,
            "fixed_batch": self.fixed_batch,
            "spec": self.spec.as_dict(),
            "numerics": self.numerics(),
            **({"cuda": {**asdict(self.cuda_options), "device_id": self.cuda_options.resolved_device_id(),
                         "libraries": self.cuda_libraries, "padded_batch": self.pad_to}}
               if self.provider == "cuda" else {}),
            "provenance": self.provenance.as_dict(),
        }


# --- models and heterogeneous pairs ----------------------------------------------------------------


@dataclass
class ModelSet:
    """What one leaderboard row benchmarks: one model, or a heterogeneous pair.

    ``reference`` embeds reference images (pairs' left side, the 1:N gallery); ``probe``
    embeds probe images (pairs' right side, 1:N probes). They are the same object for
    an ordinary model.
    """

    reference: OnnxModel
    probe: OnnxModel
    name: str

    @property
    def heterogeneous(self) -> bool:
        return self.reference is not self.probe

    @property
    def sha256(self) -> str:
        if not self.heterogeneous:
            return self.reference.sha256
        import hashlib

        return hashlib.sha256(f"{self.reference.sha256}:{self.probe.sha256}".encode()).hexdigest()

    @property
    def provider(self) -> str:
        return self.reference.provider

    def describe(self) -> dict:
        """The model's description; a heterogeneous pair lists its two halves under
        ``reference`` and ``probe``."""
        d = {"name": self.name, "sha256": self.sha256, "provider": self.provider, "heterogeneous": self.heterogeneous}
        if not self.heterogeneous:
            return {**self.reference.describe(), **d}
        d.update(reference=self.reference.describe(), probe=self.probe.describe(), provenance=self.provenance_status)
        return d

    @property
    def provenance_status(self) -> dict:
        """``{"status": trained | untrained | unknown}`` of the set: untrained when a half is,
        else unknown when a half is, else trained."""
        labels = {self.reference.provenance.label, self.probe.provenance.label}
        status = "untrained" if "untrained" in labels else "unknown" if "unknown" in labels else "trained"
        return self.reference.provenance.as_dict() if not self.heterogeneous else {"status": status}


def _pair(reference: OnnxModel, probe: OnnxModel, name: str) -> ModelSet:
    for model, want in ((reference, "reference"), (probe, "probe")):
        if model.spec.domain not in (None, want):
            raise ModelError(f"{model.path.name} declares mfrkit.domain={model.spec.domain} but is used as the {want} model")
    if reference.embedding_dim and probe.embedding_dim and reference.embedding_dim != probe.embedding_dim:
        raise ModelError(
            f"heterogeneous models embed in different dimensions: {reference.embedding_dim} vs {probe.embedding_dim}"
        )
    return ModelSet(reference=reference, probe=probe, name=name)


def load_models(
    paths: list[str | os.PathLike],
    *,
    probe_model: str | os.PathLike | None = None,
    **model_options,
) -> list[ModelSet]:
    """Resolve ``--model`` arguments into model sets.

    Each path is a ``.onnx`` file (one model) or a folder: every ``*.onnx`` directly in
    it is a model, and a folder holding exactly one ``mfrkit.domain=reference`` and one
    ``mfrkit.domain=probe`` model is one heterogeneous model (named after the folder);
    sub-folders are read the same way. ``probe_model`` pairs a single ``--model`` (the
    reference side) with a separate probe model. ``model_options`` go to :class:`OnnxModel`.
    """
    if not paths:
        raise ModelError("no model given: pass --model model.onnx (or a folder of models)")
    if probe_model is not None:
        if len(paths) != 1 or Path(paths[0]).is_dir():
            raise ModelError("--probe-model pairs with exactly one --model file (the reference model)")
        ref = OnnxModel(paths[0], **model_options)
        probe = OnnxModel(probe_model, **model_options)
        return [_pair(ref, probe, f"{ref.name}+{probe.name}")]
    sets: list[ModelSet] = []
    for p in map(Path, paths):
        if p.is_dir():
            sets.extend(_load_folder(p, model_options))
        elif p.is_file():
            m = OnnxModel(p, **model_options)
            if m.spec.domain is not None:
                raise ModelError(
                    f"{p.name} is the {m.spec.domain} half of a heterogeneous model: pass its folder, or "
                    "--model reference.onnx --probe-model probe.onnx"
                )
            sets.append(ModelSet(m, m, m.name))
        else:
            raise ModelError(f"no model file or folder at {p}")
    return sets


def _load_folder(folder: Path, model_options: dict) -> list[ModelSet]:
    files = sorted(folder.glob("*.onnx"))
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir())
    models = [OnnxModel(f, **model_options) for f in files]
    tagged = [m for m in models if m.spec.domain is not None]
    sets = [ModelSet(m, m, m.name) for m in models if m.spec.domain is None]
    if tagged:
        refs = [m for m in tagged if m.spec.domain == "reference"]
        probes = [m for m in tagged if m.spec.domain == "probe"]
        if len(refs) != 1 or len(probes) != 1:
            raise ModelError(
                f"{folder} holds {len(refs)} reference and {len(probes)} probe models; a heterogeneous model "
                "folder holds exactly one of each"
            )
        sets.append(_pair(refs[0], probes[0], folder.name))
    for d in subdirs:
        sets.extend(_load_folder(d, model_options))
    if not sets and not subdirs:
        raise ModelError(f"no .onnx models in {folder}")
    return sets
