"""The journal of a running job: finished items, written in atomic shards.

``<folder>/.journal/`` holds ``job.json`` (the job's fingerprint) and shards
``part-NNNNNN.json``, each a JSON list of ``[item_key, rows]``. A shard is written with a
temporary name and renamed, so a killed job leaves only complete shards; items whose
results were not flushed yet are simply run again (their outputs are byte-identical).
A shard that cannot be read (edited or damaged by hand) is set aside with a warning and
its items are run again, rather than stopping every later run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from ..atomic import atomic_write_text

JOURNAL = ".journal"


class JournalWarning(UserWarning):
    """A journal shard could not be read; its items run again."""


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


class Journal:
    """Finished items of one job, by item key.

    Parameters
    ----------
    folder : path-like
        The journal folder (``<output>/.journal``).
    fingerprint : str
        The job's fingerprint; a journal of another job is discarded when ``reset`` is
        true, refused otherwise (the output folder's claim already checked it).
    flush_items, flush_seconds : int, float
        Results are buffered and written as one shard when this many items finished or
        this many seconds passed, so a million-item job does not leave a million files.
    """

    def __init__(self, folder: str | os.PathLike, fingerprint: str, *, flush_items: int = 512, flush_seconds: float = 5.0) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.flush_items = flush_items
        self.flush_seconds = flush_seconds
        self._buffer: list[list] = []
        self._last_flush = time.monotonic()
        self._number = 0

    def open(self) -> dict[str, list[dict]]:
        """Create the journal (or reopen this job's) and return what it holds."""
        stamp = self.folder / "job.json"
        if stamp.exists():
            try:
                same = json.loads(stamp.read_text()).get("fingerprint") == self.fingerprint
            except (OSError, ValueError, AttributeError):
                same = False
            if not same:
                shutil.rmtree(self.folder)  # another job's leftovers in a folder this job now owns
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stamp, json.dumps({"fingerprint": self.fingerprint}))
        done: dict[str, list[dict]] = {}
        parts = sorted(self.folder.glob("part-*.json"))
        for part in parts:
            try:
                entries = json.loads(part.read_text(encoding="utf-8"))
                if not isinstance(entries, list):
                    raise ValueError("not a list")
                for key, rows in entries:
                    if not isinstance(rows, list):
                        raise ValueError("rows are not a list")
                    done[str(key)] = rows
            except (OSError, ValueError, TypeError) as exc:
                bad = part.with_name(part.name + ".unreadable")
                part.replace(bad)
                warnings.warn(f"journal shard {part} is unreadable ({exc}); set aside as {bad.name}, its items run again", JournalWarning, stacklevel=2)
        if parts:
            self._number = max(int(p.stem.split("-")[1]) for p in parts) + 1
        return done

    def add(self, key: str, rows: list[dict]) -> None:
        """Record a finished item (written at the next flush)."""
        self._buffer.append([key, rows])
        if len(self._buffer) >= self.flush_items or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def add_many(self, entries: Iterable[tuple[str, list[dict]]]) -> None:
        for key, rows in entries:
            self.add(key, rows)

    def flush(self) -> None:
        """Write the buffered items as one atomic shard."""
        if self._buffer:
            atomic_write_text(self.folder / f"part-{self._number:06d}.json", json.dumps(self._buffer, default=_json_default))
            self._number += 1
            self._buffer = []
        self._last_flush = time.monotonic()

    def remove(self) -> None:
        """Delete the journal (after the job's results are folded into its outputs)."""
        self._buffer = []
        shutil.rmtree(self.folder, ignore_errors=True)
