"""MXNet / insightface RecordIO, read and written without mxnet.

The training sets of the field (CASIA-WebFace, MS1MV2/V3, Glint360K as insightface
ships them: ``faces_webface_112x112/``, ``faces_emore/``) are three files::

    train.rec   the records, one after the other
    train.idx   text, one line per record: "<key>\\t<byte offset of the record>\\n"
    property    text, one line: "<num_classes>,<height>,<width>"

**Framing** (dmlc-core ``recordio``). A record on disk is a little-endian ``uint32``
magic ``0xced7230a``, a ``uint32`` *lrec* = ``cflag << 29 | length``, ``length`` data
bytes, then zero bytes up to a multiple of 4. Where the data holds the magic word at a
4-byte aligned position the writer splits it there: the parts carry ``cflag`` 1 (first),
2 (middle) and 3 (last), the magic word itself is left out and the reader puts it back
between the parts; ``cflag`` 0 is a record in one part. A record is at most 2^29 bytes.

**Payload** (``mxnet.recordio.pack``). An image record's data starts with the 24-byte
``IRHeader`` (``<IfQQ``: ``flag`` uint32, ``label`` float32, ``id`` uint64, ``id2``
uint64). With ``flag > 0``, ``flag`` float32 labels follow (and ``label`` is 0); the
encoded image (JPEG) is the rest.

**insightface's layout** (``face2rec2.py`` writes it, arcface_torch's ``MXFaceDataset``
reads it). Images are keys ``1 .. N`` grouped by identity, their class label in the
header (``label``, or the first of the labels when ``flag > 0``). Record 0, written after
them, has ``flag = 2`` and labels ``[N + 1, N + 1 + C]``: the keys of the ``C`` identity
records that follow, each with ``flag = 2``, labels ``[first, end)`` (the image keys of
one identity) and no image. A reader whose record 0 has ``flag = 0`` takes every key of
the index as an image (im2rec's plain layout).

Reading goes through ``.idx`` offsets with ``os.pread`` (no shared file position, so a
reader survives ``fork`` and serves threads); open files are kept per process by
:func:`open_records`, checked against the files' stat on every use. Files are bounded:
only regular files are opened (a FIFO named ``train.rec`` cannot hang a reader), the
index and ``property`` are read with a size cap, and no record is read past the end of
its file.
"""

from __future__ import annotations

import math
import os
import re
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import BadRecordError, MissingImageError, RecordIOError
from ..userfiles import open_user_file, read_user_bytes, user_file_errors_as

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LREC = struct.Struct("<II")
_IR = struct.Struct("<IfQQ")
IR_SIZE = _IR.size  # 24
#: The largest record dmlc-core writes (its length field has 29 bits).
MAX_RECORD = (1 << 29) - 1
# The index and property files are capped by their kinds in mfrkit.userfiles
# (recordio-index 4 GiB: WebFace42M's ~0.9 GB; recordio-property 4 KiB).
REC_NAME, IDX_NAME, PROPERTY_NAME = "train.rec", "train.idx", "property"

#: A manifest path naming a record: ``<file>.rec#<key>`` (``train.rec#17``).
RECORD_REF = re.compile(r"^(?P<file>.+\.rec)#(?P<key>\d+)$")


def record_ref(rec_rel: str, key: int) -> str:
    """The manifest path of record ``key`` of ``rec_rel`` (``train.rec#17``)."""
    return f"{rec_rel}#{int(key)}"


def parse_record_ref(path: str | os.PathLike) -> tuple[str, int] | None:
    """``(rec file, key)`` of a record path, or None for a plain file path."""
    m = RECORD_REF.match(os.fspath(path))
    return (m.group("file"), int(m.group("key"))) if m else None


