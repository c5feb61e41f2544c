"""Executors run a job's chunks of items: in-process, on a local process pool, or on Ray.

Every executor runs the same :meth:`~mfrkit.jobs.base.Job.run_chunk` on the same chunks,
so outputs are byte-identical whichever runs them. Results come back as they finish
(in any order); the engine journals them by item key.

Workers read inputs and write outputs on a file system every worker sees (a local disk
for ``local``; a shared file system such as NFS or Lustre for a Ray cluster). Object
stores are out of scope.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from ..options import option
from ..registry import Registry
from .base import Item, Job
from .worker import SINGLE_THREAD_ENV, init_worker, run_chunk

EXECUTORS: Registry = Registry("executor")

Chunk = Sequence[Item]
Result = tuple[Chunk, list[list[dict]]]


@dataclass(frozen=True)
class ExecutorSpec:
    """Which executor to use, and how.

    Attributes
    ----------
    kind : str
        ``local`` (process pool; the default) or ``ray``.
    workers : int or None
        Local: worker processes (1 runs in-process). Ray: actors (0: one per CPU the
        cluster offers). None: automatic, for a command that chooses (``bench`` by
        provider and CPU count); a local pool then runs one per CPU.
    address : str or None
        Ray: None starts a local Ray instance, ``auto`` joins a running cluster, else
        the cluster's address (``ray://host:10001`` or ``host:6379``).
    """

    kind: str = option("local", flags="--executor", help="Where the work runs: local (process pool) or ray (a local Ray instance, or a cluster with --ray-address).")
    workers: int | None = option(1, short="-j", min=0, help="Worker processes (local) or Ray actors (0: one per CPU of the Ray cluster).")
    address: str | None = option(None, flags="--ray-address", help="Ray cluster to join: 'auto' (a running cluster), host:port or ray://host:10001; none starts a local Ray instance.")

    def create(self) -> "Executor":
        return EXECUTORS.get(self.kind)(self)

    @property
    def local_workers(self) -> int:
        """Processes for the work done on this machine around the job (scans, landmark
        detection before it): ``workers``, at least 1 (None: one per CPU)."""
        return max(1, os.cpu_count() or 1) if self.workers is None else max(1, self.workers)


class Executor:
    """Runs chunks of a job's items; use as a context manager."""

    def __init__(self, spec: ExecutorSpec) -> None:
        self.spec = spec

    def run(self, job: Job, chunks: Iterable[Chunk]) -> Iterator[Result]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InlineExecutor(Executor):
    """Runs every chunk in this process (``-j 1``, and small jobs)."""

    def run(self, job: Job, chunks: Iterable[Chunk]) -> Iterator[Result]:
        state = job.open_worker()
        for chunk in chunks:
            yield chunk, job.run_chunk(chunk, state)


@contextlib.contextmanager
def single_threaded_children() -> Iterator[None]:
    """Spawned workers inherit the environment: keep each to one BLAS/OpenMP thread."""
    saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
    for k, v in SINGLE_THREAD_ENV.items():
        os.environ.setdefault(k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """A pool of ``spec.workers`` spawned processes (in-process when 1).

    Spawn, not fork: a child forked from a parent that already runs mediapipe,
    onnxruntime or torch thread pools can deadlock or crash. At most two chunks per
    worker are in flight, so planning a million items does not queue a million futures.
    Workers die with the main process (even on SIGKILL; see
    :func:`~mfrkit.jobs.worker.die_with_parent`).
    """

    def run(self, job: Job, chunks: Iterable[Chunk]) -> Iterator[Result]:
        # Chunks are taken as workers free up (a stream: the plan is made as it runs);
        # a job of one chunk runs in-process.
        it = iter(chunks)
        first = list(itertools.islice(it, 2))
        workers = self.spec.local_workers
        if workers <= 1 or len(first) <= 1:
            yield from InlineExecutor(self.spec).run(job, itertools.chain(first, it))
            return
        context = multiprocessing.get_context("spawn")
        with single_threaded_children():
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker, initargs=(job,))
            try:
                it = itertools.chain(first, it)
                pending = {}
                for chunk in it:
                    pending[pool.submit(run_chunk, chunk)] = chunk
                    if len(pending) >= 2 * workers:
                        break
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        chunk = pending.pop(fut)
                        nxt = next(it, None)
                        if nxt is not None:
                            pending[pool.submit(run_chunk, nxt)] = nxt
                        yield chunk, fut.result()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)


@EXECUTORS.register("ray")
def _ray_executor(spec: ExecutorSpec) -> Executor:
    from .ray_executor import RayExecutor

    return RayExecutor(spec)
