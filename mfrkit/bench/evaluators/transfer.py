"""Threshold transfer: the threshold chosen on one 1:1 protocol of a run (the unmasked
``umr-ump`` by default) for a FAR, applied unchanged to the run's other 1:1 protocols,
pair lists and all-pairs alike; their FMR and FNMR at it are the drift a deployed
threshold would suffer.
"""

from __future__ import annotations

from ...errors import MfrkitError
from ...protocols.kinds import is_one_to_one
from .base import Outcome


def transfer_source(protocols: list, wanted: str | None, error: type[MfrkitError] = MfrkitError) -> str | None:
    """Name of the 1:1 protocol whose threshold is transferred: the one called ``wanted``,
    else the only one whose spec is ``wanted``; None when there is none. Several of that
    spec raise ``error`` (the caller's :class:`~mfrkit.errors.MfrkitError` class) naming them."""
    if not wanted:
        return None
    verification = [p for p in protocols if is_one_to_one(p.kind)]
    if any(p.name == wanted for p in verification):
        return wanted
    of_spec = [p.name for p in verification if p.spec == wanted]
    if len(of_spec) > 1:
        raise error(f"{len(of_spec)} protocols of spec {wanted!r} in this run ({', '.join(of_spec)}): name the one "
                          "whose threshold is transferred with --transfer-from NAME ('' for none)")
    return of_spec[0] if of_spec else None


def source_threshold(outcome: Outcome | None, far_target: float) -> dict | None:
    """The transfer source's threshold for ``far_target``: ``far_target, threshold, far``."""
    if outcome is None or outcome.scores is None:
        return None
    return outcome.scores.source_threshold(far_target)


def apply_transfer(per_model: list, source_name: str | None, far_target: float) -> None:
    """Threshold for ``far_target`` on protocol ``source_name``, applied to the model's
    other 1:1 protocols (``per_model``: (RunResult, Outcome) pairs; recorded in their
    results as ``transfer``, the source's own as ``transfer_source``)."""
    verification = [(r, o) for r, o in per_model if o.scores is not None]
    source = [(r, o) for r, o in verification if r.protocol == source_name]
    if not source:
        return
    sres, sout = source[0]
    src = source_threshold(sout, far_target)
    threshold = src["threshold"]
    sres.set_transfer_source(src)
    for res, out in verification:
        if res is not sres:
            res.set_transfer(out.scores.transfer(source_name, threshold, far_target))
