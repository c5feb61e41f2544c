"""Configuration files: a YAML mapping that fills the declared options of a config.

``mfrkit bench --config study.yaml`` keeps a study's settings in a file. Its keys are the
options' long flags without the dashes (``model``, ``protocol``, ``batch``, ``bootstrap``,
``far``, ``model-meta``; ``_`` and ``-`` alike) or the configuration's field names
(``batch_size``); values are YAML scalars or lists, each read as the command line would
read it (the same parse function, the same bounds). A key that names no option is refused,
with the valid ones listed: a typo never becomes a silently ignored setting.

Example ``study.yaml``::

    model: [runs/csn/model.onnx, dlib_resnet.onnx]
    protocol: [mr-mp, umr-mp]
    bootstrap: 2000
    far: [1e-3, 1e-4]
    input-size: 112        # an entry of a dict option (--input-size)
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any

from .errors import ConfigFileError
from .options import Option, declared_options, option_hints
from .userfiles import read_user_yaml, user_file_errors_as

_SCALARS = (int, float, str, bool, Path)


def _key(text: str) -> str:
    return str(text).strip().lstrip("-").replace("-", "_").lower()


def option_keys(cls: type) -> dict[str, tuple[str, str | None]]:
    """Every key a file may use for dataclass ``cls``: key -> (field name, dict entry or None)."""
    keys: dict[str, tuple[str, str | None]] = {}
    for f, o in declared_options(cls):
        if not o.cli:
            continue
        if o.entries:
            for entry in o.entries:
                keys[_key(entry)] = (f.name, entry)
            continue
        keys[_key(f.name)] = (f.name, None)
        for flag in o.flags:
            keys[_key(flag)] = (f.name, None)
    return keys


def _text(value: Any) -> str:
    return ",".join(_text(v) for v in value) if isinstance(value, list) else str(value)


def _plain(value: Any, tp: Any, where: str) -> Any:
    """One YAML value as a field of plain type ``tp`` (int, float, str, bool, Path)."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigFileError(f"{where}: expected true or false, got {value!r}")
    if isinstance(value, (list, dict)) or (isinstance(value, bool) and tp is not str):
        raise ConfigFileError(f"{where}: expected one {tp.__name__}, got {value!r}")
    try:
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return tp(int(value)) if tp is int and isinstance(value, float) else tp(value)
    except (TypeError, ValueError):
        raise ConfigFileError(f"{where}: expected {'an integer' if tp is int else 'a number' if tp is float else tp.__name__}, got {value!r}") from None


def _field_value(f: dataclasses.Field, o: Option, hint: Any, value: Any, where: str) -> Any:
    """A YAML value read as the command line reads the option's text."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if origin in (typing.Union, types.UnionType) and len(args) == 1 else hint
    is_list = typing.get_origin(base) is list or base is list
    items = value if isinstance(value, list) else [value]
    if o.parse is not None:
        try:
            return [o.parse(_text(v)) for v in items] if is_list else o.parse(_text(value))
        except ValueError as exc:
            raise ConfigFileError(f"{where}: {exc}") from None
    if is_list:
        (item,) = typing.get_args(base) or (str,)
        got = [_plain(v, item, where) for v in items]
    else:
        got = _plain(value, base if base in _SCALARS else str, where)
    for v in got if is_list else [got]:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if (o.min is not None and v < o.min) or (o.max is not None and v > o.max):
                bounds = " and ".join(s for s in (f">= {o.min:g}" if o.min is not None else "", f"<= {o.max:g}" if o.max is not None else "") if s)
                raise ConfigFileError(f"{where}: {v} is out of range (must be {bounds})")
    return got


def read_options_file(path: str | os.PathLike, cls: type) -> dict[str, Any]:
    """The fields of dataclass ``cls`` set by the YAML file at ``path``: field name -> value
    (the part of a group field named as :func:`mfrkit.options.declared_options` names it,
    ``executor.workers``; :func:`mfrkit.options.build` makes ``cls`` of them).

    Raises
    ------
    ConfigFileError
        The file is missing, not YAML, not a mapping, or has a key that names no option of
        ``cls`` or a value the option does not accept (the message names the key).
    """
    path = Path(path)
    with user_file_errors_as(ConfigFileError):  # bounded, regular files only; one-line errors
        data = read_user_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: expected a mapping of option: value, got a {type(data).__name__}")
    keys = option_keys(cls)
    unknown = [str(k) for k in data if _key(k) not in keys]
    if unknown:
        valid = ", ".join(sorted({k.replace("_", "-") for k in keys}))
        raise ConfigFileError(f"{path}: unknown option(s) {', '.join(unknown)}; valid keys: {valid}")
    hints = option_hints(cls)
    fields = {f.name: (f, o) for f, o in declared_options(cls)}
    out: dict[str, Any] = {}
    for raw, value in data.items():
        name, entry = keys[_key(raw)]
        f, o = fields[name]
        where = f"{path}: {raw}"
        if name in out and entry is None:
            raise ConfigFileError(f"{where}: {name} is set twice in the file")
        if entry is not None:
            out.setdefault(name, {})[entry] = _text(value)
        else:
            out[name] = _field_value(f, o, hints[name], value, where)
    return out
