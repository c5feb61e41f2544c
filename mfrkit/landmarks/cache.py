"""Landmark cache: detect once per dataset and backend, reuse in every later stage.

The cache is a :class:`~mfrkit.landmarks.store.LandmarkStore` beside the manifest, the
folder ``landmarks.<backend>/``: one row per image (``image_id``, ``sha256`` of the
image the landmarks came from, ``status``, ``n_faces``, ``score``, the points as
fixed-size float32 arrays, the dense mesh apart in 1/16 px fixed point), in shards,
with an index by ``image_id``. All coordinates are pixels of the original image. A
changed image (new ``sha256``) is detected again; other backend options start over.

Detection is resumable: every chunk of images becomes a shard, written atomically by
the worker that detected it, and the index is updated at the end, so an interrupted
run keeps what it finished. Detection of a chunk is a pure function of the images and
the backend's options (:func:`detect_rows`).

Readers should not load everything: :func:`open_store` then ``store.get(ids)`` per
chunk of work (points only with ``mesh=False``). :func:`load_landmarks` and
:func:`get_landmarks` return a lazy read-only mapping over the same store. A 0.1.0
cache (``landmarks.<backend>.parquet``) is converted the first time it is opened.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd
import pyarrow as pa

from ..data.imageio import read_image
from ..data.manifest import STATUS_OK, Manifest, file_sha256
from ..errors import ImageError, ManifestError
from .base import FaceResult, LandmarkBackend, create_backend, detect_primary
from .legacy import has_legacy, migrate_legacy
from .store import STORE_FILE, LandmarkStore, encode_results, shard_name, shard_options, write_shard

_DEFAULT_OPTIONS = "{}"


def cache_path(manifest: Manifest, backend: str) -> Path:
    """The folder where the landmarks of ``manifest`` by ``backend`` are cached
    (``landmarks.<backend>/`` beside the manifest)."""
    if manifest.path is None:
        raise ManifestError("write the manifest before caching landmarks (it has no path)")
    return manifest.path.parent / f"landmarks.{backend}"


def open_store(manifest: Manifest, backend: str) -> LandmarkStore:
    """The landmark store of ``manifest`` by ``backend`` (converting a 0.1.0 cache once).

    It may not exist yet (:meth:`LandmarkStore.exists`); nothing is detected.
    """
    store = LandmarkStore(cache_path(manifest, backend), backend)
    migrate_legacy(store)
    return store


# --- detection of one chunk: a pure function ------------------------------------------------------


@dataclass(frozen=True)
class DetectItem:
    """One image to detect landmarks on.

    Attributes
    ----------
    image_id : str
    path : str, absolute.
    sha256 : str or None, recorded with the landmarks (a changed image is detected again).
    """

    image_id: str
    path: str
    sha256: str | None = None


def detect_rows(backend: LandmarkBackend, items: Sequence[DetectItem]) -> pa.Table:
    """Landmarks of a chunk of images as a shard table
    (:data:`~mfrkit.landmarks.store.SHARD_SCHEMA`), one row per item in order.

    A pure function of the images and the backend's options: an unreadable image is a
    row with the read failure as its status, an image without a face ``no_face``.
    """
    results = []
    for item in items:
        try:
            image = read_image(item.path)
        except ImageError as exc:
            results.append(FaceResult(status=exc.reason))
            continue
        results.append(detect_primary(backend, image, image_id=item.image_id))
    return encode_results([i.image_id for i in items], [i.sha256 for i in items], results)


def _options_key(options: dict) -> str:
    """What a backend's results depend on besides the image: its options, a landmark
    file by its content (a corrected file must not be served the old file's landmarks)."""

    def value(name, v):
        return f"sha256:{file_sha256(v)}" if name == "path" and Path(str(v)).is_file() else v

    return json.dumps({k: value(k, v) for k, v in options.items()}, sort_keys=True, default=str)


@dataclass(frozen=True)
class _Task:
    """One chunk for a detection worker: its images and the shard it writes."""

    items: tuple[DetectItem, ...]
    shard: int


@dataclass(frozen=True)
class _WorkerSetup:
    backend: str
    options: dict
    folder: str
    options_key: str


# One backend per worker process, created by the pool initializer (process-local; the
# job engine's per-worker state replaces it when detection moves onto it).
_WORKER: dict = {}


def _init_worker(setup: _WorkerSetup) -> None:
    _WORKER["setup"] = setup
    _WORKER["backend"] = create_backend(setup.backend, **setup.options)


def _detect_task(task: _Task) -> int:
    """Detect one chunk and write its shard; the number of images done."""
    setup: _WorkerSetup = _WORKER["setup"]
    write_shard(setup.folder, task.shard, detect_rows(_WORKER["backend"], task.items), setup.options_key)
    return len(task.items)


@dataclass
class LandmarkSummary:
    """Counts after a detection run: images per status, and how many were new."""

    backend: str
    path: Path
    counts: dict
    detected: int
    reused: int


def _prepare(store: LandmarkStore, wanted: str | None) -> str:
    """Make ``store`` ready for detection with options key ``wanted`` (None: whatever it
    was made with); the key detection runs with."""
    recorded = store.options_key()
    if recorded is None:
        key = wanted
        if key is None:  # an interrupted first run: go on with its options
            pending = store.shard_numbers()
            key = _shard_key(store, pending[-1]) if pending else _DEFAULT_OPTIONS
        store.create(key or _DEFAULT_OPTIONS)
        return key or _DEFAULT_OPTIONS
    if wanted is not None and wanted != recorded:
        store.reset(wanted)
        return wanted
    return recorded


def _shard_key(store: LandmarkStore, number: int) -> str:
    return shard_options(store.folder / shard_name(number)) or _DEFAULT_OPTIONS


def detect_landmarks(
    manifest: Manifest,
    backend: str,
    *,
    workers: int = 1,
    progress: bool = False,
    chunk_size: int = 256,
    backend_options: dict | None = None,
) -> LandmarkSummary:
    """Detect landmarks for every image of ``manifest`` not yet cached, and cache them.

    Images whose manifest status is not ``ok`` are recorded with that status without
    being opened. An image whose ``sha256`` changed since it was cached is detected again.
    Results do not depend on ``workers``: each image is processed independently. Each
    chunk of ``chunk_size`` images is one shard of the store.

    ``backend_options`` given (even ``{}``) must match those the cache was made with, a
    landmark file compared by content, or everything is detected again; None reuses
    whatever is cached (readers such as ``bench`` that do not know the options).
    """
    from ..progress import progress_bar

    options = dict(backend_options or {})
    store = open_store(manifest, backend)
    key = _prepare(store, None if backend_options is None else _options_key(options))
    store.commit()  # shards an interrupted run left
    index = store.index_table(["image_id", "sha256"])
    done = dict(zip(index["image_id"].to_pylist(), index["sha256"].to_pylist()))
    del index
    table = manifest.table
    shas = table["sha256"] if "sha256" in table.columns else pd.Series([None] * len(table))
    todo: list[DetectItem] = []
    failed: list[tuple[str, str | None, str]] = []
    for image_id, rel, status, sha in zip(table["image_id"], table["path"], table["status"], shas):
        sha = None if pd.isna(sha) else str(sha)
        if image_id in done and done[image_id] == sha:
            continue
        if status != STATUS_OK:
            failed.append((image_id, sha, str(status)))
        else:
            todo.append(DetectItem(str(image_id), str(manifest.abspath(rel)), sha))
    del done
    reused = len(table) - len(todo) - len(failed)
    number = store.next_shard()
    if failed:
        rows = encode_results([f[0] for f in failed], [f[1] for f in failed], [FaceResult(status=f[2]) for f in failed])
        write_shard(store.folder, number, rows, key)
        number += 1
    tasks = [_Task(tuple(todo[i : i + chunk_size]), number + k) for k, i in enumerate(range(0, len(todo), chunk_size))]
    setup = _WorkerSetup(backend, options, str(store.folder), key)
    with progress_bar(len(todo), f"landmarks ({backend})", enabled=progress and bool(todo)) as advance:
        pool = None
        if not tasks:
            results: Iterator[int] = iter(())
        elif workers <= 1 or len(tasks) <= 1:
            _init_worker(setup)
            results = map(_detect_task, tasks)
        else:
            # Spawn, not fork: a child forked from a parent that already runs mediapipe crashes.
            context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(setup,))
            results = pool.map(_detect_task, tasks)
        try:
            for n in results:
                advance(n)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    store.commit()
    counts = store.counts(table["image_id"])
    return LandmarkSummary(backend=backend, path=store.folder, counts=counts, detected=len(todo), reused=reused)


