"""Every registered backbone and family: shapes, declared preprocessing, gradients, learning."""

from __future__ import annotations

import pytest
import torch
from tests.support.models import TINY, make_batch

from mfrkit.alignments import arcface_params
from mfrkit.errors import MfrkitError, UnknownNameError
from mfrkit.models import BACKBONES, FAMILIES, create_backbone, create_family


def _family(name: str, **extra):
    opts = {**TINY[name], **extra}
    if name == "csn":
        opts.setdefault("teacher_dim", 12)
    if name == "heterogeneous":
        opts.setdefault("attributes", ("glasses", "hat"))
    torch.manual_seed(0)
    return create_family(name, n_classes=3, **opts)


def _batch(model, seed=0):
    return make_batch(
        model,
        teacher_dim=getattr(model.config, "teacher_dim", None),
        n_attr=len(getattr(model.config, "attributes", ())),
        seed=seed,
    )


def test_every_family_has_a_tiny_test_config():
    assert set(TINY) == set(FAMILIES.names()) == {"csn", "attention", "heterogeneous", "domain_adapt", "cosface"}


@pytest.mark.parametrize("name", BACKBONES.names())
def test_backbones_give_embeddings_and_maps(name):
    net = create_backbone(name, width=4, embedding_dim=10).eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert net(x).shape == (2, 10)
        assert net.forward_features(x).shape == (2, net.feature_channels, 7, 7)


def test_published_backbone_sizes():
    # insightface's arcface_torch: r50 43.6M, r100 65.2M, mbf 2.1M parameters (512-d)
    count = lambda n: sum(p.numel() for p in create_backbone(n).parameters())  # noqa: E731
    assert round(count("iresnet50") / 1e6, 1) == 43.6
    assert round(count("mobilefacenet") / 1e6, 1) == 2.1


def test_truncated_iresnet_gives_stride_8_maps():
    trunk = create_backbone("iresnet50", width=4, input_size=(160, 160), num_stages=3, head=False)
    assert trunk.forward_features(torch.randn(1, 3, 160, 160)).shape == (1, 16, 20, 20)
    with pytest.raises(MfrkitError):
        trunk.forward_head(torch.randn(1, 16, 20, 20))


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_shape_and_preprocessing(name):
    model = _family(name).eval()
    prep = model.preprocessing
    assert arcface_params(prep.align) is not None and prep.color == "RGB"
    with torch.no_grad():
        emb = model(torch.randn(3, 3, *prep.input_size))
    assert emb.shape == (3, model.embedding_dim)
    for module in model.export_modules().values():
        with torch.no_grad():
            assert module(torch.randn(2, 3, *prep.input_size)).shape == (2, model.embedding_dim)


def test_attention_defaults_follow_partiallfw():
    model = create_family("attention", n_classes=2, backbone="iresnet18", width=4)
    assert model.preprocessing.input_size == (160, 160) and model.preprocessing.align == "arcface160p30"
    fmap = model.trunk.forward_features(torch.randn(1, 3, 160, 160), stages=3)
    assert fmap.shape[2:] == (20, 20)


@pytest.mark.parametrize("name", sorted(TINY))
def test_gradients_reach_every_trainable_parameter(name):
    model = _family(name).train()
    losses = model.training_step(_batch(model), progress=0.5)
    assert set(losses) >= {"loss"} and all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    missing = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert missing == []


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_few_steps_lower_the_loss(name):
    model = _family(name).train()
    batch = _batch(model, seed=1)

    def loss_now() -> float:
        torch.manual_seed(123)  # the same dropout masks before and after
        return model.training_step(batch, progress=0.5)["loss"].item()

    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    before = loss_now()
    for _ in range(6):
        opt.zero_grad()
        model.training_step(batch, progress=0.5)["loss"].backward()
        opt.step()
    assert loss_now() < before


def test_domain_adapt_reverses_the_mask_classifier_gradient():
    model = _family("domain_adapt").train()
    batch = _batch(model)
    emb, _ = model.embed_with_scores(torch.cat([batch["image"], batch["source"]]))
    emb = emb.detach().requires_grad_(True)
    domains = torch.cat([batch["domain"], torch.zeros_like(batch["domain"])])
    grads = {}
    for lam in (0.0, 0.7):
        model.grl.lambda_ = lam
        emb.grad = None
        torch.nn.functional.cross_entropy(model.domain_classifier(model.grl(emb)), domains).backward()
        grads[lam] = emb.grad.clone()
    plain = torch.autograd.grad(
        torch.nn.functional.cross_entropy(model.domain_classifier(emb), domains), emb
    )[0]
    assert torch.count_nonzero(grads[0.0]) == 0
    assert torch.allclose(grads[0.7], -0.7 * plain, atol=1e-7)


def test_csn_projection_handles_a_teacher_of_another_size():
    same = _family("csn", teacher_dim=16)
    assert same.project is None  # equal sizes: cosine on the embedding itself
    other = _family("csn", teacher_dim=12)
    assert other.project.weight.shape == (12, 16)
    with pytest.raises(MfrkitError, match="teacher_projection"):
        _family("csn", teacher_dim=12, teacher_projection="none")
    with pytest.raises(MfrkitError, match="no teacher embeddings"):
        batch = _batch(other)
        del batch["teacher_embedding"]
        other.training_step(batch, 0.0)


def test_heterogeneous_towers_start_tied_and_export_two_domains():
    model = _family("heterogeneous")
    assert model.training_step(_batch(model), 0.0)["tie"].item() == 0.0
    assert set(model.export_modules()) == {"reference", "probe"}
    assert model.reference is not model.probe


def test_config_errors_name_the_valid_choices():
    with pytest.raises(MfrkitError, match="valid:.*embedding_dim"):
        create_family("csn", embeding_dim=3)
    with pytest.raises(UnknownNameError, match="attention, cosface, csn"):
        create_family("nope")
    with pytest.raises(MfrkitError):
        create_family("csn", sub_dropout=(0.5,))


@pytest.mark.parametrize(
    "option, value, match",
    [
        ("width", "abc", "width of family 'csn' must be int, got 'abc'"),
        ("width", True, "must be int"),
        ("sub_dropout", 0.5, "must be a list of float"),
        ("sub_dropout", [0.1, "a"], "must be a list of float"),
        ("teacher_dim", "x", "must be int or None"),
    ],
)
def test_config_values_of_the_wrong_type_are_refused_by_name(option, value, match):
    # `-o width=abc` on the command line used to end in a TypeError deep inside the backbone
    with pytest.raises(MfrkitError, match=match):
        create_family("csn", **{option: value})


def test_config_accepts_ints_for_floats_and_lists_for_tuples():
    from mfrkit.models import make_config

    cfg = make_config("csn", lambda_kd=1, sub_dropout=[0.1, 0.2], teacher_dim=None)
    assert cfg.lambda_kd == 1 and cfg.sub_dropout == (0.1, 0.2)
