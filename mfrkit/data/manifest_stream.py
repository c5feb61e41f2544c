"""Manifests streamed by row group: how the driver reads and writes a manifest of millions
of images without holding it.

:func:`read_manifest` (:mod:`mfrkit.data.manifest`) returns the whole table as a pandas
frame, which is what a user, a test or a small dataset wants. The stages whose driver
walks every image (scan, landmarks, synth, partial, protocols, the bench) go through
this module instead:

- :class:`ManifestReader` opens a manifest file once (it keeps reading the version it
  opened, even if the file is replaced meanwhile) and gives its rows in frames of
  :data:`~mfrkit.data.manifest.ROW_GROUP` rows (:meth:`~ManifestReader.batches`), its
  fingerprint computed in bounded memory, and one column at a time;
- :class:`ManifestWriter` takes frames one after another and writes them through a
  ``pyarrow.parquet.ParquetWriter``, checks what :func:`~mfrkit.data.manifest.write_manifest`
  checks (duplicate ids across every row group included) and renames the file into place
  when it is closed, its metadata holding the fingerprint;
- :func:`manifest_fingerprint_of` hashes the rows of a stream exactly as
  :func:`~mfrkit.data.manifest.manifest_fingerprint` hashes a frame (the rows sorted by
  ``image_id`` through :class:`~mfrkit.external_sort.ExternalSort`).

A :class:`~mfrkit.data.manifest.Manifest` in memory has the same ``batches`` /
``fingerprint`` / ``root`` interface, so a driver-side pass is written once for both
(:func:`open_manifest` gives whichever fits a path).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import __version__
from ..errors import ManifestError
from ..external_sort import ExternalSort
from ..parquet_out import ParquetOut
from .manifest import (
    _META_KEY,
    _NULLABLE,
    COLUMNS,
    FINGERPRINT_COLUMNS,
    MANIFEST_NAME,
    RECORD_COLUMNS,
    ROW_GROUP,
    SCHEMA,
    VARIANTS,
    Manifest,
    arrow_rows,
    check_meta,
    check_relpaths,
    dataset_root,
    meta_bytes,
    read_manifest,
    safe_relpath,
)

__all__ = ["ManifestReader", "ManifestWriter", "check_rows", "is_manifest", "manifest_fingerprint_of", "open_manifest"]


def check_rows(df: pd.DataFrame) -> None:
    """The checks :func:`~mfrkit.data.manifest.validate_table` makes that one row group
    allows (duplicates across row groups are found by the fingerprint's sort)."""
    if "image_id" in df.columns and df["image_id"].isna().any():
        raise ManifestError("manifest has rows without an image_id")
    if "image_id" in df.columns:
        dup = df["image_id"][df["image_id"].duplicated()]
        if len(dup):
            raise ManifestError(f"manifest has duplicate image_ids, e.g. {dup.iloc[0]!r}")
    if "path" in df.columns:
        check_relpaths(df["path"])
    if "variant" in df.columns:
        bad = set(df["variant"].dropna()) - set(VARIANTS)
        if bad:
            raise ManifestError(f"unknown variant(s) {sorted(bad)}; expected one of {VARIANTS}")


# --- the fingerprint of a stream ------------------------------------------------------------------


_FP_SCHEMA = pa.schema([(c, pa.string()) for c in FINGERPRINT_COLUMNS])


class _Fingerprint:
    """Accumulates the fingerprint columns of a stream of rows; :meth:`hexdigest` sorts
    them by id (spilling to disk past :data:`~mfrkit.external_sort.RUN_ROWS` rows) and
    hashes them as :func:`~mfrkit.data.manifest.manifest_fingerprint` does. Duplicate ids
    are refused."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = [c for c in FINGERPRINT_COLUMNS if c in columns]
        if "image_id" not in self.columns:
            raise ManifestError("manifest lacks required columns: image_id")
        schema = pa.schema([_FP_SCHEMA.field(c) for c in self.columns])
        self._sort = ExternalSort(schema, [("image_id", "ascending")])

    def add(self, rows: pa.Table | pd.DataFrame) -> None:
        if isinstance(rows, pd.DataFrame):
            rows = pa.table({c: pa.array(_plain_strings(rows[c]), pa.string()) for c in self.columns})
        self._sort.add(rows.select(self.columns).cast(self._sort.schema))

    def hexdigest(self) -> str:
        h = hashlib.sha256()
        h.update(("\x1f".join(self.columns) + "\n").encode())
        last = None
        try:
            for table in self._sort.sorted():
                ids = table["image_id"]
                if table.num_rows > 1 and pc.any(pc.equal(ids.slice(1), ids.slice(0, table.num_rows - 1))).as_py():
                    i = [a == b for a, b in zip(ids.to_pylist()[1:], ids.to_pylist()[:-1])].index(True)
                    raise ManifestError(f"manifest has duplicate image_ids, e.g. {ids[i].as_py()!r}")
                if last is not None and ids[0].as_py() == last:
                    raise ManifestError(f"manifest has duplicate image_ids, e.g. {last!r}")
                last = ids[table.num_rows - 1].as_py()
                cols = [pc.fill_null(table[c], "") for c in self.columns]
                lines = pc.binary_join_element_wise(*cols, "\x1f")
                h.update(("\n".join(lines.to_pylist()) + "\n").encode())
        finally:
            self._sort.close()
        return h.hexdigest()


def _plain_strings(column: pd.Series) -> list:
    """A column's values as the in-memory fingerprint sees them: ``str(v)``, missing None."""
    return [None if v is None else str(v) for v in column.astype(object).where(column.notna(), None)]


def manifest_fingerprint_of(batches: Iterable[pa.Table | pd.DataFrame], columns: Sequence[str]) -> str:
    """:func:`~mfrkit.data.manifest.manifest_fingerprint` of the rows of ``batches``
    (frames or Arrow tables holding ``columns``), in bounded memory."""
    fp = _Fingerprint(columns)
    for batch in batches:
        fp.add(batch)
    return fp.hexdigest()


# --- reading ----------------------------------------------------------------------------------------


class ManifestReader:
    """A manifest file read one row group at a time.

    Parameters
    ----------
    path : path
        The manifest (``.parquet``), or a folder holding ``manifest.parquet``.
    records : bool
        As for :func:`~mfrkit.data.manifest.read_manifest`: False leaves the
        :data:`~mfrkit.data.manifest.RECORD_COLUMNS` on disk (:attr:`left_on_disk`).

    The file stays open: if it is replaced while being read (a rescan writing it back),
    the reader goes on with the version it opened. Attributes ``meta``, ``path``, ``root``
    and ``name`` mean what they mean on a :class:`~mfrkit.data.manifest.Manifest`.
    """

    def __init__(self, path: str | os.PathLike, *, records: bool = True) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        if not path.exists():
            raise ManifestError(f"no manifest at {path}")
        self.path = path
        try:
            self._handle = open(path, "rb")
            self._file = pq.ParquetFile(self._handle)
            raw = (self._file.schema_arrow.metadata or {}).get(_META_KEY)
            meta = json.loads(raw) if raw else {}
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise ManifestError(f"cannot read manifest {path}: {exc}") from exc
        try:
            check_meta(meta)
        except ManifestError as exc:
            raise ManifestError(f"manifest {path}: {exc}") from None
        self.meta: dict = meta
        names = self._file.schema_arrow.names
        missing = [c for c in ("image_id", "path", "status") if c not in names]
        if missing:
            raise ManifestError(f"manifest {path}: manifest lacks required columns: {', '.join(missing)}")
        self.left_on_disk: tuple[str, ...] = () if records else tuple(c for c in RECORD_COLUMNS if c in names)
        self.columns: list[str] = [c for c in names if c not in self.left_on_disk]
        self._fingerprint: str | None = None
        self._table: pd.DataFrame | None = None

    def __getstate__(self):
        raise TypeError("a ManifestReader holds an open file; send its path instead")

    def __len__(self) -> int:
        return self._file.metadata.num_rows

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "ManifestReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def root(self) -> Path:
        return dataset_root(self.meta, self.path)

    @property
    def name(self) -> str:
        return str(self.meta.get("name", ""))

    def abspath(self, rel: str) -> Path:
        return self.root / safe_relpath(rel)

    def arrow_batches(self, columns: Sequence[str] | None = None, size: int = ROW_GROUP) -> Iterator[pa.Table]:
        """The rows as Arrow tables of at most ``size`` rows (``columns`` only)."""
        cols = self.columns if columns is None else [c for c in columns if c in self.columns]
        try:
            for batch in self._file.iter_batches(batch_size=size, columns=cols, use_threads=False):
                yield pa.Table.from_batches([batch])
        except (OSError, pa.ArrowException) as exc:
            raise ManifestError(f"cannot read manifest {self.path}: {exc}") from exc

    def batches(self, columns: Sequence[str] | None = None, size: int = ROW_GROUP) -> Iterator[pd.DataFrame]:
        """The rows as frames of at most ``size`` rows, typed as
        :func:`~mfrkit.data.manifest.read_manifest` types them, each checked as it is read."""
        for table in self.arrow_batches(columns, size):
            df = table.to_pandas(types_mapper=_NULLABLE.get)
            try:
                check_rows(df)
            except ManifestError as exc:
                raise ManifestError(f"manifest {self.path}: {exc}") from None
            yield df

    def schema(self) -> pa.Schema:
        """The Arrow schema of :attr:`columns`, with the file's metadata (``meta``)."""
        full = self._file.schema_arrow
        return pa.schema([full.field(c) for c in self.columns], metadata=full.metadata)

    def column(self, name: str) -> pa.ChunkedArray:
        """One column of every row, as Arrow (compact: no Python object per row)."""
        return pa.chunked_array([t[name] for t in self.arrow_batches([name])], type=self._file.schema_arrow.field(name).type)

    def fingerprint(self) -> str:
        """See :func:`~mfrkit.data.manifest.manifest_fingerprint` (computed once; also
        refuses ids repeated across row groups)."""
        if self._fingerprint is None:
            cols = [c for c in FINGERPRINT_COLUMNS if c in self.columns]
            try:
                self._fingerprint = manifest_fingerprint_of(self.arrow_batches(cols), cols)
            except ManifestError as exc:
                raise ManifestError(f"manifest {self.path}: {exc}") from None
        return self._fingerprint

    def load(self) -> Manifest:
        """The whole manifest in memory (:func:`~mfrkit.data.manifest.read_manifest`)."""
        return read_manifest(self.path, records=not self.left_on_disk)

    @property
    def table(self) -> pd.DataFrame:
        """The whole table, read the first time it is asked for (for code that has not
        moved to :meth:`batches`; it costs what :func:`read_manifest` costs)."""
        if self._table is None:
            self._table = self.load().table
        return self._table

    def ok(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "ok"]


def is_manifest(value: object) -> bool:
    """Whether ``value`` is a manifest, in memory or streamed from its file."""
    return isinstance(value, (Manifest, ManifestReader))


def open_manifest(path: str | os.PathLike, *, records: bool = True) -> ManifestReader | Manifest:
    """A manifest file to stream: a :class:`ManifestReader`; a CSV export is read whole
    (a :class:`~mfrkit.data.manifest.Manifest`, which streams from memory)."""
    path = Path(path)
    if path.suffix.lower() == ".csv" and path.is_file():
        return read_manifest(path, records=records)
    return ManifestReader(path, records=records)


# --- writing -----------------------------------------------------------------------------------------


class ManifestWriter:
    """Write a manifest row group by row group.

    Parameters
    ----------
    path : path
        The manifest file to make; it appears (atomically) when :meth:`close` succeeds.
    meta : dict
        Its metadata; ``created``, ``mfrkit_version`` and ``fingerprint`` are added as
        :func:`~mfrkit.data.manifest.write_manifest` adds them.
    schema : pyarrow.Schema, optional
        The columns and types of every row group (core columns first). Default: the
        core columns, then the first frame's extra columns with the types pyarrow gives them.

    Each :meth:`write` takes a frame of rows (missing core columns are null) and writes it
    as row groups of a body file beside ``path``; :meth:`close` computes the fingerprint
    (refusing an id repeated anywhere) and finishes the file with the metadata in its
    schema (:class:`~mfrkit.parquet_out.ParquetOut`). Use as a context manager: an
    exception leaves no file behind.
    """

    def __init__(self, path: str | os.PathLike, meta: dict, *, schema: pa.Schema | None = None) -> None:
        self.path = Path(path)
        self.meta = dict(meta)
        self.schema = schema
        self.num_rows = 0
        self._fp: _Fingerprint | None = None
        self._out: ParquetOut | None = None

    def __enter__(self) -> "ManifestWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self, df: pd.DataFrame) -> None:
        if self.schema is None:
            extra = [c for c in df.columns if c not in COLUMNS]
            self.schema = pa.schema(list(SCHEMA) + list(arrow_rows(df[extra]).schema) if extra else list(SCHEMA))
        self._fp = _Fingerprint(self.schema.names)
        self._out = ParquetOut(self.path, self.schema, row_group_size=ROW_GROUP)

    def write(self, df: pd.DataFrame) -> None:
        """Append rows (a frame of manifest rows; any index)."""
        if not len(df):
            return
        if self._out is None:
            self._open(df)
        unknown = [c for c in df.columns if c not in self.schema.names]
        if unknown:
            raise ManifestError(f"rows have column(s) {', '.join(map(str, unknown))} the manifest being written lacks")
        check_rows(df)
        table = arrow_rows(df.reset_index(drop=True), self.schema)
        self._fp.add(table)
        self._out.write(table)
        self.num_rows += len(df)

    def close(self) -> Path:
        """Finish the file; returns its path. With no row written, an empty manifest."""
        if self._out is None:
            self._open(pd.DataFrame(columns=list(COLUMNS)))
        try:
            meta = dict(self.meta)
            meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
            meta["mfrkit_version"] = __version__
            meta["fingerprint"] = self._fp.hexdigest()
        except BaseException:
            self.abort()
            raise
        self._out.close(meta_bytes(meta))
        self.meta = meta
        return self.path

    def abort(self) -> None:
        """Stop without writing the manifest."""
        if self._out is not None:
            self._out.abort()
