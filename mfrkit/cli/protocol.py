"""``mfrkit protocol ...``: make, import, export, show and validate protocols."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..protocols.options import MakeConfig, RegisterOptions
from .app import console, err_console, plain, protocol_app, styled
from .common import ManifestOpt, ProbeOpt, print_table
from .declare import with_config


#: Above this many comparisons, exporting an all-pairs protocol needs --force.
_EXPORT_LIMIT = 100_000_000


def _folder(value: str) -> Path:
    from ..protocols.registry import protocol_folder

    return protocol_folder(value)


ProtocolArg = Annotated[Path, typer.Argument(parser=_folder, metavar="PROTOCOL", help="Protocol folder, or a registered protocol's name (or the last part of one).")]


@protocol_app.command("list")
def protocol_list() -> None:
    """List protocol specs, pair-list formats and registered protocols."""
    from ..protocols import FORMATS, describe_specs

    for name, text in describe_specs():
        console.print(f"{styled('bold', f'{name:17}')} {plain(text)}", markup=True, highlight=False)
    console.print("\nformats: " + ", ".join(f"{n} ({'read' if FORMATS.get(n).reader or FORMATS.get(n).embeds_images else ''}"
                                            f"{'/write' if FORMATS.get(n).writer else ''})" for n in FORMATS.names()),
                  highlight=False)
    from ..protocols.registry import list_protocols

    entries = list_protocols()
    if not entries:
        console.print("\nno protocols registered (protocol make / import register what they write)")
        return
    console.print("\nregistered protocols:")
    for e in entries:
        status = e.status()
        mark = "" if status == "ok" else " " + styled("yellow", f"({'folder removed' if status == 'missing' else 'changed since registered'})")
        console.print(f"{styled('bold', f'{e.name:24}')} {plain(f'{e.kind or chr(45):14} {e.spec or chr(45):18} {e.folder}')}{mark}",
                      markup=True, highlight=False)


@protocol_app.command("remove")
def protocol_remove(name: Annotated[str, typer.Argument(help="A registered protocol name.")]) -> None:
    """Forget a registered protocol (its folder is not touched)."""
    from ..protocols.registry import remove_protocol

    entry = remove_protocol(name)
    console.print(f"removed {entry.name} (its folder {entry.folder} is untouched)", highlight=False)


@protocol_app.command("make")
@with_config(RegisterOptions, into="registration")
@with_config(MakeConfig)
def protocol_make(
    out: Annotated[Path, typer.Argument(help="Protocol folder to write (sub-folders for a partial grid).")],
    config: MakeConfig,
    registration: RegisterOptions,
    manifest: ManifestOpt = None,
    probe_manifest: ProbeOpt = None,
) -> None:
    """Generate a protocol (1:1 or 1:N) from manifests, or derive one from an existing 1:1 protocol."""
    from ..protocols.workflow import make_protocol_folder

    if manifest is None and config.derive_from is None:
        raise typer.BadParameter("give the manifest to draw from (--manifest)")
    if config.identification and config.all_pairs:
        raise typer.BadParameter("--identification and --all-pairs exclude each other")
    if config.all_pairs_options.max_per_identity is not None and not config.all_pairs:
        raise typer.BadParameter("--max-per-identity goes with --all-pairs")
    written = make_protocol_folder(out, manifest, probe_manifest, spec=config.spec, spec_params=config.spec_params.as_dict(),
                                   kind=config.kind, derive_from=config.derive_from, people=config.people,
                                   overwrite=registration.force, name=registration.name, register=registration.target(),
                                   **config.kind_options())  # fmt: skip
    for folder, protocol in written:
        registered = f"; registered as {protocol.registered_as}" if protocol.registered_as else ""
        what = protocol.spec or protocol.kind
        console.print(f"wrote {folder}: {what}, {_counts_text(protocol)}{registered}", highlight=False)


def _counts_text(protocol) -> str:
    from ..protocols.kinds import protocol_kind

    return protocol_kind(protocol.kind).counts_text(protocol)


@protocol_app.command("import")
@with_config(RegisterOptions, into="registration")
def protocol_import(
    file: Annotated[Path, typer.Argument(help="Pair-list file (LFW pairs.txt, CALFW, MLFW, MFR2, pairs_label.txt, CSV) or insightface .bin.")],
    out: Annotated[Path, typer.Argument(help="Protocol folder to write.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="lfw, mfr2, calfw, cplfw, mlfw, pairs-label, csv or insightface-bin.")] = "",
    manifest: ManifestOpt = None,
    probe_manifest: ProbeOpt = None,
    ext: Annotated[Optional[str], typer.Option(help="lfw/mfr2: image extension (default .jpg / .png).")] = None,
    folds: Annotated[Optional[int], typer.Option(help="Formats without folds: number of contiguous folds (default 10).")] = None,
    images: Annotated[Optional[Path], typer.Option(help="insightface-bin: dataset folder to unpack the images into; default: none, "
                                                        "the images are read in place from the .bin.")] = None,
    variant: Annotated[str, typer.Option(help="insightface-bin: variant of the images (unmasked, masked, partial).")] = "unmasked",
    strict: Annotated[bool, typer.Option(help="Fail when a reference matches no image (default: keep it and report).")] = False,
    allow_missing: Annotated[bool, typer.Option(help="Import even when most references match no image of the manifests (default: refuse, the file is probably not of these images).")] = False,
    registration: RegisterOptions = RegisterOptions(),
) -> None:
    """Import a public pair list as a protocol folder."""
    from ..protocols.workflow import import_protocol_folder

    fmt = fmt or ("insightface-bin" if file.suffix.lower() == ".bin" else "csv" if file.suffix.lower() == ".csv" else "")
    if not fmt:
        raise typer.BadParameter("give the file's format (--format); see `mfrkit protocol list`")
    protocol, report = import_protocol_folder(file, out, fmt, manifest, probe_manifest, images_to=images,
                                              variant=variant, overwrite=registration.force, name=registration.name, strict=strict,
                                              allow_missing=allow_missing, ext=ext, n_folds=folds, register=registration.target())
    counts = protocol.info["counts"]
    text = report.summary() if report else f"{counts['pairs']} pairs ({counts['genuine']} genuine) in {len(counts['folds'])} fold(s)"
    registered = f"; registered as {protocol.registered_as}" if protocol.registered_as else ""
    console.print(f"wrote {out}: {text}{registered}", highlight=False)
    if report and not report.ok:
        err_console.print(f"{styled('yellow', 'warning:')} {plain(report.warning())}", markup=True, highlight=False)


@protocol_app.command("import-ijb")
@with_config(RegisterOptions, into="registration")
def protocol_import_ijb(
    root: Annotated[Path, typer.Argument(help="insightface's IJB release: the set folder holding meta/ and loose_crop/ (or its parent).")],
    set_name: Annotated[str, typer.Option("--set", help="ijbc or ijbb.")] = "ijbc",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Protocol folder to write (default $MFRKIT_HOME/ijb/<set>).")] = None,
    allow_missing: Annotated[bool, typer.Option(help="Write the protocol even when most listed faces are not in loose_crop/ (they count as failures to acquire).")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Processes hashing the face crops.")] = 1,
    registration: RegisterOptions = RegisterOptions(),
) -> None:
    """Import IJB-B / IJB-C (insightface's release) as a template protocol: 1:1 template pairs and 1:N galleries S1/S2."""
    from ..protocols.workflow import import_ijb_folder

    result, registered = import_ijb_folder(root, out, set_name=set_name, name=registration.name, register=registration.target(),
                                           allow_missing=allow_missing, overwrite=registration.force, workers=workers, progress=True)
    note = f"; registered as {registered}" if registered else ""
    console.print(f"wrote {result.folder}: {result.summary()}{note}", highlight=False)
    missing = result.info["counts"]["faces"] - result.info["counts"]["faces_found"]
    if missing:
        err_console.print(f"[yellow]warning:[/] {missing:,} listed face(s) are not usable images in loose_crop/; "
                          "they are failures to acquire (see `mfrkit protocol validate`)", highlight=False)


@protocol_app.command("export")
def protocol_export(
    protocol: ProtocolArg,
    file: Annotated[Path, typer.Argument(help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="lfw, csv, pairs-label, mlfw, calfw, mfr2 or insightface-bin.")] = "csv",
    root: Annotated[Optional[Path], typer.Option(help="Write paths relative to this folder (default: the folder holding both datasets).")] = None,
    manifest: ManifestOpt = None,
    probe_manifest: ProbeOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing FILE; all-pairs: write the CSV even above 100 million comparisons.")] = False,
) -> None:
    """Export a 1:1 protocol as a public pair list (an all-pairs protocol: every comparison, as csv)."""
    from ..protocols import export_protocol, load_protocol
    from ..protocols.all_pairs import export_size
    from ..protocols.kinds import protocol_kind

    manifests = {k: v for k, v in (("reference", manifest), ("probe", probe_manifest or manifest)) if v is not None}
    loaded = load_protocol(protocol, manifests or None)
    if protocol_kind(loaded.kind).cross_product and fmt == "csv":
        rows, size = export_size(loaded)
        err_console.print(f"{styled('yellow', 'warning:')} {plain(loaded.name)} is an all-pairs protocol: the CSV gets one row per "
                          f"comparison, {rows:,} rows, about {size / 1e9:.3g} GB", markup=True, highlight=False)
        if rows > _EXPORT_LIMIT and not force:
            raise typer.BadParameter(f"{rows:,} rows is more than {_EXPORT_LIMIT:,}; pass --force to write them anyway")
    path, used_root = export_protocol(loaded, file, fmt, root=root, replace=force)
    console.print(f"wrote {path} (paths relative to {used_root})", highlight=False)


#: Rows of each table ``protocol show`` prints without --full.
_SHOWN_ROWS = 12


@protocol_app.command("show")
def protocol_show(
    protocol: ProtocolArg,
    manifest: ManifestOpt = None,
    probe_manifest: ProbeOpt = None,
    full: Annotated[bool, typer.Option("--full", help=f"Every row of every table (default: the {_SHOWN_ROWS} largest rows of a longer table).")] = False,
) -> None:
    """Counts per fold, genuine/impostor, per variant and mask type (a summary; --full for every row)."""
    from ..protocols import load_protocol, summarize

    manifests = {k: v for k, v in (("reference", manifest), ("probe", probe_manifest or manifest)) if v is not None}
    p = load_protocol(protocol, manifests or None)
    params = ", ".join(f"{k}={v}" for k, v in sorted((p.info.get("spec_params") or {}).items()))
    rest = (f"{p.kind}, spec {p.spec or '-'}{f' ({params})' if params else ''}, "
            f"seed {p.seed if p.seed is not None else '-'}, sha256 {p.sha256[:12]}")
    console.print(f"{styled('bold', p.name)}: {plain(rest)}", markup=True, highlight=False)
    for title, table in summarize(p).items():
        shown = table if full else _largest_rows(table, _SHOWN_ROWS)
        print_table(title, shown)
        if len(shown) < len(table):
            console.print(f"({len(table) - len(shown)} smaller rows of {title} left out; --full shows all {len(table)})", highlight=False)


def _largest_rows(table, n: int):
    """The ``n`` rows of ``table`` with the largest counts (the sum of its integer
    columns), in the table's order; the whole table when it is short."""
    if len(table) <= n:
        return table
    counts = table.select_dtypes("integer").sum(axis=1)
    return table.loc[counts.sort_values(ascending=False, kind="stable").index[:n]].sort_index()


@protocol_app.command("validate")
def protocol_validate(
    protocol: ProtocolArg,
    manifest: ManifestOpt = None,
    probe_manifest: ProbeOpt = None,
    files: Annotated[bool, typer.Option("--files/--no-files", help="Check that every image file exists.")] = True,
) -> None:
    """Check ids, files, folds, identity-disjointness, duplicates and leakage; exit 1 on errors."""
    from ..protocols import validate_protocol
    from ..protocols.kinds import protocol_kind

    manifests = {k: v for k, v in (("reference", manifest), ("probe", probe_manifest or manifest)) if v is not None}
    report = validate_protocol(protocol, manifests or None, check_files=files)
    for problem in report.problems:
        colour = "red" if problem.severity == "error" else "yellow"
        err_console.print(f"{styled(colour, problem.severity)} {plain(f'{problem.kind}: {problem.message}')}", markup=True, highlight=False)
    text = protocol_kind(report.kind).failures_text(report)
    console.print(f"{report.name}: {'ok' if report.ok else 'INVALID'}; {text}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)
