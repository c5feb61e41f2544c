"""Output folders mfrkit owns: marked, locked, and never written through a link.

mfrkit must never delete or overwrite a file it did not write. Every folder a job writes
into is therefore *claimed* first:

- a new or empty folder is marked as mfrkit's with a marker file
  (:data:`MARKER`: the job kind, its fingerprint, mfrkit's version);
- a folder that holds the marker of the same kind is mfrkit's own: the same job
  (same fingerprint) resumes there; another job of that kind is refused unless the
  caller asks to *replace* it, and then only the files that job recorded are removed;
- any other non-empty folder is refused with a message;
- while the job runs it holds a :class:`~mfrkit.jobs.lock.FolderLock` on the folder, so
  a second job gets "in use by PID ..." instead of mixing its files in.

Files are written through :meth:`OutputFolder.path_for`, which refuses a path leaving
the folder or passing through a symbolic link (a linked sub-folder pointing into the
source dataset would otherwise make a job overwrite the source images).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from .. import __version__
from ..atomic import atomic_write_bytes, atomic_write_text
from ..errors import JobError, MfrkitError
from ..userfiles import read_user_bytes
from .lock import FolderLock

#: The marker file of a folder mfrkit made.
MARKER = ".mfrkit-output.json"
#: The lock file a running job holds.
LOCK = ".mfrkit.lock"


class OutputFolderError(JobError):
    """An output folder cannot be used: not mfrkit's, holding another job, a link, ..."""


@dataclass(frozen=True)
class Marker:
    """What a marker file says about the folder it is in."""

    kind: str
    fingerprint: str
    state: str  # "running" or "finished"
    version: str = ""
    created: str = ""

    def as_dict(self) -> dict:
        return {"kind": self.kind, "fingerprint": self.fingerprint, "state": self.state, "mfrkit_version": self.version, "created": self.created}


