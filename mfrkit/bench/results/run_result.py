"""The run result behind ``metrics.json``: one model x one protocol, written and read here.

``<run>/<model>/<protocol>/metrics.json`` is one JSON object::

    run_id, created, mfrkit_version     the run
    model          name, sha256, provider, heterogeneous, spec (or reference / probe halves)
    settings       the run's settings (rules, fta_policy, confidence, search_device, ...)
    preprocessing  reference / probe: input size, colour, mean/std, align, TTA, landmarks; key
    throughput     images_per_second, computed, cached, seconds
    protocol       name, kind, spec, sha256, manifests by role, and the kind's counts;
                   ``subset`` (:class:`SubsetRecord`) when the run took part of it
                   (``bench --where/--limit``; the name is then ``<name>@subset-<tag>``)
    fta            images, by_reason, policy
    metrics        every metric (:mod:`mfrkit.bench.metrics.bundle`), ``skipped`` naming
                   what could not be computed and why
    breakdowns     column -> group -> metrics
    path           the result's folder when written
    transfer_source / transfer   the threshold transfer (the source's threshold / the
                   rates at it), when the run made one

:class:`RunResult` keeps the object exactly as read (``data``: files of older mfrkit
versions keep every key) and gives typed views of its sections (``r.model_info.sha256``,
``r.protocol_info.kind``, ``r.settings.rules``); the bench builds one with :func:`new_result`
and writes it with :meth:`RunResult.write`. The metrics blocks themselves stay plain
dicts: their keys are documented where they are computed.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ...protocols.kinds import is_one_to_one
from .files import ReportError, read_result, write_json

METRICS_NAME = "metrics.json"


def _block(d: Any) -> dict:
    return d if isinstance(d, dict) else {}


@dataclass(frozen=True)
class ModelInfo:
    """``model``: what was benchmarked (one model, or a heterogeneous pair's halves)."""

    name: str | None = None
    sha256: str | None = None
    provider: str | None = None
    heterogeneous: bool = False
    spec: dict | None = None
    reference: dict | None = None
    probe: dict | None = None

    @classmethod
    def from_dict(cls, d: Any) -> "ModelInfo":
        d = _block(d)
        return cls(d.get("name"), d.get("sha256"), d.get("provider"), bool(d.get("heterogeneous")), d.get("spec"),
                   d.get("reference"), d.get("probe"))


@dataclass(frozen=True)
class SubsetRecord:
    """``protocol.subset`` of ``metrics.json`` (and ``run.json``): which part of a protocol
    a result rests on; absent for a full-protocol result.

    Attributes
    ----------
    of, of_sha256 : the whole protocol's name and sha256.
    where, limit, seed : what was asked (``seed`` None without a limit).
    unit : what ``kept`` / ``total`` count (``pairs``, ``images``, ``probes``).
    kept, total : that count in the subset and in the whole protocol.
    detail : the kind's other counts (per side; probes left without a mate).
    """

    of: str | None = None
    of_sha256: str | None = None
    where: tuple = ()
    limit: int | None = None
    seed: int | None = None
    unit: str | None = None
    kept: int | None = None
    total: int | None = None
    detail: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any) -> "SubsetRecord | None":
        if not isinstance(d, dict):
            return None
        return cls(d.get("of"), d.get("of_sha256"), tuple(d.get("where") or ()), d.get("limit"), d.get("seed"),
                   d.get("unit"), d.get("kept"), d.get("total"), d.get("detail") if isinstance(d.get("detail"), dict) else {})

    def as_dict(self) -> dict:
        out = asdict(self)
        out["where"] = list(self.where)
        return out

    def text(self) -> str:
        """``variant=unmasked, limit 200 (seed 0): 200 of 6,000 pairs of lfw-umr-ump``."""
        parts = list(self.where)
        if self.limit is not None:
            parts.append(f"limit {self.limit} (seed {self.seed})")
        kept = "?" if self.kept is None else f"{int(self.kept):,}"
        total = "?" if self.total is None else f"{int(self.total):,}"
        return f"{', '.join(parts)}: {kept} of {total} {self.unit or 'items'} of {self.of}"


@dataclass(frozen=True)
class ProtocolInfo:
    """``protocol``: what it was benchmarked on (and its kind's counts)."""

    name: str | None = None
    kind: str | None = None
    spec: str | None = None
    sha256: str | None = None
    manifests: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    n_pairs: int | None = None
    n_gallery: int | None = None
    n_probes: int | None = None
    subset: SubsetRecord | None = None

    @classmethod
    def from_dict(cls, d: Any) -> "ProtocolInfo":
        d = _block(d)
        return cls(d.get("name"), d.get("kind"), d.get("spec"), d.get("sha256"), _block(d.get("manifests")),
                   _block(d.get("counts")), d.get("n_pairs"), d.get("n_gallery"), d.get("n_probes"),
                   SubsetRecord.from_dict(d.get("subset")))

    def manifest(self, role: str) -> dict:
        """The manifest entry of ``role`` (``path``, ``fingerprint``, ``name``), ``{}`` when absent."""
        return _block(self.manifests.get(role))


