"""A subset of a protocol for ``mfrkit bench --where COND --limit N``: the rule, once.

Conditions apply to **images**: an image passes when its manifest row (the reference
manifest for the reference side, the probe manifest for the probe side) meets every
``--where`` condition (:func:`mfrkit.data.subset.where_mask`: ``variant=unmasked``,
``identity=@ids.txt``, ``mask_type!=cloth``, ...). Each kind then keeps, by its
evaluator's :meth:`~mfrkit.bench.evaluators.base.Evaluator.select`:

==================  ========================================================================
``verification``    a pair iff **both** its images pass; ``--limit N``: a seeded sample of
                    N of those pairs
``all-pairs``       the reference and probe images that pass; ``--limit N``: a seeded sample
                    of N images per side (a one-set protocol keeps one set, the same ids on
                    both sides)
``identification``  the gallery images and probes that pass; a mated probe whose identity
                    has no gallery image left is dropped (it could no longer be found), a
                    MegaFace row also needs its mate to pass; ``--limit N``: a seeded sample
                    of N probes (search rows), the gallery kept whole
``ijb-templates``   refused: its comparisons are of templates (many faces each), not of
                    images, so dropping images would change what a template is
==================  ========================================================================

The sample is seeded as ``synth --limit`` is (:func:`mfrkit.data.subset.sample_ranks`:
a stable hash of the seed and each item's key, the lowest N kept in the protocol's own
order), so it does not depend on row order, is the same on every run, and a larger N
keeps every item of a smaller one. A selection that keeps nothing (or, 1:1, no genuine
or no impostor comparison) is an error, never a result over zero comparisons.

A subset protocol is never mistaken for the whole one: it is named
``<protocol>@subset-<tag>`` (``tag``: 8 hex digits of the conditions, limit and seed),
its sha256 is the parent's combined with them, and ``protocol.subset`` of
``metrics.json`` records what was taken (:class:`SubsetRecord`). Its results therefore
get their own folder in a run, their own leaderboard row (a ``subset`` column says
which), and never replace the full protocol's latest result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ...data.subset import parse_condition, parse_conditions, sample_ranks, where_mask
from ...errors import MfrkitError
from ...protocols.kinds import protocol_kind
from ..protocol_io import protocol_sha256
from ..results import SubsetRecord


class SubsetError(MfrkitError):
    """``--where`` / ``--limit`` cannot take a subset of a protocol (nothing kept, a kind
    that takes none, a condition on a column the manifest lacks)."""


def checked_condition(text: str) -> str:
    """``--where`` text, parsed once on the command line so a bad one is refused there."""
    parse_condition(text)
    return str(text)


@dataclass(frozen=True)
class SubsetRequest:
    """What ``bench --where/--limit/--seed`` ask for.

    Attributes
    ----------
    where : condition texts (all must hold).
    limit : N, or None for every item the conditions keep.
    seed : the sample's seed (only matters with ``limit``).
    """

    where: tuple[str, ...] = ()
    limit: int | None = None
    seed: int = 0

    @property
    def active(self) -> bool:
        return bool(self.where) or self.limit is not None

    def key(self) -> dict:
        """The request as it identifies a subset (the seed only where a limit uses it)."""
        return {"where": list(self.where), "limit": self.limit, "seed": None if self.limit is None else int(self.seed)}

    def tag(self) -> str:
        """8 hex digits naming this request (the same request, the same tag)."""
        return hashlib.sha256(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:8]

    def text(self) -> str:
        """``--where variant=unmasked --limit 200 (seed 0)``."""
        parts = [f"--where {w}" for w in self.where]
        if self.limit is not None:
            parts.append(f"--limit {self.limit} (seed {self.seed})")
        return " ".join(parts)


@dataclass
class Chosen:
    """What an evaluator's :meth:`select` keeps.

    Attributes
    ----------
    tables : Protocol attribute -> the kept rows (``pairs``, ``gallery``, ...).
    unit : what ``kept`` / ``total`` count (``pairs``, ``images``, ``probes``).
    kept, total : the counts of that unit after and before the selection.
    detail : more counts worth recording (per side, probes dropped for lack of a mate).
    """

    tables: dict
    unit: str
    kept: int
    total: int
    detail: dict = field(default_factory=dict)


class Selection:
    """The images of a protocol that pass ``--where``, and the seeded ``--limit`` sample,
    for an evaluator's :meth:`select` (the manifests are read once per role)."""

    def __init__(self, protocol, request: SubsetRequest) -> None:
        self.protocol, self.request = protocol, request
        self.conditions = parse_conditions(request.where)
        self._passing: dict[str, set] = {}

    def passes(self, role: str, ids: Sequence) -> np.ndarray:
        """bool per id of the ``role`` manifest: its image meets every condition (an id the
        manifest lacks, or empty, never does when there are conditions)."""
        ids = pd.Series(list(ids), dtype=object).astype(str)
        if not self.conditions:
            return np.ones(len(ids), bool)
        if role not in self._passing:
            images = self.protocol.images(role)
            try:
                mask = where_mask(images, self.conditions)
            except MfrkitError as exc:
                raise SubsetError(f"{self.protocol.name}: {role} manifest: {exc}") from None
            self._passing[role] = set(images.index[mask.to_numpy(bool)])
        return np.array(ids.isin(self._passing[role]), dtype=bool)  # a writable copy: callers combine masks in place

    def sample(self, keys: Sequence[str], keep: np.ndarray | None = None) -> np.ndarray:
        """bool per key: among the ``keep`` ones, the ``--limit`` with the lowest seeded
        rank (all of them without a limit, or when there are no more)."""
        keep = np.ones(len(keys), bool) if keep is None else np.asarray(keep, bool).copy()
        limit = self.request.limit
        if limit is None or keep.sum() <= limit:
            return keep
        at = np.flatnonzero(keep)
        ranks = sample_ranks([str(keys[i]) for i in at], self.request.seed)
        chosen = at[np.argsort(ranks, kind="stable")[: int(limit)]]
        out = np.zeros(len(keys), bool)
        out[chosen] = True
        return out


