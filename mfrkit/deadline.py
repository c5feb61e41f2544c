"""A time limit on a block of code that may hang (a regex that backtracks, a Ray address
nothing answers), by SIGALRM."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator


@contextlib.contextmanager
def deadline(seconds: float, error: Callable[[], BaseException]) -> Iterator[None]:
    """Raise ``error()`` in the block once ``seconds`` have passed.

    Only the main thread of a Unix process can take SIGALRM: elsewhere the block runs
    without a limit, and callers keep their own bound (a static regex check, a TCP probe).
    The previous handler and timer state are restored on exit.
    """
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise error()

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