# --- reading ----------------------------------------------------------------------------------------


class LandmarkMap(Mapping):
    """A read-only mapping image_id -> FaceResult over a store, read lazily: each lookup
    reads only the row group that holds the image (a few recent ones are kept).

    Parameters
    ----------
    store : LandmarkStore
    mesh : bool
        Include the dense mesh (False: points only).
    """

    def __init__(self, store: LandmarkStore, *, mesh: bool = True) -> None:
        self.store = store
        self.mesh = mesh

    def __getitem__(self, image_id: str) -> FaceResult:
        found = self.store.get([image_id], mesh=self.mesh)
        if image_id not in found:
            raise KeyError(image_id)
        return found[image_id]

    def __contains__(self, image_id: object) -> bool:
        return image_id in self.store

    def __iter__(self) -> Iterator[str]:
        return self.store.ids()

    def __len__(self) -> int:
        return len(self.store)

    def get_many(self, image_ids: Sequence[str]) -> dict[str, FaceResult]:
        """The results of ``image_ids`` the store holds, in one read per row group."""
        return self.store.get(image_ids, mesh=self.mesh)


def load_landmarks(manifest: Manifest, backend: str, *, mesh: bool = True) -> LandmarkMap:
    """The cached landmarks of ``manifest`` by ``backend``, by image_id (no detection),
    as a lazy read-only mapping (nothing is read until looked up).

    Raises ManifestError when nothing is cached yet.
    """
    store = open_store(manifest, backend)
    if not store.exists():
        raise ManifestError(f"no {backend} landmarks cached for {manifest.name or manifest.path}; run: mfrkit landmarks {manifest.path} --backend {backend}")
    return LandmarkMap(store, mesh=mesh)


