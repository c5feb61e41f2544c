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
from typing import Any, ClassVar, Sequence

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
    error_status: ClassVar[str] = "error"

    # --- set by subclasses ---------------------------------------------------------------

    def plan(self) -> Sequence[Item]:
        raise NotImplementedError

    def output(self) -> OutputFolder:
        """The folder the job writes into (claimed by the engine before any item runs)."""
        raise NotImplementedError

    def replace_files(self, root: Path) -> list[str] | None:
        """Files an earlier job of this kind wrote in ``root``, when the caller allowed
        replacing it; None refuses such a folder (the default)."""
        return None

    def previous_results(self) -> dict[str, list[dict]]:
        """Results of a finished earlier run of this job (e.g. rerun with a larger
        ``--limit``), by item key; they count as done."""
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

    def finish(self, results: dict[str, list[dict]], items: Sequence[Item], stats: RunStats) -> Any:
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


def check_unique_outputs(items: Sequence[Item], describe, hint: str) -> None:
    """Refuse, before any work, a job where two items would write the same file.

    ``describe(item)`` names an item in the message (e.g. its source image).
    """
    seen: dict[str, Item] = {}
    for it in items:
        for rel in dict.fromkeys(it.outputs):  # one item may list a path twice (masked + no-face copy)
            other = seen.get(rel)
            if other is not None and other is not it:
                raise JobError(f"{describe(other)!r} and {describe(it)!r} would both be written to {rel!r}; {hint}")
            seen[rel] = it
