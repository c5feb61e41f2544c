"""Built-in cards of the public face datasets mfrkit knows how to read.

Each card is a Markdown file ``known/<name>.md`` with a YAML header: ``name``, ``title``,
``aliases``, ``layout`` (the mfrkit layout that reads it), ``homepage``, ``reported``
(counts the authors give; only the ones we could check), and ``sources`` (where each fact
was checked). Names are matched loosely: case, spaces, ``-`` and ``_`` do not matter,
so ``PartialLFW``, ``partial-lfw`` and ``partial_lfw`` are the same card.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

from ..errors import CardError, UnknownNameError
from ..userfiles import yaml_error_text

KNOWN_DIR = Path(__file__).resolve().parent / "known"


def parse_front_matter(text: str) -> tuple[dict, str]:
    """Split a card into its YAML header (parsed with ``yaml.safe_load``) and Markdown body."""
    if not text.startswith("---\n"):
        raise CardError("card has no YAML front matter (it must start with a '---' line)")
    end = text.find("\n---\n", 3)
    if end < 0:
        raise CardError("card front matter is not closed by a '---' line")
    try:
        header = yaml.safe_load(text[4 : end + 1]) or {}
    except yaml.YAMLError as exc:
        raise CardError(f"card front matter is not valid YAML: {yaml_error_text(exc)}") from None
    if not isinstance(header, dict):
        raise CardError("card front matter must be a YAML mapping")
    return header, text[end + 5 :]


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


@functools.lru_cache(maxsize=1)
def _index() -> tuple[dict[str, dict], dict[str, str]]:
    """(name -> header, lookup key -> name), built once from the card files."""
    headers: dict[str, dict] = {}
    lookup: dict[str, str] = {}
    for path in sorted(KNOWN_DIR.glob("*.md")):
        header, _ = parse_front_matter(path.read_text(encoding="utf-8"))
        name = header.get("name")
        if name != path.stem:
            raise CardError(f"built-in card {path.name} declares name {name!r}; it must match the file name")
        headers[name] = header
        for alias in [name, *header.get("aliases", [])]:
            key = _key(alias)
            if lookup.get(key, name) != name:
                raise CardError(f"alias {alias!r} of card {name!r} is already used by card {lookup[key]!r}")
            lookup[key] = name
    return headers, lookup


def known_names() -> list[str]:
    """Names of the datasets that have a built-in card, sorted."""
    return sorted(_index()[0])


def resolve_known_name(name: str) -> str | None:
    """The card name that ``name`` (a name or an alias, loosely spelled) refers to, or None."""
    if not isinstance(name, str):
        return None
    return _index()[1].get(_key(name))


def _resolve(name: str) -> str:
    found = resolve_known_name(name)
    if found is None:
        headers = _index()[0]
        aliases = sorted(a for h in headers.values() for a in h.get("aliases", []))
        raise UnknownNameError(
            f"no built-in data card for {name!r}; known datasets: {', '.join(sorted(headers))}"
            f" (also accepted: {', '.join(aliases)})"
        )
    return found


def known_card_path(name: str) -> Path:
    """Path of the built-in card of ``name``; raises :class:`UnknownNameError` listing the names."""
    return KNOWN_DIR / f"{_resolve(name)}.md"


def known_card(name: str) -> str:
    """Text (YAML header and Markdown) of the built-in card of ``name``."""
    return known_card_path(name).read_text(encoding="utf-8")


def known_card_info(name: str) -> dict:
    """The parsed YAML header of the built-in card of ``name`` (a copy)."""
    return dict(_index()[0][_resolve(name)])
