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
again and compared image by image. The manifest itself is made a row group at a time by
:mod:`mfrkit.data.recordio_manifest` (:func:`~mfrkit.data.recordio_manifest.scan_recordio`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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


def missing_record(name: str, key: int) -> tuple:
    """:func:`scan_span`'s values of an image key record 0 promises but the index lacks."""
    return None, None, None, None, None, "missing", f"{name} record {key}: record 0 promises it but the index lacks it"


def _scan_record(rf, block, base, name, key, off, end, span) -> tuple:
    where = f"{name} record {key}"
    if off < 0:
        return missing_record(name, key)
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


def file_stamps(root: Path, rec: str = rio.REC_NAME) -> dict:
    """``{file: [size, mtime_ns, ctime_ns]}`` of the ``.rec``, its ``.idx`` and ``property``."""
    from .scan import file_stamp

    rec_path = Path(root) / rec
    return {p.name: list(file_stamp(p) or ()) for p in (rec_path, rec_path.with_suffix(".idx"), rec_path.parent / rio.PROPERTY_NAME)}


def verification_bins(root: Path) -> list[str]:
    """The insightface verification ``.bin`` files (lfw.bin, cfp_fp.bin, agedb_30.bin, ...) in ``root``."""
    return sorted(p.name for p in Path(root).glob("*.bin") if p.is_file())
