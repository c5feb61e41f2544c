"""Embeddings of a set of images: cache, then crop sources (:mod:`.crop_sources`), then model.

An image that cannot be used is a *failure to acquire* (FtA) with a reason: its
manifest status when that is not ``ok``, ``no_face`` / ``no_landmarks`` when the
alignment needs landmarks it lacks, ``missing`` / ``corrupt`` / ... when it cannot be
read, ``align_failed``, or ``non_finite_embedding`` when the model returns NaN, inf or
a zero vector for it. FtA images keep their row (a zero vector) and their reason; what
happens to their comparisons is the scorer's decision, never a silent drop.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ...alignments import get_alignment
from ...crops import default_workers
from ...data.image_record import ImageRecord
from ...data.manifest import STATUS_OK
from ...userfiles import user_file_sha256
from ...errors import ModelError
from ...landmarks.base import FaceResult
from ...jobs import ExecutorSpec, FolderLock
from ...model_input import to_tensor
from ...packs.pack import Pack
from .crop_sources import ActorSource, CropSource, LandmarkLookup, PackSource, PoolSource, strip
from .embedding_cache import EmbeddingCache, item_key, preprocessing_key
from ...onnx_model import OnnxModel

NO_LANDMARKS = "no_landmarks"
NON_FINITE = "non_finite_embedding"
TTA_MODES = (None, "flip")
#: Images whose landmarks are looked up at once (a lookup reads a few landmark row groups).
LOOKUP_BLOCK = 4096

@dataclass(frozen=True)
class ImageRef(ImageRecord):
    """One image to embed: an :class:`~mfrkit.data.image_record.ImageRecord` (``image_id``,
    absolute ``path``, ``sha256`` (computed from the file when None), the manifest's
    ``status``) and its landmarks.

    Attributes
    ----------
    landmarks : FaceResult or None, from the landmark cache when the alignment needs it
        (or leave None and give :func:`embed_images` a ``landmark_lookup``).
    """

    landmarks: FaceResult | None = None


@dataclass
class Embeddings:
    """Embeddings of a list of images.

    Attributes
    ----------
    ids : list of str, image ids in order.
    vectors : ndarray of shape (n, D), float32, L2-normalised (raw with ``normalise=False``
        in :func:`embed_images`); zero rows for FtA.
    status : ndarray of shape (n,), object: ``"ok"`` or the FtA reason.
    computed, cached : how many embeddings were computed now / read from the cache.
    seconds : wall time spent computing (pipeline + model), excluding cache reads.
    """

    ids: list[str]
    vectors: np.ndarray
    status: np.ndarray
    computed: int = 0
    cached: int = 0
    seconds: float = 0.0
    index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.index = {k: i for i, k in enumerate(self.ids)}

    @property
    def ok(self) -> np.ndarray:
        """Bool array of shape (n,): True where the image was embedded."""
        return self.status == STATUS_OK

    @property
    def images_per_second(self) -> float:
        """Images embedded per second of computing (NaN when none was computed)."""
        return self.computed / self.seconds if self.seconds > 0 else float("nan")

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """Row index of each id (KeyError names a missing one)."""
        return np.fromiter((self.index[i] for i in ids), dtype=np.int64, count=len(ids))

    def failures(self) -> dict[str, str]:
        """image_id -> FtA reason."""
        return {self.ids[i]: str(self.status[i]) for i in np.flatnonzero(~self.ok)}


def l2_normalise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows divided by their norm; returns (normalised, usable) where usable rows are
    finite with a norm above 1e-12 (others become zero rows)."""
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x).all(1)
    norm = np.linalg.norm(np.where(finite[:, None], x, 0.0), axis=1)
    ok = finite & (norm > 1e-12)
    out = np.zeros(x.shape, np.float32)
    out[ok] = (x[ok] / norm[ok, None]).astype(np.float32)
    return out, ok


def embed_batch(model: OnnxModel, crops: np.ndarray, tta: str | None = None) -> np.ndarray:
    """Raw (unnormalised) embeddings of aligned crops; with ``tta="flip"`` the sum of the
    crops' and their mirror images' embeddings.

    Parameters
    ----------
    crops : ndarray of shape (N, H, W, 3), uint8 RGB

    Returns
    -------
    ndarray of shape (N, D), float32
    """
    out = model.run(to_tensor(crops, model.spec))
    if tta == "flip":
        out = out + model.run(to_tensor(crops, model.spec, flip=True))
    return out


