"""Frozen teachers for distillation: an ONNX model (run by onnxruntime) or a torch module.

A teacher embeds the *unmasked source* of each training image. It declares its own
:class:`~mfrkit.model_input.ModelInput` (an ONNX model through its
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
from ..model_input import ModelInput


class Teacher(Protocol):
    """What the training loop needs of a teacher."""

    preprocessing: ModelInput
    embedding_dim: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, D)`` (no gradient) of inputs ``(N, 3, H, W)``, on ``x``'s device."""
        ...


class OnnxTeacher:
    """An ONNX embedding model as a teacher, run by the benchmark's
    :class:`~mfrkit.onnx_model.OnnxModel` (CUDA when available, else CPU; the same
    checks of the model file, its inputs and outputs, and its ``mfrkit.*`` metadata).

    Parameters
    ----------
    path : path-like
        ONNX file with the ``mfrkit.*`` metadata (or a ``name.mfrkit.json`` sidecar), or
        any ``[N,3,H,W] -> [N,D]`` model when ``preprocessing`` is given.
    preprocessing : ModelInput, optional
        Overrides the metadata (needed for third-party models without it).
    """

    def __init__(self, path: str | os.PathLike, *, preprocessing: ModelInput | None = None) -> None:
        from ..onnx_model import OnnxModel

        self.path = Path(path)
        options = preprocessing.to_metadata() if preprocessing is not None else None
        try:
            self.model = OnnxModel(self.path, options=options)
        except MfrkitError as exc:
            raise MfrkitError(f"teacher: {exc}") from None
        self.preprocessing = preprocessing or self.model.spec
        dim = self.model.embedding_dim
        if dim is None:
            dim = self.model.run(np.zeros((1, 3, *self.preprocessing.input_size), np.float32)).shape[1]
        self.embedding_dim = int(dim)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.run(x.detach().float().cpu().numpy())
        return torch.from_numpy(out).to(x.device)


class TorchTeacher:
    """A frozen torch module as a teacher (kept in eval mode, never trained)."""

    def __init__(self, module: nn.Module, preprocessing: ModelInput) -> None:
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
