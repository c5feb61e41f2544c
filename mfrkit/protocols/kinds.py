"""Protocol kinds in one registry: the only place the protocol engine tells them apart.

==================  =====================================================================
``verification``    1:1 pair list (``pairs.csv``: fold, left_id, right_id, label)
``identification``  1:N gallery / probes (``gallery.csv``, ``probes.csv``)
``all-pairs``       1:1, every reference x every probe image (``reference_images.csv``,
                    ``probe_images.csv``; the comparisons are counted, never listed)
==================  =====================================================================

Each :class:`ProtocolKind` says what a protocol of its kind holds (its tables, whether it
is 1:1) and does the kind's part of each protocol command (counts, ``protocol show``,
``protocol validate``, ``protocol make``, ``protocol export``), calling the kind's own
module. A new kind is one :class:`ProtocolKind` subclass passed to :func:`register_kind`
(and, to benchmark it, one evaluator in :mod:`mfrkit.bench.evaluators`).
"""

from __future__ import annotations

from typing import Any

from ..registry import Registry

#: Kind names results of older mfrkit versions carry, and the kind they are now.
LEGACY_KINDS = {"1:1": "verification"}


class ProtocolKind:
    """One protocol kind (see the module docstring).

    Attributes
    ----------
    name : its ``protocol.json`` ``kind``.
    one_to_one : its comparisons are 1:1 (TAR@FAR, EER, a threshold to transfer), else 1:N.
    tables : the files holding its tables, in order.
    pair_list : it has a pair list (``pairs.csv``): it can be derived from and exported
        as a public pair list, and takes LFW ``people.txt`` folds.
    cross_product : its comparisons are every reference x every probe image, counted in
        closed form and never listed (exported as one CSV row per comparison).
    description : a line for listings.
    """

    name: str = ""
    one_to_one: bool = False
    tables: tuple[str, ...] = ()
    pair_list: bool = False
    cross_product: bool = False
    description: str = ""

    def count_summary(self, protocol) -> dict:
        """The small counts stored in ``protocol.json`` ``counts``."""
        raise NotImplementedError

    def counts_text(self, counts: dict) -> str:
        """One line of those counts, for ``protocol make``."""
        raise NotImplementedError

    def summarize(self, protocol) -> dict:
        """``protocol show``'s tables (see :func:`mfrkit.protocols.summary.summarize`)."""
        raise NotImplementedError

    def validate(self, protocol, checks: dict, report) -> None:
        """Add the kind's problems to ``report`` (see :mod:`mfrkit.protocols.validate`)."""
        raise NotImplementedError

    def failures_text(self, report) -> str:
        """What would be scored as failures, from a validation report."""
        return f"{len(report.failed_rows())} row(s) would be scored as failures"

    def check_make(self, derive_from, people) -> None:
        """Refuse, before anything is made, inputs of ``protocol make`` the kind cannot take."""

    def make(self, reference, probe, *, spec: str, spec_params: dict, name: str | None, people, options: dict[str, Any]):
        """A new protocol of this kind drawn from the manifests (``protocol make``)."""
        raise NotImplementedError

    def export(self, protocol, path, fmt: str, *, root=None, replace: bool = True):
        """``protocol export``: (path written, root its paths are relative to); ``replace=False``
        never writes over an existing file."""
        from .interop import export_pair_list

        return export_pair_list(protocol, path, fmt, root=root, replace=replace)

    def registered_suffix(self, spec: str, options: dict[str, Any]) -> str:
        """What follows ``<dataset>/`` in the default registered name."""
        return spec


class Verification(ProtocolKind):
    name = "verification"
    one_to_one = True
    tables = ("pairs.csv",)
    pair_list = True
    description = "1:1 pair list (pairs.csv), LFW-style folds"

    def count_summary(self, protocol) -> dict:
        from .folder import normalize_table

        p = normalize_table("pairs.csv", protocol.pairs)
        folds = {}
        for fold, g in p.groupby("fold", sort=True):
            folds[str(int(fold))] = {"genuine": int(g["label"].sum()), "impostor": int((g["label"] == 0).sum())}
        return {"pairs": int(len(p)), "genuine": int(p["label"].sum()), "impostor": int((p["label"] == 0).sum()),
                "folds": folds}

    def counts_text(self, counts: dict) -> str:
        return f"{counts['pairs']} pairs ({counts['genuine']} genuine) in {len(counts['folds'])} fold(s)"

    def summarize(self, protocol) -> dict:
        from .summary import summarize_verification

        return summarize_verification(protocol)

    def validate(self, protocol, checks: dict, report) -> None:
        from .validate import validate_pairs

        validate_pairs(protocol, checks, report)

    def make(self, reference, probe, *, spec, spec_params, name, people, options):
        from .interop import people_folds
        from .verification import make_verification

        folds = people_folds(people) if people is not None else None
        return make_verification(reference, probe, spec=spec, spec_params=spec_params, identity_folds=folds, name=name,
                                 **options)


