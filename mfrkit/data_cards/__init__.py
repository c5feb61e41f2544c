"""Data cards: a card for any manifest, and built-in cards of the known public datasets."""

from .card import (
    CARD_NAME,
    CardError,
    parse_front_matter,
    read_card_header,
    render_card,
    summarize_manifest,
    write_card,
)
from ..data.known_datasets import (
    known_card,
    known_card_info,
    known_card_path,
    known_names,
    resolve_known_name,
)

__all__ = [
    "card_for_source",
    "CARD_NAME",
    "CardError",
    "known_card",
    "known_card_info",
    "known_card_path",
    "known_names",
    "parse_front_matter",
    "read_card_header",
    "render_card",
    "resolve_known_name",
    "summarize_manifest",
    "write_card",
    "write_card_for_source",
]



def card_for_source(src: str, *, known: bool = False) -> str:
    """The card for ``--src``-style input: a generated card for a registered name, manifest
    or dataset folder (with cached landmark counts); the built-in card for a known public
    dataset that is neither registered nor a path here, or always with ``known=True``
    (``mfrkit card --known lfw`` when a dataset is registered as ``lfw``)."""
    from pathlib import Path

    from ..data.registry import is_registered, resolve_source
    from ..landmarks.lookup import cached_counts

    if known or (resolve_known_name(src) and not is_registered(src) and not Path(src).exists()):
        return known_card(src)
    manifest = resolve_source(src)
    return render_card(manifest, landmark_summary=cached_counts(manifest) or None)


def write_card_for_source(src: str, out, *, known: bool = False, force: bool = False):
    """``mfrkit card SRC --out OUT``: :func:`card_for_source` written to ``out`` (a folder,
    existing or a new path without an extension, gets ``DATA_CARD.md``), atomically; an
    existing file is replaced only with ``force``. Returns the file written."""
    from pathlib import Path

    from ..atomic import atomic_write_text, check_new_file

    out = Path(out)
    path = out / CARD_NAME if out.is_dir() or not out.suffix else out
    check_new_file(path, force=force, what="card")  # before the manifest is read
    atomic_write_text(path, card_for_source(src, known=known), replace=force)
    return path
