"""Scoring ONNX face-recognition models on protocols.

The files follow the data flow of a run:

==================  =====================================================================
``onnx_model``      a validated onnxruntime session for one model (provider, I/O checks)
``crops``           decode, align and crop images in worker processes, ahead of the model
``embed``           crops -> L2-normalised embeddings, with failures to acquire kept
``embedding_cache`` embeddings cached by model, image and preprocessing
``images``          the images a run needs, across the protocols' manifests
``protocol_io``     protocols as the bench reads them
``search``          1:1 pair scores and blocked 1:N top-k search (numpy or torch)
``metrics``         pure metric functions (ROC, TAR@FAR, EER, k-fold accuracy, CMC, ...)
``evaluate``        the metrics of one model on one protocol, with breakdowns
``benchmark``       a whole run: models x protocols -> run folder
``results``         run-folder files (strict JSON, CSV)
``plots``           ROC, DET and CMC plots
``leaderboard``     one row per (model, protocol) gathered from run folders
==================  =====================================================================

The public names below are imported lazily (``from mfrkit.bench import run_benchmark``),
so importing :mod:`mfrkit.bench` costs nothing until one is used.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "BenchConfig": "benchmark",
    "BenchError": "benchmark",
    "BenchRun": "benchmark",
    "run_benchmark": "benchmark",
    "OnnxModel": "onnx_model",
    "ModelSet": "onnx_model",
    "load_models": "onnx_model",
    "select_providers": "onnx_model",
    "ImageRef": "embed",
    "Embeddings": "embed",
    "embed_images": "embed",
    "l2_normalise": "embed",
    "EmbeddingCache": "embedding_cache",
    "pair_scores": "search",
    "topk_search": "search",
    "collect_leaderboard": "leaderboard",
    "write_leaderboard": "leaderboard",
    "read_result": "results",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
