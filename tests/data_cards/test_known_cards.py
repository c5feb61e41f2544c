"""Built-in cards of the known public datasets."""

from __future__ import annotations

import re

import pytest
import yaml

from mfrkit.data_cards import (
    known_card,
    known_card_info,
    known_card_path,
    known_names,
    parse_front_matter,
    resolve_known_name,
)
from mfrkit.errors import MfrkitError, UnknownNameError

EXPECTED = ["calfw", "casia-webface", "cplfw", "lfw", "mfr2", "mlfw", "partiallfw", "rmfd"]
LAYOUTS = {"imagefolder", "lfw", "mfr2", "rmfd", "flat"}
SECTIONS = [
    "## What it is",
    "## How to obtain it",
    "## Layout on disk",
    "## Register it with mfrkit",
    "## Counts reported by the authors",
    "## Licence and terms",
    "## Citation",
    "## Not verified",
    "## Sources",
]
BIBTEX_ENTRY = re.compile(r"@(\w+)\s*\{\s*([^,\s]+)\s*,(.*?)\n\}", re.S)


def test_known_names():
    assert known_names() == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_card_has_header_sections_and_bibtex(name):
    path = known_card_path(name)
    assert path.is_file() and path.name == f"{name}.md"
    text = known_card(name)
    front = text[4 : text.index("\n---\n", 3) + 1]
    header = yaml.safe_load(front)
    assert header == parse_front_matter(text)[0] == known_card_info(name)
    assert header["name"] == name and header["title"]
    assert header["layout"] in LAYOUTS
    assert all(isinstance(v, int) and v > 0 for v in (header.get("reported") or {}).values())
    assert header["sources"]

    body = text.split("\n---\n", 1)[1]
    positions = [body.find(s + "\n") for s in SECTIONS]
    assert all(p >= 0 for p in positions), [s for s, p in zip(SECTIONS, positions) if p < 0]
    assert positions == sorted(positions)

    assert "mfrkit datasets add " in body and f"--layout {header['layout']}" in body

    blocks = re.findall(r"```bibtex\n(.*?)```", body, re.S)
    assert blocks, "no ```bibtex block"
    entries = BIBTEX_ENTRY.findall(blocks[0])
    assert entries
    for kind, key, fields in entries:
        assert kind.lower() in {"article", "inproceedings", "techreport", "misc"}
        assert re.search(r"\btitle\s*=", fields) and re.search(r"\byear\s*=", fields) and re.search(r"\bauthor\s*=", fields)
    assert blocks[0].count("{") == blocks[0].count("}")


@pytest.mark.parametrize(
    "alias, name",
    [
        ("casia", "casia-webface"),
        ("CASIA-WebFace", "casia-webface"),
        ("webface", "casia-webface"),
        ("partial-lfw", "partiallfw"),
        ("PartialLFW", "partiallfw"),
        ("partial_lfw", "partiallfw"),
        ("plfw", "partiallfw"),
        ("LFW", "lfw"),
        ("Labeled Faces in the Wild", "lfw"),
        ("MFR2", "mfr2"),
        ("rmfrd", "rmfd"),
        ("masked-lfw", "mlfw"),
        ("cross-age-lfw", "calfw"),
        ("cross pose lfw", "cplfw"),
    ],
)
def test_aliases(alias, name):
    assert resolve_known_name(alias) == name
    assert known_card_path(alias) == known_card_path(name)
    assert known_card(alias) == known_card(name)


def test_unknown_name_lists_the_known_ones():
    assert resolve_known_name("vggface2") is None
    with pytest.raises(UnknownNameError) as info:
        known_card("vggface2")
    message = str(info.value)
    assert "vggface2" in message and all(n in message for n in EXPECTED)
    assert isinstance(info.value, MfrkitError) and isinstance(info.value, KeyError)
    with pytest.raises(UnknownNameError):
        known_card_path("")


def _card_commands():
    """Every ``mfrkit ...`` line inside a code block of a shipped data card."""
    import re
    from mfrkit.data.known_datasets import KNOWN_DIR

    for card in sorted(KNOWN_DIR.glob("*.md")):
        for block in re.findall(r"```[a-z]*\n(.*?)```", card.read_text(encoding="utf-8"), flags=re.S):
            for line in block.splitlines():
                if line.startswith("mfrkit "):
                    yield card.name, line


def test_every_command_a_card_shows_parses():
    """The cards' commands as printed: an option a command does not take (``-o labels=``
    on ``datasets add``) fails here, not in a user's terminal."""
    import shlex

    import typer

    from mfrkit.cli import app

    root = typer.main.get_command(app)
    lines = list(_card_commands())
    assert len(lines) > 10
    for card, line in lines:
        args = shlex.split(line)[1:]
        ctx = root.make_context("mfrkit", list(args))
        cmd, sub = root, list(args)
        try:
            while hasattr(cmd, "resolve_command"):  # a group: down to the command
                name, cmd, sub = cmd.resolve_command(ctx, sub)
                ctx = cmd.make_context(name, sub, parent=ctx)
        except Exception as exc:  # click's usage errors (typer vendors click: no `import click`)
            raise AssertionError(f"{card}: `{line}` does not parse: {exc}") from None
