"""Progress bars for long jobs (rich), switched off cleanly for tests and pipes."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextlib.contextmanager
def progress_bar(
    total: int, description: str, *, enabled: bool = True, completed: int = 0
) -> Iterator[Callable[..., None]]:
    """Context manager yielding ``advance(n=1, status=None)``; shows a bar on stderr when ``enabled``.

    ``completed`` is where a resumed job starts; ``status``, when given, replaces the
    text shown after the bar (e.g. the current loss).
    """
    if not enabled:
        yield lambda n=1, status=None: None
        return
    from .names import terminal_text

    # markup off and control characters shown: a description holds user-given names
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}", markup=False),
    )
    description = terminal_text(description, newlines=False)
    from rich.console import Console

    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total, completed=completed, status="")

        def advance(n: int = 1, status: str | None = None) -> None:
            if status is None:
                bar.advance(task, n)
            else:
                bar.update(task, advance=n, status=status)

        yield advance
