"""Tiny ONNX embedding models built in the tests: real little networks (conv, relu,
matmul) with mfrkit's preprocessing metadata, seeded, so a test can run a model through
the bench without downloading one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Metadata of a 16x16 RGB model normalised like ArcFace ((x - 127.5) / 127.5), not aligned.
ARCFACE_META = {"mfrkit.input_size": "16", "mfrkit.color": "RGB", "mfrkit.mean": "127.5", "mfrkit.std": "127.5", "mfrkit.align": "none"}
#: Metadata of a 112x112 model on ArcFace-aligned crops (no family: make_model adds one).
ARC112 = {"mfrkit.input_size": "112", "mfrkit.color": "RGB", "mfrkit.mean": "127.5", "mfrkit.std": "127.5", "mfrkit.align": "arcface112"}
#: The IJB tests' model: ARC112 of family ``tiny-ijb``.
IJB_META = {**ARC112, "mfrkit.family": "tiny-ijb"}


def make_model(
    path: Path,
    *,
    size: int = 16,
    dim: int = 8,
    meta: dict | None = ARCFACE_META,
    seed: int = 0,
    batch: int | str = "N",
    input_shape: list | None = None,
    nan: bool | str = False,
    family: str | None = "tiny",
) -> Path:
    """Conv(3->4, 3x3) -> Relu -> Flatten -> MatMul(D): a real little embedding network.

    ``nan=True`` adds the Log of a negative constant, so every output is NaN;
    ``nan="dark"`` adds the Log of the input's mean, so only images darker than the
    normalisation mean (mean input < 0) get NaN embeddings.
    """
    rng = np.random.default_rng(seed)
    w_conv = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    w_fc = rng.normal(0, 1 / np.sqrt(4 * size * size), (4 * size * size, dim)).astype(np.float32)
    shape = input_shape or [batch, 3, size, size]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, dim])
    nodes = [
        helper.make_node("Conv", ["input", "w_conv"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "w_fc"], ["e" if nan else "embedding"]),
    ]
    inits = [numpy_helper.from_array(w_conv, "w_conv"), numpy_helper.from_array(w_fc, "w_fc")]
    if nan == "dark":
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
        nodes += [
            helper.make_node("ReduceMean", ["input"], ["mu"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Log", ["mu"], ["lmu"]),
            helper.make_node("Unsqueeze", ["lmu", "one"], ["l"]),
            helper.make_node("Add", ["e", "l"], ["embedding"]),
        ]
    elif nan:
        inits.append(numpy_helper.from_array(np.array([-1.0], np.float32), "neg"))
        nodes += [helper.make_node("Log", ["neg"], ["l"]), helper.make_node("Add", ["e", "l"], ["embedding"])]
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    m = dict(meta or {})
    if family and meta is not None:
        m.setdefault("mfrkit.family", family)
    for k, v in m.items():
        p = model.metadata_props.add()
        p.key, p.value = k, str(v)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_ijb_model(path: Path, *, dim: int = 32, seed: int = 0) -> Path:
    """Conv(3->8, 5x5, stride 2) -> Relu -> AveragePool(4) -> Flatten -> MatMul(dim): a fixed
    little network on 112x112 RGB crops whose raw (unnormalised) outputs differ in norm."""
    rng = np.random.default_rng(seed)
    w_conv = rng.normal(0, 0.2, (8, 3, 5, 5)).astype(np.float32)
    w_fc = rng.normal(0, 1 / np.sqrt(8 * 14 * 14), (8 * 14 * 14, dim)).astype(np.float32)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 112, 112])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])
    nodes = [
        helper.make_node("Conv", ["input", "w_conv"], ["c"], pads=[2, 2, 2, 2], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("AveragePool", ["r"], ["p"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "w_fc"], ["embedding"]),
    ]
    graph = helper.make_graph(nodes, "tiny-ijb", [x], [y], [numpy_helper.from_array(w_conv, "w_conv"),
                                                           numpy_helper.from_array(w_fc, "w_fc")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for k, v in IJB_META.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
