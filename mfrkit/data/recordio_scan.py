"""The ``insightface-rec`` dataset layout: a folder holding ``train.rec`` + ``train.idx``
(+ ``property``), scanned into a manifest whose images are records (``train.rec#17``),
never extracted to files.

What a scan reads and why (a multi-million-record file must be fast):

* the index and ``property`` whole (text; bounded), record 0 (insightface's identity
  range: image keys ``1 .. label[0] - 1`` as ``MXFaceDataset`` takes them; without it every
  key of the index is an image) and the identity records (their ranges are checked
  against the image keys);
* every image record once, in file order, a run of records per worker read in ONE
  ``pread``: its framing and header (the class label -> ``identity``), the SHA-256 of
  its image bytes (what landmarks, embeddings and the fingerprint key on) and the
  image's size from its JPEG/PNG header. Pixels are decoded only with ``verify``
  (``mfrkit datasets scan --verify``): a full decode costs ~10x the rest.

Nothing is lost on bad input: a record that cannot be read (wrong magic, truncated,
pointing inside another record: an index that does not match the ``.rec``) gets status
``bad_record``, a key record 0 promises but the index lacks ``missing``, a label that is
not an identity (not a whole number, negative, ``>= num_classes``) ``no_identity``; the
other images are kept, the reasons counted in the report. Whole-file problems (no
index, a malformed index line, no ``property``, a record 0 that contradicts the index)
are one-line :class:`~mfrkit.errors.RecordIOError`\\ s.

A scan stays current by the stamps (size, mtime, ctime) of the three files, kept in the
manifest's metadata: unchanged files need no work at all; a changed file is scanned
again and compared image by image (:func:`update_recordio_scan`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ImageError, RecordIOError
from . import recordio as rio
from .imageio import MAX_PIXELS, decode_image, image_size

LAYOUT = "insightface-rec"
#: Records a worker reads per chunk (about 25 MB of 112x112 JPEGs), and the largest span
#: read in one ``pread`` (longer spans are read record by record).
SPAN_RECORDS, MAX_SPAN_BYTES = 4096, 64 << 20
#: Crop sizes (height, width) of insightface's aligned sets: synth uses the template.
ALIGNED_SIZES = {(112, 112): "arcface112", (112, 96): "arcface112x96"}


@dataclass
class RecStructure:
    """What the index, ``property`` and record 0 say about a RecordIO dataset.

    Attributes
    ----------
    rec : Path
    prop : RecordProperty
    image_keys : ndarray of int64
        The keys that are images, ascending.
    offsets, ends : ndarray of int64
        Per image key: the record's offset, and the next record's offset (or the file's
        end): the bytes a worker reads for it. -1 where the index lacks the key.
    identity_ranges : list of (int, int)
        ``[first, end)`` image keys of each identity record (empty without record 0).
    warnings : list of str
    """

    rec: Path
    prop: rio.RecordProperty
    image_keys: np.ndarray
    offsets: np.ndarray
    ends: np.ndarray
    identity_ranges: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def read_structure(root: Path, rec: str = rio.REC_NAME) -> RecStructure:
    """The image keys and their byte spans (see :class:`RecStructure`)."""
    rec_path = Path(root) / rec
    prop = rio.read_property(rec_path.parent)
    rf = rio.RecordFile(rec_path)
    keys, offsets = rf.keys, rf.offsets
    warnings: list[str] = []
    ranges: list[tuple[int, int]] = []
    if 0 in rf:
        header = _header0(rf)
    else:
        header = None
        warnings.append(f"{rec} has no record 0 (insightface's identity range): every key of its index is taken as an image")
    if header is not None and header.flag > 0:
        first, end = _identity_range(header, rec, warnings)
        image_keys = np.arange(1, first, dtype=np.int64)
        ranges = _identity_records(rf, first, end, warnings)
        extra = int(((keys >= end) | (keys < 0)).sum())
        if extra:
            warnings.append(f"{extra} key(s) of {rec_path.name}'s index lie outside record 0's ranges and are not read")
    else:
        image_keys = np.sort(keys)
    # Each record's span ends where the next record (by offset) starts, or at the file's end.
    order = np.sort(offsets)
    nxt = np.append(order, rf.size)
    spans = _offsets_of(rf, image_keys)
    ends = np.where(spans >= 0, nxt[np.minimum(np.searchsorted(order, spans, side="right"), len(order))], -1)
    beyond = int(((spans >= rf.size)).sum())
    if beyond:
        warnings.append(f"{beyond} record(s) of the index point past the end of {rec_path.name} ({rf.size} bytes): "
                        "the .rec is truncated or the index belongs to another file (status bad_record)")
    rf.close()
    return RecStructure(rec_path, prop, image_keys, spans, ends, ranges, warnings)


def _offsets_of(rf: rio.RecordFile, keys: np.ndarray) -> np.ndarray:
    lookup = rf._lookup
    if lookup.dense is not None:
        inside = keys < len(lookup.dense)
        out = np.full(len(keys), -1, np.int64)
        out[inside] = lookup.dense[keys[inside]]
        return out
    i = np.minimum(np.searchsorted(lookup.keys, keys), len(lookup.keys) - 1)
    return np.where(lookup.keys[i] == keys, lookup.offsets[i], -1)


def _header0(rf: rio.RecordFile) -> rio.IRHeader:
    try:
        return rf.read(0)[0]
    except ImageError as exc:
        raise RecordIOError(f"{rf.path}: record 0 (the identity range) cannot be read: {exc}") from None


def _identity_range(header: rio.IRHeader, rec: str, warnings: list[str]) -> tuple[int, int]:
    """``(first, end)`` of record 0: images are keys ``1 .. first - 1`` (all
    ``MXFaceDataset`` reads), identity records ``first .. end - 1``. An ``end`` below
    ``first`` (some writers put the identity count there) only costs the identity
    records, with a warning."""
    labels = header.label if isinstance(header.label, tuple) else (header.label,)
    if not labels or not float(labels[0]).is_integer() or labels[0] < 1:
        raise RecordIOError(f"{rec}: record 0 should hold insightface's range [first identity key, end key] "
                            f"(first >= 1: the image keys are 1 .. first - 1), got {list(labels)}")
    first = int(labels[0])
    end = int(labels[1]) if len(labels) > 1 and float(labels[1]).is_integer() else first
    if end < first:
        warnings.append(f"{rec}: record 0's end key {end} is below its first identity key {first}; "
                        "its identity records are not read (the images are)")
        end = first
    return first, end


def _identity_records(rf: rio.RecordFile, first: int, end: int, warnings: list[str]) -> list[tuple[int, int]]:
    """The ``[first, end)`` image keys of each identity record, checked to be ranges of images."""
    ranges, bad = [], 0
    for key in range(first, end):
        try:
            labels = rf.read(key)[0].label
        except ImageError:
            bad += 1
            continue
        if not isinstance(labels, tuple) or len(labels) < 2 or not 1 <= labels[0] <= labels[1] <= first:
            bad += 1
            continue
        ranges.append((int(labels[0]), int(labels[1])))
    if bad:
        warnings.append(f"{bad} of {end - first} identity record(s) of {rf.path.name} are unreadable or hold no valid "
                        f"image range (insightface's readers that use them will fail; MXFaceDataset does not read them)")
    return ranges


# --- the per-worker part: one run of records ---------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """Image keys a worker reads, ascending by offset, with their byte spans."""

    rec: str
    keys: tuple[int, ...]
    offsets: tuple[int, ...]
    ends: tuple[int, ...]
    num_classes: int
    verify: bool


def scan_span(span: Span) -> dict:
    """Label, SHA-256, size and status of each record of ``span`` (pure: reads only).

    Returns a dict of equal-length lists: ``label`` (int or None), ``sha256``, ``width``,
    ``height``, ``bytes``, ``status``, ``message``.
    """
    out: dict[str, list] = {k: [] for k in ("label", "sha256", "width", "height", "bytes", "status", "message")}
    rf = rio.open_records(span.rec)
    valid = [o for o in span.offsets if 0 <= o < rf.size]
    base = min(valid) if valid else 0
    top = max((e for o, e in zip(span.offsets, span.ends) if 0 <= o < rf.size), default=0)
    block = rf.read_span(base, top) if valid and top - base <= MAX_SPAN_BYTES else None
    name = Path(span.rec).name
    for key, off, end in zip(span.keys, span.offsets, span.ends):
        row = _scan_record(rf, block, base, name, key, off, end, span)
        for k, v in zip(out, row):
            out[k].append(v)
    return out


def _scan_record(rf, block, base, name, key, off, end, span) -> tuple:
    where = f"{name} record {key}"
    if off < 0:
        return None, None, None, None, None, "missing", f"{where}: record 0 promises it but the index lacks it"
    try:
        if block is not None and off < rf.size:
            payload = rio._parse(lambda p, n: block[p - base : p - base + n], off, base + len(block), where)[0]
        else:
            payload = rf.payload(key)
        header, image = rio.unpack(payload, where)
    except ImageError as exc:
        return None, None, None, None, None, exc.reason, str(exc)
    label = rio.identity_of(header, span.num_classes)
    info = [label, hashlib.sha256(image).hexdigest(), None, None, len(image), "ok", None]
    try:
        if span.verify:
            h, w = decode_image(image, max_pixels=MAX_PIXELS).shape[:2]
        else:
            w, h = image_size(image)
        info[2], info[3] = int(w), int(h)
    except ImageError as exc:
        info[5], info[6] = exc.reason, f"{where}: {exc}"
    if label is None and info[5] == "ok":
        info[5] = "no_identity"
        info[6] = f"{where}: label {header.class_label!r} is not an identity (a whole number in [0, {span.num_classes}))"
    return tuple(info)


def plan_spans(structure: RecStructure, verify: bool, size: int = SPAN_RECORDS) -> list[Span]:
    """Runs of ``size`` image records in file order (missing keys go with their neighbours)."""
    order = np.argsort(np.where(structure.offsets >= 0, structure.offsets, np.iinfo(np.int64).max), kind="stable")
    keys, offs, ends = structure.image_keys[order], structure.offsets[order], structure.ends[order]
    return [Span(str(structure.rec), tuple(keys[i : i + size].tolist()), tuple(offs[i : i + size].tolist()),
                 tuple(ends[i : i + size].tolist()), structure.prop.num_classes, verify) for i in range(0, len(keys), size)]


# --- the driver: plan, run on the executor, assemble the manifest ---------------------------------------


class _SpanScan:
    """The job-engine view of a scan: each chunk is ``[(position, Span)]``."""

    kind = "recordio-scan"

    def open_worker(self):
        return None

    def ray_resources(self) -> dict:
        return {"num_cpus": 1}

    def run_chunk(self, chunk, state) -> list[dict]:
        return [scan_span(span) for _, span in chunk]


def _run_spans(spans: list[Span], executor, workers: int, progress: bool, description: str) -> list[dict]:
    """:func:`scan_span` of every span on the job engine's executor, results in order;
    the bar counts records."""
    from ..jobs import ExecutorSpec
    from ..progress import progress_bar

    out: list = [None] * len(spans)
    total = sum(len(s.keys) for s in spans)
    executor = executor or ExecutorSpec(workers=max(1, workers))
    with progress_bar(total, description, enabled=progress and total > 0) as advance, executor.create() as ex:
        for chunk, results in ex.run(_SpanScan(), [[(i, s)] for i, s in enumerate(spans)]):
            (i, span), = chunk
            out[i] = results[0]
            advance(len(span.keys))
    return out


def file_stamps(root: Path, rec: str = rio.REC_NAME) -> dict:
    """``{file: [size, mtime_ns, ctime_ns]}`` of the ``.rec``, its ``.idx`` and ``property``."""
    from .scan import file_stamp

    rec_path = Path(root) / rec
    return {p.name: list(file_stamp(p) or ()) for p in (rec_path, rec_path.with_suffix(".idx"), rec_path.parent / rio.PROPERTY_NAME)}


def scan_recordio(root: str | os.PathLike, *, rec: str = rio.REC_NAME, name: str = "", workers: int = 1, verify: bool = False,
                  progress: bool = False, executor=None):
    """Scan an insightface RecordIO folder into a manifest (see the module docstring).

    Returns
    -------
    (Manifest, ScanReport). One row per image key, in key order: ``image_id`` = ``path`` =
    ``<rec>#<key>``, ``identity`` = the class label as text, ``label`` (int64) the label
    itself; ``meta["recordio"]`` holds the property, counts, the verification ``.bin``
    files found beside it and the files' stamps.
    """
    from .manifest import Manifest, make_table
    from .scan import ScanReport

    root = Path(root).expanduser().resolve()
    stamps = file_stamps(root, rec)
    structure = read_structure(root, rec)
    spans = plan_spans(structure, verify)
    parts = _run_spans(spans, executor, workers, progress, f"scanning {name or root.name} ({rec})")
    table = _assemble(structure, spans, parts, rec)
    warnings = list(structure.warnings) + _record_warnings(table, parts, structure)
    bins = verification_bins(root)
    h, w = structure.prop.height, structure.prop.width
    meta = {"name": name or root.name, "root": str(root), "layout": LAYOUT, "layout_options": {} if rec == rio.REC_NAME else {"rec": rec},
            "kind": "scanned", "verify": bool(verify), "aligned": ALIGNED_SIZES.get((h, w)),
            "recordio": {"rec": rec, "num_classes": structure.prop.num_classes, "image_size": [h, w], "images": int(len(table)),
                         "identity_records": len(structure.identity_ranges), "verification_bins": bins, "stamps": stamps}}
    manifest = Manifest(table=make_table(table), meta=meta)
    failures = table.loc[table["status"] != "ok", "status"].value_counts().to_dict()
    if bins:
        warnings.append(f"verification sets beside it: {', '.join(bins)}; each is a 1:1 protocol, its images read in place: "
                        f"`mfrkit protocol import {root / bins[0]} {Path(bins[0]).stem}` (mask its probe side first with "
                        f"`mfrkit synth --src {root / bins[0]} --mask surgical`)")
    report = ScanReport(layout=LAYOUT, n_images=len(table), failures={str(k): int(v) for k, v in failures.items()}, warnings=warnings)
    return manifest, report


def _assemble(structure: RecStructure, spans: list[Span], parts: list[dict], rec: str) -> pd.DataFrame:
    """The manifest rows in key order from the spans' results (which are in file order)."""
    keys = np.concatenate([np.asarray(s.keys, np.int64) for s in spans]) if spans else np.zeros(0, np.int64)
    cols = {c: [v for p in parts for v in p[c]] for c in ("label", "sha256", "width", "height", "bytes", "status")}
    order = np.argsort(keys, kind="stable")
    paths = [rio.record_ref(rec, k) for k in keys[order].tolist()]
    labels = pd.array([cols["label"][i] for i in order], dtype="Int64")
    names = {}  # one str object per identity, shared by its rows
    identity = [None if pd.isna(v) else names.setdefault(int(v), str(int(v))) for v in labels]
    frame = pd.DataFrame({"image_id": paths, "path": paths, "identity": identity, "variant": "unmasked", "status": [cols["status"][i] for i in order],
                          "sha256": [cols["sha256"][i] for i in order]})
    for c in ("width", "height", "bytes"):
        frame[c] = pd.array([cols[c][i] for i in order], dtype="Int64")
    frame["label"] = labels
    return frame


