"""Reference model families for masked-face recognition, their losses, training and export.

Public API::

    from mfrkit.models import create_family, FAMILIES, train, export_family, write_onnx

Families (see ``mfrkit/models/cards/``): ``csn``, ``attention``, ``heterogeneous``,
``domain_adapt``, and the plain ``cosface`` baseline. Backbones: ``iresnet18/34/50/100``,
``mobilefacenet``. Recipes (one per seed paper): ``mfrkit/models/recipes/*.yaml``.

The names below are imported on first use (PEP 562): importing this package, or a
torch-free module of it such as :mod:`mfrkit.models.train_config`, does not import
torch, so the command line starts quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> submodule that defines it.
_EXPORTS = {
    "BACKBONES": "backbones",
    "create_backbone": "backbones",
    "ExportError": "export",
    "ExportResult": "export",
    "export_family": "export",
    "read_metadata": "export",
    "write_onnx": "export",
    "FAMILIES": "families",
    "FamilyModel": "families",
    "create_family": "families",
    "family_names": "families",
    "list_families": "families",
    "make_config": "families",
    "HEADS": "heads",
    "CombinedMarginHead": "heads",
    "create_head": "heads",
    "TrainConfig": "train_config",
    "TrainResult": "train",
    "train": "train",
    "run_training_steps": "speed",
    "load_recipe": "recipe",
    "list_recipes": "recipe",
}

__all__ = sorted([*_EXPORTS, "ModelInput"])


def __getattr__(name: str) -> Any:
    if name == "ModelInput":
        from ..model_input import ModelInput

        return ModelInput
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
