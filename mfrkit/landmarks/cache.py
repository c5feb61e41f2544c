"""Landmark cache: detect once per dataset and backend, reuse in every later stage.

The cache is a side file beside the manifest, ``landmarks.<backend>.parquet``, one row
per image: ``image_id``, ``sha256`` (of the image the landmarks came from; a changed
image is detected again), ``status`` (``ok``, ``no_face`` or the image's failure
reason), ``n_faces``, ``score``, ``bbox`` (4), ``points5`` (10), ``points68`` (136 or
null), ``mesh`` (478*3 or null). All coordinates are pixels of the original image.

Detection is resumable: work is written in atomic shards
(``landmarks.<backend>.parts/part-*.parquet``) that are merged at the end, so an
interrupted run keeps what it finished.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path
from ..data.imageio import read_image
from ..data.manifest import STATUS_OK, Manifest, file_sha256
from ..errors import ImageError, ManifestError
from .base import FaceResult, Landmarks, create_backend, detect_primary

_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("sha256", pa.string()),
        ("status", pa.string()),
        ("n_faces", pa.int32()),
        ("score", pa.float32()),
        ("bbox", pa.list_(pa.float32())),
        ("points5", pa.list_(pa.float32())),
        ("points68", pa.list_(pa.float32())),
        ("mesh", pa.list_(pa.float32())),
    ]
)


def cache_path(manifest: Manifest, backend: str) -> Path:
    """Where the landmarks of ``manifest`` by ``backend`` are cached."""
    if manifest.path is None:
        raise ManifestError("write the manifest before caching landmarks (it has no path)")
    return manifest.path.parent / f"landmarks.{backend}.parquet"


def _row(image_id: str, sha256: str | None, result: FaceResult) -> dict:
    lm = result.landmarks
    flat = lambda a: None if a is None else np.asarray(a, dtype=np.float32).ravel().tolist()  # noqa: E731
    return {
        "image_id": image_id,
        "sha256": sha256,
        "status": result.status,
        "n_faces": result.n_faces,
        "score": None if lm is None else float(lm.score),
        "bbox": None if lm is None else flat(lm.bbox),
        "points5": None if lm is None else flat(lm.points5),
        "points68": None if lm is None else flat(lm.points68),
        "mesh": None if lm is None else flat(lm.mesh),
    }


def row_to_result(row, backend: str) -> FaceResult:
    """Turn a cache row (mapping) back into a :class:`FaceResult`."""
    if row["status"] != STATUS_OK:
        return FaceResult(status=str(row["status"]), n_faces=int(row["n_faces"] or 0))
    arr = lambda v, shape: None if v is None else np.asarray(v, dtype=np.float32).reshape(shape)  # noqa: E731
    lm = Landmarks(
        points5=arr(row["points5"], (5, 2)),
        points68=arr(row["points68"], (68, 2)),
        bbox=arr(row["bbox"], (4,)),
        score=float("nan") if row["score"] is None else float(row["score"]),
        backend=backend,
        mesh=arr(row["mesh"], (-1, 3)),
    )
    return FaceResult(status=STATUS_OK, landmarks=lm, n_faces=int(row["n_faces"]))


# One backend per worker process, created by the pool initializer.
_WORKER: dict = {}


def _init_worker(backend: str, options: dict) -> None:
    _WORKER["backend"] = create_backend(backend, **options)


def _detect_chunk(items: list[tuple[str, str, str | None]]) -> list[dict]:
    backend = _WORKER["backend"]
    rows = []
    for image_id, path, sha in items:
        try:
            image = read_image(path)
        except ImageError as exc:
            rows.append(_row(image_id, sha, FaceResult(status=exc.reason)))
            continue
        rows.append(_row(image_id, sha, detect_primary(backend, image, image_id=image_id)))
    return rows


def _read_rows(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def _write_rows(rows: list[dict], path: Path, options_key: str) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=_SCHEMA.with_metadata({_OPTIONS_META: options_key})), tmp)


#: Parquet metadata key under which a cache file records the backend options it was made with.
_OPTIONS_META = b"mfrkit_backend_options"
_DEFAULT_OPTIONS = "{}"


def _options_key(options: dict) -> str:
    """What a backend's results depend on besides the image: its options, a landmark
    file by its content (a corrected file must not be served the old file's landmarks)."""

    def value(name, v):
        return f"sha256:{file_sha256(v)}" if name == "path" and Path(str(v)).is_file() else v

    return json.dumps({k: value(k, v) for k, v in options.items()}, sort_keys=True, default=str)


def _recorded_options(path: Path) -> str:
    """The options key a cache file was made with (files without one: default options)."""
    raw = (pq.read_schema(path).metadata or {}).get(_OPTIONS_META)
    return raw.decode() if raw else _DEFAULT_OPTIONS


@dataclass
class LandmarkSummary:
    """Counts after a detection run: images per status, and how many were new."""

    backend: str
    path: Path
    counts: dict
    detected: int
    reused: int


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
    Results do not depend on ``workers``: each image is processed independently.

    ``backend_options`` given (even ``{}``) must match those the cache was made with, a
    landmark file compared by content, or everything is detected again; None reuses
    whatever is cached (readers such as ``bench`` that do not know the options).
    """
    from ..progress import progress_bar

    options = dict(backend_options or {})
    final = cache_path(manifest, backend)
    parts_dir = final.with_suffix(".parts")
    wanted = None if backend_options is None else _options_key(options)
    existing = []
    for part in sorted(parts_dir.glob("part-*.parquet")) if parts_dir.exists() else []:
        if wanted is None or _recorded_options(part) == wanted:
            existing.append(part)
        else:
            part.unlink()  # left by an interrupted run with other options
    recorded = _recorded_options(final) if final.exists() else None
    key = wanted or recorded or _DEFAULT_OPTIONS
    cached = _read_rows(final) if recorded is not None and recorded == key else None
    frames = ([cached] if cached is not None else []) + [_read_rows(p) for p in existing]
    done: dict[str, str | None] = {}
    if frames:
        previous = pd.concat(frames, ignore_index=True).drop_duplicates("image_id", keep="last")
        done = dict(zip(previous["image_id"], previous["sha256"]))
    table = manifest.table
    shas = table["sha256"] if "sha256" in table.columns else pd.Series([None] * len(table))
    todo, failed_rows = [], []
    for image_id, rel, status, sha in zip(table["image_id"], table["path"], table["status"], shas):
        sha = None if pd.isna(sha) else str(sha)
        if image_id in done and done[image_id] == sha:
            continue
        if status != STATUS_OK:
            failed_rows.append(_row(image_id, sha, FaceResult(status=str(status))))
        else:
            todo.append((image_id, str(manifest.abspath(rel)), sha))
    reused = len(table) - len(todo) - len(failed_rows)
    part_no = itertools.count(int(existing[-1].stem.split("-")[1]) + 1 if existing else 0)
    chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
    if failed_rows:
        _write_rows(failed_rows, parts_dir / f"part-{next(part_no):06d}.parquet", key)
    with progress_bar(len(todo), f"landmarks ({backend})", enabled=progress and bool(todo)) as advance:
        if not chunks:
            results, pool = iter(()), None
        elif workers <= 1 or len(chunks) <= 1:
            _init_worker(backend, options)
            results = map(_detect_chunk, chunks)
            pool = None
        else:
            # Spawn, not fork: a child forked from a parent that already runs mediapipe crashes.
            context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(backend, options))
            results = pool.map(_detect_chunk, chunks)
        try:
            for rows in results:
                _write_rows(rows, parts_dir / f"part-{next(part_no):06d}.parquet", key)
                advance(len(rows))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    if cached is not None and not parts_dir.exists():
        merged = cached  # everything was cached: nothing to merge, no file to rewrite
    else:
        merged = _merge(final, cached, parts_dir, table["image_id"], key)
    merged = merged[merged["image_id"].isin(set(table["image_id"]))]
    counts = {str(k): int(v) for k, v in merged["status"].value_counts().items()}
    return LandmarkSummary(backend=backend, path=final, counts=counts, detected=len(todo), reused=reused)


def _merge(final: Path, cached: pd.DataFrame | None, parts_dir: Path, image_ids: pd.Series, options_key: str) -> pd.DataFrame:
    """Fold the shards into ``final`` (whose rows were read as ``cached``, None when
    they are to be replaced); the merged rows."""
    frames = [cached] if cached is not None else []
    if parts_dir.exists():
        frames += [_read_rows(p) for p in sorted(parts_dir.glob("part-*.parquet"))]
    if not frames:
        _write_rows([], final, options_key)
        return _read_rows(final)
    merged = pd.concat(frames, ignore_index=True).drop_duplicates("image_id", keep="last")
    # Manifest order first; rows of images outside this manifest (a caller may pass a
    # subset) are kept after them, never dropped.
    rank = pd.Series(range(len(image_ids)), index=pd.Index(image_ids))
    position = merged["image_id"].map(rank).fillna(len(image_ids)).to_numpy()
    merged = merged.iloc[np.argsort(position, kind="stable")]
    schema = _SCHEMA.with_metadata({_OPTIONS_META: options_key})
    with atomic_path(final) as tmp:
        pq.write_table(pa.Table.from_pandas(merged, schema=schema, preserve_index=False), tmp)
    if parts_dir.exists():
        shutil.rmtree(parts_dir)
    return merged


def load_landmarks(manifest: Manifest, backend: str) -> dict[str, FaceResult]:
    """The cached landmarks of ``manifest`` by ``backend``, by image_id (no detection).

    Raises ManifestError when nothing is cached yet.
    """
    path = cache_path(manifest, backend)
    if not path.exists():
        raise ManifestError(f"no {backend} landmarks cached for {manifest.name or manifest.path}; run: mfrkit landmarks {manifest.path} --backend {backend}")
    frame = _read_rows(path)
    return {r["image_id"]: row_to_result(r, backend) for r in frame.to_dict("records")}


def cached_counts(manifest: Manifest) -> dict[str, dict[str, int]]:
    """Images of ``manifest`` per landmark status, for every backend cached beside it
    (``{backend: {status: images}}``; what data cards report). Nothing is detected."""
    if manifest.path is None:
        return {}
    ids = set(manifest.table["image_id"])
    counts: dict[str, dict[str, int]] = {}
    for path in sorted(manifest.path.parent.glob("landmarks.*.parquet")):
        backend = path.name[len("landmarks.") : -len(".parquet")]
        rows = pq.read_table(path, columns=["image_id", "status"]).to_pandas()
        # The cache may hold images of a larger manifest (see _merge): count this one's.
        status = rows.loc[rows["image_id"].isin(ids), "status"].value_counts()
        counts[backend] = {str(k): int(v) for k, v in sorted(status.items())}
    return counts


def get_landmarks(manifest: Manifest, backend: str, *, workers: int = 1, progress: bool = False, backend_options: dict | None = None) -> dict[str, FaceResult]:
    """Landmarks for every image of ``manifest``, detecting what is not cached yet."""
    detect_landmarks(manifest, backend, workers=workers, progress=progress, backend_options=backend_options)
    return load_landmarks(manifest, backend)
