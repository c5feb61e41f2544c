"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader (or a resumed run) therefore sees either the old file or the complete new
one, never a half-written file, even if the process is killed mid-write.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import MfrkitError


class OutputFileExistsError(MfrkitError):
    """An explicit output file (``report --out``, ``leaderboard --csv``, ``card --out``,
    ``datasets export``, ``models export``, ``protocol export``) exists and ``--force``
    was not given: mfrkit does not overwrite a file unasked."""


def check_new_file(path: str | os.PathLike, *, force: bool, what: str = "output file") -> Path:
    """``path`` if it can be written as a new file: refused (:class:`OutputFileExistsError`)
    when something is there (a file, a link, even a dangling one) unless ``force``; a
    folder is always refused. Checked before the work, so a refusal costs nothing;
    :func:`atomic_path` with ``replace=False`` checks again when the file lands."""
    path = Path(path)
    if path.is_dir():
        raise MfrkitError(f"cannot write {path}: it is a folder; give the file to write")
    if not force and (path.exists() or path.is_symlink()):
        raise OutputFileExistsError(f"{what} {path} exists; mfrkit does not overwrite it unless you pass --force")
    return path


def _place_new(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` only if ``path`` does not exist, atomically: a hard link
    cannot replace a file (another process's file made meanwhile stays)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputFileExistsError(f"output file {path} appeared while it was being written (another process?); "
                                    "it was left as it is; pass --force to replace it") from None
    except OSError:  # no hard links here (FAT, some network file systems): exclusive create, then replace
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            raise OutputFileExistsError(f"output file {path} appeared while it was being written; it was left as it is") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary name keeps the suffix of ``path`` so libraries that pick a format
    from the extension (Pillow, pyarrow, matplotlib) still do. On error the temporary
    file is removed and ``path`` is left untouched. ``replace=False``: an existing
    ``path`` is never replaced (:class:`OutputFileExistsError`, checked before and, with
    a hard link, atomically at the end).
    """
    path = Path(path)
    if not replace:
        check_new_file(path, force=False)
    if path.is_dir():
        raise MfrkitError(f"cannot write {path}: it is a folder; give the file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    # mkstemp creates the file 0600; give it the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if replace:
            os.replace(tmp_path, path)
        else:
            _place_new(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, replace: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (``replace=False``: never over an existing file)."""
    with atomic_path(path, replace=replace) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, replace: bool = True) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (``replace=False``: never over an existing file)."""
    atomic_write_bytes(path, text.encode("utf-8"), replace=replace)