class Identification(ProtocolKind):
    name = "identification"
    tables = ("gallery.csv", "probes.csv")
    description = "1:N identification (gallery.csv, probes.csv): closed, open or MegaFace mode"

    def count_summary(self, protocol) -> dict:
        from .folder import normalize_table

        g = normalize_table("gallery.csv", protocol.gallery)
        pr = normalize_table("probes.csv", protocol.probes)
        return {"gallery": int(len(g)), "gallery_identities": int(g["identity"].nunique()),
                "distractors": int(g["distractor"].sum()), "probes": int(len(pr)),
                "mated": int(pr["mated"].sum()), "non_mated": int((pr["mated"] == 0).sum())}

    def counts_text(self, counts: dict) -> str:
        return f"{counts['gallery']} gallery image(s), {counts['probes']} probes ({counts['mated']} mated)"

    def summarize(self, protocol) -> dict:
        from .summary import summarize_identification

        return summarize_identification(protocol)

    def validate(self, protocol, checks: dict, report) -> None:
        from .validate import validate_identification

        validate_identification(protocol, checks, report)

    def make(self, reference, probe, *, spec, spec_params, name, people, options):
        from .identification import make_identification

        return make_identification(reference, probe, spec=spec, spec_params=spec_params, name=name, **options)

    def registered_suffix(self, spec: str, options: dict[str, Any]) -> str:
        return f"{spec}-{options.get('mode', 'closed')}"


class AllPairs(ProtocolKind):
    name = "all-pairs"
    one_to_one = True
    tables = ("reference_images.csv", "probe_images.csv")
    cross_product = True
    description = "1:1 all-pairs (reference_images.csv x probe_images.csv), streamed scores"

    def count_summary(self, protocol) -> dict:
        from .all_pairs import protocol_counts

        return protocol_counts(protocol)

    def counts_text(self, counts: dict) -> str:
        return (f"{counts['references']} reference x {counts['probes']} probe images: {counts['genuine']:,} genuine and "
                f"{counts['impostor']:,} impostor comparisons ({counts['excluded_self']:,} same-image and "
                f"{counts['excluded_same_source']:,} same-source excluded)")

    def summarize(self, protocol) -> dict:
        from .summary import summarize_all_pairs

        return summarize_all_pairs(protocol)

    def validate(self, protocol, checks: dict, report) -> None:
        from .validate import validate_all_pairs

        validate_all_pairs(protocol, checks, report)

    def failures_text(self, report) -> str:
        failed = len(report.failed_rows()) + sum(1 for st in report.gallery_status if st != "ok")
        return f"{failed} image(s) would be failures to acquire (all their comparisons rejections)"

    def check_make(self, derive_from, people) -> None:
        from .errors import ProtocolError

        if derive_from is not None or people is not None:
            raise ProtocolError("an all-pairs protocol compares every image: it takes no parent protocol (--from) "
                                "and no people.txt folds")

    def export(self, protocol, path, fmt: str, *, root=None, replace: bool = True):
        from .interop import export_every_comparison

        return export_every_comparison(protocol, path, fmt, root=root, replace=replace)

    def make(self, reference, probe, *, spec, spec_params, name, people, options):
        from .all_pairs import make_all_pairs

        return make_all_pairs(reference, probe, spec=spec, spec_params=spec_params, name=name, **options)

    def registered_suffix(self, spec: str, options: dict[str, Any]) -> str:
        return f"{spec}-all-pairs"


#: ``protocol.json`` kind -> its :class:`ProtocolKind`.
PROTOCOL_KINDS: Registry[ProtocolKind] = Registry("protocol kind")
_ORDER: list[str] = []


def register_kind(kind: ProtocolKind) -> ProtocolKind:
    """Add ``kind`` to :data:`PROTOCOL_KINDS` (a kind's module calls this once)."""
    PROTOCOL_KINDS.add(kind.name, kind)
    _ORDER.append(kind.name)
    return kind


for _kind in (Verification(), Identification(), AllPairs()):
    register_kind(_kind)


def kind_names() -> tuple[str, ...]:
    """The kind names, in registration order (for messages)."""
    return tuple(_ORDER)


def protocol_kind(kind: str) -> ProtocolKind:
    """The :class:`ProtocolKind` called ``kind``; UnknownNameError naming the kinds there are."""
    return PROTOCOL_KINDS.get(kind)


def known_kind(kind: object) -> ProtocolKind | None:
    """The :class:`ProtocolKind` called ``kind``, or None for anything else (a result of a
    kind this mfrkit does not know, a missing kind)."""
    name = LEGACY_KINDS.get(kind, kind) if isinstance(kind, str) else None
    return PROTOCOL_KINDS.get(name) if name in PROTOCOL_KINDS else None


def has_pair_list(kind: object) -> bool:
    """Whether protocols of ``kind`` hold a pair list (False for a kind this mfrkit does not know)."""
    k = known_kind(kind)
    return k is not None and k.pair_list


def is_one_to_one(kind: object) -> bool:
    """Whether protocols (and results) of ``kind`` hold 1:1 comparisons; False for a kind
    this mfrkit does not know."""
    k = known_kind(kind)
    return k is not None and k.one_to_one
