"""Loss terms of the four families, as pure functions of tensors.

Each returns a scalar tensor (batch mean unless stated). Weights that steer a loss
(concept weights, attention importances) are used as given; the families decide what
to detach, and say why.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import MfrkitError

_EPS = 1e-12


def bidirectional_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Symmetric KL between the softmax distributions of two logit sets.

    Parameters
    ----------
    logits_a, logits_b : Tensor of shape (..., C)

    Returns
    -------
    Tensor of shape (...): ``KL(p_a || p_b) + KL(p_b || p_a)``, nats.
    """
    la, lb = F.log_softmax(logits_a.float(), -1), F.log_softmax(logits_b.float(), -1)
    pa, pb = la.exp(), lb.exp()
    return (pa * (la - lb)).sum(-1) + (pb * (lb - la)).sum(-1)


def weighted_bidirectional_kl(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Consistency between ``n`` sub-decisions, weighted per sample (CSN).

    For sample ``b`` with sub-decision distributions ``p_1..p_n`` and weights
    ``w_1..w_n``, the loss is ``sum_{i<j} v_ij [KL(p_i||p_j) + KL(p_j||p_i)]`` with pair
    weights ``v_ij = w_i w_j / sum_{k<l} w_k w_l``, averaged over the batch: a pair
    counts in proportion to how much both of its members are trusted.

    Parameters
    ----------
    logits : Tensor of shape (n, N, C)
        Class logits of each sub-decision.
    weights : Tensor of shape (N, n)
        Non-negative weights of the sub-decisions (e.g. a softmax).
    """
    n = logits.shape[0]
    if n < 2:
        raise MfrkitError("consistency needs at least two sub-decisions")
    if weights.shape != (logits.shape[1], n):
        raise MfrkitError(f"weights must be (N, n) = {(logits.shape[1], n)}, got {tuple(weights.shape)}")
    i, j = torch.triu_indices(n, n, offset=1, device=logits.device)
    kl = bidirectional_kl(logits[i], logits[j])  # (pairs, N)
    w = weights.float()
    pair_w = (w[:, i] * w[:, j]).T  # (pairs, N)
    pair_w = pair_w / pair_w.sum(0, keepdim=True).clamp_min(_EPS)
    return (pair_w * kl).sum(0).mean()


def cosine_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean cosine distance ``1 - cos(student_b, teacher_b)`` over the batch.

    Parameters
    ----------
    student, teacher : Tensor of shape (N, D)
        Same ``D``; the teacher is treated as a constant.
    """
    if student.shape != teacher.shape:
        raise MfrkitError(f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} embeddings differ in shape")
    return (1.0 - F.cosine_similarity(student.float(), teacher.detach().float(), dim=1, eps=1e-8)).mean()


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``K`` per-descriptor predictions, weighted per sample (attention).

    ``mean_b sum_k w_bk CE(logits_k[b], y_b)`` over samples with a label (``y >= 0``).

    Parameters
    ----------
    logits : Tensor of shape (K, N, C)
    labels : Tensor of shape (N,), int64; ``-1`` = no label
    weights : Tensor of shape (N, K)
        Importances, normally summing to 1 over ``K``.
    """
    k, n, c = logits.shape
    if weights.shape != (n, k) or labels.shape != (n,):
        raise MfrkitError(f"expected labels (N,) and weights (N, K) for logits {tuple(logits.shape)}")
    keep = labels >= 0
    if not bool(keep.any()):
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits[:, keep].reshape(-1, c).float(), labels[keep].repeat(k), reduction="none")
    return (ce.view(k, -1).T * weights[keep].float()).sum(1).mean()


def diversity_regularizer(maps: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Penalty for ``K`` attention maps that look at the same pixels.

    Each map is softmax-normalised over its pixels (so it sums to 1), scaled by its
    weight ``w_k`` (default ``1/K``), and the pixel-wise maximum over ``k`` is summed:
    ``D = sum_p max_k w_k a_k(p)``. ``D`` equals ``sum_k w_k = 1`` when the maps do not
    overlap and ``max_k w_k`` when they are identical; the loss is ``1 - D`` averaged
    over the batch, so 0 is perfectly diverse.

    Parameters
    ----------
    maps : Tensor of shape (N, K, H, W)
        Attention logits (before the spatial softmax).
    weights : Tensor of shape (N, K), optional
        Importances summing to 1 over ``K``.
    """
    n, k = maps.shape[:2]
    a = F.softmax(maps.float().flatten(2), dim=2)  # (N, K, HW)
    w = torch.full((n, k), 1.0 / k, device=maps.device) if weights is None else weights.float()
    if w.shape != (n, k):
        raise MfrkitError(f"weights must be (N, K) = {(n, k)}, got {tuple(w.shape)}")
    d = (a * w[:, :, None]).amax(1).sum(1)
    return (1.0 - d).mean()


def attention_consistency(att: torch.Tensor, att_ref: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between two attention-score tensors (domain adaptation).

    ``att_ref`` (from the unmasked source image) is the target and is not
    differentiated through.

    Parameters
    ----------
    att, att_ref : Tensor of shape (N, ...)
    """
    if att.shape != att_ref.shape:
        raise MfrkitError(f"attention shapes differ: {tuple(att.shape)} vs {tuple(att_ref.shape)}")
    return F.mse_loss(att.float(), att_ref.detach().float())


def weight_difference(params_a, params_b) -> torch.Tensor:
    """Sum of squared differences between corresponding parameters of two towers.

    Parameters
    ----------
    params_a, params_b : iterables of Tensors with matching shapes
    """
    total = None
    count = 0
    for pa, pb in zip(params_a, params_b, strict=True):
        if pa.shape != pb.shape:
            raise MfrkitError(f"tower parameters differ in shape: {tuple(pa.shape)} vs {tuple(pb.shape)}")
        term = (pa.float() - pb.float()).pow(2).sum()
        total = term if total is None else total + term
        count += 1
    if total is None:
        raise MfrkitError("no parameters to compare")
    return total


def pair_bce(
    emb_a: torch.Tensor, emb_b: torch.Tensor, same: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Binary same/different loss on all ``N_a x N_b`` pairs (heterogeneous verification).

    The pair logit is ``scale * cos(a_i, b_j) + bias``; positives and negatives are
    weighted to contribute equally (there are far more negatives in a batch).

    Parameters
    ----------
    emb_a : Tensor of shape (N_a, D)
    emb_b : Tensor of shape (N_b, D)
    same : Tensor of shape (N_a, N_b), bool
        True where the pair shows the same person.
    scale, bias : scalar Tensors
    """
    logits = scale * F.linear(F.normalize(emb_a.float(), dim=1), F.normalize(emb_b.float(), dim=1)) + bias
    if logits.numel() == 0:  # no labelled pair in the batch: 0, still reaching every input
        return logits.sum() * 0.0
    target = same.float()
    n_pos, n_neg = target.sum(), (1 - target).sum()
    w = torch.where(same, 0.5 / n_pos.clamp_min(1), 0.5 / n_neg.clamp_min(1))
    if n_pos == 0 or n_neg == 0:
        w = torch.full_like(target, 1.0 / target.numel())
    return (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * w).sum()


def domain_cross_entropy(logits: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the domain (mask) classifier; ``domains`` (N,) int64."""
    return F.cross_entropy(logits.float(), domains)
