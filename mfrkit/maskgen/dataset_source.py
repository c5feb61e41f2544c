"""What a dataset job reads of its source manifest and of an earlier run, a row group at a time.

- :class:`SourceRows`: the source's rows meeting ``--where``, usable (status ``ok``; a
  seeded sample of ``--limit``) and unusable, in frames, as often as the job needs them (planning, the
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

import numpy as np
import pandas as pd
import pyarrow as pa

from ..data.manifest import ROW_GROUP, STATUS_OK
from ..data.manifest_stream import ManifestReader
from ..data.subset import parse_conditions, sample_ranks, where_mask
from ..errors import DatasetError


class SourceRows:
    """The usable and unusable rows of a source manifest (see the module docstring).

    Parameters
    ----------
    source : Manifest or ManifestReader
    limit : int or None
        Only a seeded sample of ``limit`` usable rows counts as usable (the rows whose
        rank, :func:`mfrkit.data.subset.sample_ranks` of ``seed`` and the image id, is
        among the ``limit`` lowest; kept in the source's order; the others are left out);
        unusable rows are all kept.
    container : {None, "rec", "bin"}
        What the job writes (:mod:`mfrkit.maskgen.container_output`): ``rec`` takes the
        rows that have an identity, each identity's together (the others become
        unusable, status ``no_identity``); ``bin`` masks the probe side of a ``.bin``
        and copies its reference side (:meth:`reference`).
    where : sequence of str
        ``--where`` conditions (:mod:`mfrkit.data.subset`): rows that fail them are not
        part of the job at all.
    seed : int
        The ``--limit`` sample's seed.
    """

    def __init__(self, source, limit: int | None, container: str | None = None, *, where=(), seed: int = 0) -> None:
        self.source = source
        self.limit = None if limit is None else int(limit)
        self.container = container
        self.path, self.meta, self.root = source.path, source.meta, source.root
        self.abspath = source.abspath
        self._grouped = None
        self.where = parse_conditions(where)
        self.seed = int(seed)
        self._keys = self._where_keys()
        self._rank_cut = None
        total = ok = unusable = 0
        ranks = []
        for batch in source.batches(["status", "image_id", *self._keys]):
            total += len(batch)
            batch = self._meeting(batch)
            is_ok = (batch["status"] == STATUS_OK).to_numpy(bool)
            n = int(is_ok.sum())
            ok, unusable = ok + n, unusable + len(batch) - n
            if self.limit is not None and n:
                ranks.append(sample_ranks(batch["image_id"][is_ok].astype(str).tolist(), self.seed))
        if self.where and not ok + unusable:
            raise DatasetError(f"no row of the manifest meets --where {' --where '.join(c.text() for c in self.where)} "
                               f"({total} rows looked at)")
        if self.limit is not None and ok > self.limit:
            self._rank_cut = np.partition(np.concatenate(ranks), self.limit - 1)[self.limit - 1]
        self.n_total = total  # every row of the source
        self.n_ok = ok if self.limit is None else min(ok, self.limit)
        self.n_usable, self.n_unusable = self.n_ok, unusable
        self.n_selected = self.n_ok + unusable  # the rows this job takes (what --where / --limit leave)
        if container == "rec":
            self._identities()
        elif container == "bin":
            self.n_usable = sum(len(b) for b in self.usable(["side"]))

    def _where_keys(self) -> list[str]:
        """The columns the conditions read; one the manifest lacks is refused here."""
        keys = list(dict.fromkeys(c.key for c in self.where))
        if keys:
            names = getattr(self.source, "columns", None)
            names = list(names) if names is not None else list(self.source.table.columns)
            for cond in self.where:
                if cond.key not in names:
                    raise DatasetError(f"--where {cond.text()}: the manifest has no column {cond.key!r} "
                                       f"(its columns: {', '.join(names)})")
        return keys

    def _meeting(self, batch: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``batch`` meeting ``--where``."""
        return batch[where_mask(batch, self.where)] if self.where else batch

    def _columns(self, columns: Sequence[str] | None, *extra: str) -> list[str] | None:
        return None if columns is None else list(dict.fromkeys([*columns, "status", *extra]))

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
        """The usable rows meeting ``--where`` (the ``--limit`` sample of them), in order."""
        want = self._columns(columns)
        cols = self._columns(columns, *self._keys, *(["image_id"] if self._rank_cut is not None else []))
        for batch in self.source.batches(cols, size):
            batch = self._meeting(batch)
            rows = batch[batch["status"] == STATUS_OK]
            if self._rank_cut is not None and len(rows):
                rows = rows[sample_ranks(rows["image_id"].astype(str).tolist(), self.seed) <= self._rank_cut]
            if len(rows):
                yield rows if want is None else rows[[c for c in want if c in rows.columns]]

    def _kept(self, columns: Sequence[str] | None, size: int, keep: bool) -> Iterator[pd.DataFrame]:
        """The ok rows the container takes (``keep``) or turns away (not ``keep``)."""
        extra = {"rec": "identity", "bin": "side"}.get(self.container)
        cols = columns if extra is None or columns is None else [*columns, extra]
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
        want = self._columns(columns)
        for batch in self.source.batches(self._columns(columns, *self._keys), size):
            batch = self._meeting(batch)
            rows = batch[batch["status"] != STATUS_OK]
            if len(rows):
                yield rows if want is None else rows[[c for c in want if c in rows.columns]]
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
