"""The ``mfrkit`` command line. Each command group lives in its own module; each command
parses options, calls one library function and prints. Library errors become a one-line
message and exit code 1 in :func:`main`, the only place that handles them."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from ..errors import MfrkitError
from . import bench, datasets, demo, models, pack, protocol, synth  # noqa: F401  (they register their commands)
from .app import app, err_console

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    try:
        code = app(standalone_mode=False)
    except MfrkitError as exc:
        # escape: messages hold brackets ("install mfrkit[gpu]") that rich would read as markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except OSError as exc:
        # The file system said no (permission denied, disk full, ...): the user can act on
        # that message; a traceback would bury it.
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except Exception as exc:  # click's usage errors; typer 0.29 vendors click, so no `import click`
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    # Outside standalone mode typer does not exit: it returns the code of a
    # `typer.Exit` (a failed doctor, an invalid protocol) and turns Ctrl-C into 130.
    if code == 130:
        err_console.print("interrupted")
    if isinstance(code, int) and code:
        sys.exit(code)
