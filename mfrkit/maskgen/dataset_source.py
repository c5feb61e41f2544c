"""What a dataset job reads of its source manifest and of an earlier run, a row group at a time.

- :class:`SourceRows`: the source's usable rows (status ``ok``; the first ``--limit``)
  and its unusable ones, in frames, as often as the job needs them (planning, the
  output-path check, the finish); it is also a manifest the landmark detection can read
  (the ``--limit`` run detects only its own images);
- :class:`PreviousRows`: the rows of a finished earlier run of the same job (its manifest
  lists them by ``job_item``, in plan order), handed to the engine part by part.
"""

from __future__ import annotations

import shutil
import weakref
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd
import pyarrow as pa

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
    container : {None, "rec", "bin"}
        What the job writes (:mod:`mfrkit.maskgen.container_output`): ``rec`` takes the
        rows that have an identity, each identity's together (the others become
        unusable, status ``no_identity``); ``bin`` masks the probe side of a ``.bin``
        and copies its reference side (:meth:`reference`).
    """

    def __init__(self, source, limit: int | None, container: str | None = None) -> None:
        self.source = source
        self.limit = None if limit is None else int(limit)
        self.container = container
        self.path, self.meta, self.root = source.path, source.meta, source.root
        self.abspath = source.abspath
        self._grouped = None
        ok = unusable = 0
        for batch in source.batches(["status"]):
            n = int((batch["status"] == STATUS_OK).sum())
            ok, unusable = ok + n, unusable + len(batch) - n
        self.n_ok = ok if self.limit is None else min(ok, self.limit)
        self.n_usable, self.n_unusable = self.n_ok, unusable
        if container == "rec":
            self._identities()
        elif container == "bin":
            self.n_usable = sum(len(b) for b in self.usable(["side"]))

    def _identities(self) -> None:
        """Count the usable rows with an identity; regroup them when an identity is split."""
        from ..data.recordio_labels import IdentityRuns

        runs, known = IdentityRuns(), 0
        for batch in self.usable(["identity"]):
            runs.add(batch["identity"].tolist())
            known += len(batch)
        self.n_unusable += self.n_ok - known
        self.n_usable = known
        if runs.split:
            self._grouped = _Grouped(self)

    @property
    def name(self) -> str:
        return self.source.name

    def _ok(self, columns: Sequence[str] | None, size: int) -> Iterator[pd.DataFrame]:
        """The first ``limit`` rows whose status is ``ok``, in order."""
        left = self.n_ok
        cols = None if columns is None else list(dict.fromkeys([*columns, "status"]))
        for batch in self.source.batches(cols, size):
            if left <= 0:
                return
            rows = batch[batch["status"] == STATUS_OK].iloc[:left]
            left -= len(rows)
            if len(rows):
                yield rows

    def _kept(self, columns: Sequence[str] | None, size: int, keep: bool) -> Iterator[pd.DataFrame]:
        """The ok rows the container takes (``keep``) or turns away (not ``keep``)."""
        extra = {"rec": "identity", "bin": "side"}.get(self.container)
        cols = None if columns is None or extra is None else [*columns, extra]
        for rows in self._ok(cols, size):
            if extra is None:
                taken = pd.Series(True, index=rows.index)
            elif extra not in rows.columns:
                taken = pd.Series(False, index=rows.index)
            else:
                taken = rows[extra].notna() if self.container == "rec" else rows[extra] == "probe"
            rows = rows[taken if keep else ~taken]
            if len(rows):
                yield rows if columns is None else rows[[c for c in dict.fromkeys([*columns, "status"]) if c in rows.columns]]

    def usable(self, columns: Sequence[str] | None = None, size: int = ROW_GROUP) -> Iterator[pd.DataFrame]:
        """The usable rows in order (each identity's together for ``rec``), as frames
        (``columns`` plus ``status``)."""
        if self._grouped is not None:
            yield from self._grouped.batches(columns, size)
            return
        yield from self._kept(columns, size, True)

    def unusable(self, columns: Sequence[str] | None = None, size: int = ROW_GROUP) -> Iterator[pd.DataFrame]:
        """The rows whose status is not ``ok``, in order; then, for ``rec``, the ok rows
        without an identity (status ``no_identity``)."""
        cols = None if columns is None else list(dict.fromkeys([*columns, "status"]))
        for batch in self.source.batches(cols, size):
            rows = batch[batch["status"] != STATUS_OK]
            if len(rows):
                yield rows
        if self.container == "rec":
            for rows in self._kept(columns, size, False):
                yield rows.assign(status="no_identity")

    def reference(self, columns: Sequence[str] | None = None, size: int = ROW_GROUP) -> Iterator[pd.DataFrame]:
        """For ``bin``: the reference side's rows (copied unchanged), in order."""
        if self.container == "bin":
            for rows in self._ok(columns and [*columns, "side"], size):
                rows = rows[rows["side"] == "reference"]
                if len(rows):
                    yield rows

    # --- a manifest of the usable rows (what a --limit run detects landmarks on) -------------

    def batches(self, columns: Sequence[str] | None = None, size: int = ROW_GROUP) -> Iterator[pd.DataFrame]:
        return self.usable(columns, size)

    def __len__(self) -> int:
        return self.n_usable


class _Grouped:
    """The usable rows of a ``rec`` job regrouped by identity, in a temporary file (an
    in-memory source is regrouped in memory)."""

    def __init__(self, rows: SourceRows) -> None:
        from ..data.manifest import Manifest
        from ..data.recordio_labels import group_by_identity, regroup_by_identity

        self._folder = None
        source = rows.source
        if isinstance(source, Manifest):
            usable = pd.concat(list(rows._kept(None, ROW_GROUP, True)))
            self._reader = Manifest(table=group_by_identity(usable).reset_index(drop=True), meta=source.meta, path=source.path)
            return
        schema = source.schema()
        tables = (pa.Table.from_pandas(b, preserve_index=False).select(schema.names).cast(schema) for b in rows._kept(None, ROW_GROUP, True))
        path = regroup_by_identity(tables, schema)
        self._folder = path.parent
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(path.parent), True)
        self._reader = ManifestReader(path, records=not source.left_on_disk)

    def batches(self, columns: Sequence[str] | None, size: int) -> Iterator[pd.DataFrame]:
        cols = None if columns is None else list(dict.fromkeys([*columns, "status"]))
        yield from self._reader.batches(cols, size)


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
