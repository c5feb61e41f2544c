"""Scores of a run: from embeddings to comparison scores, never more than a tile at once.

==================  =====================================================================
``search``          1:1 pair scores and blocked 1:N top-k search (numpy or torch)
``streaming``       all-pairs scoring in tiles (:func:`score_all_pairs`, :class:`ScanOptions`)
``scan``            what a scan takes and keeps (sides, views, the per-cell result)
``tiles``           the tile work on numpy; ``streaming_torch``: the same on torch (CUDA)
``pilot``           planning which bins a scan keeps exact
``bins``            the binning of the score axis (2^16 bins per unit)
``binned_scores``   exact metrics from binned impostor scores plus a few exact bins
==================  =====================================================================
"""

from __future__ import annotations

from .binned_scores import BinnedScores, resolve_all
from .bins import MissingBins, ScoreBins
from .scan import Side, StreamingError, View, resolve_device
from .search import pair_scores, topk_search
from .streaming import ScanOptions, score_all_pairs

__all__ = ["BinnedScores", "resolve_all", "MissingBins", "ScoreBins", "Side", "StreamingError", "View",
           "resolve_device", "pair_scores", "topk_search", "ScanOptions", "score_all_pairs"]  # fmt: skip