@dataclass(frozen=True)
class RunSettings:
    """``settings``: the few settings readers of results ask for (the block holds them all)."""

    rules: str | None = None
    fta_policy: str | None = None
    confidence: float | None = None
    search_device: str | None = None
    batch_size: int | None = None
    tta: str | None = None

    @classmethod
    def from_dict(cls, d: Any) -> "RunSettings":
        d = _block(d)
        return cls(d.get("rules"), d.get("fta_policy"), d.get("confidence"), d.get("search_device"), d.get("batch_size"),
                   d.get("tta"))


@dataclass(frozen=True)
class Preprocessing:
    """``preprocessing``: what turned images into each side's model inputs, and its key."""

    key: str | None = None
    reference: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any) -> "Preprocessing":
        d = _block(d)
        return cls(d.get("key"), _block(d.get("reference")), _block(d.get("probe")))

    def side(self, side: str) -> dict:
        return self.reference if side == "reference" else self.probe


@dataclass(frozen=True)
class FtaSummary:
    """``fta``: images that failed to acquire (distinct images: one serving both roles
    counts once), by reason, the policy applied to them, and ``rows``: ``fta.csv``'s
    image x role entries. The comparisons (probes) they touch are ``metrics.n_fta``."""

    images: int | None = None
    by_reason: dict = field(default_factory=dict)
    policy: str | None = None
    rows: int | None = None

    @classmethod
    def from_dict(cls, d: Any) -> "FtaSummary":
        d = _block(d)
        return cls(d.get("images"), _block(d.get("by_reason")), d.get("policy"), d.get("rows"))

    @classmethod
    def of(cls, table, policy: str) -> "FtaSummary":
        """The summary of an ``fta.csv`` table (``image_id, role, reason``; its ``attrs``
        ``distinct`` / ``by_reason`` when it has them, else every row is one image)."""
        by_reason = table.attrs.get("by_reason")
        if by_reason is None:
            by_reason = table["reason"].value_counts().to_dict() if len(table) else {}
        return cls(int(table.attrs.get("distinct", len(table))), by_reason, policy, int(len(table)))

    def as_dict(self) -> dict:
        return {"images": self.images, "rows": self.rows, "by_reason": self.by_reason, "policy": self.policy}


@dataclass(frozen=True)
class Throughput:
    """``throughput``: the embed stage's speed over the images not found in the cache."""

    images_per_second: float | None = None
    computed: int | None = None
    cached: int | None = None
    seconds: float | None = None

    @classmethod
    def from_dict(cls, d: Any) -> "Throughput":
        d = _block(d)
        return cls(d.get("images_per_second"), d.get("computed"), d.get("cached"), d.get("seconds"))


