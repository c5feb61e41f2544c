"""The report's pictures of faces: the aligned crops a model saw (hardest comparisons)
and the images that failed to acquire.

A result's ``metrics.json`` names the manifests of its protocol (by role) and the
preprocessing of each side of the model (input size, alignment, landmark backend), so
the crops are cut again exactly as the bench cut them: same image, same cached
landmarks, same alignment. Nothing is detected here: an image whose landmarks are not
cached any more is shown as a note, not re-detected.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...alignments import get_alignment
from ...data.imageio import read_image
from ...data.manifest import STATUS_OK, Manifest, read_manifest
from ...errors import MfrkitError
from ...crops import CropRequest, make_crop
from ..results import ReportError, RunResult

#: Role of the manifest an id of each table column / FtA role refers to.
MANIFEST_ROLE = {"left_id": "reference", "right_id": "probe", "reference": "reference", "gallery": "reference", "probe": "probe"}


@dataclass(frozen=True)
class Picture:
    """An encoded image to show (``data`` of type ``mime``), or the reason there is none."""

    data: bytes | None
    note: str = ""
    mime: str = "image/jpeg"


def jpeg_bytes(rgb: np.ndarray, max_side: int | None = None, quality: int = 90) -> bytes:
    """JPEG of an (H, W, 3) uint8 RGB image, shrunk to ``max_side`` when larger. Photos,
    not line art: a 112 px face is about 5 KB as JPEG at quality 90 against 30 KB as PNG,
    which decides whether a report of many models and protocols stays mailable."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb))
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


class ImageSource:
    """Reads the images results refer to; manifests and landmark caches are read once."""

    def __init__(self) -> None:
        self._manifests: dict[str, Manifest | str] = {}
        self._landmarks: dict[tuple[str, str], dict | str] = {}
        self._paths: dict[str, dict[str, str]] = {}

    def manifest(self, result: RunResult | dict, role: str) -> Manifest | str:
        """The manifest of ``role`` (``reference`` / ``probe``) of the result's protocol,
        or a note saying why it cannot be read."""
        path = RunResult.of(result).protocol_info.manifest(role).get("path")
        if not path:
            return f"the {role} manifest's path is not recorded"
        if path not in self._manifests:
            try:
                self._manifests[path] = read_manifest(path, records=False)
            except (MfrkitError, OSError) as exc:
                self._manifests[path] = f"cannot read the manifest {path}: {exc}"
        return self._manifests[path]

    def _path(self, manifest: Manifest, image_id: str) -> str | None:
        key = str(manifest.path)
        if key not in self._paths:
            t = manifest.table
            self._paths[key] = dict(zip(t["image_id"].astype(str), t["path"].astype(str)))
        rel = self._paths[key].get(str(image_id))
        return None if rel is None else str(manifest.abspath(rel))

    def _locate(self, result: RunResult | dict, role: str, image_id: str) -> tuple[Manifest, str] | Picture:
        """The ``role`` manifest and the file of ``image_id`` in it, or a note saying why not."""
        m = self.manifest(result, role)
        if isinstance(m, str):
            return Picture(None, m)
        path = self._path(m, image_id)
        if path is None:
            return Picture(None, f"{image_id} is not in {m.path}")
        return m, path

    def _landmarks_of(self, manifest: Manifest, backend: str) -> dict | str:
        from ...landmarks.lookup import load_landmarks

        key = (str(manifest.path), backend)
        if key not in self._landmarks:
            try:
                self._landmarks[key] = load_landmarks(manifest, backend)
            except (MfrkitError, OSError) as exc:
                self._landmarks[key] = str(exc)
        return self._landmarks[key]

    def crop(self, result: RunResult | dict, side: str, role: str, image_id: str) -> Picture:
        """The crop the model's ``side`` (``reference`` / ``probe`` half) saw of image
        ``image_id`` of the ``role`` manifest."""
        found = self._locate(result, role, image_id)
        if isinstance(found, Picture):
            return found
        m, path = found
        prep = RunResult.of(result).preprocessing.side(side)
        align, size = prep.get("align"), prep.get("input_size")
        if not align or not size:
            return Picture(None, "the model's preprocessing is not recorded")
        size = (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) else (int(size), int(size))
        lm = None
        if get_alignment(align).needs_landmarks:
            found = self._landmarks_of(m, prep.get("landmarks") or "mediapipe")
            if isinstance(found, str):
                return Picture(None, found)
            fr = found.get(str(image_id))
            if fr is None or fr.status != STATUS_OK or fr.landmarks is None:
                return Picture(None, f"no landmarks ({fr.status if fr else 'not cached'})")
            lm = fr.landmarks
        crop, status = make_crop(CropRequest(path, lm), align, size)
        if crop is None:
            return Picture(None, status)
        return Picture(jpeg_bytes(crop, max_side=160))

    def thumbnail(self, result: RunResult | dict, role: str, image_id: str, max_side: int = 128) -> Picture:
        """The image ``image_id`` of the ``role`` manifest as it is on disk, shrunk."""
        found = self._locate(result, role, image_id)
        if isinstance(found, Picture):
            return found
        _, path = found
        try:
            return Picture(jpeg_bytes(read_image(path), max_side=max_side))
        except (MfrkitError, OSError, ValueError) as exc:
            return Picture(None, getattr(exc, "reason", None) or str(exc))


