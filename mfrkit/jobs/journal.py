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
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..atomic import atomic_write_text
from ..errors import MfrkitError
from ..userfiles import read_user_bytes

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
    """Finished items of one job, indexed by item key; their rows stay on disk.

    The main process keeps only ``key -> shard number`` for every finished item, so a
    job of millions of items does not hold millions of result rows; :meth:`results`
    reads them back lazily when the job finishes.

    Parameters
    ----------
    folder : path-like
        The journal folder (``<output>/.journal``).
    fingerprint : str
        The job's fingerprint; a journal of another job found there is discarded (the
        output folder's claim already decided the folder is this job's to use).
    flush_items, flush_seconds : int, float
        Results are buffered and written as one shard when this many items finished or
        this many seconds passed, so a million-item job does not leave a million files.
    """

    #: Shard number of results that come from a finished earlier run (``previous``).
    PREVIOUS = -1

    def __init__(self, folder: str | os.PathLike, fingerprint: str, *, flush_items: int = 512, flush_seconds: float = 5.0) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.flush_items = flush_items
        self.flush_seconds = flush_seconds
        self._buffer: list[list] = []
        self._last_flush = time.monotonic()
        self._number = 0
        self.index: dict[str, int] = {}
        self._previous: Mapping[str, list[dict]] = {}

    def open(self, previous: Mapping[str, list[dict]] | None = None, is_complete: Callable[[list[dict]], bool] | None = None) -> dict[str, int]:
        """Create the journal (or reopen this job's) and index what is done.

        Parameters
        ----------
        previous : mapping key -> rows, optional
            Results of a finished earlier run (they count as done).
        is_complete : callable(rows) -> bool, optional
            Whether an item's outputs are all still there; an incomplete item is not done.

        Returns
        -------
        dict key -> shard number of every finished, complete item (:attr:`index`).
        """
        stamp = self.folder / "job.json"
        if stamp.exists():
            try:
                same = json.loads(read_user_bytes(stamp, "json")).get("fingerprint") == self.fingerprint
            except (OSError, ValueError, AttributeError, MfrkitError):
                same = False
            if not same:
                shutil.rmtree(self.folder)  # another job's leftovers in a folder this job now owns
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stamp, json.dumps({"fingerprint": self.fingerprint}))
        complete = is_complete or (lambda rows: True)
        self._previous = previous or {}
        index: dict[str, int] = {}
        for key, rows in self._previous.items():
            if complete(rows):
                index[key] = self.PREVIOUS
        parts = sorted(self.folder.glob("part-*.json"))
        for part in parts:
            number = int(part.stem.split("-")[1])
            entries = self._read(part)
            if entries is None:
                continue
            for key, rows in entries:
                if complete(rows):
                    index[key] = number
                else:
                    index.pop(key, None)
        if parts:
            self._number = max(int(p.stem.split("-")[1]) for p in parts) + 1
        self.index = index
        return index

    def _read(self, part: Path) -> list | None:
        try:
            entries = json.loads(read_user_bytes(part, "json"))
            if not isinstance(entries, list):
                raise ValueError("not a list")
            out = []
            for key, rows in entries:
                if not isinstance(rows, list):
                    raise ValueError("rows are not a list")
                out.append((str(key), rows))
            return out
        except (OSError, ValueError, TypeError, MfrkitError) as exc:
            bad = part.with_name(part.name + ".unreadable")
            part.replace(bad)
            warnings.warn(f"journal shard {part} is unreadable ({exc}); set aside as {bad.name}, its items run again", JournalWarning, stacklevel=3)
            return None

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
            for key, _ in self._buffer:
                self.index[key] = self._number
            self._number += 1
            self._buffer = []
        self._last_flush = time.monotonic()

    def results(self) -> "JournalResults":
        """Every finished item's rows, read lazily from the shards (flush first)."""
        self.flush()
        return JournalResults(self)

    def remove(self) -> None:
        """Delete the journal (after the job's results are folded into its outputs)."""
        self._buffer = []
        shutil.rmtree(self.folder, ignore_errors=True)


class JournalResults(Mapping):
    """``item key -> rows`` of a finished job, read from the journal's shards on demand.

    Looking items up in plan order mostly hits the few shards cached (chunks finish
    roughly in the order they were sent); :meth:`items` streams every shard once.
    """

    def __init__(self, journal: Journal, *, cached_shards: int = 4) -> None:
        self._journal = journal
        self._cache: OrderedDict[int, dict[str, list[dict]]] = OrderedDict()
        self._cached_shards = cached_shards

    def _shard(self, number: int) -> dict[str, list[dict]]:
        if number in self._cache:
            self._cache.move_to_end(number)
            return self._cache[number]
        entries = self._journal._read(self._journal.folder / f"part-{number:06d}.json") or []
        shard = dict(entries)
        self._cache[number] = shard
        if len(self._cache) > self._cached_shards:
            self._cache.popitem(last=False)
        return shard

    def __getitem__(self, key: str) -> list[dict]:
        number = self._journal.index[key]
        if number == Journal.PREVIOUS:
            return self._journal._previous[key]
        return self._shard(number)[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._journal.index)

    def __len__(self) -> int:
        return len(self._journal.index)

    def __contains__(self, key: object) -> bool:
        return key in self._journal.index

    def items(self) -> Iterator[tuple[str, list[dict]]]:  # type: ignore[override]
        """Every (key, rows), one shard at a time (earlier results first)."""
        index = self._journal.index
        for key, number in index.items():
            if number == Journal.PREVIOUS:
                yield key, self._journal._previous[key]
        numbers = sorted({n for n in index.values() if n != Journal.PREVIOUS})
        for number in numbers:
            for key, rows in self._shard(number).items():
                if index.get(key) == number:
                    yield key, rows
