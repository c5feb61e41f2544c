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
``streaming``       all-pairs scoring in tiles (numpy or torch), never the full matrix
``binned_scores``   exact metrics from binned impostor scores plus a few exact bins
``metrics``         pure metric functions (ROC, TAR@FAR, EER, k-fold accuracy, CMC, ...),
                    two rule sets (``mfrkit``, ``insightface``)
``evaluate``        the metrics of one model on one protocol, with breakdowns
``all_pairs``       the metrics of one model on an all-pairs protocol
``benchmark``       a whole run: models x protocols -> run folder
``results``         run-folder files (strict JSON, CSV)
``embeddings_file`` ``embeddings.parquet``: a run's embeddings, to recheck it
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
    "OnnxModel": "..onnx_model",
    "ModelSet": "..onnx_model",
    "load_models": "..onnx_model",
    "select_providers": "..onnx_model",
    "ImageRef": "embed.pipeline",
    "Embeddings": "embed.pipeline",
    "embed_images": "embed.pipeline",
    "l2_normalise": "embed.pipeline",
    "EmbeddingCache": "embed.embedding_cache",
    "pair_scores": "score.search",
    "topk_search": "score.search",
    "score_all_pairs": "score.streaming",
    "Side": "score.streaming",
    "View": "score.streaming",
    "ScanOptions": "score.streaming",
    "BinnedScores": "score.binned_scores",
    "ScoreBins": "score.binned_scores",
    "evaluate_all_pairs": "all_pairs",
    "RULE_SETS": "metrics",
    "save_embeddings": "embed.embeddings_file",
    "read_embeddings": "embed.embeddings_file",
    "collect_leaderboard": "leaderboard",
    "write_leaderboard": "leaderboard",
    "read_result": "results",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        where = _PUBLIC[name]
        return getattr(importlib.import_module(where if where.startswith(".") else f".{where}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
