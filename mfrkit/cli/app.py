"""The typer application, its command groups and the consoles every command prints to."""

from __future__ import annotations

from typing import Annotated

import typer
import typer.core
from rich.console import Console


def _no_flag_type(display_type_rich):
    """Help without a ``<bool>`` after every on/off flag (typer 0.29 prints one): a flag
    takes no value, so it shows none; options that take one keep their type."""

    def display(self, ctx):
        return None if getattr(self, "is_flag", False) else display_type_rich(self, ctx)

    return display


if not getattr(typer.core.TyperOption.display_type_rich, "_mfrkit", False):
    typer.core.TyperOption.display_type_rich = _no_flag_type(typer.core.TyperOption.display_type_rich)
    typer.core.TyperOption.display_type_rich._mfrkit = True

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Masked-face recognition research toolkit.")
datasets_app = typer.Typer(no_args_is_help=True, help="Register face datasets on disk and scan them into manifests.")
protocol_app = typer.Typer(no_args_is_help=True, help="Make, import, export, inspect and validate protocols.")
models_app = typer.Typer(no_args_is_help=True, help="Train and export the reference model families.")


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"mfrkit {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _global_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the native libraries' log lines (mediapipe, TFLite, absl), hidden by default.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print mfrkit's version and exit.")] = False,
) -> None:
    """Masked-face recognition research toolkit."""
    from ..quiet import set_verbose

    if verbose:
        set_verbose(True)  # an environment variable: worker processes inherit it


app.add_typer(datasets_app, name="datasets")
app.add_typer(protocol_app, name="protocol")
app.add_typer(models_app, name="models")
class SafeConsole(Console):
    """A rich console for text that carries user-given names (models, datasets,
    identities, paths): control characters in a string are shown as escapes
    (:func:`mfrkit.names.terminal_text`: a name cannot clear the screen or move the
    cursor), and markup is off unless a call asks for it with ``markup=True`` (a name
    such as ``[/x]`` is printed, not parsed); such a call escapes the names it holds
    (``rich.markup.escape``)."""

    def print(self, *objects, markup: bool | None = False, **kwargs) -> None:  # noqa: A003
        from ..names import terminal_text

        safe = [terminal_text(o) if isinstance(o, str) else o for o in objects]
        super().print(*safe, markup=markup, **kwargs)


def styled(style: str, text) -> str:
    """``text`` (a name, a message) as rich markup in ``style``, its own brackets escaped
    and its control characters shown: for a ``print(..., markup=True)``."""
    from rich.markup import escape

    from ..names import terminal_text

    return f"[{style}]{escape(terminal_text(str(text)))}[/]"


def plain(text) -> str:
    """``text`` escaped for a ``print(..., markup=True)`` without a style."""
    from rich.markup import escape

    from ..names import terminal_text

    return escape(terminal_text(str(text)))


# soft_wrap: never hard-wrap paths and messages at 80 columns when output is piped.
console = SafeConsole(soft_wrap=True)
err_console = SafeConsole(stderr=True, soft_wrap=True)
