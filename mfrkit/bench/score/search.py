"""Cosine scores: 1:1 pairs, and blocked 1:N search with a streaming top-k.

Embeddings are L2-normalised, so cosine similarity is a dot product. 1:N never holds
the probes x gallery matrix: it multiplies blocks and keeps, per probe, the k best
gallery entries seen so far, so memory grows with probes x k. On a GPU (torch with
CUDA) the blocks run there; otherwise numpy does it, skipping most of the selection
work with a per-probe running k-th-best threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import MfrkitError

SEARCH_DEVICES = ("auto", "cuda", "cpu")


class ScoringError(MfrkitError):
    """Inputs to scoring are inconsistent (shapes, indices)."""


# --- 1:1 -------------------------------------------------------------------------------------------


def pair_scores(
    left: np.ndarray,
    right: np.ndarray,
    *,
    left_index: np.ndarray | None = None,
    right_index: np.ndarray | None = None,
    left_ok: np.ndarray | None = None,
    right_ok: np.ndarray | None = None,
    chunk: int = 8192,
) -> np.ndarray:
    """Cosine similarity of pairs.

    Parameters
    ----------
    left, right : ndarray of shape (n_left, D) and (n_right, D), L2-normalised
    left_index, right_index : ndarray of int, shape (n,), optional
        Rows forming the pairs; without them, pairs are row-aligned (``n_left == n_right``).
    left_ok, right_ok : ndarray of bool, shapes (n_left,) and (n_right,), optional
        False where that image failed to acquire.
    chunk : int
        Pairs gathered per vectorised step (bounds temporary memory).

    Returns
    -------
    ndarray of shape (n,), float64; -inf where either side failed (a rejection at any
    threshold, see :mod:`mfrkit.bench.metrics`).
    """
    a, b = np.asarray(left), np.asarray(right)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ScoringError(f"pair embeddings must be (n, D) arrays of one D, got {a.shape} and {b.shape}")
    ia = np.arange(len(a)) if left_index is None else np.asarray(left_index, np.int64)
    ib = np.arange(len(b)) if right_index is None else np.asarray(right_index, np.int64)
    if ia.shape != ib.shape or ia.ndim != 1:
        raise ScoringError(f"need as many left as right rows, got {ia.shape} and {ib.shape}")
    if len(ia) and (ia.min() < 0 or ia.max() >= len(a) or ib.min() < 0 or ib.max() >= len(b)):
        raise ScoringError("pair index out of range")
    out = np.empty(len(ia), np.float64)
    for s in range(0, len(ia), chunk):
        # gather, multiply in place, sum: memory-bound, so no float64 temporaries
        x = np.take(a, ia[s : s + chunk], axis=0)
        x *= np.take(b, ib[s : s + chunk], axis=0)
        out[s : s + chunk] = x.sum(1)
    bad = np.zeros(len(ia), bool)
    if left_ok is not None:
        bad |= ~np.asarray(left_ok, bool)[ia]
    if right_ok is not None:
        bad |= ~np.asarray(right_ok, bool)[ib]
    out[bad] = -np.inf
    return out


# --- 1:N -------------------------------------------------------------------------------------------


def resolve_search_device(device: str = "auto") -> str:
    """``cuda`` when requested or (``auto``) when torch sees a GPU, else ``cpu``."""
    if device not in SEARCH_DEVICES:
        raise ScoringError(f"unknown search device {device!r}; choose one of: {', '.join(SEARCH_DEVICES)}")
    if device == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if device == "cuda" and not has_cuda:
        raise ScoringError("search on cuda was requested but torch sees no CUDA device")
    return "cuda" if has_cuda else "cpu"


def _merge_numpy(best_s, best_i, cand_s, cand_i, k):
    """Keep the k largest of (best, cand) per row; both (rows, *) arrays."""
    s = np.concatenate([best_s, cand_s], axis=1)
    i = np.concatenate([best_i, cand_i], axis=1)
    if s.shape[1] > k:
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        s = np.take_along_axis(s, part, 1)
        i = np.take_along_axis(i, part, 1)
    return s, i


_TILE = 256


def _candidates(S: np.ndarray, skip: int, kth: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Entries of ``S[:, skip:]`` above their row's ``kth``, as (rows, columns) sorted by row.

    Most blocks hold only a few such entries, so instead of comparing and scanning the
    whole block the columns are cut into tiles of 256: one pass takes each tile's
    maximum, and only the tiles whose maximum beats the bar are looked into. Returns
    None when a quarter of the entries or more qualify (the caller then selects densely).
    """
    R, n = S.shape
    nt = (n - skip) // _TILE
    end = skip + nt * _TILE
    rows, cols = [], []
    if nt:
        tile_max = S[:, skip:end].reshape(R, nt, _TILE).max(axis=2)
        ri, ti = np.nonzero(tile_max > kth[:, None])
        if len(ri) * 4 > R * nt:
            # most tiles qualify (the first block after the seed): scan the block directly
            r, c = np.nonzero(S[:, skip:] > kth[:, None])
            return None if len(r) * 4 > R * (n - skip) else (r, c + skip)
        if len(ri):
            c = skip + ti[:, None] * _TILE + np.arange(_TILE)
            r2, c2 = np.nonzero(S[ri[:, None], c] > kth[ri][:, None])
            rows.append(ri[r2])
            cols.append(c[r2, c2])
    if end < n:
        r3, c3 = np.nonzero(S[:, end:] > kth[:, None])
        rows.append(r3)
        cols.append(c3 + end)
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    r, c = np.concatenate(rows), np.concatenate(cols)
    order = np.argsort(r, kind="stable")
    return r[order], c[order]


