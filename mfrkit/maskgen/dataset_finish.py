"""Finishing a dataset job (``synth``, ``partial``) a part at a time.

The journal holds every item's rows; the finish folds them into the job's files without
ever holding them all, in two passes over the journal, part by part of the plan:

1. **survey**: the rows of each part become frames of about :data:`FRAME_ROWS` rows
   (exactly the frames the job used to build in memory); failures and fallbacks are
   written to ``failures.csv`` as they come, the quality checks and the contact sheet's
   candidates counted, and a few rows of each frame kept as its *signature*: together
   they give the manifest's column types exactly as one frame of every row would
   (:func:`manifest_schema`);
2. **write**: the frames again, written as row groups of the manifest
   (:class:`~mfrkit.data.manifest_stream.ManifestWriter`), the contact sheet's rows
   picked on the way.

The data card is then made from the manifest file, streamed.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ..atomic import atomic_path
from ..data.manifest import STATUS_OK, arrow_rows, manifest_columns
from ..jobs import Plan
from .contact_sheet import sheet_candidates

#: Result rows turned into one frame at a time.
FRAME_ROWS = 4096
#: Frame signatures held before they are folded into one (:func:`survey`).
SIGNATURES_HELD = 64
#: Columns of ``failures.csv``.
FAILURE_COLUMNS = ["image_id", "source_id", "source_path", "status", "message"]
#: Columns of the result rows that are not the manifest's: to ``failures.csv`` only, or
#: where a container output's image waited in a worker's part file.
MESSAGE_COLUMNS = ("message", "source_path", "part_file", "part_offset")


def result_frames(results: Mapping, items: Sequence | Plan, extra: Callable[[], Iterator[dict]],
                  place: Callable[[dict], dict] | None = None) -> Iterator[pd.DataFrame]:
    """Every item's rows in plan order (``job_item`` added; each through ``place`` when
    given: a container output's), then the rows ``extra()`` gives (a row per unusable
    source), as frames of at least :data:`FRAME_ROWS` rows, cut at item boundaries."""
    parts = items.parts() if isinstance(items, Plan) else [(0, items)]
    rows: list[dict[str, Any]] = []
    for number, part in parts:
        found = results.part(number) if isinstance(items, Plan) else results
        for it in part:
            for r in found.get(it.key, []):
                r = {**r, "job_item": it.key}
                rows.append(place(r) if place is not None else r)
            if len(rows) >= FRAME_ROWS:
                yield pd.DataFrame(rows)
                rows = []
    for r in extra():
        rows.append(r)
        if len(rows) >= FRAME_ROWS:
            yield pd.DataFrame(rows)
            rows = []
    if rows:
        yield pd.DataFrame(rows)


def signature(frame: pd.DataFrame) -> pd.DataFrame:
    """The few rows of ``frame`` that decide its columns' types when frames are put
    together: per column its first missing value, its first value, and for a column of
    Python objects the first value of each Python type."""
    keep: set[int] = set()
    for col in frame.columns:
        values = frame[col]
        missing = values.isna().to_numpy()
        if missing.any():
            keep.add(int(np.argmax(missing)))
        if not missing.all():
            keep.add(int(np.argmax(~missing)))
            if values.dtype == object:
                seen: set[type] = set()
                for i in np.flatnonzero(~missing):
                    kind = type(values.iat[i])
                    if kind not in seen:
                        seen.add(kind)
                        keep.add(int(i))
    return frame.iloc[sorted(keep)]


def manifest_schema(signatures: list[pd.DataFrame]) -> pa.Schema:
    """The Arrow schema of the manifest made of the frames whose :func:`signature`\\ s
    these are (as :func:`~mfrkit.data.manifest.write_manifest` would type one frame of
    every row)."""
    joined = pd.concat(signatures, ignore_index=True) if signatures else pd.DataFrame()
    joined = joined.drop(columns=[c for c in MESSAGE_COLUMNS if c in joined.columns])
    return arrow_rows(manifest_columns(joined)).schema


@dataclass
class Survey:
    """What the first pass found (see the module docstring)."""

    outputs: int = 0
    failures: Counter = field(default_factory=Counter)
    checked: int = 0
    passed: int = 0
    reasons: Counter = field(default_factory=Counter)
    ok: int = 0
    made: int = 0
    signatures: list = field(default_factory=list)

    def quality(self) -> dict | None:
        if not self.checked:
            return None
        return {"checked": self.checked, "passed": self.passed, "failed_by_reason": dict(sorted(self.reasons.items()))}

    def sheet(self) -> tuple[bool, int]:
        """Whether the contact sheet draws from the masked or partial outputs (else every
        usable row), and how many rows it draws from."""
        return (True, self.made) if self.made else (False, self.ok)


def survey(frames: Iterator[pd.DataFrame], failures_path: Path) -> Survey:
    """Pass 1: count, keep signatures, and write ``failures.csv`` (atomically): the rows
    of sources without output, then those of outputs kept by a fallback (an unmasked
    copy), their fallback as the status."""
    found = Survey()
    with atomic_path(failures_path) as tmp, open(tmp, "w", newline="") as out, tempfile.TemporaryFile("w+", newline="", dir=failures_path.parent) as fell_out:
        pd.DataFrame(columns=FAILURE_COLUMNS).to_csv(out, index=False)
        for frame in frames:
            found.signatures.append(signature(frame))
            if len(found.signatures) >= SIGNATURES_HELD:
                # One signature per frame would grow with the dataset (a DataFrame of a few
                # rows per 4,096 images); the signature of their concatenation keeps every
                # row that decides a type (first missing, first value, first of each type).
                found.signatures = [signature(pd.concat(found.signatures, ignore_index=True))]
            ok_rows = frame["status"] == STATUS_OK
            ok = frame[ok_rows]
            failed = frame[~ok_rows]
            found.outputs += len(ok)
            found.failures.update(failed["status"].astype(str).tolist())
            if len(failed):
                failed.reindex(columns=FAILURE_COLUMNS).to_csv(out, index=False, header=False)
            if "fallback" in frame.columns:
                fell = frame[frame["fallback"].notna() & ok_rows].copy()
                fell["status"] = fell["fallback"]
                found.failures.update(fell["status"].astype(str).tolist())
                if len(fell):
                    fell.reindex(columns=FAILURE_COLUMNS).to_csv(fell_out, index=False, header=False)
            if "quality_ok" in ok.columns:
                checked = ok[ok["quality_ok"].notna()]
                passed = checked["quality_ok"].astype(bool)
                found.checked += len(checked)
                found.passed += int(passed.sum())
                for failed_checks in checked.loc[~passed, "quality_failed"] if "quality_failed" in checked.columns else []:
                    found.reasons.update(r for r in str(failed_checks or "").split(",") if r)
            is_ok, made = sheet_candidates(frame)
            found.ok += int(is_ok.sum())
            found.made += int(made.sum())
        fell_out.seek(0)
        while block := fell_out.read(1 << 20):
            out.write(block)
    return found


def write_rows(frames: Iterator[pd.DataFrame], writer, picks: np.ndarray, made_only: bool) -> list[dict]:
    """Pass 2: write the frames (without their failure messages) through ``writer``; the
    rows of the contact sheet (the ``picks``-th candidates) come back."""
    wanted = set(picks.tolist())
    rows, seen = [], 0
    for frame in frames:
        table = manifest_columns(frame.drop(columns=[c for c in MESSAGE_COLUMNS if c in frame.columns]))
        is_ok, made = sheet_candidates(table)
        candidates = np.flatnonzero(made if made_only else is_ok)
        for i, at in enumerate(candidates, start=seen):
            if i in wanted:
                rows.append(table.iloc[at].to_dict())
        seen += len(candidates)
        writer.write(table)
    return rows


def failures_of(found: Survey) -> dict[str, int]:
    """Sources without output (and outputs kept by a fallback), by reason, sorted."""
    return {str(k): int(v) for k, v in sorted(found.failures.items())}
