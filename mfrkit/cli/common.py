"""Options and printing helpers shared by several command modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import console

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



#: Metrics the console shows; the CSV and Markdown files hold every one.
_BOARD_METRICS = (
    "images_per_second", "fta_images", "auc", "eer", "acc_mean", "acc_std", "acc_sem", "tar@far=1e-03", "tar@far=1e-04",
    "rank1", "rank5", "tpir@fpir=1e-02", "transfer_fnmr", "transfer_fmr",
)  # fmt: skip


def print_board(board) -> None:
    """One line per (model, protocol): readable in a terminal and in a log file alike."""
    from ..bench.report.table import INSIGHTFACE_ZERO_NOTE

    zero_by_insightface = False
    for _, row in board.iterrows():
        parts = []
        for c in _BOARD_METRICS:
            v = row.get(c)
            if v is None or (isinstance(v, float) and v != v):
                continue
            parts.append(f"{c}={v:.4g}" if isinstance(v, float) else f"{c}={v}")
        rules = row.get("rules")
        by = f", {rules} rules" if isinstance(rules, str) and rules != "mfrkit" else ""
        zero_by_insightface |= rules == "insightface" and any(
            c.startswith("tar@far=") and row.get(c) == 0 for c in board.columns)
        console.print(f"{row['model']} on {row['protocol']} ({row['provider']}{by}): " + ", ".join(parts), highlight=False)
    if zero_by_insightface:
        console.print(f"note: {INSIGHTFACE_ZERO_NOTE}", highlight=False)
