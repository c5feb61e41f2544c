"""insightface verification ``.bin`` files (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``):
read safely, written, and addressed image by image (``lfw.bin#7``) by the one image reader.

A ``.bin`` is ``pickle.dump((bins, issame_list))``: ``bins`` is a list of encoded
images, two consecutive entries per pair (``2k``: the pair's first, *reference* image;
``2k + 1``: its second, *probe* image), ``issame_list`` one bool per pair; insightface's
``load_bin`` reads it with ``pickle.load(f, encoding="bytes")`` and decodes each entry
with ``imdecode``. Pickle can run arbitrary code on load, so :func:`read_verification_bin`
first checks that the file is a binary pickle at all (a text file is named as one), then
walks the opcode stream without executing it and refuses any opcode that can import or
call something (``GLOBAL``, ``STACK_GLOBAL``, ``REDUCE``, ``BUILD``, ``INST``, ``OBJ``,
``NEWOBJ``, extension and persistent-id opcodes); only then does it unpickle, with an
unpickler whose ``find_class`` and ``persistent_load`` refuse everything, and it checks
that the result is exactly a tuple of (list of bytes, list of bools) whose images add up
to no more than twice the file plus 1 MB (:data:`MAX_EXPANSION`: the memo can repeat one
image any number of times at two bytes a copy). insightface evaluates a ``.bin`` in 10
contiguous folds (scikit-learn ``KFold`` without shuffling).

This module is the one parser of the format (the protocol importer and exporter in
:mod:`mfrkit.protocols.formats.insightface_bin` use it too).
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import re
import threading
from collections import OrderedDict
from pathlib import Path

from ..errors import BinFileError, ImageError, MissingImageError, UnsafeBinError
from ..userfiles import read_user_bytes, user_file_errors_as

#: A manifest path naming an image of a ``.bin``: ``<file>.bin#<index>`` (``lfw.bin#7``).
BIN_REF = re.compile(r"^(?P<file>.+\.bin)#(?P<index>\d+)$")
# A .bin is read whole: its cap is the userfiles kind "bin" (2 GiB, MFRKIT_MAX_BIN_BYTES;
# LFW's is ~60 MB).


#: Opcodes that import, call or otherwise reach code. A (list of bytes, list of bools)
#: tuple never needs any of them.
FORBIDDEN_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX",
                               "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"})


class _DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler that cannot reach any class or function."""

    def find_class(self, module: str, name: str):  # noqa: D401
        raise UnsafeBinError(f"refused: the pickle asks for {module}.{name}")

    def persistent_load(self, pid):
        raise UnsafeBinError("refused: the pickle uses persistent ids")


#: The images of a ``.bin`` may add up to at most ``MAX_EXPANSION`` times the file's size
#: plus ``EXPANSION_SLACK`` bytes. Each image is stored once in a real file, so they add
#: up to a little less than the file; a pickle that repeats one image through its memo
#: (a 25 KB file unpacking to 63 MB) is refused. The slack lets tiny test files repeat
#: an image a few times.
MAX_EXPANSION, EXPANSION_SLACK = 2.0, 1 << 20


def _what_it_is(data: bytes) -> str:
    """A few words on what a file that is not a binary pickle holds."""
    head = data[:200]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text):
        first = text.splitlines()[0][:60] if text.strip() else ""
        return f"a text file (it starts with {first!r}), perhaps a pair list (--format lfw, mlfw, pairs-label, csv)"
    for magic, kind in ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"PK\x03\x04", "a zip archive"),
                        (b"\x93NUMPY", "a NumPy .npy file"), (b"\x1f\x8b", "a gzip file")):
        if head.startswith(magic):
            return kind
    return f"binary data that is not a pickle (it starts with {head[:8]!r})"


def read_verification_bin(data: bytes, *, source: str = "file.bin") -> tuple[list[bytes], list[bool]]:
    """Safely read an insightface ``.bin``: (list of encoded images, list of is-same bools).

    Raises
    ------
    UnsafeBinError
        The pickle holds anything that could run code, or anything but the expected
        tuple; nothing from it is executed.
    BinFileError
        Not a binary pickle (insightface writes protocol 2 or later, which starts with
        byte 0x80: a text file is named as such, not as an unsafe pickle), the lists do
        not match (two images per pair), or the images add up to more than
        :data:`MAX_EXPANSION` times the file (one image repeated through the memo).
    """
    if not data.startswith(b"\x80") or len(data) < 2 or not 2 <= data[1] <= pickle.HIGHEST_PROTOCOL:
        raise BinFileError(f"{source} is not an insightface .bin: those are binary pickles (protocol 2 or later, "
                              f"starting with byte 0x80); this is {_what_it_is(data)}. Nothing in it was loaded.")
    try:
        for opcode, _, pos in pickletools.genops(data):
            if opcode.name in FORBIDDEN_OPCODES:
                raise UnsafeBinError(
                    f"{source}: refused without loading it: the pickle uses opcode {opcode.name} at byte {pos}, which "
                    "can import or call code; an insightface .bin holds only a tuple of (list of bytes, list of bools)")
    except UnsafeBinError:
        raise
    except Exception as exc:  # pickletools raises ValueError and others on garbage
        raise BinFileError(f"{source} is not a pickle file: {exc}") from None
    try:
        obj = _DataOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except UnsafeBinError as exc:
        raise UnsafeBinError(f"{source}: {exc}") from None
    except Exception as exc:
        raise BinFileError(f"{source} cannot be unpickled: {exc}") from None
    if not (isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], list) and isinstance(obj[1], list)):
        raise UnsafeBinError(f"{source}: refused: expected a tuple (list of bytes, list of bools), got "
                                f"{type(obj).__name__}")
    bins, issame = obj
    if not all(type(b) is bytes for b in bins):
        raise UnsafeBinError(f"{source}: refused: the first list must hold only bytes")
    if not all(type(s) is bool for s in issame):
        raise UnsafeBinError(f"{source}: refused: the second list must hold only bools")
    if len(bins) != 2 * len(issame):
        raise BinFileError(f"{source}: {len(bins)} images for {len(issame)} pairs; a .bin holds two images per pair")
    if not issame:
        raise BinFileError(f"{source} holds no pairs")
    total = sum(len(b) for b in bins)
    if total > MAX_EXPANSION * len(data) + EXPANSION_SLACK:
        distinct = len({id(b) for b in bins})
        raise BinFileError(
            f"{source}: refused: its {len(bins)} images add up to {total / 1e6:.1f} MB from a {len(data) / 1e3:.1f} KB "
            f"file ({distinct} distinct object(s), repeated through the pickle's memo); a real .bin stores each image "
            f"once, so its images add up to less than the file (limit: {MAX_EXPANSION:g}x the file size + 1 MB)")
    return bins, issame


