"""The bench's embedding step as a job: crop and embed on a pool of executor workers,
each holding its own ONNX session (``--executor ray``).

On one machine the bench embeds with the streaming pipeline of :mod:`.pipeline` (workers
crop, the main process runs the model with every core or the GPU). On a Ray cluster each
actor opens the model once (with ``num_gpus=1`` when the CUDA provider is requested and
the cluster has GPUs), crops its chunk of images and returns the raw embeddings; the
driver normalises them, fills the embedding cache and the run's arrays exactly as the
local pipeline does. Sharded over images; results come back as they finish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ...jobs import ExecutorSpec, Item, Job
from ...crops import CropRequest, crop_chunk

#: Images per chunk sent to an actor.
CHUNK = 256


@dataclass(frozen=True, slots=True)
class EmbedItem(Item):
    """One image to crop and embed (``key`` is its row in the caller's list)."""

    crop: CropRequest | None = None


class EmbedJob(Job):
    """Crop and embed images with one model; see the module docstring.

    The model is opened in each worker from its path and the same options the driver
    used, so every worker feeds it the same tensors.
    """

    kind = "embed"
    chunk_size = CHUNK

    def __init__(self, model, *, tta: str | None, batch_size: int) -> None:
        self.model_path = str(model.path)
        self.provider = model.provider
        self.options = dict(getattr(model, "options", None) or {})
        self.sidecar = getattr(model, "sidecar", None)
        self.threads = getattr(model, "threads", 0)
        self.cuda = getattr(model, "cuda_options", None)  # TF32 and the rest: the cache key names them
        self.align = model.spec.align
        self.size = tuple(model.spec.input_size)
        self.tta = tta
        self.batch_size = batch_size

    def ray_resources(self) -> dict:
        """One CPU per actor; one GPU too when the model runs on CUDA and the cluster has GPUs."""
        import ray

        if self.provider == "cuda" and ray.cluster_resources().get("GPU", 0) >= 1:
            return {"num_cpus": 1, "num_gpus": 1}
        return {"num_cpus": 1}

    def open_worker(self) -> Any:
        from ...onnx_model import OnnxModel

        model = OnnxModel(self.model_path, provider=self.provider, sidecar=self.sidecar, options=self.options,
                          threads=self.threads, cuda=self.cuda)
        model.pad_batches(self.batch_size)
        return model

    def run_chunk(self, items: Sequence[EmbedItem], state: Any) -> list[list[dict]]:
        from .pipeline import embed_batch

        crops, statuses = crop_chunk([it.crop for it in items], self.align, self.size)
        good = [j for j, st in enumerate(statuses) if st == "ok"]
        raw: np.ndarray | None = None
        if good:
            parts = [embed_batch(state, crops[good][s : s + self.batch_size], self.tta) for s in range(0, len(good), self.batch_size)]
            raw = np.concatenate(parts)
        out: list[list[dict]] = []
        k = 0
        for j, st in enumerate(statuses):
            if st == "ok":
                out.append([{"status": st, "raw": raw[k]}])
                k += 1
            else:
                out.append([{"status": st, "raw": None}])
        return out


def embed_on_executor(model, jobs: Sequence[CropRequest], executor: ExecutorSpec, *, tta: str | None, batch_size: int) -> Iterator[tuple[list[int], list[str], np.ndarray | None]]:
    """Raw embeddings of ``jobs`` computed by ``executor``'s workers, chunk by chunk.

    Yields
    ------
    positions : list of int, indices in ``jobs`` of the chunk's images.
    statuses : list of str, ``ok`` or the failure to acquire.
    raw : ndarray of shape (n_ok, D), float32, or None; rows of the ``ok`` images in order.
    """
    job = EmbedJob(model, tta=tta, batch_size=batch_size)
    starts = range(0, len(jobs), CHUNK)

    def chunks():
        for s in starts:
            yield [EmbedItem(key=str(s + j), crop=c) for j, c in enumerate(jobs[s : s + CHUNK])]

    with executor.create() as ex:
        for chunk, rows in ex.run(job, chunks()):
            positions = [int(it.key) for it in chunk]
            statuses = [r[0]["status"] for r in rows]
            vecs = [r[0]["raw"] for r in rows if r[0]["raw"] is not None]
            yield positions, statuses, (np.stack(vecs).astype(np.float32) if vecs else None)
