"""Sorting more rows than the driver should hold: sorted runs spilled to disk, then merged.

The driver of a job over millions of images never holds a column of every image in
memory. Where it needs the rows in an order they do not come in (a manifest's
fingerprint hashes its rows sorted by ``image_id``; the landmark index is sorted by id;
two items writing the same file are found next to each other once their paths are
sorted), it pushes Arrow tables into an :class:`ExternalSort`:

- rows are gathered until ``run_rows`` are held, sorted (``pyarrow.compute``), and
  written as one *run* to a temporary Parquet file;
- :meth:`ExternalSort.sorted` merges the runs, holding one batch per run: it emits every
  held row whose first sort key is below the smallest "last key" of the runs still being
  read, so rows with equal first keys always come out together, fully sorted by every key.

At most ``run_rows`` rows plus one batch per run are held at a time; a sort that fits in
one run never touches the disk. Only the first key must be ascending; later keys may go
either way (the landmark index keeps the latest shard of an id: ``shard`` descending).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: Rows gathered before a run is sorted and spilled.
RUN_ROWS = 16384
#: Rows of a run read back at a time while merging (fewer when there are many runs:
#: about :data:`MERGE_ROWS` over every run, at least 64 per run).
MERGE_ROWS = 8192


class ExternalSort:
    """Sort a stream of Arrow tables in bounded memory (see the module docstring).

    Parameters
    ----------
    schema : pyarrow.Schema
        Of every table added (tables are cast to it).
    sort_keys : sequence of (column, "ascending" | "descending")
        The first must be ascending and never missing.
    run_rows : int, optional
        Rows held before a run is spilled (default :data:`RUN_ROWS`).
    tmp_dir : path, optional
        Where runs are spilled (a temporary folder under it; default the system's).

    Use as a context manager (the spilled runs are removed on exit), or call :meth:`close`.
    """

    def __init__(self, schema: pa.Schema, sort_keys: Sequence[tuple[str, str]], *, run_rows: int | None = None, tmp_dir: str | Path | None = None) -> None:
        if not sort_keys or sort_keys[0][1] != "ascending":
            raise ValueError("the first sort key must be ascending")
        self.schema = schema
        self.sort_keys = [tuple(k) for k in sort_keys]
        self.key = self.sort_keys[0][0]
        self.run_rows = max(1, int(RUN_ROWS if run_rows is None else run_rows))
        self._tmp_root = tmp_dir
        self._folder: Path | None = None
        self._held: list[pa.Table] = []
        self._held_rows = 0
        self._runs: list[Path] = []
        self.num_rows = 0

    def __enter__(self) -> "ExternalSort":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove the spilled runs."""
        self._held = []
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self._runs = []

    def add(self, table: pa.Table) -> None:
        """Add rows (any number; the table is cast to the schema)."""
        if not table.num_rows:
            return
        if table[self.key].null_count:
            raise ValueError(f"the sort key {self.key!r} has missing values")
        self._held.append(table.select(self.schema.names).cast(self.schema))
        self._held_rows += table.num_rows
        self.num_rows += table.num_rows
        if self._held_rows >= self.run_rows:
            self._spill()

    def _sorted_held(self) -> pa.Table:
        table = pa.concat_tables(self._held) if self._held else self.schema.empty_table()
        self._held, self._held_rows = [], 0
        return table.take(pc.sort_indices(table, sort_keys=self.sort_keys))

    def _spill(self) -> None:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="mfrkit-sort-", dir=self._tmp_root))
        path = self._folder / f"run-{len(self._runs):06d}.parquet"
        pq.write_table(self._sorted_held(), path, row_group_size=MERGE_ROWS, compression="lz4")
        self._runs.append(path)

    def sorted(self, batch_rows: int = MERGE_ROWS) -> Iterator[pa.Table]:
        """Every row added, sorted, in tables of about ``batch_rows`` rows or more (rows
        with equal first keys are never split across two tables)."""
        if not self._runs:
            yield from _slices(self._sorted_held(), batch_rows, self.key)
            return
        if self._held:
            self._spill()
        yield from _merge(self._runs, self.sort_keys, max(64, min(batch_rows, 2 * MERGE_ROWS // len(self._runs))))


def _slices(table: pa.Table, size: int, key: str) -> Iterator[pa.Table]:
    """``table`` (sorted by ``key``) in slices of at least ``size`` rows, each ending where
    ``key`` changes."""
    column = table[key]
    start = 0
    while start < table.num_rows:
        end = min(table.num_rows, start + size)
        while end < table.num_rows and column[end] == column[end - 1]:
            end += 1
        yield table.slice(start, end - start)
        start = end


class _Run:
    """One spilled run being merged: its rows not emitted yet."""

    def __init__(self, path: Path, batch_rows: int, schema_names: list[str]) -> None:
        self._batches = pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=schema_names)
        self.rows: pa.Table | None = None
        self.done = False
        self.load()

    def load(self) -> None:
        """Append the run's next batch to its held rows (``done`` when there is none)."""
        batch = next(self._batches, None)
        if batch is None:
            self.done = True
            return
        table = pa.Table.from_batches([batch])
        self.rows = table if self.rows is None or not self.rows.num_rows else pa.concat_tables([self.rows, table])

    def last_key(self, key: str):
        return self.rows[key][self.rows.num_rows - 1].as_py()

    def take_below(self, key: str, bound) -> pa.Table:
        """Its held rows whose ``key`` is below ``bound`` (all when ``bound`` is None)."""
        rows = self.rows
        if rows is None or not rows.num_rows:
            return rows if rows is not None else None
        if bound is None:
            n = rows.num_rows
        else:
            n = int(pc.sum(pc.less(rows[key], pa.scalar(bound, rows.schema.field(key).type))).as_py() or 0)
        taken, self.rows = rows.slice(0, n), rows.slice(n)
        return taken


def _merge(paths: list[Path], sort_keys: list[tuple[str, str]], batch_rows: int) -> Iterator[pa.Table]:
    key = sort_keys[0][0]
    names = pq.read_schema(paths[0]).names
    runs = [_Run(p, batch_rows, names) for p in paths]
    while True:
        for run in runs:
            while not run.done and (run.rows is None or not run.rows.num_rows):
                run.load()
        live = [r for r in runs if r.rows is not None and r.rows.num_rows]
        if not live:
            return
        reading = [r for r in live if not r.done]
        # Rows below the smallest last key of the runs still being read can come from no
        # later batch: emit them. (None: every run is read to its end, emit the rest.)
        bound = min((r.last_key(key) for r in reading), default=None)
        parts = [t for t in (r.take_below(key, bound) for r in live) if t is not None and t.num_rows]
        if parts:
            table = pa.concat_tables(parts)
            yield table.take(pc.sort_indices(table, sort_keys=sort_keys))
        if bound is None:
            continue
        # The runs whose held rows all equal the bound need their next batch to go on.
        for run in reading:
            if run.rows is not None and run.rows.num_rows and run.last_key(key) == bound:
                run.load()
