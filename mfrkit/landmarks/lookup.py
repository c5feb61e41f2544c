"""The front door of a manifest's landmark store: where it lies (:func:`open_store`),
detecting what it lacks (:func:`detect_landmarks`: once per dataset and backend, reused
by every later stage), and reading it lazily (:func:`load_landmarks`).

The store (the "landmark cache") is a :class:`~mfrkit.landmarks.store.LandmarkStore` beside the manifest, the
folder ``landmarks.<backend>/``: one row per image (``image_id``, ``sha256`` of the
image the landmarks came from, ``status``, ``n_faces``, ``score``, the points as
fixed-size float32 arrays, the dense mesh apart in 1/32 px fixed point), in shards,
with an index by ``image_id``. All coordinates are pixels of the original image. A
changed image (new ``sha256``) is detected again; other backend options start over.

Detection is a job on the engine (:mod:`mfrkit.landmarks.detect_job`, any executor):
every chunk of images becomes a shard, written atomically by the worker that detected
it, and the index is updated at the end, so an interrupted run keeps what it finished.
Detection of a chunk is a pure function of the images and the backend's options
(:func:`detect_rows`).

Readers should not load everything: :func:`open_store` then ``store.get(ids)`` per
chunk of work (points only with ``mesh=False``). :func:`load_landmarks` and
:func:`get_landmarks` return a lazy read-only mapping over the same store. A 0.1.0
cache (``landmarks.<backend>.parquet``) is converted the first time it is opened.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from ..data.image_record import ImageRecord
from ..data.manifest import STATUS_OK, Manifest
from ..errors import LandmarkError, ManifestError, require_made
from ..jobs import ExecutorSpec, Plan, run_job
from ..userfiles import user_file_sha256
from .base import FaceResult
from .detect_job import LandmarkJob, ShardItem, detect_rows
from .legacy import has_legacy, migrate_legacy
from .store import STORE_FILE, LandmarkStore, shard_name, shard_options

__all__ = [
    "LandmarkMap", "LandmarkSummary", "cache_path", "cached_counts", "detect_landmarks", "detect_rows", "get_landmarks",
    "load_landmarks", "open_store",
]  # fmt: skip

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


def _options_key(options: dict) -> str:
    """What a backend's results depend on besides the image: its options, a landmark
    file by its content (a corrected file must not be served the old file's landmarks)."""

    def value(name, v):
        return f"sha256:{user_file_sha256(v)}" if name == "path" and Path(str(v)).is_file() else v

    return json.dumps({k: value(k, v) for k, v in options.items()}, sort_keys=True, default=str)


@dataclass
class LandmarkSummary:
    """Counts after a detection run: images per status, and how many were new."""

    backend: str
    path: Path
    counts: dict
    detected: int
    reused: int


def _run_key(store: LandmarkStore, wanted: str | None) -> str:
    """The options key a detection runs with: ``wanted``, else the store's (None: reuse
    whatever is cached), else that of an interrupted first run's shards."""
    if wanted is not None:
        return wanted
    recorded = store.options_key()
    if recorded is not None:
        return recorded
    pending = store.shard_numbers()
    return (shard_options(store.folder / shard_name(pending[-1])) if pending else None) or _DEFAULT_OPTIONS


#: Manifest rows read at a time while planning a detection.
_BATCH = 8192


def _batch_todo(store: LandmarkStore, batch: pd.DataFrame) -> np.ndarray:
    """Which rows of a manifest batch the committed store lacks, or holds for another
    sha256 (a bool per row)."""
    ids = batch["image_id"].astype(str).tolist()
    sha = batch["sha256"].astype(object).where(batch["sha256"].notna(), None).tolist() if "sha256" in batch.columns else [None] * len(ids)
    cached_sha, cached_status = store.lookup(ids)
    # Not in the store (no status), or cached for another image (sha256 differs; both None is the same).
    return np.asarray([st is None or a != b for a, b, st in zip(sha, cached_sha, cached_status)], bool)


def _any_todo(store: LandmarkStore, manifest) -> bool:
    """Whether any image of ``manifest`` needs detecting (stops at the first one)."""
    return any(_batch_todo(store, batch).any() for batch in manifest.batches(["image_id", "sha256"], _BATCH))


def _todo_mask(store: LandmarkStore, manifest) -> tuple[list[np.ndarray], int, int]:
    """Which rows of ``manifest`` need detecting (per batch of :data:`_BATCH` rows, its
    bits packed: one bit per image), how many, and how many of those are usable images
    (status ``ok``)."""
    parts, n, usable = [], 0, 0
    for batch in manifest.batches(["image_id", "sha256", "status"], _BATCH):
        todo = _batch_todo(store, batch)
        n += int(todo.sum())
        usable += int((todo & (batch["status"].astype(str) == STATUS_OK).to_numpy()).sum())
        parts.append(np.packbits(todo))
    return parts, n, usable


def _detect_plan(manifest, mask: list[np.ndarray], n_todo: int, first: int, chunk_size: int) -> Plan:
    """The shard items of a detection, made from ``manifest`` a row group at a time: the
    rows ``mask`` marks, in manifest order, ``chunk_size`` images per shard, numbered from
    ``first``; about :data:`_BATCH` images per part of the plan."""
    n_shards = -(-n_todo // chunk_size)

    def parts():
        number, held, part = first, [], []
        for bits, batch in zip(mask, manifest.batches(["image_id", "path", "sha256", "status"], _BATCH)):
            rows = batch[np.unpackbits(bits, count=len(batch)).astype(bool)]
            ok = (rows["status"].astype(str) == STATUS_OK).tolist()
            sha = rows["sha256"].astype(object).where(rows["sha256"].notna(), None).tolist() if "sha256" in rows.columns else [None] * len(rows)
            for image_id, rel, st, h, good in zip(rows["image_id"].astype(str), rows["path"], rows["status"].astype(str), sha, ok):
                held.append(ImageRecord(image_id, str(manifest.abspath(rel)) if good else "", None if h is None else str(h), STATUS_OK if good else st))
                if len(held) == chunk_size:
                    part.append(ShardItem(key=shard_name(number), outputs=(shard_name(number),), shard=number, images=tuple(held)))
                    number, held = number + 1, []
            if part:
                yield part
                part = []
        if held:
            yield [ShardItem(key=shard_name(number), outputs=(shard_name(number),), shard=number, images=tuple(held))]

    return Plan(parts, n_shards, units=n_todo)  # the bar counts images, not shards


def detect_landmarks(
    manifest,
    backend: str,
    *,
    progress: bool = False,
    chunk_size: int = 256,
    backend_options: dict | None = None,
    executor: ExecutorSpec | None = None,
    require_any: bool = False,
) -> LandmarkSummary:
    """Detect landmarks for every image of ``manifest`` not yet cached, and cache them.

    Images whose manifest status is not ``ok`` are recorded with that status without
    being opened. An image whose ``sha256`` changed since it was cached is detected again.
    ``executor`` (an :class:`~mfrkit.jobs.ExecutorSpec`: a local pool of ``workers``
    processes, or Ray; default in this process) runs the detection. Results do not
    depend on it: each image is processed independently. Each chunk of ``chunk_size`` images is one shard of the store, one
    item of a :class:`~mfrkit.landmarks.detect_job.LandmarkJob` on the job engine.
    ``manifest`` may be a :class:`~mfrkit.data.manifest.Manifest` or a
    :class:`~mfrkit.data.manifest_stream.ManifestReader`: it is read a row group at a time
    (the plan holds a bit per image).

    ``backend_options`` given (even ``{}``) must match those the cache was made with, a
    landmark file compared by content, or everything is detected again; None reuses
    whatever is cached (readers such as ``bench`` that do not know the options). When
    nothing is left to do, nothing is written (and the backend is not even created).

    Raises LandmarkError, after caching everything else, when a chunk failed as a whole
    (its images stay undetected and are tried again by the next run); with
    ``require_any`` (``mfrkit landmarks``), NothingMadeError when no image has
    landmarks (their statuses are cached first).
    """
    options = dict(backend_options or {})
    store = open_store(manifest, backend)
    key = _run_key(store, None if backend_options is None else _options_key(options))
    detected, todo_rows = 0, 0
    if store.options_key() != key or _any_todo(store, manifest) or store.pending():
        job = LandmarkJob(store, options, key)
        folder = job.output()
        # Claimed (and locked) before the plan is made, so the plan holds under the lock.
        folder.claim(replace=job.replace_files)
        try:
            if store.options_key() != key:
                store.reset(key)  # other options: everything is detected again
            store.create(key)
            store.commit()  # shards an interrupted run left
            mask, todo_rows, detected = _todo_mask(store, manifest)
            first = store.next_shard()
            job.items = _detect_plan(manifest, mask, todo_rows, first, chunk_size)
            job.shards = range(first, first + len(job.items))
            if len(job.items):
                failed = run_job(job, executor or ExecutorSpec(), progress=progress)
            else:
                failed = []
                folder.finished()
        finally:
            folder.release()
        if failed:
            n = sum(int(f.get("images", 0)) for f in failed)
            why = str(failed[0].get("message") or failed[0].get("status")).split("; Traceback")[0].splitlines()[0]
            raise LandmarkError(f"{n} image(s) in {len(failed)} chunk(s) could not be processed (first: {failed[0].get('first')}: {why}); "
                                "everything else is cached, rerun to try them again")  # fmt: skip
    counts = store.counts(_ids(manifest))
    if require_any:
        require_made(counts.get(STATUS_OK, 0), f"{backend} found landmarks on no image of {len(manifest)}",
                     {k: v for k, v in counts.items() if k != STATUS_OK}, where=f"the statuses are cached in {store.folder}")
    return LandmarkSummary(backend=backend, path=store.folder, counts=counts, detected=detected, reused=len(manifest) - todo_rows)


def _ids(manifest) -> Iterator[str]:
    """Every image id of ``manifest``, a row group at a time."""
    for batch in manifest.batches(["image_id"], _BATCH):
        yield from batch["image_id"].astype(str)


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
        counts[backend] = open_store(manifest, backend).counts(_ids(manifest))
    return counts


def get_landmarks(
    manifest: Manifest, backend: str, *, workers: int = 1, progress: bool = False, backend_options: dict | None = None, mesh: bool = True
) -> LandmarkMap:
    """Landmarks for every image of ``manifest``, detecting what is not cached yet
    (a lazy mapping, see :func:`load_landmarks`; ``mesh=False`` for points only)."""
    detect_landmarks(manifest, backend, progress=progress, backend_options=backend_options, executor=ExecutorSpec(workers=max(1, workers)))
    return load_landmarks(manifest, backend, mesh=mesh)
