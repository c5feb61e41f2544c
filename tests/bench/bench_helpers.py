"""Helpers for the bench tests: tiny ONNX models, tiny datasets and protocol folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mfrkit.data.imageio import write_image
from mfrkit.data.manifest import Manifest, make_table, write_manifest

ARCFACE_META = {"mfrkit.input_size": "16", "mfrkit.color": "RGB", "mfrkit.mean": "127.5", "mfrkit.std": "127.5", "mfrkit.align": "none"}


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


def make_dataset(root: Path, *, n_ids: int = 4, per_id: int = 3, size: int = 24, seed: int = 0, masked_every: int = 0) -> Manifest:
    """Identity-folder PNGs: each identity a random base image, each capture the base plus noise.

    With ``masked_every`` > 0, every that-many-th capture is labelled a masked variant
    (``mask_type`` alternating surgical / cloth) so breakdowns have groups.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_ids):
        base = rng.integers(0, 256, (size, size, 3)).astype(np.int16)
        for j in range(per_id):
            img = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
            rel = f"id{i}/img{j}.png"
            data = write_image(root / rel, img)
            masked = masked_every > 0 and j % masked_every == masked_every - 1
            rows.append(
                {
                    "image_id": rel,
                    "path": rel,
                    "identity": f"id{i}",
                    "variant": "masked" if masked else "unmasked",
                    "mask_type": (("surgical", "cloth")[i % 2]) if masked else None,
                    "status": "ok",
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "width": size,
                    "height": size,
                    "bytes": len(data),
                }
            )
    m = Manifest(make_table(rows), {"name": root.name, "root": "."})
    write_manifest(m, root / "manifest.parquet")
    return m


def all_pairs(manifest: Manifest, n_folds: int = 2) -> list[tuple]:
    """Every unordered pair of images, labelled, spread over folds."""
    t = manifest.table
    ids, idents = t["image_id"].tolist(), t["identity"].tolist()
    out = []
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            out.append((len(out) % n_folds, ids[a], ids[b], int(idents[a] == idents[b])))
    return out


def write_protocol(folder: Path, manifests, *, name: str, pairs=None, gallery=None, probes=None, distractors=()) -> Path:
    """A protocol folder written by the protocol engine.

    ``manifests``: a list of one manifest (both roles) or a dict role -> manifest.
    ``pairs``: (fold, left_id, right_id, label) tuples; ``gallery``: image ids (those in
    ``distractors`` flagged as such); ``probes``: (image_id, mated[, mate_id]) tuples.
    Identities are left empty: the bench takes them from the manifests.
    """
    import pandas as pd

    from mfrkit.protocols import Protocol, save_protocol

    roles = manifests if isinstance(manifests, dict) else {"reference": manifests[0], "probe": manifests[0]}
    info = {"name": name, "spec": None, "seed": 0}
    if pairs is not None:
        df = pd.DataFrame(pairs, columns=["fold", "left_id", "right_id", "label"])
        protocol = Protocol(info={**info, "kind": "verification"}, manifests=roles, pairs=df)
    else:
        g = pd.DataFrame({"image_id": list(gallery), "identity": "", "distractor": [int(i in distractors) for i in gallery]})
        rows = [(p[0], "", int(p[1]), p[2] if len(p) > 2 else "") for p in probes]
        pr = pd.DataFrame(rows, columns=["image_id", "identity", "mated", "mate_id"])
        protocol = Protocol(info={**info, "kind": "identification"}, manifests=roles, gallery=g, probes=pr)
    save_protocol(protocol, folder, overwrite=True)
    return folder


def sample_and_masked_copy(root: Path) -> tuple[Path, Path]:
    """The demo-like data the report tests score: the sample of real photos plus an image
    without a face (a failure to acquire), scanned, and its masked copy (seed 0).
    Returns (sample manifest, masked manifest). Call with ``$MFRKIT_HOME`` set."""
    from mfrkit.data.manifest import MANIFEST_NAME
    from mfrkit.data.sample import build_sample
    from mfrkit.data.scan import scan_dataset
    from mfrkit.maskgen.synth_job import SynthConfig, synthesize

    sample = root / "sample"
    build_sample(sample, captures=4, seed=0)
    write_image(sample / "grace_hopper" / "blank.jpg", np.full((250, 250, 3), 128, np.uint8))  # no face in it
    manifest, _ = scan_dataset(sample, layout="imagefolder", name="demo")
    manifest.meta["root"] = "."
    write_manifest(manifest, sample / MANIFEST_NAME)
    synthesize(manifest, root / "masked", SynthConfig(seed=0))
    return sample / MANIFEST_NAME, root / "masked" / MANIFEST_NAME