def subset_protocol(protocol, request: SubsetRequest, evaluator):
    """``protocol`` cut down to what ``request`` keeps (``protocol`` itself when it asks
    for nothing), by ``evaluator.select`` (see the module docstring).

    Raises
    ------
    SubsetError
        The kind takes no subset, a condition names a column a manifest lacks, or the
        selection keeps nothing.
    """
    if not request.active:
        return protocol
    chosen = evaluator.select(protocol, Selection(protocol, request))
    if chosen.kept == 0:
        raise SubsetError(f"{protocol.name}: {request.text()} keeps no {chosen.unit} (of {chosen.total:,}); a subset "
                          "run needs something to score: loosen --where (the conditions apply to each image's "
                          "manifest row)")
    parent_sha = protocol_sha256(protocol)
    record = SubsetRecord(protocol.name, parent_sha, tuple(request.where), request.limit,
                          None if request.limit is None else int(request.seed), chosen.unit, int(chosen.kept),
                          int(chosen.total), chosen.detail)
    info = {**protocol.info, "name": f"{protocol.name}@subset-{request.tag()}", "subset": record.as_dict()}
    sha = hashlib.sha256(f"{parent_sha}:{json.dumps(request.key(), sort_keys=True)}".encode()).hexdigest()
    sub = dataclasses.replace(protocol, info=info, sha256=sha, registered_as=None, **chosen.tables)
    info["counts"] = protocol_kind(protocol.kind).count_summary(sub)
    return sub


def require_both_labels(protocol, genuine: int, impostor: int, what: str) -> None:
    """A 1:1 subset needs genuine and impostor comparisons (TAR and FAR both need theirs)."""
    if genuine and impostor:
        return
    raise SubsetError(f"{protocol.name}: the subset keeps {genuine:,} genuine and {impostor:,} impostor {what}; 1:1 "
                      "metrics need both: loosen --where or raise --limit")


__all__ = ["SubsetError", "SubsetRequest", "Selection", "Chosen", "subset_protocol",
           "require_both_labels", "checked_condition"]  # fmt: skip
