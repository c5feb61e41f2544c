"""Class labels and identity order of a RecordIO written from a manifest (synth, partial
and pack ``--format rec``): insightface's layout needs each identity's images together
and integer labels ``0 .. num_classes - 1``."""

from __future__ import annotations

import numpy as np
import pandas as pd


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


def record_labels(source_table: pd.DataFrame, source_meta: dict) -> tuple[dict, int]:
    """``(identity -> label, num_classes)`` of a RecordIO output: a RecordIO source keeps
    its labels and class count; any other source numbers its identities in sorted order."""
    known = source_table["identity"].notna()
    if "label" in source_table.columns and source_table.loc[known, "label"].notna().all():
        pairs = source_table.loc[known, ["identity", "label"]].drop_duplicates()
        labels = {str(i): int(v) for i, v in zip(pairs["identity"], pairs["label"])}
        classes = int((source_meta.get("recordio") or {}).get("num_classes") or max(labels.values(), default=-1) + 1)
        return labels, max(classes, max(labels.values(), default=-1) + 1)
    names = sorted({str(v) for v in source_table.loc[known, "identity"]})
    return {name: i for i, name in enumerate(names)}, len(names)