def _topk_numpy(Q, G, k, probe_block, gallery_block, progress):
    P = len(Q)
    out_s = np.full((P, k), -np.inf, np.float32)
    out_i = np.full((P, k), -1, np.int64)
    seed_cols = max(4 * k, 2048)
    pb, gb = min(probe_block, P), min(gallery_block, len(G))
    # One score buffer for every block: no fresh 100 MB allocation (and its page faults)
    # per block. Views of the flat buffer stay C-contiguous for BLAS.
    s_buf = np.empty(pb * gb, np.float32)
    for p0 in range(0, P, pb):
        q = Q[p0 : p0 + pb]
        best_s = np.full((len(q), k), -np.inf, np.float32)
        best_i = np.full((len(q), k), -1, np.int64)
        for g0 in range(0, len(G), gb):
            g = G[g0 : g0 + gb]
            S = np.matmul(q, g.T, out=s_buf[: len(q) * len(g)].reshape(len(q), len(g)))
            skip = 0
            if g0 == 0:
                # Seed each row's top-k from the first columns, so the running k-th best is
                # already a useful bar for the rest of this block.
                skip = min(seed_cols, S.shape[1])
                cols = np.broadcast_to(np.arange(skip, dtype=np.int64), (len(q), skip))
                best_s, best_i = _merge_numpy(best_s, best_i, S[:, :skip], cols, k)
            if skip == S.shape[1]:
                continue
            # Only entries above a row's current k-th best can enter its top-k.
            found = _candidates(S, skip, best_s.min(1))
            if found is None:
                # many candidates (first blocks, adversarial scores): select densely on row
                # chunks, so the int64 partition indices stay small
                for r0 in range(0, len(q), 256):
                    rr = slice(r0, r0 + 256)
                    cand_s = S[rr, skip:]
                    cand_i = np.broadcast_to(np.arange(g0 + skip, g0 + S.shape[1], dtype=np.int64), cand_s.shape)
                    best_s[rr], best_i[rr] = _merge_numpy(best_s[rr], best_i[rr], cand_s, cand_i, k)
                continue
            r, c = found
            if len(r) == 0:
                continue
            counts = np.bincount(r, minlength=len(q))
            rows = np.flatnonzero(counts)
            width = int(counts.max())
            slot = np.searchsorted(rows, r)  # r is sorted: each candidate's row among `rows`
            pos = np.arange(len(r)) - np.r_[0, np.cumsum(counts[rows])[:-1]][slot]
            cand_s = np.full((len(rows), width), -np.inf, np.float32)
            cand_i = np.full((len(rows), width), -1, np.int64)
            cand_s[slot, pos] = S[r, c]
            cand_i[slot, pos] = c + g0
            best_s[rows], best_i[rows] = _merge_numpy(best_s[rows], best_i[rows], cand_s, cand_i, k)
        out_s[p0 : p0 + len(q)], out_i[p0 : p0 + len(q)] = best_s, best_i
        if progress:
            progress(len(q))
    return out_s, out_i


