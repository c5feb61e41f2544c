"""``mfrkit datasets ...``, ``mfrkit landmarks`` and ``mfrkit card``: datasets on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..jobs import ExecutorSpec
from .app import app, console, datasets_app, plain, styled
from .common import counts_text, key_values
from .declare import with_config


@datasets_app.command("add")
def datasets_add(
    name: Annotated[str, typer.Argument(help="Short name, e.g. casia, lfw.")],
    path: Annotated[Path, typer.Argument(help="The dataset folder.")],
    layout: Annotated[str, typer.Option(help="imagefolder, lfw, mfr2, rmfd, flat, insightface-rec (train.rec + train.idx) or auto.")] = "auto",
    replace: Annotated[bool, typer.Option(help="Re-point an existing name.")] = False,
    option: Annotated[Optional[list[str]], typer.Option("--option", help="Layout option KEY=VALUE (e.g. labels=mfr2_labels.txt).")] = None,
    follow_links: Annotated[bool, typer.Option("--follow-links", help="Follow folder links that lead out of the dataset folder (by default they are skipped and counted: a link to / would catalogue the whole file system).")] = False,
) -> None:
    """Register a dataset folder under a short name (nothing is copied or scanned)."""
    from ..data.registry import add_dataset

    options = {**key_values(option), **({"follow_links": True} if follow_links else {})}
    entry = add_dataset(name, path, layout=layout, replace=replace, **options)
    if entry.manifest_path == Path(entry.root) / "manifest.parquet":
        console.print(f"registered {entry.name} -> {entry.root} (made by mfrkit: its own manifest is used, nothing to scan)")
    else:
        console.print(f"registered {entry.name} -> {entry.root} (layout {entry.layout}); next: mfrkit datasets scan {entry.name}")



@datasets_app.command("list")
def datasets_list() -> None:
    """List registered datasets."""
    from ..data.registry import list_datasets, mfrkit_home

    entries = list_datasets()
    if not entries:
        console.print(f"no datasets registered in {mfrkit_home()}; add one with: mfrkit datasets add NAME PATH")
    for e in entries:
        scanned = "scanned" if e.manifest_path.exists() else "not scanned"
        console.print(f"{e.name:<16} {e.layout:<12} {scanned:<12} {e.root}", highlight=False)


@datasets_app.command("remove")
def datasets_remove(name: str) -> None:
    """Forget a registered dataset (its files are not touched)."""
    from ..data.registry import remove_dataset

    console.print(f"removed {remove_dataset(name).name}")


@datasets_app.command("export")
def datasets_export(
    src: Annotated[str, typer.Argument(help="Registered dataset name, manifest, or dataset folder.")],
    out: Annotated[Path, typer.Argument(help="The CSV file to write (an existing one only with --force).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write a dataset's manifest as CSV (one row per image; dataset metadata is not kept)."""
    from ..data.registry import export_source

    out, rows = export_source(src, out, force=force)
    console.print(f"wrote {out} ({rows} rows)")


@datasets_app.command("scan")
@with_config(ExecutorSpec, into="executor")
def datasets_scan(
    name: Annotated[str, typer.Argument(help="A registered name.")],
    executor: ExecutorSpec,
    verify: Annotated[Optional[bool], typer.Option("--verify/--no-verify", help="Decode every image fully (catches truncated files); "
                                                   "default yes for a folder of files, no for RecordIO (framing, header and SHA-256 of every record).")] = None,
) -> None:
    """Scan a registered dataset into its manifest (hashes, sizes, failures)."""
    from ..data.registry import scan_registered

    manifest, report = scan_registered(name, verify=verify, progress=True, executor=executor)
    console.print(f"{name}: {report.n_images} images ({report.ok} ok), {report.identities} identities, layout {report.layout} -> {manifest.path}")
    if report.failures:
        console.print(f"failures: {counts_text(report.failures)}")
    for w in report.warnings:
        console.print(f"{styled('yellow', 'warning:')} {plain(w)}", markup=True)


@app.command()
@with_config(ExecutorSpec, into="executor")
def landmarks(
    src: Annotated[str, typer.Argument(help="Registered dataset name, manifest, or dataset folder.")],
    executor: ExecutorSpec,
    backend: Annotated[str, typer.Option(help="mediapipe, dlib or file.")] = "mediapipe",
    landmark_file: Annotated[Optional[Path], typer.Option(help="For --backend file: the landmark file.")] = None,
) -> None:
    """Detect (or look up) landmarks for every image and cache them beside the manifest."""
    from ..data.registry import open_source
    from ..landmarks import BACKENDS
    from ..landmarks.lookup import detect_landmarks

    BACKENDS.get(backend)  # an unknown name fails before the dataset is read
    manifest = open_source(src, workers=executor.local_workers, progress=True)
    options = {"path": str(landmark_file)} if landmark_file else {}
    s = detect_landmarks(manifest, backend, executor=executor, progress=True, backend_options=options,
                          require_any=True)
    console.print(f"{backend}: {counts_text(s.counts)} ({s.detected} new, {s.reused} cached) -> {s.path}")


@app.command()
def card(
    src: Annotated[str, typer.Argument(help="Registered dataset, manifest, dataset folder, or a known public dataset's name.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the card here (a .md file, or a folder for DATA_CARD.md) instead of printing it.")] = None,
    known: Annotated[bool, typer.Option("--known", help="The built-in card of the known public dataset SRC names, even when a dataset of that name is registered.")] = False,
    force: Annotated[bool, typer.Option("--force", help="--out: replace an existing file.")] = False,
) -> None:
    """Print or write a data card: generated from a manifest, or the built-in card of a known public dataset."""
    from ..data_cards import card_for_source, write_card_for_source

    if out is None:
        console.print(card_for_source(src, known=known), markup=False, highlight=False)
        return
    console.print(f"wrote {write_card_for_source(src, out, known=known, force=force)}")
