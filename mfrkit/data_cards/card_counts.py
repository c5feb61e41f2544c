"""What a data card counts, gathered a row group at a time.

:func:`~mfrkit.data_cards.card.summarize_manifest` folds every row group of a manifest
(in memory or streamed from its file) into a :class:`CardCounts`, so a card of millions
of images holds counters, never the table: counts per value, a histogram per numeric
column (whose medians are exact), and the identities of usable images sorted in bounded
memory (:class:`~mfrkit.external_sort.ExternalSort`) to count images per identity.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa

from ..data.manifest import STATUS_OK
from ..external_sort import ExternalSort

_UNKNOWN = "unknown"
#: Columns whose usable values are counted, by name.
COUNTED = ("variant", "mask_type", "mask_label", "mask_color", "mask_texture", "coverage", "region", "landmark_backend")


def count_items(counter: Counter) -> dict[str, int]:
    """Counts most frequent first, ties by name."""
    return {k: int(v) for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))}


def stats_of(values: Counter, *, mean: bool = True) -> dict | None:
    """min / median / (mean) / max of the values a histogram ``value -> count`` holds,
    as :func:`numpy.median` and :meth:`numpy.ndarray.mean` give them; None when empty."""
    n = sum(values.values())
    if not n:
        return None
    keys = sorted(values)

    def at(position: int) -> float:
        seen = 0
        for k in keys:
            seen += values[k]
            if position < seen:
                return k
        return keys[-1]

    median = at(n // 2) if n % 2 else (at(n // 2 - 1) + at(n // 2)) / 2

    def num(x: float):
        return int(x) if float(x).is_integer() else float(x)

    out = {"min": num(keys[0]), "median": num(median)}
    if mean:
        out["mean"] = float(sum(k * c for k, c in values.items()) / n)
    out["max"] = num(keys[-1])
    return out


def _numeric(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)


class CardCounts:
    """The counts of a data card, over row groups (see the module docstring)."""

    def __init__(self) -> None:
        self.images = self.ok = self.without_identity = 0
        self.counted: dict[str, Counter] = {c: Counter() for c in COUNTED}
        self.factors: Counter = Counter()
        self.centered = [0, 0]  # centered, not centered
        self.failures: Counter = Counter()
        self.n_faces: dict[str, Counter] = {}
        self.size: dict[str, Counter] = {"width": Counter(), "height": Counter()}
        self._identities = ExternalSort(pa.schema([("identity", pa.string())]), [("identity", "ascending")])

    def add(self, table: pd.DataFrame) -> None:
        """Fold one row group (a frame of manifest rows) in."""
        status = table["status"]
        is_ok = (status == STATUS_OK).fillna(False).astype(bool)
        ok = table[is_ok]
        self.images += len(table)
        self.ok += int(is_ok.sum())
        identity = ok["identity"] if "identity" in ok.columns else pd.Series([None] * len(ok), dtype=object)
        self.without_identity += int(identity.isna().sum())
        self._identities.add(pa.table({"identity": pa.array(identity.dropna().astype(str).tolist(), pa.string())}))
        for col, counter in self.counted.items():
            if col in ok.columns:
                values = ok[col].fillna(_UNKNOWN) if col == "variant" else ok[col].dropna()
                counter.update(values.astype(str).tolist())
            elif col == "variant":
                counter.update([_UNKNOWN] * len(ok))
        if "factor" in ok.columns:
            factors = ok["factor"][pd.to_numeric(ok["factor"], errors="coerce").notna()]
            self.factors.update(f"{float(v):g}" for v in factors)
        if "centered" in ok.columns:
            centered = ok["centered"].dropna().astype(bool)
            self.centered[0] += int(centered.sum())
            self.centered[1] += int((~centered).sum())
        self.failures.update(status[~is_ok].fillna("(no status)").astype(str).tolist())
        for col in (c for c in table.columns if str(c).startswith("n_faces")):
            self.n_faces.setdefault(str(col), Counter()).update(_numeric(table[col]).tolist())
        for dim, counter in self.size.items():
            if dim in ok.columns:
                counter.update(_numeric(ok[dim]).tolist())

    def identity_sizes(self) -> Counter:
        """``images of an identity -> identities with that many``, over usable images."""
        sizes: Counter = Counter()
        run, last = 0, None
        with self._identities as ids:
            for table in ids.sorted():
                for value in table["identity"].to_pylist():
                    if value != last:
                        if run:
                            sizes[run] += 1
                        run, last = 0, value
                    run += 1
        if run:
            sizes[run] += 1
        return sizes

    @property
    def centered_seen(self) -> int:
        return self.centered[0] + self.centered[1]
