"""Files a user hands mfrkit, read with bounds: regular files only, a size cap per kind.

Every file mfrkit reads from a path a user gave it (images, pair lists, label files,
protocol folders, YAML recipes and configs, ``.bin`` files, RecordIO files, ONNX models
and their sidecars, manifests, run folders) goes through this module. A path to a FIFO
would block forever, a link to ``/dev/zero`` would fill memory, a multi-gigabyte file
named ``pairs.txt`` would be read whole: so a file is opened without blocking, checked
with ``fstat`` before a byte is read, and refused with a one-line error naming the file
and the limit when it is not a regular file or is larger than its kind allows. The read
itself is capped too (a file can grow while it is read).

Each kind of file has its own cap (:data:`KINDS`), raised for a real file that is larger
with an environment variable, ``MFRKIT_MAX_<KIND>_BYTES`` (e.g.
``MFRKIT_MAX_BIN_BYTES=8e9``), named in the error message.

Readers that open a file by path themselves (pyarrow, onnxruntime, ``np.load`` with
``mmap_mode``, ``torch.load``) first call :func:`check_user_file`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import MfrkitError
from .registry import Registry

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


class UserFileError(MfrkitError):
    """A file a user gave cannot be read. ``problem`` says why, in one word:
    ``missing``, ``unreadable``, ``not_a_file``, ``too_large`` or ``malformed``."""

    problem = "unreadable"


class MissingUserFileError(UserFileError, FileNotFoundError):
    """No such file (also a ``FileNotFoundError``, so ``except OSError`` callers keep working)."""

    problem = "missing"

    def __str__(self) -> str:  # OSError would format (errno, strerror)
        return str(self.args[0]) if self.args else ""


class NotARegularFileError(UserFileError):
    problem = "not_a_file"


class FileTooLargeError(UserFileError):
    problem = "too_large"


class MalformedInputError(UserFileError):
    """The bytes were read but are not what the kind of file holds (not UTF-8, bad JSON or
    YAML); also a YAML value given on the command line (``--option width=[``)."""

    problem = "malformed"


@dataclass(frozen=True)
class FileKind:
    """A kind of user file and its size cap.

    Attributes
    ----------
    name : str
        Registry key; the environment variable is ``MFRKIT_MAX_<NAME>_BYTES``
        (upper case, ``-`` as ``_``).
    what : str
        The file in words, for messages ("pair list").
    max_bytes : int or None
        Default cap in bytes; None for files that are never read whole (a RecordIO
        ``.rec`` is read record by record), which are only checked to be regular files.
    """

    name: str
    what: str
    max_bytes: int | None

    @property
    def env(self) -> str:
        return f"MFRKIT_MAX_{self.name.upper().replace('-', '_')}_BYTES"

    def limit(self) -> int | None:
        """The cap in force: the environment variable's value, else :attr:`max_bytes`."""
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.max_bytes
        try:
            value = int(float(raw))
        except ValueError:
            value = -1
        if value <= 0:
            raise MfrkitError(f"{self.env}={raw!r} is not a positive number of bytes")
        return value


KINDS: Registry[FileKind] = Registry("user file kind")


def _kind(name: str, what: str, max_bytes: int | None) -> FileKind:
    return KINDS.add(name, FileKind(name, what, max_bytes))


# Caps sit well above the largest real file of each kind (LFW's pairs.txt is 150 KB,
# CASIA's labels a few MB, lfw.bin 65 MB, MS1M's train.idx ~100 MB) and below what would
# exhaust a workstation's memory once parsed.
_kind("image", "image file", 512 * MiB)  # above an uncompressed 100-megapixel image
_kind("pairs", "pair list", 512 * MiB)
_kind("labels", "label file", 512 * MiB)
_kind("landmarks", "landmark file", 1 * GiB)
_kind("protocol-table", "protocol table", 4 * GiB)
_kind("json", "JSON file", 64 * MiB)
_kind("yaml", "YAML file", 1 * MiB)
_kind("bin", "insightface .bin file", 2 * GiB)  # read whole and unpickled (LFW's ~60 MB)
_kind("recordio", "RecordIO file", None)  # read by offset, never whole
_kind("recordio-index", "RecordIO index", 4 * GiB)  # WebFace42M's ~1 GB
_kind("recordio-property", "RecordIO property file", 4 * KiB)  # one line "num_classes,height,width"
_kind("onnx", "ONNX model", 4 * GiB)  # protobuf's own limit is 2 GiB without external data
_kind("sidecar", "model sidecar", 1 * MiB)
_kind("manifest", "manifest", 16 * GiB)
_kind("results-table", "results table", 8 * GiB)
_kind("embeddings", "embeddings file", None)  # read by row group / memory-mapped
_kind("array", "array file", None)  # memory-mapped .npy parts
_kind("checkpoint", "training checkpoint", 16 * GiB)
_kind("dlib-model", "dlib model file", 512 * MiB)
_kind("text", "text file", 64 * MiB)
_kind("log", "log file", 4 * GiB)  # a training run's losses.jsonl, a line per step


def _kind_of(kind: str | FileKind) -> FileKind:
    return kind if isinstance(kind, FileKind) else KINDS.get(kind)


def _size_text(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _file_type(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check_stat(path: str, st: os.stat_result, kind: FileKind, max_bytes: int | None) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFileError(f"{kind.what} {path} is {_file_type(st.st_mode)}, not a regular file "
                                   "(mfrkit reads only regular files)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise FileTooLargeError(_too_large(path, kind, max_bytes, f"is {_size_text(st.st_size)}"))


def _too_large(path: str, kind: FileKind, max_bytes: int, how: str) -> str:
    return (f"{kind.what} {path} {how}, over the limit of {_size_text(max_bytes)} "
            f"(for a real file that large, set {kind.env}=BYTES)")


def _os_error(path: str, kind: FileKind, exc: OSError) -> UserFileError:
    if isinstance(exc, FileNotFoundError):
        return MissingUserFileError(f"no such {kind.what}: {path}")
    if isinstance(exc, PermissionError):
        return UserFileError(f"{kind.what} {path}: unreadable: permission denied")
    if isinstance(exc, IsADirectoryError):
        return NotARegularFileError(f"{kind.what} {path} is a folder, not a regular file")
    return UserFileError(f"{kind.what} {path}: unreadable: {exc.strerror or exc}")


def check_user_file(path: str | os.PathLike, kind: str | FileKind, *, max_bytes: int | None = None) -> Path:
    """``path`` if it names a regular file (links followed) within the kind's size cap.

    For readers that open the file by path themselves; :func:`read_user_bytes` checks
    the open file instead (a FIFO cannot be swapped in between). Raises the
    :class:`UserFileError` subclasses of :func:`read_user_bytes`.
    """
    kind = _kind_of(kind)
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise _os_error(p, kind, exc) from None
    _check_stat(p, st, kind, max_bytes if max_bytes is not None else kind.limit())
    return Path(p)


def open_user_file(path: str | os.PathLike, kind: str | FileKind, *, max_bytes: int | None = None,
                   any_size: bool = False) -> tuple[int, os.stat_result]:
    """A read-only descriptor of a user's regular file within the kind's cap, and its
    stat, for readers that keep the file open (a RecordIO ``.rec`` read by offset).

    The file is opened without blocking (a FIFO is refused, never waited on) and checked
    with ``fstat``; the caller closes the descriptor. ``any_size``: no size cap (a file
    streamed through a hash). Raises as :func:`read_user_bytes`.
    """
    kind = _kind_of(kind)
    cap = None if any_size else max_bytes if max_bytes is not None else kind.limit()
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _os_error(p, kind, exc) from None
    try:
        st = os.fstat(fd)
        _check_stat(p, st, kind, cap)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def check_read_size(n: int, path: str | os.PathLike, kind: str | FileKind, *, max_bytes: int | None = None) -> None:
    """Refuse ``n`` bytes read for a user's item (a record of a ``.rec``, an image of a
    ``.bin``) over the kind's cap, with the message of an oversized file."""
    kind = _kind_of(kind)
    cap = max_bytes if max_bytes is not None else kind.limit()
    if cap is not None and n > cap:
        raise FileTooLargeError(_too_large(os.fspath(path), kind, cap, f"is {_size_text(n)}"))


def read_user_bytes(path: str | os.PathLike, kind: str | FileKind, *, max_bytes: int | None = None) -> bytes:
    """The bytes of a user's file: a regular file of at most the kind's cap.

    Parameters
    ----------
    path : path-like
    kind : str or FileKind
        A name in :data:`KINDS` (``pairs``, ``labels``, ``yaml``, ``bin``, ...).
    max_bytes : int, optional
        A cap for this call instead of the kind's.

    Raises
    ------
    MissingUserFileError
        No such file.
    NotARegularFileError
        A FIFO, device, socket or folder (opened without blocking: a FIFO never hangs).
    FileTooLargeError
        Over the cap, before reading or while reading (a growing file).
    UserFileError
        Permission denied or an I/O error.
    """
    kind = _kind_of(kind)
    cap = max_bytes if max_bytes is not None else kind.limit()
    p = os.fspath(path)
    fd, _ = open_user_file(p, kind, max_bytes=cap)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read() if cap is None else f.read(cap + 1)  # the size may change while reading
    except OSError as exc:
        raise _os_error(p, kind, exc) from None
    finally:
        os.close(fd)
    if cap is not None and len(data) > cap:
        raise FileTooLargeError(_too_large(p, kind, cap, "grew while being read"))
    return data


def user_file_sha256(path: str | os.PathLike, kind: str | FileKind = "text", *, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a user's file, streamed: a regular file only (opened without
    blocking), any size (memory stays at ``chunk`` bytes)."""
    kind = _kind_of(kind)
    p = os.fspath(path)
    h = hashlib.sha256()
    fd, _ = open_user_file(p, kind, any_size=True)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            while block := f.read(chunk):
                h.update(block)
    except OSError as exc:
        raise _os_error(p, kind, exc) from None
    finally:
        os.close(fd)
    return h.hexdigest()


def read_user_text(path: str | os.PathLike, kind: str | FileKind, *, encoding: str = "utf-8-sig") -> str:
    """:func:`read_user_bytes` decoded (a BOM dropped by default); NUL bytes or bytes that
    are not ``encoding`` raise :class:`MalformedInputError` naming the file."""
    kind = _kind_of(kind)
    data = read_user_bytes(path, kind)
    if b"\x00" in data and not encoding.lower().startswith("utf-16"):
        raise MalformedInputError(f"{kind.what} {os.fspath(path)} is not a text file (it contains NUL bytes)")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise MalformedInputError(f"{kind.what} {os.fspath(path)} is not {encoding.removesuffix('-sig').upper()} "
                                     f"text (byte {exc.start}: {exc.reason})") from None


def read_user_json(path: str | os.PathLike, kind: str | FileKind = "json") -> Any:
    """A JSON file parsed; malformed JSON is a one-line :class:`MalformedInputError`."""
    kind = _kind_of(kind)
    text = read_user_text(path, kind, encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MalformedInputError(f"{kind.what} {os.fspath(path)} is not valid JSON: {exc}") from None


def read_user_yaml(path: str | os.PathLike, kind: str | FileKind = "yaml") -> Any:
    """A YAML file parsed with ``yaml.safe_load`` (no object is ever constructed);
    a syntax error or an unsafe tag is a one-line :class:`MalformedInputError`."""
    kind = _kind_of(kind)
    return parse_yaml(read_user_text(path, kind), source=f"{kind.what} {os.fspath(path)}")


@contextlib.contextmanager
def user_file_errors_as(error: type[MfrkitError]) -> Iterator[None]:
    """Re-raise a :class:`UserFileError` inside the block as ``error`` (same message), for
    modules whose callers catch their own error class (``DatasetError``, ``LandmarkError``)."""
    try:
        yield
    except UserFileError as exc:
        raise error(str(exc)) from None


def parse_yaml(text: str, *, source: str) -> Any:
    """``yaml.safe_load(text)`` with its errors as one line naming ``source`` (a file, an
    ``--option`` value): where it failed and why, never a raw ParserError."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MalformedInputError(f"{source} is not valid YAML: {yaml_error_text(exc)}") from None


def yaml_error_text(exc: Exception) -> str:
    """A YAML error in one line: the problem and where (line, column)."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return " ".join(str(problem).split()) + where
