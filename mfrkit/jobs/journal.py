"""The journal of a running job: finished items, written in atomic shards.

``<folder>/.journal/`` holds ``job.json`` (the job's fingerprint) and shards
``part-PPPPPP-NNNNNN.json``, each a JSON list of ``[item_key, rows]`` of items of one
part ``P`` of the plan (:class:`~mfrkit.jobs.base.Plan`), ``N`` counting shards. A shard
is written with a temporary name and renamed, so a killed job leaves only complete
shards; items whose results were not flushed yet are simply run again (their outputs are
byte-identical). A shard that cannot be read (edited or damaged by hand) is set aside
with a warning and its items are run again, rather than stopping every later run.

Nothing is indexed by item: the journal knows which shard files each part has (a
listing), and reads one part's shards when the engine plans that part, or when the
job's finish asks for that part's rows. A job of millions of items therefore holds one
part of its results at a time, and that part compactly: a shard is written one entry a
line (still one JSON list), so a part is read as ``item key -> its rows' JSON text``
and each item's rows are decoded only when asked for (:class:`PartRows`). Measured
(``benchmarks/scale.py --rec``, tracemalloc): decoded rows of a synth item take ~5.2 KB
of the driver's heap, their JSON text under half of that. (Shards of mfrkit 0.1.0,
``part-NNNNNN.json`` without a part, are read whole when the journal opens and serve
every part; one-line shards of earlier versions are read whole, as before.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from collections import ChainMap
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..atomic import atomic_write_text
from ..errors import MfrkitError
from ..userfiles import read_user_bytes

JOURNAL = ".journal"
_SHARD = re.compile(r"^part-(\d+)-(\d+)\.json$")
_LEGACY = re.compile(r"^part-(\d+)\.json$")


_DECODER = json.JSONDecoder()


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


def shard_text(entries: list[list]) -> str:
    """A shard's text: a JSON list of ``[key, rows]``, one entry a line (JSON text has no
    raw newline inside its strings), so a reader finds each entry's key without decoding
    its rows (:func:`split_shard`)."""
    return "[\n" + ",\n".join(json.dumps(entry, default=_json_default) for entry in entries) + "\n]\n"


def split_shard(text: str) -> list[tuple[str, str | list]] | None:
    """``(key, rows)`` of a shard written by :func:`shard_text`, each ``rows`` left as its
    JSON text; None when ``text`` is not laid out so (a one-line shard of an earlier
    version: decode it whole). Raises ValueError for an entry that is not
    ``["<key>", [...]]``."""
    lines = text.split("\n")
    if len(lines) < 3 or lines[0] != "[" or lines[-1] != "" or lines[-2] != "]":
        return None
    out: list[tuple[str, str | list]] = []
    entries = lines[1:-2]
    last = len(entries) - 1
    for i, line in enumerate(entries):
        if i < last:
            if not line.endswith(","):
                raise ValueError(f"entry {i} does not end with a comma")
            line = line[:-1]
        if not line.startswith('["'):
            raise ValueError(f"entry {i} is not [key, rows]")
        key, end = _DECODER.raw_decode(line, 1)
        rows = line[end:]
        if not (rows.startswith(", [") and rows.endswith("]]")):
            raise ValueError(f"entry {i} is not [key, rows]")
        out.append((key, rows[2:-1]))
    return out


class PartRows(Mapping):
    """``item key -> rows`` of one part, holding each item's rows as the JSON text of its
    shard entry and decoding it when asked (a new list each time)."""

    def __init__(self, entries: dict[str, str | list]) -> None:
        self._entries = entries

    def __getitem__(self, key: str) -> list[dict]:
        value = self._entries[key]
        return json.loads(value) if isinstance(value, str) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


class Journal:
    """Finished items of one job, in shards per part of its plan; their rows stay on disk.

    Parameters
    ----------
    folder : path-like
        The journal folder (``<output>/.journal``).
    fingerprint : str
        The job's fingerprint; a journal of another job found there is discarded (the
        output folder's claim already decided the folder is this job's to use).
    flush_items, flush_seconds : int, float
        Results are buffered and written as one shard per part when this many items of
        the part finished or this many seconds passed, so a million-item job does not
        leave a million files.
    """

    def __init__(self, folder: str | os.PathLike, fingerprint: str, *, flush_items: int = 512, flush_seconds: float = 5.0) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.flush_items = flush_items
        self.flush_seconds = flush_seconds
        self._buffers: dict[int, list[list]] = {}
        self._last_flush = time.monotonic()
        self._number = 0
        self._files: dict[int, list[Path]] = {}
        self._legacy: dict[str, list[dict]] = {}

    def open(self) -> None:
        """Create the journal (or reopen this job's) and list the shards it holds."""
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
        self._files, self._legacy, numbers = {}, {}, [-1]
        for path in sorted(self.folder.glob("part-*.json")):
            if (m := _SHARD.match(path.name)) is not None:
                self._files.setdefault(int(m.group(1)), []).append(path)
                numbers.append(int(m.group(2)))
            elif _LEGACY.match(path.name) is not None:
                numbers.append(int(path.stem.split("-")[1]))
                self._legacy.update(self._read(path) or [])
        for paths in self._files.values():
            paths.sort(key=lambda p: int(_SHARD.match(p.name).group(2)))
        self._number = max(numbers) + 1

    def _read(self, part: Path, *, validate: bool = True) -> list | None:
        """``(key, rows)`` of a shard, ``rows`` a list or (a shard of :func:`shard_text`)
        its JSON text. ``validate`` decodes every entry once, so a damaged shard is set
        aside when its part is planned; the finish reads the shards the plan checked or
        this run wrote, and only splits them."""
        try:
            text = read_user_bytes(part, "json").decode("utf-8")
            split = split_shard(text)
            if split is not None:
                for _, rows in split if validate else ():
                    if not isinstance(json.loads(rows), list):
                        raise ValueError("rows are not a list")
                return split
            entries = json.loads(text)
            if not isinstance(entries, list):
                raise ValueError("not a list")
            out = []
            for key, rows in entries:
                if not isinstance(rows, list):
                    raise ValueError("rows are not a list")
                out.append((str(key), rows))
            return out
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, MfrkitError) as exc:
            bad = part.with_name(part.name + ".unreadable")
            part.replace(bad)
            warnings.warn(f"journal shard {part} is unreadable ({exc}); set aside as {bad.name}, its items run again", JournalWarning, stacklevel=3)
            return None

    def _own(self, part: int, *, validate: bool = False) -> PartRows:
        found: dict[str, str | list] = {}
        for path in list(self._files.get(part, [])):
            entries = self._read(path, validate=validate)
            if entries is None and not path.exists():
                self._files[part].remove(path)  # set aside as unreadable: not listed again
            found.update(entries or [])
        for key, rows in self._buffers.get(part, []):
            found[key] = rows
        return PartRows(found)

    def part(self, part: int, *, validate: bool = False) -> Mapping[str, list[dict]]:
        """``item key -> rows`` of the items of ``part`` journalled so far (a later shard
        wins for an item journalled twice); ``validate`` decodes every shard's entries
        once (see :meth:`_read`)."""
        found = self._own(part, validate=validate)
        return ChainMap(found, self._legacy) if self._legacy else found

    def done(self, part: int, keys: list[str], previous: Callable[[list[str]], Mapping[str, list[dict]]] | None = None,
             is_complete: Callable[[list[dict]], bool] | None = None) -> set[str]:
        """Which of ``keys`` (the items of ``part``) are done: journalled, or finished by an
        earlier run (``previous(keys)``: their rows are journalled now), and complete
        (``is_complete(rows)``: every file they list is still there)."""
        complete = is_complete or (lambda rows: True)
        found = self.part(part, validate=True)
        done = {k for k in keys if k in found and complete(found[k])}
        if previous is not None:
            # Asked for every key of the part (a reader of the earlier run's rows in plan
            # order must pass the part's rows, journalled or not).
            for key, rows in previous(keys).items():
                if key not in found and complete(rows):
                    self.add(part, key, rows)
                    done.add(key)
        return done

    def add(self, part: int, key: str, rows: list[dict]) -> None:
        """Record a finished item of ``part`` (written at the next flush)."""
        buffer = self._buffers.setdefault(part, [])
        buffer.append([key, rows])
        if len(buffer) >= self.flush_items:
            self._flush_part(part)
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def _flush_part(self, part: int) -> None:
        buffer = self._buffers.pop(part, None)
        if buffer:
            path = self.folder / f"part-{part:06d}-{self._number:06d}.json"
            atomic_write_text(path, shard_text(buffer))
            self._files.setdefault(part, []).append(path)
            self._number += 1

    def flush(self) -> None:
        """Write every buffered item, one atomic shard per part."""
        for part in sorted(self._buffers):
            self._flush_part(part)
        self._last_flush = time.monotonic()

    def parts(self) -> list[int]:
        """The parts with journalled items."""
        return sorted(set(self._files) | set(self._buffers))

    def results(self) -> "JournalResults":
        """Every finished item's rows, read lazily from the shards (flush first)."""
        self.flush()
        return JournalResults(self)

    def remove(self) -> None:
        """Delete the journal (after the job's results are folded into its outputs)."""
        self._buffers = {}
        shutil.rmtree(self.folder, ignore_errors=True)


