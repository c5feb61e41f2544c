"""One image of a dataset as the stages hand it on: its id, where it is, its hash and
its manifest status (no pixels, no landmarks).

Pure Python (no pandas or pyarrow), so worker processes that only read images can
import it cheaply; :data:`STATUS_OK` lives here for the same reason and
:mod:`mfrkit.data.manifest` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The manifest status of a usable image (anything else is the reason it is not).
STATUS_OK = "ok"


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One image of a manifest.

    Attributes
    ----------
    image_id : str
    path : str
        Absolute (may be ``""`` for an image that is not opened: status not ``ok``).
    sha256 : str or None
        Hex digest of the file's bytes, as the manifest records it (None: not recorded).
    status : str
        The manifest's status: :data:`STATUS_OK` or the reason the image is unusable.
    """

    image_id: str
    path: str
    sha256: str | None = None
    status: str = STATUS_OK
