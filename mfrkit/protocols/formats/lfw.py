"""LFW ``pairs.txt`` (View 1 and View 2), MFR2 ``pairs.txt`` and LFW ``people.txt``.

LFW View 2 ``pairs.txt``: a header ``10<TAB>300`` (sets, pairs per set and label),
then for each set 300 matched lines ``name<TAB>n1<TAB>n2`` followed by 300 mismatched
lines ``name1<TAB>n1<TAB>name2<TAB>n2``. View 1 files (``pairsDevTrain.txt``,
``pairsDevTest.txt``) have a single-integer header N: N matched then N mismatched
lines, one set. Image ``n`` of ``name`` is ``name/name_%04d.jpg``.

MFR2 ``pairs.txt``: the same line forms, space separated, no header and no sets
(split into contiguous folds on reading); images are ``name/name_%04d.png``.

``people.txt`` (View 2: header ``10``, then per set a count line and ``name<TAB>n``
lines; View 1 ``peopleDevTrain.txt``: header N then N lines) lists identity folds:
read it with :func:`read_people` and pass it to ``make_verification(identity_folds=...)``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from ...userfiles import read_user_bytes
from ..errors import PairFormatError
from .base import (
    DEFAULT_FLAT_FOLDS,
    PairFormat,
    check_contiguous,
    check_ref,
    contiguous_folds,
    line_error,
    pair_table,
    parse_int,
    register,
    text_lines,
)

_REF = re.compile(r"^(?P<name>[^/\s]+)/(?P=name)_(?P<num>\d+)\.[A-Za-z0-9]+$")


def lfw_ref(name: str, num: int, ext: str, source: str, lineno: int) -> str:
    """``name/name_%04d<ext>``, checked to stay inside the dataset root."""
    if "/" in name or "\\" in name:
        raise line_error(source, lineno, f"name {name!r} contains a path separator")
    return check_ref(f"{name}/{name}_{num:04d}{ext}", source, lineno)


def _pair_line(fields: list[str], ext: str, source: str, lineno: int) -> tuple[str, str, int]:
    if len(fields) == 3:
        name, n1, n2 = fields
        return (lfw_ref(name, parse_int(n1, source, lineno, "image number"), ext, source, lineno),
                lfw_ref(name, parse_int(n2, source, lineno, "image number"), ext, source, lineno), 1)
    if len(fields) == 4:
        name1, n1, name2, n2 = fields
        return (lfw_ref(name1, parse_int(n1, source, lineno, "image number"), ext, source, lineno),
                lfw_ref(name2, parse_int(n2, source, lineno, "image number"), ext, source, lineno), 0)
    raise line_error(source, lineno, f"expected 3 fields (matched) or 4 fields (mismatched), got {len(fields)}")


def read_lfw(data: bytes, *, source: str = "pairs.txt", ext: str = ".jpg") -> pd.DataFrame:
    """Parse an LFW View 1 or View 2 ``pairs.txt``; folds are the sets (0-based)."""
    lines = text_lines(data, source)
    if not lines:
        raise PairFormatError(f"{source} is empty")
    lineno, header = lines[0]
    head = header.split()
    if len(head) == 2:
        n_sets, n = (parse_int(h, source, lineno, "header field") for h in head)
    elif len(head) == 1:
        n_sets, n = 1, parse_int(head[0], source, lineno, "header")
    else:
        raise line_error(source, lineno, f"header must be 'sets<TAB>pairs' or a single count, got {header!r}")
    if n_sets < 1 or n < 1:
        raise line_error(source, lineno, "header counts must be positive")
    body = lines[1:]
    if len(body) != n_sets * 2 * n:
        raise PairFormatError(f"{source}: the header announces {n_sets} set(s) of {n} matched + {n} mismatched pairs "
                              f"({n_sets * 2 * n} lines), but the file has {len(body)} pair lines")
    rows = []
    for i, (lineno, line) in enumerate(body):
        fold, pos = divmod(i, 2 * n)
        left, right, label = _pair_line(line.split(), ext, source, lineno)
        want = 1 if pos < n else 0
        if label != want:
            kind = "matched (3 fields)" if want else "mismatched (4 fields)"
            raise line_error(source, lineno, f"set {fold + 1} expects a {kind} line here")
        rows.append((fold, left, right, label))
    return pair_table(rows)


def read_mfr2(data: bytes, *, source: str = "pairs.txt", ext: str = ".png",
              n_folds: int = DEFAULT_FLAT_FOLDS) -> pd.DataFrame:
    """Parse an MFR2 ``pairs.txt`` (LFW-style lines, space separated, no header)."""
    lines = text_lines(data, source)
    parsed = [_pair_line(line.split(), ext, source, lineno) for lineno, line in lines]
    folds = contiguous_folds(len(parsed), n_folds)
    return pair_table([(int(f), l, r, lab) for f, (l, r, lab) in zip(folds, parsed)])


def _split_ref(ref: str) -> tuple[str, int]:
    m = _REF.match(ref)
    if not m:
        raise PairFormatError(f"path {ref!r} does not follow LFW's name/name_NNNN.ext layout; "
                              "export as csv or pairs-label instead")
    return m["name"], int(m["num"])


def _line(left: str, right: str, label: int, sep: str) -> str:
    (n1, i1), (n2, i2) = _split_ref(left), _split_ref(right)
    if label == 1:
        if n1 != n2:
            raise PairFormatError(f"genuine pair ({left}, {right}) has two names; LFW matched lines have one")
        return sep.join((n1, str(i1), str(i2)))
    return sep.join((n1, str(i1), n2, str(i2)))


def write_lfw(pairs: pd.DataFrame) -> bytes:
    """LFW ``pairs.txt``: per fold, its genuine pairs then its impostors; every fold
    must hold the same number n of each (header ``sets<TAB>n``; one fold: View 1 header)."""
    folds = sorted(pairs["fold"].unique())
    counts = {(int(f), int(lab)): int(n) for (f, lab), n in pairs.groupby(["fold", "label"]).size().items()}
    n = counts.get((int(folds[0]), 1), 0)
    for f in folds:
        g, i = counts.get((int(f), 1), 0), counts.get((int(f), 0), 0)
        if g != n or i != n:
            raise PairFormatError(f"LFW pairs.txt needs the same number of genuine and impostor pairs in every fold; "
                                  f"fold {f} has {g} + {i} (fold {folds[0]}: {n} + {n}). Export as csv instead.")
    out = [f"{len(folds)}\t{n}" if len(folds) > 1 else str(n)]
    for f in folds:
        block = pairs[pairs["fold"] == f]
        for label in (1, 0):
            sub = block[block["label"] == label]
            out += [_line(l, r, label, "\t") for l, r in zip(sub["left"], sub["right"])]
    return ("\n".join(out) + "\n").encode("utf-8")


def write_mfr2(pairs: pd.DataFrame) -> bytes:
    """MFR2 ``pairs.txt``: LFW-style lines in protocol order, space separated, no header."""
    check_contiguous(pairs, "mfr2")
    lines = [_line(l, r, int(lab), " ") for l, r, lab in zip(pairs["left"], pairs["right"], pairs["label"])]
    return ("\n".join(lines) + "\n").encode("utf-8")


register(PairFormat("lfw", "LFW pairs.txt, View 1 or View 2 (folds = sets)", read_lfw, write_lfw,
                    read_options=("ext",)))
register(PairFormat("mfr2", "MFR2 pairs.txt: LFW-style lines, space separated, no header", read_mfr2, write_mfr2,
                    read_options=("ext", "n_folds")))


def read_people(path: str | os.PathLike) -> pd.DataFrame:
    """Parse an LFW ``people.txt`` (View 2) or ``peopleDevTrain/Test.txt`` (View 1).

    Returns
    -------
    DataFrame with columns ``fold`` (0-based set), ``identity``, ``n_images``.
    """
    path = Path(path)
    source = str(path)
    lines = text_lines(read_user_bytes(path, "pairs"), source)
    if len(lines) < 2:
        raise PairFormatError(f"{source} is too short to be a people file")
    lineno, first = lines[0]
    head = parse_int(first, source, lineno, "header")
    view2 = len(lines[1][1].split()) == 1
    rows, i = [], 1
    sets = head if view2 else 1
    for fold in range(sets):
        if view2:
            if i >= len(lines):
                raise PairFormatError(f"{source}: the header announces {sets} sets but the file ends after {fold}")
            count = parse_int(lines[i][1], source, lines[i][0], "set size")
            i += 1
        else:
            count = head
        for _ in range(count):
            if i >= len(lines):
                raise PairFormatError(f"{source}: set {fold + 1} announces {count} people but the file ends early")
            lineno, line = lines[i]
            fields = line.split()
            if len(fields) != 2:
                raise line_error(source, lineno, f"expected 'name<TAB>count', got {line!r}")
            rows.append((fold, fields[0], parse_int(fields[1], source, lineno, "image count")))
            i += 1
    if i != len(lines):
        raise line_error(source, lines[i][0], "unexpected extra line after the announced sets")
    people = pd.DataFrame(rows, columns=["fold", "identity", "n_images"])
    dup = people["identity"][people["identity"].duplicated()]
    if len(dup):
        raise PairFormatError(f"{source}: {dup.iloc[0]!r} is listed twice; people files list each identity once")
    return people
