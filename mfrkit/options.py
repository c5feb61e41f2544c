"""Options declared once, beside the configuration they fill.

A field of a configuration dataclass declared with :func:`option` carries its
command-line form in the field's metadata: long flag names, at most one short flag, the
help text and the function that parses the command-line text. The CLI
(:mod:`mfrkit.cli.declare`) builds each command's options from these declarations, so a
flag, its config field, its default and its help live in one place. This module imports
nothing from the CLI (no typer): library modules declare their options with it.

Example
-------
>>> from dataclasses import dataclass
>>> @dataclass
... class Settings:
...     workers: int = option(1, short="-j", help="Worker processes.", min=0)
...     far: tuple = option((1e-3,), flags=("--far",), parse=floats, help="FAR targets, comma-separated.")

A configuration may hold another declared configuration whole (every command that runs
jobs holds an :class:`~mfrkit.jobs.ExecutorSpec`): :func:`options_of` declares such a
field, and its options become the holder's, named ``<field>.<part>`` (e.g.
``executor.workers``) in :func:`declared_options` and built back by :func:`build`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING
from typing import Any, Callable, Mapping

#: The key of the field metadata holding an :class:`Option`.
OPTION_KEY = "mfrkit.option"


@dataclasses.dataclass(frozen=True)
class Option:
    """The command-line form of one configuration field.

    Attributes
    ----------
    help : str
        Help text.
    flags : tuple of str
        Long flags, e.g. ``("--batch",)``; empty: ``--<field-name>`` with dashes. A bool
        field gets ``--x/--no-x`` unless ``negatable`` is False (then ``--x`` sets True).
    short : str or None
        One short flag such as ``-j``. Short flags mean the same in every command
        (``-j`` --workers, ``-o`` --out, ``-m`` --manifest, ``-p`` --probe-manifest,
        ``-f`` --format, ``-v`` --verbose).
    parse : callable or None
        Command-line text -> field value (raise ``ValueError`` with a message on bad
        text); None: the field's own type (int, float, str, bool, Path, list of those).
    metavar : str or None
    min, max : number or None
        Bounds checked by the parser (numeric fields).
    switches : mapping
        Extra flags that set the field to a fixed value, e.g. ``{"--no-cache": None}``.
    entries : mapping
        For a ``dict`` field: one text option per key (``{"input_size": "help", ...}``
        gives ``--input-size``); the field holds the keys given.
    negatable : bool or str
        Bool fields: ``--x/--no-x`` (True), just ``--x`` (False), or ``--x`` and the
        flag given (``"--non-centered"``) that sets False.
    cli : bool
        False: the field is not on the command line.
    show_default : str or None
        Default shown in the help; None: derived from the field's default.
    group : type or None
        The field holds a whole declared configuration of this dataclass (see
        :func:`options_of`); its options are the holder's.
    parts : mapping
        With ``group``: part name -> changes to that part's :class:`Option` (e.g. its
        help in this command).
    """

    help: str
    flags: tuple[str, ...] = ()
    short: str | None = None
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    min: float | None = None
    max: float | None = None
    switches: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    entries: Mapping[str, str] = dataclasses.field(default_factory=dict)
    negatable: bool | str = True
    cli: bool = True
    show_default: str | None = None
    group: type | None = None
    parts: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for flag in self.flags:
            if not flag.startswith("--"):
                raise ValueError(f"long flags start with '--', got {flag!r}")
        if self.short is not None and not (len(self.short) == 2 and self.short[0] == "-" and self.short[1].isalpha()):
            raise ValueError(f"a short flag is '-' and one letter, got {self.short!r}")


def option(
    default: Any = MISSING,
    *,
    help: str,
    default_factory: Callable[[], Any] | Any = MISSING,
    flags: tuple[str, ...] | str = (),
    short: str | None = None,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
    min: float | None = None,
    max: float | None = None,
    switches: Mapping[str, Any] | None = None,
    entries: Mapping[str, str] | None = None,
    negatable: bool | str = True,
    cli: bool = True,
    show_default: str | None = None,
) -> Any:
    """A dataclass field with its command-line form (see :class:`Option`). Without
    ``default`` and ``default_factory`` the option is required."""
    spec = Option(
        help=help, flags=(flags,) if isinstance(flags, str) else tuple(flags), short=short, parse=parse,
        metavar=metavar, min=min, max=max, switches=dict(switches or {}), entries=dict(entries or {}),
        negatable=negatable, cli=cli, show_default=show_default,
    )  # fmt: skip
    return dataclasses.field(default=default, default_factory=default_factory, metadata={OPTION_KEY: spec})


def options_of(cls: type, default: Any = None, *, help: str, parts: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """A dataclass field holding a whole declared configuration ``cls`` (default: ``default``,
    or ``cls()``): its options become the holder's. ``parts`` changes a part's
    :class:`Option` for this holder (``{"workers": {"help": "..."}}``); flags, defaults
    and parsing otherwise stay those ``cls`` declares."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"options_of needs a dataclass, got {cls!r}")
    value = cls() if default is None else default
    known = {f.name for f, _ in declared_options(cls)}
    unknown = sorted(set(parts or {}) - known)
    if unknown:
        raise TypeError(f"{cls.__name__} declares no option {', '.join(unknown)}")
    spec = Option(help=help, group=cls, parts={k: dict(v) for k, v in (parts or {}).items()})
    return dataclasses.field(default_factory=lambda: value, metadata={OPTION_KEY: spec})


