"""The job engine: plan -> claim the output -> run what is not done -> journal -> finish.

:func:`run_job` is the one loop every job kind (synth, partial, ...) runs through:

1. ``job.plan()`` lists the items; options are checked before anything is written;
2. the output folder is claimed (marked as mfrkit's, locked for the duration; a folder
   mfrkit did not make, or one in use by another process, is refused);
3. items already done (journal, or a finished earlier run) and whose files still exist
   are skipped; the rest go to the executor in chunks;
4. each finished chunk is journalled (atomic shards), so an interrupted job (Ctrl-C,
   SIGKILL, a crash) resumes where it stopped;
5. ``job.finish()`` folds every item's rows into the outputs; the journal is removed and
   the folder marked finished.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from ..progress import progress_bar
from .base import Job, RunStats
from .executors import ExecutorSpec
from .journal import JOURNAL, Journal


def run_job(job: Job, executor: ExecutorSpec | None = None, *, progress: bool = False) -> Any:
    """Run ``job`` to the end and return what its ``finish`` returns.

    Parameters
    ----------
    job : Job
    executor : ExecutorSpec, optional
        Default: the local executor with one worker (in-process).
    progress : bool
        Show a progress bar on stderr.
    """
    started = time.time()
    executor = executor or ExecutorSpec()
    items = list(job.plan())
    output = job.output()
    output.claim(replace=job.replace_files)
    try:
        journal = Journal(output.root / JOURNAL, output.fingerprint)
        done = journal.open(job.previous_results(), job.is_complete)
        todo = [it for it in items if it.key not in done]
        size = max(1, job.chunk_size)
        chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
        try:
            with progress_bar(len(todo), job.kind, enabled=progress and bool(todo), completed=0) as advance, executor.create() as ex:
                for chunk, rows in ex.run(job, chunks):
                    for item, item_rows in zip(chunk, rows):
                        journal.add(item.key, item_rows)
                    advance(len(chunk))
        finally:
            journal.flush()
        stats = RunStats(processed=len(todo), resumed=len(items) - len(todo), elapsed=time.time() - started)
        # The rows stay on disk until finish() asks for them (a lazy mapping).
        result = job.finish(journal.results(), items, stats)
        journal.remove()
        output.finished()
        return result
    finally:
        output.release()


class _MapJob(Job):
    """A plain function over chunks of values, for work that writes no files (probing
    images during a scan): each chunk is ``(start, values)`` and comes back as
    ``fn(values)``, one result per value."""

    kind = "map"

    def __init__(self, fn: Callable[[list], list]) -> None:
        self.fn = fn

    def run_chunk(self, chunk, state) -> list:
        start, values = chunk
        return self.fn(list(values))


def map_chunks(fn: Callable[[list], list], values: Sequence, *, executor: ExecutorSpec | None = None, chunk_size: int = 64,
               progress: bool = False, description: str = "") -> list:
    """``fn`` over ``values`` in chunks on ``executor``; the results, in order.

    ``fn(list_of_values) -> list_of_results`` (one per value) must be picklable (a
    module-level function) and pure.
    """
    executor = executor or ExecutorSpec()
    chunks = [(i, values[i : i + chunk_size]) for i in range(0, len(values), chunk_size)]
    out: list = [None] * len(values)
    with progress_bar(len(values), description, enabled=progress and bool(values)) as advance, executor.create() as ex:
        for (start, part), results in ex.run(_MapJob(fn), chunks):
            if len(results) != len(part):
                raise RuntimeError(f"{getattr(fn, '__name__', fn)} returned {len(results)} results for {len(part)} values")
            out[start : start + len(part)] = results
            advance(len(part))
    return out
