"""One evaluator per protocol kind, in a registry: the only place the bench tells kinds apart.

==================  =====================================================================
``base``            the :class:`Evaluator` interface, what it gets (:class:`ProtocolRun`)
                    and gives (:class:`Outcome`)
``pairs``           ``verification``: pair lists (``pairs.csv``)
``all_pairs``       ``all-pairs``: every reference x every probe, streamed scores
``identification``  ``identification``: 1:N gallery / probes (closed, open, MegaFace)
``transfer``        the threshold of one 1:1 protocol applied to the run's others
==================  =====================================================================

A run asks :data:`EVALUATORS` for the evaluator of each protocol's kind; the
leaderboard and the report ask it what a result's kind is (:func:`one_to_one`,
:func:`streamed`). A new kind is one module with an :class:`Evaluator` subclass,
added below.
"""

from __future__ import annotations

from ...registry import Registry
from .all_pairs import AllPairsEvaluator
from .base import EvalSettings, Evaluator, Outcome, ProtocolRun, fta_rows
from .identification import IdentificationEvaluator
from .pairs import PairsEvaluator

#: Protocol kind -> its evaluator.
EVALUATORS: Registry[Evaluator] = Registry("protocol kind")
for _evaluator in (PairsEvaluator(), AllPairsEvaluator(), IdentificationEvaluator()):
    EVALUATORS.add(_evaluator.kind, _evaluator)

#: Kind names results of older mfrkit versions carry, and the kind they are now.
LEGACY_KINDS = {"1:1": "verification"}


def evaluator_of(kind: str) -> Evaluator:
    """The evaluator of protocol ``kind`` (an older result's name too); UnknownNameError
    naming the kinds there are."""
    return EVALUATORS.get(LEGACY_KINDS.get(kind, kind))


def _known(kind) -> Evaluator | None:
    name = LEGACY_KINDS.get(kind, kind) if isinstance(kind, str) else None
    return EVALUATORS.get(name) if name in EVALUATORS else None


def one_to_one(kind) -> bool:
    """Whether results of ``kind`` hold 1:1 metrics (False for a kind this mfrkit does not know)."""
    e = _known(kind)
    return e is not None and e.one_to_one


def streamed(kind) -> bool:
    """Whether results of ``kind`` keep their scores as a histogram, not a list."""
    e = _known(kind)
    return e is not None and e.streamed


__all__ = ["EVALUATORS", "LEGACY_KINDS", "evaluator_of", "one_to_one", "streamed", "Evaluator", "EvalSettings",
           "ProtocolRun", "Outcome", "fta_rows"]  # fmt: skip
