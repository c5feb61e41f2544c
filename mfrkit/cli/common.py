"""Options and printing helpers shared by several command modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rich.markup import escape

from .app import SafeConsole, console

Workers = Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes.")]
ManifestOpt = Annotated[Optional[Path], typer.Option("--manifest", "-m", help="Reference-side manifest: a manifest file, a dataset folder or a registered dataset name; also the probe side unless --probe-manifest is given.")]
ProbeOpt = Annotated[Optional[Path], typer.Option("--probe-manifest", "-p", help="Probe-side manifest (e.g. the masked synth output): file, folder or registered name.")]


def counts_text(counts: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing"



def key_values(items: Optional[list[str]]) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out



def print_table(title: str, df) -> None:
    import pandas as pd
    from rich.table import Table
    from rich.text import Text

    from ..names import terminal_text

    def text(v) -> Text:  # Text, not str: a cell holding "[/x]" is shown, never parsed as markup
        return Text("" if v is None or v is pd.NA or v != v else terminal_text(str(v), newlines=False))

    table = Table(title=text(title), title_justify="left")
    for col in df.columns:
        table.add_column(text(col), justify="right" if df[col].dtype.kind in "iuf" else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[text(v) for v in row])
    console.print(table)



def print_results(results, *, rules: str | None = None) -> None:
    """The results as rich tables (counts, intervals, flags) and the notes under them
    (:func:`mfrkit.bench.report.console.results_tables`). Cells are ``Text`` (never parsed
    as markup) with control characters shown, and fold rather than cut a number short on
    a narrow terminal."""
    from rich.table import Table
    from rich.text import Text

    from ..bench.report.console import results_tables
    from ..names import terminal_text

    def cell(text, style: str | None = None) -> Text:
        return Text(terminal_text(str(text), newlines=False), style=style or "")

    tables, notes = results_tables(results, rules=rules)
    # piped into a log or a file: tables at their own width (up to 200), not folded at 80
    out = console if console.is_terminal else SafeConsole(file=console.file, soft_wrap=True, width=200)
    styles = {"warn": "yellow", "bad": "bold red"}
    for t in tables:
        table = Table(title=cell(t.title), title_justify="left")
        for name, right in t.columns:
            table.add_column(cell(name), justify="right" if right else "left", overflow="fold")
        for row in t.rows:
            table.add_row(*[cell(text, styles.get(st)) for text, st in row])
        out.print(table)
    for note in notes:
        console.print(Text.assemble(("warning: ", "yellow"), terminal_text(str(note))), highlight=False)
