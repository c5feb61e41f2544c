"""A small name -> object registry for things that come in families.

Every family in mfrkit (dataset layouts, landmark backends, mask styles, renderers,
protocol specs, model families) is a :class:`Registry`. Entries register themselves
with a decorator, in the spirit of timm's ``register_model``; an unknown name raises
:class:`~mfrkit.errors.UnknownNameError` listing the valid ones.
"""

from __future__ import annotations

import re
from typing import Callable, Generic, Iterator, TypeVar

from .errors import MfrkitError, UnknownNameError

T = TypeVar("T")

#: One part of a name a user gives to something mfrkit stores under ``$MFRKIT_HOME`` (a
#: dataset, a protocol): it becomes a file or folder name there, so it is a plain identifier.
_USER_PART = r"[A-Za-z0-9_-][A-Za-z0-9._+-]{0,63}"
#: A one-part user name (a dataset's).
USER_NAME = re.compile(rf"^{_USER_PART}$")


def user_name_rule(parts: int = 1) -> re.Pattern:
    """The user names of 1 to ``parts`` parts joined by ``/`` (a protocol's name is
    ``dataset/spec``), each a plain identifier (see :func:`check_user_name`)."""
    return USER_NAME if parts == 1 else re.compile(rf"^{_USER_PART}(?:/{_USER_PART}){{0,{parts - 1}}}$")


def check_user_name(name: object, what: str = "name", error: type[MfrkitError] = MfrkitError, *, parts: int = 1) -> str:
    """``name`` if it is a user name: 1 to ``parts`` parts joined by ``/``, each 1 to 64
    letters, digits, ``-``, ``_``, ``+`` and ``.``, not starting with ``.``. Such a name is
    safe as a file or folder name under ``$MFRKIT_HOME`` (no ``..``, absolute, hidden or
    empty part); anything else raises ``error`` (a :class:`~mfrkit.errors.MfrkitError`
    subclass) naming ``what`` it was for. Every registry stored under ``$MFRKIT_HOME``
    (datasets, protocols: :class:`mfrkit.user_registry.UserRegistry`) checks its names
    with this one function, on adding and on reading its file back."""
    if not isinstance(name, str) or not user_name_rule(parts).fullmatch(name):
        shape = f"1 to {parts} parts joined by '/' (as in lfw/umr-mp), each of " if parts > 1 else ""
        raise error(f"invalid {what} name {name!r}: use {shape}1 to 64 letters, digits, '-', '_', '+' and '.' "
                    "(not starting with '.')")
    return name


class Registry(Generic[T]):
    """Maps names to objects of one family.

    Parameters
    ----------
    kind : str
        What the entries are, used in error messages ("landmark backend").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering an object under ``name`` (default: its ``__name__``)."""

        def decorator(obj: T) -> T:
            key = name or getattr(obj, "__name__")
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = obj
            return obj

        return decorator

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name`` without a decorator."""
        return self.register(name)(obj)

    def get(self, name: str) -> T:
        """The entry called ``name``; raises :class:`UnknownNameError` naming the valid ones."""
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries)) or "(none registered)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {valid}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
