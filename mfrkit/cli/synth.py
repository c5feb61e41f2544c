"""``mfrkit synth`` and ``mfrkit partial``: masked and partial-face copies of a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import app, console
from .common import Workers, counts_text


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


@app.command()
def synth(
    src: Annotated[str, typer.Option("--src", help="Registered dataset name, manifest, or dataset folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (a rerun with the same options resumes).")],
    mask: Annotated[str, typer.Option("--mask", help="Mask type (surgical, n95, kn95, cloth, gas), a comma list, random, or all (one output per type).")] = "random",
    color: Annotated[str, typer.Option("--color", help="Colour names or #rrggbb, comma list, or random (each type's palette).")] = "random",
    texture: Annotated[str, typer.Option("--texture", help="plain, nonwoven, weave, stripes, dots, floral, camo, plaid, rubber; comma list or random.")] = "random",
    coverage: Annotated[str, typer.Option("--coverage", help="proper, nose_exposed, chin; comma list or random.")] = "random",
    renderer: Annotated[str, typer.Option("--renderer", help="mesh (3D face mesh, follows pose) or template (68-point warp).")] = "mesh",
    landmarks: Annotated[Optional[str], typer.Option("--landmarks", help="Landmark backend: mediapipe (default), dlib or file (template renderer only).")] = None,
    landmark_file: Annotated[Optional[Path], typer.Option(help="For --landmarks file: the landmark file.")] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same images, whatever --workers.")] = 0,
    aligned: Annotated[bool, typer.Option("--aligned", help="Inputs are ArcFace 112x112 crops: use the mean face, detect nothing.")] = False,
    mix: Annotated[bool, typer.Option("--mix", help="Also keep every source image unmasked (a mixed training set).")] = False,
    on_no_face: Annotated[str, typer.Option("--on-no-face", help="skip (record it) or copy (also copy the image unmasked).")] = "skip",
    image_format: Annotated[Optional[str], typer.Option("--format", help="Output format (jpg, png); default: each source's.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N usable images (for a try).")] = None,
    workers: Workers = 1,
) -> None:
    """Put synthetic masks on a face dataset: masked images, manifest, data card, failures, contact sheet."""
    from ..maskgen.synth_job import SynthConfig, synthesize

    config = SynthConfig(types=mask, colors=color, textures=texture, coverage=coverage, renderer=renderer, seed=seed, landmarks=landmarks,
                         landmark_file=str(landmark_file) if landmark_file else None, aligned=aligned, mix=mix, on_no_face=on_no_face, image_format=image_format, limit=limit)
    _job_report(synthesize(src, out, config, workers=workers, progress=True))


@app.command()
def partial(
    src: Annotated[str, typer.Option("--src", help="Registered dataset name, manifest, or dataset folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (a rerun with the same options resumes).")],
    regions: Annotated[str, typer.Option("--regions", help="leye, reye, nose, mouth (image left/right), comma list, or all.")] = "leye,reye,nose,mouth",
    factors: Annotated[str, typer.Option("--factors", help="start:stop:step (stop included) or a comma list.")] = "0.10:0.50:0.05",
    centered: Annotated[bool, typer.Option("--centered", help="Move each patch to the image centre (PartialLFW's centered variant).")] = False,
    both: Annotated[bool, typer.Option("--both", help="Write both the in-place and the centered variant.")] = False,
    template: Annotated[str, typer.Option("--template", help="partiallfw (160x160, exactly PartialLFW) or arcface112.")] = "partiallfw",
    landmarks: Annotated[Optional[str], typer.Option("--landmarks", help="Landmark backend: mediapipe (default), dlib or file.")] = None,
    landmark_file: Annotated[Optional[Path], typer.Option(help="For --landmarks file: the landmark file.")] = None,
    aligned: Annotated[bool, typer.Option("--aligned", help="Inputs are ArcFace 112x112 crops: use the template points, detect nothing.")] = False,
    on_no_face: Annotated[str, typer.Option("--on-no-face", help="skip (record it) or copy (PartialLFW's fallback: crop the resized image).")] = "skip",
    limit: Annotated[Optional[int], typer.Option(help="Only the first N usable images (for a try).")] = None,
    workers: Workers = 1,
) -> None:
    """Make partial-face crops (PartialLFW): eye, nose or mouth patches on a grey field."""
    from ..maskgen.partial_job import PartialConfig, make_partial

    placement = "both" if both else ("centered" if centered else "original")
    config = PartialConfig(regions=regions, factors=factors, placement=placement, template=template, landmarks=landmarks,
                           landmark_file=str(landmark_file) if landmark_file else None, aligned=aligned,
                           on_no_face=on_no_face, limit=limit)
    _job_report(make_partial(src, out, config, workers=workers, progress=True))
