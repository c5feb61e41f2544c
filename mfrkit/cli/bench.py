"""``mfrkit bench`` and ``mfrkit leaderboard``: scoring models and gathering results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..bench.benchmark import BenchConfig
from .app import app, console, err_console
from .common import print_board
from .declare import with_config


@app.command()
@with_config(BenchConfig)
def bench(config: BenchConfig) -> None:
    """Benchmark ONNX models on protocols: embeddings, scores, metrics, plots and leaderboard rows."""
    from ..bench.benchmark import run_benchmark
    from ..progress import progress_bar

    run = run_benchmark(config, log=lambda msg: err_console.print(msg, highlight=False), progress=lambda n, d: progress_bar(n, d, enabled=err_console.is_terminal))
    print_board(run.leaderboard)
    console.print(f"run folder: {run.folder}")


@app.command()
def leaderboard(
    results: Annotated[Path, typer.Argument(help="Folder holding bench runs.")] = Path("runs"),
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the leaderboard as CSV.")] = None,
    md: Annotated[Optional[Path], typer.Option("--md", help="Write the leaderboard as Markdown.")] = None,
) -> None:
    """Gather every run under RESULTS into one leaderboard (one row per model x protocol, latest run wins)."""
    from ..bench.leaderboard import collect_leaderboard, write_leaderboard

    board = collect_leaderboard(results)
    print_board(board)
    for path in write_leaderboard(board, csv=csv, md=md):
        console.print(f"wrote {path}")
