"""``mfrkit synth`` and ``mfrkit partial``: masked and partial-face copies of a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..jobs import ExecutorSpec
from ..maskgen.partial_job import PartialConfig
from ..maskgen.synth_job import SynthConfig
from .app import app, console
from .common import counts_text
from .declare import with_config


def _job_report(s) -> None:
    """Print a synth/partial job summary."""
    console.print(f"{s.kind}: {s.outputs} images in {s.out} in {s.elapsed:.1f} s ({s.processed} items run now, {s.resumed} found done)")
    if s.failures:
        console.print(f"no output for: {counts_text(s.failures)} -> {s.failures_file}")
    if s.quality:
        q = s.quality
        reasons = f" ({counts_text(q['failed_by_reason'])})" if q["failed_by_reason"] else ""
        console.print(f"coverage checks: {q['passed']}/{q['checked']} passed{reasons}")
    console.print(f"manifest {s.manifest}; card {s.card}; contact sheet {s.contact_sheet}")
    if getattr(s, "registered", None):
        console.print(f"registered as dataset {s.registered!r} (use --src {s.registered})")


@app.command()
@with_config(ExecutorSpec, into="executor")
@with_config(SynthConfig)
def synth(
    src: Annotated[str, typer.Option("--src", help="Registered dataset name, manifest, or dataset folder.")],
    config: SynthConfig,
    executor: ExecutorSpec,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (a rerun with the same options resumes); default "
                                                                   "$MFRKIT_HOME/datasets/<source>-<mask>, registered under that name.")] = None,
) -> None:
    """Put synthetic masks on a face dataset: masked images, manifest, data card, failures, contact sheet."""
    from ..maskgen.synth_job import synthesize

    _job_report(synthesize(src, out, config, executor=executor, progress=True))


@app.command()
@with_config(ExecutorSpec, into="executor")
@with_config(PartialConfig)
def partial(
    src: Annotated[str, typer.Option("--src", help="Registered dataset name, manifest, or dataset folder.")],
    config: PartialConfig,
    executor: ExecutorSpec,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (a rerun with the same options resumes); default "
                                                                   "$MFRKIT_HOME/datasets/<source>-partial, registered under that name.")] = None,
) -> None:
    """Make partial-face crops (PartialLFW): eye, nose or mouth patches on a grey field."""
    from ..maskgen.partial_job import make_partial

    _job_report(make_partial(src, out, config, executor=executor, progress=True))