def _parts(holder: dataclasses.Field, o: Option) -> list[tuple[dataclasses.Field, Option]]:
    """The options of group field ``holder``, named ``<holder>.<part>``, with the holder's
    default as theirs and their long flags spelled out (a part's name is not its flag)."""
    default = field_default(holder)
    out = []
    for f, part in declared_options(o.group):
        changes = dict(o.parts.get(f.name, {}))
        changes.setdefault("flags", part.flags or ("--" + f.name.replace("_", "-"),))
        part = dataclasses.replace(part, **changes)
        flat = dataclasses.field(default=getattr(default, f.name), metadata={OPTION_KEY: part})
        flat.name, flat.type = f"{holder.name}.{f.name}", f.type
        out.append((flat, part))
    return out


def declared_options(cls: type) -> list[tuple[dataclasses.Field, Option]]:
    """The fields of dataclass ``cls`` declared with :func:`option`, in field order; a field
    declared with :func:`options_of` gives its parts instead (``executor.workers``, ...)."""
    out: list[tuple[dataclasses.Field, Option]] = []
    for f in dataclasses.fields(cls):
        o = f.metadata.get(OPTION_KEY)
        if o is None:
            continue
        out.extend(_parts(f, o) if o.group is not None else [(f, o)])
    return out


def option_hints(cls: type) -> dict[str, Any]:
    """The type of each name :func:`declared_options` gives (group parts included)."""
    hints = dict(typing.get_type_hints(cls))
    for f in dataclasses.fields(cls):
        o = f.metadata.get(OPTION_KEY)
        if o is not None and o.group is not None:
            hints.update({f"{f.name}.{k}": v for k, v in option_hints(o.group).items()})
    return hints


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """``cls`` from option values keyed as :func:`declared_options` names them: the parts
    of a group field given (``executor.workers``) replace those of its default."""
    plain = {k: v for k, v in values.items() if "." not in k}
    for f in dataclasses.fields(cls):
        o = f.metadata.get(OPTION_KEY)
        if o is None or o.group is None:
            continue
        given = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(f.name + ".")}
        if given:
            plain[f.name] = dataclasses.replace(plain.get(f.name, field_default(f)), **given)
    return cls(**plain)


def field_default(f: dataclasses.Field) -> Any:
    """The default of field ``f`` (``default_factory`` called), or ``MISSING``."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


# --- parse functions shared by declarations -----------------------------------------------------------


def floats(text: str) -> tuple[float, ...]:
    """``"1e-3, 1e-4"`` -> ``(0.001, 0.0001)``."""
    try:
        values = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"expected comma-separated numbers, got {text!r}")
    return values


def rates(text: str) -> tuple[float, ...]:
    """``"1e-3, 1e-4"`` -> ``(0.001, 0.0001)``, each in (0, 1] (FAR/FPIR targets)."""
    values = floats(text)
    bad = [v for v in values if not 0 < v <= 1]
    if bad:
        raise ValueError(f"rates must lie in (0, 1], got {', '.join(f'{v:g}' for v in bad)}")
    return values


def names(text: str) -> tuple[str, ...]:
    """``"a, b"`` -> ``("a", "b")``."""
    values = tuple(v.strip() for v in str(text).split(",") if v.strip())
    if not values:
        raise ValueError(f"expected comma-separated names, got {text!r}")
    return values


def none_for(*words: str) -> Callable[[str], str | None]:
    """A parse function giving None for ``words`` (e.g. ``"none"``, ``""``), else the text."""

    def parse(text: str) -> str | None:
        return None if text in words else text

    parse.__name__ = f"none_for{words!r}"
    return parse