# --- framing -------------------------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    """The bytes of one record on disk, split where ``payload`` holds the magic word.

    Parameters
    ----------
    payload : bytes
        At most :data:`MAX_RECORD` bytes.
    """
    n = len(payload)
    if n > MAX_RECORD:
        raise RecordIOError(f"a record holds at most {MAX_RECORD} bytes, this one {n}")
    words = np.frombuffer(payload, dtype="<u4", count=n // 4)
    hits = (np.flatnonzero(words == MAGIC) * 4).tolist()
    out, start = [], 0
    for i in hits:  # the (rare) aligned magic words: a part ends before each
        out += [_LREC.pack(MAGIC, (1 if start == 0 else 2) << 29 | (i - start)), payload[start:i]]
        start = i + 4
    out += [_LREC.pack(MAGIC, (3 if hits else 0) << 29 | (n - start)), payload[start:], b"\0" * (-(n - start) % 4)]
    return b"".join(out)


def _parse(get: Callable[[int, int], bytes], offset: int, end: int, where: str) -> tuple[bytes, int]:
    """The payload of the record at ``offset`` and the offset after it; ``get(pos, n)``
    returns up to ``n`` bytes at ``pos``, ``end`` is where the data ends."""
    parts, pos, first = [], offset, True
    while True:
        if pos + 8 > end:
            raise BadRecordError(f"{where}: truncated: the file ends at byte {end}, inside the record header at {pos}")
        magic, lrec = _LREC.unpack(get(pos, 8))
        if magic != MAGIC:
            raise BadRecordError(f"{where}: wrong magic number 0x{magic:08x} at byte {pos} (expected 0x{MAGIC:08x}): "
                                 "not a record, or the index does not match this .rec")
        cflag, length = lrec >> 29, lrec & MAX_RECORD
        if cflag > 3 or (first and cflag in (2, 3)) or (not first and cflag in (0, 1)):
            what = "starts inside a split record" if first else "is cut short"
            raise BadRecordError(f"{where}: the record at byte {offset} {what} (part flag {cflag} at byte {pos})")
        if pos + 8 + length > end:
            raise BadRecordError(f"{where}: truncated: a {length}-byte record at byte {pos} runs past the end of the file ({end})")
        parts.append(get(pos + 8, length))
        pos += 8 + length + (-length % 4)
        if sum(len(p) for p in parts) + 4 * (len(parts) - 1) > MAX_RECORD:
            raise BadRecordError(f"{where}: the record at byte {offset} is over {MAX_RECORD} bytes")
        if cflag in (0, 3):
            return (parts[0] if len(parts) == 1 else _MAGIC_BYTES.join(parts)), pos
        first = False


def iter_payloads(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(offset, payload)`` of every record of a whole ``.rec`` held in memory, in order."""
    view, pos = memoryview(data), 0
    while pos < len(data):
        payload, nxt = _parse(lambda p, n: bytes(view[p : p + n]), pos, len(data), "record data")
        yield pos, payload
        pos = nxt


# --- the image header ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IRHeader:
    """The header of an image record (mxnet's ``IRHeader``).

    Attributes
    ----------
    flag : int
        Number of float32 labels after the header; 0 when ``label`` holds the one label.
    label : float or tuple of float
        The label, or the ``flag`` labels.
    id, id2 : int
        The record's id (its key, by insightface's writers) and the id's high bits.
    """

    flag: int
    label: float | tuple[float, ...]
    id: int = 0
    id2: int = 0

    @property
    def class_label(self) -> float:
        """The class: ``label``, or the first label (as ``MXFaceDataset`` takes it)."""
        if isinstance(self.label, tuple):
            return self.label[0] if self.label else math.nan
        return self.label


def pack(label: float | Iterable[float], image: bytes = b"", *, id: int = 0, id2: int = 0) -> bytes:
    """A record payload: the header (one label, or ``flag`` labels) then ``image``."""
    if isinstance(label, (int, float, np.integer, np.floating)):
        return _IR.pack(0, float(label), int(id), int(id2)) + image
    labels = np.asarray(list(label), dtype="<f4")
    return _IR.pack(labels.size, 0.0, int(id), int(id2)) + labels.tobytes() + image


