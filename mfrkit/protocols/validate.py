"""Validate a protocol folder against its manifests and the image files.

Nothing is changed or dropped: every problem is reported with the rows it concerns
(1-based data rows of ``pairs.csv`` / ``probes.csv`` / ``gallery.csv``, with their
fold), and :attr:`ValidationReport.row_status` gives, for every row in file order,
``"ok"`` or the first problem that makes the comparison a failure. A scorer that
follows it counts those rows as failures instead of skipping them, so folds and
positions never shift.

Checks: manifests unchanged (fingerprint); every id in its manifest, with status
``ok``, a safe path and (``check_files``) an existing file; fold sizes and balance;
identity-disjoint folds; labels consistent with identities; duplicate and self pairs;
the leakage guard (two sides of one source photo); for 1:N, the gallery / probe
identities, ``mated``, ``distractor`` and ``mate_id`` columns; for all-pairs, each
side's images (ids, status, files, identities and source units against the manifests,
duplicates) and the comparison counts recorded in ``protocol.json``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.manifest import STATUS_OK, Manifest, safe_relpath
from ..errors import ManifestError
from .folder import ManifestArg, Protocol, load_protocol, read_info, resolve_manifests
from .kinds import protocol_kind
from .pool import RootResolver

ERROR, WARNING = "error", "warning"
#: Problems that make a row's comparison impossible (row_status is set for them).
ROW_FAILURES = ("no_image", "unknown_id", "bad_status", "unsafe_path", "missing_file", "self_pair")


@dataclass
class Problem:
    """One kind of problem. ``rows``: 1-based data rows (all of them); ``file``: which table."""

    kind: str
    severity: str
    message: str
    rows: list[int] = field(default_factory=list)
    file: str = ""

    @property
    def count(self) -> int:
        return len(self.rows) if self.rows else 1


@dataclass
class ValidationReport:
    """Result of :func:`validate_protocol`.

    Attributes
    ----------
    name, kind : str
    problems : list of Problem
    row_status : list of str
        One entry per row of ``pairs.csv`` (1:1), ``probes.csv`` (1:N) or
        ``probe_images.csv`` (all-pairs), in file order: ``"ok"`` or the kind of the first
        problem that makes it a failure (an all-pairs image: all its comparisons).
    gallery_status : list of str
        1:N: the same for ``gallery.csv``; all-pairs: for ``reference_images.csv``.
    counts : dict
    """

    name: str
    kind: str
    problems: list[Problem] = field(default_factory=list)
    row_status: list[str] = field(default_factory=list)
    gallery_status: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No problem of severity ``error``."""
        return not any(p.severity == ERROR for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    def failed_rows(self) -> np.ndarray:
        """0-based indices of the rows that cannot be compared (kept, to be scored as failures)."""
        return np.flatnonzero(np.asarray(self.row_status) != "ok")


class _ImageCheck:
    """Per-role lookups: is an id known, usable, present on disk; its identity and source."""

    def __init__(self, manifest: Manifest, resolver: RootResolver, check_files: bool) -> None:
        t = manifest.table
        self.ids = t["image_id"].astype(str)
        self.status = dict(zip(self.ids, t["status"].astype(object)))
        ident = t["identity"].astype(object).where(t["identity"].notna(), None)
        self.identity = dict(zip(self.ids, ident))
        self.path = dict(zip(self.ids, t["path"].astype(str)))
        self.manifest, self.resolver, self.check_files = manifest, resolver, check_files
        self._file_cache: dict[str, str] = {}

    def problem(self, image_id: str) -> str | None:
        """The row-failure kind for ``image_id``, or None when it is usable."""
        if image_id == "":
            return "no_image"
        if image_id not in self.status:
            return "unknown_id"
        if self.status[image_id] != STATUS_OK:
            return "bad_status"
        if image_id not in self._file_cache:
            try:
                rel = safe_relpath(self.path[image_id])
                ok = (not self.check_files) or (self.manifest.root / rel).is_file()
                self._file_cache[image_id] = "" if ok else "missing_file"
            except ManifestError:
                self._file_cache[image_id] = "unsafe_path"
        return self._file_cache[image_id] or None

    def root(self, image_id: str) -> str:
        return self.resolver.root(image_id)


def _rows_text(rows: list[int], folds: pd.Series | None = None, limit: int = 5) -> str:
    shown = []
    for r in rows[:limit]:
        shown.append(f"{r} (fold {int(folds.iloc[r - 1])})" if folds is not None else str(r))
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(shown) + more


_MESSAGES = {
    "no_image": "no image could be supplied (empty id)",
    "unknown_id": "id not in the {role} manifest",
    "bad_status": "image's manifest status is not ok",
    "unsafe_path": "image's path escapes the dataset root",
    "missing_file": "image file is missing on disk",
}


def validate_protocol(folder: str | os.PathLike | Protocol, manifests: ManifestArg = None, *,
                      check_files: bool = True) -> ValidationReport:
    """Check a protocol folder (or a loaded :class:`Protocol`); see the module docstring.

    Parameters
    ----------
    folder : path-like or Protocol
    manifests : see :func:`~.folder.load_protocol`
    check_files : bool
        Also check that every image file exists.

    Returns
    -------
    ValidationReport (``.ok`` is False when any error was found). Only a folder that
    cannot be read at all raises.
    """
    stale: list[str] = []
    if isinstance(folder, Protocol):
        protocol = folder
    else:
        info = read_info(folder)
        resolved, stale = resolve_manifests(info, Path(folder), manifests, check=False)
        protocol = load_protocol(folder, resolved, check_manifests=False)
    report = ValidationReport(name=protocol.name, kind=protocol.kind)
    for msg in stale:
        report.problems.append(Problem("stale_manifest", ERROR, msg))
    distinct = []
    for m in protocol.manifests.values():
        if all(m is not d for d in distinct):
            distinct.append(m)
    resolver = RootResolver(distinct)
    checks = {role: _ImageCheck(protocol.manifest(role), resolver, check_files) for role in ("reference", "probe")}
    protocol_kind(protocol.kind).validate(protocol, checks, report)
    return report


def _one_fold_asked(info: dict) -> bool:
    """True when one fold is what was asked for: ``n_folds`` 1 given when making or
    importing, or an LFW View 1 file (its header announces one set)."""
    params = info.get("params") or {}
    asked = params.get("n_folds", (params.get("read_options") or {}).get("n_folds"))
    return asked == 1 or (info.get("source") or {}).get("format") == "lfw"


def _image_problems(ids: pd.Series, check: _ImageCheck, role: str, column: str, file: str,
                    folds: pd.Series | None, status: list[str], report: ValidationReport) -> None:
    found: dict[str, list[int]] = defaultdict(list)
    for i, image_id in enumerate(ids):
        if image_id is None:  # not applicable to this row
            continue
        kind = check.problem(image_id)
        if kind:
            found[kind].append(i + 1)
            if status[i] == "ok":
                status[i] = kind
    for kind in ROW_FAILURES:
        rows = found.get(kind)
        if rows:
            what = _MESSAGES[kind].format(role=role)
            example = ids.iloc[rows[0] - 1]
            report.problems.append(Problem(
                kind, ERROR, f"{file} {column}: {len(rows)} row(s) where the {what} (e.g. {example!r}); rows "
                f"{_rows_text(rows, folds)}. They are kept in place and count as failures.", rows, file))


def validate_pairs(protocol: Protocol, checks: dict[str, _ImageCheck], report: ValidationReport) -> None:
    pairs = protocol.pairs
    n = len(pairs)
    status = ["ok"] * n
    folds = pairs["fold"]
    _image_problems(pairs["left_id"], checks["reference"], "reference", "left_id", "pairs.csv", folds, status, report)
    _image_problems(pairs["right_id"], checks["probe"], "probe", "right_id", "pairs.csv", folds, status, report)

    left, right, labels = pairs["left_id"].tolist(), pairs["right_id"].tolist(), pairs["label"].tolist()
    self_rows = [i + 1 for i in range(n) if left[i] and left[i] == right[i] and
                 checks["reference"].manifest is checks["probe"].manifest]
    if self_rows:
        for r in self_rows:
            if status[r - 1] == "ok":
                status[r - 1] = "self_pair"
        report.problems.append(Problem("self_pair", ERROR, f"{len(self_rows)} pair(s) compare an image with itself: "
                                       f"rows {_rows_text(self_rows, folds)}", self_rows, "pairs.csv"))

    # Fold sizes and balance.
    per_fold = pairs.groupby(["fold", "label"]).size().unstack(fill_value=0).reindex(columns=[0, 1], fill_value=0)
    report.counts = {"pairs": n, "genuine": int(sum(labels)), "impostor": n - int(sum(labels)), "folds": {
        int(f): {"genuine": int(r[1]), "impostor": int(r[0])} for f, r in per_fold.iterrows()}}
    fold_ids = sorted(int(f) for f in per_fold.index)
    if fold_ids != list(range(len(fold_ids))):
        report.problems.append(Problem("fold_numbers", WARNING, f"folds are numbered {fold_ids}, not 0..{len(fold_ids) - 1}"))
    unbalanced = [f for f, r in per_fold.iterrows() if r[0] != r[1]]
    if unbalanced:
        report.problems.append(Problem("unbalanced_fold", WARNING, "fold(s) with unequal genuine and impostor counts: "
                                       + ", ".join(f"{int(f)} ({per_fold.at[f, 1]} + {per_fold.at[f, 0]})"
                                                   for f in unbalanced[:10])))
    if len(fold_ids) == 1 and n > 1 and not _one_fold_asked(protocol.info):
        report.problems.append(Problem(
            "single_fold", WARNING, f"all {n} pairs are in one fold, so the k-fold accuracy (mean and std over folds) "
            "cannot be computed and the bench skips it. Public 1:1 protocols have folds (LFW View 2, CALFW, CPLFW, "
            "MLFW, insightface .bin: 10): if this one was imported, check its format (a CPLFW pairs file is "
            "--format cplfw, not calfw) or give --folds"))
    sizes = per_fold.sum(axis=1)
    if sizes.nunique() > 1:
        report.problems.append(Problem("uneven_folds", WARNING, f"folds differ in size (from {int(sizes.min())} to "
                                       f"{int(sizes.max())} pairs)"))

    # Identities: labels and fold-disjointness.
    ident_l = [checks["reference"].identity.get(i) for i in left]
    ident_r = [checks["probe"].identity.get(i) for i in right]
    unknown = sum(1 for a, b in zip(ident_l, ident_r) if a is None or b is None)
    if unknown:
        report.problems.append(Problem("unknown_identity", WARNING, f"{unknown} pair(s) involve images without an "
                                       "identity: label and fold-disjointness checks skip them"))
    bad_label = [i + 1 for i in range(n) if ident_l[i] is not None and ident_r[i] is not None
                 and (ident_l[i] == ident_r[i]) != bool(labels[i])]
    if bad_label:
        report.problems.append(Problem("label_mismatch", ERROR, f"{len(bad_label)} pair(s) whose label disagrees with "
                                       f"the manifests' identities: rows {_rows_text(bad_label, folds)}",
                                       bad_label, "pairs.csv"))
    folds_of: dict[str, set] = defaultdict(set)
    for f, a, b in zip(folds.tolist(), ident_l, ident_r):
        for ident in (a, b):
            if ident is not None:
                folds_of[ident].add(int(f))
    shared = sorted(i for i, fs in folds_of.items() if len(fs) > 1)
    if shared:
        report.problems.append(Problem(
            "identity_overlap", WARNING, f"folds are not identity-disjoint: {len(shared)} identities appear in more "
            f"than one fold (e.g. {shared[0]!r} in folds {sorted(folds_of[shared[0]])}); reported, not changed"))

    # Duplicates and leakage.
    seen: dict[tuple[str, str], int] = {}
    dups = []
    for i, (a, b) in enumerate(zip(left, right)):
        key = (a, b) if a <= b else (b, a)
        if key in seen:
            dups.append(i + 1)
        else:
            seen[key] = i + 1
    if dups:
        report.problems.append(Problem("duplicate_pair", WARNING, f"{len(dups)} pair(s) repeat an earlier pair: rows "
                                       f"{_rows_text(dups, folds)}", dups, "pairs.csv"))
    leak = [i + 1 for i in range(n) if status[i] == "ok" and left[i] != right[i]
            and checks["reference"].root(left[i]) == checks["probe"].root(right[i])]
    if leak:
        allowed = bool((protocol.info.get("params") or {}).get("allow_same_source"))
        report.problems.append(Problem(
            "same_source", WARNING if allowed else ERROR,
            f"{len(leak)} pair(s) compare two images of the same source photo (a synthetic image with its source or "
            f"another copy of it): rows {_rows_text(leak, folds)}", leak, "pairs.csv"))
    report.row_status = status


def validate_identification(protocol: Protocol, checks: dict[str, _ImageCheck], report: ValidationReport) -> None:
    gallery, probes = protocol.gallery, protocol.probes
    g_status, p_status = ["ok"] * len(gallery), ["ok"] * len(probes)
    _image_problems(gallery["image_id"], checks["reference"], "reference", "image_id", "gallery.csv", None, g_status,
                    report)
    _image_problems(probes["image_id"], checks["probe"], "probe", "image_id", "probes.csv", None, p_status, report)
    mates = probes["mate_id"]
    has_mate = mates != ""
    if has_mate.any():
        mate_status = ["ok"] * len(probes)
        _image_problems(mates.astype(object).where(has_mate, None), checks["reference"], "reference", "mate_id", "probes.csv", None, mate_status, report)
        p_status = [p if p != "ok" else m for p, m in zip(p_status, mate_status)]

    for file, table, role in (("gallery.csv", gallery, "reference"), ("probes.csv", probes, "probe")):
        wrong = [i + 1 for i, (iid, ident) in enumerate(zip(table["image_id"], table["identity"]))
                 if checks[role].identity.get(iid) is not None and checks[role].identity.get(iid) != ident]
        if wrong:
            report.problems.append(Problem("identity_mismatch", ERROR, f"{file}: {len(wrong)} row(s) whose identity "
                                           f"differs from the manifest's: rows {_rows_text(wrong)}", wrong, file))
    dup_g = [i + 1 for i in np.flatnonzero(gallery["image_id"].duplicated().to_numpy())]
    if dup_g:
        report.problems.append(Problem("duplicate_gallery", WARNING, f"gallery.csv lists {len(dup_g)} image(s) twice: "
                                       f"rows {_rows_text(dup_g)}", dup_g, "gallery.csv"))
    dup_p = [i + 1 for i in np.flatnonzero(probes.duplicated(["image_id", "mate_id"]).to_numpy())]
    if dup_p:
        report.problems.append(Problem("duplicate_probe", WARNING, f"probes.csv repeats {len(dup_p)} row(s): rows "
                                       f"{_rows_text(dup_p)}", dup_p, "probes.csv"))

    enrolled = set(gallery["identity"])
    probe_idents = set(probes["identity"])
    bad_mated = [i + 1 for i, (ident, m) in enumerate(zip(probes["identity"], probes["mated"]))
                 if bool(m) != (ident in enrolled)]
    if bad_mated:
        report.problems.append(Problem("mated_mismatch", ERROR, f"probes.csv: {len(bad_mated)} row(s) whose mated flag "
                                       f"disagrees with the gallery: rows {_rows_text(bad_mated)}", bad_mated,
                                       "probes.csv"))
    bad_dis = [i + 1 for i, (ident, d) in enumerate(zip(gallery["identity"], gallery["distractor"]))
               if bool(d) == (ident in probe_idents)]
    if bad_dis:
        report.problems.append(Problem("distractor_mismatch", WARNING, f"gallery.csv: {len(bad_dis)} row(s) whose "
                                       f"distractor flag disagrees with the probes: rows {_rows_text(bad_dis)}",
                                       bad_dis, "gallery.csv"))
    gallery_ids = set(gallery["image_id"])
    ident_of_gallery = dict(zip(gallery["image_id"], gallery["identity"]))
    bad_mate = [i + 1 for i, (m, ident) in enumerate(zip(mates, probes["identity"]))
                if m and (m not in gallery_ids or ident_of_gallery.get(m) != ident)]
    if bad_mate:
        report.problems.append(Problem("mate_mismatch", ERROR, f"probes.csv: {len(bad_mate)} mate_id(s) not in the "
                                       f"gallery or of another identity: rows {_rows_text(bad_mate)}", bad_mate,
                                       "probes.csv"))

    # Leakage: a probe's source photo must not be in its search set.
    roots_by_ident: dict[str, set] = defaultdict(set)
    for iid, ident in zip(gallery["image_id"], gallery["identity"]):
        roots_by_ident[ident].add(checks["reference"].root(iid))
    leak = []
    for i, (iid, ident, m) in enumerate(zip(probes["image_id"], probes["identity"], mates)):
        root = checks["probe"].root(iid)
        if (m and root == checks["reference"].root(m)) or (not m and root in roots_by_ident.get(ident, ())):
            leak.append(i + 1)
    if leak:
        report.problems.append(Problem("same_source", ERROR, f"probes.csv: {len(leak)} probe(s) whose own source photo "
                                       f"is in their gallery search set: rows {_rows_text(leak)}", leak, "probes.csv"))
    report.counts = {"gallery": len(gallery), "probes": len(probes), "mated": int(probes["mated"].sum()),
                     "distractors": int(gallery["distractor"].sum())}
    report.row_status, report.gallery_status = p_status, g_status


def validate_all_pairs(protocol: Protocol, checks: dict[str, _ImageCheck], report: ValidationReport) -> None:
    from .all_pairs import SIDE_FILES, count_comparisons

    status = {}
    for role, file in SIDE_FILES.items():
        table = protocol.reference_images if role == "reference" else protocol.probe_images
        st = ["ok"] * len(table)
        _image_problems(table["image_id"], checks[role], role, "image_id", file, None, st, report)
        status[role] = st
        dup = [i + 1 for i in np.flatnonzero(table["image_id"].duplicated().to_numpy())]
        if dup:
            report.problems.append(Problem("duplicate_image", ERROR, f"{file} lists {len(dup)} image(s) twice (their "
                                           f"comparisons would count twice): rows {_rows_text(dup)}", dup, file))
        ids, idents, units = table["image_id"].tolist(), table["identity"].tolist(), table["unit"].tolist()
        wrong = [i + 1 for i, (iid, ident) in enumerate(zip(ids, idents))
                 if checks[role].identity.get(iid) is not None and checks[role].identity.get(iid) != ident]
        if wrong:
            report.problems.append(Problem("identity_mismatch", ERROR, f"{file}: {len(wrong)} row(s) whose identity "
                                           f"differs from the manifest's: rows {_rows_text(wrong)}", wrong, file))
        no_ident = [i + 1 for i, ident in enumerate(idents) if not ident]
        if no_ident:
            report.problems.append(Problem("unknown_identity", ERROR, f"{file}: {len(no_ident)} row(s) without an "
                                           f"identity (genuine and impostor cannot be told apart): rows "
                                           f"{_rows_text(no_ident)}", no_ident, file))
        bad_unit = [i + 1 for i, (iid, unit) in enumerate(zip(ids, units))
                    if iid in checks[role].status and checks[role].root(iid) != unit]
        if bad_unit:
            r = bad_unit[0]
            report.problems.append(Problem(
                "unit_mismatch", ERROR, f"{file}: {len(bad_unit)} row(s) whose source unit differs from the manifests' "
                f"source_id chain (e.g. row {r}: {units[r - 1]!r}, the manifests say "
                f"{checks[role].root(ids[r - 1])!r}): the same-source exclusion would be wrong; rows "
                f"{_rows_text(bad_unit)}", bad_unit, file))
    same = checks["reference"].manifest.fingerprint() == checks["probe"].manifest.fingerprint()
    allow = bool((protocol.info.get("params") or {}).get("allow_same_source"))
    counts = count_comparisons(protocol.reference_images, protocol.probe_images, same_images=same,
                               allow_same_source=allow)
    recorded = protocol.info.get("counts")
    if isinstance(recorded, dict) and recorded:
        differ = sorted(k for k, v in counts.items() if recorded.get(k) != v)
        if differ:
            report.problems.append(Problem("counts_mismatch", ERROR, "protocol.json's counts differ from the image "
                                           "lists': " + ", ".join(f"{k} {recorded.get(k)} != {counts[k]}" for k in differ)))
    for what in ("genuine", "impostor"):
        if counts[what] == 0:
            report.problems.append(Problem(f"no_{what}", ERROR, f"the protocol has no {what} comparison"))
    report.counts = counts
    report.row_status, report.gallery_status = status["probe"], status["reference"]
