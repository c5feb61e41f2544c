"""The dataset registry: short names for face datasets on disk.

Stored as JSON in ``$MFRKIT_HOME/datasets.json`` (default ``~/.mfrkit``); each
registered dataset's manifest lives in ``$MFRKIT_HOME/datasets/<name>/`` so the
user's dataset folder is never written to. A command given ``--src X`` calls
:func:`resolve_source`, which accepts a registered name, a manifest file, a folder
holding ``manifest.parquet`` (what mfrkit writes), or any dataset folder.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING


from ..errors import DatasetError, ManifestError, require_made
from ..user_registry import UserRegistry
from .imageio import is_image_file
from .layouts import check_layout_options, detect_layout
from .manifest import MANIFEST_NAME, STATUS_OK, Manifest, read_manifest, write_manifest
from .manifest_stream import ManifestReader, open_manifest
from .recordio import is_recordio_folder
from .scan import ScanChanges, ScanReport, scan_to_file, update_scan_file

if TYPE_CHECKING:
    from ..jobs import ExecutorSpec


def mfrkit_home() -> Path:
    """``$MFRKIT_HOME`` or ``~/.mfrkit``."""
    return Path(os.environ.get("MFRKIT_HOME") or Path.home() / ".mfrkit").expanduser()


def known_dataset(name: str) -> str | None:
    """The canonical name of a known public dataset (aliases resolved), or None.

    Known datasets are the ones with a built-in data card (:mod:`mfrkit.data.known_datasets`).
    """
    from .known_datasets import resolve_known_name

    return resolve_known_name(name)


def known_layout(name: str) -> str:
    """The mfrkit layout that reads the known public dataset ``name``."""
    from .known_datasets import known_card_info

    return known_card_info(name)["layout"]


@dataclass
class DatasetEntry:
    """A registered dataset."""

    name: str
    root: str
    layout: str = "auto"
    options: dict = field(default_factory=dict)
    added: str = ""

    @property
    def manifest_path(self) -> Path:
        """The manifest of a folder mfrkit made (it holds its own), else one under ``$MFRKIT_HOME``."""
        own = Path(self.root) / MANIFEST_NAME
        return own if own.is_file() else dataset_home(self.name) / MANIFEST_NAME


def dataset_home(name: str) -> Path:
    """``$MFRKIT_HOME/datasets/<name>``: what mfrkit keeps for a registered dataset (its
    scan, landmarks). ``name`` is checked first, so the folder is always inside."""
    return mfrkit_home() / "datasets" / DATASETS.check(name)


def _entry_from_json(name: str, entry: object) -> DatasetEntry:
    """One entry of ``datasets.json``, every field checked: a hand-edited file never
    reaches a path or a traceback."""
    if not isinstance(entry, dict):
        raise DatasetError(f"entry {name!r} must be a JSON object, got {type(entry).__name__}")
    unknown = sorted(set(entry) - {"name", "root", "layout", "options", "added"})
    if unknown:
        raise DatasetError(f"entry {name!r} has unknown field(s) {', '.join(unknown)}")
    for key in ("name", "root", "layout", "added"):
        if key in entry and not isinstance(entry[key], str):
            raise DatasetError(f"entry {name!r}: {key} must be a string, got {type(entry[key]).__name__}")
    if entry.get("name", name) != name:
        raise DatasetError(f"entry {name!r} is named {entry['name']!r} inside")
    if not entry.get("root"):
        raise DatasetError(f"entry {name!r} has no root folder")
    options = entry.get("options", {})
    if not isinstance(options, dict):
        raise DatasetError(f"entry {name!r}: options must be a JSON object, got {type(options).__name__}")
    return DatasetEntry(name=name, root=entry["root"], layout=entry.get("layout", "auto"), options=dict(options),
                        added=entry.get("added", ""))  # fmt: skip


#: ``$MFRKIT_HOME/datasets.json``: name -> entry.
DATASETS: UserRegistry[DatasetEntry] = UserRegistry(
    "dataset", DatasetError, lambda: mfrkit_home() / "datasets.json", _entry_from_json, asdict,
)  # fmt: skip


def add_dataset(name: str, root: str | os.PathLike, *, layout: str = "auto", replace: bool = False, **options) -> DatasetEntry:
    """Register the dataset folder ``root`` under ``name``.

    ``layout`` ``auto`` becomes the known dataset's layout when ``name`` is a known
    public dataset (unless the folder holds insightface's ``train.rec`` + ``train.idx``:
    ``insightface-rec``), else it is guessed from the folder. Nothing is scanned yet.
    """
    DATASETS.check(name)
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise DatasetError(f"{root_path} is not a folder")
    if options and (root_path / MANIFEST_NAME).is_file():
        # Its manifest is the data (resolve_source): the options would be silently ignored.
        raise DatasetError(f"{root_path} was made by mfrkit and carries its own manifest; layout options "
                           f"({', '.join(sorted(options))}) do not apply to it: register it without --option")
    if layout == "auto":
        known = known_dataset(name)
        # insightface's RecordIO form of a known set (faces_webface_112x112 for casia) is read as such
        layout = known_layout(known) if known and not is_recordio_folder(root_path) else detect_layout(root_path)
    check_layout_options(layout, options)  # also refuses an unknown layout, listing the valid ones
    old = DATASETS.get(name)
    if old is not None and not replace and Path(old.root) != root_path:
        raise DatasetError(f"dataset {name!r} is already registered at {old.root}; re-point it with --replace (replace=True from Python)")
    entry = DatasetEntry(name, str(root_path), layout, dict(options), _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    _forget_other_scans(entry)
    return DATASETS.put(name, entry)


def _forget_other_scans(entry: DatasetEntry) -> None:
    """Delete what ``$MFRKIT_HOME`` holds for ``entry.name`` that describes another
    folder (a name removed and added again, or re-pointed with ``replace``), or the
    same folder read with another layout; mfrkit would otherwise serve it as this one."""
    folder = dataset_home(entry.name)
    scanned = folder / MANIFEST_NAME
    if not scanned.exists():
        return
    if folder.resolve() == Path(entry.root).resolve():
        return  # the dataset itself lives there (a folder mfrkit made, e.g. synth without --out): its own manifest, not a scan

    try:
        with ManifestReader(scanned) as found:
            meta = found.meta
    except ManifestError:
        meta = {}
    if meta.get("root") != entry.root:
        shutil.rmtree(folder)  # its landmarks are of other images too
    elif meta.get("layout") != entry.layout or (meta.get("layout_options") or {}) != entry.options:
        scanned.unlink()  # same images, other identities: scan again, keep their landmarks


def list_datasets() -> list[DatasetEntry]:
    """Registered datasets, sorted by name."""
    return list(DATASETS.all().values())


def remove_dataset(name: str) -> DatasetEntry:
    """Forget a registered dataset (its files are not touched)."""
    entry = DATASETS.remove(name)
    if entry is None:  # not "register it with ...": there is nothing to forget
        raise DatasetError(f"no dataset is registered as {name!r} (registered: {', '.join(DATASETS.all()) or 'none'})")
    return entry


def _missing(name: str):
    known = known_dataset(name)
    how = f"register it with: mfrkit datasets add {name} /path/to/{name} --layout {known_layout(known) if known else 'auto'}"
    if known:
        raise DatasetError(
            f"dataset {name!r} is not registered. mfrkit never downloads datasets: {how}. "
            f"How to obtain {known}: see its data card (mfrkit card --known {known})."
        )
    registered = ", ".join(e.name for e in list_datasets()) or "none"
    raise DatasetError(f"{name!r} is neither a registered dataset nor a folder or manifest on disk; {how} (registered: {registered})")


def is_registered(name: str) -> bool:
    """True when ``name`` is a registered dataset."""
    return DATASETS.get(name) is not None


def get_dataset(name: str) -> DatasetEntry:
    """The registered dataset ``name``; a clear error on how to register it otherwise."""
    return DATASETS.get(name) or _missing(name)


def scan_registered(name: str, *, verify: bool | None = None, progress: bool = False,
                    executor: ExecutorSpec | None = None) -> tuple[ManifestReader, ScanReport]:
    """Scan a registered dataset and write its manifest under ``$MFRKIT_HOME`` (on
    ``executor``, default in this process), streamed: the manifest comes back as a
    :class:`~mfrkit.data.manifest_stream.ManifestReader` of the file."""
    from ..jobs import ExecutorSpec

    executor = executor or ExecutorSpec()
    entry = get_dataset(name)
    if (Path(entry.root) / MANIFEST_NAME).is_file():
        raise DatasetError(f"{entry.root} was made by mfrkit and carries its own manifest; there is nothing to scan")
    report = scan_to_file(entry.root, entry.manifest_path, layout=entry.layout, name=name, verify=verify, progress=progress,
                          executor=executor, **entry.options)
    manifest = ManifestReader(entry.manifest_path)
    ok = total = 0
    for batch in manifest.batches(["status"]):
        ok, total = ok + int((batch["status"] == STATUS_OK).sum()), total + len(batch)
    require_made(ok, f"{name}: no readable image among {total}", dict(report.failures), where=f"each image's status is in {entry.manifest_path}")
    return manifest, report


def _cache_manifest_path(root: Path) -> Path:
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return mfrkit_home() / "cache" / f"{root.name}-{digest}" / MANIFEST_NAME


def current_scan(path: Path, *, workers: int = 1, progress: bool = False) -> tuple[ManifestReader, ScanChanges]:
    """The scan at ``path`` (a manifest mfrkit wrote under ``$MFRKIT_HOME``), brought up
    to date with its folder by :func:`~mfrkit.data.scan.update_scan_file` and written
    back when anything changed: a stat per file, reading only new, resized or re-timed
    files, a row group at a time."""
    from ..jobs import ExecutorSpec

    return update_scan_file(path, progress=progress, executor=ExecutorSpec(workers=max(1, workers)))


def _bin_manifest(path: Path) -> Manifest:
    """The manifest of an insightface verification ``.bin`` (its images read in place),
    cached under ``$MFRKIT_HOME/cache`` and made again when the file's stamp changes."""
    from .scan import file_stamp
    from .verification_bin import scan_bin

    cached = _cache_manifest_path(path)
    if cached.exists():
        try:
            manifest = read_manifest(cached)
            if (manifest.meta.get("verification_bin") or {}).get("stamp") == list(file_stamp(path) or ()):
                return manifest
        except ManifestError:
            pass  # rebuilt below
    manifest = scan_bin(path)
    write_manifest(manifest, cached)
    return manifest