def unpack(payload: bytes, where: str = "record") -> tuple[IRHeader, bytes]:
    """``(header, image bytes)`` of a record payload (mxnet's ``recordio.unpack``)."""
    if len(payload) < IR_SIZE:
        raise BadRecordError(f"{where}: {len(payload)} bytes, too short for the {IR_SIZE}-byte image header")
    flag, label, rid, rid2 = _IR.unpack_from(payload)
    if flag == 0:
        return IRHeader(0, float(label), rid, rid2), payload[IR_SIZE:]
    start = IR_SIZE + 4 * flag
    if start > len(payload):
        raise BadRecordError(f"{where}: the header announces {flag} labels, more than its {len(payload)} bytes hold")
    labels = tuple(float(v) for v in np.frombuffer(payload, dtype="<f4", count=flag, offset=IR_SIZE))
    return IRHeader(flag, labels, rid, rid2), payload[start:]


def identity_of(header: IRHeader, num_classes: int | None = None) -> int | None:
    """The integer class of an image header, or None when its label is not an identity
    (not finite, not a whole number, negative, or ``>= num_classes``)."""
    value = header.class_label
    if not math.isfinite(value) or value != int(value) or value < 0 or value >= 2**31:
        return None
    if num_classes is not None and value >= num_classes:
        return None
    return int(value)


# --- bounded files --------------------------------------------------------------------------------


def _open_regular(path: Path, kind: str) -> tuple[int, os.stat_result]:
    """A read-only descriptor of a regular file and its stat (a FIFO, device or folder
    named like the file is refused without blocking): :func:`mfrkit.userfiles.open_user_file`
    with its errors as :class:`RecordIOError`."""
    with user_file_errors_as(RecordIOError):
        return open_user_file(path, kind)


def _read_small(path: Path, kind: str) -> bytes:
    """The bytes of the index or ``property``: regular files within their kind's cap
    (``MFRKIT_MAX_RECORDIO_INDEX_BYTES``, ``..._PROPERTY_BYTES``)."""
    with user_file_errors_as(RecordIOError):
        return read_user_bytes(path, kind)


# --- the index and property ----------------------------------------------------------------------


