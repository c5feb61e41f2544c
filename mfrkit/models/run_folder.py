"""The folder a training run writes (checkpoint, loss log), claimed like every output folder.

``models train --out X`` takes ``X`` with :class:`~mfrkit.jobs.OutputFolder`: a new or
empty folder, or one holding the same run (same family, family options, images and
identity classes: the run resumes there). A second ``train`` into a running folder gets
"in use by PID ..."; a folder holding another run or files mfrkit did not write (a
user's own ``losses.jsonl``) is refused before anything is written. A run folder made
before markers existed is recognised by its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import MfrkitError
from ..jobs import OutputFolder, read_marker
from ..jobs.output import OutputFolderError

#: The output kind of a training run's folder.
KIND = "train"


def run_fingerprint(family: str, config: dict, manifest_fingerprint: str, classes: Sequence[str]) -> str:
    """What a run resumes on (the checks of a resumed checkpoint): the family, its options,
    the manifest's images and the identity classes. Training settings (epochs, learning
    rate) may change between a run and its continuation, so they are not part of it."""
    text = json.dumps({"family": family, "config": config, "manifest": manifest_fingerprint, "classes": list(classes)},
                      sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _legacy_run(root: Path) -> str | None:
    """The fingerprint of a run folder an mfrkit without markers wrote (its checkpoint)."""
    from .checkpoint import load_checkpoint
    from .families import config_dict, make_config
    from .train import CHECKPOINT_NAME

    path = root / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path)
        config = config_dict(make_config(state["family"], **state["config"]))
        return run_fingerprint(state["family"], config, state.get("manifest_fingerprint", ""), state.get("classes", []))
    except (MfrkitError, KeyError, TypeError):
        return None


def resume_problems(state: Mapping[str, Any], family: str, config: dict, manifest_fingerprint: str, classes: Sequence[str]) -> list[str]:
    """How a checkpoint's run differs from the run asked for (empty: it resumes)."""
    from .families import config_dict, make_config

    problems = []
    if state["family"] != family:
        problems.append(f"family {state['family']!r} != {family!r}")
    elif config_dict(make_config(family, **state["config"])) != config:
        problems.append("family options differ")
    if state.get("manifest_fingerprint") != manifest_fingerprint:
        problems.append("the manifest's images differ")
    if list(state.get("classes", [])) != list(classes):
        problems.append("the identity classes differ")
    return problems


def different_run_error(out: Path, problems: list[str]) -> OutputFolderError:
    return OutputFolderError(f"the output folder {out} holds a checkpoint of a different run ({'; '.join(problems)}): "
                             "choose a new output folder to start over")


def check_run_folder(out: str | Path) -> None:
    """Refuse, before any data is read, a run folder no training run may claim (a link,
    a file, a user's folder, another job's output): see :meth:`OutputFolder.check`."""
    OutputFolder(Path(out), kind=KIND, fingerprint="", adopt=_legacy_run).check()


def claim_run_folder(out: str | Path, family: str, config: dict, manifest_fingerprint: str, classes: Sequence[str]) -> OutputFolder:
    """``out`` claimed and locked for a training run of ``family`` with ``config`` on the
    images of ``manifest_fingerprint`` (see the module docstring).

    Raises
    ------
    OutputFolderError
        ``out`` is a file or a link, holds files mfrkit did not write, or another run
        (the message then says how that run differs).
    FolderInUseError
        Another training run is writing it now.
    """
    from .checkpoint import load_checkpoint
    from .train import CHECKPOINT_NAME

    out = Path(out)
    fingerprint = run_fingerprint(family, config, manifest_fingerprint, classes)
    try:
        return OutputFolder(out, kind=KIND, fingerprint=fingerprint, adopt=_legacy_run).claim()
    except OutputFolderError:
        marker = read_marker(out)
        if marker is None or marker.kind != KIND or not (out / CHECKPOINT_NAME).is_file():
            raise
        try:
            problems = resume_problems(load_checkpoint(out / CHECKPOINT_NAME), family, config, manifest_fingerprint, classes)
        except (MfrkitError, KeyError, TypeError):
            raise OutputFolderError(f"the output folder {out} holds another run whose checkpoint cannot be read; "
                                    "choose a new output folder") from None
        if problems:
            raise different_run_error(out, problems) from None
        raise
