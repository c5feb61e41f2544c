"""The highest-scoring impostor comparisons of an all-pairs result, found again from the
run's saved embeddings.

The streaming scoring (:mod:`mfrkit.bench.score.streaming`) reduces the impostor scores to
counts per bin: it knows how many impostor scores lie in each 1.5e-5-wide bin, not which
pairs they are. ``histogram.csv`` therefore tells how high the ``n``-th highest impostor
score is (the ``cut``: the lower edge of the bin where the count from the top reaches
``n``), and one more pass over the comparisons finds the pairs at or above it: each
tile's scores are compared with the cut and only the positions above it are looked at
(genuine ones dropped by their identity codes). The cost is one matrix product of the
protocol's size plus a row maximum per tile row (and a comparison on the few rows
holding a score above the cut): about 1.0x the bare product (the scoring itself costs
about 1.35x): worth it on a GPU or for protocols up to a few 1e9
comparisons on a CPU, hence :data:`DEFAULT_LIMIT`. Memory: the embeddings, one tile, and
the pairs above the cut.

It needs the vectors that were scored: ``embeddings.parquet``, written by
``mfrkit bench --save-embeddings``. The scores are computed again in float32 and can
differ from the run's in the last bits (a different summation order), so the cut is
lowered by :data:`MARGIN` (four bins, far above float32 rounding of a dot product of unit
vectors) and the final order is by the scores computed here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..embed.embeddings_file import read_embeddings
from ..results import RunResult
from .gallery import read_table
from ..score.streaming import resolve_device

#: Largest number of comparisons scored again by default, per device: about 20 s on a
#: 2-core CPU, a few seconds on a GPU.
DEFAULT_LIMIT = {"cpu": 2e9, "cuda": 2e11}
#: How far below the histogram's cut scores are looked at (four bins of 2^-16).
MARGIN = 4.0 / 2**16
EMBEDDINGS_NAME = "embeddings.parquet"


def top_impostors(ref: np.ndarray, probe: np.ndarray, ref_identity: np.ndarray, probe_identity: np.ndarray, cut: float,
                  n: int, *, tile: int = 2048, backend: str = "numpy", device: str = "cpu") -> tuple[np.ndarray, ...]:
    """Every impostor comparison scoring ``>= cut`` (fewer once ``n`` of them are known:
    then only those that can still be among the ``n`` highest), in one tiled pass.

    Parameters
    ----------
    ref, probe : (R, D), (P, D) float32, the L2-normalised embeddings of the usable images.
    ref_identity, probe_identity : (R,), (P,) int64, identity codes shared by both sides
        (a comparison of equal codes is genuine and skipped).
    cut : float, the lowest score of interest (-inf: every impostor).
    n : int, how many of the highest are wanted.
    tile : tile side.
    backend : ``numpy`` (BLAS) or ``torch`` (on ``device``: ``cuda``, or ``cpu`` in tests).

    Returns
    -------
    (rows, cols, scores): int64, int64, float32 arrays of the candidates, holding the
    ``n`` highest impostor scores and every score tied with the ``n``-th.
    """
    ref = np.ascontiguousarray(ref, np.float32)
    probe = np.ascontiguousarray(probe, np.float32)
    rows, cols, vals = [], [], []
    kept = 0
    floor = np.float32(cut) if math.isfinite(cut) else np.float32(-np.inf)
    if backend == "torch":
        import torch

        dev = torch.device(device)
        R, Q = torch.from_numpy(ref).to(dev), torch.from_numpy(probe).to(dev)
    else:
        buf = np.empty((min(tile, len(ref)), min(tile, len(probe))), np.float32)
    for r0 in range(0, len(ref), tile):
        for c0 in range(0, len(probe), tile):
            if backend == "torch":
                S = R[r0 : r0 + tile] @ Q[c0 : c0 + tile].T
                hit = (S >= float(floor)).nonzero()
                s = S[hit[:, 0], hit[:, 1]].cpu().numpy()
                hit = hit.cpu().numpy()
                r, c = hit[:, 0].astype(np.int64), hit[:, 1].astype(np.int64)
            else:
                a, b = ref[r0 : r0 + tile], probe[c0 : c0 + tile]
                S = np.matmul(a, b.T, out=buf[: len(a), : len(b)])  # one buffer for every tile
                # rows holding a score above the floor first: a row maximum costs 1/15 of
                # a comparison-and-nonzero over the tile, and most rows hold none
                rows_hit = np.flatnonzero(S.max(axis=1) >= floor)
                sub = S[rows_hit]
                rr, c = np.nonzero(sub >= floor)
                r, s = rows_hit[rr], sub[rr, c]
            r, c = r + r0, c + c0
            imp = ref_identity[r] != probe_identity[c]
            if imp.any():
                rows.append(r[imp]), cols.append(c[imp]), vals.append(s[imp])
                kept += int(imp.sum())
            if kept > max(64 * n, 100_000):  # more than needed: keep the n highest (ties too), raise the floor
                rows, cols, vals, floor = _prune(rows, cols, vals, n, floor)
                kept = len(vals[0])
    if not vals:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    rows, cols, vals, _ = _prune(rows, cols, vals, n, floor)
    return rows[0], cols[0], vals[0]


def _prune(rows, cols, vals, n, floor):
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    if len(v) > n > 0:
        kth = np.partition(v, len(v) - n)[len(v) - n]  # the n-th highest
        keep = v >= kth
        r, c, v = r[keep], c[keep], v[keep]
        floor = max(floor, kth)
    return [r], [c], [v], floor


def find_hardest_impostors(result: RunResult | dict, folder: Path, cut: float, n: int, *, limit: float | None = None,
                           device: str = "auto", cache: dict | None = None) -> pd.DataFrame | str:
    """The ``n`` highest-scoring impostor comparisons of the all-pairs result in
    ``folder`` (its ``metrics.json`` read as ``result``), or a sentence saying why they cannot
    be found.

    Parameters
    ----------
    cut : a score at or below the ``n``-th highest impostor score (from ``histogram.csv``,
        :meth:`~mfrkit.bench.report.scores.BinnedHistogram.impostor_cut`).
    limit : the most comparisons to score again (None: :data:`DEFAULT_LIMIT` of the device;
        0: never).
    device : ``auto`` | ``cuda`` | ``cpu``.
    cache : dict shared between results, keeping each ``embeddings.parquet`` read once.

    Returns
    -------
    DataFrame ``left_id, right_id, score, left_identity, right_identity``, highest score
    first (ties: by ids), or a str.
    """
    emb_path = folder.parent / EMBEDDINGS_NAME
    if not emb_path.is_file():
        return ("the run did not save its embeddings: an all-pairs protocol is scored by streaming, which keeps the "
                "impostor scores as counts per score bin (histogram.csv), not as pairs; rerun the bench with "
                "--save-embeddings and the report finds the highest-scoring impostor pairs with one more pass over "
                "the comparisons")
    images = read_table(folder, "images.csv")
    if images is None:
        return f"no images.csv in {folder}"
    fta = images["fta"].astype(str).str.lower().isin(["true", "1"])
    sides = {role: images[(images["role"] == role) & ~fta].reset_index(drop=True) for role in ("reference", "probe")}
    dev = resolve_device(device)
    limit = DEFAULT_LIMIT[dev] if limit is None else float(limit)
    size = len(sides["reference"]) * len(sides["probe"])
    if size > limit:
        return (f"finding them means scoring the {size:,} comparisons again from {EMBEDDINGS_NAME}, more than the "
                f"report's limit of {limit:,.0f} on the {dev}; write the report with `mfrkit report RUN "
                f"--impostor-pass-limit {size:.0e}` to do it (one matrix product of that size)")
    if cache is None:
        cache = {}
    key = str(emb_path)
    if key not in cache:
        try:
            cache[key] = read_embeddings(emb_path)
        except (OSError, ValueError) as exc:
            cache[key] = f"cannot read {emb_path}: {exc}"
    if isinstance(cache[key], str):
        return cache[key]
    rows, vec = cache[key]
    protocol = RunResult.of(result).protocol_info
    side_vectors = {}
    for role, side in sides.items():
        fp = protocol.manifest(role).get("fingerprint")
        sel = np.flatnonzero(((rows["role"] == role) & (rows["manifest_fingerprint"] == fp)).to_numpy())
        index = pd.Index(rows["image_id"].astype(str).to_numpy()[sel])
        at = index.get_indexer(side["image_id"].astype(str))
        if (at < 0).any():
            return f"{EMBEDDINGS_NAME} lacks {int((at < 0).sum())} {role} image(s) of the protocol (another run's file?)"
        at = sel[at]
        if rows["fta_reason"].notna().to_numpy()[at].any():
            return f"{EMBEDDINGS_NAME} has no embedding for some {role} images the run scored (another run's file?)"
        side_vectors[role] = vec[at]
    codes, _ = pd.factorize(pd.concat([sides["reference"]["identity"], sides["probe"]["identity"]]).astype(str))
    ident_r, ident_q = codes[: len(sides["reference"])], codes[len(sides["reference"]) :]
    lowered = cut - MARGIN if math.isfinite(cut) else -math.inf
    r, c, s = top_impostors(side_vectors["reference"], side_vectors["probe"], ident_r, ident_q, lowered, n,
                            tile=16384 if dev == "cuda" else 2048, backend="torch" if dev == "cuda" else "numpy",
                            device=dev)
    ref, probe = sides["reference"], sides["probe"]
    out = pd.DataFrame({
        "left_id": ref["image_id"].astype(str).to_numpy()[r], "right_id": probe["image_id"].astype(str).to_numpy()[c],
        "score": s.astype(np.float64), "left_identity": ref["identity"].astype(str).to_numpy()[r],
        "right_identity": probe["identity"].astype(str).to_numpy()[c],
    })  # fmt: skip
    out = out.sort_values(["score", "left_id", "right_id"], ascending=[False, True, True], kind="stable")
    return out.head(n).reset_index(drop=True)
