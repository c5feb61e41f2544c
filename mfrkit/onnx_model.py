"""ONNX embedding models: provider choice and a validated onnxruntime session.

The input contract (crop, colour, normalisation) a model declares is read by
:mod:`mfrkit.model_input`; this module loads the file, checks its inputs and outputs
against that contract and runs batches on the CPU or CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .data.manifest import file_sha256
from .errors import MfrkitError, ModelError
from .model_input import read_sidecar, resolve_model_input, sidecar_path

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

    Attributes
    ----------
    spec : ModelInput
    sha256 : str, of the ``.onnx`` file's bytes.
    provider : ``cuda`` or ``cpu``, the provider the session actually runs on.
    fixed_batch : int or None; a model exported with a static batch size is fed
        batches of exactly that size (the last one padded).
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
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        # Kept so an executor's workers can open the same model the same way.
        self.sidecar = None if sidecar is None else str(sidecar)
        self.options = dict(options or {})
        self.threads = int(threads)
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
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own pybind classes (InvalidProtobuf, Fail, ...)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path} is not a loadable ONNX model: {first}") from None
        used = self.session.get_providers()[0]
        if provider == "cuda" and used != _CUDA:
            raise ModelError(f"CUDA was requested but onnxruntime fell back to {used}: check the CUDA/cuDNN installation")
        self.provider = provider_name(used)
        self.sha256 = file_sha256(self.path)
        metadata = dict(self.session.get_modelmeta().custom_metadata_map or {})
        side = None
        if sidecar is not None:
            side = read_sidecar(sidecar)
        elif sidecar_path(self.path).is_file():
            side = read_sidecar(sidecar_path(self.path))
        try:
            self.spec = resolve_model_input(metadata, sidecar=side, options=options)
        except MfrkitError as exc:
            raise type(exc)(f"{self.path.name}: {exc}") from None
        self._check_io()
        self._binding = None

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

    def _run_plain(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def _run_bound(self, x: np.ndarray, device: str) -> np.ndarray:
        """One batch through I/O binding: the input is copied to ``device`` once and the
        output is allocated there, so onnxruntime does not stage them per call."""
        import onnxruntime as ort

        if self._binding is None:
            self._binding = self.session.io_binding()
        b = self._binding
        b.clear_binding_inputs()
        b.clear_binding_outputs()
        b.bind_ortvalue_input(self.input_name, ort.OrtValue.ortvalue_from_numpy(x, device, 0))
        b.bind_output(self.output_name, device)
        self.session.run_with_iobinding(b)
        return b.copy_outputs_to_cpu()[0]

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
        if self.fixed_batch is not None and n != self.fixed_batch:
            parts = []
            for i in range(0, n, self.fixed_batch):
                chunk = x[i : i + self.fixed_batch]
                pad = self.fixed_batch - len(chunk)
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
        d.update(reference=self.reference.describe(), probe=self.probe.describe())
        return d


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
