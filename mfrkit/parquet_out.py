"""A Parquet file written a row group at a time whose schema metadata is known only at
the end (a manifest's fingerprint, the landmark index's first ids per row group).

pyarrow's ``ParquetWriter`` fixes the Arrow schema, metadata included, when it opens the
file, so :class:`ParquetOut` writes the rows to a body file beside the target, then
copies the body, row group by row group, into the target with the metadata, and renames
it into place (:func:`mfrkit.atomic.atomic_path`): a reader sees the old file or the
whole new one. The copy reads one row group at a time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path


class ParquetOut:
    """Write ``path`` a row group at a time (see the module docstring).

    Parameters
    ----------
    path : path
    schema : pyarrow.Schema
        Of every table written (without the final metadata).
    row_group_size : int
    **options
        More ``ParquetWriter`` options (``compression``).
    """

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, *, row_group_size: int, **options) -> None:
        self.path = Path(path)
        self.schema = schema
        self.row_group_size = row_group_size
        self.options = options
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, body = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=".body.tmp.parquet")
        os.close(fd)
        self._body = Path(body)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self._body, schema, **options)

    def write(self, table: pa.Table) -> None:
        """Append rows (cast to the schema)."""
        if table.num_rows:
            self._writer.write_table(table.select(self.schema.names).cast(self.schema), row_group_size=self.row_group_size)

    def close(self, metadata: dict[bytes, bytes] | None = None) -> Path:
        """Finish ``path`` with ``metadata`` as its schema metadata; returns it."""
        try:
            self._writer.close()
            self._writer = None
            body = pq.ParquetFile(self._body)
            schema = self.schema.with_metadata(metadata or {})
            with atomic_path(self.path) as tmp:
                with pq.ParquetWriter(tmp, schema, **self.options) as out:
                    for g in range(body.num_row_groups):
                        out.write_table(body.read_row_group(g).cast(schema), row_group_size=self.row_group_size)
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Stop; nothing is written at ``path`` (the body is removed)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - being thrown away
                pass
            self._writer = None
        self._body.unlink(missing_ok=True)
