"""``bench --model checkpoint.pt``: a training checkpoint exported to ONNX on the fly.

The export (:func:`mfrkit.models.export.export_family`, checked against torch) is cached
under ``$MFRKIT_HOME/cache/checkpoints/<sha256 of the checkpoint>/<name>/``, so a
checkpoint is exported once however many runs bench it, and a checkpoint rewritten by a
resumed training run (new bytes, new hash) is exported again. The folder is written
under a temporary name and renamed when the export is complete: an interrupted export
leaves nothing a later run would take for finished.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

#: Files read as training checkpoints by ``--model``.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def is_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``--model path`` names a training checkpoint file (by its suffix)."""
    p = Path(path)
    return p.suffix.lower() in CHECKPOINT_SUFFIXES and p.is_file()


def _model_name(path: Path) -> str:
    """``runs/csn/checkpoint.pt`` -> ``csn`` (the run folder names a generic file); else the stem."""
    return path.parent.name if path.stem in ("checkpoint", "model", "last", "best") and path.parent.name else path.stem


def exported_checkpoint(path: str | os.PathLike, *, cache_root: str | os.PathLike | None = None,
                        log: Callable[[str], None] | None = None) -> Path:  # fmt: skip
    """The folder holding the ONNX export of checkpoint ``path`` (one file, or the two
    halves of a heterogeneous model), exporting it first unless the cache has it.

    Returns
    -------
    Path
        A folder that ``--model`` reads as one model named after the checkpoint.
    """
    from ..userfiles import user_file_sha256
    from ..data.registry import mfrkit_home
    from .export import export_family

    path = Path(path)
    digest = user_file_sha256(path)
    name = _model_name(path.resolve())
    root = Path(cache_root) if cache_root is not None else mfrkit_home() / "cache" / "checkpoints"
    folder = root / digest[:16] / name
    if folder.is_dir() and any(folder.glob("*.onnx")):
        return folder
    tmp = folder.parent / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(parents=True)
    try:
        if log:
            log(f"exporting checkpoint {path} to ONNX (cached in {folder})")
        export_family(None, tmp / f"{name}.onnx", checkpoint=path)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder.is_dir() and any(folder.glob("*.onnx"))):  # not another run's finished export
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
