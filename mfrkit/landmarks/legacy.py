"""Landmark caches of mfrkit 0.1.0, converted once into a :mod:`landmark store <mfrkit.landmarks.store>`.

0.1.0 kept one Parquet file per dataset and backend, ``landmarks.<backend>.parquet``
(coordinates as ``list<float>``, the mesh inline), plus ``landmarks.<backend>.parts/``
left by an interrupted detection. The first time a store is opened where only those
exist, they are streamed into shards a few thousand rows at a time (never loaded whole),
committed, and deleted. A crash midway leaves them in place and the conversion starts
over next time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .base import FaceResult, Landmarks
from .store import OPTIONS_META, LandmarkStore, encode_results, shard_name, write_shard

#: Rows per converted shard.
BATCH = 4096
_DEFAULT_OPTIONS = "{}"


def legacy_paths(parent: Path, backend: str) -> tuple[Path, Path]:
    """(cache file, parts folder) of 0.1.0 for ``backend`` in ``parent``."""
    return parent / f"landmarks.{backend}.parquet", parent / f"landmarks.{backend}.parts"


def has_legacy(parent: Path, backend: str) -> bool:
    """True when a 0.1.0 cache of ``backend`` lies in ``parent``."""
    file, parts = legacy_paths(parent, backend)
    return file.is_file() or (parts.is_dir() and any(parts.glob("part-*.parquet")))


def _recorded(path: Path) -> str:
    raw = (pq.read_schema(path).metadata or {}).get(OPTIONS_META)
    return raw.decode() if raw else _DEFAULT_OPTIONS


def _convert(batch: pa.RecordBatch, backend: str) -> pa.Table:
    """A batch of 0.1.0 rows as a shard table."""
    names = batch.schema.names

    def lists(name: str):
        if name not in names:
            return None
        col = batch.column(names.index(name))
        valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), bool)
        return col.offsets.to_numpy(), np.asarray(col.values.to_numpy(zero_copy_only=False), np.float32), valid

    def row(data, i: int, shape: tuple[int, ...]) -> np.ndarray | None:
        if data is None or not data[2][i]:
            return None
        offsets, values, _ = data
        part = values[offsets[i] : offsets[i + 1]]
        return part.reshape(shape) if part.size else None

    ids = batch.column(names.index("image_id")).to_pylist()
    shas = batch.column(names.index("sha256")).to_pylist() if "sha256" in names else [None] * len(ids)
    status = batch.column(names.index("status")).to_pylist()
    n_faces = batch.column(names.index("n_faces")).to_pylist() if "n_faces" in names else [0] * len(ids)
    score = batch.column(names.index("score")).to_pylist() if "score" in names else [None] * len(ids)
    bbox, p5, p68, mesh = lists("bbox"), lists("points5"), lists("points68"), lists("mesh")
    results = []
    for i in range(len(ids)):
        points5 = row(p5, i, (5, 2))
        if status[i] != "ok" or points5 is None:
            results.append(FaceResult(status=str(status[i]), n_faces=int(n_faces[i] or 0)))
            continue
        lm = Landmarks(
            points5=points5,
            points68=row(p68, i, (68, 2)),
            bbox=row(bbox, i, (4,)),
            score=float("nan") if score[i] is None else float(score[i]),
            backend=backend,
            mesh=row(mesh, i, (-1, 3)),
        )
        results.append(FaceResult(status="ok", landmarks=lm, n_faces=int(n_faces[i] or 0)))
    return encode_results(ids, shas, results)


def migrate_legacy(store: LandmarkStore) -> bool:
    """Convert the 0.1.0 cache beside ``store`` into it; False when there is none (or the
    store already exists, in which case the old files are left alone)."""
    parent = store.folder.parent
    if store.exists() or not has_legacy(parent, store.backend):
        return False
    file, parts_dir = legacy_paths(parent, store.backend)
    parts = sorted(parts_dir.glob("part-*.parquet")) if parts_dir.is_dir() else []
    key = _recorded(file) if file.is_file() else _recorded(parts[-1])
    # Whatever a conversion that crashed left in the folder goes first.
    if store.folder.is_dir():
        for number in store.shard_numbers():
            (store.folder / shard_name(number)).unlink()
        store.index_path.unlink(missing_ok=True)
    store.folder.mkdir(parents=True, exist_ok=True)
    number = 0
    # The file first, then the parts (newer): a later shard wins, as 0.1.0's merge did.
    sources = ([file] if file.is_file() else []) + [p for p in parts if _recorded(p) == key]
    for path in sources:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH):
            write_shard(store.folder, number, _convert(batch, store.backend), key)
            number += 1
    store.commit(options_key=key)
    store.create(key)  # last: a store without store.json is converted again
    file.unlink(missing_ok=True)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return True
