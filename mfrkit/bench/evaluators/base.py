"""What every protocol evaluator is: the interface a run calls, and what it gets and gives.

An evaluator knows one protocol kind (``protocol.json`` ``kind``): which images its
protocols use on each side, how their comparisons are scored and turned into metrics,
which files it writes into the result's folder, and what the threshold transfer, the
leaderboard and the report need to know of it (:attr:`Evaluator.one_to_one`,
:attr:`Evaluator.streamed`). Adding a kind (IJB templates, say) is one module holding an
:class:`Evaluator` subclass, registered in :data:`mfrkit.bench.evaluators.EVALUATORS`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import pandas as pd

from ...data.manifest import STATUS_OK
from ...protocols.kinds import protocol_kind
from ..embed.images import ATTRIBUTES, ImageTable, Sides
from ..embed.model_set import EmbedOptions, ProgressFactory, no_progress
from ..embed.pipeline import Embeddings
from ..results import ProtocolInfo
from .subset import Chosen, Selection, SubsetError


def protocol_uids(images: ImageTable, protocol) -> Callable[[object, Sequence[str]], list[str]]:
    """``uids(manifest, ids)`` for ``protocol``'s sides: :meth:`ImageTable.uids` naming the
    protocol and, where its info says why it names images its manifest lacks, that cause."""
    return functools.partial(images.uids, what=f"protocol {protocol.name}", why=_unmatched_cause(protocol))


def _unmatched_cause(protocol) -> str | None:
    """Why a protocol can name images its manifest lacks, where its info says: an import
    that kept references it could not match (``source.unresolved``)."""
    source = (getattr(protocol, "info", None) or {}).get("source") or {}
    n = source.get("unresolved") if isinstance(source, dict) else None
    if isinstance(n, int) and n > 0:
        return (f"the import of {source.get('file', 'its pair list')} kept {n} reference(s) that match no image of "
                "the manifest (`mfrkit protocol validate` lists them); import it again with the manifest that holds "
                "those images, or the format options (--ext) that name them")
    return None


@dataclass(frozen=True)
class EvalSettings:
    """The metric settings of a run (``mfrkit bench`` options, see :class:`~mfrkit.bench.benchmark.BenchConfig`).

    Attributes
    ----------
    fta_policy : ``reject`` (FtA comparisons are rejections) or ``exclude`` (left out, counted).
    far_targets : FAR (and FPIR) targets.
    n_boot, seed, confidence : identity bootstrap replicates, its seed, every interval's level.
    max_rank : 1:N candidate-list length and CMC range.
    search_device : ``auto`` | ``cuda`` | ``cpu``: 1:N search and all-pairs scoring.
    plots : write the PNG plots.
    ijb_pooling : IJB template protocols: insightface's pooling switches
        (:class:`~mfrkit.bench.score.ijb_templates.IjbPooling`).
    """

    fta_policy: str = "reject"
    far_targets: tuple = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    n_boot: int = 0
    seed: int = 0
    confidence: float = 0.95
    max_rank: int = 20
    search_device: str = "auto"
    plots: bool = True
    ijb_pooling: str = "flip,norm,detector"


@dataclass
class ProtocolRun:
    """One model set on one protocol: everything an evaluator reads.

    Attributes
    ----------
    protocol : the protocol (:mod:`mfrkit.protocols`).
    sides : the uids it uses by side (from :meth:`Evaluator.sides`).
    ref, probe : the reference and probe models' embeddings (one object for a plain model).
    images : the run's image table (attributes of every uid).
    settings : EvalSettings.
    folder : the result's folder (created), where the evaluator writes its files.
    title : "<model> on <protocol>", for plots.
    transfer_far : the FAR whose threshold this protocol must find (it is the transfer
        source), or None.
    transfer_threshold : the transfer source's threshold when known up front, or None.
    progress, log : a progress-bar factory and a message sink.
    models : the (reference, probe) OnnxModels, for a kind that embeds its own images
        (IJB templates: the release's 5 points, raw embeddings); embed : the embed stage's
        :class:`~mfrkit.bench.embed.model_set.EmbedOptions` for it.
    """

    protocol: object
    sides: Sides
    ref: Embeddings
    probe: Embeddings
    images: ImageTable
    settings: EvalSettings
    folder: Path
    title: str
    transfer_far: float | None = None
    transfer_threshold: float | None = None
    progress: ProgressFactory = no_progress
    log: Callable[[str], None] = field(default=lambda msg: None)
    models: tuple = (None, None)
    embed: EmbedOptions | None = None

    def attributes(self, uids: list, prefix: str = "") -> pd.DataFrame:
        """The breakdown attributes (:data:`~mfrkit.bench.embed.images.ATTRIBUTES`) of ``uids``, one row each."""
        attrs = self.images.table.loc[uids, list(ATTRIBUTES)].reset_index(drop=True)
        return attrs.add_prefix(prefix)


class TransferScores(Protocol):
    """What the threshold transfer reads of a 1:1 protocol's scores."""

    def source_threshold(self, far_target: float) -> dict | None:
        """``{far_target, threshold, far}``: this protocol's threshold for ``far_target``."""
        ...

    def transfer(self, source: str, threshold: float, far_target: float) -> dict:
        """``{from, far_target, **rates}``: this protocol's error rates at another's threshold."""
        ...


@dataclass
class Outcome:
    """What an evaluator gives back (its files are written already).

    Attributes
    ----------
    metrics, breakdowns : the ``metrics`` and ``breakdowns`` of ``metrics.json``.
    search_device : where the scores were computed (None: no search).
    scores : what the threshold transfer reads (None: the kind has no 1:1 threshold).
    fta : ``image_id, role, reason`` of its failures to acquire, for a kind that embeds its
        own images (None: :func:`fta_rows` of the run's embeddings).
    sections : result sections the evaluator gives itself (IJB templates: ``throughput``
        and ``preprocessing`` of its own embedding pass), replacing the run's.
    """

    metrics: dict
    breakdowns: dict
    search_device: str | None = None
    scores: TransferScores | None = None
    fta: pd.DataFrame | None = None
    sections: dict = field(default_factory=dict)


class Evaluator:
    """The evaluator of one protocol kind (see the module docstring).

    Attributes
    ----------
    kind : the protocol kind it evaluates (its name in the registry).
    one_to_one : its protocols are 1:1 comparisons (their kind's
        :attr:`~mfrkit.protocols.kinds.ProtocolKind.one_to_one`): they get TAR@FAR, EER
        and AUC, the threshold transfer, the leaderboard's 1:1 columns and the report's
        ROC and DET.
    streamed : its scores are kept as an exact histogram, not a list (``histogram.csv`` and
        ``genuine.csv`` instead of ``scores.csv``; the report finds the hardest impostor
        pairs again from saved embeddings).
    description : a line for listings (the protocol kind's).
    """

    kind: str = ""
    streamed: bool = False

    @property
    def one_to_one(self) -> bool:
        return protocol_kind(self.kind).one_to_one

    @property
    def description(self) -> str:
        return protocol_kind(self.kind).description

    def sides(self, protocol, images: ImageTable) -> Sides:
        """The uids ``protocol`` uses by side (adding its manifests to ``images``)."""
        raise NotImplementedError

    def fta_roles(self, sides: Sides) -> list[tuple[str, str, list]]:
        """``(role, side, uids)`` of the images whose failures to acquire ``fta.csv`` lists:
        ``side`` is ``reference`` or ``probe`` (which model's embeddings)."""
        return [("reference", "reference", sides.reference()), ("probe", "probe", sides.probe())]

    def describe(self, protocol) -> dict:
        """The counts ``metrics.json`` records about ``protocol`` (beside its name, spec, sha256...)."""
        raise NotImplementedError

    def summary(self, protocol: ProtocolInfo) -> str:
        """A one-line description of a result's protocol (the report)."""
        raise NotImplementedError

    def evaluate(self, run: ProtocolRun) -> Outcome:
        """Score ``run.protocol``, write its files into ``run.folder``, return its metrics."""
        raise NotImplementedError

    def select(self, protocol, selection: Selection) -> Chosen:
        """The part of ``protocol`` that ``bench --where/--limit`` keeps: this kind's rule
        (see :mod:`mfrkit.bench.evaluators.subset`); a kind without one refuses."""
        raise SubsetError(f"{protocol.name}: protocols of kind {self.kind!r} take no --where / --limit")


def fta_rows(evaluator: Evaluator, run: ProtocolRun) -> pd.DataFrame:
    """``image_id, role, reason`` of every image of the protocol that failed to acquire
    (a row per image and role); ``attrs``: ``distinct`` (images, one of both roles counted
    once) and ``by_reason`` (distinct images per reason)."""
    rows, distinct = [], {}
    for role, side, uids in evaluator.fta_roles(run.sides):
        emb = run.ref if side == "reference" else run.probe
        for uid in dict.fromkeys(uids):
            st = emb.status[emb.index[uid]]
            if st != STATUS_OK:
                rows.append({"image_id": run.images.table.at[uid, "image_id"], "role": role, "reason": str(st)})
                distinct.setdefault(uid, str(st))
    out = pd.DataFrame(rows, columns=["image_id", "role", "reason"])
    out.attrs["distinct"] = len(distinct)
    out.attrs["by_reason"] = pd.Series(list(distinct.values()), dtype=object).value_counts().to_dict()
    return out


def count_text(v) -> str:
    """A count for the report ("?" when unknown)."""
    return "?" if v is None else f"{int(v):,}"


__all__: Sequence[str] = ["EvalSettings", "ProtocolRun", "TransferScores", "Outcome", "Evaluator", "fta_rows", "count_text"]
