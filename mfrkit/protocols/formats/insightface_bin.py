"""insightface verification ``.bin`` files (``lfw.bin``, ``cfp_fp.bin``, ...).

A ``.bin`` is ``pickle.dump((bins, issame_list))``: ``bins`` is a list of encoded
images, two consecutive entries per pair, and ``issame_list`` one bool per pair.
Pickle can run arbitrary code on load, so :func:`read_bin` first checks that the file
is a binary pickle at all (a text file is named as one), then walks the opcode stream
without executing it and refuses any opcode that can import or call something
(``GLOBAL``, ``STACK_GLOBAL``, ``REDUCE``, ``BUILD``, ``INST``, ``OBJ``, ``NEWOBJ``,
extension and persistent-id opcodes); only then does it unpickle, with an unpickler
whose ``find_class`` and ``persistent_load`` refuse everything, and it checks that the
result is exactly a tuple of (list of bytes, list of bools) whose images add up to no
more than twice the file plus 1 MB (:data:`MAX_EXPANSION`: the memo can repeat one image
any number of times at two bytes a copy). insightface evaluates
a ``.bin`` in 10 contiguous folds (scikit-learn ``KFold`` without shuffling); so does
mfrkit on reading.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path

import pandas as pd

from ...data.imageio import read_image_bytes
from ...errors import ImageError
from ..errors import PairFormatError, UnsafePickleError
from .base import PairFormat, check_contiguous, register

#: Opcodes that import, call or otherwise reach code. A (list of bytes, list of bools)
#: tuple never needs any of them.
FORBIDDEN_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX",
                               "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"})


class _DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler that cannot reach any class or function."""

    def find_class(self, module: str, name: str):  # noqa: D401
        raise UnsafePickleError(f"refused: the pickle asks for {module}.{name}")

    def persistent_load(self, pid):
        raise UnsafePickleError("refused: the pickle uses persistent ids")


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


def read_bin(data: bytes, *, source: str = "file.bin") -> tuple[list[bytes], list[bool]]:
    """Safely read an insightface ``.bin``: (list of encoded images, list of is-same bools).

    Raises
    ------
    UnsafePickleError
        The pickle holds anything that could run code, or anything but the expected
        tuple; nothing from it is executed.
    PairFormatError
        Not a binary pickle (insightface writes protocol 2 or later, which starts with
        byte 0x80: a text file is named as such, not as an unsafe pickle), the lists do
        not match (two images per pair), or the images add up to more than
        :data:`MAX_EXPANSION` times the file (one image repeated through the memo).
    """
    if not data.startswith(b"\x80") or len(data) < 2 or not 2 <= data[1] <= pickle.HIGHEST_PROTOCOL:
        raise PairFormatError(f"{source} is not an insightface .bin: those are binary pickles (protocol 2 or later, "
                              f"starting with byte 0x80); this is {_what_it_is(data)}. Nothing in it was loaded.")
    try:
        for opcode, _, pos in pickletools.genops(data):
            if opcode.name in FORBIDDEN_OPCODES:
                raise UnsafePickleError(
                    f"{source}: refused without loading it: the pickle uses opcode {opcode.name} at byte {pos}, which "
                    "can import or call code; an insightface .bin holds only a tuple of (list of bytes, list of bools)")
    except UnsafePickleError:
        raise
    except Exception as exc:  # pickletools raises ValueError and others on garbage
        raise PairFormatError(f"{source} is not a pickle file: {exc}") from None
    try:
        obj = _DataOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{source}: {exc}") from None
    except Exception as exc:
        raise PairFormatError(f"{source} cannot be unpickled: {exc}") from None
    if not (isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], list) and isinstance(obj[1], list)):
        raise UnsafePickleError(f"{source}: refused: expected a tuple (list of bytes, list of bools), got "
                                f"{type(obj).__name__}")
    bins, issame = obj
    if not all(type(b) is bytes for b in bins):
        raise UnsafePickleError(f"{source}: refused: the first list must hold only bytes")
    if not all(type(s) is bool for s in issame):
        raise UnsafePickleError(f"{source}: refused: the second list must hold only bools")
    if len(bins) != 2 * len(issame):
        raise PairFormatError(f"{source}: {len(bins)} images for {len(issame)} pairs; a .bin holds two images per pair")
    if not issame:
        raise PairFormatError(f"{source} holds no pairs")
    total = sum(len(b) for b in bins)
    if total > MAX_EXPANSION * len(data) + EXPANSION_SLACK:
        distinct = len({id(b) for b in bins})
        raise PairFormatError(
            f"{source}: refused: its {len(bins)} images add up to {total / 1e6:.1f} MB from a {len(data) / 1e3:.1f} KB "
            f"file ({distinct} distinct object(s), repeated through the pickle's memo); a real .bin stores each image "
            f"once, so its images add up to less than the file (limit: {MAX_EXPANSION:g}x the file size + 1 MB)")
    return bins, issame


def write_bin(pairs: pd.DataFrame, *, root: str | Path) -> bytes:
    """A ``.bin`` of the protocol's images (read from ``root`` / path) in pair order.

    Folds must be contiguous equal blocks (the only folds a ``.bin`` reader sees).
    """
    check_contiguous(pairs, "insightface-bin")
    root = Path(root)
    bins: list[bytes] = []
    for left, right in zip(pairs["left"], pairs["right"]):
        for ref in (left, right):
            try:
                bins.append(read_image_bytes(root / ref))
            except ImageError as exc:
                raise PairFormatError(f"cannot read image {root / ref} for the .bin: {exc}") from None
    issame = [bool(v) for v in pairs["label"]]
    return pickle.dumps((bins, issame), protocol=4)


register(PairFormat("insightface-bin", "insightface verification .bin (pickled images + is-same list; read safely)",
                    None, write_bin, write_options=("root",), embeds_images=True))
