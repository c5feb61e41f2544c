"""A small IJB-like release in insightface's exact layout, and insightface's steps written out.

:func:`make_release` writes ``IJBC/loose_crop/*.jpg`` and ``IJBC/meta/`` with the six
files insightface's IJB scripts read, in their text formats. Each subject has a smooth
random "face" texture; every face image is that texture under a random similarity
warp plus noise, and its 5 points are the ArcFace template's points under the same
warp (so alignment with them undoes the warp). Gallery templates go to G1 (first half
of the subjects) or G2; every subject also has probe templates; medias group some faces.

:func:`insightface_11` and :func:`insightface_1n` follow ``ijb_onnx.py`` /
``ijb_11.py`` / ``ijb_1n.py`` line by line (loops, ``np.unique``, ``np.flipud``,
``min(zip(...))``, ``heapq.nlargest``), with onnxruntime for the model: the test's
independent oracle.
"""

from __future__ import annotations

import heapq
import math
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pandas as pd
from skimage import transform as trans
from sklearn.metrics import roc_curve
from sklearn.preprocessing import normalize

SRC = np.array([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366], [33.5493, 92.3655], [62.7299, 92.2041]],
               dtype=np.float32)
SRC[:, 0] += 8.0
X_LABELS = [10**-6, 10**-5, 10**-4, 10**-3, 10**-2, 10**-1]


