"""A subset of a manifest's rows: ``--where key=value`` conditions and a seeded ``--limit``.

``synth``, ``partial`` and ``bench`` take the same two options, declared here once
(:func:`where_option`, :func:`limit_option`) and applied by :func:`select_rows`:

- ``--where KEY=VALUE`` keeps the rows whose column ``KEY`` holds one of the
  comma-separated values (``variant=unmasked``, ``mask_type=surgical,kn95``);
  ``KEY!=VALUE`` keeps the others; ``VALUE`` ``@FILE`` reads the values from a text file,
  one a line (an identity list). Repeated conditions must all hold. Values are compared
  as text; a missing value is the text ``none``.
- ``--limit N`` keeps a seeded sample of N of the rows that remain: each row's rank is a
  stable hash of the seed and its ``image_id``, so the sample does not depend on the
  row order, and a larger N keeps every row of a smaller one (a rerun resumes).

The conditions and the counts are recorded in the output's manifest metadata
(:func:`subset_meta`) and shown on its data card.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import DatasetError
from ..options import option
from ..rng import stable_hash
from ..userfiles import UserFileError, read_user_text


@dataclasses.dataclass(frozen=True)
class Condition:
    """One ``--where`` condition: column ``key`` holds (``keep``) or not one of ``values``."""

    key: str
    values: tuple[str, ...]
    keep: bool = True

    def text(self) -> str:
        return f"{self.key}{'=' if self.keep else '!='}{','.join(self.values)}"


def parse_condition(text: str) -> Condition:
    """``"variant=unmasked"`` / ``"mask_type!=cloth,gas"`` / ``"identity=@ids.txt"`` -> a
    :class:`Condition` (``ValueError`` naming the bad text)."""
    text = str(text)
    key, sep, value = text.partition("=")
    keep = not key.endswith("!")
    key = key.rstrip("!").strip()
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE or KEY!=VALUE (e.g. variant=unmasked), got {text!r}")
    value = value.strip()
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            lines = read_user_text(path, "text").splitlines()
        except UserFileError as exc:
            raise ValueError(f"cannot read the value list: {exc}") from None
        values = tuple(v.strip() for v in lines if v.strip() and not v.lstrip().startswith("#"))
    else:
        values = tuple(v.strip() for v in value.split(",") if v.strip())
    if not values:
        raise ValueError(f"{text!r} gives no value to compare {key!r} with")
    return Condition(key, values, keep)


def where_option() -> Any:
    """The ``--where`` field of a job's configuration (a tuple of condition texts)."""
    return option(default_factory=list, flags="--where", parse=_checked_text, metavar="KEY=VALUE", show_default="",
                  help="Only the rows whose manifest column KEY holds VALUE (a comma list; KEY!=VALUE: the others; "
                       "@FILE: values one a line, e.g. an identity list), e.g. variant=unmasked, mask_type=surgical; "
                       "repeatable, all must hold.")  # fmt: skip


def limit_option(what: str = "images") -> Any:
    """The ``--limit`` field of a job's configuration."""
    return option(None, min=1, help=f"Only a seeded sample of N {what} (after --where; a larger N keeps the smaller sample's).")


def _checked_text(text: str) -> str:
    parse_condition(text)  # a bad condition is refused while parsing the command line
    return str(text)


def _column_text(column: pd.Series) -> pd.Series:
    """A column as the text ``--where`` compares (``none`` for a missing value)."""
    def one(v: Any) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return "none"
        if isinstance(v, (bool, np.bool_)):
            return "true" if v else "false"
        if isinstance(v, float) and v.is_integer():
            return f"{v:g}"
        return str(v)

    return column.map(one)


def parse_conditions(where: Sequence[str | Condition]) -> list[Condition]:
    """``--where`` texts parsed once (an ``@FILE`` is read here, not per row group);
    parsed :class:`Condition` objects pass through."""
    out = []
    for text in where:
        try:
            out.append(text if isinstance(text, Condition) else parse_condition(text))
        except ValueError as exc:
            raise DatasetError(f"--where: {exc}") from None
    return out


def sample_ranks(image_ids: Sequence[str], seed: int) -> np.ndarray:
    """uint64 rank of each id in the seeded sample order (lowest first; :func:`sample_order`)."""
    return np.array([stable_hash(f"{int(seed)}:{i}") for i in image_ids], dtype=np.uint64)


def where_mask(table: pd.DataFrame, where: Sequence[str | Condition]) -> pd.Series:
    """Boolean Series: the rows of ``table`` meeting every condition of ``where``.

    Raises
    ------
    DatasetError
        A condition names a column the table does not have (the columns it has are listed).
    """
    keep = pd.Series(True, index=table.index)
    for cond in parse_conditions(where):
        if cond.key not in table.columns:
            known = ", ".join(c for c in table.columns if table[c].notna().any())
            raise DatasetError(f"--where {cond.text()}: the manifest has no column {cond.key!r} (its columns with values: {known})")
        hit = _column_text(table[cond.key]).isin(set(cond.values))
        keep &= hit if cond.keep else ~hit
    return keep


def sample_order(image_ids: Sequence[str], seed: int) -> np.ndarray:
    """Positions of ``image_ids`` in seeded sample order (a stable hash of seed and id)."""
    return np.argsort(sample_ranks(image_ids, seed), kind="stable")


def select_rows(table: pd.DataFrame, where: Sequence[str] = (), limit: int | None = None, *, seed: int = 0) -> pd.DataFrame:
    """The rows of ``table`` meeting ``where``, then a seeded sample of ``limit`` of them,
    in ``table``'s order.

    Raises
    ------
    DatasetError
        On a bad condition, or when no row meets the conditions (the job would make nothing).
    """
    if limit is not None and int(limit) < 1:
        raise DatasetError(f"--limit must be a positive number, got {limit}")
    chosen = table[where_mask(table, where)] if where else table
    if where and not len(chosen):
        raise DatasetError(f"no row of the manifest meets --where {' --where '.join(where)} ({len(table)} rows looked at)")
    if limit is not None and len(chosen) > int(limit):
        picked = np.sort(sample_order(chosen["image_id"].astype(str).tolist(), seed)[: int(limit)])
        chosen = chosen.iloc[picked]
    return chosen


def subset_meta(where: Sequence[str], limit: int | None, *, seed: int, rows: int, of: int) -> dict | None:
    """What the manifest metadata records of a subset (None: the whole source)."""
    if not where and limit is None:
        return None
    return {"where": list(where), "limit": limit, "seed": int(seed), "rows": int(rows), "of": int(of)}


def subset_text(meta: dict | None) -> str | None:
    """One line for a data card: which rows of the source a job took."""
    if not meta:
        return None
    parts = [f"`--where {w}`" for w in meta.get("where") or []]
    if meta.get("limit") is not None:
        parts.append(f"`--limit {meta['limit']}` (seed {meta.get('seed', 0)})")
    return f"{meta.get('rows')} of {meta.get('of')} source rows, selected by {' '.join(parts)}"
