"""What a dataset job reads of its source manifest and of an earlier run, a row group at a time.

- :class:`SourceRows`: the source's usable rows (status ``ok``; the first ``--limit``)
  and its unusable ones, in frames, as often as the job needs them (planning, the
  output-path check, the finish); it is also a manifest the landmark detection can read
  (the ``--limit`` run detects only its own images);
- :class:`PreviousRows`: the rows of a finished earlier run of the same job (its manifest
  lists them by ``job_item``, in plan order), handed to the engine part by part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd

from ..data.manifest import ROW_GROUP, STATUS_OK
from ..data.manifest_stream import ManifestReader


class SourceRows:
    """The usable and unusable rows of a source manifest (see the module docstring).

    Parameters
    ----------
    source : Manifest or ManifestReader
    limit : int or None
        Only the first ``limit`` usable rows count as usable (the others are left out,
        as before ``--limit`` existed; unusable rows are all kept).
    """

    def __init__(self, source, limit: int | None) -> None:
        self.source = source
        self.limit = None if limit is None else int(limit)
        self.path, self.meta, self.root = source.path, source.meta, source.root
        self.abspath = source.abspath
        usable = unusable = 0
        for batch in source.batches(["status"]):
            ok = int((batch["status"] == STATUS_OK).sum())
            usable, unusable = usable + ok, unusable + len(batch) - ok
        self.n_usable = usable if self.limit is None else min(usable, self.limit)
        self.n_unusable = unusable

    @property
    def name(self) -> str:
        return self.source.name

    def usable(self, columns: Sequence[str] | None = None, size: int = ROW_GROUP) -> Iterator[pd.DataFrame]:
        """The usable rows in order, as frames (``columns`` plus ``status``)."""
        left = self.n_usable
        cols = None if columns is None else list(dict.fromkeys([*columns, "status"]))
        for batch in self.source.batches(cols, size):
            if left <= 0:
                return
            rows = batch[batch["status"] == STATUS_OK].iloc[:left]
            left -= len(rows)
            if len(rows):
                yield rows

    def unusable(self, columns: Sequence[str] | None = None, size: int = ROW_GROUP) -> Iterator[pd.DataFrame]:
        """The rows whose status is not ``ok``, in order."""
        cols = None if columns is None else list(dict.fromkeys([*columns, "status"]))
        for batch in self.source.batches(cols, size):
            rows = batch[batch["status"] != STATUS_OK]
            if len(rows):
                yield rows

    # --- a manifest of the usable rows (what a --limit run detects landmarks on) -------------

    def batches(self, columns: Sequence[str] | None = None, size: int = ROW_GROUP) -> Iterator[pd.DataFrame]:
        return self.usable(columns, size)

    def __len__(self) -> int:
        return self.n_usable


class PreviousRows:
    """The rows of a finished earlier run's manifest, by item, for the engine's
    ``take(keys)`` (parts asked in plan order, as the manifest lists them).

    A row whose item is not among the keys asked stops the reading there (it belongs to
    a later part, or to no item: the unusable sources listed last); rows out of plan
    order are never served, so their items simply run again.
    """

    def __init__(self, path: Path) -> None:
        self._reader = ManifestReader(path)
        self.columns = self._reader.columns
        self._batches = self._reader.batches()
        self._rows: list[dict] = []
        self._at = 0

    def _peek(self) -> dict | None:
        while self._at >= len(self._rows):
            batch = next(self._batches, None)
            if batch is None:
                return None
            self._rows = [{k: (None if _isna(v) else v) for k, v in r.items()} for r in batch.to_dict("records")]
            self._at = 0
        return self._rows[self._at]

    def take(self, keys: Sequence[str]) -> dict[str, list[dict]]:
        wanted = set(keys)
        found: dict[str, list[dict]] = {}
        while (row := self._peek()) is not None and row.get("job_item") in wanted:
            self._at += 1
            found.setdefault(str(row["job_item"]), []).append({k: v for k, v in row.items() if k != "job_item"})
        return found


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False
