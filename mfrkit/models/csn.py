"""Family ``csn``: Consistent Sub-Decision Network (Zhao et al., IEEE SPL 2022).

The backbone's feature map is flattened and fed to ``n`` dropout blocks, each giving a
sub-decision: an embedding and, through the shared margin head, a class distribution.
A concept branch gives every sample a softmax weight per sub-decision. Training
minimises

``L = CE(e_w) + lambda_sub * mean_i CE(e_i) + lambda_kl * WBKL(p_1..p_n; w)
+ lambda_kd * (1 - cos(P e_w, t))``

with ``e_w = sum_i w_i e_i`` the weighted embedding (the exported one), CE the CosFace
loss, WBKL :func:`~mfrkit.models.losses.weighted_bidirectional_kl`, and ``t`` a frozen
teacher's embedding of the *unmasked source* image. ``P`` is a learned linear map
when the teacher's dimension differs from ours (``teacher_projection="linear"``), the
identity when they agree. See ``cards/csn.md`` for what is the paper's and what is ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MfrkitError
from .backbones import create_backbone
from ..model_input import ModelInput
from .families import FAMILIES, BackboneConfig, FamilyModel, check_choice, check_positive, square_input
from .heads import create_head, margin_loss
from .losses import cosine_distillation, weighted_bidirectional_kl


@dataclass(frozen=True)
class CSNConfig(BackboneConfig):
    """Architecture and loss weights of :class:`CSN`.

    Attributes
    ----------
    backbone, width, embedding_dim, input_size
        See :class:`~mfrkit.models.families.BackboneConfig`.
    sub_dropout : tuple of float
        Dropout rate of each sub-decision block; its length is ``n`` (3).
    concept_hidden : int
        Hidden units of the concept branch.
    head : str
        Margin head (``cosface``: s=64, m=0.40).
    lambda_sub, lambda_kl, lambda_kd : float
        Weights of the per-sub-decision CE, the consistency KL and the distillation.
    teacher_dim : int or None
        Teacher embedding size; None trains without distillation.
    teacher_projection : str
        ``linear`` (learn a bias-free map when sizes differ) or ``none`` (sizes must agree).
    """

    sub_dropout: tuple[float, ...] = (0.1, 0.3, 0.5)
    concept_hidden: int = 128
    head: str = "cosface"
    lambda_sub: float = 1.0
    lambda_kl: float = 1.0
    lambda_kd: float = 1.0
    teacher_dim: int | None = None
    teacher_projection: str = "linear"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "concept_hidden", "teacher_dim")
        if len(self.sub_dropout) < 2:
            raise ValueError("CSN needs at least two sub-decisions (sub_dropout of length >= 2)")
        if not all(0.0 <= p < 1.0 for p in self.sub_dropout):
            raise ValueError(f"dropout rates must be in [0, 1), got {self.sub_dropout}")
        check_choice(self.teacher_projection, ("linear", "none"), "teacher_projection")


@FAMILIES.register("csn")
class CSN(FamilyModel):
    """Consistent Sub-Decision Network on an ArcFace crop (112x112 published)."""

    name = "csn"
    Config = CSNConfig
    batch_keys = frozenset({"image", "label", "teacher_embedding"})

    def __init__(self, config: CSNConfig, n_classes: int) -> None:
        super().__init__(config, n_classes)
        size = config.input_size
        self.backbone = create_backbone(config.backbone, width=config.width, input_size=(size, size), head=False)
        c = self.backbone.feature_channels
        with torch.no_grad():
            fh, fw = self.backbone.forward_features(torch.zeros(1, 3, size, size)).shape[2:]
        flat = c * fh * fw
        d = config.embedding_dim
        self.sub_blocks = nn.ModuleList(
            nn.Sequential(nn.Dropout(p), nn.Linear(flat, d), nn.BatchNorm1d(d)) for p in config.sub_dropout
        )
        self.concept = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(c, config.concept_hidden),
            nn.PReLU(config.concept_hidden),
            nn.Linear(config.concept_hidden, len(config.sub_dropout)),
        )
        self.head = create_head(config.head, d, n_classes)
        self.project: nn.Module | None = None
        if config.teacher_dim is not None and config.teacher_dim != d:
            if config.teacher_projection == "none":
                raise MfrkitError(
                    f"teacher embeddings are {config.teacher_dim}-d, ours {d}-d: set teacher_projection='linear' "
                    f"or embedding_dim={config.teacher_dim}"
                )
            self.project = nn.Linear(d, config.teacher_dim, bias=False)

    @classmethod
    def preprocessing_for(cls, config: CSNConfig) -> ModelInput:
        return square_input(config.input_size)

    def sub_decisions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sub-decision embeddings ``(n, N, D)`` and concept weights ``(N, n)``."""
        fmap = self.backbone.forward_features(x)
        flat = torch.flatten(fmap, 1)
        subs = torch.stack([block(flat) for block in self.sub_blocks])
        weights = F.softmax(self.concept(fmap).float(), dim=1).to(subs.dtype)
        return subs, weights

    @staticmethod
    def combine(subs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The weighted embedding ``sum_i w_i e_i``, shape (N, D)."""
        return torch.einsum("nbd,bn->bd", subs, weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The exported embedding ``(N, D)`` of images ``(N, 3, S, S)``: the
        concept-weighted sum of the sub-decision embeddings."""
        return self.combine(*self.sub_decisions(x))

    def training_step(self, batch: Mapping[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        cfg = self.config
        labels = batch["label"]
        subs, weights = self.sub_decisions(batch["image"])
        emb = self.combine(subs, weights)
        losses = {"cls": margin_loss(self.head, emb, labels)}
        losses["sub"] = torch.stack([margin_loss(self.head, e, labels) for e in subs]).mean()
        sub_logits = torch.stack([self.head(e) for e in subs])
        # The weights are a constant here: left free, the concept branch would lower the
        # KL by piling weight on one sub-decision instead of making them agree.
        losses["kl"] = weighted_bidirectional_kl(sub_logits, weights.detach())
        loss = losses["cls"] + cfg.lambda_sub * losses["sub"] + cfg.lambda_kl * losses["kl"]
        teacher = batch.get("teacher_embedding")
        if teacher is not None and cfg.teacher_dim is not None:
            student = emb if self.project is None else self.project(emb)
            losses["kd"] = cosine_distillation(student, teacher)
            loss = loss + cfg.lambda_kd * losses["kd"]
        elif cfg.teacher_dim is not None:
            raise MfrkitError("this CSN was configured with a teacher, but the batch has no teacher embeddings")
        losses["loss"] = loss
        return losses
