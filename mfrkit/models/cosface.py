"""Family ``cosface``: a plain backbone trained with the CosFace margin loss (the baseline).

No masked-face machinery: the backbone's embedding goes through a CosFace head
(``s * (cos(theta_y) - m)``, s = 64, m = 0.40) and cross-entropy. It is the yardstick
for the four masked-face families: train it on unmasked images (``variants =
("unmasked",)``) to see the masked gap a plain face model has, or on the same mix of
masked and unmasked images as a family to tell what the family's own losses add beyond
seeing masked data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from ..model_input import ModelInput
from .backbones import create_backbone
from .families import FAMILIES, BackboneConfig, FamilyModel, square_input
from .heads import create_head, margin_loss


@dataclass(frozen=True)
class CosFaceConfig(BackboneConfig):
    """Architecture of :class:`CosFaceBaseline`.

    Attributes
    ----------
    backbone, width, embedding_dim, input_size
        See :class:`~mfrkit.models.families.BackboneConfig`.
    head : str
        Margin head (``cosface``; ``arcface`` gives the ArcFace baseline).
    """

    head: str = "cosface"


@FAMILIES.register("cosface")
class CosFaceBaseline(FamilyModel):
    """Backbone + CosFace head; exports the backbone's embedding."""

    name = "cosface"
    Config = CosFaceConfig
    batch_keys = frozenset({"image", "label"})

    def __init__(self, config: CosFaceConfig, n_classes: int) -> None:
        super().__init__(config, n_classes)
        size = (config.input_size, config.input_size)
        self.backbone = create_backbone(config.backbone, width=config.width, embedding_dim=config.embedding_dim, input_size=size)
        self.head = create_head(config.head, config.embedding_dim, n_classes)

    @classmethod
    def preprocessing_for(cls, config: CosFaceConfig) -> ModelInput:
        return square_input(config.input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The exported embedding ``(N, D)`` of images ``(N, 3, S, S)``."""
        return self.backbone(x)

    def training_step(self, batch: Mapping[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        loss = margin_loss(self.head, self.backbone(batch["image"]), batch["label"])
        return {"cls": loss, "loss": loss}
