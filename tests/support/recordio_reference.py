"""An independent, minimal RecordIO reader and writer written from the format description
(dmlc-core's recordio framing, mxnet's IRHeader, insightface's header record 0), so the
tests never check mfrkit's RecordIO with mfrkit's own code.

Format: per record ``uint32 magic 0xced7230a``, ``uint32 (cflag << 29) | length``, data,
zero padding to 4 bytes; data holding the magic at an aligned offset is split there
(cflag 1 first, 2 middle, 3 last, magic dropped). Data = ``struct '<IfQQ'`` (flag, label,
id, id2) + ``flag`` float32 labels + image bytes. ``.idx``: ``key\\toffset`` lines.
"""

from __future__ import annotations

import struct
from pathlib import Path

MAGIC = 0xCED7230A


def read_record(buf: bytes, pos: int) -> bytes:
    out = b""
    while True:
        magic, lrec = struct.unpack_from("<II", buf, pos)
        assert magic == MAGIC, f"bad magic at {pos}"
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        out += buf[pos + 8 : pos + 8 + length]
        pos += 8 + (length + 3) // 4 * 4
        if cflag in (0, 3):
            return out
        out += struct.pack("<I", MAGIC)


def unpack(data: bytes):
    flag, label, rid, rid2 = struct.unpack_from("<IfQQ", data)
    if flag > 0:
        labels = struct.unpack_from(f"<{flag}f", data, 24)
        return (flag, labels, rid, rid2), data[24 + 4 * flag :]
    return (flag, label, rid, rid2), data[24:]


def read_dataset(folder: Path) -> dict:
    """What arcface_torch's MXFaceDataset sees: header 0, the image keys, each image's
    (label, bytes), the identity ranges, and property."""
    folder = Path(folder)
    buf = (folder / "train.rec").read_bytes()
    idx = {}
    for line in (folder / "train.idx").read_text().splitlines():
        k, off = line.strip().split("\t")
        idx[int(k)] = int(off)
    header0, _ = unpack(read_record(buf, idx[0]))
    assert header0[0] > 0, "record 0 must carry the identity range"
    first, end = int(header0[1][0]), int(header0[1][1])
    images = {}
    for key in range(1, first):
        header, img = unpack(read_record(buf, idx[key]))
        label = header[1] if header[0] == 0 else header[1][0]
        images[key] = (int(label), img, header)
    ranges = []
    for key in range(first, end):
        header, rest = unpack(read_record(buf, idx[key]))
        assert rest == b""
        ranges.append((int(header[1][0]), int(header[1][1])))
    prop = (folder / "property").read_text().strip().split(",")
    return {"idx": idx, "images": images, "ranges": ranges, "property": tuple(int(v) for v in prop), "header0": header0}


def write_record(f, payload: bytes) -> None:
    """Write one record, splitting at aligned magic words as dmlc-core does."""
    n, start, hits = len(payload), 0, []
    for i in range(0, n - n % 4, 4):
        if struct.unpack_from("<I", payload, i)[0] == MAGIC:
            hits.append(i)
    for i in hits:
        f.write(struct.pack("<II", MAGIC, ((1 if start == 0 else 2) << 29) | (i - start)) + payload[start:i])
        start = i + 4
    rest = payload[start:]
    f.write(struct.pack("<II", MAGIC, ((3 if hits else 0) << 29) | len(rest)) + rest + b"\0" * (-len(rest) % 4))


def write_dataset(folder: Path, images: list[tuple[int, bytes]], *, size=(112, 112), label_vector: bool = False,
                  num_classes: int | None = None) -> None:
    """insightface's layout, as face2rec2.py writes it: images 1..N (grouped by label),
    then record 0, then one identity record per run of labels. ``label_vector`` writes
    each image's label as face2rec2 does, ``[label, 1.0]`` (flag 2)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines, runs = [], []
    with open(folder / "train.rec", "wb") as f:
        def put(key: int, payload: bytes) -> None:
            lines.append(f"{key}\t{f.tell()}\n")
            write_record(f, payload)

        for i, (label, img) in enumerate(images):
            key = i + 1
            if label_vector:
                payload = struct.pack("<IfQQ", 2, 0.0, key, 0) + struct.pack("<2f", float(label), 1.0) + img
            else:
                payload = struct.pack("<IfQQ", 0, float(label), key, 0) + img
            put(key, payload)
            if not runs or runs[-1][0] != label:
                runs.append([label, key, key + 1])
            else:
                runs[-1][2] = key + 1
        first = len(images) + 1
        put(0, struct.pack("<IfQQ", 2, 0.0, 0, 0) + struct.pack("<2f", first, first + len(runs)))
        for j, (_, a, b) in enumerate(runs):
            put(first + j, struct.pack("<IfQQ", 2, 0.0, first + j, 0) + struct.pack("<2f", a, b))
    (folder / "train.idx").write_text("".join(lines))
    classes = num_classes if num_classes is not None else max(label for label, _ in images) + 1
    (folder / "property").write_text(f"{classes},{size[0]},{size[1]}")