def embed_images(
    model: OnnxModel,
    images: Sequence[ImageRef],
    *,
    batch_size: int = 64,
    tta: str | None = None,
    cache_dir: str | Path | None = None,
    landmark_backend: str | None = None,
    landmark_lookup: LandmarkLookup | None = None,
    progress: Callable[[int], None] | None = None,
    executor: ExecutorSpec | None = None,
    packed: Mapping[int, tuple[Pack, int]] | None = None,
    normalise: bool = True,
) -> Embeddings:
    """Embed ``images`` with ``model``.

    Parameters
    ----------
    model : OnnxModel
    images : sequence of ImageRef (unique ids)
    batch_size : int
        Images per model call. Embeddings do not depend on it (within float rounding).
    tta : None or ``"flip"``
    cache_dir : path or None
        Embedding cache root; None disables the cache.
    landmark_backend : str or None
        Recorded in the cache key when the alignment uses landmarks.
    landmark_lookup : callable, optional
        ``(images) -> [FaceResult or None]`` for a few images at a time (at most
        :data:`LOOKUP_BLOCK`, or one pipeline chunk); when given, the images' own
        ``landmarks`` are ignored. Landmarks are looked up twice (for the cache keys,
        then per chunk for the crops) rather than held for every image.
    progress : callable(n), optional
        Called with the number of images finished.
    executor : ExecutorSpec, optional
        ``ray``: crop and embed on Ray actors holding one ONNX session each
        (:class:`~.crop_sources.ActorSource`; packs are not read then); ``local``:
        packed crops, then the spec's ``workers`` pipeline processes crop (0: in this
        process; None: :func:`~mfrkit.crops.default_workers` for the model's provider and
        the images not packed) and this process runs the model
        (:class:`~.crop_sources.PackSource`, :class:`~.crop_sources.PoolSource`). None:
        local, in this process.
    packed : mapping of position in ``images`` to (Pack, pack row), optional
        Images whose aligned crop a pack (``mfrkit pack``) already holds: read from it
        (resized to the model's input when the pack's crop is the same template at
        another size) instead of decoded and aligned. A packed crop is the bench's own
        crop of the same landmarks, so embeddings and cache entries are the same.
    normalise : bool, False: raw outputs (flip: their sum) for pooling weighted by the norm
        (IJB templates), cached under their own key, never mixed with normalised ones.

    Returns
    -------
    Embeddings
    """
    ids = _checked_request(images, tta, batch_size)
    n = len(images)
    alignment = get_alignment(model.spec.align)
    status = np.array([im.status if im.status else STATUS_OK for im in images], dtype=object)
    faces: LandmarkLookup | None = None
    if alignment.needs_landmarks:
        faces = landmark_lookup if landmark_lookup is not None else (lambda refs: [r.landmarks for r in refs])
    keys = _cache_keys(images, status, faces)
    out = _Results(model, n, status, keys, progress, normalise)
    todo = [i for i in range(n) if status[i] == STATUS_OK]
    cache_lock = None
    if cache_dir is not None:
        landmarks = landmark_backend if alignment.needs_landmarks else None
        todo, cache_lock = out.read_cache(cache_dir, todo, tta=tta, landmark_backend=landmarks)
    if progress:
        fta = n - out.cached - len(todo)
        if fta:
            progress(fta)

    model.pad_batches(batch_size)  # on CUDA: one batch shape, the last batch padded
    t0 = time.perf_counter()
    executor = pipeline_executor(executor or ExecutorSpec(workers=0), model.provider, n - len(packed or {}))
    sources = _crop_sources(images, faces, model, executor, packed, tta=tta, batch_size=batch_size)
    batches = _Batches(batch_size, lambda rows, crops: out.record(rows, embed_batch(model, crops, tta)))
    try:
        for source in sources:
            mine = source.serves(todo)
            taken = set(mine)
            todo = [i for i in todo if i not in taken]
            for chunk in source.chunks(mine):
                good = out.take_statuses(chunk.rows, chunk.statuses)
                if chunk.raw is not None:
                    out.record(np.asarray(good), chunk.raw)
                elif good:
                    batches.add(good, chunk.crops)
        batches.flush(force=True)
    finally:
        if out.cache is not None:
            out.cache.flush()
        if cache_lock is not None:
            cache_lock.release()
    return out.embeddings(ids, seconds=time.perf_counter() - t0)


