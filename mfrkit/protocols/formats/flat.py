"""One-line-per-pair formats without folds: MLFW ``pairs.txt`` and ``pairs_label.txt``.

MLFW: ``img1<TAB>img2<TAB>label``. ``pairs_label.txt`` (FaceX-Zoo and others):
``path1 path2 0|1``. Neither stores folds: on reading, pairs are split into
``n_folds`` contiguous blocks (default 10, as insightface-style evaluation does), and
writing refuses a protocol whose folds that split would not give back.
"""

from __future__ import annotations

import pandas as pd

from .base import (
    DEFAULT_FLAT_FOLDS,
    PairFormat,
    check_contiguous,
    check_ref,
    contiguous_folds,
    line_error,
    no_whitespace,
    pair_table,
    parse_label,
    register,
    text_lines,
)


def _read(data: bytes, source: str, n_folds: int) -> pd.DataFrame:
    parsed = []
    for lineno, line in text_lines(data, source):
        fields = line.split()
        if len(fields) != 3:
            raise line_error(source, lineno, f"expected 'image1 image2 label', got {len(fields)} fields")
        parsed.append((check_ref(fields[0], source, lineno), check_ref(fields[1], source, lineno),
                       parse_label(fields[2], source, lineno)))
    folds = contiguous_folds(len(parsed), n_folds)
    return pair_table([(int(f), l, r, lab) for f, (l, r, lab) in zip(folds, parsed)])


def _write(pairs: pd.DataFrame, fmt: str, sep: str) -> bytes:
    check_contiguous(pairs, fmt)
    lines = [sep.join((no_whitespace(l, fmt), no_whitespace(r, fmt), str(int(lab))))
             for l, r, lab in zip(pairs["left"], pairs["right"], pairs["label"])]
    return ("\n".join(lines) + "\n").encode("utf-8")


def read_mlfw(data: bytes, *, source: str = "pairs.txt", n_folds: int = DEFAULT_FLAT_FOLDS) -> pd.DataFrame:
    return _read(data, source, n_folds)


def write_mlfw(pairs: pd.DataFrame) -> bytes:
    return _write(pairs, "mlfw", "\t")


def read_pairs_label(data: bytes, *, source: str = "pairs_label.txt", n_folds: int = DEFAULT_FLAT_FOLDS) -> pd.DataFrame:
    return _read(data, source, n_folds)


def write_pairs_label(pairs: pd.DataFrame) -> bytes:
    return _write(pairs, "pairs-label", " ")


register(PairFormat("mlfw", "MLFW pairs.txt: 'img1<TAB>img2<TAB>label', contiguous folds", read_mlfw, write_mlfw,
                    read_options=("n_folds",)))
register(PairFormat("pairs-label", "pairs_label.txt: 'path1 path2 0|1', contiguous folds", read_pairs_label,
                    write_pairs_label, read_options=("n_folds",)))
