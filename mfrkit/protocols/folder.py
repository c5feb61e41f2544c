"""The protocol folder: what every protocol is on disk, and the one loader for it.

Layout (format version 1)::

    <folder>/
      protocol.json     metadata, written last
      pairs.csv         1:1 (kind "verification")
      gallery.csv       1:N (kind "identification")
      probes.csv        1:N
      reference_images.csv, probe_images.csv
                        1:1 all-pairs (kind "all-pairs", see :mod:`.all_pairs`): no
                        pair list, every reference image x every probe image

``pairs.csv``, header ``fold,left_id,right_id,label``, one row per comparison:

* ``fold``: int, 0-based fold index (LFW's set 1 is fold 0). Folds are
  identity-disjoint in generated protocols (imported ones are reported, not changed).
* ``left_id``: an ``image_id`` of the **reference** manifest;
  ``right_id``: an ``image_id`` of the **probe** manifest. An empty id means the
  image could not be supplied (derived with ``allow_missing``): score it as a failure.
* ``label``: 1 genuine (same identity), 0 impostor.

Row order is meaningful and kept: within a fold, generated protocols list genuine
pairs first, then impostors (LFW's order).

``gallery.csv``, header ``image_id,identity,distractor``: ``image_id`` of the
**reference** manifest; ``distractor`` is 1 when no probe of this protocol has that
identity. ``probes.csv``, header ``image_id,identity,mated,mate_id``: ``image_id`` of
the **probe** manifest; ``mated`` is 1 when the probe's identity is in the gallery;
``mate_id`` is empty, except in ``megaface`` mode, where each row is one search of
the probe against the gallery's distractors plus this single mate (a probe image can
then appear in several rows, one per mate).

``reference_images.csv`` and ``probe_images.csv``, header ``image_id,identity,unit``
(kind ``all-pairs``): the images of each side, ``image_id`` of the **reference** /
**probe** manifest, ``unit`` the source photo it belongs to. The comparisons are every
reference x every probe image but the excluded ones (same image, same source photo);
see :mod:`.all_pairs`.

``protocol.json`` (keys sorted, 2-space indent, UTF-8, trailing newline)::

    {
      "format": "mfrkit-protocol", "version": 1, "mfrkit_version": "0.1.0",
      "name": "lfw-umr-mp", "kind": "verification" | "identification" | "all-pairs",
      "spec": "umr-mp" | null, "spec_params": {...}, "seed": 0 | null,
      "params": {...generation options...},
      "manifests": {
        "reference": {"name": "lfw", "path": "../lfw/manifest.parquet",
                      "fingerprint": "<sha256>", "rows": 13233},
        "probe":     {"name": "lfw-masked", "path": "...", "fingerprint": "...", "rows": ...}
      },
      "files": {"pairs.csv": {"rows": 6000, "sha256": "<sha256 of the file's bytes>"}},
      "counts": {...},
      "source": {...}          (imported: format, file name, sha256 of the file)
      "derived_from": {...}    (derived: name and sha256 of the parent protocol)
    }

``manifests.*.path`` is POSIX, relative to the protocol folder when possible.
``fingerprint`` is :func:`mfrkit.data.manifest.manifest_fingerprint`: it covers the
columns that say which images a manifest holds, so adding landmark or quality
columns does not invalidate a protocol, while adding, removing, relabelling or
changing an image does. Both roles may name the same manifest.

Writing is deterministic (the same protocol gives the same bytes) and each file is
written atomically; ``protocol.json`` goes last and records the sha256 of every data
file, so a folder interrupted mid-write, or edited by hand, is detected on load.
The sha256 of ``protocol.json``'s bytes therefore identifies the whole protocol
(:attr:`Protocol.sha256`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Union

import pandas as pd

from .. import __version__
from ..atomic import atomic_write_bytes
from ..data.manifest import Manifest, read_manifest
from ..data.manifest_stream import is_manifest
from ..data.scan import modified_images
from ..errors import MfrkitError
from ..jobs.output import OutputFolder
from ..userfiles import read_user_bytes
from .errors import ProtocolError, StaleManifestError
from .kinds import PROTOCOL_KINDS, kind_names, protocol_kind
from .spec import ROLES

FORMAT = "mfrkit-protocol"
VERSION = 1
INFO_NAME = "protocol.json"

#: File name -> columns, in order.
TABLES = {
    "pairs.csv": ("fold", "left_id", "right_id", "label"),
    "gallery.csv": ("image_id", "identity", "distractor"),
    "probes.csv": ("image_id", "identity", "mated", "mate_id"),
    "reference_images.csv": ("image_id", "identity", "unit"),
    "probe_images.csv": ("image_id", "identity", "unit"),
}
_INT_COLUMNS = {"fold", "label", "distractor", "mated"}
#: Largest value an integer column may hold (a fold number beyond it is an edit gone wrong).
_MAX_INT = 2**31 - 1
#: Which manifest each id column refers to.
ROLE_OF_COLUMN = {
    ("pairs.csv", "left_id"): "reference",
    ("pairs.csv", "right_id"): "probe",
    ("gallery.csv", "image_id"): "reference",
    ("probes.csv", "image_id"): "probe",
    ("probes.csv", "mate_id"): "reference",
    ("reference_images.csv", "image_id"): "reference",
    ("probe_images.csv", "image_id"): "probe",
}

ManifestArg = Union[None, Manifest, str, os.PathLike, Mapping[str, Union[Manifest, str, os.PathLike]]]


@dataclass
class Protocol:
    """A protocol in memory: its metadata, tables and the manifests its ids refer to.

    Attributes
    ----------
    info : dict
        The content of ``protocol.json`` (name, kind, spec, spec_params, seed, params,
        ...; ``manifests``, ``files`` and ``counts`` are filled in when saved).
    manifests : dict role -> Manifest
        ``reference`` and ``probe``.
    pairs : DataFrame or None
        1:1: columns ``fold`` (int), ``left_id``, ``right_id`` (str), ``label`` (int 0/1).
    gallery, probes : DataFrame or None
        1:N: see the module docstring.
    reference_images, probe_images : DataFrame or None
        All-pairs: ``image_id``, ``identity``, ``unit`` of each side (see :mod:`.all_pairs`).
    ijb : IjbTables or None
        IJB templates (kind ``ijb-templates``, see :mod:`.ijb`): faces, templates, pairs.
    folder : Path or None
        Where it was loaded from or saved to.
    sha256 : str or None
        sha256 of ``protocol.json``'s bytes, once saved or loaded.
    registered_as : str or None
        Its name in the protocol registry (:mod:`.registry`), when it was registered.
    """

    info: dict
    manifests: dict[str, Manifest]
    pairs: pd.DataFrame | None = None
    gallery: pd.DataFrame | None = None
    probes: pd.DataFrame | None = None
    reference_images: pd.DataFrame | None = None
    probe_images: pd.DataFrame | None = None
    ijb: object | None = None
    folder: Path | None = None
    sha256: str | None = None
    registered_as: str | None = None
    _images: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return str(self.info.get("name", ""))

    @property
    def kind(self) -> str:
        return str(self.info["kind"])

    @property
    def spec(self) -> str | None:
        return self.info.get("spec")

    @property
    def seed(self) -> int | None:
        return self.info.get("seed")

    def manifest(self, role: str) -> Manifest:
        if role not in self.manifests:
            raise ProtocolError(f"protocol {self.name!r} has no {role} manifest")
        return self.manifests[role]

    def images(self, role: str) -> pd.DataFrame:
        """The ``role`` manifest's table indexed by ``image_id`` (cached)."""
        if role not in self._images:
            table = self.manifest(role).table
            self._images[role] = table.set_index(table["image_id"].astype(str), drop=False)
        return self._images[role]

    def abspath(self, role: str, image_id: str) -> Path:
        """Absolute path of ``image_id`` in the ``role`` manifest; ProtocolError if unknown."""
        images = self.images(role)
        if image_id not in images.index:
            raise ProtocolError(f"image {image_id!r} is not in the {role} manifest")
        return self.manifest(role).abspath(str(images.at[image_id, "path"]))

    def tables(self) -> dict[str, pd.DataFrame]:
        """File name -> table, for the files of this protocol's kind."""
        names = protocol_kind(self.kind).tables
        out = {"pairs.csv": self.pairs, "gallery.csv": self.gallery, "probes.csv": self.probes,
               "reference_images.csv": self.reference_images, "probe_images.csv": self.probe_images}
        missing = [n for n in names if out[n] is None]
        if missing:
            raise ProtocolError(f"{self.kind} protocol {self.name!r} lacks {', '.join(missing)}")
        return {n: out[n] for n in names}


