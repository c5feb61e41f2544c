"""Every loss term against a small case worked out by hand, and the gradient-reversal layer."""

from __future__ import annotations

import math

import pytest
import torch

from mfrkit.errors import MfrkitError
from mfrkit.models import losses as L
from mfrkit.models.grl import GradientReversal, dann_lambda, reverse_gradient
from mfrkit.models.heads import arcface, cosface, margin_loss

LN3 = math.log(3.0)
# softmax([0, ln 3]) = [1/4, 3/4]; softmax([0, 0]) = [1/2, 1/2]:
# KL(a||b) = 1/4 ln(1/2) + 3/4 ln(3/2);  KL(b||a) = 1/2 ln 2 + 1/2 ln(2/3)
KL_AB = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
KL_BA = 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0)


def test_bidirectional_kl_by_hand():
    got = L.bidirectional_kl(torch.tensor([[0.0, LN3]]), torch.tensor([[0.0, 0.0]]))
    assert got.item() == pytest.approx(KL_AB + KL_BA, abs=1e-6)
    assert L.bidirectional_kl(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])).item() == pytest.approx(0, abs=1e-7)


def test_weighted_bidirectional_kl_by_hand():
    # Sub-decision 1 differs from 2 and 3, which agree. Weights (1/2, 1/4, 1/4) give pair
    # weights 1/8, 1/8, 1/16 (normalised by 5/16): the loss is (2/8) / (5/16) = 0.8 x KL.
    logits = torch.tensor([[[0.0, LN3]], [[0.0, 0.0]], [[0.0, 0.0]]])
    weights = torch.tensor([[0.5, 0.25, 0.25]])
    got = L.weighted_bidirectional_kl(logits, weights)
    assert got.item() == pytest.approx(0.8 * (KL_AB + KL_BA), abs=1e-6)
    # A batch averages its samples; agreeing sub-decisions cost nothing.
    two = torch.cat([logits, torch.zeros(3, 1, 2)], dim=1)
    got2 = L.weighted_bidirectional_kl(two, torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]]))
    assert got2.item() == pytest.approx(0.4 * (KL_AB + KL_BA), abs=1e-6)
    with pytest.raises(MfrkitError):
        L.weighted_bidirectional_kl(logits, torch.ones(1, 2))


def test_cosine_distillation_by_hand():
    student = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 1.0], [2.0, 2.0]], requires_grad=True)
    loss = L.cosine_distillation(student, teacher)
    assert loss.item() == pytest.approx(0.5, abs=1e-7)  # distances 1 and 0
    loss.backward()
    assert teacher.grad is None  # the teacher is a constant
    with pytest.raises(MfrkitError):
        L.cosine_distillation(torch.ones(2, 3), torch.ones(2, 4))


def test_weighted_cross_entropy_by_hand():
    # Descriptor 1: logits (0, 0), CE = ln 2. Descriptor 2: logits (ln 3, 0), CE = -ln(3/4).
    logits = torch.tensor([[[0.0, 0.0], [5.0, 0.0]], [[LN3, 0.0], [0.0, 5.0]]])  # (K=2, N=2, C=2)
    labels = torch.tensor([0, -1])  # the second sample has no identity: ignored
    weights = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    got = L.weighted_cross_entropy(logits, labels, weights)
    assert got.item() == pytest.approx(0.25 * math.log(2) - 0.75 * math.log(0.75), abs=1e-6)
    assert L.weighted_cross_entropy(logits, torch.tensor([-1, -1]), weights).item() == 0.0


def test_diversity_regularizer_by_hand():
    big = 30.0  # softmax([30, -30]) is (1, 0) to float precision
    disjoint = torch.tensor([[[[big, -big]], [[-big, big]]]])  # (N=1, K=2, H=1, W=2)
    identical = torch.zeros(1, 2, 1, 2)
    assert L.diversity_regularizer(disjoint).item() == pytest.approx(0.0, abs=1e-6)
    # identical uniform maps: sum_p max_k (1/2)(1/2) = 1/2 -> loss 1/2 (= 1 - max_k w_k)
    assert L.diversity_regularizer(identical).item() == pytest.approx(0.5, abs=1e-6)
    assert L.diversity_regularizer(identical, torch.tensor([[0.8, 0.2]])).item() == pytest.approx(0.2, abs=1e-6)
    # maps (1/4, 3/4) and (3/4, 1/4): D = 2 x (1/2)(3/4) = 3/4
    partial = torch.tensor([[[[0.0, LN3]], [[LN3, 0.0]]]])
    assert L.diversity_regularizer(partial).item() == pytest.approx(0.25, abs=1e-6)


def test_attention_consistency_by_hand():
    att = torch.tensor([[1.0, 2.0]], requires_grad=True)
    ref = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = L.attention_consistency(att, ref)
    assert loss.item() == pytest.approx(2.0)
    loss.backward()
    assert ref.grad is None and att.grad.tolist() == [[0.0, 2.0]]


def test_weight_difference_by_hand():
    a = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    b = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])]
    assert L.weight_difference(a, b).item() == pytest.approx(1 + 4 + 4)
    with pytest.raises(MfrkitError):
        L.weight_difference([torch.ones(2)], [torch.ones(3)])


def test_pair_bce_by_hand():
    emb = torch.eye(2)
    same = torch.eye(2, dtype=torch.bool)
    # logits = cos = identity: positives 1, negatives 0; each class contributes half
    got = L.pair_bce(emb, emb, same, torch.tensor(1.0), torch.tensor(0.0))
    expected = 0.5 * math.log1p(math.exp(-1.0)) + 0.5 * math.log(2.0)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_cosface_head_by_hand():
    head = cosface(2, 2, s=2.0)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    emb = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    logits = head(emb, torch.tensor([0, -1]))
    # sample 0: cos = (1, 0), margin on class 0 -> 2 x (0.6, 0); sample 1: no label, no margin
    assert torch.allclose(logits, torch.tensor([[1.2, 0.0], [0.0, 2.0]]), atol=1e-6)
    loss = margin_loss(head, emb[:1], torch.tensor([0]))
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1.2)), abs=1e-6)


def test_arcface_head_by_hand():
    head = arcface(2, 2)  # s=64, m=0.5
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    theta = math.pi / 3
    emb = torch.tensor([[math.cos(theta), math.sin(theta)]])
    logits = head(emb, torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(64 * math.cos(theta + 0.5), abs=1e-4)
    assert logits[0, 1].item() == pytest.approx(64 * math.sin(theta), abs=1e-4)
    # beyond pi - m the target falls back to cos(theta) - m sin(m), keeping it monotonic
    far = math.pi - 0.2
    logits = head(torch.tensor([[math.cos(far), math.sin(far)]]), torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(64 * (math.cos(far) - 0.5 * math.sin(0.5)), abs=1e-4)


def test_margin_loss_without_labels_is_zero_but_differentiable():
    head = cosface(4, 3)
    emb = torch.randn(2, 4, requires_grad=True)
    loss = margin_loss(head, emb, torch.tensor([-1, -1]))
    loss.backward()
    assert loss.item() == 0.0 and emb.grad is not None


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [-0.5, -1.0, -1.5]
    layer = GradientReversal(1.0)
    x2 = torch.tensor([2.0], requires_grad=True)
    (layer(x2) ** 2).sum().backward()  # d/dx x^2 = 4, reversed
    assert x2.grad.item() == -4.0


def test_dann_lambda_schedule():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann_lambda(2.0) == dann_lambda(1.0)  # progress is clipped
    values = [dann_lambda(p / 10) for p in range(11)]
    assert values == sorted(values) and values[-1] < 1.0