def bin_bytes(bins: list[bytes], issame: list[bool]) -> bytes:
    """A ``.bin`` file's bytes, as insightface writes them (``pickle`` protocol 4)."""
    if len(bins) != 2 * len(issame):
        raise BinFileError(f"{len(bins)} images for {len(issame)} pairs; a .bin holds two images per pair")
    return pickle.dumps(([bytes(b) for b in bins], [bool(s) for s in issame]), protocol=4)


def parse_bin_ref(path: str | os.PathLike) -> tuple[str, int] | None:
    """``(bin file, index)`` of a ``lfw.bin#7`` path, or None."""
    m = BIN_REF.match(os.fspath(path))
    return (m.group("file"), int(m.group("index"))) if m else None


class _OpenBins:
    """The ``.bin`` files this process has read (a few, newest last), checked by stat."""

    def __init__(self, limit: int = 4) -> None:
        self.limit = limit
        self._files: OrderedDict[str, tuple[tuple, list[bytes], list[bool]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str | os.PathLike) -> tuple[list[bytes], list[bool]]:
        key = os.fspath(path)
        try:
            st = os.stat(key)
        except FileNotFoundError:
            raise MissingImageError(f"no such .bin file: {key}") from None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._files.get(key)
            if hit is not None and hit[0] == stamp:
                self._files.move_to_end(key)
                return hit[1], hit[2]
        with user_file_errors_as(BinFileError):
            data = read_user_bytes(key, "bin")
        bins, issame = read_verification_bin(data, source=key)
        with self._lock:
            self._files[key] = (stamp, bins, issame)
            while len(self._files) > self.limit:
                self._files.popitem(last=False)
        return bins, issame


_OPEN = _OpenBins()


def open_bin(path: str | os.PathLike) -> tuple[list[bytes], list[bool]]:
    """``(bins, issame)`` of a ``.bin`` file, read safely once per process (see the module docstring)."""
    return _OPEN.get(path)


def read_bin_image(path: str | os.PathLike, index: int) -> bytes:
    """The encoded image ``index`` of a ``.bin`` (through the per-process cache)."""
    try:
        bins, _ = open_bin(path)
    except BinFileError as exc:
        from ..errors import CorruptImageError

        raise CorruptImageError(str(exc)) from None
    if not 0 <= index < len(bins):
        raise MissingImageError(f"{Path(path).name} holds {len(bins)} images; there is no image {index}")
    return bins[index]


# --- a .bin as a dataset -------------------------------------------------------------------------------

#: The layout name of a manifest made from a ``.bin`` (its images stay in the file).
BIN_LAYOUT = "verification-bin"


def scan_bin(path: str | os.PathLike, name: str = ""):
    """A manifest of the images of a ``.bin`` (nothing extracted): one row per image,
    ``image_id`` = ``path`` = ``<file>#<index>``, ``pair`` (index // 2) and ``side``
    (``reference`` for the pair's first image, ``probe`` for its second); no identities
    (a ``.bin`` carries none). ``meta["verification_bin"]`` holds the pair count and the
    file's stamp.

    Returns
    -------
    Manifest (not written).
    """
    import hashlib

    from .imageio import image_size
    from .manifest import Manifest, make_table
    from .scan import file_stamp

    path = Path(path).expanduser().resolve()
    bins, issame = open_bin(path)
    rows = []
    for i, blob in enumerate(bins):
        ref = f"{path.name}#{i}"
        row = {"image_id": ref, "path": ref, "identity": None, "variant": "unmasked", "status": "ok", "sha256": hashlib.sha256(blob).hexdigest(),
               "bytes": len(blob), "pair": i // 2, "side": "reference" if i % 2 == 0 else "probe"}
        try:
            row["width"], row["height"] = image_size(blob)
        except ImageError as exc:
            row["status"] = exc.reason
        rows.append(row)
    meta = {"name": name or path.stem, "root": str(path.parent), "layout": BIN_LAYOUT, "kind": "scanned-bin",
            "verification_bin": {"file": path.name, "pairs": len(issame), "genuine": int(sum(issame)), "stamp": list(file_stamp(path) or ())}}
    return Manifest(table=make_table(rows), meta=meta)