class RunResult:
    """One model x protocol result: the ``metrics.json`` object and typed views of it.

    ``model`` and ``protocol`` are the names (what tables and pages group by); the
    sections are ``model_info``, ``protocol_info``, ``settings``, ``preprocessing``,
    ``throughput``, ``fta`` (typed) and ``metrics``, ``breakdowns``, ``transfer``,
    ``transfer_source`` (plain dicts: their keys are documented where they are computed).

    Parameters
    ----------
    data : dict, the object (kept as it is; the views read it).
    folder : the result's folder (where its CSVs and plots are), when known.
    """

    def __init__(self, data: dict, folder: str | os.PathLike | None = None) -> None:
        self.data = data
        self.folder = None if folder is None else Path(folder)

    def __repr__(self) -> str:
        return f"RunResult(model={self.model!r}, protocol={self.protocol!r}, folder={str(self.folder)!r})"

    @classmethod
    def of(cls, result: "RunResult | dict") -> "RunResult":
        """``result`` itself, or a result over a ``metrics.json`` dict."""
        return result if isinstance(result, RunResult) else cls(result)

    @classmethod
    def read(cls, path: str | os.PathLike, *, check: bool = True) -> "RunResult":
        """The result of a ``metrics.json`` file; ReportError naming it when it cannot be
        read or (``check``) is not one mfrkit wrote."""
        data = read_result(path)
        sections = ("model", "protocol", "metrics")
        if check and (not isinstance(data, dict) or not all(isinstance(data.get(k), dict) for k in sections)):
            raise ReportError(f"{path} is not a metrics.json written by mfrkit bench (expected a JSON object with "
                              f"{', '.join(sections)}); move it out of the results folder")
        return cls(data, Path(path).parent)

    # --- what it is of --------------------------------------------------------------------------------

    @property
    def model(self) -> str:
        """The model's name (``"None"`` when absent)."""
        return str(self.model_info.name)

    @property
    def model_sha256(self) -> str | None:
        return self.model_info.sha256

    @property
    def protocol(self) -> str:
        """The protocol's name (``"None"`` when absent)."""
        return str(self.protocol_info.name)

    @property
    def spec(self) -> str | None:
        spec = self.protocol_info.spec
        return str(spec) if spec else None

    @property
    def kind(self) -> str:
        """The protocol's kind, as a string (``"None"`` when absent)."""
        return str(self.protocol_info.kind)

    @property
    def subset(self) -> SubsetRecord | None:
        """The part of the protocol the result rests on (``--where`` / ``--limit``); None
        for a full-protocol result."""
        return self.protocol_info.subset

    @property
    def verification(self) -> bool:
        """Whether it holds 1:1 metrics (TAR@FAR, EER, ...; a kind this mfrkit does not know: False)."""
        return is_one_to_one(self.protocol_info.kind)

    # --- the sections -----------------------------------------------------------------------------

    @property
    def run_id(self) -> str | None:
        return self.data.get("run_id")

    @property
    def created(self) -> str | None:
        return self.data.get("created")

    @property
    def mfrkit_version(self) -> str | None:
        return self.data.get("mfrkit_version")

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo.from_dict(self.data.get("model"))

    @property
    def protocol_info(self) -> ProtocolInfo:
        return ProtocolInfo.from_dict(self.data.get("protocol"))

    @property
    def settings(self) -> RunSettings:
        return RunSettings.from_dict(self.data.get("settings"))

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.data.get("preprocessing"))

    @property
    def fta(self) -> FtaSummary:
        return FtaSummary.from_dict(self.data.get("fta"))

    @property
    def throughput(self) -> Throughput:
        return Throughput.from_dict(self.data.get("throughput"))

    @property
    def metrics(self) -> dict:
        return _block(self.data.get("metrics"))

    @property
    def breakdowns(self) -> dict:
        return _block(self.data.get("breakdowns"))

    @property
    def transfer(self) -> dict | None:
        """``from, far_target, fmr, fnmr, ...``: the rates at another protocol's threshold."""
        return self.data.get("transfer") or None

    @property
    def transfer_source(self) -> dict | None:
        """``far_target, threshold, far``: this protocol's threshold the run transferred."""
        return self.data.get("transfer_source") or None

    def rules(self, wanted: str | None = None) -> str:
        """The rule set whose numbers are shown: ``wanted``, else the run's, else ``mfrkit``."""
        return wanted or self.settings.rules or "mfrkit"

    def rule_block(self, rules: str) -> dict:
        """The metrics of rule set ``rules``: ``mfrkit``'s at the top level, the others under their name."""
        return self.metrics if rules == "mfrkit" else _block(self.metrics.get(rules))

    # --- writing ------------------------------------------------------------------------------------

    def finish(self, metrics: dict, breakdowns: dict, search_device: str | None) -> None:
        """Add what the evaluator computed (and where its scores were computed)."""
        self.data["settings"]["search_device"] = search_device
        self.data.update(metrics=metrics, breakdowns=breakdowns, path=str(self.folder))

    def set_transfer_source(self, threshold: dict) -> None:
        """This protocol's threshold that the run applies to its other 1:1 protocols."""
        self.data["transfer_source"] = threshold

    def set_transfer(self, rates: dict) -> None:
        """This protocol's error rates at another protocol's threshold."""
        self.data["transfer"] = rates

    def write(self) -> Path:
        """Write ``<folder>/metrics.json`` (strict JSON, atomically); returns its path."""
        path = Path(self.folder) / METRICS_NAME
        write_json(path, self.data)
        return path


def new_result(run: dict, *, model: dict, settings: dict, preprocessing: dict, throughput: dict, protocol: dict,
               fta: FtaSummary, folder: Path) -> RunResult:
    """A result being made: the run's ``run_id, created, mfrkit_version`` (``run``) and
    the sections known before the protocol is evaluated; :meth:`RunResult.finish` adds
    the rest."""
    data = {**run, "model": model, "settings": dict(settings), "preprocessing": preprocessing, "throughput": throughput,
            "protocol": protocol, "fta": fta.as_dict()}
    return RunResult(data, folder)


def metrics_files(roots: Sequence[str | os.PathLike]) -> list[Path]:
    """Every ``metrics.json`` under each root (a run folder or a folder of runs), resolved,
    each once, in order; a root that is not a folder or holds none is an error."""
    files: list[Path] = []
    for p in roots:
        root = Path(p)
        if not root.is_dir():
            raise ReportError(f"no results folder at {root}")
        found = sorted(root.rglob(METRICS_NAME))
        if not found:
            raise ReportError(f"no {METRICS_NAME} under {root}; run `mfrkit bench` first")
        files += found
    return list(dict.fromkeys(f.resolve() for f in files))
