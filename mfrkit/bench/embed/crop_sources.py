"""Where the crops of the images to embed come from: one small interface, three sources.

A source serves some of the images the pipeline must embed (``rows``: positions in its
list of :class:`~mfrkit.bench.embed.pipeline.ImageRef`) and yields :class:`Chunk`\\s:
each row's status (``ok`` or the failure to acquire) and, for the usable rows, either
their aligned crops (the pipeline runs the model on them, in batches) or their raw
embeddings when the source ran the model itself.

===============  ====================================================================
``PackSource``   crops a pack (``mfrkit pack``) already holds: read, never decoded
``PoolSource``   decode and align here or in local worker processes (``workers``)
``ActorSource``  crop and embed on an executor's workers (Ray actors), each holding
                 its own ONNX session (:mod:`.actors`)
===============  ====================================================================

The pipeline asks each source in turn for what it serves of the images still to do,
so adding a source (RecordIO records, say) is one class here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Protocol, Sequence

import numpy as np

from ...crops import STATUS_OK, CropRequest, iter_crops
from ...landmarks.base import FaceResult, Landmarks

if TYPE_CHECKING:
    from ...jobs import ExecutorSpec
    from ...onnx_model import OnnxModel
    from ...packs.pack import Pack
    from .pipeline import ImageRef

#: ``(images) -> landmarks``: the FaceResult (or None) of each of a few images, looked up
#: when needed (e.g. ``LandmarkStore.get``), so no step holds every image's landmarks.
LandmarkLookup = Callable[[Sequence["ImageRef"]], Sequence["FaceResult | None"]]


@dataclass(frozen=True)
class Chunk:
    """What a source gives back for some of its rows.

    Attributes
    ----------
    rows : list of int, positions in the pipeline's list of images.
    statuses : list of str, ``ok`` or the failure to acquire, one per row.
    crops : ndarray of shape (n_ok, H, W, 3), uint8 RGB, or None: the ``ok`` rows' crops in order.
    raw : ndarray of shape (n_ok, D), float32, or None: the ``ok`` rows' raw embeddings, when
        the source ran the model.
    """

    rows: list[int]
    statuses: list[str]
    crops: np.ndarray | None = None
    raw: np.ndarray | None = None


class CropSource(Protocol):
    """A source of crops (or of embeddings) for the pipeline."""

    def serves(self, rows: list[int]) -> list[int]:
        """The rows (in order) this source gives crops for."""
        ...

    def chunks(self, rows: list[int]) -> Iterator[Chunk]:
        """Chunks covering ``rows`` (as returned by :meth:`serves`), each row once."""
        ...


def strip(lm: Landmarks) -> Landmarks:
    """The points of some landmarks (workers need them, not the 478-point mesh)."""
    return Landmarks(points5=lm.points5, points68=lm.points68, bbox=lm.bbox, score=lm.score, backend=lm.backend)


def _usable(face: FaceResult | None) -> Landmarks | None:
    return strip(face.landmarks) if face is not None and face.status == STATUS_OK and face.landmarks is not None else None


class CropRequests(Sequence):
    """The crop requests of ``images[rows]``, made chunk by chunk as a source slices them:
    a chunk's landmarks are looked up then, so they are never all held at once."""

    def __init__(self, images: Sequence[ImageRef], rows: list[int], faces: LandmarkLookup | None) -> None:
        self.images, self.rows, self.faces = images, rows, faces

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if not isinstance(index, slice):
            i = range(len(self))[index]  # IndexError out of range
            return self[i : i + 1][0]
        refs = [self.images[i] for i in self.rows[index]]
        faces = self.faces(refs) if self.faces is not None else [None] * len(refs)
        return [CropRequest(r.path, _usable(f)) for r, f in zip(refs, faces)]


class PackSource:
    """Crops a pack holds (``packed``: row -> (Pack, pack row)), resized to the model's
    input when the pack's crop is the same template at another size; a packed crop is
    the bench's own crop of the same landmarks."""

    def __init__(self, packed: Mapping[int, tuple[Pack, int]], model: OnnxModel, batch_size: int) -> None:
        self.packed, self.model, self.batch_size = packed, model, batch_size

    def serves(self, rows: list[int]) -> list[int]:
        return [i for i in rows if i in self.packed]

    def chunks(self, rows: list[int]) -> Iterator[Chunk]:
        spec = self.model.spec
        for start in range(0, len(rows), self.batch_size):
            part = rows[start : start + self.batch_size]
            crops = np.stack([self.packed[i][0].crop(self.packed[i][1], spec.align, spec.input_size) for i in part])
            yield Chunk(part, [STATUS_OK] * len(part), crops=crops)


class PoolSource:
    """Decode and align with :func:`mfrkit.crops.iter_crops`: ``workers`` processes (0: in
    this one), chunks of ``batch_size`` images, the next chunks prepared while the model runs."""

    def __init__(self, images: Sequence[ImageRef], faces: LandmarkLookup | None, model: OnnxModel, *, workers: int,
                 batch_size: int) -> None:
        self.images, self.faces, self.model = images, faces, model
        self.workers, self.batch_size = workers, batch_size

    def serves(self, rows: list[int]) -> list[int]:
        return list(rows)

    def chunks(self, rows: list[int]) -> Iterator[Chunk]:
        jobs = CropRequests(self.images, rows, self.faces)
        spec = self.model.spec
        for start, crops, statuses in iter_crops(jobs, align=spec.align, size=spec.input_size, workers=self.workers,
                                                 chunk_size=self.batch_size):
            good = [j for j, st in enumerate(statuses) if st == STATUS_OK]
            ok = None if not good else (crops[good] if len(good) < len(crops) else crops)
            yield Chunk(rows[start : start + len(statuses)], list(statuses), crops=ok)


class ActorSource:
    """Crop and embed on ``executor``'s workers (:func:`.actors.embed_on_executor`): the
    chunks come back with raw embeddings, in the order they finish."""

    def __init__(self, images: Sequence[ImageRef], faces: LandmarkLookup | None, model: OnnxModel,
                 executor: ExecutorSpec, *, tta: str | None, batch_size: int) -> None:
        self.images, self.faces, self.model, self.executor = images, faces, model, executor
        self.tta, self.batch_size = tta, batch_size

    def serves(self, rows: list[int]) -> list[int]:
        return list(rows)

    def chunks(self, rows: list[int]) -> Iterator[Chunk]:
        from .actors import embed_on_executor

        jobs = CropRequests(self.images, rows, self.faces)
        for positions, statuses, raw in embed_on_executor(self.model, jobs, self.executor, tta=self.tta,
                                                          batch_size=self.batch_size):
            yield Chunk([rows[p] for p in positions], list(statuses), raw=raw)