@dataclass(frozen=True)
class Comparison:
    """One comparison of a gallery: the two ids, their identities, its score, and
    whether the threshold decides it wrongly."""

    left_id: str
    right_id: str
    score: float
    error: bool
    left_identity: str = ""
    right_identity: str = ""


def hardest_pairs(scores: pd.DataFrame, threshold: float, n: int = 8) -> tuple[list[Comparison], list[Comparison]]:
    """The ``n`` genuine pairs with the lowest scores and the ``n`` impostor pairs with
    the highest, among comparisons that were scored (failures to acquire, scored -inf,
    are shown with their reasons elsewhere). ``error``: a false reject (genuine, score
    below ``threshold``) or a false accept (impostor, score at or above it): accept iff
    score >= threshold. Ties are broken by the ids, so the choice is deterministic.

    Parameters
    ----------
    scores : DataFrame with ``left_id``, ``right_id``, ``label`` (1 genuine), ``score``.
    """
    s = scores[np.isfinite(scores["score"].to_numpy(float))]
    s = s.assign(left_id=s["left_id"].astype(str), right_id=s["right_id"].astype(str))
    gen = s[s["label"].astype(int) == 1].sort_values(["score", "left_id", "right_id"], kind="stable").head(n)
    imp = s[s["label"].astype(int) == 0].sort_values(["score", "left_id", "right_id"], ascending=[False, True, True], kind="stable").head(n)

    def build(df: pd.DataFrame, genuine: bool) -> list[Comparison]:
        out = []
        for r in df.itertuples(index=False):
            score = float(r.score)
            error = score < threshold if genuine else score >= threshold
            out.append(Comparison(r.left_id, r.right_id, score, bool(error),
                                  str(getattr(r, "left_identity", "") or ""), str(getattr(r, "right_identity", "") or "")))
        return out

    return build(gen, True), build(imp, False)


def identities(source: ImageSource, result: RunResult | dict, role: str) -> dict[str, str]:
    """image_id -> identity of the ``role`` manifest (empty when it cannot be read)."""
    m = source.manifest(result, role)
    if isinstance(m, str):
        return {}
    t = m.table
    return dict(zip(t["image_id"].astype(str), t["identity"].astype(str)))


def finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


#: The columns the report reads of each table a bench run writes in a result folder.
RESULT_COLUMNS = {
    "scores.csv": ("fold", "left_id", "right_id", "label", "score"),
    "probes.csv": ("probe_id", "identity", "mated", "rank", "mated_score", "best_score", "top1"),
    "fta.csv": ("image_id", "role", "reason"),
    "images.csv": ("role", "image_id", "identity", "fta"),
    "histogram.csv": ("bin", "lower", "impostor", "genuine"),
    "genuine.csv": ("left_id", "right_id", "score"),
}


def result_table_path(folder: Path, name: str) -> Path | None:
    """``folder / name`` checked as a result table the report can read: a regular file
    within the ``results-table`` cap whose header holds :data:`RESULT_COLUMNS` ``[name]``;
    None when the run did not write it. ReportError (one line, naming the file) otherwise."""
    from ...userfiles import UserFileError, check_user_file

    path = folder / name
    if not path.exists() and not path.is_symlink():
        return None
    try:
        check_user_file(path, "results-table")
        with open(path, "rb") as f:
            head = f.read(64 * 1024).split(b"\n", 1)[0]
    except (UserFileError, OSError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    header = [c.strip().strip('"') for c in head.decode("utf-8", "replace").strip().split(",")]
    missing = [c for c in RESULT_COLUMNS.get(name, ()) if c not in header]
    if missing:
        raise ReportError(f"{path} lacks the column(s) {', '.join(missing)} that mfrkit bench writes "
                          "(edited or from another tool?); run the bench again or move the result folder away")
    return path


def result_table_error(path: Path, exc: Exception) -> ReportError:
    """A parser's error on a result table (pyarrow's ArrowInvalid, pandas' ParserError, a
    missing key) as one line naming the file."""
    text = " ".join(str(exc).split())[:300]
    return ReportError(f"cannot read {path}: {type(exc).__name__}: {text}; run the bench again or move the result folder away")


def read_table(folder: Path, name: str) -> pd.DataFrame | None:
    """A CSV of a result folder, or None when the run did not write it; ReportError when
    it is not a table the bench wrote (see :func:`result_table_path`)."""
    path = result_table_path(folder, name)
    if path is None:
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline().strip().split(",")
    # ids stay text ("NA", "None" and "001" are ids); pyarrow's reader is about 4x faster
    # than pandas' own on a scores.csv of 600k comparisons
    ids = {c: str for c in ("left_id", "right_id", "image_id", "probe_id", "identity", "top1", "mate_id") if c in header}
    try:
        return pd.read_csv(path, dtype=ids, keep_default_na=False, na_values=[""], engine="pyarrow")
    except (ValueError, KeyError, OSError) as exc:  # ArrowInvalid and ParserError are ValueErrors, ArrowKeyError a KeyError
        raise result_table_error(path, exc) from None
