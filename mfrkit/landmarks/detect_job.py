"""Landmark detection as a job on the engine (:mod:`mfrkit.jobs`).

An item is a chunk of images; running it detects them (:func:`~mfrkit.landmarks.lookup.
detect_rows`, a pure function of the images and the backend's options) and writes them
as one shard of the store, atomically. The store's folder is the job's output folder,
so it is marked as mfrkit's and locked while detection runs (a second detection of the
same store stops with "in use by PID ..."); other backend options replace the store's
files. Finishing commits the new shards to the index. An interrupted run leaves
complete shards, which the next run commits before planning the rest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa

from ..data.image_record import STATUS_OK, ImageRecord
from ..data.imageio import read_image
from ..errors import ImageError
from ..jobs import Item, Job, OutputFolder, Plan, RunStats
from .base import FaceResult, LandmarkBackend, create_backend, detect_primary
from .store import INDEX_FILE, STORE_FILE, LandmarkStore, encode_results, shard_name, write_shard


def detect_rows(backend: LandmarkBackend, items: Sequence[ImageRecord]) -> pa.Table:
    """Landmarks of a chunk of images as a shard table
    (:data:`~mfrkit.landmarks.store.SHARD_SCHEMA`), one row per item in order.

    A pure function of the images and the backend's options: an image whose manifest
    status is not ``ok`` keeps that status unopened, an unreadable image gets the read
    failure as its status, an image without a face ``no_face``.
    """
    results = []
    for item in items:
        if item.status != STATUS_OK:
            results.append(FaceResult(status=item.status))
            continue
        try:
            image = read_image(item.path)
        except ImageError as exc:
            results.append(FaceResult(status=exc.reason))
            continue
        results.append(detect_primary(backend, image, image_id=item.image_id))
    return encode_results([i.image_id for i in items], [i.sha256 for i in items], results)


@dataclass(frozen=True)
class ShardItem(Item):
    """A chunk of images, written as shard ``shard`` of the store."""

    shard: int = 0
    images: tuple[ImageRecord, ...] = ()


def store_fingerprint(backend: str, options_key: str) -> str:
    """What a store's rows depend on besides the images: the backend and its options."""
    return hashlib.sha256(json.dumps({"backend": backend, "options": options_key}, sort_keys=True).encode()).hexdigest()


class LandmarkJob(Job):
    """Detect ``items`` into ``store`` with ``backend`` (see the module docstring).

    Parameters
    ----------
    store : LandmarkStore
    options : dict
        The backend's options (``create_backend(store.backend, **options)``).
    options_key : str
        What the options amount to (a landmark file by its content), recorded in shards.
    """

    kind = "landmarks"
    chunk_size = 1  # an item already is a chunk of images

    def units(self, item) -> int:
        return len(item.images)  # the progress bar counts images, not shards

    def __init__(self, store: LandmarkStore, options: dict, options_key: str) -> None:
        self.store = store
        self.options = dict(options)
        self.options_key = options_key
        self.items: Sequence[ShardItem] | Plan = []
        #: The shard numbers a :class:`Plan` of items writes (numbered in a row).
        self.shards: range = range(0)
        self._folder = OutputFolder(store.folder, kind=self.kind, fingerprint=store_fingerprint(store.backend, options_key), adopt=self._adopt)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["items"] = []  # workers get the items they are sent, not the plan
        return state

    def _adopt(self, root: Path) -> str | None:
        """A store made before stores were marked (or converted from 0.1.0): its fingerprint."""
        try:
            key = LandmarkStore(root, self.store.backend).options_key()
        except Exception:  # noqa: BLE001 - not a store this version reads: not ours to take
            return None
        return None if key is None else store_fingerprint(self.store.backend, key)

    def plan(self) -> Sequence[ShardItem] | Plan:
        return self.items

    def output(self) -> OutputFolder:
        return self._folder

    def replace_files(self, root: Path) -> list[str]:
        """Everything a store made with other options holds: it is detected again."""
        own = [STORE_FILE, INDEX_FILE, ".journal"] + [shard_name(n) for n in LandmarkStore(root, self.store.backend).shard_numbers()]
        own += [p.name for p in root.glob(".*.tmp.parquet")]  # left by a write that was killed
        return own

    def is_complete(self, rows: list[dict]) -> bool:
        return all((self.store.folder / shard_name(int(r["shard"]))).is_file() for r in rows if "shard" in r)

    def open_worker(self) -> LandmarkBackend:
        return create_backend(self.store.backend, **self.options)

    def run_item(self, item: ShardItem, state: LandmarkBackend) -> list[dict]:
        table = detect_rows(state, item.images)
        self._folder.path_for(shard_name(item.shard))  # checked: inside the folder, not through a link
        write_shard(self.store.folder, item.shard, table, self.options_key)
        return [{"shard": item.shard, "images": len(item.images)}]

    def failure_rows(self, item: ShardItem, status: str, message: str) -> list[dict]:
        return [{"status": status, "message": message, "images": len(item.images), "first": item.images[0].image_id if item.images else None}]

    def finish(self, results: dict[str, list[dict]], items: Sequence[ShardItem], stats: RunStats) -> list[dict]:
        """Commit the new shards; the chunks that failed (their images stay undetected)."""
        self.store.commit()
        # An item's key is its shard's name; failed chunks wrote no shard.
        keys = {shard_name(n) for n in self.shards} if isinstance(items, Plan) else {it.key for it in items}
        return [r for key, rows in results.items() if key in keys for r in rows if "status" in r]

