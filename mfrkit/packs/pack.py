"""Packs: aligned face crops stored once, read by training and the bench without decoding.

A pack is a folder made by ``mfrkit pack`` (:func:`mfrkit.packs.write.write_pack`)::

    PACK/pack.json                     format, alignments, counts, source manifest, options
    PACK/index.parquet                 one row per image: the manifest's columns (identity,
                                       variant, source_id, mask fields, ...) plus
                                       ``pack_row`` and ``crop_status`` (+ ``landmarks_from``)
    PACK/crops/<align>/shard-00000.npy (n, H, W, 3) uint8 RGB, rows
                                       [k * shard_size, (k + 1) * shard_size) of the index

Shards are plain ``.npy`` arrays, opened memory-mapped: reading a crop is a copy out of
the page cache, with no JPEG decoding and no alignment warp, and a DataLoader worker
opens each shard once. A row whose crop could not be made (``crop_status`` is not
``ok``: ``missing``, ``corrupt``, ``no_landmarks``, ``align_failed``...) holds zeros.

This module only reads packs and imports nothing of ``bench/`` or ``models/``, so
both can use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..alignments import arcface_params, resize_crop
from ..data.manifest import read_manifest
from ..errors import MfrkitError
from ..userfiles import check_user_file, read_user_bytes

FORMAT = "mfrkit-pack-1"
PACK_JSON = "pack.json"
INDEX_NAME = "index.parquet"
CROPS_DIR = "crops"


class PackError(MfrkitError):
    """A pack is missing, unfinished, malformed, or lacks the crops asked for."""


def is_pack(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder with a ``pack.json``."""
    return (Path(path) / PACK_JSON).is_file()


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npy"


def serves(pack_align: str, model_align: str) -> bool:
    """True when crops of alignment ``pack_align`` can feed a model wanting
    ``model_align``: the same name, or two ArcFace-template crops with the same padding
    (``arcface112`` serves ``arcface64``: the same crop at another size, resized)."""
    if pack_align == model_align:
        return True
    a, b = arcface_params(pack_align), arcface_params(model_align)
    return a is not None and b is not None and abs(a[1] - b[1]) < 1e-9


class Pack:
    """A finished pack, read-only.

    Parameters
    ----------
    path : path-like
        The pack folder.

    Attributes
    ----------
    path : Path
    info : dict
        ``pack.json``.
    index : DataFrame
        ``index.parquet``; ``pack_row`` is the row's position in every shard array.
    manifest : Manifest
        The index as a manifest (``path`` values refer to the source dataset, whose root
        is recorded), so code written for manifests runs on packs.
    alignments : dict of str to (H, W)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not is_pack(self.path):
            raise PackError(f"{self.path} is not a pack (no {PACK_JSON}); make one with `mfrkit pack`")
        try:
            self.info = json.loads(read_user_bytes(self.path / PACK_JSON, "json"))
        except (OSError, ValueError, MfrkitError) as exc:
            raise PackError(f"{self.path / PACK_JSON} is unreadable: {exc}") from None
        if not isinstance(self.info, dict) or self.info.get("format") != FORMAT:
            raise PackError(f"{self.path} is not an {FORMAT} pack")
        if not self.info.get("complete"):
            raise PackError(f"the pack {self.path} is unfinished; rerun the same `mfrkit pack` command to finish it")
        self.alignments = {name: tuple(int(v) for v in spec["size"]) for name, spec in self.info["alignments"].items()}
        self.shard_size = int(self.info["shard_size"])
        self.manifest = read_manifest(self.path / INDEX_NAME)
        self.index = self.manifest.table
        if "pack_row" not in self.index.columns or not (self.index["pack_row"].to_numpy() == np.arange(len(self.index))).all():
            raise PackError(f"{self.path / INDEX_NAME} is not a pack index (pack_row must count 0, 1, ...)")
        self._rows = {str(k): i for i, k in enumerate(self.index["image_id"])}
        self._shards: dict[tuple[str, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict:
        # DataLoader workers get the pack by pickling: send paths, not mapped arrays
        # (pickling a memmap copies its data); each worker maps the shards itself.
        state = self.__dict__.copy()
        state["_shards"] = {}
        return state

    def row(self, image_id: str) -> int:
        """The pack row of ``image_id``; PackError when the pack does not hold it."""
        try:
            return self._rows[str(image_id)]
        except KeyError:
            raise PackError(f"the pack {self.path} holds no image {image_id!r}") from None

    def has(self, image_id: str) -> bool:
        return str(image_id) in self._rows

    def alignment_for(self, model_align: str) -> str:
        """The pack alignment that serves ``model_align`` (see :func:`serves`)."""
        if model_align in self.alignments:
            return model_align
        for name in self.alignments:
            if serves(name, model_align):
                return name
        raise PackError(
            f"the pack {self.path} holds {', '.join(self.alignments)} crops, not {model_align}: "
            f"pack again with --align {','.join([*self.alignments, model_align])}"
        )

    def _shard(self, align: str, k: int) -> np.ndarray:
        key = (align, k)
        arr = self._shards.get(key)
        if arr is None:
            path = self.path / CROPS_DIR / align / shard_name(k)
            try:
                arr = np.load(check_user_file(path, "array"), mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, MfrkitError) as exc:
                raise PackError(f"cannot read pack shard {path}: {exc}") from None
            self._shards[key] = arr
        return arr

    def crop(self, row: int, align: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """The crop of pack row ``row`` for a model wanting alignment ``align``:
        (H, W, 3) uint8 RGB, resized to ``size`` when given and different."""
        name = self.alignment_for(align)
        k, i = divmod(int(row), self.shard_size)
        crop = np.array(self._shard(name, k)[i])  # a copy: callers may write to it
        return crop if size is None else resize_crop(crop, tuple(size))

    def crops(self, rows, align: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """Crops of several rows, shape (n, H, W, 3) uint8."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if size is None:
            size = self.alignments[self.alignment_for(align)]
        out = np.empty((len(rows), *size, 3), np.uint8)
        for j, r in enumerate(rows):
            out[j] = self.crop(r, align, size)
        return out

    def ok(self) -> pd.DataFrame:
        """Index rows whose crops were made."""
        return self.index[self.index["crop_status"] == "ok"]


def open_pack(path: str | os.PathLike) -> Pack:
    """Open the pack at ``path`` (see :class:`Pack`)."""
    return Pack(path)

