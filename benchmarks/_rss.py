"""Peak resident memory of a piece of work, measured in a fresh process.

    from _rss import measure
    report = measure(some_module_level_function, arg1, arg2)
    print(report.result, report.largest_mib)

The function runs in a new process started with ``spawn`` (nothing inherited from the
caller's heap). Its peak RSS is the kernel's high-water mark ``VmHWM`` of
``/proc/self/status``, read when the function returns. Processes it starts (worker
pools) are watched by a thread that reads their ``VmHWM`` every 50 ms while they run,
so :attr:`Rss.largest_mib` is the peak RSS of the largest process the work used (growth
in a worker's last 50 ms may be missed). ``getrusage``'s ``ru_maxrss`` is not used: on
Linux it survives ``exec`` and so reports the parent's size at the fork for a spawned
process.

The function must be importable by the new process: defined at module level in an
importable module or in the script being run (``__main__`` is re-imported under spawn).
Shared with ``benchmarks/scale.py``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class Rss:
    """What :func:`measure` found.

    Attributes
    ----------
    result : the function's return value.
    self_mib : float, peak RSS of the process that ran the function, MiB.
    children_mib : float, largest peak RSS among the processes it started, MiB (0: none).
    where : tuple of str, with ``where=True``: the innermost mfrkit frames of the measured
        process's main thread when its RSS last rose to a new high (``file:line function``).
    """

    result: Any
    self_mib: float
    children_mib: float
    where: tuple[str, ...] = ()

    @property
    def largest_mib(self) -> float:
        """Peak RSS of the largest process involved, MiB."""
        return max(self.self_mib, self.children_mib)


def hwm_mib(pid: int | str = "self") -> float:
    """``VmHWM`` (peak resident set since exec) of process ``pid``, MiB; 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def descendants(pid: int) -> set[int]:
    """Ids of the processes below ``pid`` (children, their children, ...)."""
    parent_of = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
                parent_of[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent_of.items() if pp in frontier} - found
        found |= frontier
    return found


def rss_mib(pid: int | str = "self") -> float:
    """``VmRSS`` (resident set now) of process ``pid``, MiB; 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _stack(thread_id: int, depth: int = 6) -> tuple[str, ...]:
    """The innermost ``depth`` mfrkit frames of a thread, innermost last."""
    import sys

    frame = sys._current_frames().get(thread_id)
    frames = []
    while frame is not None:
        code = frame.f_code
        if "mfrkit" in code.co_filename or "benchmarks" in code.co_filename:
            frames.append(f"{Path(code.co_filename).name}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return tuple(reversed(frames[:depth]))


class _Watch(threading.Thread):
    """Largest VmHWM among this process's descendants, sampled every ``period`` s; with
    ``where``, also the main thread's stack whenever this process's RSS reaches a new high."""

    def __init__(self, period: float = 0.05, where: bool = False) -> None:
        super().__init__(daemon=True)
        self.period = period
        self.peak = 0.0
        self.where = where
        self.at_peak: tuple[str, ...] = ()
        self._own_peak = 0.0
        self._main = threading.main_thread().ident
        self._done = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        period = self.period / 5 if self.where else self.period
        tick = 0
        while not self._done.wait(period):
            if self.where:
                now = rss_mib()
                if now > self._own_peak:
                    self._own_peak, self.at_peak = now, _stack(self._main)
            tick += 1
            if not self.where or tick % 5 == 0:
                for pid in descendants(me):
                    self.peak = max(self.peak, hwm_mib(pid))

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak


def _run(conn, fn: Callable, args: tuple, kwargs: dict, where: bool) -> None:
    watch = _Watch(where=where)
    watch.start()
    try:
        result = fn(*args, **kwargs)
        own = hwm_mib()
        kids = watch.stop()
        conn.send(("ok", result, own, kids, watch.at_peak))
    except BaseException as exc:  # noqa: BLE001 - reported to the caller
        conn.send(("error", f"{type(exc).__name__}: {exc}", 0.0, 0.0, ()))
    finally:
        conn.close()


def measure(fn: Callable, *args, where: bool = False, **kwargs) -> Rss:
    """Run ``fn(*args, **kwargs)`` in a fresh spawned process; its result and peak RSS
    (``where``: and the stack at the measured process's highest RSS, sampled every 10 ms)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_run, args=(child, fn, args, kwargs, where))
    proc.start()
    child.close()
    try:
        status, result, own, kids, at_peak = parent.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f"the measured process died (exit code {proc.exitcode})") from None
    proc.join()
    if status != "ok":
        raise RuntimeError(f"the measured function failed: {result}")
    return Rss(result=result, self_mib=own, children_mib=kids, where=at_peak)


def baseline(*modules: str) -> float:
    """Peak RSS (MiB) of a fresh process that only imports ``modules``: subtract it to
    see what the work itself costs."""
    return measure(_import, modules).self_mib


def _import(modules: tuple[str, ...]) -> None:
    import importlib

    for m in modules:
        importlib.import_module(m)
