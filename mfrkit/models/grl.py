"""Gradient reversal (Ganin & Lempitsky, 2015, DANN).

Identity in the forward pass; multiplies the gradient by ``-lambda`` in the backward
pass, so the layers before it learn to *confuse* the classifier after it.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lambda_: float) -> torch.Tensor:
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lambda_ * grad, None


def reverse_gradient(x: torch.Tensor, lambda_: float = 1.0) -> torch.Tensor:
    """``x`` unchanged; its gradient is multiplied by ``-lambda_``."""
    return _ReverseGrad.apply(x, float(lambda_))


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """DANN's schedule ``2 / (1 + exp(-gamma * p)) - 1``: 0 at the start, towards 1 at the end.

    Parameters
    ----------
    progress : float
        Training progress ``p`` in [0, 1] (clipped).
    gamma : float
        Steepness; 10 in the DANN paper.
    """
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class GradientReversal(nn.Module):
    """Module form of :func:`reverse_gradient`; set ``lambda_`` as training progresses."""

    def __init__(self, lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = float(lambda_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reverse_gradient(x, self.lambda_)

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_:g}"
