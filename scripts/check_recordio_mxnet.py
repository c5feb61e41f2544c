"""A second opinion on mfrkit's RecordIO from mxnet itself (outside CI: mxnet 1.9.1 needs
numpy 1.23.5 and cannot go beside the project's pins).

Set up once, in its own venv::

    python -m venv /tmp/v-mxnet && /tmp/v-mxnet/bin/pip install mxnet==1.9.1 numpy==1.23.5 pillow

Then, with a RecordIO folder mfrkit wrote (``mfrkit synth --format rec``, ``mfrkit pack
--format rec``)::

    /tmp/v-mxnet/bin/python scripts/check_recordio_mxnet.py read FOLDER
    /tmp/v-mxnet/bin/python scripts/check_recordio_mxnet.py write FOLDER   # then: mfrkit datasets scan / synth on it

``read`` opens FOLDER as arcface_torch's ``MXFaceDataset`` does (record 0, keys
``1 .. label[0] - 1``, ``mx.recordio.unpack`` and ``mx.image.imdecode`` each) and prints
counts, labels per identity record and image sizes; it fails loudly on anything mxnet
cannot read. ``write`` makes a small dataset with mxnet's own writer, in insightface's
layout (``face2rec2.py``'s records, including one image whose data holds the magic word
at an aligned offset, which mxnet splits), for mfrkit to read. This script imports no
mfrkit code.
"""

from __future__ import annotations

import io
import numbers
import os
import struct
import sys

import mxnet as mx
import numpy as np
from PIL import Image


def read(folder: str) -> None:
    rec = mx.recordio.MXIndexedRecordIO(os.path.join(folder, "train.idx"), os.path.join(folder, "train.rec"), "r")
    header0, _ = mx.recordio.unpack(rec.read_idx(0))
    assert header0.flag > 0, "record 0 carries no identity range"
    first, end = int(header0.label[0]), int(header0.label[1])
    labels, sizes = [], set()
    for key in range(1, first):
        header, img = mx.recordio.unpack(rec.read_idx(key))
        label = header.label if isinstance(header.label, numbers.Number) else header.label[0]
        labels.append(int(label))
        sizes.add(mx.image.imdecode(img).shape)
    ranges = []
    for key in range(first, end):
        header, rest = mx.recordio.unpack(rec.read_idx(key))
        assert rest == b"", f"identity record {key} holds {len(rest)} bytes"
        ranges.append((int(header.label[0]), int(header.label[1])))
    prop = open(os.path.join(folder, "property")).read().strip()
    covered = sum(b - a for a, b in ranges)
    print(f"mxnet {mx.__version__} read {folder}: {first - 1} images, {len(ranges)} identity records covering {covered}, "
          f"{len(set(labels))} labels ({min(labels)}..{max(labels)}), decoded shapes {sorted(sizes)}, property {prop!r}")
    for (a, b) in ranges:
        assert len({labels[k - 1] for k in range(a, b)}) == 1, f"identity range {a}..{b} mixes labels"
    print("ok: every identity record's range holds one label")


def write(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    rec = mx.recordio.MXIndexedRecordIO(os.path.join(folder, "train.idx"), os.path.join(folder, "train.rec"), "w")
    images, runs = [], []
    for i in range(12):
        img = np.full((112, 112, 3), 30 + 15 * i, np.uint8)
        img[30:80, 30:80] = rng.integers(0, 255, 3)
        images.append((i // 4, img))
    key = 1
    for label, img in images:
        header = mx.recordio.IRHeader(0, [float(label), 1.0], key, 0)  # face2rec2: [label, aligned]
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=95)  # pack_img would need OpenCV
        packed = mx.recordio.pack(header, buf.getvalue())
        if key == 3:  # the magic word at an aligned offset of the data: mxnet splits the record
            packed = packed + b"\0" * (-len(packed) % 4) + struct.pack("<I", 0xCED7230A) + b"tail"
        rec.write_idx(key, packed)
        if not runs or runs[-1][0] != label:
            runs.append([label, key, key + 1])
        else:
            runs[-1][2] = key + 1
        key += 1
    rec.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(2, [float(key), float(key + len(runs))], 0, 0), b""))
    for j, (_, a, b) in enumerate(runs):
        rec.write_idx(key + j, mx.recordio.pack(mx.recordio.IRHeader(2, [float(a), float(b)], key + j, 0), b""))
    rec.close()
    with open(os.path.join(folder, "property"), "w") as f:
        f.write(f"{len(runs)},112,112")
    print(f"mxnet {mx.__version__} wrote {folder}: {len(images)} images of {len(runs)} identities (record 3 split at a magic word)")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("read", "write"):
        raise SystemExit(__doc__)
    {"read": read, "write": write}[sys.argv[1]](sys.argv[2])