def _topk_torch(Q, G, k, probe_block, gallery_block, device, progress):
    import torch

    dev = torch.device(device)
    P = len(Q)
    out_s = np.full((P, k), -np.inf, np.float32)
    out_i = np.full((P, k), -1, np.int64)
    G_t = torch.from_numpy(np.ascontiguousarray(G)).to(dev)
    with torch.inference_mode():
        for p0 in range(0, P, probe_block):
            q = torch.from_numpy(np.ascontiguousarray(Q[p0 : p0 + probe_block])).to(dev)
            best_s = torch.full((len(q), k), -float("inf"), device=dev)
            best_i = torch.full((len(q), k), -1, dtype=torch.int64, device=dev)
            for g0 in range(0, len(G), gallery_block):
                S = q @ G_t[g0 : g0 + gallery_block].T
                kk = min(k, S.shape[1])
                s, i = torch.topk(S, kk, dim=1)
                s = torch.cat([best_s, s], 1)
                i = torch.cat([best_i, i + g0], 1)
                best_s, sel = torch.topk(s, k, dim=1)
                best_i = torch.gather(i, 1, sel)
            out_s[p0 : p0 + len(q)] = best_s.cpu().numpy()
            out_i[p0 : p0 + len(q)] = best_i.cpu().numpy()
            if progress:
                progress(len(q))
    return out_s, out_i


def topk_search(
    probes: np.ndarray,
    gallery: np.ndarray,
    k: int,
    *,
    device: str = "auto",
    probe_block: int = 1024,
    gallery_block: int = 8192,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """The ``k`` most similar gallery entries of each probe, by blocked matrix products.

    Memory: one (probe_block, gallery_block) float32 block plus (n_probes, k) results;
    never n_probes x n_gallery.

    Parameters
    ----------
    probes : ndarray of shape (P, D), float32, L2-normalised
    gallery : ndarray of shape (G, D), float32, L2-normalised
    k : int >= 1
    device : ``auto`` | ``cuda`` | ``cpu``
        ``cuda`` uses torch on the GPU; ``cpu`` uses numpy.

    Returns
    -------
    scores : ndarray of shape (P, k), float32, each row in decreasing order; -inf padding
        when ``G < k``. Among equal scores, lower gallery indices come first.
    indices : ndarray of shape (P, k), int64; -1 padding.
    device : str, the device used.
    """
    Q = np.ascontiguousarray(probes, dtype=np.float32)
    Gm = np.ascontiguousarray(gallery, dtype=np.float32)
    if Q.ndim != 2 or Gm.ndim != 2 or (len(Gm) and Q.shape[1] != Gm.shape[1]):
        raise ScoringError(f"probes and gallery must be (P, D) and (G, D), got {Q.shape} and {Gm.shape}")
    if k < 1:
        raise ScoringError(f"k must be >= 1, got {k}")
    if probe_block < 1 or gallery_block < 1:
        raise ScoringError("block sizes must be positive")
    used = resolve_search_device(device)
    if len(Gm) == 0 or len(Q) == 0:
        return np.full((len(Q), k), -np.inf, np.float32), np.full((len(Q), k), -1, np.int64), used
    if used == "cuda":
        s, i = _topk_torch(Q, Gm, k, probe_block, gallery_block, "cuda", progress)
    else:
        s, i = _topk_numpy(Q, Gm, k, probe_block, gallery_block, progress)
    # deterministic order: score descending, then gallery index ascending (-1 padding last)
    order = np.lexsort((np.where(i < 0, np.iinfo(np.int64).max, i), -s), axis=1)
    return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1), used