def make_release(root: Path, *, n_subjects: int = 16, probes_per_subject: int = 4, seed: int = 0, size: int = 128,
                 noise: float = 25.0) -> Path:
    """Write the release under ``root/IJBC``; returns that folder (about 240 faces)."""
    rng = np.random.default_rng(seed)
    base = root / "IJBC"
    (base / "loose_crop").mkdir(parents=True)
    (base / "meta").mkdir()
    faces, lmk, gal, prb = [], [], {"G1": [], "G2": []}, []
    tid, mid, img = 0, 10_000, 0
    textures = []
    for s in range(n_subjects):
        small = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
        textures.append(cv2.resize(small, (112, 112), interpolation=cv2.INTER_CUBIC))
    templates = []  # (template id, subject, kind)
    for s in range(n_subjects):
        templates.append((s, "G1" if s < n_subjects // 2 else "G2"))
        templates += [(s, "probe")] * probes_per_subject
    for s, kind in templates:
        tid += 1
        n_faces = int(rng.integers(1, 6))
        media = None
        for f in range(n_faces):
            if media is None or rng.random() < 0.5:
                mid += 1
                media = mid
            img += 1
            name = f"{img}.jpg"
            angle, scale = rng.normal(0, 8), rng.uniform(0.9, 1.1)
            shift = rng.normal(0, 4, 2) + (size - 112) / 2
            M = cv2.getRotationMatrix2D((56, 56), angle, scale)
            M[:, 2] += shift
            face = textures[s].astype(np.float32) + rng.normal(0, noise, (112, 112, 3))
            face = np.clip(face, 0, 255).astype(np.uint8)
            picture = cv2.warpAffine(face, M, (size, size), borderValue=(90, 90, 90))
            cv2.imwrite(str(base / "loose_crop" / name), picture[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            pts = SRC @ M[:, :2].T + M[:, 2] + rng.normal(0, 0.3, (5, 2))
            score = rng.uniform(0.5, 1.0)
            faces.append(f"{name} {tid} {media}")
            lmk.append(" ".join([name] + [f"{v:.3f}" for v in pts.reshape(-1)] + [f"{score:.6f}"]))
            row = f"{tid},{s + 1},{name}"
            (gal[kind] if kind != "probe" else prb).append(row)
    meta = base / "meta"
    (meta / "ijbc_face_tid_mid.txt").write_text("\n".join(faces) + "\n")
    (meta / "ijbc_name_5pts_score.txt").write_text("\n".join(lmk) + "\n")
    for g, rows in gal.items():
        (meta / f"ijbc_1N_gallery_{g}.csv").write_text("TEMPLATE_ID,SUBJECT_ID,FILENAME\n" + "\n".join(rows) + "\n")
    (meta / "ijbc_1N_probe_mixed.csv").write_text("TEMPLATE_ID,SUBJECT_ID,FILENAME\n" + "\n".join(prb) + "\n")
    gallery_t = [(int(r.split(",")[0]), int(r.split(",")[1])) for rows in gal.values() for r in rows]
    probe_t = [(int(r.split(",")[0]), int(r.split(",")[1])) for r in prb]
    pairs = sorted({(g, p, int(gs == ps)) for g, gs in gallery_t for p, ps in probe_t})
    (meta / "ijbc_template_pair_label.txt").write_text("\n".join(f"{a} {b} {c}" for a, b, c in pairs) + "\n")
    return base


# --- insightface's steps, written out -----------------------------------------------------------------


def insightface_features(base: Path, model_file: Path, images: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``ijb_onnx.py``'s AlignedDataSet + extract: (n, 2D) [emb, emb of the flipped crop], scores;
    ``images``: face name -> another file to read for it (a masked copy)."""
    sess = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    lines = (base / "meta" / "ijbc_name_5pts_score.txt").read_text().splitlines()
    feats, scores = [], []
    for line in lines:
        parts = line.strip().split(" ")
        path = images[parts[0]] if images else base / "loose_crop" / parts[0]
        im = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        lm = np.array([float(x) for x in parts[1:-1]], dtype=np.float32).reshape((5, 2))
        st = trans.SimilarityTransform()
        st.estimate(lm, SRC)
        crop = cv2.warpAffine(im, st.params[0:2, :], (112, 112), borderValue=0.0)
        both = np.stack([crop, np.fliplr(crop)]).astype(np.float32).transpose(0, 3, 1, 2)
        out = sess.run(None, {sess.get_inputs()[0].name: (both - 127.5) / 127.5})[0]
        feats.append(out.reshape(-1))
        scores.append(parts[-1])
    return np.array(feats, np.float32), np.array(scores).astype(np.float32)


def _input_feats(img_feats, faceness, flip=True, norm=True, detector=True):
    d = img_feats.shape[1] // 2
    x = img_feats[:, :d] + img_feats[:, d:] if flip else img_feats[:, :d]
    if not norm:
        x = x / np.sqrt(np.sum(x**2, -1, keepdims=True))
    if detector:
        x = x * faceness[:, np.newaxis]
    return x


def _image2template(img_feats, templates, medias, choose=None):
    unique_templates = np.unique(templates if choose is None else choose)
    template_feats = np.zeros((len(unique_templates), img_feats.shape[1]))
    for c, uqt in enumerate(unique_templates):
        (ind_t,) = np.where(templates == uqt)
        face_norm_feats = img_feats[ind_t]
        face_medias = medias[ind_t]
        unique_medias, counts = np.unique(face_medias, return_counts=True)
        media_norm_feats = []
        for u, ct in zip(unique_medias, counts):
            (ind_m,) = np.where(face_medias == u)
            media_norm_feats += [face_norm_feats[ind_m]] if ct == 1 else [np.mean(face_norm_feats[ind_m], axis=0, keepdims=True)]
        template_feats[c] = np.sum(np.array(media_norm_feats), axis=0)
    return template_feats, unique_templates


def insightface_11(base: Path, img_feats, faceness, **modes) -> list[float]:
    """TAR at 1e-6 ... 1e-1 as ijb_onnx.py prints them (as fractions, not percent)."""
    meta = pd.read_csv(base / "meta" / "ijbc_face_tid_mid.txt", sep=" ", header=None).values
    templates, medias = meta[:, 1].astype(int), meta[:, 2].astype(int)
    pairs = pd.read_csv(base / "meta" / "ijbc_template_pair_label.txt", sep=" ", header=None).values
    p1, p2, label = pairs[:, 0].astype(int), pairs[:, 1].astype(int), pairs[:, 2].astype(int)
    feats, uniq = _image2template(_input_feats(img_feats, faceness, **modes), templates, medias)
    feats = normalize(feats)
    template2id = np.zeros((max(uniq) + 1, 1), dtype=int)
    for c, u in enumerate(uniq):
        template2id[u] = c
    score = np.sum(feats[template2id[p1]] * feats[template2id[p2]], -1).flatten()
    fpr, tpr, _ = roc_curve(label, score)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    out = []
    for x in X_LABELS:
        _, i = min(list(zip(abs(fpr - x), range(len(fpr)))))
        out.append(float(tpr[i]))
    return out


def insightface_1n(base: Path, img_feats, faceness) -> dict:
    """ijb_1n.py's top1/top5/top10 and TPIR at FPIR 0.01, 0.1 (gallery G1 + G2)."""
    meta = np.loadtxt(base / "meta" / "ijbc_face_tid_mid.txt", dtype=str)
    templates, medias = meta[:, 1].astype(int), meta[:, 2].astype(int)

    def read(name):
        m = np.loadtxt(base / "meta" / name, dtype=str, skiprows=1, delimiter=",")
        return m[:, 0].astype(int), m[:, 1].astype(int)

    g1, s1 = read("ijbc_1N_gallery_G1.csv")
    g2, s2 = read("ijbc_1N_gallery_G2.csv")
    gt, gs = np.concatenate([g1, g2]), np.concatenate([s1, s2])
    x = _input_feats(img_feats, faceness)

    def pool(choose_t, choose_s):
        uniq, idx = np.unique(choose_t, return_index=True)
        f, _ = _image2template(x, templates, medias, choose_t)
        return f / np.sqrt(np.sum(f**2, -1, keepdims=True)), choose_s[idx]

    gallery, gallery_ids = pool(gt, gs)
    pt, ps = read("ijbc_1N_probe_mixed.csv")
    probe, probe_ids = pool(pt, ps)
    mask = [[i for i, v in enumerate(gallery_ids) if v == q][0] for q in probe_ids]
    sim = np.dot(probe, gallery.T)
    top = np.argsort(-sim)
    out = {f"top{k}": sum(mask[i] in top[i, :k] for i in range(len(mask))) / len(mask) for k in (1, 5, 10)}
    fars = [0.01, 0.1]
    required = [math.ceil(len(mask) * f) for f in fars]
    pos = []
    for i in range(len(mask)):
        pos.append(sim[i, mask[i]])
        sim[i, mask[i]] = -2.0
    pos = np.array(pos)
    neg = heapq.nlargest(max(required), sim[np.where(sim > -2.0)])
    for f, k in zip(fars, required):
        out[f"tpir@{f}"] = float(np.sum(pos > neg[k - 1]) / len(mask))
    return out


# --- a fixed small model -----------------------------------------------------------------------------

ARC112 = {"mfrkit.input_size": "112", "mfrkit.color": "RGB", "mfrkit.mean": "127.5", "mfrkit.std": "127.5",
          "mfrkit.align": "arcface112", "mfrkit.family": "tiny-ijb"}


def make_ijb_model(path: Path, *, dim: int = 32, seed: int = 0) -> Path:
    """Conv(3->8, 5x5, stride 2) -> Relu -> AveragePool(4) -> Flatten -> MatMul(dim): a fixed
    little network on 112x112 RGB crops whose raw (unnormalised) outputs differ in norm."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

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
    for k, v in ARC112.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_masked_copy(release: Path, out: Path, *, skip_every: int = 0, keep_every: int = 1) -> Path:
    """A stand-in for ``mfrkit synth`` over the loose-crop manifest: each crop with its lower
    half painted (same size and geometry), ``source_id`` = the face's name, in a dataset
    folder with its own manifest; with ``skip_every`` every that-many-th face gets none
    (as synth finding no face), with ``keep_every`` only every that-many-th has one.
    Returns the manifest path."""
    import hashlib

    from mfrkit.data.manifest import Manifest, make_table, write_manifest

    rows = []
    names = [line.split(" ")[0] for line in (release / "meta" / "ijbc_face_tid_mid.txt").read_text().splitlines()]
    (out / "loose_crop").mkdir(parents=True)
    for k, name in enumerate(names):
        if (skip_every and k % skip_every == skip_every - 1) or k % keep_every:
            continue
        img = cv2.imread(str(release / "loose_crop" / name))
        img[img.shape[0] // 2:] = (200, 60, 40)
        rel = f"loose_crop/{Path(name).stem}_surgical.jpg"
        cv2.imwrite(str(out / rel), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        data = (out / rel).read_bytes()
        rows.append({"image_id": rel, "path": rel, "identity": None, "variant": "masked", "source_id": name,
                     "mask_type": "surgical", "status": "ok", "sha256": hashlib.sha256(data).hexdigest(),
                     "width": img.shape[1], "height": img.shape[0], "bytes": len(data)})
    write_manifest(Manifest(make_table(rows), {"name": "ijbc-masked", "root": "."}), out / "manifest.parquet")
    return out / "manifest.parquet"


def insightface_11_two_sides(base: Path, feats_ref, feats_probe, faceness) -> list[float]:
    """insightface_11 with TEMPLATE_1 pooled from ``feats_ref`` and TEMPLATE_2 from
    ``feats_probe`` (the masked-probe protocol; every face embedded on both sides)."""
    meta = pd.read_csv(base / "meta" / "ijbc_face_tid_mid.txt", sep=" ", header=None).values
    templates, medias = meta[:, 1].astype(int), meta[:, 2].astype(int)
    pairs = pd.read_csv(base / "meta" / "ijbc_template_pair_label.txt", sep=" ", header=None).values
    p1, p2, label = pairs[:, 0].astype(int), pairs[:, 1].astype(int), pairs[:, 2].astype(int)
    out_feats = []
    for f in (feats_ref, feats_probe):
        t, uniq = _image2template(_input_feats(f, faceness), templates, medias)
        out_feats.append(normalize(t))
    template2id = np.zeros((max(uniq) + 1, 1), dtype=int)
    for c, u in enumerate(uniq):
        template2id[u] = c
    score = np.sum(out_feats[0][template2id[p1]] * out_feats[1][template2id[p2]], -1).flatten()
    fpr, tpr, _ = roc_curve(label, score)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    return [float(tpr[min(list(zip(abs(fpr - x), range(len(fpr)))))[1]]) for x in X_LABELS]
