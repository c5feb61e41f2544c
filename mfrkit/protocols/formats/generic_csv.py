"""Generic CSV: a header naming ``left``, ``right``, ``label`` and optionally ``fold``.

Columns may come in any order; other columns are ignored. ``label`` is 0/1 (or
true/false). Without a ``fold`` column the pairs are split into ``n_folds``
contiguous blocks (default 10). mfrkit writes ``fold,left,right,label``.
"""

from __future__ import annotations

import csv
import io

import pandas as pd

from ..errors import PairFormatError
from .base import (
    DEFAULT_FLAT_FOLDS,
    PairFormat,
    check_ref,
    contiguous_folds,
    line_error,
    pair_table,
    parse_int,
    parse_label,
    register,
    text_lines,
)


def read_csv_pairs(data: bytes, *, source: str = "pairs.csv", n_folds: int = DEFAULT_FLAT_FOLDS) -> pd.DataFrame:
    text_lines(data, source)  # encoding and NUL checks
    try:  # newline="": the csv module reads line ends itself (a lone CR, a CR inside quotes)
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    except csv.Error as exc:
        raise PairFormatError(f"{source} is not a readable CSV file: {exc}") from None
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not numbered:
        raise PairFormatError(f"{source} is empty")
    header = [c.strip().lower() for c in numbered[0][1]]
    missing = [c for c in ("left", "right", "label") if c not in header]
    if missing:
        raise PairFormatError(f"{source}: the header must name left, right and label (missing: {', '.join(missing)})")
    col = {name: header.index(name) for name in ("left", "right", "label", "fold") if name in header}
    parsed = []
    for lineno, r in numbered[1:]:
        if len(r) != len(header):
            raise line_error(source, lineno, f"expected {len(header)} fields, got {len(r)}")
        fold = parse_int(r[col["fold"]].strip(), source, lineno, "fold") if "fold" in col else None
        if fold is not None and fold < 0:
            raise line_error(source, lineno, "fold must be >= 0")
        parsed.append((fold, check_ref(r[col["left"]].strip(), source, lineno),
                       check_ref(r[col["right"]].strip(), source, lineno), parse_label(r[col["label"]], source, lineno)))
    if "fold" not in col:
        folds = contiguous_folds(len(parsed), n_folds)
        parsed = [(int(f), l, r, lab) for f, (_, l, r, lab) in zip(folds, parsed)]
    return pair_table(parsed)


def write_csv_pairs(pairs: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("fold", "left", "right", "label"))
    writer.writerows(zip(pairs["fold"].astype(int), pairs["left"], pairs["right"], pairs["label"].astype(int)))
    return buf.getvalue().encode("utf-8")


register(PairFormat("csv", "generic CSV with a header: left,right,label[,fold]", read_csv_pairs, write_csv_pairs,
                    read_options=("n_folds",)))
