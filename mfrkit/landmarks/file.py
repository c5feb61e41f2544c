"""Backend ``file``: landmarks a dataset already ships, looked up instead of detected.

The file is text, one image per line: a key (the manifest ``image_id`` or ``path``,
or a file name) then 10 numbers (5 points, ArcFace order) or 136 numbers (68 iBUG
points), separated by spaces, tabs or commas. ``#`` starts a comment; a header line
is skipped. The same key twice is an error.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import ClassVar

import numpy as np

from ..errors import LandmarkError
from ..userfiles import read_user_text, user_file_errors_as
from .base import BACKENDS, Landmarks, five_from_68

_SPLIT = re.compile(r"[,\s]+")


def parse_landmark_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read a landmark file into ``{key: points}``, points of shape (5, 2) or (68, 2),
    float32 pixels."""
    path = Path(path)
    with user_file_errors_as(LandmarkError):
        text = read_user_text(path, "landmarks")
    table: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, *values = _SPLIT.split(line)
        try:
            nums = np.array([float(v) for v in values], dtype=np.float32)
        except ValueError:
            if not table:
                continue  # a header line
            raise LandmarkError(f"{path}:{lineno}: non-numeric landmark value in {line[:80]!r}") from None
        if len(nums) not in (10, 136):
            raise LandmarkError(f"{path}:{lineno}: expected 10 or 136 numbers after the key, got {len(nums)}")
        if not np.isfinite(nums).all():
            raise LandmarkError(f"{path}:{lineno}: landmark values must be finite")
        if key in table:
            raise LandmarkError(f"{path}:{lineno}: {key!r} appears twice")
        table[key] = nums.reshape(-1, 2)
    if not table:
        raise LandmarkError(f"landmark file {path} holds no landmarks")
    return table


@BACKENDS.register("file")
class FileBackend:
    """Look landmarks up in a file (see the module docstring).

    Parameters
    ----------
    path : str
        The landmark file.
    """

    name: ClassVar[str] = "file"
    has_68: ClassVar[bool] = False  # depends on the file: 68 when it holds 68
    has_mesh: ClassVar[bool] = False

    def __init__(self, path: str | None = None) -> None:
        if path is None:
            raise LandmarkError("the file backend needs the landmark file: --landmark-file PATH")
        self.path = str(path)
        self._table = parse_landmark_file(path)
        # Also index by file name, for files keyed by bare names, when that is unambiguous.
        names: dict[str, list[str]] = {}
        for key in self._table:
            names.setdefault(PurePosixPath(key).name, []).append(key)
        self._by_name = {n: keys[0] for n, keys in names.items() if len(keys) == 1}

    def lookup(self, image_id: str) -> np.ndarray | None:
        """The points stored for ``image_id`` (or its file name), or None."""
        if image_id in self._table:
            return self._table[image_id]
        key = self._by_name.get(PurePosixPath(image_id).name)
        return None if key is None else self._table[key]

    def detect(self, image: np.ndarray, *, image_id: str | None = None) -> list[Landmarks]:
        if image_id is None:
            raise LandmarkError("the file backend needs the image_id of each image")
        pts = self.lookup(image_id)
        if pts is None:
            return []
        p68 = pts if len(pts) == 68 else None
        p5 = five_from_68(pts) if p68 is not None else pts.astype(np.float32)
        ref = pts if p68 is not None else p5
        bbox = np.concatenate([ref.min(0), ref.max(0)]).astype(np.float32)
        return [Landmarks(points5=p5, points68=p68, bbox=bbox, backend=self.name)]
