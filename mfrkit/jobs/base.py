"""What a job is: typed items, a pure per-item function, and a finishing step.

A job kind is one small class (see :mod:`mfrkit.maskgen.synth_job` for an example):

- :meth:`Job.plan` lists the items (frozen dataclasses with a unique ``key`` and the
  relative paths of the files the item may write), checking options before anything
  is written;
- :meth:`Job.open_worker` makes what a worker process keeps between items (a renderer,
  a landmark detector) once per process;
- :meth:`Job.run_item` turns one item into manifest rows. It must be a pure function of
  the item, the job's options and its seed (``mfrkit.rng.item_rng``), so that outputs are
  byte-identical whatever the executor, the worker count or the order;
- :meth:`Job.finish` folds every item's rows into the job's outputs (manifest, card,
  failures, contact sheet).

The engine (:func:`mfrkit.jobs.engine.run_job`) does everything else: claiming and
locking the output folder, the journal, resuming, executors, progress, Ctrl-C.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence

from ..errors import JobError, MfrkitError
from .output import OutputFolder, OutputFolderError


@dataclass(frozen=True, slots=True)
class Item:
    """One unit of work. Subclasses add the typed fields their job needs.

    Attributes
    ----------
    key : str
        Unique within the job; the journal's key.
    outputs : tuple of str
        Every path (relative to the output folder) the item may write; checked to be
        unique across items before anything runs.

    Items are slotted: a plan of a million items is held by the main process.
    """

    key: str
    outputs: tuple[str, ...] = ()


class Plan:
    """A job's items in parts, made again each time they are walked, never all held.

    A job over a manifest of millions of images plans one row group of it at a time:
    ``parts()`` yields the items of each part in order (the engine runs a part's items,
    journals them under the part's number, and the job's finish folds the results part
    by part). Walking the plan twice must give the same items.

    Parameters
    ----------
    parts : callable() -> iterable of sequences of Item
    size : int
        The number of items over every part (for summaries).
    units : int or None
        What the progress bar counts over every part, where an item is more than one
        thing (:meth:`Job.units`: a landmark shard's images); None: ``size``.
    """

    def __init__(self, parts: Callable[[], Iterable[Sequence[Item]]], size: int, units: int | None = None) -> None:
        self._parts = parts
        self.size = int(size)
        self.units = self.size if units is None else int(units)

    @classmethod
    def whole(cls, items: Sequence[Item], units: int | None = None) -> "Plan":
        """A plan of one part holding ``items`` (``units``: see the class)."""
        items = items if isinstance(items, list) else list(items)
        return cls(lambda: [items], len(items), units)

    def parts(self) -> Iterator[tuple[int, Sequence[Item]]]:
        """``(part number, items)`` in plan order."""
        return enumerate(self._parts())

    def __iter__(self) -> Iterator[Item]:
        for _, items in self.parts():
            yield from items

    def __len__(self) -> int:
        return self.size


@dataclass
class RunStats:
    """What the engine did: items run now and items found done by an earlier run."""

    processed: int
    resumed: int
    elapsed: float


class Job:
    """Base class of job kinds; see the module docstring.

    Class attributes
    ----------------
    kind : str
        Name of the kind (``synth``), also the progress bar's label.
    chunk_size : int
        Items sent to a worker at a time.
    error_status : str
        Status of an item whose function raised something other than an MfrkitError.
    """

    kind: ClassVar[str] = "job"
    chunk_size: ClassVar[int] = 16

    def units(self, item: Item) -> int:
        """How many things ``item`` counts for on the progress bar (a plan's ``units``
        adds them up); one, unless an item is a batch (a landmark shard: its images)."""
        return 1
    error_status: ClassVar[str] = "error"

    # --- set by subclasses ---------------------------------------------------------------

    def plan(self) -> Sequence[Item] | Plan:
        """The items: a sequence (one part), or a :class:`Plan` made part by part."""
        raise NotImplementedError

    def output(self) -> OutputFolder:
        """The folder the job writes into (claimed by the engine before any item runs)."""
        raise NotImplementedError

    def replace_files(self, root: Path) -> list[str] | None:
        """Files an earlier job of this kind wrote in ``root``, when the caller allowed
        replacing it; None refuses such a folder (the default)."""
        return None

    def previous_results(self) -> Any:
        """Results of a finished earlier run of this job (e.g. rerun with a larger
        ``--limit``): a mapping item key -> rows, or an object whose ``take(keys)`` gives
        that mapping for the keys of one part at a time (parts asked in plan order). They
        count as done."""
        return {}

    def is_complete(self, rows: list[dict]) -> bool:
        """Whether a journalled item's outputs are still all there (else it runs again)."""
        return True

    def open_worker(self) -> Any:
        """Per-process state, made once in each worker (and in-process without workers)."""
        return None

    def run_item(self, item: Item, state: Any) -> list[dict]:
        raise NotImplementedError

    def ray_resources(self) -> dict:
        """What one Ray actor of this job reserves (``num_cpus``, ``num_gpus``)."""
        return {"num_cpus": 1}

    def failure_rows(self, item: Item, status: str, message: str) -> list[dict]:
        """Rows recording that ``item`` failed (the job's manifest keeps failures)."""
        return [{"status": status, "message": message}]

    def finish(self, results: dict[str, list[dict]], items: Sequence[Item] | Plan, stats: RunStats) -> Any:
        """Fold the results (a :class:`~mfrkit.jobs.journal.JournalResults`: a mapping, and
        ``results.part(n)`` per part of a :class:`Plan`) into the outputs; ``items`` is
        what :meth:`plan` returned."""
        raise NotImplementedError

    # --- provided --------------------------------------------------------------------------

    def run_chunk(self, items: Sequence[Item], state: Any) -> list[list[dict]]:
        """Run items one by one; a failing item becomes failure rows, never a stopped job."""
        out = []
        for item in items:
            try:
                out.append(self.run_item(item, state))
            except OutputFolderError:
                raise  # the output folder itself is unusable (a link appeared in it): stop the job
            except MfrkitError as exc:
                out.append(self.failure_rows(item, getattr(exc, "reason", "error"), str(exc)))
            except Exception as exc:  # noqa: BLE001 - one bad image must not stop a long job
                msg = f"{type(exc).__name__}: {exc}; {traceback.format_exc(limit=3)}"
                out.append(self.failure_rows(item, self.error_status, msg))
        return out


def check_unique_outputs(items: Iterable[Item], describe, hint: str) -> None:
    """Refuse, before any work, a job where two items would write the same file.

    ``describe(item)`` names an item in the message (e.g. its source image). Items may
    come from a :class:`Plan`: their output paths are sorted in bounded memory
    (:class:`~mfrkit.external_sort.ExternalSort`) rather than held in a set, and the
    clash reported is the one met first in plan order.
    """
    import pyarrow as pa

    from ..external_sort import ExternalSort

    schema = pa.schema([("path", pa.string()), ("seq", pa.int64()), ("who", pa.string())])
    with ExternalSort(schema, [("path", "ascending"), ("seq", "ascending")]) as paths:
        rows: dict[str, list] = {"path": [], "seq": [], "who": []}
        for seq, it in enumerate(items):
            for rel in dict.fromkeys(it.outputs):  # one item may list a path twice (masked + no-face copy)
                rows["path"].append(rel)
                rows["seq"].append(seq)
                rows["who"].append(str(describe(it)))
            if len(rows["path"]) >= 8192:
                paths.add(pa.table(rows, schema=schema))
                rows = {k: [] for k in rows}
        paths.add(pa.table(rows, schema=schema))
        clash = None  # (seq of the later item, first describe, later describe, path)
        last = None
        for table in paths.sorted():
            for path, seq, who in zip(table["path"].to_pylist(), table["seq"].to_pylist(), table["who"].to_pylist()):
                if last is not None and last[0] == path:
                    if clash is None or seq < clash[0]:
                        clash = (seq, last[2], who, path)
                else:
                    last = (path, seq, who)
    if clash is not None:
        raise JobError(f"{clash[1]!r} and {clash[2]!r} would both be written to {clash[3]!r}; {hint}")