@dataclass
class SearchResult:
    """1:N search of every probe against gallery templates.

    Attributes
    ----------
    top_scores, top_index : ndarray of shape (P, k): candidate list of each probe.
    ranks : ndarray of shape (P,), float64: rank of the mate (ties count as misses, as in
        :func:`mfrkit.bench.metrics.mate_ranks`), exact up to ``k``; +inf beyond ``k`` or for
        FtA; NaN for non-mated probes.
    mated_scores : ndarray of shape (P,): score against the mate's template (-inf for FtA
        or a mate without a template; NaN for non-mated probes).
    best_scores : ndarray of shape (P,): best gallery score (-inf for FtA).
    device : str
    """

    top_scores: np.ndarray
    top_index: np.ndarray
    ranks: np.ndarray
    mated_scores: np.ndarray
    best_scores: np.ndarray
    device: str


def _search_k1(Q, ok, gallery, k, device, probe_block, gallery_block, progress=None):
    """Top-(k+1) of the usable probes (FtA rows: zero vectors, then -inf / -1 lists)."""
    Qz = np.where(ok[:, None], Q, 0.0).astype(np.float32)
    s, idx, used = topk_search(
        Qz, gallery, k + 1, device=device, probe_block=probe_block, gallery_block=gallery_block, progress=progress
    )
    s[~ok], idx[~ok] = -np.inf, -1
    return Qz, s, idx, used


def _result(s, idx, ok, ranks, mated_scores, used, k) -> "SearchResult":
    return SearchResult(
        top_scores=s[:, :k],
        top_index=idx[:, :k],
        ranks=ranks,
        mated_scores=mated_scores,
        best_scores=np.where(ok, s[:, 0], -np.inf).astype(np.float64),
        device=used,
    )


def identify(
    probes: np.ndarray,
    probe_ok: np.ndarray,
    templates: np.ndarray,
    mate_index: np.ndarray,
    *,
    k: int = 20,
    device: str = "auto",
    probe_block: int = 1024,
    gallery_block: int = 8192,
    progress: Callable[[int], None] | None = None,
) -> SearchResult:
    """Rank each probe's mate among gallery templates without the dense score matrix.

    The search keeps ``k + 1`` candidates internally: if the mate is among them with a
    score above the (k+1)-th, every non-mate scoring ``>=`` the mate is in the list too and
    the rank is exact; otherwise its rank is above ``k``. So ranks equal
    :func:`~mfrkit.bench.metrics.mate_ranks` on the dense matrix for every rank ``<= k``.

    Parameters
    ----------
    probes : ndarray (P, D), L2-normalised; probe_ok : bool (P,), False for FtA probes.
    templates : ndarray (T, D), L2-normalised, one per enrolled identity.
    mate_index : int (P,): template of the probe's identity; -1 for non-mated probes,
        -2 for a mated probe whose identity has no template (all its gallery images FtA).
    k : int, candidate-list length (and the largest rank reported).
    """
    Q = np.asarray(probes, np.float32)
    ok = np.asarray(probe_ok, bool)
    m = np.asarray(mate_index, np.int64)
    if len(ok) != len(Q) or len(m) != len(Q):
        raise ScoringError("probes, probe_ok and mate_index differ in length")
    if (m >= len(templates)).any() or (m < -2).any():
        raise ScoringError("mate_index out of range")
    Qz, s, idx, used = _search_k1(Q, ok, templates, k, device, probe_block, gallery_block, progress)
    mated = m >= 0
    hit = idx == m[:, None]
    in_list = hit.any(1) & mated
    pos = hit.argmax(1)
    list_score = s[np.arange(len(s)), pos]
    mated_scores = np.full(len(Q), np.nan)
    direct = np.einsum("ij,ij->i", Qz[mated], np.asarray(templates, np.float32)[m[mated]]) if mated.any() else []
    mated_scores[mated] = direct
    mated_scores[in_list] = list_score[in_list]  # the search's own value, so ranks and scores agree
    mated_scores[(m == -2) | (~ok & (m != -1))] = -np.inf
    ranks = np.full(len(Q), np.nan)
    ranks[mated | (m == -2)] = np.inf
    # non-mates in the list scoring >= the mate; the mate itself is excluded by index
    ge = ((s >= list_score[:, None]) & ~hit & (idx >= 0)).sum(1)
    exact = in_list & ok & (1 + ge <= k)
    ranks[exact] = 1.0 + ge[exact]
    return _result(s, idx, ok, ranks, mated_scores, used, k)


