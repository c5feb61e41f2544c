"""ONNX export of every family: checker, metadata contract, onnxruntime vs torch at two batch sizes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from tests.support.models import TINY
from torch import nn

from mfrkit.align import align_face
from mfrkit.alignments import align_crop, arcface_name, arcface_params
from mfrkit.onnx_model import OnnxModel
from mfrkit.errors import MfrkitError
from mfrkit.model_input import read_provenance
from mfrkit.models import ModelInput, read_metadata, write_onnx
from mfrkit.models.checkpoint import load_checkpoint, model_from_checkpoint
from mfrkit.models.export import ExportError, export_family
from mfrkit.models.train import TrainConfig, train

CONTRACT_KEYS = {"mfrkit.family", "mfrkit.input_size", "mfrkit.color", "mfrkit.mean", "mfrkit.std", "mfrkit.align",
                 "mfrkit.embedding_dim"}


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["embedding"], {"input": x})[0]


@pytest.mark.parametrize("name", sorted(TINY))
def test_export_round_trip(name, tmp_path):
    results = export_family(name, tmp_path / f"{name}.onnx", options=TINY[name])
    domains = {r.metadata.get("mfrkit.domain", "") for r in results}
    assert domains == ({"reference", "probe"} if name == "heterogeneous" else {""})
    for r in results:
        proto = onnx.load(str(r.path))
        onnx.checker.check_model(proto)
        meta = read_metadata(r.path)
        assert CONTRACT_KEYS <= set(meta) and meta["mfrkit.family"] == name and meta["mfrkit.weights"] == "untrained"
        assert read_provenance(meta).label == "untrained" and meta["mfrkit.trained"] == "false"
        assert int(meta["mfrkit.embedding_dim"]) == TINY[name]["embedding_dim"]
        prep = ModelInput.from_metadata(meta)
        # the bench reads the same contract from the file (and accepts the alignment)
        spec = OnnxModel(r.path, provider="cpu").spec
        assert (spec.input_size, spec.align, spec.color, spec.mean, spec.std, spec.domain) == (
            prep.input_size, prep.align, prep.color, prep.mean, prep.std, meta.get("mfrkit.domain"))
        (inp,), (out,) = proto.graph.input, proto.graph.output
        assert (inp.name, out.name) == ("input", "embedding")
        assert inp.type.tensor_type.shape.dim[0].dim_param  # the batch axis is symbolic
        assert all(v < 1e-4 for v in r.max_abs_diff.values()) and set(r.max_abs_diff) == {1, 8}
        # the same graph at two more batch sizes: each row's embedding must not depend on the batch
        x = prep.to_input(np.random.default_rng(0).integers(0, 256, (5, *prep.input_size, 3), dtype=np.uint8))
        five, one = _run(r.path, x), _run(r.path, x[2:3])
        assert five.shape == (5, r.embedding_dim)
        np.testing.assert_allclose(five[2:3], one, atol=1e-5)
    if name == "heterogeneous":
        assert len({r.metadata["mfrkit.pair_id"] for r in results}) == 1
        assert {r.path.name for r in results} == {"heterogeneous-reference.onnx", "heterogeneous-probe.onnx"}


def test_export_from_checkpoint_matches_the_trained_model(tiny_dataset, tmp_path):
    cfg = TrainConfig(batch_size=6, workers=0, epochs=1, lr=0.02)
    run = train("csn", tiny_dataset, tmp_path / "run", options=TINY["csn"], config=cfg, aligned=True, max_steps=2,
                recipe="csn-zhao2022")
    (r,) = export_family(None, tmp_path / "csn.onnx", checkpoint=run.checkpoint)
    assert r.metadata["mfrkit.weights"].startswith("sha256:")
    prov = read_provenance(read_metadata(r.path))
    assert (prov.trained, prov.recipe, prov.steps) == (True, "csn-zhao2022", 2)
    assert prov.data_fingerprint == load_checkpoint(run.checkpoint)["manifest_fingerprint"]
    model = model_from_checkpoint(load_checkpoint(run.checkpoint)).eval()
    x = torch.randn(8, 3, 112, 112)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_run(r.path, x.numpy()), expected, atol=1e-4)
    with pytest.raises(ExportError, match="holds family 'csn'"):
        export_family("attention", tmp_path / "x.onnx", checkpoint=run.checkpoint)


def test_write_onnx_rejects_bad_modules_and_missing_family(tmp_path):
    prep = ModelInput(input_size=(16, 16), align="arcface16")
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ExportError, match="family"):
        write_onnx(net, tmp_path / "a.onnx", prep, {})
    with pytest.raises(ExportError, match=r"\(N, D\)"):
        write_onnx(nn.Conv2d(3, 4, 3), tmp_path / "b.onnx", prep, {"family": "x"})
    assert not (tmp_path / "a.onnx").exists() and not (tmp_path / "b.onnx").exists()
    r = write_onnx(net, tmp_path / "c.onnx", prep, {"family": "toy", "mfrkit.note": "extra keys pass through"})
    assert read_metadata(r.path)["mfrkit.note"] == "extra keys pass through"
    assert net.training  # the caller's module is left as it was


def test_preprocessing_contract_round_trip():
    prep = ModelInput(input_size=(150, 120), align="dlib150", color="BGR", mean=(1, 2, 3), std=(4, 5, 6))
    assert ModelInput.from_metadata(prep.to_metadata()) == prep
    assert prep.to_metadata()["mfrkit.input_size"] == "150,120"
    with pytest.raises(MfrkitError, match="missing mfrkit.color, mfrkit.mean, mfrkit.std, mfrkit.align"):
        ModelInput.from_metadata({"mfrkit.input_size": "112,112"})
    with pytest.raises(MfrkitError):
        ModelInput(input_size=(112, 112), align="arcface112", color="RGBA")
    img = np.zeros((2, 150, 120, 3), np.uint8)
    img[..., 2] = 255
    x = prep.to_input(img)  # BGR: the blue channel comes first
    assert x.shape == (2, 3, 150, 120) and np.allclose(x[:, 0], (255 - 1) / 4) and np.allclose(x[:, 2], -0.5)


def test_alignment_names():
    assert arcface_params("arcface112") == (112, 0.0) and arcface_params("arcface160p30") == (160, 0.3)
    assert arcface_params("dlib150") is None and arcface_name(160, 0.3) == "arcface160p30"
    img = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    pts = np.array([[80, 90], [120, 90], [100, 110], [85, 130], [115, 130]], float)
    assert np.array_equal(align_crop("arcface160p30", img, pts), align_face(img, pts, size=160, padding=0.3).image)
    with pytest.raises(MfrkitError, match="unknown alignment 'nope'.*arcface<S>"):
        from mfrkit.landmarks.base import Landmarks

        align_crop("nope", img, Landmarks(points5=pts, points68=None, bbox=np.zeros(4)))


def test_calibrate_batchnorm_tames_untrained_activations():
    from mfrkit.models import create_family
    from mfrkit.models.export import calibrate_batchnorm

    torch.manual_seed(0)
    model = create_family("domain_adapt", backbone="iresnet18", width=16, embedding_dim=16)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        raw = model.eval()(x).abs().max().item()
    model.train()
    calibrate_batchnorm(model, model.preprocessing)
    assert model.training  # mode restored
    with torch.no_grad():
        calibrated = model.eval()(x).abs().max().item()
    bn = model.backbone.bn1
    assert bn.momentum == 0.1 and not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert calibrated < 100 < raw
