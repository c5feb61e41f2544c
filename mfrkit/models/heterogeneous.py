"""Family ``heterogeneous``: a double-layer heterogeneous network for cross-scene
verification (reference domain, e.g. an unmasked ID photo, vs probe domain, e.g. a
masked live photo).

Two towers with the same architecture and *unshared* weights embed the two domains.
Training minimises

``L = BCE_pairs + lambda_tie * sum ||W_ref - W_probe||^2 [+ lambda_attr * BCE_attr
+ lambda_sparse * |U|_1]``

* ``BCE_pairs``: :func:`~mfrkit.models.losses.pair_bce` on every (reference, probe)
  pair in the batch, logit ``a * cos + b`` with learned ``a, b``; same identity = 1;
* the tie term keeps corresponding weights of the towers close; the probe tower starts
  as a copy of the reference tower, so it begins at zero and only grows where the
  domains need different weights;
* optional attribute-tied units: each tower has a linear multitask head ``U`` from the
  embedding to ``len(attributes)`` binary attributes (manifest columns), trained with
  BCE on known values, with an L1 penalty so each attribute ties to few units.

Export gives one ONNX graph per domain (``mfrkit.domain`` = ``reference`` | ``probe``,
both with the same ``mfrkit.pair_id``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import create_backbone
from ..model_input import ModelInput
from .families import FAMILIES, BackboneConfig, FamilyModel, square_input
from .losses import pair_bce, weight_difference

DOMAINS = ("reference", "probe")


@dataclass(frozen=True)
class HeterogeneousConfig(BackboneConfig):
    """Architecture and loss weights of :class:`HeterogeneousNet`.

    Attributes
    ----------
    backbone, width, embedding_dim, input_size
        See :class:`~mfrkit.models.families.BackboneConfig`; ``backbone`` is the
        architecture of each tower.
    lambda_tie : float
        Weight of the squared difference between corresponding tower weights.
    attributes : tuple of str
        Manifest columns with binary (0/1, True/False) attributes; empty disables the
        attribute-tied units.
    lambda_attr, lambda_sparse : float
        Weights of the attribute BCE and of the L1 penalty on the attribute units.
    pair_scale, pair_bias : float
        Initial ``a`` and ``b`` of the pair logit ``a * cos + b``.
    """

    lambda_tie: float = 1e-3
    attributes: tuple[str, ...] = ()
    lambda_attr: float = 1.0
    lambda_sparse: float = 1e-4
    pair_scale: float = 10.0
    pair_bias: float = -5.0



@FAMILIES.register("heterogeneous")
class HeterogeneousNet(FamilyModel):
    """Two unshared towers tied by a weight-difference penalty."""

    name = "heterogeneous"
    Config = HeterogeneousConfig
    batch_keys = frozenset({"image", "source", "label", "attributes", "source_attributes"})

    def __init__(self, config: HeterogeneousConfig, n_classes: int) -> None:
        super().__init__(config, n_classes)
        size = (config.input_size, config.input_size)
        self.reference = create_backbone(config.backbone, width=config.width, embedding_dim=config.embedding_dim, input_size=size)
        self.probe = copy.deepcopy(self.reference)
        self.pair_scale = nn.Parameter(torch.tensor(float(config.pair_scale)))
        self.pair_bias = nn.Parameter(torch.tensor(float(config.pair_bias)))
        n_attr = len(config.attributes)
        self.attr_reference = nn.Linear(config.embedding_dim, n_attr) if n_attr else None
        self.attr_probe = nn.Linear(config.embedding_dim, n_attr) if n_attr else None

    @classmethod
    def preprocessing_for(cls, config: HeterogeneousConfig) -> ModelInput:
        return square_input(config.input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of *probe-domain* images (use :meth:`embed` to pick the domain)."""
        return self.probe(x)

    def embed(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """Embeddings ``(N, D)`` of images from ``domain`` (``reference`` or ``probe``)."""
        return self.export_modules()[domain](x)

    def export_modules(self) -> dict[str, nn.Module]:
        return {"reference": self.reference, "probe": self.probe}

    def training_step(self, batch: Mapping[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        cfg = self.config
        labels = batch["label"]
        ref = self.reference(batch["source"])
        probe = self.probe(batch["image"])
        # Pairs of rows without an identity are unknown, so they are left out.
        known = labels >= 0
        same = labels[known][:, None] == labels[known][None, :]
        losses = {"pair": pair_bce(ref[known], probe[known], same, self.pair_scale, self.pair_bias)}
        losses["tie"] = weight_difference(self.reference.parameters(), self.probe.parameters())
        loss = losses["pair"] + cfg.lambda_tie * losses["tie"]
        if self.attr_reference is not None:
            losses["attr"] = 0.5 * (
                _masked_bce(self.attr_reference(ref), batch["source_attributes"])
                + _masked_bce(self.attr_probe(probe), batch["attributes"])
            )
            losses["sparse"] = self.attr_reference.weight.abs().sum() + self.attr_probe.weight.abs().sum()
            loss = loss + cfg.lambda_attr * losses["attr"] + cfg.lambda_sparse * losses["sparse"]
        losses["loss"] = loss
        return losses


def _masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE over the entries of ``targets`` (N, A) that are not NaN (unknown)."""
    known = ~torch.isnan(targets)
    if not bool(known.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[known].float(), targets[known].float())
