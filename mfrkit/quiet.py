"""Quiet native libraries: mediapipe, TFLite and absl log to the process's stderr file
descriptor from C++, where Python's logging cannot reach them.

mediapipe 0.10.21 writes, per graph, lines such as ``W0000 00:00:... 9903
inference_feedback_manager.cc:114] Feedback manager requires a model with a single
signature inference`` and ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU``.
absl prints them before any logging is initialised, so no environment variable turns them
off (``GLOG_minloglevel`` and ``TF_CPP_MIN_LOG_LEVEL`` are set anyway, for the glog and
TensorFlow code paths that do read them). :func:`native_logs` therefore points file
descriptor 2 at a temporary file around the native calls (and until the native threads
they started are idle), then writes back every line
that is not such an informational or warning line: errors, crash messages and anything
Python printed meanwhile (a progress bar refreshed by another thread) still appear, a
moment later.

Verbose mode (``mfrkit --verbose``, or ``MFRKIT_VERBOSE=1``) leaves stderr alone. It is an
environment variable so that worker processes, which are spawned and inherit the
environment, follow the parent's choice.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Callable, Iterator

VERBOSE_ENV = "MFRKIT_VERBOSE"

#: Lines dropped in quiet mode: absl/glog INFO and WARNING lines (``I0000 ...`` /
#: ``W0000 ... file.cc:123] ...``), absl's notice that logging is not initialised, and
#: TFLite's ``INFO:`` lines. Errors (``E...``, ``F...``) and everything else are kept.
NOISE = re.compile(
    rb"^(?:[IW]\d{4} [\d:. ]+\s+\d+ [\w./-]+:\d+\] .*"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|INFO: (?:Created TensorFlow Lite|Initialized TensorFlow Lite).*)\r?$"
)


def verbose() -> bool:
    """True when native log lines are to be shown (``MFRKIT_VERBOSE`` set and not ``0``)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose(on: bool) -> None:
    """Show (True) or filter (False) native log lines in this process and the worker
    processes it starts from now on."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)


def filter_noise(data: bytes) -> bytes:
    """``data`` without the :data:`NOISE` lines (line endings kept)."""
    return b"".join(line for line in data.splitlines(keepends=True) if not NOISE.match(line.rstrip(b"\n")))


@contextlib.contextmanager
def native_logs(settle: Callable[[], object] | None = None) -> Iterator[None]:
    """Around a call into mediapipe/TFLite: drop their informational and warning lines
    from file descriptor 2 unless verbose; every other line written meanwhile is written
    back when the block ends.

    Parameters
    ----------
    settle : callable, optional
        Called (quiet mode only) before stderr is restored, to wait for the native
        threads that may still log once the call has returned: mediapipe opens some
        calculators on graph threads just after its first result
        (``CalculatorGraph.wait_until_idle``).
    """
    if verbose():
        yield
        return
    # glog / TensorFlow read these when their logging starts; absl does not (see above).
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        sys.stderr.flush()  # what Python buffered belongs before the block
    except (AttributeError, ValueError, OSError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all (a daemon): nothing to protect
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
            if settle is not None:
                settle()
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError, OSError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = memoryview(filter_noise(sink.read()))
            while kept:
                kept = kept[os.write(2, kept) :]
