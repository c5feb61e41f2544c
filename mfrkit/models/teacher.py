"""Frozen teachers for distillation: an ONNX model (run by onnxruntime) or a torch module.

A teacher embeds the *unmasked source* of each training image. It declares its own
:class:`~mfrkit.models.preprocessing.Preprocessing` (an ONNX model through its
``mfrkit.*`` metadata), and the dataset prepares a separate input for it, so a teacher
with another crop, size or normalisation than the student (dlib's 150x150 ResNet, say)
sees the images it was trained on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ..errors import MfrkitError
from .export import INPUT_NAME, read_metadata
from .preprocessing import Preprocessing


class Teacher(Protocol):
    """What the training loop needs of a teacher."""

    preprocessing: Preprocessing
    embedding_dim: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, D)`` (no gradient) of inputs ``(N, 3, H, W)``, on ``x``'s device."""
        ...


class OnnxTeacher:
    """An ONNX embedding model run by onnxruntime (CUDA when available, else CPU).

    Parameters
    ----------
    path : path-like
        ONNX file with the ``mfrkit.*`` metadata, or any ``[N,3,H,W] -> [N,D]`` model
        when ``preprocessing`` is given.
    preprocessing : Preprocessing, optional
        Overrides the metadata (needed for third-party models without it).
    """

    def __init__(self, path: str | os.PathLike, *, preprocessing: Preprocessing | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        meta = read_metadata(self.path)
        if preprocessing is None:
            if "mfrkit.input_size" not in meta:
                raise MfrkitError(
                    f"teacher {self.path} has no mfrkit.* preprocessing metadata; export it with mfrkit "
                    "or pass its preprocessing explicitly"
                )
            preprocessing = Preprocessing.from_metadata(meta)
        self.preprocessing = preprocessing
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(self.path), providers=providers)
        except Exception as exc:
            raise MfrkitError(f"onnxruntime cannot load teacher {self.path}: {exc}") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise MfrkitError(f"teacher {self.path} must have one input and an embedding output")
        self._input = inputs[0].name if inputs[0].name else INPUT_NAME
        self._output = outputs[0].name
        dim = outputs[0].shape[-1] if outputs[0].shape else None
        if not isinstance(dim, int):
            dim = int(meta.get("mfrkit.embedding_dim", 0)) or None
        if dim is None:
            h, w = preprocessing.input_size
            dim = self._run(np.zeros((1, 3, h, w), np.float32)).shape[1]
        self.embedding_dim = int(dim)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self._output], {self._input: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self._run(x.detach().float().cpu().numpy())
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)


class TorchTeacher:
    """A frozen torch module as a teacher (kept in eval mode, never trained)."""

    def __init__(self, module: nn.Module, preprocessing: Preprocessing) -> None:
        self.module = module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.preprocessing = preprocessing
        h, w = preprocessing.input_size
        device = next(iter(module.parameters()), torch.zeros(())).device
        with torch.no_grad():
            self.embedding_dim = int(self.module(torch.zeros(2, 3, h, w, device=device)).shape[1])

    def to(self, device: torch.device | str) -> "TorchTeacher":
        self.module.to(device)
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.module.eval()
        with torch.no_grad():
            return self.module(x).float()


def load_teacher(teacher: "str | os.PathLike | Teacher") -> Teacher:
    """A teacher from an ONNX path, or the given teacher object unchanged."""
    if isinstance(teacher, (str, os.PathLike)):
        return OnnxTeacher(teacher)
    if not all(hasattr(teacher, a) for a in ("preprocessing", "embedding_dim")) or not callable(teacher):
        raise MfrkitError("a teacher must be an ONNX path, an OnnxTeacher or a TorchTeacher")
    return teacher