def _checked_request(images: Sequence[ImageRef], tta: str | None, batch_size: int) -> list[str]:
    """The images' ids, once the request is known to make sense."""
    if tta not in TTA_MODES:
        raise ModelError(f"unknown test-time augmentation {tta!r}; choose none or flip")
    if batch_size < 1:
        raise ModelError(f"batch size must be >= 1, got {batch_size}")
    ids = [im.image_id for im in images]
    if len(set(ids)) != len(ids):
        raise ModelError("images to embed contain duplicate ids")
    return ids


def pipeline_executor(executor: ExecutorSpec, provider: str, n_images: int) -> ExecutorSpec:
    """``executor`` with a local pipeline's automatic worker count (``workers`` None)
    made definite: :func:`~mfrkit.crops.default_workers` for ``provider`` and
    ``n_images`` to crop. Any other spec (a definite count, Ray) comes back as it is."""
    if executor.kind != "local" or executor.workers is not None:
        return executor
    return dataclasses.replace(executor, workers=default_workers(provider, n_images))


def _crop_sources(images, faces, model, executor: ExecutorSpec, packed, *, tta: str | None,
                  batch_size: int) -> list[CropSource]:
    """The sources asked in turn: Ray actors for everything (``--executor ray``), else the
    pack's crops first and the local pool of ``executor.workers`` processes for the rest."""
    if executor.kind != "local":
        return [ActorSource(images, faces, model, executor, tta=tta, batch_size=batch_size)]
    sources: list[CropSource] = [PackSource(packed, model, batch_size)] if packed else []
    return sources + [PoolSource(images, faces, model, workers=executor.workers, batch_size=batch_size)]


def _cache_keys(images: Sequence[ImageRef], status: np.ndarray, faces: LandmarkLookup | None) -> list[str | None]:
    """The cache key of each image (None for a failure, whose ``status`` is set here): its
    sha256 (read from the file when the manifest has none) and, when the alignment needs
    them, its landmarks, looked up :data:`LOOKUP_BLOCK` images at a time."""
    n = len(images)
    keys: list[str | None] = [None] * n
    for start in range(0, n, LOOKUP_BLOCK):
        block = range(start, min(n, start + LOOKUP_BLOCK))
        found = faces([images[i] for i in block]) if faces is not None else [None] * len(block)
        for i, fr in zip(block, found):
            if status[i] != STATUS_OK:
                continue
            lm = None
            if faces is not None:
                if fr is None:
                    status[i] = NO_LANDMARKS
                    continue
                if fr.status != STATUS_OK or fr.landmarks is None:
                    status[i] = fr.status if fr.status != STATUS_OK else NO_LANDMARKS
                    continue
                lm = strip(fr.landmarks)
            im = images[i]
            sha = im.sha256
            if not sha:
                if not Path(im.path).is_file():
                    status[i] = "missing"
                    continue
                sha = user_file_sha256(im.path)
            keys[i] = item_key(sha, lm)
    return keys


