"""The training paths that differ on a GPU, checked on the CPU with CUDA's rules emulated:
the margin heads under autocast, native bfloat16, the rank's device, and DDP's
unused-parameter search."""

from __future__ import annotations

import pytest
import torch
from tests.support.models import TINY, make_batch

from mfrkit.models import distributed as D
from mfrkit.models import precision as P
from mfrkit.models.families import create_family, family_names
from mfrkit.models.heads import arcface, cosface, margin_loss


def _cuda_autocast_rules(monkeypatch):
    """CUDA autocast runs ``acos`` in float32 (its float32 list); CPU autocast leaves it in
    bfloat16. Emulate the CUDA rule so that a CPU test sees what a GPU run does."""
    real = torch.acos

    def acos(x, *a, **k):
        if torch.is_autocast_enabled("cpu"):
            return real(x.float(), *a, **k)
        return real(x, *a, **k)

    monkeypatch.setattr(torch, "acos", acos)


@pytest.mark.parametrize("make", [arcface, cosface])
def test_margin_heads_compute_in_float32_under_autocast(monkeypatch, make):
    _cuda_autocast_rules(monkeypatch)
    torch.manual_seed(0)
    head = make(8, 5)
    x = torch.randn(6, 8)
    labels = torch.tensor([0, 1, 2, 3, 4, -1])
    want = head(x, labels)  # float32, no autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        # before: a bfloat16 cosine, a float32 acos, and index_put refused the mix
        got = head(x, labels)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)


def test_margin_gradient_is_finite_at_a_cosine_of_one():
    # An embedding equal to its class centre: cos = 1. In bfloat16 the clamp 1 - 1e-7
    # rounds to 1.0 and acos'(1) is infinite; the float32 head keeps it finite.
    head = arcface(8, 3)
    x = head.weight.detach()[:2].clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = margin_loss(head, x, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()


@pytest.mark.parametrize("family", family_names())
@pytest.mark.parametrize("labelled", [True, False])
def test_every_family_uses_every_parameter_in_every_step(family, labelled):
    """DistributedDataParallel runs without find_unused_parameters unless a family says
    some of its parameters sit out steps; a parameter without a gradient would hang or
    break the all-reduce, so every one must get one, even from a batch without labels."""
    options = dict(TINY[family])
    extra = {}
    if family == "csn":
        options["teacher_dim"] = 12  # the teacher projection takes part too
        extra["teacher_dim"] = 12
    if family == "heterogeneous":
        options["attributes"] = ("glasses",)
        extra["n_attr"] = 1
    model = create_family(family, n_classes=3, **options)
    batch = make_batch(model, 6, **extra)
    if not labelled:
        batch["label"] = torch.full_like(batch["label"], -1)
    model.train()
    model.training_step(batch, progress=0.5)["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing or model.unused_parameters, f"{family}: no gradient for {missing[:5]}"


def test_native_bf16_is_the_compute_capability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulated counts here
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (7, 5))  # Turing
    assert not P.native_bf16(cuda) and P.device_precision("auto", cuda).name == "fp16"
    with pytest.raises(Exception, match="no native bfloat16"):
        P.device_precision("bf16", cuda)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))  # Hopper
    assert P.native_bf16(cuda) and P.device_precision("auto", cuda).name == "bf16"
    assert not P.native_bf16(torch.device("cpu"))


def test_each_rank_sets_its_device_also_when_the_group_exists(monkeypatch):
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(D.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(D.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(d))
    ctx = D.init_distributed(torch.device("cuda", 1))
    assert calls == [torch.device("cuda", 1)]  # before: skipped, every rank on cuda:0
    assert (ctx.world, ctx.rank, ctx.owns_group) == (2, 1, False)


def test_ddp_searches_unused_parameters_only_when_a_family_asks(monkeypatch):
    from mfrkit.models import train_step as T

    seen = []

    class FakeDDP(torch.nn.Module):
        def __init__(self, module, device_ids=None, find_unused_parameters=False):
            super().__init__()
            seen.append(find_unused_parameters)
            self.module = module

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", FakeDDP)
    model = create_family("cosface", n_classes=3, **TINY["cosface"])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctx = D.DistContext(world=2, rank=0)
    T.TrainStep(model, opt, P.FP32, torch.device("cpu"), ctx=ctx)
    monkeypatch.setattr(type(model), "unused_parameters", True)
    T.TrainStep(model, opt, P.FP32, torch.device("cpu"), ctx=ctx)
    assert seen == [False, True]
