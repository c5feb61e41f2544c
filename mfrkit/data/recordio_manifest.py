"""The manifest of a RecordIO scan, made and kept current a row group at a time.

The driver's half of a scan of insightface RecordIO (:mod:`mfrkit.data.recordio_scan`
reads the index and the records). For a file of millions of records the driver holds
the index as numpy arrays (about 24 bytes per record), one span's results and one row
group, never a Python object per record:

- the spans of :data:`~mfrkit.data.recordio_scan.SPAN_RECORDS` records are cut from the
  index as the executor takes them, in file order;
- their rows come back in that order and are put in key order (the manifest's): as they
  come when the file holds its records in key order (every insightface writer does),
  else through :class:`~mfrkit.external_sort.ExternalSort`; keys record 0 promises but
  the index lacks are merged in at their place;
- the rows are written by :class:`~mfrkit.data.manifest_stream.ManifestWriter` (or, for
  :func:`scan_recordio`, gathered into one frame), the report and warnings counted on
  the way;
- a rescan compares the fresh rows with the manifest's, both in key order, by merging
  the two streams (:class:`_Changes`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from . import recordio as rio
from .recordio_scan import ALIGNED_SIZES, LAYOUT, SPAN_RECORDS, RecStructure, Span, file_stamps, missing_record, read_structure, scan_span, verification_bins

#: The values of a span's results kept per record (its message only feeds the warnings).
_VALUES = ("label", "sha256", "width", "height", "bytes", "status")
_ROW_SCHEMA = pa.schema([("key", pa.int64()), ("label", pa.int64()), ("sha256", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
                         ("bytes", pa.int64()), ("status", pa.string())])


class _SpanScan:
    """The job-engine view of a scan: each chunk is ``[(position, Span)]``."""

    kind = "recordio-scan"

    def open_worker(self):
        return None

    def ray_resources(self) -> dict:
        return {"num_cpus": 1}

    def run_chunk(self, chunk, state) -> list[dict]:
        return [scan_span(span) for _, span in chunk]


class RecScan:
    """One pass over a RecordIO file's records (see the module docstring).

    Iterate :meth:`frames` once: manifest frames in key order (``key`` column first,
    then the manifest's columns). Afterwards :meth:`meta` and :meth:`report` hold what
    the pass found.
    """

    def __init__(self, root: Path, rec: str, name: str, verify: bool) -> None:
        self.root, self.rec, self.name, self.verify = root, rec, name or root.name, bool(verify)
        self.stamps = file_stamps(root, rec)  # before reading: a file changed meanwhile looks changed next time
        self.structure: RecStructure = read_structure(root, rec)
        self.n = self.ok = self.odd = 0
        self.failures: dict[str, int] = {}
        self.first_message: dict[str, str] = {}
        self.identities: set[int] = set()

    # --- the rows --------------------------------------------------------------------------

    def _order(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions (into the structure's keys) of the records in file order, and of the
        keys the index lacks."""
        offsets = self.structure.offsets
        present = np.flatnonzero(offsets >= 0)
        return present[np.argsort(offsets[present], kind="stable")], np.flatnonzero(offsets < 0)

    def _spans(self, order: np.ndarray) -> Iterator[list]:
        s = self.structure
        for i in range(0, len(order), SPAN_RECORDS):
            at = order[i : i + SPAN_RECORDS]
            yield [(i, Span(str(s.rec), tuple(s.image_keys[at].tolist()), tuple(s.offsets[at].tolist()), tuple(s.ends[at].tolist()),
                            s.prop.num_classes, self.verify))]

    def _results(self, order: np.ndarray, progress: bool, executor) -> Iterator[pd.DataFrame]:
        """The spans' values on the executor (an ExecutorSpec; None: in this process), as
        frames in file order (the bar counts records)."""
        from ..jobs import ExecutorSpec
        from ..progress import progress_bar

        executor = executor or ExecutorSpec()
        waiting: dict[int, tuple] = {}
        expected = 0
        with progress_bar(len(self.structure.image_keys), f"scanning {self.name} ({self.rec})", enabled=progress and len(order) > 0) as advance, \
                executor.create() as ex:
            for chunk, results in ex.run(_SpanScan(), self._spans(order)):
                (i, span), = chunk
                waiting[i] = (span.keys, results[0])
                advance(len(span.keys))
                while expected in waiting:
                    keys, values = waiting.pop(expected)
                    expected += len(keys)
                    self._messages(values)
                    yield self._frame(keys, values)

    def _messages(self, values: dict) -> None:
        """The first message of each failure status, for the warnings (spans in file order)."""
        for status, message in zip(values["status"], values["message"]):
            if status != "ok":
                self.first_message.setdefault(status, message or "")

    @staticmethod
    def _frame(keys, values: dict) -> pd.DataFrame:
        """A span's values as rows."""
        frame = pd.DataFrame({"key": np.asarray(keys, np.int64)})
        for c in _VALUES:
            frame[c] = pd.array(values[c], dtype="Int64") if c in ("label", "width", "height", "bytes") else pd.Series(values[c], dtype=object)
        return frame

    def _missing(self, positions: np.ndarray) -> pd.DataFrame:
        """The rows of the keys record 0 promises but the index lacks."""
        keys = self.structure.image_keys[positions].tolist()
        name = Path(self.rec).name
        values = {c: [] for c in (*_VALUES, "message")}
        for key in keys:
            for c, v in zip(values, missing_record(name, key)):
                values[c].append(v)
        self._messages(values)
        return self._frame(keys, values)

    def frames(self, progress: bool = False, executor=None) -> Iterator[pd.DataFrame]:
        """The manifest's rows in key order (see the class docstring)."""
        order, lacking = self._order()
        found = self._results(order, progress, executor)
        missing = self._missing(lacking)
        keys = self.structure.image_keys[order]
        rows = _merged(found, missing) if bool(np.all(keys[1:] > keys[:-1])) else _sorted(found, missing)
        for frame in rows:
            yield self._manifest_rows(frame)

    def _manifest_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        from .manifest import make_table

        paths = (self.rec + "#" + frame["key"].astype(str)).to_numpy(object)
        labels = frame["label"].astype("Int64")
        identity = labels.astype(str).where(labels.notna(), None).astype(object)
        table = make_table(pd.DataFrame({"image_id": paths, "path": paths, "identity": identity.to_numpy(object), "variant": "unmasked",
                                         "status": frame["status"].to_numpy(object), "sha256": frame["sha256"].to_numpy(object),
                                         "width": frame["width"].astype("Int64").to_numpy(), "height": frame["height"].astype("Int64").to_numpy(),
                                         "bytes": frame["bytes"].astype("Int64").to_numpy(), "label": labels.to_numpy()}))
        for c in ("width", "height", "bytes", "label"):
            table[c] = table[c].astype("Int64")
        self._count(table)
        table.insert(0, "key", frame["key"].to_numpy(np.int64))
        return table

    def _count(self, table: pd.DataFrame) -> None:
        status = table["status"]
        ok = status == "ok"
        self.n += len(table)
        self.ok += int(ok.sum())
        for k, v in status[~ok].value_counts(sort=False).items():
            self.failures[str(k)] = self.failures.get(str(k), 0) + int(v)
        self.identities.update(table["label"].dropna().astype(int).tolist())
        h, w = self.structure.prop.height, self.structure.prop.width
        self.odd += int(((table["height"][ok] != h) | (table["width"][ok] != w)).sum())

    # --- what the pass found ---------------------------------------------------------------------

    def meta(self) -> dict:
        h, w = self.structure.prop.height, self.structure.prop.width
        return {"name": self.name, "root": str(self.root), "layout": LAYOUT, "layout_options": {} if self.rec == rio.REC_NAME else {"rec": self.rec},
                "kind": "scanned", "verify": self.verify, "aligned": ALIGNED_SIZES.get((h, w)),
                "recordio": {"rec": self.rec, "num_classes": self.structure.prop.num_classes, "image_size": [h, w], "images": int(self.n),
                             "identity_records": len(self.structure.identity_ranges), "verification_bins": verification_bins(self.root),
                             "stamps": self.stamps}}

    def report(self):
        from .scan import ScanReport

        warnings = list(self.structure.warnings)
        warnings += [f"{n} record(s) {status}: e.g. {self.first_message.get(status, '')}" for status, n in sorted(self.failures.items())]
        h, w = self.structure.prop.height, self.structure.prop.width
        if self.odd:
            warnings.append(f"{self.odd} image(s) are not the {h}x{w} of the property file")
        bins = verification_bins(self.root)
        if bins:
            warnings.append(f"verification sets beside it: {', '.join(bins)}; each is a 1:1 protocol, its images read in place: "
                            f"`mfrkit protocol import {self.root / bins[0]} {Path(bins[0]).stem}` (mask its probe side first with "
                            f"`mfrkit synth --src {self.root / bins[0]} --mask surgical`)")
        failures = dict(sorted(self.failures.items(), key=lambda kv: -kv[1]))
        return ScanReport(layout=LAYOUT, n_images=self.n, failures=failures, warnings=warnings, ok=self.ok, identities=len(self.identities))


def _merged(found: Iterator[pd.DataFrame], missing: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """Frames in key order from ``found`` (ascending already) and ``missing`` (ascending)."""
    lacking = missing["key"].to_numpy(np.int64)
    at = 0
    for frame in found:
        upto = int(np.searchsorted(lacking, int(frame["key"].iloc[-1]), side="right"))
        if upto > at:
            frame = pd.concat([frame, missing.iloc[at:upto]], ignore_index=True).sort_values("key", kind="stable").reset_index(drop=True)
            at = upto
        yield frame
    if at < len(missing):
        yield missing.iloc[at:].reset_index(drop=True)


def _sorted(found: Iterator[pd.DataFrame], missing: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """Frames in key order from frames in any order, sorted in bounded memory."""
    from ..external_sort import ExternalSort

    def arrow(frame: pd.DataFrame) -> pa.Table:
        return pa.Table.from_pandas(frame[_ROW_SCHEMA.names], schema=_ROW_SCHEMA, preserve_index=False)

    with ExternalSort(_ROW_SCHEMA, [("key", "ascending")]) as rows:
        for frame in found:
            rows.add(arrow(frame))
        rows.add(arrow(missing))
        for table in rows.sorted():
            frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
            frame["key"] = frame["key"].astype(np.int64)
            yield frame


# --- scanning --------------------------------------------------------------------------------------------


def scan_recordio(root: str | os.PathLike, *, rec: str = rio.REC_NAME, name: str = "", verify: bool = False,
                  progress: bool = False, executor=None):
    """Scan an insightface RecordIO folder into a manifest in memory (see the module
    docstring; :func:`scan_recordio_to_file` streams it into its file). ``executor``
    (an :class:`~mfrkit.jobs.ExecutorSpec`) reads the records; None: in this process.

    Returns
    -------
    (Manifest, ScanReport). One row per image key, in key order: ``image_id`` = ``path`` =
    ``<rec>#<key>``, ``identity`` = the class label as text, ``label`` (int64) the label
    itself; ``meta["recordio"]`` holds the property, counts, the verification ``.bin``
    files found beside it and the files' stamps.
    """
    from .manifest import Manifest, make_table

    scan = RecScan(Path(root).expanduser().resolve(), rec, name, verify)
    frames = [f.drop(columns="key") for f in scan.frames(progress, executor)]
    table = pd.concat(frames, ignore_index=True) if frames else make_table(pd.DataFrame(columns=["image_id", "path", "status"]))
    return Manifest(table=table, meta=scan.meta()), scan.report()


def scan_recordio_to_file(root: str | os.PathLike, path: str | os.PathLike, *, rec: str = rio.REC_NAME, name: str = "",
                          verify: bool = False, progress: bool = False, executor=None):
    """:func:`scan_recordio` written into the manifest file ``path`` a row group at a
    time (atomically); returns the ScanReport."""
    scan = RecScan(Path(root).expanduser().resolve(), rec, name, verify)
    _write(scan, path, None, progress, executor)
    return scan.report()


def _write(scan: RecScan, path, changes: "_Changes | None", progress: bool, executor) -> None:
    from .manifest_stream import ManifestWriter

    with ManifestWriter(path, {}) as writer:
        for frame in scan.frames(progress, executor):
            if changes is not None:
                changes.add(frame)
            writer.write(frame.drop(columns="key"))
        writer.meta = scan.meta()


# --- staying current ------------------------------------------------------------------------------------


class _Changes:
    """:class:`~mfrkit.data.scan.ScanChanges` of a fresh scan against a manifest, both in
    key order: the fresh frames are compared with the manifest's rows as they come."""

    def __init__(self, old) -> None:
        from .scan import ScanChanges

        self.changes = ScanChanges()
        self.fresh = 0
        self._old = _old_rows(old)
        self._at = next(self._old, None)

    def add(self, frame: pd.DataFrame) -> None:
        c = self.changes
        for key, image_id, sha, identity in zip(frame["key"].tolist(), frame["image_id"].tolist(), _plain(frame["sha256"]), _plain(frame["identity"])):
            self.fresh += 1
            while self._at is not None and self._at[0] < key:
                c.removed.append(self._at[1])
                self._at = next(self._old, None)
            if self._at is None or self._at[0] != key:
                c.added.append(image_id)
                continue
            if sha != self._at[2]:
                c.modified.append(image_id)
            if identity != self._at[3]:
                c.relabelled += 1
            self._at = next(self._old, None)

    def finish(self):
        c = self.changes
        while self._at is not None:
            c.removed.append(self._at[1])
            self._at = next(self._old, None)
        c.added.sort()
        c.removed.sort()
        c.modified.sort()
        c.restamped = 0 if c.changed else self.fresh
        return c


def _old_rows(manifest) -> Iterator[tuple[int, str, str | None, str | None]]:
    """(key, image_id, sha256, identity) of a RecordIO scan's rows, in key order (as a scan
    writes them; a manifest put in another order by hand is sorted in memory)."""
    columns = ["image_id", "sha256", "identity"]

    def rows():
        for batch in manifest.batches(columns):
            yield from zip(_keys(batch["image_id"]), batch["image_id"].tolist(), _plain(batch["sha256"]), _plain(batch["identity"]))

    last = -1
    for batch in manifest.batches(["image_id"]):
        keys = np.asarray(_keys(batch["image_id"]), np.int64)
        if len(keys) and (keys[0] <= last or np.any(keys[1:] <= keys[:-1])):
            yield from sorted(rows())
            return
        last = int(keys[-1]) if len(keys) else last
    yield from rows()


def _keys(image_ids: pd.Series) -> list[int]:
    """The record keys of ``<rec>#<key>`` ids (-1 for an id that names no record)."""
    return pd.to_numeric(image_ids.astype(str).str.rsplit("#", n=1).str[-1], errors="coerce").fillna(-1).astype(np.int64).tolist()


def _plain(column: pd.Series) -> list:
    return column.astype(object).where(column.notna(), None).tolist()


def _fresh(manifest) -> RecScan | None:
    """A new pass over the files of a RecordIO scan, or None while their stamps are the scan's."""
    meta = manifest.meta
    rec = (meta.get("layout_options") or {}).get("rec", rio.REC_NAME)
    if (meta.get("recordio") or {}).get("stamps") == file_stamps(manifest.root, rec):
        return None
    return RecScan(manifest.root, rec, manifest.name, bool(meta.get("verify")))


def update_recordio_scan(manifest, *, progress: bool = False, executor=None):
    """:func:`~mfrkit.data.scan.update_scan` for a RecordIO scan: nothing to do while the
    three files keep their stamps; else a new scan, compared image by image by sha256.

    Returns (Manifest, ScanChanges); the manifest is ``manifest`` itself when nothing changed.
    """
    from .manifest import Manifest
    from .scan import ScanChanges

    scan = _fresh(manifest)
    if scan is None:
        return manifest, ScanChanges()
    changes = _Changes(manifest)
    frames = []
    for frame in scan.frames(progress, executor):
        changes.add(frame)
        frames.append(frame.drop(columns="key"))
    table = pd.concat(frames, ignore_index=True) if frames else manifest.table.iloc[:0]
    return Manifest(table=table, meta=scan.meta(), path=manifest.path), changes.finish()


def recordio_changes(manifest, *, workers: int = 1):
    """What :func:`update_recordio_scan` would find, without making the new manifest."""
    from ..jobs import ExecutorSpec
    from .scan import ScanChanges

    scan = _fresh(manifest)
    if scan is None:
        return ScanChanges()
    changes = _Changes(manifest)
    for frame in scan.frames(executor=ExecutorSpec(workers=workers)):
        changes.add(frame)
    return changes.finish()


def update_recordio_scan_file(path: str | os.PathLike, *, progress: bool = False, executor=None):
    """:func:`update_recordio_scan` of the scan at ``path``, streamed: the new manifest is
    written back (atomically) when the files changed. Returns (ManifestReader, ScanChanges)."""
    from .manifest_stream import ManifestReader
    from .scan import ScanChanges

    reader = ManifestReader(path)
    scan = _fresh(reader)
    if scan is None:
        return reader, ScanChanges()
    changes = _Changes(reader)
    with reader:
        _write(scan, reader.path, changes, progress, executor)
    return ManifestReader(reader.path), changes.finish()
