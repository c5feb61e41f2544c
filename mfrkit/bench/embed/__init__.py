"""The embed stage: images -> L2-normalised embeddings, failures to acquire kept.

===================  ==================================================================
``images``           the images a run needs across the protocols' manifests (uids), and
                     the uids each protocol uses by side (:class:`Sides`)
``model_set``        the stage of a run: every needed image, once per side of a model set
``pipeline``         :func:`embed_images`: cache keys, cache, crop sources, model batches
``crop_sources``     one interface behind the pack, the local pool and the Ray actors
``actors``           crop + embed as a job on executor workers (Ray), one ONNX session each
``embedding_cache``  embeddings cached by model, image (and landmarks) and preprocessing
``embeddings_file``  ``embeddings.parquet``: a run's embeddings, to recheck it
===================  ==================================================================

The ONNX model itself is :class:`mfrkit.onnx_model.OnnxModel` (training's teachers run it
too); crops are made by :func:`mfrkit.crops.make_crop` (shared with packs and the report).
Names are imported on first use (``from mfrkit.bench.embed import embed_images``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ImageTable": "images",
    "Sides": "images",
    "MISSING_UID": "images",
    "EmbedOptions": "model_set",
    "embed_model_set": "model_set",
    "ImageRef": "pipeline",
    "Embeddings": "pipeline",
    "embed_images": "pipeline",
    "embed_batch": "pipeline",
    "l2_normalise": "pipeline",
    "CropSource": "crop_sources",
    "Chunk": "crop_sources",
    "PackSource": "crop_sources",
    "PoolSource": "crop_sources",
    "ActorSource": "crop_sources",
    "EmbeddingCache": "embedding_cache",
    "save_embeddings": "embeddings_file",
    "read_embeddings": "embeddings_file",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
