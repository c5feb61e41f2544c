"""Embedding cache: one embedding per (model, preprocessing, image), reused across protocols.

Layout: ``<root>/<model sha256>/<preprocessing key>/`` holds ``spec.json`` (what the key
stands for, for people) and parts written atomically as the run goes:
``part-<uuid>.emb.npy`` (float32, (n, D), L2-normalised) then ``part-<uuid>.keys.npy``
(the item keys). A part counts only once its keys file exists, so a run killed
mid-write loses at most the part it was writing, and the next run resumes from the
others. Parts are plain ``.npy`` read with ``allow_pickle=False``. A part that cannot be
used (unreadable, truncated, rows not matching its keys, another dimension) is ignored
when the cache is opened, its images are embedded again, and the next flush (by the
writer holding the cache's lock) removes its files.

An item key is the image's sha256, plus a hash of the landmarks the crop was aligned
with when the alignment uses them (new landmarks, new crop, new key). Only successful
embeddings are cached; failures are cheap to find again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

from ...atomic import atomic_path, atomic_write_text
from ...errors import MfrkitError
from ...landmarks.base import Landmarks

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$MFRKIT_CACHE`` or ``$MFRKIT_HOME/cache/embeddings`` (``~/.mfrkit/cache/embeddings``)."""
    if os.environ.get("MFRKIT_CACHE"):
        return Path(os.environ["MFRKIT_CACHE"]).expanduser()
    home = Path(os.environ.get("MFRKIT_HOME") or Path.home() / ".mfrkit").expanduser()
    return home / "cache" / "embeddings"