def identify_with_distractors(
    probes: np.ndarray,
    probe_ok: np.ndarray,
    distractors: np.ndarray,
    mates: np.ndarray,
    mate_ok: np.ndarray,
    *,
    k: int = 20,
    device: str = "auto",
    probe_block: int = 1024,
    gallery_block: int = 8192,
) -> SearchResult:
    """MegaFace-style search: each probe row against the distractors plus its own single mate.

    The ranks equal :func:`~mfrkit.bench.metrics.mate_ranks` on the dense matrix
    ``[probe x distractors | probe x mate]`` for every rank ``<= k`` (ties count as
    misses); the distractor search keeps ``k + 1`` candidates, so a mate beaten by all
    of them has a rank above ``k`` (+inf).

    Parameters
    ----------
    probes : ndarray (P, D), one row per search (a probe image may repeat); probe_ok : bool (P,).
    distractors : ndarray (N, D), L2-normalised usable distractor embeddings.
    mates : ndarray (P, D), the mate image of each row (any values for non-mated rows);
    mate_ok : bool (P,), False for non-mated rows and for mates that failed to acquire.

    Returns
    -------
    SearchResult; ``top_index`` indexes ``distractors``. Rows with ``mate_ok`` False get
    rank +inf and mated score -inf; the caller marks its non-mated rows NaN.
    """
    Q = np.asarray(probes, np.float32)
    ok = np.asarray(probe_ok, bool)
    mok = np.asarray(mate_ok, bool)
    if not (len(ok) == len(Q) == len(mates) == len(mok)):
        raise ScoringError("probes, probe_ok, mates and mate_ok differ in length")
    Qz, s, idx, used = _search_k1(Q, ok, distractors, k, device, probe_block, gallery_block)
    m = np.einsum("ij,ij->i", Qz, np.asarray(mates, np.float32))
    usable = ok & mok
    mated_scores = np.where(usable, m, -np.inf).astype(np.float64)
    ge = ((s >= m[:, None]) & (idx >= 0)).sum(1)
    ranks = np.full(len(Q), np.inf)
    exact = usable & (1 + ge <= k)
    ranks[exact] = 1.0 + ge[exact]
    return _result(s, idx, ok, ranks, mated_scores, used, k)


def identity_templates(embeddings: np.ndarray, ok: np.ndarray, identities: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One template per gallery identity: the L2-normalised mean of its images' embeddings.

    FtA images are left out; an identity all of whose images failed has no template.

    Parameters
    ----------
    embeddings : ndarray (n, D), L2-normalised; ok : bool (n,); identities : (n,) labels.

    Returns
    -------
    templates : ndarray (T, D), float32
    names : list of T identity labels (sorted)
    lost : ndarray of identity labels without a template
    """
    ids = np.asarray(identities).astype(str)
    ok = np.asarray(ok, bool)
    names_all = np.unique(ids)
    names, inv = np.unique(ids[ok], return_inverse=True)
    sums = np.zeros((len(names), embeddings.shape[1]), np.float64)
    np.add.at(sums, inv, np.asarray(embeddings, np.float64)[ok])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    lost = np.setdiff1d(names_all, names)
    return (sums / norms).astype(np.float32), names.tolist(), lost
