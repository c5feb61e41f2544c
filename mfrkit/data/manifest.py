"""The manifest: one Parquet table per dataset, one row per image.

Columns (see ``ARCHITECTURE.md``):

============== ========= ==========================================================
column         type      meaning
============== ========= ==========================================================
image_id       string    stable unique id (the relative path for scanned datasets)
path           string    POSIX path relative to the dataset root, never escaping it
identity       string    subject label; null where the layout has none
variant        string    ``unmasked`` | ``masked`` | ``partial`` (null: unknown)
source_id      string    for synthetic images, the ``image_id`` they were made from
mask_type      string    mask fields, for masked images
mask_color     string
mask_texture   string
coverage       string
region         string    partial-face fields
factor         float64
centered       bool
seed           int64     seed the image was synthesized with
landmark_backend string  backend whose landmarks were used to make the image
status         string    ``ok`` or a failure reason (``corrupt``, ``no_face``, ...)
sha256         string    of the file's bytes
width, height  int64     pixels; null when the image cannot be decoded
bytes          int64     file size
============== ========= ==========================================================

Later stages may add columns (quality checks, renderer parameters); readers keep
them. Dataset-level metadata (name, layout, root, mfrkit version, parameters, the
source manifest's fingerprint) is JSON under the Parquet key ``mfrkit``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..atomic import atomic_path
from ..errors import ManifestError
from ..userfiles import check_user_file
from .image_record import STATUS_OK

VARIANTS = ("unmasked", "masked", "partial")

#: Core columns and their Arrow types, in file order.
SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("path", pa.string()),
        ("identity", pa.string()),
        ("variant", pa.string()),
        ("source_id", pa.string()),
        ("mask_type", pa.string()),
        ("mask_color", pa.string()),
        ("mask_texture", pa.string()),
        ("coverage", pa.string()),
        ("region", pa.string()),
        ("factor", pa.float64()),
        ("centered", pa.bool_()),
        ("seed", pa.int64()),
        ("landmark_backend", pa.string()),
        ("status", pa.string()),
        ("sha256", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("bytes", pa.int64()),
    ]
)
COLUMNS = tuple(SCHEMA.names)
REQUIRED = ("image_id", "path", "status")

#: Columns that define *which* images a manifest holds; protocols pin these by hash.
FINGERPRINT_COLUMNS = ("image_id", "path", "identity", "variant", "source_id", "sha256")
#: Columns that record how each image was made (synth's per-image JSON of the drawn
#: parameters: about two thirds of a masked manifest's bytes). Readers that only need
#: which images a manifest holds (protocols, the bench, the report) leave them on disk:
#: ``read_manifest(path, records=False)``.
RECORD_COLUMNS = ("mask_params",)

_META_KEY = b"mfrkit"
# Nullable pandas dtypes, so an int column with a missing value stays an int column.
_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
MANIFEST_NAME = "manifest.parquet"
#: Rows per Parquet row group of a manifest: the unit the driver reads, plans and writes
#: at a time (:mod:`mfrkit.data.manifest_stream`).
ROW_GROUP = 8192


def dataset_root(meta: dict, path: Path | None) -> Path:
    """The dataset root that a manifest's ``path`` values are relative to: ``meta["root"]``
    (relative to the manifest file's folder when relative), else the file's folder."""
    root = meta.get("root") if isinstance(meta, dict) else None
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ManifestError(f"manifest metadata 'root' must be a folder path, got {type(root).__name__} {root!r:.60}")
    if root is None:
        if path is None:
            raise ManifestError("manifest has no dataset root: set meta['root']")
        return path.parent
    root = Path(root)
    if not root.is_absolute() and path is not None:
        root = path.parent / root
    return root


@dataclass
class Manifest:
    """A manifest table with its dataset-level metadata.

    Attributes
    ----------
    table : DataFrame
        One row per image, the columns above (plus any extra ones).
    meta : dict
        Dataset-level metadata (JSON-serialisable).
    path : Path or None
        Where the manifest was read from or last written to.
    left_on_disk : tuple of str
        :data:`RECORD_COLUMNS` the file holds that were not read
        (``read_manifest(..., records=False)``). Such a manifest cannot be written:
        the write would lose them.
    """

    table: pd.DataFrame
    meta: dict = field(default_factory=dict)
    path: Path | None = None
    left_on_disk: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        """The dataset root that ``path`` columns are relative to."""
        return dataset_root(self.meta, self.path)

    @property
    def name(self) -> str:
        return str(self.meta.get("name", ""))

    def abspath(self, rel: str) -> Path:
        """Absolute path of a manifest ``path`` value."""
        return self.root / safe_relpath(rel)

    def ok(self) -> pd.DataFrame:
        """The rows whose status is ``ok``."""
        return self.table[self.table["status"] == STATUS_OK]

    def fingerprint(self) -> str:
        """See :func:`manifest_fingerprint`."""
        return manifest_fingerprint(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def batches(self, columns: list[str] | None = None, size: int = ROW_GROUP):
        """The table in slices of ``size`` rows (``columns`` only): the same iteration as
        :meth:`mfrkit.data.manifest_stream.ManifestReader.batches`, so a driver-side pass
        runs alike over a manifest in memory and one streamed from its file."""
        table = self.table if columns is None else self.table[[c for c in columns if c in self.table.columns]]
        for start in range(0, len(table), size):
            yield table.iloc[start : start + size]


def safe_relpath(rel: str) -> PurePosixPath:
    """Validate a manifest path: relative, POSIX, no ``..``; raises ManifestError."""
    if not isinstance(rel, str) or not rel:
        raise ManifestError(f"invalid path in manifest: {rel!r}")
    p = PurePosixPath(rel)
    if p.is_absolute() or "\\" in rel or ".." in p.parts or (len(rel) > 1 and rel[1] == ":"):
        raise ManifestError(f"path {rel!r} escapes the dataset root (absolute or contains '..')")
    return p


def check_relpaths(paths: pd.Series) -> None:
    """:func:`safe_relpath` of every path of a column, vectorised: a few Arrow kernels
    flag the paths it could refuse (missing, empty, ``/...``, ``\\``, a ``..`` part,
    ``X:...``), and only those go through it, so the first bad path raises its error."""
    import pyarrow.compute as pc

    if not len(paths):
        return
    try:
        values = pa.array(paths.astype(object), type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a value that is not text
        flagged = np.arange(len(paths))
    else:
        bad = pc.or_(pc.is_null(values), pc.equal(pc.utf8_length(values), 0))
        for pattern in (r"^/", r"\\", r"(^|/)\.\.(/|$)", r"^.:"):
            bad = pc.or_(bad, pc.match_substring_regex(values, pattern))
        flagged = np.flatnonzero(pc.fill_null(bad, True).to_numpy(zero_copy_only=False))
    for i in flagged:
        safe_relpath(paths.iloc[int(i)])


def manifest_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the core columns first (missing ones null), then its other columns."""
    df = df.copy()
    for name in COLUMNS:
        if name not in df.columns:
            df[name] = None
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[list(COLUMNS) + extra]


def make_table(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """A manifest DataFrame from records: core columns first, missing ones null."""
    df = manifest_columns(pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows)
    validate_table(df)
    return df.reset_index(drop=True)


def validate_table(df: pd.DataFrame) -> None:
    """Check the invariants of a manifest table; raises ManifestError naming the problem."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ManifestError(f"manifest lacks required columns: {', '.join(missing)}")
    if df["image_id"].isna().any():
        raise ManifestError("manifest has rows without an image_id")
    dup = df["image_id"][df["image_id"].duplicated()]
    if len(dup):
        raise ManifestError(f"manifest has duplicate image_ids, e.g. {dup.iloc[0]!r}")
    check_relpaths(df["path"])
    if "variant" in df.columns:
        bad = set(df["variant"].dropna()) - set(VARIANTS)
        if bad:
            raise ManifestError(f"unknown variant(s) {sorted(bad)}; expected one of {VARIANTS}")


def arrow_rows(df: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """A manifest table (:func:`make_table`'s columns) as Arrow: core columns with their
    :data:`SCHEMA` types, extra columns as pyarrow reads them from pandas, or as ``schema``
    says (a streamed manifest's types, fixed for every row group; a column the frame lacks
    is null).
    """
    names = list(df.columns) if schema is None else schema.names
    arrays = []
    for col in names:
        target = SCHEMA.field(col).type if col in COLUMNS else (schema.field(col).type if schema is not None else None)
        if col not in df.columns:
            arrays.append(pa.nulls(len(df), target))
            continue
        values = df[col]
        if col in COLUMNS:
            if pa.types.is_integer(target) or pa.types.is_floating(target) or pa.types.is_boolean(target):
                values = values.astype(object).where(values.notna(), None)
            arrays.append(pa.array(values.tolist(), type=target, from_pandas=True))
        elif target is None:
            arrays.append(pa.Array.from_pandas(values))
        else:
            array = pa.Array.from_pandas(values)
            arrays.append(array if array.type == target else array.cast(target))
    return pa.Table.from_arrays(arrays, names=names)


def meta_bytes(meta: dict) -> dict[bytes, bytes]:
    """A manifest's metadata as the Parquet schema metadata it is stored in."""
    return {_META_KEY: json.dumps(meta, sort_keys=True, default=str).encode()}


def _arrow_table(df: pd.DataFrame, meta: dict) -> pa.Table:
    return arrow_rows(df).replace_schema_metadata(meta_bytes(meta))


def write_manifest(manifest: Manifest, path: str | os.PathLike | None = None) -> Path:
    """Write ``manifest`` as Parquet, atomically. Returns the path written.

    ``meta`` gains ``mfrkit_version``, ``created`` (UTC, ISO 8601) and ``fingerprint``.
    """
    path = Path(path) if path is not None else manifest.path
    if path is None:
        raise ManifestError("no path to write the manifest to")
    if manifest.left_on_disk:
        raise ManifestError(f"the manifest {manifest.path} was read without its {', '.join(manifest.left_on_disk)} column(s); "
                            "writing it would lose them: read it whole (read_manifest(path)) to write it")
    table = make_table(manifest.table)
    meta = dict(manifest.meta)
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    meta["mfrkit_version"] = __version__
    meta["fingerprint"] = manifest_fingerprint(table)
    with atomic_path(path) as tmp:
        pq.write_table(_arrow_table(table, meta), tmp, row_group_size=ROW_GROUP)
    manifest.table, manifest.meta, manifest.path = table, meta, Path(path)
    return Path(path)


def read_manifest(path: str | os.PathLike, *, records: bool = True) -> Manifest:
    """Read a manifest written by :func:`write_manifest` (or a CSV with the same columns).

    Parameters
    ----------
    path : path
        The manifest file, or a folder holding ``manifest.parquet``.
    records : bool
        Read the :data:`RECORD_COLUMNS` too. False leaves them on disk (a reader that only
        needs which images the manifest holds: its memory per image drops about threefold
        for a masked copy); the manifest then lists them in ``left_on_disk`` and cannot be
        written back.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise ManifestError(f"no manifest at {path}")
    check_user_file(path, "manifest")  # a FIFO or device named manifest.parquet: refused unread
    skipped: tuple[str, ...] = ()
    try:
        if path.suffix.lower() == ".csv":
            df, meta = pd.read_csv(path, dtype={"image_id": str, "path": str, "identity": str}), {}
            if not records:
                skipped = tuple(c for c in RECORD_COLUMNS if c in df.columns)
                df = df.drop(columns=list(skipped))
        else:
            columns = None
            if not records:
                names = pq.read_schema(path).names
                skipped = tuple(c for c in RECORD_COLUMNS if c in names)
                columns = [c for c in names if c not in skipped] if skipped else None
            table = pq.read_table(path, columns=columns)
            raw = (table.schema.metadata or {}).get(_META_KEY)
            meta = json.loads(raw) if raw else {}
            df = table.to_pandas(types_mapper=_NULLABLE.get)
            del table
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from exc
    try:
        check_meta(meta)
        validate_table(df)
    except ManifestError as exc:
        raise ManifestError(f"manifest {path}: {exc}") from None
    return Manifest(table=df, meta=meta, path=path, left_on_disk=skipped)


#: Metadata keys mfrkit reads back, and the JSON types they must have.
_META_TYPES = {"name": str, "root": str, "layout": str, "layout_options": dict, "kind": str, "fingerprint": str,
               "job_fingerprint": str, "known_dataset": str, "description": str}


def check_meta(meta: object) -> None:
    """Refuse manifest metadata mfrkit could not use: it must be a JSON object, and the
    keys mfrkit reads (``root``, ``layout_options``, ...) must have their types."""
    if not isinstance(meta, dict):
        raise ManifestError(f"its metadata must be a JSON object, got {type(meta).__name__}")
    for key, kind in _META_TYPES.items():
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise ManifestError(f"metadata {key!r} must be a {'string' if kind is str else 'JSON object'}, "
                                f"got {type(meta[key]).__name__} {meta[key]!r:.60}")


def export_csv(manifest: Manifest, path: str | os.PathLike, *, replace: bool = True) -> Path:
    """Write the manifest table as CSV (metadata is not kept), atomically; with
    ``replace=False`` an existing file is refused (``OutputFileExistsError``)."""
    with atomic_path(path, replace=replace) as tmp:
        manifest.table.to_csv(tmp, index=False)
    return Path(path)


def manifest_fingerprint(df: pd.DataFrame) -> str:
    """SHA-256 over the columns that say which images the manifest holds.

    Only :data:`FINGERPRINT_COLUMNS` count, rows sorted by ``image_id``: caching
    landmarks, adding quality columns or re-writing the file does not change it, but
    adding, removing, relabelling or changing an image does. Protocols record it.
    """
    cols = [c for c in FINGERPRINT_COLUMNS if c in df.columns]
    sub = df[cols].sort_values("image_id", kind="stable")
    # Every missing value (None, NaN, pd.NA of a nullable column) hashes as "", so the
    # fingerprint does not depend on the dtype a column happens to have in memory.
    sub = sub.astype(object).where(sub.notna(), "")
    h = hashlib.sha256()
    h.update(("\x1f".join(cols) + "\n").encode())
    for row in sub.itertuples(index=False):
        h.update(("\x1f".join(map(str, row)) + "\n").encode())
    return h.hexdigest()

