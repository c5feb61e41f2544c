"""Scoring ONNX face-recognition models on protocols, as the stages of a run.

The sub-packages follow the data flow of ``mfrkit bench``:

==================  =====================================================================
``protocol_io``     ``--protocol`` / ``--manifest`` resolved by :mod:`mfrkit.protocols`
``embed/``          images -> L2-normalised embeddings (ONNX model, one crop-source
                    interface behind pack / local pool / Ray actors, the cache,
                    ``embeddings.parquet``); FtA kept
``score/``          embeddings -> scores: 1:1 pair scores, blocked 1:N top-k search,
                    all-pairs streamed in tiles into exact binned scores
``metrics/``        scores -> metrics: pure functions (ROC, TAR@FAR, EER, k-fold accuracy,
                    CMC, TPIR@FPIR, intervals) by two rule sets (``mfrkit``, ``insightface``)
``evaluators/``     one evaluator per protocol kind (pairs, all-pairs, identification) in
                    :data:`~mfrkit.bench.evaluators.EVALUATORS`: a protocol's scores,
                    metrics and files; the threshold transfer
``results/``        :class:`~mfrkit.bench.results.RunResult` (``metrics.json``, written and
                    read in one module), strict JSON / CSV, PNG plots
``report/``         the leaderboard, the comparison table and the HTML report
``benchmark``       :func:`run_benchmark`: a whole run, models x protocols -> run folder
==================  =====================================================================

The ONNX model (:mod:`mfrkit.onnx_model`) and the crops (:mod:`mfrkit.crops`) sit below
bench: packs and training use them too. The public names below are imported lazily
(``from mfrkit.bench import run_benchmark``), so importing :mod:`mfrkit.bench` costs
nothing until one is used.
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
    "evaluate_all_pairs": "evaluators.all_pairs",
    "AllPairsOptions": "evaluators.all_pairs",
    "AllPairsSide": "evaluators.all_pairs",
    "EVALUATORS": "evaluators",
    "RunResult": "results",
    "RULE_SETS": "metrics",
    "save_embeddings": "embed.embeddings_file",
    "read_embeddings": "embed.embeddings_file",
    "collect_leaderboard": "report.leaderboard",
    "write_leaderboard": "report.leaderboard",
    "read_result": "results",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        where = _PUBLIC[name]
        return getattr(importlib.import_module(where if where.startswith(".") else f".{where}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
