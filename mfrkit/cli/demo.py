"""``mfrkit demo`` and ``mfrkit doctor``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import app, console
from .common import Workers, counts_text, print_results


@app.command()
def demo(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where to build the demo (default $MFRKIT_HOME/demo).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the capture perturbations, masks and protocols.")] = 0,
    full: Annotated[bool, typer.Option("--full/--sample-only", help="Run the whole pipeline, or stop after the sample's landmarks.")] = True,
    train: Annotated[bool, typer.Option("--train/--no-train", help="Train the four small families (most of the demo's time), or bench dlib's ResNet alone: a fast smoke run.")] = True,
    workers: Workers = 1,
) -> None:
    """Build a sample from real photos that ship with the dependencies and run the whole pipeline on it:
    landmarks, masks, protocols, dlib's ResNet as ONNX, the four families trained small on synthetic identities,
    benchmark, leaderboard."""
    from ..demo import run_demo
    from ..jobs import ExecutorSpec

    result = run_demo(out, seed=seed, executor=ExecutorSpec(workers=workers), full=full, train=train, progress=True, log=lambda m: console.print(m, highlight=False))
    table = result.manifest.table
    console.print(f"sample: {len(table)} images of {table['identity'].nunique()} identities in {result.out / 'sample'} (registered as dataset 'demo')")
    for s in result.landmarks:
        console.print(f"landmarks ({s.backend}): {counts_text(s.counts)} -> {s.path}")
    if result.synth is not None:
        console.print(f"masked copy: {result.synth.outputs} images in {result.synth.out} (dataset 'demo-masked')")
        console.print(f"protocols: {', '.join(str(p) for p in result.protocols.values())}")
        fam = result.families
        if fam is not None:
            console.print(f"families: {', '.join(t.name for t in fam.trained)} trained on {fam.config.n_identities} synthetic identities "
                          f"in {sum(t.seconds for t in fam.trained):.0f} s -> {fam.models}", highlight=False)
        print_results(result.bench.results)
        console.print("(two identities: a smoke test of the pipeline, not a benchmark)")
        if fam is not None:
            console.print(f"(synthetic-* protocols and the four families: {fam.note})")
        for line in demo_pointers(result):
            console.print(line, highlight=False, soft_wrap=True)


def demo_pointers(result) -> list[str]:
    """The demo's last three lines: where its leaderboard, report and contact sheet are,
    and the commands to try next."""
    run = result.bench.folder
    report = run / "report.html"
    report_text = f"report: {report}" if report.exists() else f"report: not written (make it with `mfrkit report {run} -o report.html`)"
    return [
        f"leaderboard: {run / 'leaderboard.md'} (all runs: mfrkit leaderboard {run.parent})",
        f"{report_text}; contact sheet: {result.synth.out / 'contact_sheet.png'}",
        f"next: mfrkit bench --model {result.model} --protocol demo/mr-mp   |   mfrkit synth --src demo --mask kn95 --color white",
    ]


@app.command()
def doctor() -> None:
    """Check the install: versions, onnxruntime providers, GPU, landmark backends."""
    from ..doctor import run_checks

    failed = False
    for check in run_checks():
        mark = {True: "[green]  ok[/]", False: "[red]FAIL[/]", None: "    "}[check.ok]
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False)
        failed |= check.ok is False
    if failed:
        raise typer.Exit(1)