def export_source(src: str | os.PathLike, out: str | os.PathLike, *, force: bool = False) -> tuple[Path, int]:
    """``mfrkit datasets export``: the manifest behind ``src`` (:func:`resolve_source`) as
    CSV at ``out``; an existing ``out`` only with ``force`` (checked before the scan).
    Returns (path, rows). The cells are the manifest's exact values (the CSV is read back
    as a manifest), not neutralised for spreadsheets."""
    from ..atomic import check_new_file
    from .manifest import export_csv

    check_new_file(out, force=force, what="CSV file")
    manifest = resolve_source(src, progress=True)
    return export_csv(manifest, out, replace=force), len(manifest)


def resolve_source(src: str | os.PathLike, *, workers: int = 1, progress: bool = False, layout: str = "auto", records: bool = True) -> Manifest:
    """The manifest behind a ``--src`` value, read whole (see :func:`open_source`, which
    gives the same manifest to stream, and where the values ``src`` may take are listed)."""
    found = open_source(src, workers=workers, progress=progress, layout=layout, records=records)
    return found if isinstance(found, Manifest) else found.load()


def open_source(src: str | os.PathLike, *, workers: int = 1, progress: bool = False, layout: str = "auto",
                records: bool = True) -> ManifestReader | Manifest:
    """The manifest behind a ``--src`` value, scanning once when needed, to stream
    (a :class:`~mfrkit.data.manifest_stream.ManifestReader`; a CSV manifest is read whole).

    Accepted, in this order: a registered dataset name; an insightface verification
    ``.bin`` (its images read in place: :func:`~mfrkit.data.verification_bin.scan_bin`);
    a manifest file (``.parquet`` or ``.csv``); a folder holding ``manifest.parquet``; a registered dataset's root
    folder; any other dataset folder (scanned with ``layout`` and cached under
    ``$MFRKIT_HOME/cache``).

    A scan kept under ``$MFRKIT_HOME`` (a registered dataset's, or the cache of a
    folder) is checked against its folder every time (a stat per file) and updated
    where files were added, removed, resized or re-timed (:func:`current_scan`), so a
    photo replaced after the scan is never used with its old hash and landmarks.

    ``records=False`` leaves a made dataset's record columns (synth's per-image
    parameters) on disk: see :func:`~mfrkit.data.manifest.read_manifest`.
    """
    src_str = str(src)
    entries = DATASETS.all()
    if src_str in entries:
        entry = entries[src_str]
        if entry.manifest_path == Path(entry.root) / MANIFEST_NAME:
            return ManifestReader(entry.manifest_path, records=records)  # a folder mfrkit made: its manifest is the data
        if entry.manifest_path.exists():
            try:
                return current_scan(entry.manifest_path, workers=workers, progress=progress)[0]
            except ManifestError as exc:
                raise DatasetError(f"the scan of {entry.name!r} cannot be used ({exc}); scan it again: "
                                   f"mfrkit datasets scan {entry.name}") from None
        from ..jobs import ExecutorSpec

        return scan_registered(src_str, progress=progress, executor=ExecutorSpec(workers=workers))[0]
    path = Path(src_str).expanduser()
    if path.is_file() and path.suffix.lower() == ".bin":
        return _bin_manifest(path.resolve())
    if path.is_file():
        if path.suffix.lower() not in (".parquet", ".csv"):
            what = "an image" if is_image_file(path) else "not a manifest (.parquet or .csv)"
            raise DatasetError(f"{path} is {what}; give a registered dataset name, a manifest, or the dataset's folder")
        return open_manifest(path, records=records)
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            return ManifestReader(path / MANIFEST_NAME, records=records)
        root = path.resolve()
        for entry in entries.values():
            if Path(entry.root) == root:
                return open_source(entry.name, workers=workers, progress=progress, records=records)
        cached = _cache_manifest_path(root)
        if cached.exists():
            try:
                with ManifestReader(cached) as manifest:
                    meta = manifest.meta
                if meta.get("root") == str(root) and meta.get("layout") == (layout if layout != "auto" else detect_layout(root)):
                    return current_scan(cached, workers=workers, progress=progress)[0]
            except ManifestError:
                pass  # a broken cache is rebuilt below
        from ..jobs import ExecutorSpec

        scan_to_file(root, cached, layout=layout, progress=progress, executor=ExecutorSpec(workers=max(1, workers)))
        return ManifestReader(cached)
    if not DATASETS.is_name(src_str):  # cannot be a dataset name: a path that is not there
        raise DatasetError(f"{path} does not exist (and is not a registered dataset name)")
    return _missing(src_str)
