"""CPLFW ``pairs_CPLFW.txt``: two lines per pair, ``image token``, token = label.

The official file lists 6000 pairs, two lines each (``AJ_Cook_1.jpg 1``): the token
is 1 on both lines of a genuine pair and 0 on both lines of an impostor pair, and the
3000 genuine pairs come first, then the 3000 impostor pairs. The file writes no fold:
fold ``i`` (0-9) is genuine pairs ``300i .. 300i+299`` plus impostor pairs
``3000+300i .. 3000+300i+299``, which is how FaceX-Zoo's ``CPLFW_PairsParser`` and
LFW-style 10-fold evaluation read it (no identity crosses folds).

mfrkit reads the same rule for any size: the genuine pairs and the impostor pairs are
each cut into ``n_folds`` contiguous blocks (default 10; as scikit-learn's ``KFold``,
the first blocks take one extra pair when the count does not divide), and fold ``i``
is block ``i`` of both. Writing gives the same layout back (genuine pairs by fold,
then impostor pairs by fold, ``\\n`` line ends, no header), byte for byte for the
official file, and refuses a protocol whose folds that rule would not give back.

CRLF line ends and an added header line (``name same_person``) are accepted on
reading (see :func:`.calfw.read_two_line_pairs`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import PairFormatError
from .base import DEFAULT_FLAT_FOLDS, PairFormat, contiguous_folds, line_error, no_whitespace, pair_table, register
from .calfw import read_two_line_pairs


def read_cplfw(data: bytes, *, source: str = "pairs_CPLFW.txt", n_folds: int = DEFAULT_FLAT_FOLDS) -> pd.DataFrame:
    parsed = read_two_line_pairs(data, source, "CPLFW")
    seen_impostor = False
    for lineno, _, _, token in parsed:
        if token not in (0, 1):
            raise line_error(source, lineno, f"token must be 1 (genuine) or 0 (impostor) in a CPLFW file, got {token}; "
                             "a file whose genuine pairs carry their fold (1-10) is CALFW's: use --format calfw")
        if token == 0:
            seen_impostor = True
        elif seen_impostor:
            raise line_error(source, lineno, "a genuine pair after impostor pairs: CPLFW files list every genuine pair "
                             "first, then every impostor pair, and folds are taken by position in each list")
    labels = np.array([t for *_, t in parsed], dtype=np.int64)
    n_gen = int(labels.sum())
    n_imp = len(labels) - n_gen
    if n_gen < n_folds or n_imp < n_folds:
        raise PairFormatError(f"{source}: {n_gen} genuine and {n_imp} impostor pairs cannot both be split into "
                              f"{n_folds} folds; pass fewer folds (--folds)")
    folds = np.concatenate([contiguous_folds(n_gen, n_folds), contiguous_folds(n_imp, n_folds)])
    return pair_table([(int(f), l, r, int(t)) for f, (_, l, r, t) in zip(folds, parsed)])


def write_cplfw(pairs: pd.DataFrame) -> bytes:
    """Genuine pairs by fold (token 1), then impostor pairs by fold (token 0)."""
    if len(pairs) == 0:
        raise PairFormatError("no pairs to write")
    fold_ids = np.unique(pairs["fold"].to_numpy())
    k = len(fold_ids)
    lines = []
    for label, what in ((1, "genuine"), (0, "impostor")):
        sub = pairs[pairs["label"] == label].sort_values("fold", kind="stable")
        renumbered = np.searchsorted(fold_ids, sub["fold"].to_numpy())
        if len(sub) < k or not np.array_equal(renumbered, contiguous_folds(len(sub), k)):
            sizes = np.bincount(renumbered, minlength=k).tolist()
            raise PairFormatError(
                f"format 'cplfw' stores no folds: readers cut the {what} pairs into {k} blocks of equal size "
                f"(the first ones one larger when {len(sub)} does not divide by {k}), but this protocol's folds hold "
                f"{sizes} {what} pairs. Export as csv (it keeps folds) or calfw.")
        for l, r in zip(sub["left"], sub["right"]):
            lines += [f"{no_whitespace(l, 'cplfw')} {label}", f"{no_whitespace(r, 'cplfw')} {label}"]
    return ("\n".join(lines) + "\n").encode("utf-8")


register(PairFormat("cplfw", "CPLFW pairs file: two lines per pair, 'image label'; genuine pairs first, "
                    "folds by position", read_cplfw, write_cplfw, read_options=("n_folds",)))
