"""``mfrkit pack --format rec``: a pack's aligned crops also written as insightface
RecordIO, so a dataset of photos (a masked copy of CASIA-WebFace's folders, say) goes
into arcface_torch or FaceX-Zoo as they read their training sets.

Per alignment, ``<pack>/recordio/<align>/`` gets ``train.rec``, ``train.idx`` and
``property``: every row whose crop is ``ok`` and that has an identity, grouped by
identity (:func:`mfrkit.data.recordio_labels.group_by_identity`), its crop encoded as
JPEG (quality 95, as mxnet's ``pack_img``), labels from the source (a RecordIO source's
own, else its identities numbered in sorted order). Written by the pack's finish, in row
order, so the files are byte-identical whatever the workers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data import recordio as rio
from ..data.imageio import encode_image
from ..data.recordio_labels import group_by_identity, record_labels
from .pack import CROPS_DIR, shard_name

RECORDIO_DIR = "recordio"


def write_pack_recordio(out: Path, align: str, size: tuple[int, int], shard_size: int, table: pd.DataFrame, source_meta: dict) -> dict:
    """Write ``<out>/recordio/<align>/`` from the pack's shards; what ``pack.json`` records
    of it (records, classes, the rows left out for having no identity)."""
    ok = table[(table["crop_status"] == "ok")]
    known = ok[ok["identity"].notna()]
    rows = group_by_identity(known)
    labels, classes = record_labels(table, source_meta)
    folder = out / RECORDIO_DIR / align
    shards: dict[int, np.ndarray] = {}
    with rio.InsightfaceWriter(folder, image_size=size, num_classes=classes) as writer:
        for identity, row in zip(rows["identity"], rows["pack_row"].astype(int)):
            k = row // shard_size
            if k not in shards:
                shards.clear()  # rows come shard by shard (mostly): keep one mapped
                shards[k] = np.load(out / CROPS_DIR / align / shard_name(k), mmap_mode="r", allow_pickle=False)
            writer.add(labels[str(identity)], encode_image(np.ascontiguousarray(shards[k][row - k * shard_size]), ".jpg"))
    return {"folder": str(folder.relative_to(out)), "records": int(len(rows)), "num_classes": int(classes),
            "no_identity": int(len(ok) - len(known))}
