"""Reference model families for masked-face recognition, their losses, training and export.

Public API::

    from mfrkit.models import create_family, FAMILIES, train, export_family, write_onnx

Families (see ``mfrkit/models/cards/``): ``csn``, ``attention``, ``heterogeneous``,
``domain_adapt``, and the plain ``cosface`` baseline. Backbones: ``iresnet18/34/50/100``, ``mobilefacenet``.
"""

from ..model_input import ModelInput
from .backbones import BACKBONES, create_backbone
from .export import ExportError, ExportResult, read_metadata, write_onnx
from .families import (
    FAMILIES,
    FamilyModel,
    create_family,
    family_names,
    list_families,
    make_config,
)
from .heads import HEADS, CombinedMarginHead, create_head

# Importing the family modules registers them.
from . import attention, cosface, csn, dlib_resnet, domain_adapt, heterogeneous  # noqa: E402,F401  isort: skip

__all__ = [
    "BACKBONES",
    "CombinedMarginHead",
    "ExportError",
    "ExportResult",
    "FAMILIES",
    "FamilyModel",
    "HEADS",
    "ModelInput",
    "create_backbone",
    "create_family",
    "create_head",
    "family_names",
    "list_families",
    "make_config",
    "read_metadata",
    "write_onnx",
]
