"""Family ``attention``: attention-based partial face recognition (Hörmann et al., 2021).

An IResNet-50 truncated after its third stage turns a 160x160 crop (PartialLFW's
alignment, padding 0.3: ``arcface160p30``) into 20x20 maps. Two branches read them:

* the *feature branch* (conv3x3-BN-PReLU) gives the features ``F``;
* the *attention branch* (1x1 conv + ReLU) gives ``K`` maps ``A_k``.

Parameter-free recalibration: ``g_k = GAP(A_k)``; the maps are rescaled to
``A_k * sigmoid(g_k)`` and the importances are ``softmax_k(g_k)``. Attentional pooling
gives ``K`` descriptors ``d_k = sum_p A_k(p) F(p) / sum_p A_k(p)``; a separate FC per
descriptor maps it into a 256-d joint space and the exported embedding is their mean.

Training: :func:`~mfrkit.models.losses.weighted_cross_entropy` of the ``K`` descriptors
through one shared classifier, weighted by the importances, plus ``lambda_div`` times
:func:`~mfrkit.models.losses.diversity_regularizer` of the attention maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..alignments import arcface_name
from ..errors import MfrkitError
from ..model_input import ModelInput
from .backbones import IResNet, create_backbone
from .families import FAMILIES, BackboneConfig, FamilyModel, check_positive
from .heads import create_head
from .losses import diversity_regularizer, weighted_cross_entropy


@dataclass(frozen=True)
class AttentionConfig(BackboneConfig):
    """Architecture and loss weights of :class:`AttentionPartialFR`.

    Attributes
    ----------
    backbone, width
        See :class:`~mfrkit.models.families.BackboneConfig`; an IResNet (``iresnet50`` in the
        paper), of which only the first three stages are built.
    input_size : int
        Square crop side, pixels; 160 gives 20x20 maps.
    padding : float
        Alignment padding (0.3 as PartialLFW).
    n_maps : int
        ``K``, the number of attention maps / descriptors.
    feature_channels : int or None
        Channels of the feature branch (default: the trunk's).
    embedding_dim : int
        Size of the joint space (256).
    head : str
        Shared classifier (a margin head; ``cosface`` here).
    lambda_div : float
        Weight of the diversity regulariser.
    """

    input_size: int = 160
    padding: float = 0.3
    n_maps: int = 4
    feature_channels: int | None = None
    embedding_dim: int = 256
    head: str = "cosface"
    lambda_div: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "n_maps", "feature_channels")
        if not 0.0 <= self.padding < 1.0:
            raise ValueError(f"padding must be in [0, 1), got {self.padding}")


@FAMILIES.register("attention")
class AttentionPartialFR(FamilyModel):
    """Attentional pooling of a truncated IResNet with K per-descriptor embeddings."""

    name = "attention"
    Config = AttentionConfig
    batch_keys = frozenset({"image", "label"})

    def __init__(self, config: AttentionConfig, n_classes: int) -> None:
        super().__init__(config, n_classes)
        size = config.input_size
        trunk = create_backbone(config.backbone, width=config.width, input_size=(size, size), num_stages=3, head=False)
        if not isinstance(trunk, IResNet):
            raise MfrkitError(f"the attention family needs an IResNet trunk, not {config.backbone!r}")
        self.trunk = trunk
        c = trunk.feature_channels
        cf = config.feature_channels or c
        k = config.n_maps
        self.feature_branch = nn.Sequential(nn.Conv2d(c, cf, 3, 1, 1, bias=False), nn.BatchNorm2d(cf), nn.PReLU(cf))
        self.attention_branch = nn.Sequential(nn.Conv2d(c, k, 1), nn.ReLU())
        # Grouped 1x1 conv = one independent FC per descriptor, batched.
        self.descriptor_fc = nn.Conv1d(k * cf, k * config.embedding_dim, 1, groups=k)
        self.head = create_head(config.head, config.embedding_dim, n_classes)

    @classmethod
    def preprocessing_for(cls, config: AttentionConfig) -> ModelInput:
        size = config.input_size
        return ModelInput(input_size=(size, size), align=arcface_name(size, config.padding))

    def descriptors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-descriptor embeddings ``(N, K, D)``, importances ``(N, K)``, maps ``(N, K, h, w)``."""
        fmap = self.trunk.forward_features(x, stages=3)
        feats = self.feature_branch(fmap)  # (N, Cf, h, w)
        maps = self.attention_branch(fmap)  # (N, K, h, w), >= 0
        g = maps.mean((2, 3))  # (N, K)
        importance = F.softmax(g.float(), dim=1).to(maps.dtype)
        recal = maps * torch.sigmoid(g)[:, :, None, None]
        # Attentional pooling: the attention-weighted mean of the features per map; the
        # epsilon keeps an all-zero (ReLU-dead) map from dividing by zero.
        mass = recal.sum((2, 3)).clamp_min(1e-6)  # (N, K)
        pooled = torch.einsum("nkhw,nchw->nkc", recal, feats) / mass[:, :, None]
        n, k, cf = pooled.shape
        emb = self.descriptor_fc(pooled.reshape(n, k * cf, 1)).view(n, k, -1)
        return emb, importance, maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The exported embedding ``(N, D)`` of images ``(N, 3, S, S)``: the mean of the K descriptors."""
        return self.descriptors(x)[0].mean(1)

    def training_step(self, batch: Mapping[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        labels = batch["label"]
        emb, importance, maps = self.descriptors(batch["image"])
        logits = torch.stack([self.head(emb[:, i], labels) for i in range(emb.shape[1])])
        losses = {"wce": weighted_cross_entropy(logits, labels, importance)}
        # Importances are constants in the regulariser: diversity should move the maps,
        # not re-rank which descriptor is trusted.
        losses["div"] = diversity_regularizer(maps, importance.detach())
        losses["loss"] = losses["wce"] + self.config.lambda_div * losses["div"]
        return losses
