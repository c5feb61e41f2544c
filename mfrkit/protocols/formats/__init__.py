"""Public pair-list formats, one module each, behind the ``FORMATS`` registry.

=============== ====== ====== ==========================================================
name            read   write  file
=============== ====== ====== ==========================================================
lfw             yes    yes    LFW ``pairs.txt`` View 1 / View 2 (folds = sets)
mfr2            yes    yes    MFR2 ``pairs.txt`` (LFW-style lines, no header)
calfw           yes    yes    CALFW pairs file (two lines per pair, token = fold)
cplfw           yes    yes    CPLFW pairs file (two lines per pair, token = label,
                              folds by position: FaceX-Zoo's reading)
mlfw            yes    yes    MLFW ``pairs.txt`` (``img1 img2 label``)
pairs-label     yes    yes    ``pairs_label.txt`` (``path1 path2 0|1``)
csv             yes    yes    generic CSV ``left,right,label[,fold]``
insightface-bin import yes    insightface ``.bin`` (images inside; read safely, see
                              :func:`mfrkit.protocols.interop.import_insightface_bin`)
=============== ====== ====== ==========================================================

LFW ``people.txt`` (identity folds) is read by :func:`read_people`.
"""

from . import calfw, cplfw, flat, generic_csv, insightface_bin, lfw  # noqa: F401  (register the formats)
from .base import (
                   FORMATS,
                   PAIR_COLUMNS,
                   PairFormat,
                   contiguous_folds,
                   get_format,
                   pairs_bytes,
                   read_pairs,
                   write_pairs,
)
from .insightface_bin import read_bin, write_bin
from .lfw import read_people

__all__ = ["FORMATS", "PAIR_COLUMNS", "PairFormat", "contiguous_folds", "get_format", "pairs_bytes", "read_pairs",
           "write_pairs", "read_bin", "write_bin", "read_people"]
