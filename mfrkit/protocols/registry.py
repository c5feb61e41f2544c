"""The protocol registry: short names for protocol folders, in ``$MFRKIT_HOME``.

``mfrkit protocol make`` and ``import`` register what they write (default name
``<dataset>/<spec>`` for a made protocol, the folder's name for an imported one;
``--name`` chooses), so that ``--protocol NAME`` works anywhere a protocol folder is
accepted. A name is one or two parts joined by ``/``, each a user name as a dataset's
(:func:`mfrkit.registry.check_user_name`), so it can never reach outside the registry
folder. Each entry is its own small JSON file, ``$MFRKIT_HOME/protocols/<name>.json``
(:class:`mfrkit.user_registry.UserRegistry`), written atomically: two commands
registering different protocols at once cannot lose each other's entry.

Resolution (:func:`lookup`): an exact registered name; else, for a value without ``/``,
the one registered protocol whose last part equals it (``mr-mp`` finds ``demo/mr-mp``;
several is an error listing them). A registered folder removed or replaced by hand is
reported as such, never silently skipped.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import __version__
from ..data.registry import mfrkit_home
from ..errors import MfrkitError
from ..user_registry import UserRegistry
from ..userfiles import read_user_bytes
from .errors import ProtocolError
from .folder import INFO_NAME



@dataclass(frozen=True)
class ProtocolEntry:
    """A registered protocol.

    Attributes
    ----------
    name : str
        ``part`` or ``part/part``.
    folder : str
        Absolute path of the protocol folder.
    kind, spec : str or None
        From ``protocol.json`` when registered.
    sha256 : str
        sha256 of ``protocol.json`` when registered.
    registered : str
        ISO time (UTC).
    """

    name: str
    folder: str
    kind: str | None = None
    spec: str | None = None
    sha256: str = ""
    registered: str = ""
    mfrkit_version: str = ""

    def status(self) -> str:
        """``ok``, ``missing`` (no protocol in the folder any more) or ``changed``
        (``protocol.json`` differs from the one registered: made again by other means)."""
        info = Path(self.folder) / INFO_NAME
        if not info.is_file():
            return "missing"
        try:
            sha = hashlib.sha256(read_user_bytes(info, "json")).hexdigest()
        except (OSError, MfrkitError):
            return "missing"
        return "ok" if sha == self.sha256 else "changed"


def registry_dir() -> Path:
    """``$MFRKIT_HOME/protocols``."""
    return mfrkit_home() / "protocols"


def _entry_from_json(name: str, raw: object) -> ProtocolEntry:
    if not isinstance(raw, dict):
        raise ProtocolError(f"expected a JSON object, got {type(raw).__name__}")
    try:
        return ProtocolEntry(**{**raw, "name": name})
    except TypeError as exc:
        raise ProtocolError(str(exc)) from None


def _entry_to_json(entry: ProtocolEntry) -> dict:
    return {k: v for k, v in asdict(entry).items() if k != "name"}  # the file's path is the name


#: ``$MFRKIT_HOME/protocols/<name>.json``, one file per entry.
PROTOCOLS: UserRegistry[ProtocolEntry] = UserRegistry(
    "protocol", ProtocolError, registry_dir, _entry_from_json, _entry_to_json, one_file_per_entry=True, parts=2,
)  # fmt: skip


def check_name(name: str) -> str:
    """``name`` if it is a valid registry name, else a :class:`ProtocolError` saying why."""
    return PROTOCOLS.check(name)


def safe_part(text: str) -> str:
    """``text`` made into one valid name part (other characters become ``_``)."""
    part = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(text)).lstrip("._+-")[:64]
    return part or "protocol"


def default_name(dataset: str | None, what: str) -> str:
    """``<dataset>/<what>`` (``what`` alone without a dataset name)."""
    return f"{safe_part(dataset)}/{safe_part(what)}" if dataset else safe_part(what)


def list_protocols() -> list[ProtocolEntry]:
    """Registered protocols, sorted by name."""
    return list(PROTOCOLS.all().values())


def get_protocol(name: str) -> ProtocolEntry | None:
    """The entry registered as exactly ``name``, or None."""
    return PROTOCOLS.get(name)


def check_registrable(name: str, folder: str | os.PathLike, *, replace: bool = False) -> None:
    """Raise :class:`ProtocolError` when :func:`register_protocol` would refuse ``name``
    for ``folder``: an invalid name, or one registered for another folder that still holds
    a protocol (unless ``replace``). Commands call it before writing anything, so a
    refused name never leaves a written but unregistered folder behind."""
    check_name(name)
    folder = Path(folder).expanduser().resolve()
    old = get_protocol(name)
    if old is not None and Path(old.folder) != folder and not replace and old.status() != "missing":
        raise ProtocolError(
            f"protocol name {name!r} is already registered for {old.folder}; choose another name (--name) or "
            "replace that registration (--force)"
        )


def register_protocol(name: str, folder: str | os.PathLike, *, replace: bool = False) -> ProtocolEntry:
    """Register the protocol folder ``folder`` as ``name``.

    A name already registered for another folder is refused unless ``replace`` is True
    or that folder no longer holds a protocol.
    """
    from .folder import protocol_sha256, read_info

    folder = Path(folder).expanduser().resolve()
    check_registrable(name, folder, replace=replace)
    info = read_info(folder)  # refuses a folder that is not a protocol
    entry = ProtocolEntry(
        name=name, folder=str(folder), kind=info.get("kind"), spec=info.get("spec"), sha256=protocol_sha256(folder),
        registered=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), mfrkit_version=__version__,
    )  # fmt: skip
    return PROTOCOLS.put(name, entry)


def remove_protocol(name: str) -> ProtocolEntry:
    """Forget a registered protocol (its folder is not touched)."""
    entry = PROTOCOLS.remove(name)
    if entry is None:
        raise ProtocolError(f"no protocol is registered as {name!r}{_registered_hint()}")
    return entry


def _registered_hint() -> str:
    names = [e.name for e in list_protocols()]
    return f" (registered: {', '.join(names)})" if names else " (none is registered)"


def lookup(value: str) -> ProtocolEntry | None:
    """The registered protocol ``value`` names: exactly, or (``value`` without ``/``) as
    the last part of exactly one registered name. None when nothing matches.

    Raises
    ------
    ProtocolError
        Several registered names end with ``value``; or the matched entry's folder no
        longer holds a protocol (removed by hand).
    """
    value = str(value)
    entry = get_protocol(value)
    if entry is None and "/" not in value and PROTOCOLS.is_name(value):
        matches = [e for e in list_protocols() if e.name.rsplit("/", 1)[-1] == value]
        if len(matches) > 1:
            raise ProtocolError(
                f"{value!r} matches {len(matches)} registered protocols: {', '.join(e.name for e in matches)}; "
                "give the full name"
            )
        entry = matches[0] if matches else None
    if entry is not None and entry.status() == "missing":
        raise ProtocolError(
            f"protocol {entry.name!r} is registered at {entry.folder}, which no longer holds a protocol (removed by "
            f"hand?); make or import it again, or forget it with `mfrkit protocol remove {entry.name}`"
        )
    return entry


def protocol_folder(value: str | os.PathLike) -> Path:
    """The protocol folder ``value`` stands for: a folder on disk, else a registered name
    (see :func:`lookup`). A clear error otherwise."""
    path = Path(value).expanduser()
    if path.is_dir():
        return path
    entry = lookup(str(value))
    if entry is not None:
        return Path(entry.folder)
    raise ProtocolError(f"{str(value)!r} is neither a protocol folder nor a registered protocol{_registered_hint()}")
