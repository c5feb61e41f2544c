"""The ``mfrkit`` command line. Each command group lives in its own module; each command
parses options, calls one library function and prints. Library errors become a one-line
message and exit code 1 in :func:`main`, the only place that handles them."""

from __future__ import annotations

import sys

import typer

from ..errors import MfrkitError
from . import bench, datasets, demo, models, pack, protocol, synth  # noqa: F401  (they register their commands)
from .app import app, err_console, plain, styled

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point: the one place where errors become messages.

    Every error ends as one line on stderr and exit code 1: mfrkit's own errors
    (:class:`~mfrkit.errors.MfrkitError`), the file system's (permission denied, disk
    full), running out of memory, and (as a last resort) anything unexpected, named as
    a bug. ``--verbose`` or ``MFRKIT_TRACEBACK=1`` shows the traceback of the last kind.
    """
    try:
        code = app(standalone_mode=False)
    except MfrkitError as exc:
        _fail(str(exc))
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except OSError as exc:
        # The file system said no (permission denied, disk full, ...): the user can act on
        # that message; a traceback would bury it.
        _fail(str(exc))
    except MemoryError:
        _fail("out of memory; use a smaller input, fewer workers (-j) or a machine with more memory")
    except Exception as exc:  # click's usage errors; typer 0.29 vendors click, so no `import click`
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        _unexpected(exc)
    # Outside standalone mode typer does not exit: it returns the code of a
    # `typer.Exit` (a failed doctor, an invalid protocol) and turns Ctrl-C into 130.
    if code == 130:
        err_console.print("interrupted")
    if isinstance(code, int) and code:
        sys.exit(code)


def _fail(message: str) -> None:
    # One line: a message from a parser (YAML, pyarrow) can carry newlines and indentation.
    line = " ".join(message.split()) or "failed"
    # escape: messages hold brackets ("install mfrkit[gpu]") that rich would read as markup
    err_console.print(f"{styled('bold red', 'error:')} {plain(line)}", markup=True, highlight=False)
    sys.exit(1)


def _unexpected(exc: Exception) -> None:
    """An exception no part of mfrkit meant to raise: a bug. One line, unless asked."""
    import os

    from ..quiet import verbose

    if os.environ.get("MFRKIT_TRACEBACK", "") not in ("", "0") or verbose():
        raise exc
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    _fail(f"unexpected {type(exc).__name__}{': ' + text if text else ''} (a bug in mfrkit: please report it with the "
          "command; MFRKIT_TRACEBACK=1 shows the traceback)")
