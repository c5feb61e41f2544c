"""Assertions the fuzz cases (and any test of a command's errors) share: one-line errors
and "nothing else changed" digests of a folder tree."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


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