def read_index(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(keys, offsets)`` of a ``.idx`` file, int64 arrays in file order.

    Raises
    ------
    RecordIOError
        Missing or unreadable file, a line that is not ``<key>\\t<offset>`` with
        non-negative integers, or a key listed twice.
    """
    path = Path(path)
    data = _read_small(path, "recordio-index")
    if not data.strip():
        raise RecordIOError(f"RecordIO index {path} is empty")
    data = data if data.endswith(b"\n") else data + b"\n"
    raw = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(raw == 10)
    # Every line holds digits and spaces around exactly one tab (mxnet writes "%s\t%d\n").
    odd = re.search(rb"[^0-9\t\n\r ]", data)
    tabs_per_line = np.bincount(np.searchsorted(newlines, np.flatnonzero(raw == 9)), minlength=len(newlines))
    if odd is not None or (tabs_per_line != 1).any():
        lineno = data.count(b"\n", 0, odd.start()) + 1 if odd is not None else int(np.flatnonzero(tabs_per_line != 1)[0]) + 1
        line = data.splitlines()[lineno - 1][:60]
        raise RecordIOError(f"RecordIO index {path}, line {lineno}: expected '<key>\\t<offset>' (non-negative integers), got {line!r}")
    values = np.fromstring(data, dtype=np.int64, sep=" ")  # whitespace-separated integers, checked above
    if values.size != 2 * len(newlines):
        raise RecordIOError(f"RecordIO index {path}: every line must be '<key>\\t<offset>'; {values.size} numbers on {len(newlines)} lines")
    keys, offsets = values[0::2], values[1::2]
    uniq, counts = np.unique(keys, return_counts=True)
    if len(uniq) != len(keys):
        raise RecordIOError(f"RecordIO index {path}: key {int(uniq[counts > 1][0])} is listed {int(counts.max())} times")
    return keys, offsets


@dataclass(frozen=True)
class RecordProperty:
    """insightface's ``property`` file: ``num_classes,height,width``."""

    num_classes: int
    height: int
    width: int

    def text(self) -> str:
        return f"{self.num_classes},{self.height},{self.width}\n"


def read_property(path: str | os.PathLike) -> RecordProperty:
    """The ``property`` file (a folder means the ``property`` inside it)."""
    path = Path(path)
    if path.is_dir():
        path = path / PROPERTY_NAME
    if not path.exists():
        raise RecordIOError(f"the RecordIO dataset in {path.parent} has no property file (insightface's one line "
                            f"'num_classes,height,width', e.g. '10572,112,112'); write it beside train.rec")
    text = _read_small(path, "recordio-property").decode("utf-8", "replace").strip()
    fields = [f.strip() for f in text.split(",")]
    if len(fields) != 3 or not all(f.isdigit() for f in fields) or min(int(f) for f in fields) < 1:
        raise RecordIOError(f"property file {path}: expected 'num_classes,height,width' (positive integers), got {text[:60]!r}")
    return RecordProperty(*(int(f) for f in fields))


# --- reading ---------------------------------------------------------------------------------------------


class RecordFile:
    """Random access to the records of a ``.rec`` through its ``.idx``.

    Parameters
    ----------
    rec_path : path
        The ``.rec`` file.
    idx_path : path, optional
        Its index; default the ``.idx`` of the same name.

    A RecordFile pickles as its paths (each process opens the files again).
    """

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None) -> None:
        self.path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else self.path.with_suffix(".idx")
        self.idx_stamp = _stamp(self.idx_path)
        self.keys, self.offsets = read_index(self.idx_path)
        self._fd, st = _open_regular(self.path, "recordio")
        self.size = st.st_size
        self.stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        self._lookup = _KeyLookup(self.keys, self.offsets)

    def __getstate__(self) -> dict:
        return {"path": self.path, "idx_path": self.idx_path}

    def is_current(self) -> bool:
        """Whether the files on disk are still the ones opened (same inode, size, mtime)."""
        return self._fd is not None and _stamp(self.path) == self.stamp and _stamp(self.idx_path) == self.idx_stamp

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["idx_path"])

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, AttributeError):
            pass

    def __contains__(self, key: int) -> bool:
        return self._lookup.offset(key) is not None

    def __len__(self) -> int:
        return len(self.keys)

    def offset(self, key: int) -> int:
        """The byte offset of record ``key``; MissingImageError when the index lacks it."""
        off = self._lookup.offset(key)
        if off is None:
            raise MissingImageError(f"{self.path.name}: no record {key} in its index {self.idx_path.name}")
        return off

    def payload(self, key: int) -> bytes:
        """The data of record ``key`` (header and image), as mxnet's ``read_idx`` gives it."""
        where = f"{self.path.name} record {key}"
        try:
            return _parse(lambda pos, n: os.pread(self._fd, n, pos), self.offset(key), self.size, where)[0]
        except OSError as exc:
            raise BadRecordError(f"{where}: cannot be read: {exc.strerror or exc}") from None

    def read(self, key: int) -> tuple[IRHeader, bytes]:
        """``(header, encoded image)`` of record ``key``."""
        return unpack(self.payload(key), f"{self.path.name} record {key}")

    def read_span(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the file in one read (a scan reads a run of records so)."""
        return os.pread(self._fd, max(0, min(end, self.size) - start), start)


class _KeyLookup:
    """key -> offset: a dense table when the keys are ``0..n`` with few gaps (insightface),
    else a sorted search."""

    def __init__(self, keys: np.ndarray, offsets: np.ndarray) -> None:
        top = int(keys.max()) if len(keys) else -1
        self.dense = None
        if len(keys) and int(keys.min()) >= 0 and top < 2 * len(keys) + 1024:
            self.dense = np.full(top + 1, -1, np.int64)
            self.dense[keys] = offsets
        else:
            order = np.argsort(keys, kind="stable")
            self.keys, self.offsets = keys[order], offsets[order]

    def offset(self, key: int) -> int | None:
        if self.dense is not None:
            if 0 <= key < len(self.dense) and self.dense[key] >= 0:
                return int(self.dense[key])
            return None
        i = int(np.searchsorted(self.keys, key))
        return int(self.offsets[i]) if i < len(self.keys) and self.keys[i] == key else None


class _OpenRecords:
    """The record files this process has open, newest last; a file whose stat changed
    (replaced, rewritten) is opened again. Thread-safe; at most ``limit`` kept."""

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._files: OrderedDict[str, RecordFile] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, rec_path: str | os.PathLike) -> RecordFile:
        key = os.fspath(rec_path)
        with self._lock:
            rf = self._files.get(key)
            if rf is not None and rf.is_current():
                self._files.move_to_end(key)
                return rf
            if rf is not None:
                self._files.pop(key).close()
        rf = RecordFile(key)
        with self._lock:
            self._files[key] = rf
            while len(self._files) > self.limit:
                self._files.popitem(last=False)[1].close()
        return rf

    def clear(self) -> None:
        with self._lock:
            for rf in self._files.values():
                rf.close()
            self._files.clear()


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


#: This process's open record files (see :func:`open_records`).
_OPEN = _OpenRecords()


def open_records(rec_path: str | os.PathLike) -> RecordFile:
    """The :class:`RecordFile` of ``rec_path``, kept open for this process's later reads.

    Raises RecordIOError when the file or its index cannot be used.
    """
    return _OPEN.get(rec_path)


def read_record_image(rec_path: str | os.PathLike, key: int) -> bytes:
    """The encoded image of record ``key`` of ``rec_path`` (through the open-file cache).

    Raises
    ------
    MissingImageError
        No such ``.rec`` file, or no such key in its index.
    BadRecordError
        The record cannot be read (wrong magic, truncated, ...), or the file as a whole
        cannot be used (its index is malformed): the image's status, not a stopped job.
    """
    if not os.path.exists(rec_path):
        raise MissingImageError(f"no such RecordIO file: {rec_path}")
    try:
        rf = open_records(rec_path)
    except RecordIOError as exc:
        raise BadRecordError(str(exc)) from None
    return rf.read(key)[1]


# --- writing ---------------------------------------------------------------------------------------------


class RecordWriter:
    """Appends records to a ``.rec`` and their lines to its ``.idx`` (mxnet's
    ``MXIndexedRecordIO(..., 'w')``). The files are written where given: callers that
    need atomic outputs write to temporary names and rename (:class:`InsightfaceWriter`).
    """

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike) -> None:
        self._rec = open(rec_path, "wb")
        self._idx = open(idx_path, "w", encoding="ascii", newline="\n")
        self.pos = 0

    def write(self, key: int, payload: bytes) -> int:
        """Write one record; returns its offset."""
        data = frame(payload)
        offset = self.pos
        self._rec.write(data)
        self._idx.write(f"{int(key)}\t{offset}\n")
        self.pos += len(data)
        return offset

    def close(self) -> None:
        for f in (self._rec, self._idx):
            if not f.closed:
                f.flush()
                os.fsync(f.fileno())
                f.close()

    def abort(self) -> None:
        for f in (self._rec, self._idx):
            f.close()


class InsightfaceWriter:
    """Writes a dataset in insightface's layout into ``folder``: ``train.rec``,
    ``train.idx`` and ``property``, each to a temporary name and renamed on
    :meth:`close` (an interrupted write leaves no half file under the final names).

    Images are added in order, grouped by identity (:meth:`add`); :meth:`close` writes
    record 0 (``flag 2``, ``[N + 1, N + 1 + C]``) and one identity record per run of
    images (``[first key, end key)``), as ``face2rec2.py`` does.

    Parameters
    ----------
    folder : path
    image_size : (height, width)
        For ``property``.
    num_classes : int, optional
        For ``property``; default the largest label + 1.
    """

    def __init__(self, folder: str | os.PathLike, *, image_size: tuple[int, int] = (112, 112), num_classes: int | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.image_size = image_size
        self.num_classes = num_classes
        self._tmp = {name: self.folder / f".{name}.part" for name in (REC_NAME, IDX_NAME, PROPERTY_NAME)}
        self._writer = RecordWriter(self._tmp[REC_NAME], self._tmp[IDX_NAME])
        self.count = 0
        self._runs: list[list[int]] = []  # [label, first key, end key]
        self._seen: set[int] = set()

    def add(self, label: int, image: bytes) -> int:
        """Append one image of class ``label``; returns its key (1, 2, ...)."""
        label = int(label)
        if label < 0:
            raise RecordIOError(f"class labels are non-negative integers, got {label}")
        key = self.count + 1
        if not self._runs or self._runs[-1][0] != label:
            if label in self._seen:
                raise RecordIOError(f"the images of identity {label} are not contiguous; insightface's layout needs each "
                                    "identity's images together (sort them by identity first)")
            self._seen.add(label)
            self._runs.append([label, key, key])
        self._writer.write(key, pack(float(label), image, id=key))
        self._runs[-1][2] = key + 1
        self.count = key
        return key

    @property
    def identities(self) -> int:
        """Identity records written so far (one per run of images)."""
        return len(self._runs)

    def close(self) -> RecordProperty:
        """Write record 0, the identity records and ``property``; rename into place."""
        first = self.count + 1
        self._writer.write(0, pack([float(first), float(first + len(self._runs))], id=0))
        for i, (_, a, b) in enumerate(self._runs):
            self._writer.write(first + i, pack([float(a), float(b)], id=first + i))
        self._writer.close()
        top = max((r[0] for r in self._runs), default=-1) + 1
        num_classes = self.num_classes if self.num_classes is not None else top
        if num_classes < top:
            raise RecordIOError(f"num_classes {num_classes} is smaller than the largest label + 1 ({top})")
        prop = RecordProperty(max(1, num_classes), *self.image_size)
        self._tmp[PROPERTY_NAME].write_text(prop.text(), encoding="ascii")
        for name in (PROPERTY_NAME, IDX_NAME, REC_NAME):
            os.replace(self._tmp[name], self.folder / name)
        return prop

    def abort(self) -> None:
        """Drop what was written (the temporary files)."""
        self._writer.abort()
        for path in self._tmp.values():
            path.unlink(missing_ok=True)

    def __enter__(self) -> "InsightfaceWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_insightface(folder: str | os.PathLike, images: Iterable[tuple[int, bytes]], *, image_size: tuple[int, int] = (112, 112),
                      num_classes: int | None = None) -> RecordProperty:
    """Write ``(label, encoded image)`` pairs, grouped by label, as an insightface RecordIO
    dataset in ``folder`` (see :class:`InsightfaceWriter`)."""
    with InsightfaceWriter(folder, image_size=image_size, num_classes=num_classes) as writer:
        for label, image in images:
            writer.add(label, image)
    return read_property(Path(folder) / PROPERTY_NAME)


def is_recordio_folder(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds ``train.rec`` and ``train.idx`` (insightface's layout)."""
    folder = Path(folder)
    return (folder / REC_NAME).is_file() and (folder / IDX_NAME).is_file()


__all__ = [
    "IDX_NAME", "IR_SIZE", "IRHeader", "InsightfaceWriter", "MAGIC", "MAX_RECORD", "PROPERTY_NAME", "REC_NAME", "RECORD_REF",
    "RecordFile", "RecordProperty", "RecordWriter", "frame", "identity_of", "is_recordio_folder", "iter_payloads", "open_records",
    "pack", "parse_record_ref", "read_index", "read_property", "read_record_image", "record_ref", "unpack", "write_insightface",
]  # fmt: skip
