"""Class labels and identity order of a RecordIO written from a manifest (synth, partial
and pack ``--format rec``): insightface's layout needs each identity's images together
and integer labels ``0 .. num_classes - 1``.

Both are found in memory from a frame (:func:`group_by_identity`, :func:`record_labels`)
or over a manifest's row groups for the driver of a job over millions of images
(:class:`LabelTally`, :class:`IdentityRuns`, :func:`regroup_by_identity`): what those
hold grows with the identities, never with the images.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def group_by_identity(usable: pd.DataFrame) -> pd.DataFrame:
    """The rows with each identity's images together (insightface's layout needs it),
    in their order otherwise (a stable sort only when some identity is split)."""
    ids = usable["identity"].astype(object).where(usable["identity"].notna(), "").to_numpy()
    if len(ids) < 2:
        return usable
    starts = np.concatenate([[True], ids[1:] != ids[:-1]])
    if len(set(ids[starts])) == int(starts.sum()):
        return usable
    order = pd.Series(ids).map({v: i for i, v in enumerate(dict.fromkeys(ids))}).to_numpy()
    return usable.iloc[np.argsort(order, kind="stable")]


class LabelTally:
    """:func:`record_labels` over row groups (frames holding ``identity`` and, where the
    source has it, ``label``): add them in order, then :meth:`result`."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.labels: dict[str, int] = {}
        self._pairs: set[tuple[str, int]] = set()
        self.labelled = True

    def add(self, frame: pd.DataFrame) -> None:
        known = frame["identity"].notna()
        ids = frame.loc[known, "identity"].astype(str)
        self.names.update(ids.unique().tolist())
        if "label" not in frame.columns or frame.loc[known, "label"].isna().any():
            self.labelled = False
        if not self.labelled:
            return
        for pair in zip(ids.tolist(), frame.loc[known, "label"].astype("int64").tolist()):
            if pair not in self._pairs:  # a label given twice to an identity: its last new pair wins, as a dict of the pairs
                self._pairs.add(pair)
                self.labels[pair[0]] = pair[1]

    def result(self, source_meta: dict) -> tuple[dict, int]:
        if self.labelled:
            labels = dict(self.labels)
            top = max(labels.values(), default=-1) + 1
            classes = int((source_meta.get("recordio") or {}).get("num_classes") or top)
            return labels, max(classes, top)
        names = sorted(self.names)
        return {name: i for i, name in enumerate(names)}, len(names)


def record_labels(source_table: pd.DataFrame, source_meta: dict) -> tuple[dict, int]:
    """``(identity -> label, num_classes)`` of a RecordIO output: a RecordIO source keeps
    its labels and class count; any other source numbers its identities in sorted order."""
    tally = LabelTally()
    tally.add(source_table)
    return tally.result(source_meta)


def record_labels_of(manifest) -> tuple[dict, int]:
    """:func:`record_labels` of a manifest (in memory or streamed), a row group at a time."""
    tally = LabelTally()
    for batch in manifest.batches(["identity", "label"]):
        tally.add(batch)
    return tally.result(manifest.meta)


class IdentityRuns:
    """Whether identities come in runs (each identity's rows together), over row groups."""

    def __init__(self) -> None:
        self.seen: set = set()
        self.last = None
        self.split = False

    def add(self, identities: Iterable) -> None:
        for value in identities:
            if value != self.last:
                if value in self.seen:
                    self.split = True
                self.seen.add(value)
                self.last = value


def regroup_by_identity(tables: Iterable[pa.Table], schema: pa.Schema, folder: str | Path | None = None) -> Path:
    """:func:`group_by_identity` of rows streamed as Arrow tables (``schema``, with its
    metadata), in bounded memory: each identity's rows in the order of its first row,
    through :class:`~mfrkit.external_sort.ExternalSort`. Returns a Parquet file of the
    rows (in a new temporary folder under ``folder``, with ``schema``'s metadata: a
    manifest's file reads as that manifest regrouped); the caller removes the folder."""
    from ..external_sort import ExternalSort

    ranks: dict = {}
    keyed = pa.schema(list(schema) + [pa.field("_rank", pa.int64()), pa.field("_pos", pa.int64())])
    out = Path(tempfile.mkdtemp(prefix="mfrkit-grouped-", dir=folder)) / "rows.parquet"
    pos = 0
    with ExternalSort(keyed, [("_rank", "ascending"), ("_pos", "ascending")], tmp_dir=out.parent) as rows:
        for table in tables:
            ids = table["identity"].to_pylist()
            rank = [ranks.setdefault("" if v is None else v, len(ranks)) for v in ids]
            at = pa.array(np.arange(pos, pos + len(ids)), pa.int64())
            rows.add(table.append_column("_rank", pa.array(rank, pa.int64())).append_column("_pos", at))
            pos += len(ids)
        with pq.ParquetWriter(out, schema) as writer:
            for table in rows.sorted():
                writer.write_table(table.select(schema.names).cast(schema))
    return out
