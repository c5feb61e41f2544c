"""Family ``domain_adapt``: masked face recognition by domain adaptation.

backbone feature maps -> self-attention refinement -> embedding head -> ArcFace identity
head; a DANN mask classifier reads the embedding through a gradient-reversal layer
(lambda ``2 / (1 + exp(-10 p)) - 1`` over training progress ``p``), so the embedding
learns to hide whether the face is masked. Training minimises

``L = CE_arcface + lambda_domain * CE_mask + lambda_att * MSE(S_masked, S_source)``

where ``S`` are the self-attention scores (``(N, HW, HW)``) of a masked image and of its
unmasked source (the source's are the target, not differentiated). Both the image and its
source go through the network each step: the source with mask label 0, the image with
its own. Rows without an identity (label -1) feed only the mask classifier. Only the
refined embedding is exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import create_backbone
from ..model_input import ModelInput
from .families import FAMILIES, BackboneConfig, FamilyModel, check_positive, square_input
from .grl import GradientReversal, dann_lambda
from .heads import create_head, margin_loss
from .losses import attention_consistency, domain_cross_entropy


class SelfAttention2d(nn.Module):
    """Non-local self-attention over feature-map positions (SAGAN style).

    ``S = softmax_j(q_i . k_j)`` over the ``HW`` positions, ``out = x + gamma * v S^T``,
    with 1x1-conv projections ``q, k`` to ``C / reduction`` channels and ``v`` to ``C``.
    ``gamma`` starts at ``gamma_init`` (SAGAN uses 0; a small non-zero start lets the
    value projection learn from the first step).
    """

    def __init__(self, channels: int, reduction: int = 8, gamma_init: float = 0.1) -> None:
        super().__init__()
        inner = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.tensor(float(gamma_init)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Refined maps ``(N, C, H, W)`` and attention scores ``(N, HW, HW)``."""
        n, c, h, w = x.shape
        q = self.query(x).flatten(2)  # (N, C', HW)
        k = self.key(x).flatten(2)
        v = self.value(x).flatten(2)  # (N, C, HW)
        scores = F.softmax(torch.bmm(q.transpose(1, 2), k).float(), dim=-1).to(x.dtype)  # (N, HW, HW)
        out = torch.bmm(v, scores.transpose(1, 2)).view(n, c, h, w)
        return x + self.gamma * out, scores


@dataclass(frozen=True)
class DomainAdaptConfig(BackboneConfig):
    """Architecture and loss weights of :class:`DomainAdaptFR`.

    Attributes
    ----------
    backbone, width, embedding_dim, input_size
        See :class:`~mfrkit.models.families.BackboneConfig`.
    head : str
        Identity head (``arcface``: s=64, m=0.50).
    attention_reduction : int
        Channel reduction of the query/key projections.
    domain_hidden : int
        Hidden units of the mask classifier.
    lambda_domain, lambda_att : float
        Weights of the mask-classifier loss and the attention-score loss.
    grl_gamma : float
        Steepness of the gradient-reversal schedule (10 in DANN).
    """

    head: str = "arcface"
    attention_reduction: int = 8
    domain_hidden: int = 256
    lambda_domain: float = 1.0
    lambda_att: float = 1.0
    grl_gamma: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "attention_reduction", "domain_hidden")


@FAMILIES.register("domain_adapt")
class DomainAdaptFR(FamilyModel):
    """Backbone + self-attention refinement, ArcFace identity head, DANN mask classifier."""

    name = "domain_adapt"
    Config = DomainAdaptConfig
    batch_keys = frozenset({"image", "source", "label", "domain"})

    def __init__(self, config: DomainAdaptConfig, n_classes: int) -> None:
        super().__init__(config, n_classes)
        size = (config.input_size, config.input_size)
        self.backbone = create_backbone(config.backbone, width=config.width, embedding_dim=config.embedding_dim, input_size=size)
        self.refine = SelfAttention2d(self.backbone.feature_channels, config.attention_reduction)
        self.head = create_head(config.head, config.embedding_dim, n_classes)
        self.grl = GradientReversal(0.0)
        self.domain_classifier = nn.Sequential(
            nn.Linear(config.embedding_dim, config.domain_hidden), nn.ReLU(), nn.Linear(config.domain_hidden, 2)
        )

    @classmethod
    def preprocessing_for(cls, config: DomainAdaptConfig) -> ModelInput:
        return square_input(config.input_size)

    def embed_with_scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Refined embeddings ``(N, D)`` and self-attention scores ``(N, HW, HW)``."""
        refined, scores = self.refine(self.backbone.forward_features(x))
        return self.backbone.forward_head(refined), scores

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The exported embedding ``(N, D)`` of images ``(N, 3, S, S)``: the refined one."""
        return self.embed_with_scores(x)[0]

    def training_step(self, batch: Mapping[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        cfg = self.config
        n = batch["image"].shape[0]
        # One pass over [images; sources] so BatchNorm sees both domains together.
        emb, scores = self.embed_with_scores(torch.cat([batch["image"], batch["source"]]))
        labels = torch.cat([batch["label"], batch["label"]])
        domains = torch.cat([batch["domain"], torch.zeros_like(batch["domain"])])
        self.grl.lambda_ = dann_lambda(progress, cfg.grl_gamma)
        losses = {
            "id": margin_loss(self.head, emb, labels),
            "domain": domain_cross_entropy(self.domain_classifier(self.grl(emb)), domains),
            "att": attention_consistency(scores[:n], scores[n:]),
        }
        losses["loss"] = losses["id"] + cfg.lambda_domain * losses["domain"] + cfg.lambda_att * losses["att"]
        return losses
