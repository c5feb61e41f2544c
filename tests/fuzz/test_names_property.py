"""Property-based cases for the sanitisers of user-given names (mfrkit/names.py):
whatever a model, protocol or dataset is called, it becomes one safe path component,
names never share a folder, and every output format shows the name as text. Bounded:
few examples, a deadline per example, derandomised."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfrkit.names import (
    MAX_COMPONENT,
    csv_cell,
    latex_text,
    markdown_cell,
    path_component,
    terminal_text,
    unique_components,
)

BOUNDED = settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
# Names as hostile users write them: table, markup and path specials, control characters,
# bidirectional overrides, any Unicode.
SPECIALS = "|\\{}$&%#_^~<>`*[]/.:\"' \t\n\r\x00\x1b\x7f\u202e\u2066=+-@"
names = st.text(alphabet=st.one_of(st.sampled_from(list(SPECIALS)), st.characters()), max_size=40)


@BOUNDED
@given(name=names)
def test_a_path_component_is_one_safe_name(name):
    c = path_component(name)
    assert c and len(c) <= MAX_COMPONENT and re.fullmatch(r"[A-Za-z0-9._+-]+", c)
    assert c not in (".", "..") and not c.startswith(".")


@BOUNDED
@given(raw=st.lists(names, min_size=1, max_size=8), reserved=st.lists(st.sampled_from(["run.json", "leaderboard.csv"])))
def test_unique_components_never_share_a_folder(raw, reserved):
    entries = dict(enumerate(raw))
    identities = {k: f"sha{k}" for k in entries}  # every entry a different file
    try:
        out = unique_components(entries, identities=identities, reserved=reserved)
    except ValueError:
        return  # refused before anything is written: allowed, sharing is not
    folded = [c.casefold() for c in out.values()]
    assert len(set(folded)) == len(folded) and not set(folded) & {r.casefold() for r in reserved}
    assert all(re.fullmatch(r"[A-Za-z0-9._+-]+", c) for c in out.values())


@BOUNDED
@given(name=names)
def test_a_markdown_cell_cannot_split_a_row_or_carry_html(name):
    cell = markdown_cell(name)
    assert "\n" not in cell and "<" not in cell and ">" not in cell
    assert re.search(r"(?<!\\)\|", cell.replace("\\\\", "")) is None  # every pipe escaped


@BOUNDED
@given(name=names)
def test_latex_text_leaves_no_special_unescaped(name):
    tex = latex_text(name)
    bare = re.sub(r"\\(textbackslash|textasciicircum|textasciitilde|textless|textgreater|textbar)\{\}", "", tex)
    bare = re.sub(r"\\[{}$&%#_]", "", bare)
    assert not set(bare) & set("\\{}$&%#_^~") and "\n" not in tex


@BOUNDED
@given(name=names)
def test_terminal_text_shows_no_control_character(name):
    shown = terminal_text(name, newlines=False)
    assert not re.search(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", shown)


@BOUNDED
@given(name=names)
def test_a_csv_cell_never_starts_a_formula(name):
    assert not str(csv_cell(name)).startswith(("=", "+", "-", "@", "\t", "\r", "\n"))