def _record_warnings(table: pd.DataFrame, parts: list[dict], structure: RecStructure) -> list[str]:
    """One line per kind of bad record (its count and the first one's message), and
    images whose size is not the property's."""
    first: dict[str, str] = {}
    counts: dict[str, int] = {}
    for part in parts:
        for status, message in zip(part["status"], part["message"]):
            if status != "ok":
                counts[status] = counts.get(status, 0) + 1
                first.setdefault(status, message or "")
    out = [f"{n} record(s) {status}: e.g. {first[status]}" for status, n in sorted(counts.items())]
    ok = table[table["status"] == "ok"]
    h, w = structure.prop.height, structure.prop.width
    odd = int(((ok["height"] != h) | (ok["width"] != w)).sum()) if len(ok) else 0
    if odd:
        out.append(f"{odd} image(s) are not the {h}x{w} of the property file")
    return out


def verification_bins(root: Path) -> list[str]:
    """The insightface verification ``.bin`` files (lfw.bin, cfp_fp.bin, agedb_30.bin, ...) in ``root``."""
    return sorted(p.name for p in Path(root).glob("*.bin") if p.is_file())


def update_recordio_scan(manifest, *, workers: int = 1, progress: bool = False, executor=None):
    """:func:`~mfrkit.data.scan.update_scan` for a RecordIO scan: nothing to do while the
    three files keep their stamps; else a new scan, compared image by image by sha256.

    Returns (Manifest, ScanChanges).
    """
    from .scan import ScanChanges

    meta = manifest.meta
    info = meta.get("recordio") or {}
    root = manifest.root
    rec = (meta.get("layout_options") or {}).get("rec", rio.REC_NAME)
    if info.get("stamps") == file_stamps(root, rec):
        return manifest, ScanChanges()
    fresh, _ = scan_recordio(root, rec=rec, name=manifest.name, workers=workers, verify=bool(meta.get("verify")), progress=progress,
                             executor=executor)
    old = dict(zip(manifest.table["image_id"], manifest.table["sha256"]))
    new = dict(zip(fresh.table["image_id"], fresh.table["sha256"]))
    old_ids = dict(zip(manifest.table["image_id"], manifest.table["identity"]))
    changes = ScanChanges(added=sorted(set(new) - set(old)), removed=sorted(set(old) - set(new)),
                          modified=sorted(k for k in set(new) & set(old) if new[k] != old[k]))
    changes.relabelled = sum(1 for k, v in zip(fresh.table["image_id"], fresh.table["identity"]) if k in old_ids and not _same(old_ids[k], v))
    changes.restamped = 0 if changes.changed else len(new)
    fresh.path = manifest.path
    return fresh, changes


def _same(a, b) -> bool:
    return (pd.isna(a) and pd.isna(b)) or a == b
