"""The worker side of the local executor: one job and its per-process state per worker.

This module holds the engine's single per-process slot (the job a worker runs and what
:meth:`~mfrkit.jobs.base.Job.open_worker` made for it); job code itself keeps no
module-level state.
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any, Sequence

_SLOT: dict[str, Any] = {}

#: Environment that keeps each worker to one thread: one process per core already.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies.

    Without it, killing the main process with SIGKILL leaves its workers running
    (orphans) until they finish their queue. A no-op where ``prctl`` is missing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    # The parent may have died before prctl ran: the signal would never come.
    if os.getppid() == 1:
        os._exit(1)


def init_worker(job) -> None:
    """Process-pool initializer: remember the job and make its worker state."""
    die_with_parent()
    # Ctrl-C goes to the whole process group; the main process stops the pool, so the
    # workers must not die mid-write with a traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - opencv is a dependency
        pass
    _SLOT["job"] = job
    _SLOT["state"] = job.open_worker()


def run_chunk(items: Sequence) -> list[list[dict]]:
    """Run one chunk of the remembered job's items in this worker."""
    return _SLOT["job"].run_chunk(items, _SLOT["state"])
