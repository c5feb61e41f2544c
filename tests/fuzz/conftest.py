"""The hostile-user fuzz suite: one case per defect two hostile sessions found (data
loss, silently wrong, hang, unbounded memory, traceback, escape, name collision), each
asserting a one-line error (or the right result) and that nothing outside the job's own
files changed. Small and deterministic: tiny models and datasets, seeded, no timings."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each case runs in its own ``tmp_path`` (its ``$MFRKIT_HOME`` is tests/conftest.py's)."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(monkeypatch, capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` through :func:`mfrkit.cli.main`, the
    one error boundary (what a user's shell sees)."""
    from mfrkit import cli as cli_module

    def invoke(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["mfrkit", *map(str, args)])
        code = 0
        try:
            cli_module.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
