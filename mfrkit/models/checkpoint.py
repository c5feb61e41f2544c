"""Training checkpoints: written atomically, read without executing code.

A checkpoint is a ``torch.save`` dict of tensors and plain values only, loaded with
``torch.load(weights_only=True)``, which refuses anything else, so a checkpoint from
an untrusted source cannot run code.

Keys: ``format``, ``family``, ``config`` (the family config as a dict), ``n_classes``,
``classes``, ``model`` (state dict), ``optimizer``, ``scaler``, ``epoch`` (epochs
completed), ``batch_in_epoch`` (batches done in the current epoch), ``step``,
``total_steps``, ``train_config``, ``manifest_fingerprint``, ``teacher_dim``,
``mfrkit_version``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..atomic import atomic_write_bytes
from ..errors import MfrkitError
from ..userfiles import check_user_file
from .families import FamilyModel, build_family, make_config

FORMAT = "mfrkit-checkpoint-1"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus ``format`` and ``mfrkit_version``) atomically."""
    state = {**state, "format": FORMAT, "mfrkit_version": __version__}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain values only)."""
    path = Path(path)
    check_user_file(path, "checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise MfrkitError(f"cannot read checkpoint {path} (not an mfrkit checkpoint, or corrupt): {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise MfrkitError(f"{path} is not an mfrkit checkpoint ({FORMAT})")
    return state


def model_from_checkpoint(state: dict[str, Any]) -> FamilyModel:
    """Rebuild the family model a checkpoint holds and load its weights."""
    name = state["family"]
    model = build_family(name, make_config(name, **state["config"]), int(state["n_classes"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise MfrkitError(f"checkpoint weights do not fit family {name!r}: {exc}") from exc
    return model
