"""insightface's IJB evaluation written out: the IJB tests' independent oracle.

:func:`insightface_features`, :func:`insightface_11` and :func:`insightface_1n` follow
``ijb_onnx.py`` / ``ijb_11.py`` / ``ijb_1n.py`` line by line (loops, ``np.unique``,
``np.flipud``, ``min(zip(...))``, ``heapq.nlargest``), with onnxruntime for the model and
nothing of mfrkit's. The release they read is :func:`tests.support.fake_data.make_release`.
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

#: insightface's ArcFace 5-point template (x shifted by 8, as its IJB scripts do), (5, 2) pixels.
SRC = np.array([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366], [33.5493, 92.3655], [62.7299, 92.2041]],
               dtype=np.float32)
SRC[:, 0] += 8.0
X_LABELS = [10**-6, 10**-5, 10**-4, 10**-3, 10**-2, 10**-1]


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
