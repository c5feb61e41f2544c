"""The job engine: plan -> claim the output -> run what is not done -> journal -> finish.

:func:`run_job` is the one loop every job kind (synth, partial, ...) runs through:

1. ``job.plan()`` lists the items; options are checked before anything is written;
2. the output folder is claimed (marked as mfrkit's, locked for the duration; a folder
   mfrkit did not make, or one in use by another process, is refused);
3. part by part (a :class:`~mfrkit.jobs.base.Plan` is made one row group of the source
   at a time), items already done (journal, or a finished earlier run) and whose files
   still exist are skipped; the rest go to the executor in chunks;
4. each finished chunk is journalled (atomic shards, per part), so an interrupted job
   (Ctrl-C, SIGKILL, a crash) resumes where it stopped;
5. ``job.finish()`` folds every item's rows into the outputs; the journal is removed and
   the folder marked finished.

The driver holds the part being planned, the chunks in flight and the journal's
buffer: its memory does not grow with the number of items.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..progress import progress_bar
from .base import Job, Plan, RunStats
from .executors import ExecutorSpec
from .journal import JOURNAL, Journal


def _previous_taker(previous: Any) -> Callable[[list[str]], Mapping[str, list[dict]]] | None:
    """``keys -> {key: rows}`` over what :meth:`Job.previous_results` returned."""
    if hasattr(previous, "take"):
        return previous.take
    if not previous:
        return None
    return lambda keys: {k: previous[k] for k in keys if k in previous}


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
    items = job.plan()
    if not isinstance(items, Plan):
        items = list(items)
    plan = items if isinstance(items, Plan) else Plan.whole(items, sum(job.units(it) for it in items))
    output = job.output()
    output.claim(replace=job.replace_files)
    try:
        journal = Journal(output.root / JOURNAL, output.fingerprint)
        journal.open()
        tally = {"todo": 0, "resumed": 0}
        in_flight: dict[int, int] = {}  # id(chunk) -> its part, while the executor holds it
        try:
            with progress_bar(plan.units, job.kind, enabled=progress and len(plan) > 0) as advance, executor.create() as ex:
                chunks = _chunks(job, plan, journal, tally, in_flight, advance)
                for chunk, rows in ex.run(job, chunks):
                    part = in_flight.pop(id(chunk))
                    for item, item_rows in zip(chunk, rows):
                        journal.add(part, item.key, item_rows)
                    advance(sum(job.units(item) for item in chunk))
        finally:
            journal.flush()
        stats = RunStats(processed=tally["todo"], resumed=tally["resumed"], elapsed=time.time() - started)
        # The rows stay on disk until finish() asks for them (part by part, or a lazy mapping).
        result = job.finish(journal.results(), items, stats)
        journal.remove()
        output.finished()
        return result
    finally:
        output.release()


def _chunks(job: Job, plan: Plan, journal: Journal, tally: dict, in_flight: dict, advance) -> Iterator[list]:
    """The chunks still to run, made part by part as the executor asks for them."""
    previous = _previous_taker(job.previous_results())
    size = max(1, job.chunk_size)
    for part, items in plan.parts():
        done = journal.done(part, [it.key for it in items], previous, job.is_complete)
        todo = [it for it in items if it.key not in done]
        tally["todo"] += len(todo)
        tally["resumed"] += len(items) - len(todo)
        if len(items) - len(todo):
            advance(sum(job.units(it) for it in items if it.key in done))
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            in_flight[id(chunk)] = part
            yield chunk


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


def imap_chunks(fn: Callable[[list], list], values: Iterable, *, executor: ExecutorSpec | None = None, chunk_size: int = 64,
                progress: bool = False, description: str = "", total: int | None = None) -> Iterator:
    """``fn`` over ``values`` in chunks on ``executor``; the results one by one, in order.

    ``values`` is read lazily, as the executor takes chunks (at most two per worker in
    flight), so a stream of millions of values is never held; chunks that finish early
    wait for the ones before them. ``fn(list_of_values) -> list_of_results`` (one per
    value) must be picklable (a module-level function) and pure. ``total`` (the number
    of values, when known) sizes the progress bar.
    """
    executor = executor or ExecutorSpec()

    def chunks():
        batch, start = [], 0
        for value in values:
            batch.append(value)
            if len(batch) == chunk_size:
                yield (start, batch)
                start, batch = start + len(batch), []
        if batch:
            yield (start, batch)

    waiting: dict[int, list] = {}
    expected = 0
    with progress_bar(total or 0, description, enabled=progress and bool(total)) as advance, executor.create() as ex:
        for (start, part), results in ex.run(_MapJob(fn), chunks()):
            if len(results) != len(part):
                raise RuntimeError(f"{getattr(fn, '__name__', fn)} returned {len(results)} results for {len(part)} values")
            waiting[start] = results
            advance(len(part))
            while expected in waiting:
                done = waiting.pop(expected)
                expected += len(done)
                yield from done


def map_chunks(fn: Callable[[list], list], values: Sequence, *, executor: ExecutorSpec | None = None, chunk_size: int = 64,
               progress: bool = False, description: str = "") -> list:
    """``fn`` over ``values`` in chunks on ``executor``; the results, in order (a list;
    :func:`imap_chunks` streams them)."""
    return list(imap_chunks(fn, values, executor=executor, chunk_size=chunk_size, progress=progress, description=description, total=len(values)))