class JournalResults(Mapping):
    """``item key -> rows`` of a finished job, read from the journal's shards on demand.

    :meth:`part` reads one part's rows (what a job whose plan has parts folds at a time);
    the mapping interface, for jobs of one part, reads every shard the first time it is
    used. :meth:`items` streams the parts one at a time.
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._cache: dict[int, Mapping[str, list[dict]]] = {}
        self._all: dict[str, int] | None = None

    def part(self, part: int) -> Mapping[str, list[dict]]:
        """``item key -> rows`` of the items of ``part``."""
        if part in self._cache:
            return self._cache[part]
        # Parts are asked for in plan order: one is held, dropped before the next is read.
        self._cache.clear()
        rows = self._journal.part(part)
        self._cache[part] = rows
        return rows

    def _index(self) -> dict[str, int]:
        if self._all is None:
            index = {key: -1 for key in self._journal._legacy}
            for part in self._journal.parts():
                index.update((key, part) for key in self._journal._own(part))
            self._all = index
        return self._all

    def __getitem__(self, key: str) -> list[dict]:
        part = self._index()[key]
        return self._journal._legacy[key] if part == -1 else self.part(part)[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index())

    def __len__(self) -> int:
        return len(self._index())

    def __contains__(self, key: object) -> bool:
        return key in self._index()

    def items(self) -> Iterator[tuple[str, list[dict]]]:  # type: ignore[override]
        """Every (key, rows), one part at a time (an item journalled twice once, its
        latest rows)."""
        seen_legacy = set()
        for part in self._journal.parts():
            rows = self._journal._own(part)
            for key in rows:
                if key in self._journal._legacy:
                    seen_legacy.add(key)
                yield key, rows[key]
        for key, rows in self._journal._legacy.items():
            if key not in seen_legacy:
                yield key, rows
