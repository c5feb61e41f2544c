"""The ONNX runner: preprocessing contract, providers, shape validation, batching."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.support.tiny_onnx import ARCFACE_META, make_model

from mfrkit import model_input as MI
from mfrkit import onnx_model as R
from mfrkit.errors import MfrkitError, ModelError, UnknownNameError

# --- the preprocessing contract --------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, expected",
    [("112", (112, 112)), ("112,96", (112, 96)), ("[112, 96]", (112, 96)), ("112x96", (112, 96)), (112, (112, 112))],
)
def test_parse_input_size(size, expected):
    spec = MI.parse_model_input({**ARCFACE_META, "mfrkit.input_size": size})
    assert spec.input_size == expected


def test_parse_mean_std_forms():
    spec = MI.parse_model_input({**ARCFACE_META, "mfrkit.mean": "[123.7, 116.3, 103.5]", "mfrkit.std": "58.4,57.1,57.4", "mfrkit.color": "bgr"})
    assert spec.mean == (123.7, 116.3, 103.5) and spec.std == (58.4, 57.1, 57.4) and spec.color == "BGR"
    assert MI.parse_model_input(ARCFACE_META).mean == (127.5, 127.5, 127.5)


def test_missing_keys_are_named_never_guessed():
    with pytest.raises(ModelError) as exc:
        MI.parse_model_input({"mfrkit.input_size": "112"})
    msg = str(exc.value)
    for key in ("mfrkit.color", "mfrkit.mean", "mfrkit.std", "mfrkit.align"):
        assert key in msg
    assert "--mean" in msg and "sidecar" in msg


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("mfrkit.color", "RGBA", "RGB or BGR"),
        ("mfrkit.std", "0", "positive"),
        ("mfrkit.std", "0.229,0.224,0.225", "0-255 pixel units"),
        ("mfrkit.mean", "1,2", "1 or 3"),
        ("mfrkit.input_size", "a,b", "numbers"),
        ("mfrkit.domain", "gallery", "domain"),
        ("mfrkit.embedding_dim", "2.5", "integer"),
    ],
)
def test_bad_values(key, value, match):
    with pytest.raises(MfrkitError, match=match):
        MI.parse_model_input({**ARCFACE_META, key: value})


def test_unknown_alignment_lists_valid_ones():
    with pytest.raises(UnknownNameError, match=r"mfrkit.align: unknown alignment 'mtcnn'.*arcface<S>p<P>.*dlib150.*none"):
        MI.parse_model_input({**ARCFACE_META, "mfrkit.align": "mtcnn"})


def test_every_alignment_a_family_exports_is_accepted():
    # the attention family is trained on PartialLFW's padded 160x160 crop
    spec = MI.parse_model_input({**ARCFACE_META, "mfrkit.input_size": "160", "mfrkit.align": "arcface160p30"})
    assert spec.align == "arcface160p30" and spec.input_size == (160, 160)


def test_resolve_precedence_and_origin():
    spec = MI.resolve_model_input(
        {**ARCFACE_META, "other.tool": "x"},
        sidecar={"std": 128.0, "family": "sidecarfam"},
        options={"mfrkit.color": "BGR", "mean": None},
    )
    assert spec.color == "BGR" and spec.std == (128.0,) * 3 and spec.mean == (127.5,) * 3
    assert spec.origin["color"] == "option" and spec.origin["std"] == "sidecar" and spec.origin["mean"] == "metadata"
    with pytest.raises(ModelError, match="unknown model key"):
        MI.resolve_model_input(ARCFACE_META, sidecar={"mfrkit.colour": "RGB"})


# --- providers -------------------------------------------------------------------------------------


def test_select_providers():
    cpu, cuda = "CPUExecutionProvider", "CUDAExecutionProvider"
    assert R.select_providers("auto", [cpu]) == [cpu]
    assert R.select_providers("auto", [cuda, cpu]) == [cuda, cpu]
    assert R.select_providers("cuda", [cuda, cpu]) == [cuda, cpu]
    assert R.select_providers("cpu", [cuda, cpu]) == [cpu]
    with pytest.raises(ModelError, match="no CUDA provider.*onnxruntime-gpu"):
        R.select_providers("cuda", ["AzureExecutionProvider", cpu])
    with pytest.raises(ModelError, match="unknown provider"):
        R.select_providers("tpu", [cpu])


def test_session_reports_cpu_here(tiny_model):
    m = R.OnnxModel(tiny_model)  # auto: no CUDA provider on this machine
    assert m.provider == "cpu" and m.describe()["provider"] == "cpu"
    with pytest.raises(ModelError, match="CUDA"):
        R.OnnxModel(tiny_model, provider="cuda")


# --- running ---------------------------------------------------------------------------------------


def test_model_metadata_and_run(tiny_model):
    m = R.OnnxModel(tiny_model)
    assert m.spec.input_size == (16, 16) and m.spec.family == "tiny" and m.embedding_dim == 8
    assert len(m.sha256) == 64 and m.fixed_batch is None
    x = np.random.default_rng(0).normal(size=(5, 3, 16, 16)).astype(np.float32)
    y = m.run(x)
    assert y.shape == (5, 8) and y.dtype == np.float32


def test_embeddings_do_not_depend_on_batch_size(tiny_model):
    m = R.OnnxModel(tiny_model)
    x = np.random.default_rng(1).normal(size=(11, 3, 16, 16)).astype(np.float32)
    whole = m.run(x)
    for b in (1, 3, 4):
        parts = np.concatenate([m.run(x[i : i + b]) for i in range(0, len(x), b)])
        np.testing.assert_allclose(parts, whole, atol=1e-5, rtol=0)


def test_io_binding_path_matches_plain_run(tiny_model):
    # The GPU path binds inputs/outputs to a device; exercise the same code with the CPU device.
    m = R.OnnxModel(tiny_model)
    x = np.random.default_rng(2).normal(size=(4, 3, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(m._run_bound(x, "cpu"), m._run_plain(x))
    np.testing.assert_array_equal(m._run_bound(x[:2], "cpu"), m._run_plain(x[:2]))  # rebinding reuses the binding


def test_fixed_batch_model_is_padded(tmp_path):
    fixed = R.OnnxModel(make_model(tmp_path / "fixed.onnx", batch=4))
    dyn = R.OnnxModel(make_model(tmp_path / "dyn.onnx"))
    assert fixed.fixed_batch == 4
    x = np.random.default_rng(3).normal(size=(6, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(fixed.run(x), dyn.run(x), atol=1e-5)


# --- bad models ------------------------------------------------------------------------------------


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\x01\x02")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        R.OnnxModel(bad)
    with pytest.raises(ModelError, match="no model file"):
        R.OnnxModel(tmp_path / "absent.onnx")


def test_wrong_input_rank(tmp_path):
    # a model whose input is [N, 3, 16] (rank 3) cannot be fed images
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 48])
    g = helper.make_graph([helper.make_node("Flatten", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in ARCFACE_META.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, tmp_path / "rank3.onnx")
    with pytest.raises(ModelError, match="rank 3"):
        R.OnnxModel(tmp_path / "rank3.onnx")


def test_declared_size_differs_from_graph(tmp_path):
    path = make_model(tmp_path / "m32.onnx", size=32)  # graph input 32x32, metadata says 16
    with pytest.raises(ModelError, match="32x32.*16x16"):
        R.OnnxModel(path)
    m = R.OnnxModel(path, options={"input_size": "32"})  # an explicit override fixes it
    assert m.spec.input_size == (32, 32) and m.spec.origin["input_size"] == "option"


def test_wrong_channels(tmp_path):
    path = make_model(tmp_path / "c1.onnx", input_shape=["N", 1, 16, 16])
    with pytest.raises(ModelError, match="1 channels"):
        R.OnnxModel(path)


def test_wrong_batch_shape_is_a_clear_error(tiny_model):
    m = R.OnnxModel(tiny_model)
    with pytest.raises(ModelError, match="expected \\(N, 3, 16, 16\\)"):
        m.run(np.zeros((2, 3, 20, 20), np.float32))


def test_third_party_model_needs_sidecar_or_options(tmp_path):
    path = make_model(tmp_path / "third.onnx", meta=None)
    with pytest.raises(ModelError, match="third.onnx.*does not declare"):
        R.OnnxModel(path)
    R.OnnxModel(path, options={k.split(".")[1]: v for k, v in ARCFACE_META.items()})
    MI.sidecar_path(path).write_text(json.dumps(ARCFACE_META))
    m = R.OnnxModel(path)  # found beside the model
    assert m.spec.origin["align"] == "sidecar"
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        R.OnnxModel(path, sidecar=tmp_path / "broken.json")


def test_declared_embedding_dim_checked(tmp_path):
    path = make_model(tmp_path / "d.onnx", meta={**ARCFACE_META, "mfrkit.embedding_dim": "16"})
    with pytest.raises(ModelError, match="differs from the declared embedding_dim"):
        R.OnnxModel(path)


# --- model sets ------------------------------------------------------------------------------------


def test_heterogeneous_folder_and_probe_model(tmp_path):
    folder = tmp_path / "hetero"
    make_model(folder / "ref.onnx", meta={**ARCFACE_META, "mfrkit.domain": "reference"}, seed=1)
    make_model(folder / "probe.onnx", meta={**ARCFACE_META, "mfrkit.domain": "probe"}, seed=2)
    make_model(tmp_path / "plain.onnx")
    sets = R.load_models([tmp_path])
    names = sorted(s.name for s in sets)
    assert names == ["hetero", "plain"]
    het = next(s for s in sets if s.name == "hetero")
    assert het.heterogeneous and het.reference.name == "ref" and het.probe.name == "probe"
    assert het.sha256 not in (het.reference.sha256, het.probe.sha256)
    pair = R.load_models([tmp_path / "plain.onnx"], probe_model=folder / "probe.onnx")
    assert len(pair) == 1 and pair[0].heterogeneous
    with pytest.raises(ModelError, match="reference half"):
        R.load_models([folder / "ref.onnx"])
    with pytest.raises(ModelError, match="used as the probe"):
        R.load_models([tmp_path / "plain.onnx"], probe_model=folder / "ref.onnx")


def test_folder_with_two_references_is_an_error(tmp_path):
    for i in range(2):
        make_model(tmp_path / "h" / f"r{i}.onnx", meta={**ARCFACE_META, "mfrkit.domain": "reference"})
    with pytest.raises(ModelError, match="2 reference and 0 probe"):
        R.load_models([tmp_path / "h"])
