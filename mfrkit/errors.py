"""Exception classes. The library raises these; only the CLI turns them into messages."""


class MfrkitError(Exception):
    """Base class of every error mfrkit raises on purpose. The message is for the user."""


class UnknownNameError(MfrkitError, KeyError):
    """A name looked up in a registry (backend, layout, mask style, ...) does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DatasetError(MfrkitError):
    """A dataset name or folder cannot be resolved, or its layout does not match."""


class RecordIOError(DatasetError):
    """A RecordIO dataset (``train.rec`` / ``train.idx`` / ``property``) cannot be read or
    written as a whole: a missing or malformed index or property file, a header record
    that contradicts the index. A single bad record is an :class:`BadRecordError`."""


class BinFileError(DatasetError):
    """An insightface verification ``.bin`` is malformed (not a binary pickle, lists that
    do not match)."""


class UnsafeBinError(BinFileError):
    """A ``.bin`` pickle holds something other than plain data: refused unread."""


class ManifestError(MfrkitError):
    """A manifest is missing, malformed or does not match what the caller expects."""


class ImageError(MfrkitError):
    """An image cannot be used. ``reason`` is the short status written to the manifest."""

    reason = "unreadable"


class MissingImageError(ImageError):
    reason = "missing"


class CorruptImageError(ImageError):
    reason = "corrupt"


class BadRecordError(CorruptImageError):
    """A record of a RecordIO file cannot be read: wrong magic number, truncated, not the
    start of a record, or a header that does not fit (``reason`` ``bad_record``)."""

    reason = "bad_record"


class ImageTooLargeError(ImageError):
    reason = "too_large"


class UnsupportedImageError(ImageError):
    reason = "unsupported"


class UnreadableImageError(ImageError):
    """The file exists but cannot be read (permission denied, I/O error)."""

    reason = "unreadable"


class NotAFileError(ImageError):
    """The path is a FIFO, device, socket or folder: only regular files are images."""

    reason = "not_a_file"


class CardError(MfrkitError):
    """A data card cannot be built, read or parsed (a manifest's card, or a built-in card
    of a known dataset)."""


class LandmarkError(MfrkitError):
    """A landmark backend cannot be loaded or used."""


class ModelError(MfrkitError):
    """A model file cannot be used: not ONNX, wrong shapes, missing preprocessing, bad output."""


class JobError(MfrkitError):
    """A job cannot start or produced nothing (bad options, an unusable output folder, ...)."""


class NothingMadeError(JobError):
    """A command finished without making anything usable: every input failed (a pack of
    corrupt images, a .bin whose images do not decode, a scan that found no readable
    image). What it could record (failures, statuses) is written first; the command
    exits 1 (docs/jobs.md: a job that makes nothing is an error)."""


def require_made(n_made: int, what: str, failures: dict | None = None, *, where: str = "") -> None:
    """The one "made nothing -> exit 1" rule: raise :class:`NothingMadeError` when
    ``n_made`` is 0, saying what was not made, why (``failures``: reason -> count) and
    where the details are (``where``)."""
    if n_made > 0:
        return
    reasons = ", ".join(f"{v} {k}" for k, v in sorted((failures or {}).items()) if v) or "no usable input"
    raise NothingMadeError(f"{what}: {reasons}" + (f"; {where}" if where else ""))


class ConfigFileError(MfrkitError):
    """A configuration file (``--config study.yaml``) cannot be read or holds a bad key or value."""
