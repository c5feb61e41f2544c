"""Input pipeline: decode, align and crop in worker processes, ahead of the model.

Workers turn image paths into aligned uint8 crops; the main process turns crops into
model tensors (colour order, optional flip, mean/std) and runs the model, while the
workers already prepare the next chunks (``prefetch`` of them in flight). Images that
cannot be read or aligned come back with a failure status (``missing``, ``corrupt``,
``align_failed``, ...): they are failures to acquire, never dropped.

Workers are started with ``spawn``: forking a process that already runs onnxruntime
or torch thread pools can deadlock.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .alignments import get_alignment
from .data.image_record import STATUS_OK
from .data.imageio import read_image
from .errors import ImageError, MfrkitError
from .landmarks.base import Landmarks

#: Status of an image whose landmarks gave an unusable alignment.
ALIGN_FAILED = "align_failed"


@dataclass(frozen=True)
class CropRequest:
    """Everything a worker needs to crop one image (a plain record, not a
    :class:`mfrkit.jobs.Job`: the pipeline here runs on its own process pool).

    Attributes
    ----------
    path : str, absolute path of the image.
    landmarks : Landmarks or None (only the points; no dense mesh, to keep requests small).
    """

    path: str
    landmarks: Landmarks | None = None


def make_crop(request: CropRequest, align: str, size: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """Read and align one image.

    Returns
    -------
    crop : ndarray of shape (H, W, 3), uint8 RGB, or None on failure.
    status : ``"ok"`` or the failure reason.
    """
    try:
        image = read_image(request.path)
    except ImageError as exc:
        return None, exc.reason
    try:
        crop = get_alignment(align).crop(image, request.landmarks, size)
    except MfrkitError:
        return None, ALIGN_FAILED
    if crop.shape != (*size, 3) or crop.dtype != np.uint8:
        return None, ALIGN_FAILED
    return np.ascontiguousarray(crop), STATUS_OK


def crop_chunk(requests: Sequence[CropRequest], align: str, size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Crops of several images, stacked: shape (n, H, W, 3) uint8 (zeros where failed), and statuses."""
    out = np.zeros((len(requests), *size, 3), np.uint8)
    statuses = []
    for i, request in enumerate(requests):
        crop, status = make_crop(request, align, size)
        if crop is not None:
            out[i] = crop
        statuses.append(status)
    return out, statuses


def _init_worker() -> None:
    # One thread per worker: the workers themselves are the parallelism.
    import cv2

    cv2.setNumThreads(1)


def iter_crops(
    requests: Sequence[CropRequest],
    *,
    align: str,
    size: tuple[int, int],
    workers: int = 0,
    chunk_size: int = 64,
    prefetch: int | None = None,
) -> Iterator[tuple[int, np.ndarray, list[str]]]:
    """Crops of ``requests`` in order, chunk by chunk.

    Parameters
    ----------
    requests : sequence of CropRequest
    align : alignment name; size : (H, W)
    workers : int
        Worker processes; 0 runs everything in this process (tests, debugging).
    chunk_size : int
        Images per worker task.
    prefetch : int, optional
        Chunks in flight ahead of the consumer (default ``2 * workers``).

    Yields
    ------
    start : int, index in ``requests`` of the chunk's first image.
    crops : ndarray of shape (n, H, W, 3), uint8.
    statuses : list of n str.
    """
    get_alignment(align)  # unknown names fail here, not in a worker
    starts = range(0, len(requests), chunk_size)
    if workers <= 0:
        for s in starts:
            crops, statuses = crop_chunk(requests[s : s + chunk_size], align, size)
            yield s, crops, statuses
        return
    depth = max(1, prefetch if prefetch is not None else 2 * workers)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        pending: deque = deque()
        it = iter(starts)
        try:
            for s in it:
                pending.append((s, pool.submit(crop_chunk, list(requests[s : s + chunk_size]), align, size)))
                if len(pending) >= depth:
                    break
            while pending:
                s, fut = pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(crop_chunk, list(requests[nxt : nxt + chunk_size]), align, size)))
                crops, statuses = fut.result()
                yield s, crops, statuses
        finally:
            for _, fut in pending:
                fut.cancel()


def default_workers(provider: str = "cpu", n_images: int | None = None) -> int:
    """Worker processes by default.

    With the model on the GPU the CPU cores are free for decoding: all cores but one (at
    most 8). With the model on the CPU its threads already fill the cores, so a quarter
    of them (at least one) decode: on this project's 2-core machine one worker reached
    0.88 of a bare ``session.run`` loop in steady state against 0.83 decoding
    in-process (``benchmarks/bench_throughput.py``, dlib ResNet). Starting workers costs
    about half a second, which only pays off from a few thousand images: smaller jobs
    (under :data:`SMALL_JOB`) decode in-process. ``--workers`` overrides all this.
    """
    cores = os.cpu_count() or 1
    if n_images is not None and n_images < SMALL_JOB:
        return 0
    if provider == "cuda":
        return max(1, min(8, cores - 1))
    return max(1, cores // 4)


#: Below this many images the pipeline decodes in-process (starting workers costs more).
SMALL_JOB = 2000
