"""insightface verification ``.bin`` files (``lfw.bin``, ``cfp_fp.bin``, ...) as a pair-list
format: the safe parser is :mod:`mfrkit.data.verification_bin` (one parser of the format);
this module turns its errors into :class:`PairFormatError` / :class:`UnsafePickleError`
and writes a protocol's images as a ``.bin``. insightface evaluates a ``.bin`` in 10
contiguous folds (scikit-learn ``KFold`` without shuffling); so does mfrkit on reading.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...data.imageio import read_image_bytes
from ...data.verification_bin import bin_bytes, read_verification_bin
from ...errors import BinFileError, ImageError, UnsafeBinError
from ..errors import PairFormatError, UnsafePickleError
from .base import PairFormat, check_contiguous, register


def read_bin(data: bytes, *, source: str = "file.bin") -> tuple[list[bytes], list[bool]]:
    """Safely read an insightface ``.bin``: (list of encoded images, list of is-same bools).

    The parser is :func:`mfrkit.data.verification_bin.read_verification_bin` (see there).

    Raises
    ------
    UnsafePickleError
        The pickle holds anything that could run code, or anything but the expected tuple.
    PairFormatError
        Not a binary pickle, lists that do not match, or images adding up to more than
        the file allows.
    """
    try:
        return read_verification_bin(data, source=source)
    except UnsafeBinError as exc:
        raise UnsafePickleError(str(exc)) from None
    except BinFileError as exc:
        raise PairFormatError(str(exc)) from None


def write_bin(pairs: pd.DataFrame, *, root: str | Path) -> bytes:
    """A ``.bin`` of the protocol's images (read from ``root`` / path) in pair order.

    Folds must be contiguous equal blocks (the only folds a ``.bin`` reader sees).
    """
    check_contiguous(pairs, "insightface-bin")
    root = Path(root)
    bins: list[bytes] = []
    for left, right in zip(pairs["left"], pairs["right"]):
        for ref in (left, right):
            try:
                bins.append(read_image_bytes(root / ref))
            except ImageError as exc:
                raise PairFormatError(f"cannot read image {root / ref} for the .bin: {exc}") from None
    return bin_bytes(bins, [bool(v) for v in pairs["label"]])


register(PairFormat("insightface-bin", "insightface verification .bin (pickled images + is-same list; read safely)",
                    None, write_bin, write_options=("root",), embeds_images=True))
