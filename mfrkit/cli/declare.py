"""Command options built from the configuration they fill.

A command that runs a library configuration (``BenchConfig``, ``SynthConfig``, ...)
takes it as one parameter and is decorated with :func:`with_config`::

    @app.command()
    @with_config(BenchConfig)
    def bench(config: BenchConfig) -> None:
        run_benchmark(config)

The decorator replaces that parameter, in the signature typer reads, by one option per
field declared with :func:`mfrkit.options.option` (plus the ``switches`` and ``entries``
a declaration asks for), and builds the configuration from what the user gave: a field
the user did not give keeps the dataclass default, so defaults live in the dataclass
only. Parse errors become click usage errors naming the flag.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from ..options import Option, build, declared_options, option_hints
from ..options_file import read_options_file

_PLAIN = (int, float, str, bool, Path)


def _unwrap_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _param(name: str) -> str:
    """The Python name of the parameter for declared name ``name`` (``executor.workers``
    -> ``executor__workers``)."""
    return name.replace(".", "__")


def _long_flags(f: dataclasses.Field, o: Option) -> tuple[str, ...]:
    return o.flags or ("--" + f.name.replace("_", "-"),)


def _default_text(f: dataclasses.Field, o: Option) -> str | bool:
    if o.show_default is not None:
        return o.show_default
    if f.default is dataclasses.MISSING or f.default is None:
        return False  # a default_factory or None: the help text says what happens
    value = f.default
    if isinstance(value, bool):
        flag = _long_flags(f, o)[0][2:]
        off = o.negatable[2:] if isinstance(o.negatable, str) else f"no-{flag}"
        return flag if value else (off if o.negatable else False)
    if isinstance(value, (tuple, list)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclasses.dataclass(frozen=True)
class _Given:
    value: Any


def _parse_boxed(parse: Callable[[str], Any], flag: str, text: str) -> _Given:
    if isinstance(text, _Given):
        return text
    try:
        return _Given(parse(text))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{flag}'") from None


def _unbox(value: Any) -> Any:
    if isinstance(value, _Given):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_unbox(v) for v in value]
    return value


@dataclasses.dataclass
class _Field:
    """How one config field is read back from the command's keyword arguments."""

    name: str
    flag: str  # the option's first long flag
    main: str | None  # parameter of the option itself
    switches: dict[str, tuple[str, Any]]  # parameter -> (flag, value)
    entries: dict[str, str]  # parameter -> dict key

    def collect(self, kwargs: dict, given: dict) -> None:
        value = kwargs.pop(self.main) if self.main else None
        flag_given = None
        for param, (flag, switch_value) in self.switches.items():
            if kwargs.pop(param):
                if flag_given is not None or value is not None:
                    other = flag_given or self.flag
                    raise typer.BadParameter(f"{flag} and {other} exclude each other")
                flag_given, value = flag, switch_value
                given[self.name] = switch_value
        if flag_given is None and value is not None:
            given[self.name] = _unbox(value)
        if self.entries:
            got = {key: kwargs.pop(param) for param, key in self.entries.items()}
            got = {k: v for k, v in got.items() if v is not None}
            if got:
                given[self.name] = got


def _option_params(cls: type, f: dataclasses.Field, o: Option, hint: Any, file_flag: str | None = None) -> tuple[list[inspect.Parameter], _Field]:
    """The keyword-only parameters (typer options) of one declared field."""
    where = f"{cls.__name__}.{f.name}"
    params: list[inspect.Parameter] = []
    spec = _Field(f.name, _long_flags(f, o)[0], None, {}, {})

    def add(name: str, annotation: Any, default: Any = None) -> None:
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))

    if o.entries:
        for key, text in o.entries.items():
            param = f"{_param(f.name)}__{key}"
            add(param, Annotated[Optional[str], typer.Option("--" + key.replace("_", "-"), help=text)])
            spec.entries[param] = key
    else:
        base = _unwrap_optional(hint)
        is_list = typing.get_origin(base) is list or base is list
        decls = list(_long_flags(f, o))
        kw: dict[str, Any] = {"help": o.help, "show_default": _default_text(f, o)}
        if o.metavar:
            kw["metavar"] = o.metavar
        if o.min is not None:
            kw["min"] = o.min
        if o.max is not None:
            kw["max"] = o.max
        if o.parse is not None:
            annotation = list[str] if is_list else str
            # Boxed, so that a parse giving None (``--transfer-from ''``) is told apart
            # from an option not given.
            kw["parser"] = functools.partial(_parse_boxed, o.parse, decls[0])
            kw.pop("min", None), kw.pop("max", None)
        elif base is bool:
            annotation = bool
            if o.negatable:
                off = o.negatable if isinstance(o.negatable, str) else f"--no-{decls[0][2:]}"
                decls = [f"{decls[0]}/{off}"] + decls[1:]
        elif is_list:
            (item,) = typing.get_args(base) or (str,)
            if item not in _PLAIN or item is bool:
                raise TypeError(f"{where}: give parse= for a list of {item}")
            annotation = list[item]
        elif base in _PLAIN:
            annotation = base
        else:
            raise TypeError(f"{where}: give parse= for a field of type {hint}")
        if o.short:
            decls.append(o.short)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = ... if required and file_flag is None else None  # with a config file: checked after merging
        if o.parse is None and not is_list and not o.switches and f.default is not dataclasses.MISSING:
            # A plain default is the option's own: typer shows it as is and passes it back.
            default = f.default
            kw["show_default"] = o.show_default if o.show_default is not None else f.default is not None
        add(_param(f.name), Annotated[Optional[annotation], typer.Option(*decls, **kw)], default)
        spec.main = _param(f.name)
    for i, (flag, value) in enumerate(o.switches.items()):
        param = f"{_param(f.name)}__switch{i}"
        text = f"Set {_long_flags(f, o)[0]} to {value!r}." if value is not None else f"No {_long_flags(f, o)[0]}."
        add(param, Annotated[bool, typer.Option(flag, help=text)], False)
        spec.switches[param] = (flag, value)
    return params, spec