def cached_counts(manifest: Manifest) -> dict[str, dict[str, int]]:
    """Images of ``manifest`` per landmark status, for every backend cached beside it
    (``{backend: {status: images}}``; what data cards report). Nothing is detected."""
    if manifest.path is None:
        return {}
    parent = manifest.path.parent
    backends = set()
    for path in parent.glob("landmarks.*"):
        name = path.name[len("landmarks.") :]
        if path.is_dir() and (path / STORE_FILE).is_file():
            backends.add(name)
        elif name.endswith(".parquet") and has_legacy(parent, name[: -len(".parquet")]):
            backends.add(name[: -len(".parquet")])
    counts: dict[str, dict[str, int]] = {}
    for backend in sorted(backends):
        # The store may hold images of a larger manifest: count this one's.
        counts[backend] = open_store(manifest, backend).counts(manifest.table["image_id"])
    return counts


def get_landmarks(
    manifest: Manifest, backend: str, *, workers: int = 1, progress: bool = False, backend_options: dict | None = None, mesh: bool = True
) -> LandmarkMap:
    """Landmarks for every image of ``manifest``, detecting what is not cached yet
    (a lazy mapping, see :func:`load_landmarks`; ``mesh=False`` for points only)."""
    detect_landmarks(manifest, backend, workers=workers, progress=progress, backend_options=backend_options)
    return load_landmarks(manifest, backend, mesh=mesh)
