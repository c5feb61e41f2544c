"""An exclusive lock on a folder (or a cache) for the duration of a job.

Two jobs writing into the same output folder at the same time corrupt it (one manifest,
files from both). A job therefore holds an ``flock`` on a lock file for as long as it
runs; a second job finds the lock taken and stops with a message naming the process
that holds it. The kernel releases the lock when the holder exits, even on SIGKILL, so
a stale lock file never blocks anyone.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from ..errors import JobError


class FolderInUseError(JobError):
    """Another process holds the lock of a folder or cache."""


class FolderLock:
    """An exclusive, non-blocking lock held through a lock file.

    Parameters
    ----------
    path : path-like
        The lock file (created if missing, never removed: removing it while another
        process waits on it would let two holders in).
    what : str
        What is locked, for the message a second job gets ("output folder /x").
    purpose : str
        What the holder is doing ("synth"), written into the lock file.
    """

    def __init__(self, path: str | os.PathLike, *, what: str, purpose: str = "") -> None:
        self.path = Path(path)
        self.what = what
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = f"PID {holder.get('pid', '?')}" + (f" on {holder['host']}" if holder.get("host") and holder.get("host") != socket.gethostname() else "")
            doing = f" ({holder['purpose']}" + (f", since {holder['since']}" if holder.get("since") else "") + ")" if holder.get("purpose") else ""
            raise FolderInUseError(f"{self.what} is in use by {who}{doing}; wait for that job to finish or stop it, or use another folder") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose, "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        data = os.pread(fd, 4096, 0)
        info = json.loads(data.decode() or "{}")
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}
