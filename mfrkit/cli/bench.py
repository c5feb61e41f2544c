"""``mfrkit bench`` and ``mfrkit leaderboard``: scoring models and gathering results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import app, console, err_console
from .common import parse_floats, print_board


@app.command()
def bench(
    model: Annotated[list[Path], typer.Option("--model", "-m", help="ONNX model, or a folder of models (repeatable).")],
    protocol: Annotated[list[str], typer.Option("--protocol", "-p", help="Protocol folder, or a spec drawn from --manifest: SPEC (1:1, e.g. mr-mp) or SPEC:closed|open|megaface (1:N); repeatable.")],
    probe_model: Annotated[Optional[Path], typer.Option(help="Probe half of a heterogeneous model; --model is then the reference half.")] = None,
    manifest: Annotated[Optional[list[str]], typer.Option(help="Manifest instead of the path in protocol.json: PATH (both roles) or reference=PATH / probe=PATH.")] = None,
    out: Annotated[Path, typer.Option(help="Results root; the run goes in OUT/<run id>.")] = Path("runs"),
    provider: Annotated[str, typer.Option(help="onnxruntime provider: auto, cuda or cpu.")] = "auto",
    batch: Annotated[int, typer.Option(min=1, help="Images per model call.")] = 64,
    workers: Annotated[Optional[int], typer.Option("--workers", "-j", min=0, help="Pipeline worker processes (default: automatic; 0: none).")] = None,
    tta: Annotated[str, typer.Option(help="Test-time augmentation: none or flip.")] = "none",
    threads: Annotated[int, typer.Option(min=0, help="onnxruntime intra-op threads (0: its default).")] = 0,
    input_size: Annotated[Optional[str], typer.Option(help="Override mfrkit.input_size, e.g. 112 or 112,112.")] = None,
    color: Annotated[Optional[str], typer.Option(help="Override mfrkit.color: RGB or BGR.")] = None,
    mean: Annotated[Optional[str], typer.Option(help="Override mfrkit.mean (0-255 units), e.g. 127.5.")] = None,
    std: Annotated[Optional[str], typer.Option(help="Override mfrkit.std (0-255 units), e.g. 127.5.")] = None,
    align: Annotated[Optional[str], typer.Option(help="Override mfrkit.align: arcface<S> or arcface<S>p<P> (S up to 2048 px, P up to 100 %; e.g. arcface112, arcface160p30), dlib150 or none.")] = None,
    model_meta: Annotated[Optional[Path], typer.Option(help="Sidecar JSON with the mfrkit.* keys of a third-party model.")] = None,
    landmarks: Annotated[str, typer.Option(help="Landmark backend whose (cached) landmarks align the faces.")] = "mediapipe",
    cache: Annotated[Optional[Path], typer.Option(help="Embedding cache folder (default $MFRKIT_HOME/cache/embeddings).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the embedding cache.")] = False,
    fta: Annotated[str, typer.Option(help="Failures to acquire: reject (scored as rejections) or exclude (left out, still counted).")] = "reject",
    far: Annotated[Optional[str], typer.Option(help="FAR/FPIR targets, comma-separated (default 1e-1,...,1e-6).")] = None,
    max_rank: Annotated[int, typer.Option(min=1, help="1:N candidate-list length and CMC range.")] = 20,
    search_device: Annotated[str, typer.Option(help="1:N search: auto, cuda (torch) or cpu (numpy).")] = "auto",
    bootstrap: Annotated[int, typer.Option(min=0, help="Identity-bootstrap replicates (0: none).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    transfer_from: Annotated[str, typer.Option(help="Protocol (its name, or its spec when one protocol of the run has it) whose threshold is applied to the other 1:1 protocols ('' to skip).")] = "umr-ump",
    transfer_far: Annotated[float, typer.Option(help="FAR at which that threshold is chosen.")] = 1e-4,
    plots: Annotated[bool, typer.Option(help="Write ROC/DET/CMC plots.")] = True,
) -> None:
    """Benchmark ONNX models on protocols: embeddings, scores, metrics, plots and leaderboard rows."""
    from ..bench.benchmark import BenchConfig, run_benchmark
    from ..bench.embedding_cache import default_cache_dir
    from ..progress import progress_bar

    options = {"input_size": input_size, "color": color, "mean": mean, "std": std, "align": align}
    cfg = BenchConfig(
        models=list(model),
        protocols=list(protocol),
        probe_model=str(probe_model) if probe_model else None,
        manifests=list(manifest or []),
        out=out,
        provider=provider,
        batch_size=batch,
        workers=workers,
        tta=None if tta == "none" else tta,
        threads=threads,
        model_options={k: v for k, v in options.items() if v is not None},
        sidecar=str(model_meta) if model_meta else None,
        landmarks=landmarks,
        cache_dir=None if no_cache else (cache or default_cache_dir()),
        fta_policy=fta,
        far_targets=tuple(parse_floats(far)) if far else BenchConfig.far_targets,
        max_rank=max_rank,
        search_device=search_device,
        n_boot=bootstrap,
        seed=seed,
        transfer_from=transfer_from or None,
        transfer_far=transfer_far,
        plots=plots,
    )
    run = run_benchmark(cfg, log=lambda msg: err_console.print(msg, highlight=False), progress=lambda n, d: progress_bar(n, d, enabled=err_console.is_terminal))
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
