"""``mfrkit bench`` and ``mfrkit leaderboard``: scoring models and gathering results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..bench.benchmark import BenchConfig
from .app import app, console, err_console
from .common import print_results
from .declare import with_config


@app.command()
@with_config(BenchConfig, config_file="--config")
def bench(config: BenchConfig) -> None:
    """Benchmark ONNX models on protocols: embeddings, scores, metrics, plots and leaderboard rows."""
    from ..bench.benchmark import run_benchmark
    from ..progress import progress_bar

    run = run_benchmark(config, log=lambda msg: err_console.print(msg, highlight=False), progress=lambda n, d: progress_bar(n, d, enabled=err_console.is_terminal))
    print_results(run.results)
    console.print(f"run folder: {run.folder}")


@app.command()
def leaderboard(
    results: Annotated[Optional[list[Path]], typer.Argument(help="Run folders, or folders holding bench runs (default: runs).")] = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the leaderboard (one row per model x protocol) as CSV.")] = None,
    md: Annotated[Optional[Path], typer.Option("--md", help="Write the leaderboard as Markdown.")] = None,
    table: Annotated[Optional[Path], typer.Option("--table", help="Write the comparison table (one row per model, one column per protocol and metric) to table.md, table.csv or table.tex.")] = None,
    metric: Annotated[Optional[list[str]], typer.Option("--metric", help="--table: metric(s) per protocol: tar@far=<FAR>, auc, eer, acc, transfer_fnmr, transfer_fmr (1:1), rank1, rank5, rank10, tpir@fpir=<FPIR> (1:N); repeatable (default tar@far=1e-3 and rank1).")] = None,
    intervals: Annotated[bool, typer.Option("--intervals/--no-intervals", help="--table: give each value's interval.")] = True,
    rules: Annotated[Optional[str], typer.Option("--rules", help="--table: the rule set of the 1:1 numbers, mfrkit or insightface (default: each run's).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing --csv / --md / --table files.")] = False,
) -> None:
    """Gather every run under RESULTS into one leaderboard: one row per model x protocol x rule set (and preprocessing, FtA policy, mfrkit version), the latest run of each winning; printed as tables with counts, intervals and flags, or written as CSV / Markdown rows or a comparison table (then the console says where)."""
    from ..bench.report.leaderboard import DEFAULT_METRICS, collect_results, write_leaderboards

    roots = results or [Path("runs")]
    board, written = write_leaderboards(roots, csv=csv, md=md, table=table, metrics=metric or DEFAULT_METRICS,
                                        intervals=intervals, rules=rules, force=force)
    if not written:  # files asked for: they hold the rows, the console just says where
        print_results(collect_results(roots), rules=rules)
    for path in written:
        console.print(f"wrote {path} ({len(board)} rows)")


@app.command()
def report(
    results: Annotated[list[Path], typer.Argument(help="Run folders, or folders holding bench runs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    metric: Annotated[Optional[list[str]], typer.Option("--metric", help="Headline metric(s) of the comparison table (as for leaderboard --table; default tar@far=1e-3 and rank1).")] = None,
    rules: Annotated[Optional[str], typer.Option("--rules", help="Rule set of the 1:1 numbers, mfrkit or insightface (default: each run's).")] = None,
    impostor_pass_limit: Annotated[Optional[float], typer.Option("--impostor-pass-limit", help="Largest all-pairs protocol (comparisons) whose highest-scoring impostor pairs are found by scoring it again from the run's embeddings.parquet (--save-embeddings); default 2e9 on the CPU, 2e11 on a CUDA device; 0: never.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """One self-contained HTML report of bench runs: comparison table, curves, breakdowns, threshold drift, hardest pairs, failures to acquire."""
    from ..bench.report.table import DEFAULT_METRICS
    from ..bench.report.page import write_report

    path = write_report(results, out, metrics=metric or DEFAULT_METRICS, rules=rules, impostor_pass_limit=impostor_pass_limit,
                        force=force)
    console.print(f"wrote {path}")
