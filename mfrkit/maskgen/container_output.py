"""Dataset jobs that write one container file instead of a tree of images:
``--format rec`` (insightface RecordIO: ``train.rec``, ``train.idx``, ``property``) and
``--format bin`` (a masked insightface verification ``.bin``).

How the output stays byte-identical whatever the executor, worker count or order, with
the driver's memory flat:

1. **workers** append each output's encoded image to their own *part* file
   (``<out>/.parts/<pid>-<random>.img``, append-only, flushed after every chunk, before
   the chunk is journalled); the journalled row names the part and the offset
   (``part_file``, ``part_offset``; ``bytes`` is the length);
2. **the finish** walks the items in plan order (grouped by identity, see
   :func:`group_by_identity`) and copies each image into the container in that order,
   one ``pread`` each, with its key, label and header fixed by its position alone: the
   same plan gives the same bytes. The parts are removed once the container is renamed
   into place.

Chosen over writing every output as a file and packing the files at the end: that
creates, reads and deletes one file per image (5.8M for MS1MV2); the parts are one file
per worker, read back sequentially (measured: ``benchmarks/synth.py --rec``).

A ``.bin`` output keeps the source's pairs and order: image ``2k`` (reference side) is
copied unchanged, image ``2k + 1`` (probe side) is the masked one; a probe that could not
be masked keeps its unmasked image there and is listed in ``failures.csv``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import recordio as rio
from ..data.imageio import read_image_bytes
from ..data.recordio_scan import ALIGNED_SIZES
from ..data.verification_bin import bin_bytes, open_bin, parse_bin_ref
from ..errors import JobError

CONTAINERS = ("rec", "bin")
PARTS = ".parts"
#: Encoding of the images written into a container (mxnet's ``pack_img`` default).
CONTAINER_EXT = ".jpg"
BIN_LAYOUT = "verification-bin"


def container_of(fmt: str | None, source_meta: dict, allowed: tuple[str, ...] = CONTAINERS) -> str | None:
    """The container a job writes: ``rec`` / ``bin`` when asked (``--format``), else the
    source's own when the job can write it (a RecordIO source gives RecordIO, a ``.bin``
    a ``.bin``); None: image files."""
    name = (fmt or "").lower().lstrip(".")
    if name in CONTAINERS:
        if name not in allowed:
            raise JobError(f"this job cannot write --format {name} (it writes {', '.join(allowed)} or image files)")
        return name
    if fmt is None:
        own = {"insightface-rec": "rec", BIN_LAYOUT: "bin"}.get(str(source_meta.get("layout")))
        return own if own in allowed else None
    return None


def placeholder(source_id: str, slot: str) -> str:
    """The journal path of an output that goes into a container (never a file)."""
    return f"{source_id}#{slot}"


# --- the worker side -------------------------------------------------------------------------------


class PartSink:
    """A worker's append-only part file of encoded images.

    Parameters
    ----------
    folder : Path
        ``<out>/.parts`` (already checked by the job's output folder).
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.name = f"{os.getpid()}-{secrets.token_hex(6)}.img"
        self._file = open(folder / self.name, "ab")
        self.pos = self._file.tell()

    def add(self, data: bytes) -> dict:
        """Append ``data``; the row columns that locate it."""
        offset = self.pos
        self._file.write(data)
        self.pos += len(data)
        return {"part_file": self.name, "part_offset": offset}

    def flush(self) -> None:
        """Make everything added so far readable by the finish (before journalling)."""
        self._file.flush()
        os.fsync(self._file.fileno())


def part_done(out: Path, row: dict) -> bool:
    """Whether a journalled row's image is in its part (or, for a finished earlier run,
    in the container)."""
    part = row.get("part_file")
    if not part:
        return (out / str(row.get("path", "")).split("#", 1)[0]).is_file()
    try:
        return (out / PARTS / str(part)).stat().st_size >= int(row["part_offset"]) + int(row["bytes"])
    except (OSError, TypeError, ValueError, KeyError):
        return False


def _row_image(out: Path, row: dict, handles: dict) -> bytes:
    """The encoded image of a journalled row: from its part, or from the container of a
    finished earlier run (the row's path names the record)."""
    part = row.get("part_file")
    if not part or (isinstance(part, float) and np.isnan(part)):
        return read_image_bytes(out / str(row["path"]))
    fd = handles.get(part)
    if fd is None:
        fd = handles[part] = os.open(out / PARTS / str(part), os.O_RDONLY)
    n, at = int(row["bytes"]), int(row["part_offset"])
    data = os.pread(fd, n, at)
    if len(data) != n:
        raise JobError(f"part file {part} ends before the image at byte {at} ({n} bytes): run the job again")
    return data


# --- the finish side: RecordIO ---------------------------------------------------------------------------


@dataclass
class RecordsOut:
    """Writes the rows' images into ``<out>/train.rec`` in the order they come.

    Parameters
    ----------
    out : Path
    labels : dict of identity -> int
        The class label of each identity (a RecordIO source's own labels, else 0..C-1
        in sorted order of the identities).
    num_classes : int
    """

    out: Path
    labels: dict
    num_classes: int
    sizes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._writer: rio.InsightfaceWriter | None = None
        self._handles: dict = {}

    def add(self, row: dict) -> dict:
        """Copy one ok row's image in; the row with its record path, id and label."""
        if self._writer is None:
            self._writer = rio.InsightfaceWriter(self.out, image_size=(int(row["height"]), int(row["width"])), num_classes=self.num_classes)
        label = self.labels[row["identity"]]
        key = self._writer.add(label, _row_image(self.out, row, self._handles))
        size = (int(row["height"]), int(row["width"]))
        self.sizes[size] = self.sizes.get(size, 0) + 1
        path = rio.record_ref(rio.REC_NAME, key)
        return {**row, "image_id": path, "path": path, "label": label}

    def close(self) -> dict:
        """Write record 0, the identity records and ``property``; the metadata it adds."""
        _close_handles(self._handles)
        if self._writer is None:
            return {}
        prop = self._writer.close()
        size = (prop.height, prop.width)
        odd = sum(n for s, n in self.sizes.items() if s != size)
        return {"aligned_size": ALIGNED_SIZES.get(size), "recordio": {
            "rec": rio.REC_NAME, "num_classes": prop.num_classes, "image_size": list(size), "images": self._writer.count,
            "identity_records": self._writer.identities, "other_sizes": odd}}

    def abort(self) -> None:
        _close_handles(self._handles)
        if self._writer is not None:
            self._writer.abort()


# --- the finish side: a masked .bin ------------------------------------------------------------------------


@dataclass
class BinOut:
    """Writes ``<out>/<name>.bin``: the source ``.bin`` with its probe images replaced by
    the rows' masked ones (see the module docstring)."""

    out: Path
    source_bin: Path

    def __post_init__(self) -> None:
        bins, self.issame = open_bin(self.source_bin)
        self.bins = list(bins)
        self.name = self.source_bin.name
        self._handles: dict = {}

    def add(self, row: dict, source_path: str) -> dict:
        """Put one masked row at its source's place; the row with its path in the output."""
        ref = parse_bin_ref(source_path)
        if ref is None:
            raise JobError(f"{source_path} is not an image of a .bin")
        index = ref[1]
        self.bins[index] = _row_image(self.out, row, self._handles)
        path = f"{self.name}#{index}"
        return {**row, "image_id": path, "path": path}

    def reference_rows(self, source_rows: pd.DataFrame) -> list[dict]:
        """Manifest rows of the images copied unchanged (the reference side)."""
        rows = []
        for sid, rel, sha, w, h, n, pair in zip(source_rows["image_id"], source_rows["path"], source_rows["sha256"], source_rows["width"],
                                                source_rows["height"], source_rows["bytes"], source_rows["pair"]):
            index = parse_bin_ref(str(rel))[1]
            path = f"{self.name}#{index}"
            rows.append({"image_id": path, "path": path, "source_id": sid, "variant": "unmasked", "status": "ok", "sha256": sha,
                         "width": w, "height": h, "bytes": n, "pair": pair, "side": "reference"})
        return rows

    def close(self) -> dict:
        _close_handles(self._handles)
        from ..atomic import atomic_write_bytes

        atomic_write_bytes(self.out / self.name, bin_bytes(self.bins, self.issame))
        return {"verification_bin": {"file": self.name, "pairs": len(self.issame), "masked_side": "probe (image 2k + 1)"}}

    def abort(self) -> None:
        _close_handles(self._handles)


def _close_handles(handles: dict) -> None:
    for fd in handles.values():
        os.close(fd)
    handles.clear()