# --- tables ----------------------------------------------------------------------------------------


def normalize_table(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """Coerce ``table`` to the columns and types of file ``name``; raises ProtocolError."""
    columns = TABLES[name]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ProtocolError(f"{name} lacks column(s) {', '.join(missing)}")
    out = pd.DataFrame(index=range(len(table)))
    for col in columns:
        values = table[col].reset_index(drop=True)
        if col in _INT_COLUMNS:
            try:
                ints = pd.to_numeric(values, errors="raise")
            except (TypeError, ValueError) as exc:
                raise ProtocolError(f"{name}: column {col} must hold integers ({exc})") from None
            if ints.isna().any() or (ints != ints.round()).any():
                raise ProtocolError(f"{name}: column {col} must hold integers")
            if len(ints) and (ints.abs() > _MAX_INT).any():
                raise ProtocolError(f"{name}: column {col} holds {ints[ints.abs() > _MAX_INT].iloc[0]!r:.30}, out of "
                                    f"range (folds are small non-negative integers, labels 0 or 1)")
            ints = ints.astype("int64")
            if col != "fold" and not ints.isin([0, 1]).all():
                raise ProtocolError(f"{name}: column {col} must be 0 or 1")
            if col == "fold" and (ints < 0).any():
                raise ProtocolError(f"{name}: folds must be >= 0")
            out[col] = ints
        else:
            out[col] = values.astype(object).where(values.notna(), "").map(str)
    return out


def table_bytes(name: str, table: pd.DataFrame) -> bytes:
    """The exact bytes of a protocol CSV: header, ``\\n`` line ends, minimal quoting."""
    table = normalize_table(name, table)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(TABLES[name])
    writer.writerows(table.itertuples(index=False, name=None))
    return buf.getvalue().encode("utf-8")


def read_table(path: Path, name: str, data: bytes | None = None) -> pd.DataFrame:
    """Read a protocol CSV written by :func:`table_bytes` (``data``: its bytes, when read
    already); raises ProtocolError, or UserFileError for a file that is not a bounded
    regular file."""
    if data is None:
        data = read_user_bytes(path, "protocol-table")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"cannot read {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0][: len(TABLES[name])]) != TABLES[name]:
        raise ProtocolError(f"{path}: header must be {','.join(TABLES[name])}")
    header = rows[0]
    bad = [i + 2 for i, r in enumerate(rows[1:]) if len(r) != len(header)]
    if bad:
        raise ProtocolError(f"{path}: line {bad[0]} has a wrong number of fields")
    df = pd.DataFrame(rows[1:], columns=header, dtype=object)
    try:
        return normalize_table(name, df)
    except ProtocolError as exc:
        raise ProtocolError(f"{path}: {exc}") from None


# --- writing ---------------------------------------------------------------------------------------


def _manifest_entry(m: Manifest, folder: Path) -> dict:
    path = None
    if m.path is not None:
        target = Path(m.path).resolve()
        try:
            path = Path(os.path.relpath(target, folder.resolve())).as_posix()
        except ValueError:  # another drive on Windows
            path = target.as_posix()
    return {"name": m.name, "path": path, "fingerprint": m.fingerprint(), "rows": int(len(m))}


def info_bytes(info: dict) -> bytes:
    return (json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def check_protocol_folder(folder: Path, overwrite: bool) -> None:
    """Refuse to write a protocol into ``folder`` unless it is new, empty, or a protocol
    folder (``protocol.json``) and ``overwrite``: a user's folder is never written into."""
    if folder.exists() and not folder.is_dir():
        raise ProtocolError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / INFO_NAME).exists():
            raise ProtocolError(f"{folder} is not empty and holds no {INFO_NAME}; choose an empty or new folder")
        if not overwrite:
            raise ProtocolError(f"a protocol already exists in {folder}; replace it with --force (overwrite=True from Python)")


def save_protocol(protocol: Protocol, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``protocol`` as a protocol folder (see the module docstring).

    Parameters
    ----------
    protocol : Protocol
    folder : path-like
        Created if needed. A non-empty folder that is not a protocol folder is refused.
    overwrite : bool
        Replace an existing protocol folder.

    Returns
    -------
    Path of the folder. ``protocol.folder`` and ``protocol.sha256`` are updated.
    """
    folder = Path(folder)
    check_protocol_folder(folder, overwrite)
    if protocol.kind not in PROTOCOL_KINDS:
        raise ProtocolError(f"protocol kind must be one of {kind_names()}, got {protocol.kind!r}")
    for role in ROLES:
        protocol.manifest(role)

    data = {name: table_bytes(name, table) for name, table in protocol.tables().items()}
    info = dict(protocol.info)
    info.update(format=FORMAT, version=VERSION, mfrkit_version=__version__)
    info["manifests"] = {role: _manifest_entry(protocol.manifests[role], folder) for role in ROLES}
    info["files"] = {name: {"sha256": hashlib.sha256(b).hexdigest(), "rows": b.count(b"\n") - 1}
                     for name, b in data.items()}
    info["counts"] = count_summary(protocol)
    blob = info_bytes(info)
    # Claimed and locked like every output folder: a second `protocol make` into the same
    # folder at the same time is refused ("in use by PID ..."), and one that finds a
    # protocol made meanwhile replaces it only with --force (checked above without the lock).
    claim = OutputFolder(folder, kind=OUTPUT_KIND, fingerprint=hashlib.sha256(blob).hexdigest(), adopt=_legacy_protocol)
    with claim.claim(replace=_protocol_files if overwrite else None):
        for name, b in data.items():
            claim.write_bytes(name, b)
        claim.write_bytes(INFO_NAME, blob)
        for name in TABLES:
            if name not in data:
                claim.path_for(name, create=False).unlink(missing_ok=True)
        claim.finished()
    protocol.info, protocol.folder = info, folder
    protocol.sha256 = hashlib.sha256(blob).hexdigest()
    return folder


#: The output kind of a protocol folder (its marker, see :mod:`mfrkit.jobs.output`).
OUTPUT_KIND = "protocol"


def _protocol_files(root: Path) -> list[str]:
    """The files a protocol folder's writer wrote (removed by a replacing ``--force``)."""
    return [INFO_NAME, *TABLES]


def _legacy_protocol(root: Path) -> str | None:
    """A protocol folder written before output markers existed: its ``protocol.json``."""
    try:
        return hashlib.sha256(read_user_bytes(root / INFO_NAME, "json")).hexdigest()
    except (OSError, MfrkitError):
        return None


def count_summary(protocol: Protocol) -> dict:
    """Small counts stored in ``protocol.json`` (the full breakdown is ``summarize``), by
    the protocol's kind (:meth:`~.kinds.ProtocolKind.count_summary`)."""
    return protocol_kind(protocol.kind).count_summary(protocol)


# --- reading ---------------------------------------------------------------------------------------


def read_info(folder: str | os.PathLike) -> dict:
    """``protocol.json`` of ``folder``, checked for format and version."""
    folder = Path(folder)
    path = folder / INFO_NAME
    if not path.is_file():
        raise ProtocolError(f"{folder} is not a protocol folder (no {INFO_NAME})")
    try:
        info = json.loads(read_user_bytes(path, "json").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"cannot read {path}: {exc}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ProtocolError(f"{path} is not an mfrkit protocol (format is not {FORMAT!r})")
    if info.get("version") != VERSION:
        raise ProtocolError(f"{path} has protocol format version {info.get('version')!r}; "
                            f"this mfrkit reads version {VERSION}")
    if not isinstance(info.get("kind"), str) or info["kind"] not in PROTOCOL_KINDS:
        raise ProtocolError(f"{path}: kind must be one of {kind_names()}")
    return info


def protocol_sha256(folder: str | os.PathLike) -> str:
    """sha256 of ``protocol.json``'s bytes: identifies the protocol (it pins the data files)."""
    return hashlib.sha256(read_user_bytes(Path(folder) / INFO_NAME, "json")).hexdigest()


def open_manifest(value: Manifest | str | os.PathLike) -> Manifest:
    """A manifest from a Manifest, a manifest file, a folder holding ``manifest.parquet``,
    a registered dataset name or a dataset folder (see
    :func:`mfrkit.data.registry.resolve_source`).

    Protocols need which images a manifest holds, not how each was made: the record
    columns (synth's per-image parameters) stay on disk."""
    if is_manifest(value):
        return value
    from ..data.registry import resolve_source

    return resolve_source(value, records=False)


def _read_without_records(path: Path) -> Manifest:
    return read_manifest(path, records=False)


def _manifest_args(manifests: ManifestArg) -> dict[str, Manifest | str | os.PathLike]:
    if manifests is None:
        return {}
    if isinstance(manifests, Mapping):
        unknown = sorted(set(manifests) - set(ROLES))
        if unknown:
            raise ProtocolError(f"unknown manifest role(s) {unknown}; roles are {ROLES}")
        return {r: v for r, v in manifests.items() if v is not None}
    return {role: manifests for role in ROLES}


def resolve_manifests(info: dict, folder: Path, manifests: ManifestArg = None, *,
                      check: bool = True) -> tuple[dict[str, Manifest], list[str]]:
    """The manifests of a protocol, from ``manifests`` or the paths in ``info``.

    Returns (role -> Manifest, list of stale-manifest messages). With ``check`` a stale
    manifest raises :class:`StaleManifestError` instead of being listed.
    """
    given = _manifest_args(manifests)
    recorded = info.get("manifests") or {}
    cache: dict[str, Manifest] = {}
    out: dict[str, Manifest] = {}
    stale: list[str] = []
    for role in ROLES:
        entry = recorded.get(role)
        if not isinstance(entry, dict):
            raise ProtocolError(f"{folder / INFO_NAME} does not name a {role} manifest")
        value = given.get(role)
        # A recorded path must be a manifest file; a given value may also be a dataset name or folder.
        opener = open_manifest
        if value is None:
            if not entry.get("path"):
                raise ProtocolError(f"protocol {info.get('name')!r} records no path for its {role} manifest; "
                                    "pass the manifest explicitly")
            value, opener = (folder / entry["path"]).resolve(), _read_without_records
        if is_manifest(value):
            m = value
        else:
            key = str(value)
            if key not in cache:
                try:
                    cache[key] = opener(value)
                except MfrkitError as exc:
                    raise ProtocolError(f"the {role} manifest of protocol {info.get('name')!r}: {exc}") from None
            m = cache[key]
        fp = m.fingerprint()
        if fp != entry.get("fingerprint"):
            where = m.path if m.path is not None else "the manifest given"
            msg = (f"protocol {info.get('name')!r} ({folder}) was made from a {role} manifest with fingerprint "
                   f"{str(entry.get('fingerprint'))[:12]}, but {where} now has {fp[:12]}: images were added, removed, "
                   "relabelled or changed since. Use the manifest the protocol was made from, "
                   "or make / import the protocol again.")
            if check:
                raise StaleManifestError(msg)
            stale.append(msg)
        elif role == "reference" or m is not out.get("reference"):
            changed = modified_images(m)  # same manifest, but its photos replaced on disk since the scan
            if changed:
                msg = (f"{len(changed)} image(s) of the {role} manifest of protocol {info.get('name')!r} changed on disk "
                       f"since they were scanned (e.g. {changed[0]}): they would be scored under their old hashes. "
                       f"Scan the dataset again (mfrkit datasets scan NAME), then make or import the protocol again.")
                if check:
                    raise StaleManifestError(msg)
                stale.append(msg)
        out[role] = m
    return out, stale


def load_protocol(folder: str | os.PathLike, manifests: ManifestArg = None, *,
                  check_manifests: bool = True) -> Protocol:
    """Load a protocol folder and the manifests it draws from.

    Parameters
    ----------
    folder : path-like
        A folder written by :func:`save_protocol`.
    manifests : None, Manifest, path, or dict role -> Manifest or path
        Where the manifests are. ``None`` uses the paths recorded in ``protocol.json``
        (relative to the folder); a single manifest or path serves both roles; a dict
        may give ``reference`` and/or ``probe`` (the other role falls back to its
        recorded path).
    check_manifests : bool
        Refuse (:class:`StaleManifestError`) a manifest whose fingerprint differs from
        the recorded one. Only :func:`~mfrkit.protocols.validate.validate_protocol`
        turns this off, to report instead.

    Returns
    -------
    Protocol

    Raises
    ------
    ProtocolError
        Not a protocol folder, a data file modified since ``protocol.json`` was
        written, or a manifest cannot be read.
    StaleManifestError
        A manifest no longer holds the images the protocol was made from.
    """
    folder = Path(folder)
    info = read_info(folder)
    tables: dict[str, pd.DataFrame] = {}
    for name in protocol_kind(info["kind"]).tables:
        path = folder / name
        if not path.is_file():
            raise ProtocolError(f"protocol folder {folder} lacks {name}")
        recorded = (info.get("files") or {}).get(name, {}).get("sha256")
        data = read_user_bytes(path, "protocol-table")
        actual = hashlib.sha256(data).hexdigest()
        if recorded != actual:
            raise ProtocolError(f"{path} changed after {INFO_NAME} was written (sha256 mismatch): the folder was "
                                "edited or a write was interrupted. Make, import or derive the protocol again.")
        tables[name] = read_table(path, name, data)
    ijb = protocol_kind(info["kind"]).load_tables(folder, info)
    resolved, _ = resolve_manifests(info, folder, manifests, check=check_manifests)
    return Protocol(info=info, manifests=resolved, pairs=tables.get("pairs.csv"), gallery=tables.get("gallery.csv"),
                    probes=tables.get("probes.csv"), reference_images=tables.get("reference_images.csv"),
                    probe_images=tables.get("probe_images.csv"), ijb=ijb, folder=folder, sha256=protocol_sha256(folder))