_CTX = "_declare_context"


def _typed_in(ctx: typer.Context | None, spec: _Field) -> bool:
    """Whether the user gave field ``spec`` on the command line (not its default)."""
    if ctx is None:
        return True
    for param in [spec.main, *spec.switches, *spec.entries]:
        if param is None:
            continue
        source = ctx.get_parameter_source(param)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            return True
    return False


_FILE = "_declare_config_file"


def _required(cls: type) -> dict[str, str]:
    """Field name -> first long flag, for the declared fields without a default."""
    return {f.name: _long_flags(f, o)[0] for f, o in declared_options(cls)
            if o.cli and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}  # fmt: skip


def _merged(cls: type, path: Path | None, given_fields: dict, typed: set[str], file_flag: str) -> dict:
    """The fields of ``cls`` from the config file at ``path``, overridden by the options
    typed on the command line; a required field given by neither is a usage error."""
    values = dict(given_fields)
    if path is not None:
        values = read_options_file(path, cls)
        for name in typed:
            cli = given_fields[name]
            values[name] = {**values[name], **cli} if isinstance(cli, dict) and isinstance(values.get(name), dict) else cli
    missing = [flag for name, flag in _required(cls).items() if name not in values]
    if missing:
        key = missing[0][2:]
        raise typer.BadParameter(f"missing {missing[0]}: give it on the command line or as `{key}:` in the {file_flag} file")
    return values


def with_config(cls: type, *, into: str = "config", exclude: tuple[str, ...] = (), given: str | None = None,
                config_file: str | None = None) -> Callable[[Callable], Callable]:  # fmt: skip
    """Decorate a command taking ``into: cls``: its options become the declared fields
    of dataclass ``cls`` (except ``exclude``), and ``into`` receives the built config.

    With ``given``, the command's parameter of that name receives the frozenset of the
    field names the user gave on the command line (e.g. to let them override a recipe
    while the fields not given keep the recipe's values); click's parameter source tells
    a default apart from the same value typed in.

    With ``config_file`` (a flag such as ``"--config"``), the command also takes a YAML file
    of the same options (:func:`mfrkit.options_file.read_options_file`); the options typed
    on the command line override the file's."""
    hints = option_hints(cls)
    generated = [
        _option_params(cls, f, o, hints[f.name], config_file) for f, o in declared_options(cls) if o.cli and f.name not in exclude
    ]  # a field the CLI cannot parse fails here, when the command module is imported

    def decorate(func: Callable) -> Callable:
        try:
            sig = inspect.signature(func, eval_str=True)
        except NameError:  # a name only the function's own scope knows (typer resolves it later)
            sig = inspect.signature(func)
        if into not in sig.parameters:
            raise TypeError(f"{func.__name__} has no parameter {into!r} to receive the {cls.__name__}")
        if given is not None and given not in sig.parameters:
            raise TypeError(f"{func.__name__} has no parameter {given!r} to receive the given field names")
        own = [p for p in sig.parameters.values() if p.name not in (into, given)]
        taken = {p.name for p in own}
        params, fields = list(own), []
        for new, spec in generated:
            clash = taken & {p.name for p in new}
            if clash:
                raise TypeError(f"{func.__name__}: parameter(s) {sorted(clash)} clash with {cls.__name__}'s options")
            taken |= {p.name for p in new}
            params += new
            fields.append(spec)
        if config_file is not None:
            help_text = f"YAML file of these options (keys: the flags without --, e.g. model, protocol, batch); flags given here override it."
            params.append(inspect.Parameter(_FILE, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=Annotated[Optional[Path], typer.Option(config_file, help=help_text, metavar="FILE")]))
        if given is not None or config_file is not None:
            params.append(inspect.Parameter(_CTX, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))

        @functools.wraps(func)
        def command(**kwargs):
            ctx = kwargs.pop(_CTX, None)
            path = kwargs.pop(_FILE, None)
            given_fields: dict = {}
            for spec in fields:
                spec.collect(kwargs, given_fields)
            if config_file is not None:
                typed = {spec.name for spec in fields if spec.name in given_fields and _typed_in(ctx, spec)}
                given_fields = _merged(cls, path, given_fields, typed, config_file)
            extra = {into: build(cls, given_fields)}
            if given is not None:
                extra[given] = frozenset(spec.name for spec in fields if spec.name in given_fields and _typed_in(ctx, spec))
            return func(**kwargs, **extra)

        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate
