"""Margin softmax heads: one combined-margin head covers ArcFace and CosFace.

For an embedding ``x`` and class centre ``W_j`` with ``cos(theta_j) = <x, W_j> / (|x| |W_j|)``
the head's logits are ``s * cos(theta_j)`` for every class except the true one, whose
logit is ``s * (cos(m1 * theta_y + m2) - m3)`` (insightface's combined margin).
CosFace is ``m3 = 0.40``, ArcFace ``m2 = 0.50``, both with ``s = 64``. Training takes
``cross_entropy(head(x, labels), labels)``; rows with label ``-1`` (no identity) get no
margin and are ignored by the loss (``ignore_index=-1``).

The head computes in float32 whatever autocast says (autocast is switched off inside
it). Under CUDA autocast ``F.linear`` would give a bfloat16 cosine while ``acos`` runs in
float32, and the margin's clamp ``1 - 1e-7`` rounds to exactly 1.0 in bfloat16 or float16,
where ``acos``'s gradient is infinite; a (N, n_classes) float32 cosine costs little next
to the backbone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MfrkitError
from ..registry import Registry

IGNORE_LABEL = -1

#: Head factories by name: ``(embedding_dim, n_classes, **kw) -> CombinedMarginHead``.
HEADS: Registry = Registry("margin head")


class CombinedMarginHead(nn.Module):
    """Normalised class centres plus the combined angular/additive margin.

    Parameters
    ----------
    embedding_dim, n_classes : int
    s : float
        Scale applied to the cosines.
    m1, m2, m3 : float
        Multiplicative angular (SphereFace), additive angular (ArcFace) and additive
        cosine (CosFace) margins.

    Notes
    -----
    When ``m2 > 0`` and ``theta_y + m2 > pi`` the ArcFace target ``cos(theta + m2)`` would
    start increasing again; as in insightface, the target then falls back to
    ``cos(theta) - m2 * sin(m2)`` so it stays monotonic in ``theta``.
    """

    def __init__(
        self,
        embedding_dim: int,
        n_classes: int,
        *,
        s: float = 64.0,
        m1: float = 1.0,
        m2: float = 0.0,
        m3: float = 0.0,
    ) -> None:
        super().__init__()
        if n_classes < 1:
            raise MfrkitError(f"a margin head needs at least one class, got {n_classes}")
        self.s, self.m1, self.m2, self.m3 = float(s), float(m1), float(m2), float(m3)
        self.weight = nn.Parameter(torch.empty(n_classes, embedding_dim))
        nn.init.normal_(self.weight, std=0.01)

    @property
    def n_classes(self) -> int:
        return self.weight.shape[0]

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosines ``(N, n_classes)``, float32, between embeddings ``(N, D)`` and class centres."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            return F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(self.weight.float(), dim=1))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, n_classes)``, float32; the margin is applied only where ``labels >= 0``."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            return self._logits(embeddings, labels)

    def _logits(self, embeddings: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        cos = self.cosine(embeddings)
        if labels is None or (self.m1 == 1.0 and self.m2 == 0.0 and self.m3 == 0.0):
            return self.s * cos
        rows = torch.nonzero(labels >= 0, as_tuple=True)[0]
        if rows.numel() == 0:
            return self.s * cos
        cols = labels[rows]
        target = cos[rows, cols].clamp(-1.0 + 1e-7, 1.0 - 1e-7)
        if self.m1 != 1.0 or self.m2 != 0.0:
            theta = torch.acos(target)
            margined = torch.cos(self.m1 * theta + self.m2)
            if self.m2 > 0.0:
                limit = math.pi - self.m2
                margined = torch.where(theta <= limit, margined, target - self.m2 * math.sin(self.m2))
            target = margined
        target = target - self.m3
        cos = cos.index_put((rows, cols), target)
        return self.s * cos


@HEADS.register("cosface")
def cosface(embedding_dim: int, n_classes: int, *, s: float = 64.0, m: float = 0.40) -> CombinedMarginHead:
    """CosFace (Wang et al., 2018): additive cosine margin, s=64, m=0.40."""
    return CombinedMarginHead(embedding_dim, n_classes, s=s, m3=m)


@HEADS.register("arcface")
def arcface(embedding_dim: int, n_classes: int, *, s: float = 64.0, m: float = 0.50) -> CombinedMarginHead:
    """ArcFace (Deng et al., 2019): additive angular margin, s=64, m=0.50."""
    return CombinedMarginHead(embedding_dim, n_classes, s=s, m2=m)


def create_head(name: str, embedding_dim: int, n_classes: int, **kwargs) -> CombinedMarginHead:
    """Build the head called ``name`` (``cosface`` or ``arcface``)."""
    return HEADS.get(name)(embedding_dim, n_classes, **kwargs)


def margin_loss(head: CombinedMarginHead, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the margin logits over rows with a label (0 when none has).

    A batch without labels still reaches the class centres (with zero gradients), so
    every parameter takes part in every step: DistributedDataParallel then needs no
    search for unused parameters.
    """
    if not bool((labels >= 0).any()):
        return (embeddings.sum() + head.weight.sum()).float() * 0.0
    return F.cross_entropy(head(embeddings, labels), labels, ignore_index=IGNORE_LABEL)
