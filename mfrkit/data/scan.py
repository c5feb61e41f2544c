"""Scanning a dataset folder into a manifest: layout records + file hashes + image checks.

A scan streams: the layout's records come from a walk of the folder
(:func:`~mfrkit.data.layouts.stream_layout`), go to the executor in chunks to be hashed
and decoded, and come back in order to be written row group by row group
(:func:`scan_to_file`); a rescan (:func:`update_scan_file`) walks the folder beside the
manifest's rows, both in path order. The driver holds a chunk or a row group at a time
and the images that changed, never the folder's listing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import pandas as pd

from ..errors import ImageError, ManifestError
from .imageio import MAX_PIXELS, decode_image, image_size, read_file_bytes
from .layouts import STATUS_NO_IDENTITY, check_layout_options, detect_layout, stream_layout
from .manifest import COLUMNS, ROW_GROUP, SCHEMA, STATUS_OK, Manifest, make_table
from .recordio_manifest import recordio_changes, scan_recordio, scan_recordio_to_file, update_recordio_scan, update_recordio_scan_file
from .recordio_scan import LAYOUT as RECORDIO_LAYOUT

if TYPE_CHECKING:
    from ..jobs import ExecutorSpec


@dataclass
class ScanReport:
    """What a scan found, for the user.

    Attributes
    ----------
    layout : str
    n_images : int
    failures : dict
        Count of images per failure status.
    warnings : list of str
    ok : int
        Images whose status is ``ok``.
    identities : int
        Distinct identities (of every image).
    """

    layout: str
    n_images: int
    failures: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    ok: int = 0
    identities: int = 0


#: Extra manifest columns a scan records for every file: its modification and status
#: change times (ns). With ``bytes`` they are the file's *stamp*: a stamp that differs
#: from the file's means it may have changed (see :func:`update_scan`).
STAMP_COLUMNS = ("mtime_ns", "ctime_ns")


def file_stamp(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """``(size, mtime_ns, ctime_ns)`` of a file (links followed), or None when it cannot be stat'ed.

    ``ctime`` is kept besides ``mtime`` because copying a photo in with its times
    preserved (``cp -p``, ``rsync -t``, ``touch -r``) sets ``mtime`` back but not ``ctime``.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def probe_image(path: str, verify: bool = True, max_pixels: int = MAX_PIXELS) -> dict:
    """Hash, size, stamp and status of one image file.

    The file is read once; its bytes are hashed and then decoded. With ``verify`` the
    image is fully decoded (catches truncated files); without it only the header is
    read. Never raises for a bad image: the failure is the ``status``.

    Returns
    -------
    dict with ``sha256`` (hex), ``bytes``, ``width`` and ``height`` (pixels, after the
    EXIF orientation; None when unknown), ``status``, and ``mtime_ns`` / ``ctime_ns``
    (taken before reading, so a file changed meanwhile looks changed next time).
    """
    info: dict = {"sha256": None, "bytes": None, "width": None, "height": None, "status": STATUS_OK,
                  "mtime_ns": None, "ctime_ns": None}
    stamp = file_stamp(path)
    if stamp is not None:
        info["mtime_ns"], info["ctime_ns"] = stamp[1], stamp[2]
    try:
        data = read_file_bytes(path)  # regular files only, size-capped: a FIFO or /dev/zero cannot hang a scan
    except ImageError as exc:
        info["status"] = exc.reason  # missing, unreadable (permission denied), not_a_file, too_large
        return info
    info["bytes"], info["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    try:
        if verify:
            h, w = decode_image(data, max_pixels=max_pixels).shape[:2]
        else:
            w, h = image_size(data, max_pixels=max_pixels)
        info["width"], info["height"] = int(w), int(h)
    except ImageError as exc:
        info["status"] = exc.reason
    return info


def _hash_many(paths: list[str]) -> list[str | None]:
    out: list[str | None] = []
    for p in paths:
        try:
            out.append(hashlib.sha256(read_file_bytes(p)).hexdigest())
        except ImageError:
            out.append(None)
    return out


def _run_chunks(fn, items: list, description: str, progress: bool, executor, *, chunk: int = 64) -> list:
    """``fn`` over ``items`` in chunks on the job engine's executor (an ExecutorSpec;
    None: in this process), results in order."""
    from ..jobs import ExecutorSpec, map_chunks

    return map_chunks(fn, items, executor=executor or ExecutorSpec(), chunk_size=chunk, progress=progress, description=description)


def _local(workers: int):
    """A local pool of ``workers`` processes (in-process when 1)."""
    from ..jobs import ExecutorSpec

    return ExecutorSpec(workers=max(1, workers))


def _row(rec: dict, probe: dict) -> dict:
    row = {"image_id": rec["path"], "variant": "unmasked", **rec, **probe}
    if rec.get("status") and probe["status"] == STATUS_OK:
        row["status"] = rec["status"]  # layout-level failure (no identity) wins over "ok"
    return row


def _table(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return make_table(pd.DataFrame(columns=["image_id", "path", "status"]))
    table = make_table(rows)
    for col in STAMP_COLUMNS:
        if col in table.columns:
            table[col] = table[col].astype("Int64")
    return table


def _scan_rows_verified(values: list[tuple[str, dict]]) -> list[dict]:
    return [_row(rec, probe_image(path, True)) for path, rec in values]


def _scan_rows_header(values: list[tuple[str, dict]]) -> list[dict]:
    return [_row(rec, probe_image(path, False)) for path, rec in values]


def _scan_stream(root: Path, layout: str, name: str, verify: bool, progress: bool, executor, layout_options: dict):
    """(the layout's stream, the manifest rows of its images in order, the metadata):
    the records are probed in chunks on the executor as they are walked."""
    from ..jobs import ExecutorSpec, imap_chunks

    stream = stream_layout(root, layout, **layout_options)
    values = ((str(root / rec["path"]), rec) for rec in stream)
    rows = imap_chunks(_scan_rows_verified if verify else _scan_rows_header, values, executor=executor or ExecutorSpec(),
                       chunk_size=64, progress=progress, description=f"scanning {name or root.name}")
    meta = {"name": name or root.name, "root": str(root), "layout": stream.layout, "layout_options": layout_options, "kind": "scanned",
            "verify": bool(verify)}
    return stream, rows, meta


class _Tally:
    """What a :class:`ScanReport` counts, over row groups: images, ``ok``, failures per
    status, distinct identities (sorted in bounded memory)."""

    def __init__(self) -> None:
        import pyarrow as pa

        from ..external_sort import ExternalSort

        self.n = self.ok = 0
        self.failures: dict[str, int] = {}
        self._identities = ExternalSort(pa.schema([("identity", pa.string())]), [("identity", "ascending")])

    def add(self, table: pd.DataFrame) -> None:
        import pyarrow as pa

        status = table["status"].astype(str)
        self.n += len(table)
        self.ok += int((status == STATUS_OK).sum())
        for k, v in status[status != STATUS_OK].value_counts(sort=False).items():
            self.failures[str(k)] = self.failures.get(str(k), 0) + int(v)
        ids = table["identity"].dropna().astype(str)
        self._identities.add(pa.table({"identity": pa.array(ids.tolist(), pa.string())}))

    def report(self, layout: str, warnings: list[str]) -> ScanReport:
        distinct, last = 0, None
        with self._identities as ids:
            for t in ids.sorted():
                values = t["identity"].to_pylist()
                distinct += sum(1 for a, b in zip([last] + values[:-1], values) if a != b)
                last = values[-1]
        failures = dict(sorted(self.failures.items(), key=lambda kv: -kv[1]))  # most frequent first, as value_counts
        return ScanReport(layout=layout, n_images=self.n, failures=failures, warnings=warnings, ok=self.ok, identities=distinct)


def _report(table: pd.DataFrame, layout: str, warnings: list[str]) -> ScanReport:
    tally = _Tally()
    tally.add(table)
    return tally.report(layout, warnings)


def batched(rows: Iterable[dict], size: int = ROW_GROUP) -> Iterator[list[dict]]:
    """``rows`` in lists of ``size``."""
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def scan_dataset(
    root: str | os.PathLike,
    *,
    layout: str = "auto",
    name: str = "",
    verify: bool | None = None,
    progress: bool = False,
    executor: ExecutorSpec | None = None,
    **layout_options,
) -> tuple[Manifest, ScanReport]:
    """Read a dataset folder into a manifest (in memory; :func:`scan_to_file` streams it
    into its file).

    Every image the layout finds becomes a row, including the ones that cannot be
    decoded (their ``status`` says why). ``image_id`` is the relative path. Each row
    also records the file's stamp (``bytes``, ``mtime_ns``, ``ctime_ns``), which
    :func:`update_scan` compares to find what changed since.

    Parameters
    ----------
    root : path-like
        The dataset folder.
    layout : str
        A name in :data:`mfrkit.data.layouts.LAYOUTS` or ``auto``.
    verify : bool or None
        Decode every image fully (slower, catches truncated files). None: yes for a
        folder of files, no for RecordIO (each record's framing, header and SHA-256 are
        read, its image header parsed; see :mod:`mfrkit.data.recordio_scan`).
    executor : ExecutorSpec, optional
        Where the images are hashed and decoded: a local pool of ``workers`` processes,
        or ``ray`` on a cluster; default in this process.

    Returns
    -------
    (Manifest, ScanReport); the manifest is not written (see :func:`write_manifest`).
    """
    root = Path(root).expanduser().resolve()
    if _is_recordio(root, layout, layout_options):
        return scan_recordio(root, name=name, verify=bool(verify), progress=progress, executor=executor, **layout_options)
    stream, rows, meta = _scan_stream(root, layout, name, True if verify is None else verify, progress, executor, layout_options)
    table = _table(list(rows))
    return Manifest(table=table, meta=meta), _report(table, stream.layout, stream.warnings)


def scan_to_file(root: str | os.PathLike, path: str | os.PathLike, *, layout: str = "auto", name: str = "", verify: bool | None = None,
                 progress: bool = False, executor: ExecutorSpec | None = None, **layout_options) -> ScanReport:
    """:func:`scan_dataset` written straight into the manifest file ``path``, a row group
    at a time (atomically: the file appears complete, or not at all)."""
    from .manifest_stream import ManifestWriter

    root = Path(root).expanduser().resolve()
    if _is_recordio(root, layout, layout_options):
        return scan_recordio_to_file(root, path, name=name, verify=bool(verify), progress=progress, executor=executor, **layout_options)
    stream, rows, meta = _scan_stream(root, layout, name, True if verify is None else verify, progress, executor, layout_options)
    tally = _Tally()
    with ManifestWriter(path, meta) as writer:
        for batch in batched(rows):
            table = _table(batch)
            tally.add(table)
            writer.write(table)
    return tally.report(stream.layout, stream.warnings)


def _scan_schema(extra=None):
    """The columns of a scan's manifest: the core ones, any extra column a rescan keeps
    (``extra``, a schema), then the stamps."""
    import pyarrow as pa

    kept = [f for f in (extra or []) if f.name not in COLUMNS and f.name not in STAMP_COLUMNS]
    return pa.schema(list(SCHEMA) + kept + [pa.field(c, pa.int64()) for c in STAMP_COLUMNS])


def _is_recordio(root: Path, layout: str, layout_options: dict) -> bool:
    """Whether ``root`` is scanned as insightface RecordIO (its options checked)."""
    if (layout if layout != "auto" else detect_layout(root)) != RECORDIO_LAYOUT:
        return False
    check_layout_options(RECORDIO_LAYOUT, layout_options)
    return True


def _probe_many_verified(paths: list[str]) -> list[dict]:
    return [probe_image(p, True) for p in paths]


def _probe_many_header(paths: list[str]) -> list[dict]:
    return [probe_image(p, False) for p in paths]


# --- what changed since a scan ---------------------------------------------------------------------


@dataclass
class ScanChanges:
    """How a dataset folder differs from its scan.

    Attributes
    ----------
    added, removed, modified : list of str
        Relative paths: new images, images gone, images whose bytes changed (or that
        could not be read back).
    restamped : int
        Images whose stamp changed but whose bytes (sha256) did not (``touch``, a copy
        of the same file): only the stamp is updated.
    relabelled : int
        Images whose layout fields (identity, variant) changed, e.g. an edited labels file.
    """

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    restamped: int = 0
    relabelled: int = 0

    @property
    def changed(self) -> bool:
        """True when the manifest's content (which images, their bytes or labels) changes."""
        return bool(self.added or self.removed or self.modified or self.relabelled)

    def summary(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in (("added", self.added), ("removed", self.removed),
                                                ("modified", self.modified)) if v]
        if self.relabelled:
            parts.append(f"{self.relabelled} relabelled")
        return ", ".join(parts) or "unchanged"


def _plain(column: pd.Series) -> list:
    """A column as a list of Python values, missing ones as None."""
    return column.astype(object).where(column.notna(), None).tolist()


def _na(v) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def _same(a, b) -> bool:
    return (_na(a) and _na(b)) or (not _na(a) and not _na(b) and a == b)


#: Manifest columns a layout fills (the rest come from reading the file).
_LAYOUT_COLUMNS = ("identity", "variant", "mask_type")


def _layout_fields_differ(old: dict, rec: dict) -> bool:
    def norm(v):
        return None if _na(v) else v

    return any(norm(old.get(c)) != norm(rec.get(c, "unmasked" if c == "variant" else None)) for c in _LAYOUT_COLUMNS)


def modified_images(manifest, *, workers: int = 1) -> list[str]:
    """Paths of the manifest's images whose bytes changed on disk since the scan.

    A stat per row (no walk): a file whose size differs is modified; one whose size is
    the same but whose ``mtime`` / ``ctime`` differ (or were never recorded) is hashed
    and compared with its ``sha256``. Files gone are not listed (they are missing, which
    every consumer reports), nor are rows without a ``sha256`` (never read). Only scans
    (``meta["kind"] == "scanned"``) are checked; other manifests give ``[]``. ``manifest``
    is a :class:`~mfrkit.data.manifest.Manifest` or a
    :class:`~mfrkit.data.manifest_stream.ManifestReader` (read a row group at a time).
    """
    columns = _columns_of(manifest)
    if manifest.meta.get("kind") != "scanned" or "sha256" not in columns:
        return []
    if manifest.meta.get("layout") == RECORDIO_LAYOUT:
        return recordio_changes(manifest, workers=workers).modified
    base = str(manifest.root)
    modified, to_hash = [], []
    for table in manifest.batches(["path", "sha256", "bytes", *STAMP_COLUMNS]):
        cols = [_plain(table[c]) if c in table.columns else [None] * len(table) for c in ("path", "sha256", "bytes", *STAMP_COLUMNS)]
        for rel, sha, size, mtime, ctime in zip(*cols):
            if sha is None or size is None:
                continue
            stamp = file_stamp(os.path.join(base, rel))
            if stamp is None:
                continue
            if int(size) != stamp[0]:
                modified.append(rel)
            elif mtime is None or ctime is None or int(mtime) != stamp[1] or int(ctime) != stamp[2]:
                to_hash.append((rel, sha))
    if to_hash:
        hashes = _run_chunks(_hash_many, [os.path.join(base, rel) for rel, _ in to_hash], "", False, _local(workers))
        modified += [rel for (rel, sha), digest in zip(to_hash, hashes) if digest is not None and digest != sha]
    return sorted(modified)


def _columns_of(manifest) -> list[str]:
    return list(manifest.table.columns) if isinstance(manifest, Manifest) else list(manifest.columns)


#: What the first pass of a rescan reads of each row.
_CHECK_COLUMNS = ("path", "sha256", "bytes", "width", "height", "status", *STAMP_COLUMNS, *_LAYOUT_COLUMNS)


def _rows_by_path(manifest, columns) -> Iterator[dict]:
    """The manifest's rows as dicts (``columns`` only; None: every column), in path
    order; a manifest not in path order (not written by a scan) is sorted in memory."""
    names = _columns_of(manifest)
    cols = [c for c in (columns or names) if c in names]
    last = None
    for table in manifest.batches(cols):
        data = {c: _plain(table[c]) for c in cols}
        for i, rel in enumerate(data["path"]):
            if last is not None and rel <= last:
                raise _NotInPathOrder
            last = rel
            yield {c: data[c][i] for c in cols}


class _NotInPathOrder(Exception):
    """The rows of a scan are not sorted by path (a manifest edited by hand)."""


def _merged(records: Iterable[dict], rows: Iterator[dict]) -> Iterator[tuple[dict | None, dict | None]]:
    """(record, row) pairs of a layout's records and a manifest's rows matched by path,
    both in path order; None on the side that lacks the path."""
    row = next(rows, None)
    for rec in records:
        rel = rec["path"]
        while row is not None and row["path"] < rel:
            yield None, row
            row = next(rows, None)
        if row is not None and row["path"] == rel:
            yield rec, row
            row = next(rows, None)
        else:
            yield rec, None
    while row is not None:
        yield None, row
        row = next(rows, None)


def _layout_of(manifest):
    meta = manifest.meta
    return stream_layout(manifest.root, meta.get("layout") or "auto", **(meta.get("layout_options") or {}))


def _rescan(manifest, progress: bool, executor) -> tuple[ScanChanges, Iterator[dict] | None]:
    """What changed since the scan, and (when anything did) the rows of the updated
    manifest in order, made by walking the folder again beside the manifest's rows."""
    meta = manifest.meta
    if meta.get("kind") != "scanned":
        raise ManifestError(f"{manifest.path or 'this manifest'} was not made by scanning a folder; nothing to update")
    try:
        return _rescan_sorted(manifest, progress, executor)
    except _NotInPathOrder:
        table = manifest.table.sort_values("path", kind="stable").reset_index(drop=True)
        return _rescan_sorted(Manifest(table=table, meta=meta, path=manifest.path), progress, executor)


def _rescan_sorted(manifest, progress: bool, executor) -> tuple[ScanChanges, Iterator[dict] | None]:
    root = manifest.root
    base = str(root)
    changes = ScanChanges()
    probe_paths: list[str] = []
    hash_paths: list[tuple[str, str]] = []
    before: dict[str, dict] = {}  # rows of the images read again (only those)
    relabelled = False
    for rec, row in _merged(_layout_of(manifest), _rows_by_path(manifest, _CHECK_COLUMNS)):
        if rec is None:
            changes.removed.append(row["path"])
            continue
        rel = rec["path"]
        if row is None:
            changes.added.append(rel)
            probe_paths.append(rel)
            continue
        relabelled = relabelled or _layout_fields_differ(row, rec)
        stamp = file_stamp(os.path.join(base, rel))
        size, sha = row["bytes"], row["sha256"]
        if stamp is None or size is None or int(size) != stamp[0] or sha is None:
            probe_paths.append(rel)  # new size, or never read: read it again
            before[rel] = row
        elif any(row[c] is None or int(row[c]) != v for c, v in zip(STAMP_COLUMNS, stamp[1:])):
            hash_paths.append((rel, sha))  # same size, new times: compare the bytes
            before[rel] = row
    if hash_paths:
        hashes = _run_chunks(_hash_many, [os.path.join(base, r) for r, _ in hash_paths],
                             f"checking {len(hash_paths)} image(s) of {manifest.name or root.name}", progress, executor)
        for (rel, sha), digest in zip(hash_paths, hashes):
            if digest is not None and digest == sha:
                changes.restamped += 1
            else:
                probe_paths.append(rel)
    changes.removed.sort()
    if not probe_paths and not changes.removed and not changes.restamped and not relabelled:
        return changes, None
    verify = manifest.meta.get("verify", True)
    probes = dict(zip(probe_paths, _run_chunks(_probe_many_verified if verify else _probe_many_header,
                                               [str(root / r) for r in probe_paths],
                                               f"rescanning {len(probe_paths)} image(s) of {manifest.name or root.name}",
                                               progress, executor)))
    for rel, probe in probes.items():
        if rel in before:
            old = before[rel]
            same = all(_same(old.get(k), probe[k]) for k in ("sha256", "bytes", "width", "height")) and \
                (probe["status"] == old.get("status") or old.get("status") == STATUS_NO_IDENTITY)
            if same:
                changes.restamped += 1  # read again (e.g. it could not be read before), same result
            else:
                changes.modified.append(rel)
    return changes, _updated_rows(manifest, probes, changes, verify)


def _updated_rows(manifest, probes: dict[str, dict], changes: ScanChanges, verify: bool) -> Iterator[dict]:
    """The updated manifest's rows: the folder walked again beside the old rows (an
    image that appeared or went meanwhile is read now, or dropped)."""
    root = manifest.root
    for rec, row in _merged(_layout_of(manifest), _rows_by_path(manifest, None)):
        if rec is None:
            if row["path"] not in changes.removed:
                changes.removed.append(row["path"])  # gone since the first walk
            continue
        rel = rec["path"]
        if rel in probes:
            yield _row(rec, probes[rel])
            continue
        if row is None:  # appeared since the first walk
            changes.added.append(rel)
            yield _row(rec, probe_image(str(root / rel), verify))
            continue
        if _layout_fields_differ(row, rec):
            changes.relabelled += 1
        # The probe's part of the old row; a layout status (no identity) only ever replaced "ok".
        probe = {k: row.get(k) for k in ("sha256", "bytes", "width", "height")}
        probe["status"] = STATUS_OK if row.get("status") == STATUS_NO_IDENTITY else row.get("status")
        stamp = file_stamp(os.path.join(str(root), rel))
        probe["mtime_ns"], probe["ctime_ns"] = (stamp[1], stamp[2]) if stamp else (None, None)
        extra = {k: v for k, v in row.items() if k not in COLUMNS and k not in STAMP_COLUMNS}
        yield {**extra, **_row(rec, probe)}


def update_scan(manifest: Manifest, *, progress: bool = False, executor: ExecutorSpec | None = None) -> tuple[Manifest, ScanChanges]:
    """Bring a scanned manifest up to date with its folder, reading only what changed.

    The folder is walked again with the manifest's layout (a ``stat`` per file, no
    reading). An image whose size differs from its row, or that is new, is probed again
    (hashed and decoded as the original scan did); one whose size is the same but whose
    ``mtime`` / ``ctime`` differ (or were never recorded) is hashed, and probed again only
    when its sha256 changed. Rows of unchanged images are kept as they are; images gone
    from the folder are dropped. Same-size replacements therefore get their new sha256
    (and, downstream, new landmarks and embeddings).

    Parameters
    ----------
    manifest : Manifest
        A manifest made by :func:`scan_dataset` (``meta["kind"] == "scanned"``).
    executor : ExecutorSpec, optional
        Where the changed images are hashed and decoded (a local pool of ``workers``
        processes, or ``ray``); default in this process.

    Returns
    -------
    (Manifest, ScanChanges): a new manifest (not written) and what changed. When
    nothing changed the manifest returned is ``manifest`` itself. (:func:`update_scan_file`
    does the same a row group at a time, from the manifest's file into its file.)
    """
    if manifest.meta.get("kind") == "scanned" and manifest.meta.get("layout") == RECORDIO_LAYOUT:
        return update_recordio_scan(manifest, progress=progress, executor=executor)
    changes, rows = _rescan(manifest, progress, executor)
    if rows is None:
        return manifest, changes
    table = _table(list(rows))
    new_meta = dict(manifest.meta)
    new_meta.pop("fingerprint", None)
    return Manifest(table=table, meta=new_meta, path=manifest.path), changes


def update_scan_file(path: str | os.PathLike, *, progress: bool = False, executor: ExecutorSpec | None = None):
    """:func:`update_scan` of the scan at ``path``, streamed: the updated manifest is
    written back (atomically) only when anything changed. Returns the manifest as a
    :class:`~mfrkit.data.manifest_stream.ManifestReader` (of the new file) and the changes."""
    from .manifest_stream import ManifestReader, ManifestWriter

    reader = ManifestReader(path)
    if reader.meta.get("kind") == "scanned" and reader.meta.get("layout") == RECORDIO_LAYOUT:
        reader.close()
        return update_recordio_scan_file(path, progress=progress, executor=executor)
    changes, rows = _rescan(reader, progress, executor)
    if rows is None:
        return reader, changes
    meta = dict(reader.meta)
    meta.pop("fingerprint", None)
    with reader, ManifestWriter(reader.path, meta, schema=_scan_schema(reader._file.schema_arrow)) as writer:
        for batch in batched(rows):
            writer.write(_table(batch))
    changes.removed.sort()
    return ManifestReader(reader.path), changes
