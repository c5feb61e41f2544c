"""What every pair-list format shares: the neutral pair table, the registry, line errors.

A reader turns a file's bytes into a *pair table*: a DataFrame with columns ``fold``
(int, 0-based), ``left``, ``right`` (image references as written in the file, checked
to be dataset-relative POSIX paths that do not escape the root) and ``label`` (1
genuine, 0 impostor), in file order. A writer does the reverse. Mapping references to
manifest ``image_id``s is :mod:`mfrkit.protocols.interop`'s job, so every format
shares it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ...atomic import atomic_write_bytes
from ...data.imageio import is_image_file
from ...data.manifest import safe_relpath
from ...errors import ManifestError
from ...registry import Registry
from ...userfiles import read_user_bytes
from ..errors import PairFormatError

PAIR_COLUMNS = ("fold", "left", "right", "label")
DEFAULT_FLAT_FOLDS = 10


@dataclass(frozen=True)
class PairFormat:
    """One public pair-list format.

    Attributes
    ----------
    name : str
    description : str
    reader : callable(data: bytes, *, source: str, **options) -> pair table, or None
    writer : callable(pairs: pair table, **options) -> bytes, or None
    read_options, write_options : tuple of str
        Keyword options the reader / writer accept.
    embeds_images : bool
        The file holds the images themselves (insightface ``.bin``).
    """

    name: str
    description: str
    reader: Callable[..., pd.DataFrame] | None
    writer: Callable[..., bytes] | None
    read_options: tuple[str, ...] = ()
    write_options: tuple[str, ...] = ()
    embeds_images: bool = False
    aliases: tuple[str, ...] = field(default=())


FORMATS: Registry[PairFormat] = Registry("pair-list format")


def register(fmt: PairFormat) -> PairFormat:
    FORMATS.add(fmt.name, fmt)
    for alias in fmt.aliases:
        FORMATS.add(alias, fmt)
    return fmt


def get_format(name: str) -> PairFormat:
    return FORMATS.get(name)


def _check_options(fmt: PairFormat, options: dict, allowed: tuple[str, ...], what: str) -> dict:
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise PairFormatError(f"format {fmt.name!r} does not take {what} option(s) {', '.join(unknown)}; "
                              f"it takes: {', '.join(allowed) or '(none)'}")
    return options


def read_pairs(path: str | os.PathLike, fmt: str, **options: Any) -> pd.DataFrame:
    """Read a pair-list file in format ``fmt`` into a pair table (see the module docstring)."""
    spec = get_format(fmt)
    if spec.reader is None:
        raise PairFormatError(f"format {spec.name!r} cannot be read as a plain pair list"
                              + ("; it embeds images: use import_insightface_bin" if spec.embeds_images else ""))
    options = _check_options(spec, options, spec.read_options, "read")
    path = Path(path)
    data = read_user_bytes(path, "pairs")
    return spec.reader(data, source=str(path), **options)


def pairs_bytes(pairs: pd.DataFrame, fmt: str, **options: Any) -> bytes:
    """The bytes of ``pairs`` (a pair table) in format ``fmt``."""
    spec = get_format(fmt)
    if spec.writer is None:
        raise PairFormatError(f"mfrkit cannot write format {spec.name!r}")
    options = _check_options(spec, options, spec.write_options, "write")
    return spec.writer(check_pair_table(pairs), **options)


def write_pairs(pairs: pd.DataFrame, path: str | os.PathLike, fmt: str, *, replace: bool = True, **options: Any) -> Path:
    """Write ``pairs`` to ``path`` in format ``fmt``, atomically (``replace=False``: an
    existing file is refused)."""
    data = pairs_bytes(pairs, fmt, **options)
    atomic_write_bytes(path, data, replace=replace)
    return Path(path)


# --- helpers for the format modules ----------------------------------------------------------------


def line_error(source: str, lineno: int, message: str) -> PairFormatError:
    return PairFormatError(f"{source}, line {lineno}: {message}")


def text_lines(data: bytes, source: str) -> list[tuple[int, str]]:
    """(line number, stripped line) of every non-blank line of a UTF-8 text file."""
    if b"\x00" in data:
        raise PairFormatError(f"{source} is not a text file (it contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PairFormatError(f"{source} is not UTF-8 text: {exc}") from None
    return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if line.strip()]


def looks_like_header(fields: list[str]) -> bool:
    """True for a line such as ``name same_person`` or ``left,right,label``: words only,
    none an integer or an image file name (a pair line always has one or the other)."""
    if not fields:
        return False
    for f in fields:
        try:
            int(f)
            return False
        except ValueError:
            pass
        if is_image_file(f) or "/" in f or "\\" in f:
            return False
    return True


def check_ref(ref: str, source: str, lineno: int) -> str:
    """``ref`` if it is a safe dataset-relative path; PairFormatError naming the line otherwise."""
    try:
        return str(safe_relpath(ref))
    except ManifestError as exc:
        raise line_error(source, lineno, str(exc)) from None


def parse_int(text: str, source: str, lineno: int, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise line_error(source, lineno, f"{what} must be an integer, got {text!r}") from None


def parse_label(text: str, source: str, lineno: int) -> int:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "same", "genuine"):
        return 1
    if value in ("0", "false", "no", "diff", "impostor"):
        return 0
    raise line_error(source, lineno, f"label must be 0 or 1, got {text!r}")


def contiguous_folds(n: int, k: int) -> np.ndarray:
    """Fold of each of ``n`` rows split into ``k`` contiguous folds, as scikit-learn's
    ``KFold(k, shuffle=False)`` (and insightface's evaluation) does: the first ``n % k``
    folds get one extra row."""
    if k < 1:
        raise PairFormatError(f"the number of folds must be at least 1, got {k}")
    if n < k:
        raise PairFormatError(f"{n} pairs cannot be split into {k} folds; pass fewer folds (--folds)")
    sizes = np.full(k, n // k, dtype=np.int64)
    sizes[: n % k] += 1
    return np.repeat(np.arange(k, dtype=np.int64), sizes)


def check_contiguous(pairs: pd.DataFrame, fmt: str) -> None:
    """Refuse to write a protocol whose folds a flat file could not give back."""
    n, k = len(pairs), int(pairs["fold"].nunique())
    if n == 0:
        raise PairFormatError("no pairs to write")
    folds = pairs["fold"].to_numpy()
    expected = contiguous_folds(n, k)
    # Fold numbers need not start at 0, but they must run in ascending, contiguous, KFold-sized blocks.
    renumbered = np.searchsorted(np.unique(folds), folds)
    if not np.array_equal(renumbered, expected):
        raise PairFormatError(
            f"format {fmt!r} stores no folds: readers split the pairs into {k} contiguous blocks of equal size, "
            "which would not give this protocol's folds back. Export as csv (it keeps folds), or lfw.")


def check_pair_table(pairs: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise PairFormatError(f"pair table lacks column(s) {', '.join(missing)}")
    out = pairs[list(PAIR_COLUMNS)].reset_index(drop=True).copy()
    out["fold"] = out["fold"].astype("int64")
    out["label"] = out["label"].astype("int64")
    out["left"] = out["left"].astype(str)
    out["right"] = out["right"].astype(str)
    return out


def pair_table(rows: list[tuple[int, str, str, int]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
    df["fold"] = df["fold"].astype("int64")
    df["label"] = df["label"].astype("int64")
    return df


def no_whitespace(ref: str, fmt: str) -> str:
    if not ref or any(c.isspace() for c in ref):
        raise PairFormatError(f"format {fmt!r} separates fields by whitespace; cannot write the path {ref!r}")
    return ref