class _Results:
    """The run's arrays being filled: vectors, statuses, counts, and the cache beside them."""

    def __init__(self, model: OnnxModel, n: int, status: np.ndarray, keys: list, progress, normalise: bool = True) -> None:
        self.model, self.n, self.status, self.keys, self.progress = model, n, status, keys, progress
        self.normalise = normalise  # False: raw outputs kept (pooling weighted by the norm)
        self.vectors = np.zeros((n, model.embedding_dim or 0), np.float32)
        self.computed = self.cached = self.bad_model = 0
        self.cache: EmbeddingCache | None = None

    def read_cache(self, cache_dir, todo: list[int], *, tta: str | None, landmark_backend: str | None):
        """Fill what the cache holds; returns (rows still to compute, the held cache lock)."""
        model = self.model
        spec = model.spec.preprocessing()
        prep = preprocessing_key(spec if self.normalise else {**spec, "raw": True}, tta=tta, landmark_backend=landmark_backend,
                                 numerics=model.numerics())
        cache = self.cache = EmbeddingCache(cache_dir, model.sha256, prep, spec={**spec, "tta": tta, "model": model.describe()})
        # One writer per cache folder at a time: two runs appending parts to the same
        # model's cache would number them alike.
        lock = FolderLock(cache.dir / ".lock", what=f"embedding cache {cache.dir}", purpose=f"bench of {model.name}").acquire()
        try:
            found, vec = cache.get([self.keys[i] for i in todo], model.embedding_dim)
        except BaseException:
            lock.release()
            raise
        if vec is not None and found.any():
            if self.vectors.shape[1] == 0:
                self.vectors = np.zeros((self.n, vec.shape[1]), np.float32)
            self.vectors[np.asarray(todo)[found]] = vec[found]
            self.cached = int(found.sum())
            todo = [i for i, f in zip(todo, found) if not f]
        if self.progress and self.cached:
            self.progress(self.cached)
        return todo, lock

    def take_statuses(self, rows: list[int], statuses: list[str]) -> list[int]:
        """Record a chunk's failures; returns its usable rows."""
        good = []
        for r, st in zip(rows, statuses):
            if st == STATUS_OK:
                good.append(r)
            else:
                self.status[r] = st
        if self.progress and len(good) < len(rows):
            self.progress(len(rows) - len(good))
        return good

    def record(self, rows: np.ndarray, raw: np.ndarray) -> None:
        """Normalise a batch's raw embeddings into the run's arrays and the cache."""
        if self.vectors.shape[1] == 0:
            self.vectors = np.zeros((self.n, raw.shape[1]), np.float32)
        if raw.shape[1] != self.vectors.shape[1]:
            raise ModelError(f"{self.model.name}: embedding dimension {raw.shape[1]} differs from the cached {self.vectors.shape[1]}")
        emb, usable = l2_normalise(raw)
        if not self.normalise:  # the same usable rows (finite, non-zero), their raw values
            emb = np.where(usable[:, None], np.nan_to_num(np.asarray(raw, np.float32)), np.float32(0))
        self.vectors[rows] = emb
        self.status[rows[~usable]] = NON_FINITE
        self.bad_model += int((~usable).sum())
        self.computed += int(usable.sum())
        if self.cache is not None and usable.any():
            self.cache.put([self.keys[r] for r in rows[usable]], emb[usable])
        if self.progress:
            self.progress(len(rows))

    def embeddings(self, ids: list[str], *, seconds: float) -> Embeddings:
        if self.bad_model and self.computed == 0 and self.cached == 0:
            raise ModelError(f"{self.model.name} returned NaN, inf or zero embeddings for all {self.bad_model} images it was given")
        vectors = self.vectors if self.vectors.shape[1] else np.zeros((self.n, self.model.embedding_dim or 1), np.float32)
        return Embeddings(ids=ids, vectors=vectors, status=self.status, computed=self.computed, cached=self.cached,
                          seconds=seconds)


class _Batches:
    """Crops gathered from the sources into model batches of ``batch_size`` (the last one
    smaller); ``run(rows, crops)`` embeds one."""

    def __init__(self, batch_size: int, run: Callable[[np.ndarray, np.ndarray], None]) -> None:
        self.batch_size, self.run = batch_size, run
        self.buf: list[np.ndarray] = []
        self.rows: list[int] = []

    def add(self, rows: list[int], crops: np.ndarray) -> None:
        self.buf.append(crops)
        self.rows.extend(rows)
        self.flush(force=False)

    def flush(self, force: bool) -> None:
        while self.rows and (force or len(self.rows) >= self.batch_size):
            crops = np.concatenate(self.buf) if len(self.buf) > 1 else self.buf[0]
            take, rest = crops[: self.batch_size], crops[self.batch_size :]
            rows = self.rows[: self.batch_size]
            del self.rows[: self.batch_size]
            self.buf.clear()
            if len(rest):
                self.buf.append(rest)
            self.run(np.asarray(rows), take)