def preprocessing_key(preprocessing: dict, *, tta: str | None, landmark_backend: str | None) -> str:
    """Hex key of everything besides the image that changes an embedding."""
    blob = json.dumps(
        {"v": CACHE_VERSION, "pre": preprocessing, "tta": tta, "landmarks": landmark_backend}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def item_key(image_sha256: str, landmarks: Landmarks | None = None) -> str:
    """Cache key of one image (and the landmarks it is aligned with, if any)."""
    if landmarks is None:
        return image_sha256
    h = hashlib.sha256(np.ascontiguousarray(landmarks.points5, np.float32).tobytes())
    if landmarks.points68 is not None:
        h.update(np.ascontiguousarray(landmarks.points68, np.float32).tobytes())
    return f"{image_sha256}:{h.hexdigest()[:16]}"


def _read_part(keys_file: Path, emb_file: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(keys, memory-mapped embeddings) of one part, or None when it cannot be used: a
    file missing, unreadable or truncated, not a 1-D string array / 2-D float32 array,
    or row counts that differ."""
    try:
        keys = np.load(keys_file, allow_pickle=False)
        emb = np.load(emb_file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if keys.ndim != 1 or keys.dtype.kind != "U" or emb.ndim != 2 or emb.dtype != np.float32:
        return None
    if emb.shape[0] != len(keys) or emb.shape[1] == 0:
        return None
    return keys, emb


class EmbeddingCache:
    """Cached embeddings of one model under one preprocessing.

    Parameters
    ----------
    root : path-like
        Cache root (see :func:`default_cache_dir`).
    model_sha256 : str
    prep_key : str
        From :func:`preprocessing_key`.
    spec : dict, optional
        Written to ``spec.json`` for people reading the folder.
    flush_every : int
        Buffered embeddings written as one part when this many accumulate.
    """

    def __init__(self, root, model_sha256: str, prep_key: str, *, spec: dict | None = None, flush_every: int = 4096):
        self.dir = Path(root) / model_sha256 / prep_key
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MfrkitError(f"cannot use the embedding cache {root}: {exc.strerror or exc}; "
                              "choose another with --cache DIR, or --no-cache") from None
        if spec is not None and not (self.dir / "spec.json").exists():
            atomic_write_text(self.dir / "spec.json", json.dumps(spec, indent=2, sort_keys=True, default=str))
        self.flush_every = flush_every
        self._index: dict[str, tuple[int, int]] = {}
        self._parts: list[Path] = []
        self._mmaps: dict[int, np.ndarray] = {}
        self._buf_keys: list[str] = []
        self._buf_emb: list[np.ndarray] = []
        self.hits = 0
        self.misses = 0
        self.dropped_parts = 0
        parts, broken = [], []
        for keys_file in sorted(self.dir.glob("part-*.keys.npy")):
            emb_file = keys_file.with_name(keys_file.name.replace(".keys.npy", ".emb.npy"))
            part = _read_part(keys_file, emb_file)
            (broken if part is None else parts).append((keys_file, emb_file, part))
        # One model, one dimension: the one most embeddings have; parts of another are broken.
        rows_by_dim: dict[int, int] = {}
        for _, _, (keys, emb) in parts:
            rows_by_dim[emb.shape[1]] = rows_by_dim.get(emb.shape[1], 0) + len(keys)
        dim = max(rows_by_dim, key=lambda d: (rows_by_dim[d], d)) if rows_by_dim else None
        for keys_file, emb_file, part in parts:
            keys, emb = part
            if emb.shape[1] != dim:
                broken.append((keys_file, emb_file, None))
                continue
            p = len(self._parts)
            self._parts.append(emb_file)
            self._mmaps[p] = emb
            for row, k in enumerate(keys.tolist()):
                self._index[k] = (p, row)
        # Unreadable, truncated or of another shape: ignored, so its images are embedded
        # again; the next flush (a writer, who holds the cache's lock) removes its files so
        # no later run trips on it.
        self._broken = [(k, e) for k, e, _ in broken]
        self.dropped_parts = len(self._broken)

    def __len__(self) -> int:
        return len(self._index) + len(self._buf_keys)

    def _emb(self, part: int) -> np.ndarray:
        if part not in self._mmaps:
            self._mmaps[part] = np.load(self._parts[part], mmap_mode="r", allow_pickle=False)
        return self._mmaps[part]

    def get(self, keys: list[str], dim: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Look up ``keys``.

        Returns
        -------
        found : ndarray of bool, shape (n,)
        embeddings : ndarray of shape (n, D), float32 (rows where not found are zero),
            or None when nothing was found and ``dim`` is None.
        """
        found = np.array([k in self._index for k in keys], dtype=bool)
        self.hits += int(found.sum())
        self.misses += int((~found).sum())
        if not found.any():
            return found, None if dim is None else np.zeros((len(keys), dim), np.float32)
        first = self._index[keys[int(np.flatnonzero(found)[0])]]
        d = self._emb(first[0]).shape[1]
        out = np.zeros((len(keys), d), np.float32)
        for i in np.flatnonzero(found):
            p, r = self._index[keys[i]]
            out[i] = self._emb(p)[r]
        return found, out

    def put(self, keys: list[str], embeddings: np.ndarray) -> None:
        """Add embeddings (written to disk in parts of ``flush_every``)."""
        if len(keys) != len(embeddings):
            raise ValueError("keys and embeddings differ in length")
        self._buf_keys.extend(keys)
        self._buf_emb.append(np.asarray(embeddings, np.float32))
        if len(self._buf_keys) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write buffered embeddings as one part (embeddings first, keys last), and remove
        the files of parts found broken when the cache was opened."""
        for keys_file, emb_file in self._broken:
            for f in (keys_file, emb_file):  # keys first: without them the part never counts
                with contextlib.suppress(OSError):
                    f.unlink()
        self._broken = []
        if not self._buf_keys:
            return
        name = f"part-{uuid.uuid4().hex}"
        emb = np.concatenate(self._buf_emb)
        keys = np.array(self._buf_keys, dtype=str)
        emb_file = self.dir / f"{name}.emb.npy"
        with atomic_path(emb_file) as tmp:
            np.save(tmp, emb, allow_pickle=False)
        with atomic_path(self.dir / f"{name}.keys.npy") as tmp:
            np.save(tmp, keys, allow_pickle=False)
        p = len(self._parts)
        self._parts.append(emb_file)
        for row, k in enumerate(self._buf_keys):
            self._index[k] = (p, row)
        self._buf_keys, self._buf_emb = [], []

    def __enter__(self) -> "EmbeddingCache":
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
