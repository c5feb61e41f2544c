"""One evaluator per protocol kind, in a registry: the only place the bench tells kinds apart.

==================  =====================================================================
``base``            the :class:`Evaluator` interface, what it gets (:class:`ProtocolRun`)
                    and gives (:class:`Outcome`)
``pairs``           ``verification``: pair lists (``pairs.csv``)
``all_pairs``       ``all-pairs``: every reference x every probe, streamed scores
``identification``  ``identification``: 1:N gallery / probes (closed, open, MegaFace)
``ijb``             ``ijb-templates``: IJB-B / IJB-C templates (insightface's pooling), 1:1
                    template pairs streamed into exact binned scores, 1:N galleries S1 / S2
``transfer``        the threshold of one 1:1 protocol applied to the run's others
``subset``          ``bench --where/--limit``: the part of a protocol a run takes, by the
                    kind's rule (each evaluator's ``select``), recorded in its results
==================  =====================================================================

A run asks :data:`EVALUATORS` for the evaluator of each protocol's kind; the report
asks it how a result's scores are kept (:func:`streamed`) and how to describe its
protocol. Whether a kind is 1:1 is the protocol kind's own fact
(:attr:`mfrkit.protocols.kinds.ProtocolKind.one_to_one`). A new kind (IJB templates,
say) is one module with an :class:`Evaluator` subclass, passed to
:func:`register_evaluator` below, beside its :class:`~mfrkit.protocols.kinds.ProtocolKind`.
"""

from __future__ import annotations

from ...protocols.kinds import LEGACY_KINDS, known_kind
from ...registry import Registry
from ..protocol_io import protocol_sha256
from .all_pairs import AllPairsEvaluator
from .base import EvalSettings, Evaluator, Outcome, ProtocolRun, fta_rows
from .identification import IdentificationEvaluator
from .ijb import IjbEvaluator
from .pairs import PairsEvaluator
from .subset import SubsetError, SubsetRequest, subset_protocol

#: Protocol kind -> its evaluator.
EVALUATORS: Registry[Evaluator] = Registry("protocol kind")


def register_evaluator(evaluator: Evaluator) -> Evaluator:
    """Add ``evaluator`` under its kind (a new kind's module is registered here, once)."""
    return EVALUATORS.add(evaluator.kind, evaluator)


for _evaluator in (PairsEvaluator(), AllPairsEvaluator(), IdentificationEvaluator(), IjbEvaluator()):
    register_evaluator(_evaluator)


def evaluator_of(kind: str) -> Evaluator:
    """The evaluator of protocol ``kind`` (an older result's name too); UnknownNameError
    naming the kinds there are."""
    return EVALUATORS.get(LEGACY_KINDS.get(kind, kind))


def describe_protocol(protocol) -> dict:
    """What ``run.json`` and ``metrics.json`` record about a protocol: its name, kind, spec,
    seed, version, sha256, folder and manifests, then its kind's counts
    (:meth:`Evaluator.describe`)."""
    info = protocol.info
    d = {"name": protocol.name, "kind": protocol.kind, "spec": info.get("spec"), "spec_params": info.get("spec_params")}
    d.update(seed=info.get("seed"), version=info.get("version"), sha256=protocol_sha256(protocol))
    d["folder"] = None if protocol.folder is None else str(protocol.folder)
    d["manifests"] = {
        r: {"name": m.name, "path": None if m.path is None else str(m.path), "fingerprint": m.fingerprint()}
        for r, m in protocol.manifests.items()
    }
    d.update(evaluator_of(protocol.kind).describe(protocol))
    if info.get("subset"):
        d["subset"] = info["subset"]
    return d


def subset_of(protocol, request: SubsetRequest):
    """The part of ``protocol`` that ``request`` (``--where`` / ``--limit``) keeps, by its
    kind's rule (:mod:`.subset`); ``protocol`` itself when nothing is asked."""
    return subset_protocol(protocol, request, evaluator_of(protocol.kind))


def subsets_of(protocols: list, source: str | None, request: SubsetRequest, log) -> tuple[list, str | None]:
    """The part of each protocol ``request`` keeps (the protocols themselves when nothing
    is asked), each logged with its counts, and the transfer source's new name."""
    if not request.active:
        return protocols, source
    out = []
    for p in protocols:
        sub = subset_of(p, request)
        record = sub.info["subset"]
        log(f"subset {sub.name}: {record['kept']:,} of {record['total']:,} {record['unit']} of {p.name} "
            f"({request.text()}); its results are not the full protocol's")
        source = sub.name if p.name == source else source
        out.append(sub)
    return out, source


def known_evaluator(kind) -> Evaluator | None:
    """The evaluator of ``kind``, None for a kind this mfrkit cannot evaluate."""
    k = known_kind(kind)
    return EVALUATORS.get(k.name) if k is not None and k.name in EVALUATORS else None


def streamed(kind) -> bool:
    """Whether results of ``kind`` keep their scores as a histogram, not a list."""
    e = known_evaluator(kind)
    return e is not None and e.streamed


__all__ = ["EVALUATORS", "register_evaluator", "evaluator_of", "describe_protocol", "known_evaluator", "streamed",
           "subset_of", "subsets_of", "SubsetRequest", "SubsetError",
           "Evaluator", "EvalSettings", "ProtocolRun", "Outcome", "fta_rows"]  # fmt: skip
