"""The registries a user fills, stored as JSON under ``$MFRKIT_HOME``: datasets, protocols.

One store, :class:`UserRegistry`, for both: every name is checked by the one user-name
rule (:func:`mfrkit.registry.check_user_name`) on writing and on reading back, so a
hand-edited file never makes mfrkit build a path outside ``$MFRKIT_HOME``; every file is
written atomically; a file that cannot be read or holds a bad entry is a one-line error
of the registry's own class naming the file. The entries sit on disk in one of two ways,
kept as the files already written have them:

* one file, a JSON object of name -> entry (``datasets.json``);
* a folder of one file per entry, ``<folder>/<name>.json`` (the name ``a/b`` is
  ``<folder>/a/b.json``), so two commands registering different entries at once never
  lose each other's (the protocols).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from .atomic import atomic_write_text
from .errors import MfrkitError
from .registry import check_user_name, user_name_rule
from .userfiles import read_user_bytes

E = TypeVar("E")


@dataclass(frozen=True)
class UserRegistry(Generic[E]):
    """Entries of one kind stored under user names.

    Attributes
    ----------
    kind : str
        What the entries are (``dataset``), in error messages.
    error : type
        The :class:`~mfrkit.errors.MfrkitError` subclass every error is raised as.
    location : callable
        () -> the registry file, or with ``one_file_per_entry`` the folder; called at each
        use (``$MFRKIT_HOME`` is read then).
    decode : callable
        (name, JSON value) -> entry; raises ``error`` saying what is wrong with the value.
    encode : callable
        entry -> its JSON object.
    one_file_per_entry : bool
        The folder layout (see the module docstring).
    parts : int
        Names have 1 to ``parts`` parts joined by ``/``.
    """

    kind: str
    error: type[MfrkitError]
    location: Callable[[], Path]
    decode: Callable[[str, Any], E]
    encode: Callable[[E], dict]
    one_file_per_entry: bool = False
    parts: int = 1

    def check(self, name: object) -> str:
        """``name`` if it is a valid name here, else ``error`` saying why."""
        return check_user_name(name, self.kind, self.error, parts=self.parts)

    def is_name(self, name: object) -> bool:
        return isinstance(name, str) and user_name_rule(self.parts).fullmatch(name) is not None

    # --- reading ---

    def _read(self, path: Path, what: str) -> Any:
        try:
            return json.loads(read_user_bytes(path, "json"))
        except (MfrkitError, OSError, ValueError) as exc:
            raise self.error(f"the {what} {path} cannot be read ({exc}); fix or delete it") from None

    def _decoded(self, name: str, raw: Any, path: Path, what: str) -> E:
        try:
            return self.decode(self.check(name), raw)
        except self.error as exc:
            raise self.error(f"the {what} {path} is corrupt: {exc}; fix or delete it") from None

    def _entry_path(self, name: str) -> Path:
        root = self.location()
        path = root / f"{self.check(name)}.json"
        # the name rule allows no '..' or absolute part; this guards the invariant all the same
        if root.resolve() not in path.resolve().parents:
            raise self.error(f"{self.kind} name {name!r} leaves the registry")
        return path

    def _file_entries(self) -> dict[str, E]:
        path = self.location()
        if not path.exists():
            return {}
        raw = self._read(path, f"{self.kind} registry")
        if not isinstance(raw, dict):
            raise self.error(f"the {self.kind} registry {path} is corrupt: expected a JSON object of name -> entry, "
                             f"got {type(raw).__name__}; fix or delete it")  # fmt: skip
        return {name: self._decoded(name, value, path, f"{self.kind} registry") for name, value in raw.items()}

    def all(self) -> dict[str, E]:
        """Every entry, by name (sorted)."""
        if not self.one_file_per_entry:
            return dict(sorted(self._file_entries().items()))
        root = self.location()
        if not root.is_dir():
            return {}
        out = {}
        for depth in range(1, self.parts + 1):
            for path in sorted(root.glob("/".join(["*"] * depth) + ".json")):
                name = path.relative_to(root).with_suffix("").as_posix()
                if self.is_name(name):  # a file a user left there is not an entry
                    out[name] = self._decoded(name, self._read(path, f"{self.kind} registry entry"), path, f"{self.kind} registry entry")
        return dict(sorted(out.items()))

    def get(self, name: object) -> E | None:
        """The entry registered as exactly ``name``; None (no path is built) for an invalid name."""
        if not self.is_name(name):
            return None
        if not self.one_file_per_entry:
            return self._file_entries().get(name)
        path = self._entry_path(name)
        if not path.is_file():
            return None
        return self._decoded(name, self._read(path, f"{self.kind} registry entry"), path, f"{self.kind} registry entry")

    # --- writing ---

    def _write_file(self, entries: dict[str, E]) -> None:
        data = {n: self.encode(e) for n, e in sorted(entries.items())}
        atomic_write_text(self.location(), json.dumps(data, indent=2) + "\n")

    def put(self, name: str, entry: E) -> E:
        """Store ``entry`` as ``name`` (replacing what was there)."""
        self.check(name)
        if self.one_file_per_entry:
            atomic_write_text(self._entry_path(name), json.dumps(self.encode(entry), indent=2) + "\n")
        else:
            entries = self._file_entries()
            entries[name] = entry
            self._write_file(entries)
        return entry

    def remove(self, name: str) -> E | None:
        """Forget ``name``; the entry it had, or None (nothing is written then)."""
        entry = self.get(name)
        if entry is None:
            return None
        if self.one_file_per_entry:
            path = self._entry_path(name)
            path.unlink()
            if path.parent != self.location() and path.parent.is_dir() and not any(path.parent.iterdir()):
                path.parent.rmdir()
        else:
            entries = self._file_entries()
            entries.pop(name)
            self._write_file(entries)
        return entry
