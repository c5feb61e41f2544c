"""``embeddings.parquet``: a run's embeddings, so that the run can be rechecked and analysed.

``mfrkit bench --save-embeddings`` writes one file per model, ``<run>/<model>/embeddings.parquet``,
with one row per (role, image) the run's protocols use:

==================  ===============================================================================
``image_id``        the image's id in its manifest
``role``            ``reference`` (pairs' left side, all-pairs references, the 1:N gallery and
                    MegaFace mates) or ``probe`` (pairs' right side, all-pairs and 1:N probes);
                    a heterogeneous model embeds each role with its own network
``manifest``        the manifest's name; ``manifest_fingerprint`` its fingerprint, as in
                    ``metrics.json``'s ``protocol.manifests`` (two manifests may share ids)
``identity``, ``variant``, ``mask_type``, ``coverage``, ``region``
                    from the manifest
``embedding``       list of float32, L2-normalised, exactly what was scored, every one of
                    the model's dimension (``mfrkit.embedding_dim`` in the file's metadata);
                    null for a failure to acquire
``fta_reason``      null when embedded, else why not (``no_face``, ``corrupt``, ...)
==================  ===============================================================================

Arrow's Parquet writer cannot store a null *fixed-size* list (apache/arrow#25841), so
the column is a plain list whose non-null entries all have the model's dimension.

With the protocol's comparisons (``scores.csv`` for a pair list; ``images.csv`` for an
all-pairs protocol) every number of ``metrics.json`` can be computed again:
:func:`read_embeddings` gives the vectors back.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ...atomic import atomic_path
from ...data.manifest import STATUS_OK
from .images import ATTRIBUTES, MISSING_UID

EMBEDDINGS_NAME = "embeddings.parquet"


def embeddings_table(uids_by_role: dict[str, list], embeddings: dict, images) -> "pa.Table":  # noqa: F821
    """The rows of ``embeddings.parquet`` as a pyarrow Table.

    Parameters
    ----------
    uids_by_role : dict role -> list of uids (duplicates ignored; the missing-image uid skipped)
    embeddings : dict role -> Embeddings holding those uids
    images : ImageTable
    """
    import pyarrow as pa

    frames, vectors, oks = [], [], []
    dim = max((e.vectors.shape[1] for e in embeddings.values()), default=0)
    for role, uids in uids_by_role.items():
        uids = [u for u in dict.fromkeys(uids) if u != MISSING_UID]
        emb = embeddings[role]
        idx = emb.rows(uids)
        t = images.table.loc[uids]
        names = {k: (m.name or "") for k, m in images.manifests.items()}
        fps = {k: m.fingerprint() for k, m in images.manifests.items()}
        df = pd.DataFrame({
            "image_id": t["image_id"].to_numpy(), "role": role,
            "manifest": t["manifest"].map(names).to_numpy(), "manifest_fingerprint": t["manifest"].map(fps).to_numpy(),
        })  # fmt: skip
        for c in ATTRIBUTES:
            df[c] = t[c].to_numpy()
        status = emb.status[idx]
        df["fta_reason"] = [None if s == STATUS_OK else str(s) for s in status]
        frames.append(df)
        vectors.append(emb.vectors[idx].astype(np.float32))
        oks.append(status == STATUS_OK)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["image_id", "role"])
    vec = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    ok = np.concatenate(oks) if oks else np.zeros(0, bool)
    columns = {c: pa.array(df[c].astype(object).where(df[c].notna(), None).tolist(), pa.string())
               for c in df.columns if c != "fta_reason"}
    offsets = np.r_[0, np.cumsum(np.where(ok, dim, 0))].astype(np.int32)
    columns["embedding"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(vec[ok].reshape(-1), pa.float32()),
                                                    mask=pa.array(~ok))
    reason = df["fta_reason"].astype(object)
    columns["fta_reason"] = pa.array(reason.where(reason.notna(), None).tolist(), pa.string())
    return pa.table(columns)


def save_embeddings(path: str | os.PathLike, model_set, protocols, sides, ref, probe, images) -> Path:
    """Write ``embeddings.parquet`` for one model of a run (see the module docstring).

    ``sides`` are the bench's per-protocol uid lists (``reference()``, ``probe()``);
    ``ref``/``probe`` the embeddings of the two roles (one object for an ordinary model).
    """
    import pyarrow.parquet as pq

    uids = {"reference": [u for s in sides for u in s.reference()], "probe": [u for s in sides for u in s.probe()]}
    table = embeddings_table(uids, {"reference": ref, "probe": probe}, images)
    dim = max(ref.vectors.shape[1], probe.vectors.shape[1])
    table = table.replace_schema_metadata({"mfrkit.model": model_set.name, "mfrkit.model_sha256": model_set.sha256,
                                           "mfrkit.embedding_dim": str(dim)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_embeddings(path: str | os.PathLike) -> tuple[pd.DataFrame, np.ndarray]:
    """``embeddings.parquet`` back: (rows without the embedding, float32 matrix (n, D)
    with zero rows for FtA)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    emb = table.column("embedding").combine_chunks()
    ok = ~np.asarray(emb.is_null().to_numpy(zero_copy_only=False), bool)
    dim = int(meta.get(b"mfrkit.embedding_dim", b"0")) or (len(emb.flatten()) // max(int(ok.sum()), 1))
    vec = np.zeros((len(table), dim), np.float32)
    vec[ok] = np.asarray(emb.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
    return table.drop(["embedding"]).to_pandas(), vec
