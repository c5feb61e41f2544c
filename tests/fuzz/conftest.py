"""The hostile-user fuzz suite: one case per defect two hostile sessions found (data
loss, silently wrong, hang, unbounded memory, traceback, escape, name collision), each
asserting a one-line error (or the right result) and that nothing outside the job's own
files changed. Small and deterministic: tiny models and datasets, seeded, no timings."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

# the bench tests' tiny ONNX models, datasets and protocol folders
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MFRKIT_HOME", str(tmp_path / "mfrkit-home"))
    monkeypatch.delenv("MFRKIT_CACHE", raising=False)
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


def one_line_error(code: int, err: str, *needles: str) -> str:
    """Assert exit 1 and one ``error:`` line on stderr (no traceback) holding ``needles``."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert code == 1, err
    assert "Traceback" not in err and len(errors) == 1, err
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def tree_digest(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file (and the target of every link) under ``root``, by relative
    path; paths under ``skip`` (the job's own files) left out."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if rel.startswith(skip):
                continue
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