def read_marker(folder: str | os.PathLike) -> Marker | None:
    """The marker of ``folder``; None when it has none (or an unreadable one)."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(read_user_bytes(path, "json"))
    except (OSError, ValueError, MfrkitError):  # missing, not a regular file, too large, not JSON
        return None
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        return None
    return Marker(kind=data["kind"], fingerprint=str(data.get("fingerprint", "")), state=str(data.get("state", "")),
                  version=str(data.get("mfrkit_version", "")), created=str(data.get("created", "")))


def _visible_entries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name not in (MARKER, LOCK)]


def _holds_work(folder: Path) -> bool:
    """Whether a job left anything in ``folder`` besides its marker, lock and an empty journal."""
    for p in _visible_entries(folder):
        if p.name == ".journal" and p.is_dir() and not any(p.glob("part-*")):
            continue
        return True
    return False


class OutputFolder:
    """A folder a job writes into, claimed for it (see the module docstring).

    Parameters
    ----------
    root : path-like
        The folder.
    kind : str
        What the job makes (``synth``, ``partial``, ``demo``, ...); a folder of another
        kind is never taken over.
    fingerprint : str
        Identifies the job's options and inputs: the same fingerprint resumes.
    adopt : callable, optional
        ``adopt(root) -> fingerprint or None``: recognises a folder an older mfrkit made
        before markers existed (e.g. a 0.1.0 synth output); its fingerprint, or None
        when the folder is not such an output.
    """

    def __init__(self, root: str | os.PathLike, *, kind: str, fingerprint: str, adopt: Callable[[Path], str | None] | None = None) -> None:
        self.root = Path(root)
        self.kind = kind
        self.fingerprint = fingerprint
        self._adopt = adopt
        self._lock = FolderLock(self.root / LOCK, what=f"output folder {self.root}", purpose=kind)
        self._checked_dirs: set[str] = set()
        self.previous: Marker | None = None

    # --- claiming ------------------------------------------------------------------------

    def claim(self, *, replace: Callable[[Path], Iterable[str]] | None = None) -> "OutputFolder":
        """Check the folder is usable, lock it, and mark it as this job's.

        Parameters
        ----------
        replace : callable, optional
            When the folder holds another job of the same kind, ``replace(root)`` lists
            the files (relative paths) that job wrote: they are removed (nothing else)
            and the folder taken. Without it, or when it returns None, such a folder is
            refused.

        Raises
        ------
        OutputFolderError
            The folder is a file or a link, holds files mfrkit did not write, or holds
            another job (and ``replace`` was not given).
        FolderInUseError
            Another job is running in it.
        """
        if self._lock.held:
            return self  # claimed already (by the caller, before its own preparations)
        root = self.root
        if root.is_symlink():
            raise OutputFolderError(f"{root} is a symbolic link; give the real folder (mfrkit does not write through links)")
        if root.exists() and not root.is_dir():
            raise OutputFolderError(f"{root} is a file, not a folder")
        # A foreign folder is refused before the lock file is made: nothing is added to it.
        self._foreign_marker(root)
        root.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            marker = self._foreign_marker(root)  # again, under the lock
            if marker is not None and marker.kind != self.kind:
                raise OutputFolderError(f"{root} holds mfrkit's {marker.kind} output, not a {self.kind}; choose another folder")
            if marker is not None and marker.fingerprint != self.fingerprint and not _holds_work(root):
                marker = None  # that job stopped before making anything: nothing to protect
            if marker is not None and marker.fingerprint != self.fingerprint:
                files = replace(root) if replace is not None else None
                if files is None:
                    what = "an unfinished" if marker.state != "finished" else "a finished"
                    raise OutputFolderError(
                        f"{root} holds {what} {self.kind} made with other options or inputs; use another folder "
                        f"(or finish that one with its own options)"
                    )
                self._remove_files(files)
            self.previous = marker
            self._write_marker("running")
        except BaseException:
            self._lock.release()
            raise
        return self

    def check(self) -> "OutputFolder":
        """Refuse now, before a job's costly preparations (reading the data, detecting
        landmarks), a folder :meth:`claim` would refuse whatever the job's options: a
        link, a file, a user's folder, another kind's output. Writes nothing."""
        root = self.root
        if root.is_symlink():
            raise OutputFolderError(f"{root} is a symbolic link; give the real folder (mfrkit does not write through links)")
        if root.exists() and not root.is_dir():
            raise OutputFolderError(f"{root} is a file, not a folder")
        marker = self._foreign_marker(root)
        if marker is not None and marker.kind != self.kind:
            raise OutputFolderError(f"{root} holds mfrkit's {marker.kind} output, not a {self.kind}; choose another folder")
        return self

    def _foreign_marker(self, root: Path) -> Marker | None:
        """The folder's marker (a legacy folder's, adopted); refuses a foreign folder."""
        if not root.exists():
            return None
        marker = read_marker(root)
        if marker is None and _visible_entries(root):
            legacy = self._adopt(root) if self._adopt else None
            if legacy is None:
                raise OutputFolderError(
                    f"{root} is not empty and was not made by mfrkit ({self.kind}); mfrkit never writes into a folder "
                    f"holding files it did not write: choose a new or empty folder"
                )
            marker = Marker(kind=self.kind, fingerprint=legacy, state="finished")
        return marker

    def finished(self) -> None:
        """Mark the job finished (a rerun with the same fingerprint finds it done)."""
        self._write_marker("finished")

    def release(self) -> None:
        """Release the lock (the marker stays)."""
        self._lock.release()

    def __enter__(self) -> "OutputFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _write_marker(self, state: str) -> None:
        created = self.previous.created if self.previous and self.previous.fingerprint == self.fingerprint and self.previous.created else time.strftime("%Y-%m-%dT%H:%M:%S")
        marker = Marker(kind=self.kind, fingerprint=self.fingerprint, state=state, version=__version__, created=created)
        atomic_write_text(self.root / MARKER, json.dumps(marker.as_dict(), indent=1))

    def _remove_files(self, rels: Iterable[str]) -> None:
        """Remove files the previous job wrote (by relative path), then folders left empty."""
        dirs = set()
        for rel in rels:
            path = self.path_for(rel, create=False)
            if path.is_file() or path.is_symlink():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)  # a folder the job made whole (its journal)
            dirs.update(p for p in path.parents if p != self.root and self.root in p.parents)
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except OSError:
                pass  # not empty: something else lives there

    # --- writing -------------------------------------------------------------------------

    def path_for(self, rel: str, *, create: bool = True) -> Path:
        """The absolute path of ``rel`` (POSIX, relative to the folder), checked.

        Refuses an absolute path, ``..``, and any existing component that is a symbolic
        link (so nothing is written through a link that leaves the folder); with
        ``create`` the parent folders are made.
        """
        p = PurePosixPath(str(rel))
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise OutputFolderError(f"refusing to write {rel!r}: outputs are relative paths inside {self.root}")
        parent = self.root.joinpath(*p.parts[:-1])
        key = str(parent)
        if key not in self._checked_dirs:
            cur = self.root
            for part in p.parts[:-1]:
                cur = cur / part
                if cur.is_symlink():
                    raise OutputFolderError(f"refusing to write {rel!r}: {cur} is a symbolic link (mfrkit never writes through links out of {self.root})")
                if cur.exists() and not cur.is_dir():
                    raise OutputFolderError(f"refusing to write {rel!r}: {cur} is a file")
            if create:
                parent.mkdir(parents=True, exist_ok=True)
                self._checked_dirs.add(key)
        target = parent / p.name
        if target.is_symlink():
            raise OutputFolderError(f"refusing to write {rel!r}: {target} is a symbolic link")
        return target

    def write_bytes(self, rel: str, data: bytes) -> Path:
        """Write ``data`` to ``rel`` atomically (see :meth:`path_for`)."""
        path = self.path_for(rel)
        atomic_write_bytes(path, data)
        return path

    def __getstate__(self) -> dict:
        # Workers get the folder to write into, never the lock (held by the main process).
        state = dict(self.__dict__)
        state["_lock"] = None
        state["_checked_dirs"] = set()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = FolderLock(self.root / LOCK, what=f"output folder {self.root}", purpose=self.kind)
