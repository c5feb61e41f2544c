"""Embeddings of a set of images: cache, then pipeline, then model.

An image that cannot be used is a *failure to acquire* (FtA) with a reason: its
manifest status when that is not ``ok``, ``no_face`` / ``no_landmarks`` when the
alignment needs landmarks it lacks, ``missing`` / ``corrupt`` / ... when it cannot be
read, ``align_failed``, or ``non_finite_embedding`` when the model returns NaN, inf or
a zero vector for it. FtA images keep their row (a zero vector) and their reason; what
happens to their comparisons is the scorer's decision, never a silent drop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..alignments import get_alignment
from ..data.manifest import STATUS_OK, file_sha256
from ..errors import ModelError
from ..landmarks.base import FaceResult, Landmarks
from ..jobs import ExecutorSpec, FolderLock
from ..model_input import to_tensor
from ..packs.pack import Pack
from .crops import CropJob, iter_crops
from .embedding_cache import EmbeddingCache, item_key, preprocessing_key
from .onnx_model import OnnxModel

NO_LANDMARKS = "no_landmarks"
NON_FINITE = "non_finite_embedding"
TTA_MODES = (None, "flip")
#: Images whose landmarks are looked up at once (a lookup reads a few landmark row groups).
LOOKUP_BLOCK = 4096

#: ``(images) -> landmarks``: the FaceResult (or None) of each of a few images, looked up
#: when needed (e.g. ``LandmarkStore.get``), so no step holds every image's landmarks.
LandmarkLookup = Callable[[Sequence["ImageRef"]], Sequence[FaceResult | None]]


@dataclass(frozen=True)
class ImageRef:
    """One image to embed.

    Attributes
    ----------
    image_id : str
    path : str, absolute.
    sha256 : str or None (computed from the file when None).
    status : the manifest's status for the image (``ok`` or a reason).
    landmarks : FaceResult or None, from the landmark cache when the alignment needs it
        (or leave None and give :func:`embed_images` a ``landmark_lookup``).
    """

    image_id: str
    path: str
    sha256: str | None = None
    status: str = STATUS_OK
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


def _strip(lm: Landmarks) -> Landmarks:
    # Workers need the points, not the 478-point mesh.
    return Landmarks(points5=lm.points5, points68=lm.points68, bbox=lm.bbox, score=lm.score, backend=lm.backend)


def _usable(face: FaceResult | None) -> Landmarks | None:
    return _strip(face.landmarks) if face is not None and face.status == STATUS_OK and face.landmarks is not None else None


class _CropJobs(Sequence):
    """The crop jobs of ``images[todo]``, made chunk by chunk as the pipeline slices them:
    a chunk's landmarks are looked up then, so they are never all held at once."""

    def __init__(self, images: Sequence[ImageRef], todo: list[int], faces: LandmarkLookup | None) -> None:
        self.images, self.todo, self.faces = images, todo, faces

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, index):
        if not isinstance(index, slice):
            i = range(len(self))[index]  # IndexError out of range
            return self[i : i + 1][0]
        refs = [self.images[i] for i in self.todo[index]]
        faces = self.faces(refs) if self.faces is not None else [None] * len(refs)
        return [CropJob(r.path, _usable(f)) for r, f in zip(refs, faces)]


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
    workers: int = 0,
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
    workers : int
        Pipeline worker processes (0: in this process).
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
        (:mod:`.embed_job`); None or ``local``: the streaming pipeline of this module
        (``workers`` processes crop, this process runs the model).
    packed : mapping of position in ``images`` to (Pack, pack row), optional
        Images whose aligned crop a pack (``mfrkit pack``) already holds: read from it
        (resized to the model's input when the pack's crop is the same template at
        another size) instead of decoded and aligned. A packed crop is the bench's own
        crop of the same landmarks, so embeddings and cache entries are the same.
    normalise : bool
        L2-normalise the embeddings (the default). False keeps the model's raw outputs
        (the flip test's sum with ``tta="flip"``), for pooling that weights a face by its
        embedding norm (insightface's IJB templates); they are cached under their own
        preprocessing key, never mixed with normalised ones.

    Returns
    -------
    Embeddings
    """
    if tta not in TTA_MODES:
        raise ModelError(f"unknown test-time augmentation {tta!r}; choose none or flip")
    if batch_size < 1:
        raise ModelError(f"batch size must be >= 1, got {batch_size}")
    n = len(images)
    ids = [im.image_id for im in images]
    if len(set(ids)) != n:
        raise ModelError("images to embed contain duplicate ids")
    alignment = get_alignment(model.spec.align)
    status = np.array([im.status if im.status else STATUS_OK for im in images], dtype=object)
    faces: LandmarkLookup | None = None
    if alignment.needs_landmarks:
        faces = landmark_lookup if landmark_lookup is not None else (lambda refs: [r.landmarks for r in refs])
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
                lm = _strip(fr.landmarks)
            im = images[i]
            sha = im.sha256
            if not sha:
                if not Path(im.path).is_file():
                    status[i] = "missing"
                    continue
                sha = file_sha256(im.path)
            keys[i] = item_key(sha, lm)

    dim = model.embedding_dim
    vectors = np.zeros((n, dim or 0), np.float32)
    todo = [i for i in range(n) if status[i] == STATUS_OK]
    cached = 0
    cache = None
    cache_lock = None
    if cache_dir is not None:
        spec = model.spec.preprocessing()
        prep = preprocessing_key(spec if normalise else {**spec, "raw": True}, tta=tta,
                                 landmark_backend=landmark_backend if alignment.needs_landmarks else None)
        cache = EmbeddingCache(cache_dir, model.sha256, prep, spec={**spec, "tta": tta, "model": model.describe()})
        # One writer per cache folder at a time: two runs appending parts to the same
        # model's cache would number them alike.
        cache_lock = FolderLock(cache.dir / ".lock", what=f"embedding cache {cache.dir}", purpose=f"bench of {model.name}").acquire()
        try:
            found, vec = cache.get([keys[i] for i in todo], dim)
        except BaseException:
            cache_lock.release()
            raise
        if vec is not None and found.any():
            if vectors.shape[1] == 0:
                vectors = np.zeros((n, vec.shape[1]), np.float32)
            rows = np.asarray(todo)[found]
            vectors[rows] = vec[found]
            cached = int(found.sum())
            todo = [i for i, f in zip(todo, found) if not f]
        if progress and cached:
            progress(cached)
    if progress:
        fta = n - cached - len(todo)
        if fta:
            progress(fta)

    t0 = time.perf_counter()
    computed = 0
    bad_model = 0
    jobs = _CropJobs(images, todo, faces)
    buf: list[np.ndarray] = []
    buf_rows: list[int] = []

    def record(rows_arr: np.ndarray, raw: np.ndarray) -> None:
        """Normalise a batch's raw embeddings into the run's arrays and the cache."""
        nonlocal vectors, computed, bad_model
        if vectors.shape[1] == 0:
            vectors = np.zeros((n, raw.shape[1]), np.float32)
        if raw.shape[1] != vectors.shape[1]:
            raise ModelError(f"{model.name}: embedding dimension {raw.shape[1]} differs from the cached {vectors.shape[1]}")
        emb, usable = l2_normalise(raw)
        if not normalise:  # the same usable rows (finite, non-zero), their raw values
            emb = np.where(usable[:, None], np.nan_to_num(np.asarray(raw, np.float32)), np.float32(0))
        vectors[rows_arr] = emb
        status[rows_arr[~usable]] = NON_FINITE
        bad_model += int((~usable).sum())
        computed += int(usable.sum())
        if cache is not None and usable.any():
            cache.put([keys[r] for r in rows_arr[usable]], emb[usable])
        if progress:
            progress(len(rows_arr))

    def flush(force: bool) -> None:
        while buf_rows and (force or len(buf_rows) >= batch_size):
            crops = np.concatenate(buf) if len(buf) > 1 else buf[0]
            take, rest = crops[:batch_size], crops[batch_size:]
            rows = buf_rows[:batch_size]
            del buf_rows[:batch_size]
            buf.clear()
            if len(rest):
                buf.append(rest)
            record(np.asarray(rows), embed_batch(model, take, tta))

    try:
        if executor is not None and executor.kind != "local":
            from .embed_job import embed_on_executor

            for positions, statuses, raw in embed_on_executor(model, jobs, executor, tta=tta, batch_size=batch_size):
                failed = [todo[p] for p, st in zip(positions, statuses) if st != STATUS_OK]
                for p, st in zip(positions, statuses):
                    if st != STATUS_OK:
                        status[todo[p]] = st
                if progress and failed:
                    progress(len(failed))
                if raw is not None:
                    record(np.asarray([todo[p] for p, st in zip(positions, statuses) if st == STATUS_OK]), raw)
        else:
            size = model.spec.input_size
            if packed:
                # Crops the pack holds go first, batch by batch, with no decoding at all.
                from_pack = [i for i in todo if i in packed]
                for start in range(0, len(from_pack), batch_size):
                    rows = from_pack[start : start + batch_size]
                    buf.append(np.stack([packed[i][0].crop(packed[i][1], model.spec.align, size) for i in rows]))
                    buf_rows.extend(rows)
                    flush(False)
                todo = [i for i in todo if i not in packed]
                jobs = _CropJobs(images, todo, faces)
            for start, crops, statuses in iter_crops(jobs, align=model.spec.align, size=size, workers=workers, chunk_size=batch_size):
                good = [j for j, st in enumerate(statuses) if st == STATUS_OK]
                for j, st in enumerate(statuses):
                    if st != STATUS_OK:
                        status[todo[start + j]] = st
                if progress and len(good) < len(statuses):
                    progress(len(statuses) - len(good))
                if good:
                    buf.append(crops[good] if len(good) < len(crops) else crops)
                    buf_rows.extend(todo[start + j] for j in good)
                    flush(False)
            flush(True)
    finally:
        if cache is not None:
            cache.flush()
        if cache_lock is not None:
            cache_lock.release()
    seconds = time.perf_counter() - t0
    if bad_model and computed == 0 and cached == 0:
        raise ModelError(f"{model.name} returned NaN, inf or zero embeddings for all {bad_model} images it was given")
    if vectors.shape[1] == 0:
        vectors = np.zeros((n, dim or 1), np.float32)
    return Embeddings(ids=ids, vectors=vectors, status=status, computed=computed, cached=cached, seconds=seconds)
