"""Reading insightface's IJB-B / IJB-C release (the meta files and the loose crops).

insightface's evaluation (``recognition/_evaluation_/ijb``, arcface_torch
``eval_ijbc.py``) reads a folder per set, ``IJBC/`` (or ``IJBB/``)::

    IJBC/
      loose_crop/                     the face crops, named as in the lists (1.jpg ...)
      meta/
        ijbc_face_tid_mid.txt         one face per line: NAME TEMPLATE_ID MEDIA_ID
        ijbc_name_5pts_score.txt      one face per line: NAME x1 y1 ... x5 y5 DETECTOR_SCORE
        ijbc_template_pair_label.txt  one 1:1 comparison per line: TEMPLATE_1 TEMPLATE_2 LABEL
        ijbc_1N_gallery_G1.csv        1:N gallery S1 (IJB-B: ijbb_1N_gallery_S1.csv), header line,
        ijbc_1N_gallery_G2.csv        then TEMPLATE_ID,SUBJECT_ID,... one line per face
        ijbc_1N_probe_mixed.csv       1:N probe templates, same columns

The text files are single-space separated (insightface reads them with
``pd.read_csv(sep=' ', header=None)``); the 5 points are in pixels of the loose crop,
in ArcFace order (left eye, right eye, nose, left and right mouth corner). The face
list and the landmark list describe the same faces **line by line** (insightface pairs
row *i* of one with row *i* of the other without checking): here a differing name on
any line is an error, never a silent shift. The 1:N CSVs list a template once per
face; a template's subject is taken from its first line (insightface's
``np.unique(..., return_index=True)``), and a template given two subjects is an error.

One parser per file; every error names the file and line. Nothing here reads images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from .errors import PairFormatError

#: Sets and their 1:N gallery names (IJB-C calls them G1/G2, IJB-B S1/S2).
SETS = {"ijbb": ("S1", "S2"), "ijbc": ("G1", "G2")}
#: Pair lines read at a time (the IJB-C list has 15,658,489).
PAIR_CHUNK = 1 << 20


@dataclass(frozen=True)
class ReleasePaths:
    """Where a set's files are.

    Attributes
    ----------
    set : ``ijbb`` or ``ijbc``
    root : Path, the set folder (holding ``meta/`` and ``loose_crop/``)
    images : Path, ``loose_crop/``
    faces, landmarks, pairs : Path, the three text lists
    galleries : dict gallery name (``S1``/``S2``) -> Path of its CSV; absent files left out
    probes : Path or None, ``*_1N_probe_mixed.csv``
    """

    set: str
    root: Path
    images: Path
    faces: Path
    landmarks: Path
    pairs: Path
    galleries: dict
    probes: Path | None


def find_release(root: str | os.PathLike, set_name: str) -> ReleasePaths:
    """The files of set ``set_name`` under ``root`` (the set folder, or its parent
    holding ``IJBC/`` / ``IJBB/`` as insightface's scripts expect).

    Raises
    ------
    PairFormatError
        Unknown set, or a required file (the face list, the landmark list, the pair
        list, ``loose_crop/``) is missing. The 1:N files are optional (1:1 only without them).
    """
    set_name = str(set_name).lower()
    if set_name not in SETS:
        raise PairFormatError(f"unknown IJB set {set_name!r}; choose one of: {', '.join(SETS)}")
    root = Path(root).expanduser()
    if not (root / "meta").is_dir() and (root / set_name.upper() / "meta").is_dir():
        root = root / set_name.upper()
    meta = root / "meta"
    if not meta.is_dir():
        raise PairFormatError(f"{root} holds no meta/ folder: give the IJB set folder of insightface's release "
                              f"(the one holding meta/ and loose_crop/, e.g. IJB_release/{set_name.upper()})")
    paths = {"faces": meta / f"{set_name}_face_tid_mid.txt", "landmarks": meta / f"{set_name}_name_5pts_score.txt",
             "pairs": meta / f"{set_name}_template_pair_label.txt"}
    for what, path in paths.items():
        if not path.is_file():
            raise PairFormatError(f"{path} not found: an IJB release has meta/{path.name}")
    images = root / "loose_crop"
    if not images.is_dir():
        raise PairFormatError(f"{images} not found: an IJB release has its face crops in loose_crop/")
    galleries = {g: meta / f"{set_name}_1N_gallery_{g}.csv" for g in SETS[set_name]}
    galleries = {g: p for g, p in galleries.items() if p.is_file()}
    probes = meta / f"{set_name}_1N_probe_mixed.csv"
    return ReleasePaths(set=set_name, root=root.resolve(), images=images.resolve(), galleries=galleries,
                        probes=probes if probes.is_file() else None, **paths)


def _read_text_table(path: Path, n_columns: int, what: str) -> pd.DataFrame:
    """A single-space separated file of ``n_columns`` columns, every value as a string."""
    try:
        df = pd.read_csv(path, sep=" ", header=None, dtype=str, keep_default_na=False, engine="c",
                         skip_blank_lines=True, on_bad_lines="error")
    except pd.errors.EmptyDataError:
        raise PairFormatError(f"{path} is empty: expected {what}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise PairFormatError(f"{path}: cannot read as {what}: {str(exc).splitlines()[0]}") from None
    if df.shape[1] != n_columns:
        raise PairFormatError(f"{path}: expected {n_columns} space-separated values per line ({what}), "
                              f"found {df.shape[1]}")
    return df


def _integers(values: pd.Series, path: Path, column: str, first_line: int = 1) -> np.ndarray:
    """``values`` as int64; ``first_line`` is the file line of the first value (for messages)."""
    out = pd.to_numeric(values, errors="coerce")
    bad = out.isna() | (out != out.round())
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise PairFormatError(f"{path}:{first_line + i}: {column} must be an integer, got {values.iloc[i]!r:.40}")
    return out.to_numpy(np.int64)


def _check_names(names: np.ndarray, path: Path) -> None:
    from ..data.manifest import safe_relpath
    from ..errors import ManifestError

    for i, name in enumerate(names):
        try:
            safe_relpath(name)
        except ManifestError as exc:
            raise PairFormatError(f"{path}:{i + 1}: {exc}") from None
    seen = pd.Series(names).duplicated()
    if seen.any():
        i = int(np.flatnonzero(seen.to_numpy())[0])
        raise PairFormatError(f"{path}:{i + 1}: face {names[i]!r} is listed twice")


@dataclass(frozen=True)
class FaceList:
    """The faces of a set, in file order.

    Attributes
    ----------
    names : ndarray of str, shape (n,), file names under ``loose_crop/``
    templates, medias : ndarray of int64, shape (n,)
    points : ndarray of float32, shape (n, 5, 2), pixels, ArcFace order
    scores : ndarray of float32, shape (n,), the detector (faceness) score
    """

    names: np.ndarray
    templates: np.ndarray
    medias: np.ndarray
    points: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def read_faces(faces_path: str | os.PathLike, landmarks_path: str | os.PathLike) -> FaceList:
    """Read ``*_face_tid_mid.txt`` and ``*_name_5pts_score.txt`` together (see the module docstring).

    Raises
    ------
    PairFormatError
        A malformed line, non-numeric ids or points, a duplicated name, or the two lists
        disagreeing on a line's face (or on their length).
    """
    faces_path, landmarks_path = Path(faces_path), Path(landmarks_path)
    tid = _read_text_table(faces_path, 3, "NAME TEMPLATE_ID MEDIA_ID")
    lmk = _read_text_table(landmarks_path, 12, "NAME x1 y1 ... x5 y5 SCORE")
    names = tid[0].to_numpy(str)
    _check_names(names, faces_path)
    if len(lmk) != len(tid):
        raise PairFormatError(f"{landmarks_path} lists {len(lmk):,} faces but {faces_path} {len(tid):,}: "
                              "the two lists must describe the same faces line by line")
    other = lmk[0].to_numpy(str)
    differ = np.flatnonzero(other != names)
    if len(differ):
        i = int(differ[0])
        raise PairFormatError(f"{landmarks_path}:{i + 1} names {other[i]!r} where {faces_path}:{i + 1} names "
                              f"{names[i]!r}: the two lists must describe the same faces line by line")
    numbers = lmk.iloc[:, 1:].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(numbers).all(1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PairFormatError(f"{landmarks_path}:{i + 1}: the 10 coordinates and the score must be finite numbers")
    return FaceList(names=names, templates=_integers(tid[1], faces_path, "TEMPLATE_ID"),
                    medias=_integers(tid[2], faces_path, "MEDIA_ID"),
                    points=numbers[:, :10].astype(np.float32).reshape(-1, 5, 2),
                    scores=numbers[:, 10].astype(np.float32))


def iter_template_pairs(path: str | os.PathLike, *, chunk: int = PAIR_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The comparisons of ``*_template_pair_label.txt``, ``chunk`` lines at a time.

    Yields
    ------
    (t1, t2, label): ndarrays of shape (m,), int64, int64 and int8 (1 genuine, 0 impostor).

    Raises
    ------
    PairFormatError
        A line without three integer values, or a label other than 0 / 1 (line numbers given).
    """
    path = Path(path)
    try:
        reader = pd.read_csv(path, sep=" ", header=None, dtype=str, keep_default_na=False, engine="c",
                             chunksize=chunk, on_bad_lines="error")
        start = 0
        for part in reader:
            if part.shape[1] != 3:
                raise PairFormatError(f"{path}: expected 3 space-separated values per line "
                                      f"(TEMPLATE_1 TEMPLATE_2 LABEL), found {part.shape[1]}")
            t1, t2, label = (_integers(part[c], path, name, start + 1)
                             for c, name in ((0, "TEMPLATE_1"), (1, "TEMPLATE_2"), (2, "LABEL")))
            bad = (label != 0) & (label != 1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise PairFormatError(f"{path}:{start + i + 1}: LABEL must be 0 or 1, got {label[i]}")
            yield t1, t2, label.astype(np.int8)
            start += len(part)
    except pd.errors.EmptyDataError:
        raise PairFormatError(f"{path} is empty: expected TEMPLATE_1 TEMPLATE_2 LABEL lines") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise PairFormatError(f"{path}: cannot read as TEMPLATE_1 TEMPLATE_2 LABEL lines: "
                              f"{str(exc).splitlines()[0]}") from None


def read_template_subjects(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A 1:N list (gallery or probes): its templates and their subjects.

    The CSV has a header line, then ``TEMPLATE_ID,SUBJECT_ID,...`` (more columns are
    ignored, as insightface does), one line per face.

    Returns
    -------
    templates : ndarray of int64, shape (k,), unique and sorted (``np.unique``)
    subjects : ndarray of int64, shape (k,), each template's subject (its first line's)
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, header=0, dtype=str, keep_default_na=False, usecols=[0, 1])
    except pd.errors.EmptyDataError:
        raise PairFormatError(f"{path} is empty: expected a header, then TEMPLATE_ID,SUBJECT_ID,... lines") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError, OSError) as exc:
        raise PairFormatError(f"{path}: cannot read as TEMPLATE_ID,SUBJECT_ID,... lines: "
                              f"{str(exc).splitlines()[0]}") from None
    # Line numbers in messages count the header: data row i is line i + 2.
    templates = _integers(df.iloc[:, 0], path, "TEMPLATE_ID", 2)
    subjects = _integers(df.iloc[:, 1], path, "SUBJECT_ID", 2)
    unique, first = np.unique(templates, return_index=True)
    chosen = subjects[first]
    differs = subjects != chosen[np.searchsorted(unique, templates)]
    if differs.any():
        i = int(np.flatnonzero(differs)[0])
        raise PairFormatError(f"{path}:{i + 2}: template {templates[i]} is given subject {subjects[i]} here and "
                              f"{chosen[np.searchsorted(unique, templates[i])]} on an earlier line")
    return unique, chosen
