"""CALFW ``pairs_CALFW.txt``: two lines per pair, ``image token``.

Both lines of a pair carry the same token: for a positive (genuine) pair it is the
pair's fold, 1 to 10; every negative pair has token 0, and the file lists the
positives first. Negative fold membership is not written in the file: the n-th block
of negatives, as large as the n-th fold's positives, is taken as fold n (the order in
which the official file lists them). Image names are bare file names
(``Name_0001.jpg``), matched to the manifest by :mod:`..interop`.

CPLFW's file has the same two-line layout but its token is the label (1 genuine,
0 impostor): it is the ``cplfw`` format (:mod:`.cplfw`), which shares
:func:`read_two_line_pairs` with this one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import PairFormatError
from .base import (
    PairFormat,
    check_ref,
    line_error,
    looks_like_header,
    no_whitespace,
    pair_table,
    parse_int,
    register,
    text_lines,
)


def read_two_line_pairs(data: bytes, source: str, fmt: str) -> list[tuple[int, str, str, int]]:
    """``(line number, left, right, token)`` of every pair of a two-lines-per-pair file.

    Each line is ``image token``; both lines of a pair must carry the same token.
    CRLF line ends are accepted, and so is a header line such as ``name same_person``
    (copies found in the wild add one): line 1 is skipped when no field of it is an
    integer or an image file name.
    """
    lines = text_lines(data, source)
    if lines and looks_like_header(lines[0][1].split()):
        lines = lines[1:]
    if not lines:
        raise PairFormatError(f"{source} holds no pairs")
    if len(lines) % 2:
        raise PairFormatError(f"{source}: {len(lines)} pair lines; {fmt} files have two lines per pair "
                              f"('image token' on each)")
    parsed = []
    for k in range(0, len(lines), 2):
        (l1, a), (l2, b) = lines[k], lines[k + 1]
        fa, fb = a.split(), b.split()
        for lineno, fields in ((l1, fa), (l2, fb)):
            if len(fields) != 2:
                raise line_error(source, lineno, f"expected 'image token', got {len(fields)} fields")
        ta, tb = parse_int(fa[1], source, l1, "token"), parse_int(fb[1], source, l2, "token")
        if ta != tb:
            raise line_error(source, l2, f"the two lines of a pair carry different tokens ({ta} and {tb})")
        if ta < 0:
            raise line_error(source, l1, f"token must be >= 0, got {ta}")
        parsed.append((l1, check_ref(fa[0], source, l1), check_ref(fb[0], source, l2), ta))
    return parsed


def read_calfw(data: bytes, *, source: str = "pairs_CALFW.txt") -> pd.DataFrame:
    parsed = [(l, r, t) for _, l, r, t in read_two_line_pairs(data, source, "CALFW")]
    tokens = np.array([t for _, _, t in parsed], dtype=np.int64)
    pos = tokens > 0
    folds = np.zeros(len(parsed), dtype=np.int64)
    folds[pos] = tokens[pos] - 1
    # Negatives: consecutive blocks sized like the positive folds, in fold order.
    pos_sizes = np.bincount(folds[pos], minlength=1) if pos.any() else np.array([0])
    n_neg = int((~pos).sum())
    if n_neg:
        if pos_sizes.sum() == n_neg:
            folds[~pos] = np.repeat(np.arange(len(pos_sizes)), pos_sizes)
        else:
            raise PairFormatError(f"{source}: {n_neg} negative pairs but {int(pos_sizes.sum())} positive ones; "
                                  "the folds of negative pairs cannot be recovered")
    return pair_table([(int(f), l, r, int(t > 0)) for f, (l, r, t) in zip(folds, parsed)])


def write_calfw(pairs: pd.DataFrame) -> bytes:
    """Positives by fold (token fold+1), then negatives by fold (token 0)."""
    sizes = pairs.groupby(["fold", "label"]).size().unstack(fill_value=0)
    for col in (0, 1):
        if col not in sizes.columns:
            sizes[col] = 0
    if not (sizes[0] == sizes[1]).all():
        raise PairFormatError("CALFW files can only keep folds with as many impostor as genuine pairs per fold; "
                              "export as csv instead")
    lines = []
    for label in (1, 0):
        sub = pairs[pairs["label"] == label].sort_values("fold", kind="stable")
        folds = sorted(pairs["fold"].unique())
        rank = {f: i + 1 for i, f in enumerate(folds)}
        for fold, l, r in zip(sub["fold"], sub["left"], sub["right"]):
            token = rank[fold] if label else 0
            lines += [f"{no_whitespace(l, 'calfw')} {token}", f"{no_whitespace(r, 'calfw')} {token}"]
    return ("\n".join(lines) + "\n").encode("utf-8")


register(PairFormat("calfw", "CALFW pairs file: two lines per pair, 'image token' (token = fold 1-10, 0 = negative)",
                    read_calfw, write_calfw))
