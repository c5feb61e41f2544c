"""Regular expressions a user gives (``--option identity_regex=...``), bounded.

Python's ``re`` backtracks: ``^(?P<identity>(a+)+)$`` against a 40-character name that
does not match takes longer than the age of the universe. Two bounds make a user's
pattern safe to run over every file name of a dataset:

1. :func:`compile_user_regex` refuses the patterns that backtrack exponentially, a
   repeat holding another unbounded repeat (``(a+)+``, ``(a*)*b``, ``(\\w+\\s?)*``) or
   alternatives that can match the same text (``(a|ab)*``), with a message saying how
   to write it instead (a repeat whose every pass must match a literal, as the default
   ``(?:_\\d+)+``, is linear and allowed);
2. :func:`bounded_matches` runs the matches under a deadline (a ``SIGALRM`` timer: CPython's
   ``re`` checks signals while it matches), for what the first check cannot see
   (``.*.*.*.*x`` is polynomial, yet slow on long names); the budget is
   ``MFRKIT_REGEX_SECONDS`` (default 2 s) plus 1 ms per name.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Iterator

try:  # Python 3.11+
    import re._constants as _sre_constants
    import re._parser as _sre_parse
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as _sre_constants  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

from .deadline import deadline
from .errors import MfrkitError

__all__ = ["UnsafeRegexError", "bounded_matches", "compile_user_regex"]

_REPEATS = {_sre_constants.MAX_REPEAT, _sre_constants.MIN_REPEAT, getattr(_sre_constants, "POSSESSIVE_REPEAT", None)} - {None}
_MAXREPEAT = _sre_constants.MAXREPEAT
#: A repeat bounded this tightly ({0,8}) cannot blow up, whatever it holds.
_SMALL_REPEAT = 8


class UnsafeRegexError(MfrkitError):
    """A user's regular expression is invalid, could backtrack for ever, or ran too long."""


def _subpatterns(av) -> Iterator:
    """The parsed sub-patterns inside one node's argument (groups, branches, repeats)."""
    if isinstance(av, _sre_parse.SubPattern):
        yield av
    elif isinstance(av, (list, tuple)):
        for x in av:
            yield from _subpatterns(x)


def _unbounded(op, av) -> bool:
    return op in _REPEATS and (av[1] == _MAXREPEAT or av[1] > _SMALL_REPEAT)


def _anchored(body) -> bool:
    """Whether every pass of a repeat over ``body`` must match a literal character outside
    its inner repeats (``_\\d+`` must match ``_``): then passes cannot split one run of
    characters in many ways, and the repeat stays linear."""
    for op, av in body:
        if op is _sre_constants.LITERAL:
            return True
        if op is _sre_constants.SUBPATTERN and _anchored(av[-1]):
            return True
    return False


def _first_literals(branch) -> set | None:
    """The literal a branch alternative starts with, or None when it does not start with one."""
    for op, av in branch:
        if op is _sre_constants.LITERAL:
            return {av}
        if op is _sre_constants.SUBPATTERN:
            return _first_literals(av[-1])
        return None
    return None


def _risky(pattern, inside_repeat: bool) -> str | None:
    """Why ``pattern`` (a parsed sub-pattern) can backtrack exponentially, or None: an
    unbounded repeat inside an unbounded repeat whose passes are not anchored by a
    literal, or alternatives inside one that do not start with distinct literals."""
    for op, av in pattern:
        if op in _REPEATS:
            body = av[2]
            unbounded = _unbounded(op, av)
            if inside_repeat and unbounded:
                return "a repeated group holds another repeat (as in (a+)+)"
            # A pass anchored by a literal starts afresh: what it holds is not "inside" the outer repeat.
            why = _risky(body, (inside_repeat or unbounded) and not _anchored(body))
            if why:
                return why
        elif op is _sre_constants.BRANCH:
            firsts = [_first_literals(b) for b in av[1]]
            distinct = all(f is not None for f in firsts) and len(set().union(*firsts)) == len(firsts)
            if inside_repeat and not distinct:
                return "a repeated group holds alternatives that can match the same text (as in (a|ab)*)"
            for branch in av[1]:
                why = _risky(branch, inside_repeat)
                if why:
                    return why
        else:
            for sub in _subpatterns(av):
                why = _risky(sub, inside_repeat)
                if why:
                    return why
    return None


def compile_user_regex(text: str, *, what: str, groups: Iterable[str] = ()) -> re.Pattern:
    """``text`` compiled, after checking that it is valid, holds the named ``groups`` and
    cannot backtrack exponentially (see the module docstring).

    Raises
    ------
    UnsafeRegexError
        One line naming ``what`` (``identity_regex``) and the reason.
    """
    if len(text) > 1000:
        raise UnsafeRegexError(f"{what} is {len(text)} characters long; give at most 1000")
    try:
        pattern = re.compile(text)
        parsed = _sre_parse.parse(text)
    except (re.error, RecursionError, OverflowError) as exc:
        raise UnsafeRegexError(f"invalid {what} {text!r}: {exc}") from None
    why = _risky(parsed, False)
    if why:
        raise UnsafeRegexError(f"{what} {text!r} could take for ever on a name it does not match: {why}; write it "
                               "without a repeat inside a repeat (e.g. (a+)+ as a+, (\\w+_?)* as [\\w_]*)")
    missing = [g for g in groups if g not in pattern.groupindex]
    if missing:
        raise UnsafeRegexError(f"{what} needs the named group(s) {', '.join(f'(?P<{g}>...)' for g in missing)}")
    return pattern


def _budget(n: int) -> float:
    raw = os.environ.get("MFRKIT_REGEX_SECONDS", "").strip()
    try:
        base = float(raw) if raw else 2.0
    except ValueError:
        base = -1.0
    if not base > 0:
        raise MfrkitError(f"MFRKIT_REGEX_SECONDS={raw!r} is not a positive number of seconds")
    return base + 1e-3 * n


def _deadline(seconds: float, message: str):
    # off the main thread the static check alone bounds the match
    return deadline(seconds, lambda: UnsafeRegexError(message))


def bounded_matches(pattern: re.Pattern, names: list[str], *, what: str) -> list[re.Match | None]:
    """``pattern.match(name)`` for every name, within the time budget of the module
    docstring; :class:`UnsafeRegexError` when it runs out (the pattern is too slow)."""
    seconds = _budget(len(names))
    message = (f"{what} {pattern.pattern!r} took over {seconds:.3g} s on {len(names)} name(s): it backtracks too much; "
               "simplify it (fewer .* in a row), or raise MFRKIT_REGEX_SECONDS")
    with _deadline(seconds, message):
        return [pattern.match(n) for n in names]
