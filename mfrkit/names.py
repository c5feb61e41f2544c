"""User-given names (model files, protocols, datasets, identities) made safe for where
they end up: a path component, a Markdown or LaTeX table cell, a CSV cell, HTML, a
terminal line.

A name comes from a user (a file named ``a|b\\input{x}<img src=x onerror=alert(1)>.onnx``
is a legal file name) and must reach every output as the same visible text, never as
markup, a formula, a control sequence or a path that escapes or collides. Each function
here is pure and takes the name as given; the callers never escape by hand.

- :func:`path_component`: a file-system-safe name (ASCII letters, digits, ``._+-``);
  :func:`unique_components`: one per name, distinct even when two names sanitise alike
  or differ only in case (a short hash of the raw name is appended).
- :func:`markdown_cell`, :func:`latex_text`, :func:`csv_cell`, :func:`terminal_text`,
  :func:`html_text`: the output formats.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from typing import Hashable, Iterable, Mapping

__all__ = [
    "csv_cell",
    "html_text",
    "latex_text",
    "markdown_cell",
    "path_component",
    "short_hash",
    "terminal_text",
    "unique_components",
]

_UNSAFE_PATH = re.compile(r"[^A-Za-z0-9._+-]+")
#: Names Windows reserves whatever the extension (a results folder must copy anywhere).
_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))})
#: Longest component: well below the 255 bytes of common file systems, room for a hash.
MAX_COMPONENT = 96


def short_hash(text: str, n: int = 8) -> str:
    """The first ``n`` hex digits of the SHA-256 of ``text`` (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def path_component(name: str) -> str:
    """``name`` as one safe path component: runs of anything but ASCII letters, digits
    and ``._+-`` become ``_``; leading/trailing dots and underscores are dropped (no
    hidden file, no ``..``); never empty (``unnamed``), never a reserved device name,
    at most :data:`MAX_COMPONENT` characters.

    Not one-to-one (``model v1`` and ``model_v1`` both give ``model_v1``): where names
    must stay apart, use :func:`unique_components`.
    """
    text = unicodedata.normalize("NFKC", str(name))
    safe = _UNSAFE_PATH.sub("_", text).strip("._") or "unnamed"
    if safe.split(".")[0].lower() in _RESERVED:
        safe = "_" + safe
    return safe[:MAX_COMPONENT]


def unique_components(names: Mapping[Hashable, str], *, identities: Mapping[Hashable, str] | None = None,
                      reserved: Iterable[str] = ()) -> dict[Hashable, str]:
    """A distinct path component for each entry of ``names`` (key -> raw name).

    A name that sanitises to itself and to no other entry's component (compared without
    case: macOS and Windows fold it) keeps it; every other gets ``-<8 hex>``, a hash of
    its raw name and its identity, appended (``model v1`` -> ``model_v1-3f2a9c1e``).

    Parameters
    ----------
    names : mapping
        key -> the name as the user gave it.
    identities : mapping, optional
        key -> what tells two entries of the same name apart (a model file's sha256);
        part of the hash.
    reserved : iterable of str
        Components already taken (file names beside the folders).

    Raises
    ------
    ValueError
        Two entries with the same name and identity (nothing can tell them apart), or
        two hashes that collide (refused rather than sharing a folder).
    """
    identities = identities or {}
    taken = {r.casefold() for r in reserved}
    base = {k: path_component(n) for k, n in names.items()}
    counts: dict[str, int] = {}
    for b in base.values():
        counts[b.casefold()] = counts.get(b.casefold(), 0) + 1
    out: dict[Hashable, str] = {}
    for k, raw in names.items():
        b = base[k]
        plain = b == raw and counts[b.casefold()] == 1 and b.casefold() not in taken
        out[k] = b if plain else f"{b[: MAX_COMPONENT - 9]}-{short_hash(raw + chr(0) + identities.get(k, ''))}"
    seen: dict[str, Hashable] = {}
    for k, c in out.items():
        if c.casefold() in seen or c.casefold() in taken:
            other = seen.get(c.casefold())
            raise ValueError(f"{names[k]!r} and {names.get(other, c)!r} would share the folder {c!r}")
        seen[c.casefold()] = k
    return out


# --- output formats ----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def terminal_text(text: str, *, newlines: bool = True) -> str:
    """``text`` with control characters shown as ``\\xNN`` / ``\\uNNNN`` escapes, so a
    name cannot move the cursor, clear the screen, retitle the window or reorder text
    (bidirectional overrides). Tabs and (with ``newlines``) line feeds are kept."""
    def show(m: re.Match) -> str:
        c = m.group()
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    out = _CONTROL.sub(show, str(text))
    return out if newlines else out.replace("\n", "\\n")


def html_text(text: str) -> str:
    """``text`` for HTML element content or a quoted attribute (``& < > " '`` escaped)."""
    return html.escape(terminal_text(str(text)), quote=True)


# What is markup inside a table cell: inline punctuation and the cell separator (a cell
# never starts a line, so block markers such as "#", "-" or "1." are plain text there).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~<>&])")


def markdown_cell(text: str) -> str:
    """``text`` as one GitHub Markdown table cell showing exactly ``text``: Markdown
    punctuation backslash-escaped (``|`` cannot split the cell, ``*`` cannot emphasise),
    ``<`` and ``&`` as entities (no HTML passes through to a renderer), line breaks as
    spaces."""
    one_line = " ".join(terminal_text(str(text), newlines=False).split())
    escaped = _MD_SPECIAL.sub(r"\\\1", one_line)
    return escaped.replace("\\<", "&lt;").replace("\\>", "&gt;").replace("\\&", "&amp;")


_LATEX = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "%": r"\%", "#": r"\#",
    "_": r"\_", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}",
    # not special, but the default OT1 font encoding prints them as other glyphs
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}  # fmt: skip
_LATEX_SPECIAL = re.compile(r"[\\{}$&%#_^~<>|]")


def latex_text(text: str) -> str:
    """``text`` for LaTeX text mode: the ten special characters (``\\ { } $ & % # _ ^ ~``)
    replaced in one pass (a backslash becomes ``\\textbackslash{}``, whose braces are not
    escaped again), ``< > |`` as their text commands (OT1 would print other glyphs);
    control characters shown as escapes, line breaks as spaces."""
    one_line = " ".join(terminal_text(str(text), newlines=False).split())
    return _LATEX_SPECIAL.sub(lambda m: _LATEX[m.group()], one_line)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value):
    """A CSV cell a spreadsheet shows as text: a string starting with ``= + - @`` (or a
    tab / line break, which some spreadsheets skip first) gets a leading ``'``, so it is
    never run as a formula (OWASP's CSV-injection rule). Numbers and other values are
    returned unchanged; quoting is the CSV writer's job (pandas/``csv`` quote cells with
    commas, quotes or line breaks)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
