"""Scanning a dataset folder into a manifest: layout records + file hashes + image checks."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ImageError, ManifestError
from .imageio import MAX_PIXELS, decode_image, image_size, read_file_bytes
from .layouts import STATUS_NO_IDENTITY, check_layout_options, detect_layout, read_layout
from .manifest import COLUMNS, STATUS_OK, Manifest, make_table
from .recordio_scan import LAYOUT as RECORDIO_LAYOUT
from .recordio_scan import scan_recordio, update_recordio_scan


@dataclass
class ScanReport:
    """What a scan found, for the user.

    Attributes
    ----------
    layout : str
    n_images : int
    failures : dict
        Count of images per failure status.
    warnings : list of str
    """

    layout: str
    n_images: int
    failures: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


#: Extra manifest columns a scan records for every file: its modification and status
#: change times (ns). With ``bytes`` they are the file's *stamp*: a stamp that differs
#: from the file's means it may have changed (see :func:`update_scan`).
STAMP_COLUMNS = ("mtime_ns", "ctime_ns")


def file_stamp(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """``(size, mtime_ns, ctime_ns)`` of a file (links followed), or None when it cannot be stat'ed.

    ``ctime`` is kept besides ``mtime`` because copying a photo in with its times
    preserved (``cp -p``, ``rsync -t``, ``touch -r``) sets ``mtime`` back but not ``ctime``.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def probe_image(path: str, verify: bool = True, max_pixels: int = MAX_PIXELS) -> dict:
    """Hash, size, stamp and status of one image file.

    The file is read once; its bytes are hashed and then decoded. With ``verify`` the
    image is fully decoded (catches truncated files); without it only the header is
    read. Never raises for a bad image: the failure is the ``status``.

    Returns
    -------
    dict with ``sha256`` (hex), ``bytes``, ``width`` and ``height`` (pixels, after the
    EXIF orientation; None when unknown), ``status``, and ``mtime_ns`` / ``ctime_ns``
    (taken before reading, so a file changed meanwhile looks changed next time).
    """
    info: dict = {"sha256": None, "bytes": None, "width": None, "height": None, "status": STATUS_OK,
                  "mtime_ns": None, "ctime_ns": None}
    stamp = file_stamp(path)
    if stamp is not None:
        info["mtime_ns"], info["ctime_ns"] = stamp[1], stamp[2]
    try:
        data = read_file_bytes(path)  # regular files only, size-capped: a FIFO or /dev/zero cannot hang a scan
    except ImageError as exc:
        info["status"] = exc.reason  # missing, unreadable (permission denied), not_a_file, too_large
        return info
    info["bytes"], info["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    try:
        if verify:
            h, w = decode_image(data, max_pixels=max_pixels).shape[:2]
        else:
            w, h = image_size(data, max_pixels=max_pixels)
        info["width"], info["height"] = int(w), int(h)
    except ImageError as exc:
        info["status"] = exc.reason
    return info


def _hash_many(paths: list[str]) -> list[str | None]:
    out: list[str | None] = []
    for p in paths:
        try:
            out.append(hashlib.sha256(read_file_bytes(p)).hexdigest())
        except ImageError:
            out.append(None)
    return out


def _run_chunks(fn, items: list, workers: int, description: str, progress: bool, *, chunk: int = 64, executor=None) -> list:
    """``fn`` over ``items`` in chunks on the job engine's executor (``executor``, else a
    local pool of ``workers`` processes), results in order."""
    from ..jobs import ExecutorSpec, map_chunks

    return map_chunks(fn, items, executor=executor or ExecutorSpec(workers=max(1, workers)), chunk_size=chunk, progress=progress, description=description)


def _row(rec: dict, probe: dict) -> dict:
    row = {"image_id": rec["path"], "variant": "unmasked", **rec, **probe}
    if rec.get("status") and probe["status"] == STATUS_OK:
        row["status"] = rec["status"]  # layout-level failure (no identity) wins over "ok"
    return row


def _table(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return make_table(pd.DataFrame(columns=["image_id", "path", "status"]))
    table = make_table(rows)
    for col in STAMP_COLUMNS:
        if col in table.columns:
            table[col] = table[col].astype("Int64")
    return table


def _report(table: pd.DataFrame, layout: str, warnings: list[str]) -> ScanReport:
    failures = table.loc[table["status"] != STATUS_OK, "status"].value_counts().to_dict()
    return ScanReport(layout=layout, n_images=len(table), failures={str(k): int(v) for k, v in failures.items()},
                      warnings=warnings)


def scan_dataset(
    root: str | os.PathLike,
    *,
    layout: str = "auto",
    name: str = "",
    workers: int = 1,
    verify: bool | None = None,
    progress: bool = False,
    executor=None,
    **layout_options,
) -> tuple[Manifest, ScanReport]:
    """Read a dataset folder into a manifest.

    Every image the layout finds becomes a row, including the ones that cannot be
    decoded (their ``status`` says why). ``image_id`` is the relative path. Each row
    also records the file's stamp (``bytes``, ``mtime_ns``, ``ctime_ns``), which
    :func:`update_scan` compares to find what changed since.

    Parameters
    ----------
    root : path-like
        The dataset folder.
    layout : str
        A name in :data:`mfrkit.data.layouts.LAYOUTS` or ``auto``.
    workers : int
        Processes used to hash and decode images.
    verify : bool or None
        Decode every image fully (slower, catches truncated files). None: yes for a
        folder of files, no for RecordIO (each record's framing, header and SHA-256 are
        read, its image header parsed; see :mod:`mfrkit.data.recordio_scan`).
    executor : ExecutorSpec, optional
        Where the images are read (``ray`` on a cluster); default a local pool of
        ``workers`` processes.

    Returns
    -------
    (Manifest, ScanReport); the manifest is not written (see :func:`write_manifest`).
    """
    root = Path(root).expanduser().resolve()
    if (layout if layout != "auto" else detect_layout(root)) == RECORDIO_LAYOUT:
        check_layout_options(RECORDIO_LAYOUT, layout_options)
        return scan_recordio(root, name=name, workers=workers, verify=bool(verify), progress=progress, executor=executor, **layout_options)
    verify = True if verify is None else verify
    found = read_layout(root, layout, **layout_options)
    paths = [str(root / r["path"]) for r in found.records]
    probes = _run_chunks(_probe_many_verified if verify else _probe_many_header, paths, workers,
                         f"scanning {name or root.name}", progress, executor=executor)
    table = _table([_row(rec, probe) for rec, probe in zip(found.records, probes)])
    meta = {
        "name": name or root.name,
        "root": str(root),
        "layout": found.layout,
        "layout_options": layout_options,
        "kind": "scanned",
        "verify": bool(verify),
    }
    return Manifest(table=table, meta=meta), _report(table, found.layout, found.warnings)


def _probe_many_verified(paths: list[str]) -> list[dict]:
    return [probe_image(p, True) for p in paths]


def _probe_many_header(paths: list[str]) -> list[dict]:
    return [probe_image(p, False) for p in paths]


# --- what changed since a scan ---------------------------------------------------------------------


@dataclass
class ScanChanges:
    """How a dataset folder differs from its scan.

    Attributes
    ----------
    added, removed, modified : list of str
        Relative paths: new images, images gone, images whose bytes changed (or that
        could not be read back).
    restamped : int
        Images whose stamp changed but whose bytes (sha256) did not (``touch``, a copy
        of the same file): only the stamp is updated.
    relabelled : int
        Images whose layout fields (identity, variant) changed, e.g. an edited labels file.
    """

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    restamped: int = 0
    relabelled: int = 0

    @property
    def changed(self) -> bool:
        """True when the manifest's content (which images, their bytes or labels) changes."""
        return bool(self.added or self.removed or self.modified or self.relabelled)

    def summary(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in (("added", self.added), ("removed", self.removed),
                                                ("modified", self.modified)) if v]
        if self.relabelled:
            parts.append(f"{self.relabelled} relabelled")
        return ", ".join(parts) or "unchanged"


def _plain(column: pd.Series) -> list:
    """A column as a list of Python values, missing ones as None."""
    return column.astype(object).where(column.notna(), None).tolist()


def _na(v) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def _same(a, b) -> bool:
    return (_na(a) and _na(b)) or (not _na(a) and not _na(b) and a == b)


#: Manifest columns a layout fills (the rest come from reading the file).
_LAYOUT_COLUMNS = ("identity", "variant", "mask_type")


def _layout_fields_differ(old: dict, rec: dict) -> bool:
    def norm(v):
        return None if _na(v) else v

    return any(norm(old.get(c)) != norm(rec.get(c, "unmasked" if c == "variant" else None)) for c in _LAYOUT_COLUMNS)


def modified_images(manifest: Manifest, *, workers: int = 1) -> list[str]:
    """Paths of the manifest's images whose bytes changed on disk since the scan.

    A stat per row (no walk): a file whose size differs is modified; one whose size is
    the same but whose ``mtime`` / ``ctime`` differ (or were never recorded) is hashed
    and compared with its ``sha256``. Files gone are not listed (they are missing, which
    every consumer reports), nor are rows without a ``sha256`` (never read). Only scans
    (``meta["kind"] == "scanned"``) are checked; other manifests give ``[]``.
    """
    if manifest.meta.get("kind") != "scanned" or "sha256" not in manifest.table.columns:
        return []
    if manifest.meta.get("layout") == RECORDIO_LAYOUT:
        return update_recordio_scan(manifest, workers=workers)[1].modified
    base = str(manifest.root)
    table = manifest.table
    cols = [_plain(table[c]) if c in table.columns else [None] * len(table)
            for c in ("path", "sha256", "bytes", *STAMP_COLUMNS)]
    modified, to_hash = [], []
    for rel, sha, size, mtime, ctime in zip(*cols):
        if sha is None or size is None:
            continue
        stamp = file_stamp(os.path.join(base, rel))
        if stamp is None:
            continue
        if int(size) != stamp[0]:
            modified.append(rel)
        elif mtime is None or ctime is None or int(mtime) != stamp[1] or int(ctime) != stamp[2]:
            to_hash.append((rel, sha))
    if to_hash:
        hashes = _run_chunks(_hash_many, [os.path.join(base, rel) for rel, _ in to_hash], workers, "", False)
        modified += [rel for (rel, sha), digest in zip(to_hash, hashes) if digest is not None and digest != sha]
    return sorted(modified)


def update_scan(manifest: Manifest, *, workers: int = 1, progress: bool = False, executor=None) -> tuple[Manifest, ScanChanges]:
    """Bring a scanned manifest up to date with its folder, reading only what changed.

    The folder is walked again with the manifest's layout (a ``stat`` per file, no
    reading). An image whose size differs from its row, or that is new, is probed again
    (hashed and decoded as the original scan did); one whose size is the same but whose
    ``mtime`` / ``ctime`` differ (or were never recorded) is hashed, and probed again only
    when its sha256 changed. Rows of unchanged images are kept as they are; images gone
    from the folder are dropped. Same-size replacements therefore get their new sha256
    (and, downstream, new landmarks and embeddings).

    Parameters
    ----------
    manifest : Manifest
        A manifest made by :func:`scan_dataset` (``meta["kind"] == "scanned"``).
    workers : int
        Processes used to hash and decode the changed images.

    Returns
    -------
    (Manifest, ScanChanges): a new manifest (not written) and what changed. When
    nothing changed the manifest returned is ``manifest`` itself.
    """
    meta = manifest.meta
    if meta.get("kind") != "scanned":
        raise ManifestError(f"{manifest.path or 'this manifest'} was not made by scanning a folder; nothing to update")
    if meta.get("layout") == RECORDIO_LAYOUT:
        return update_recordio_scan(manifest, workers=workers, progress=progress, executor=executor)
    root = manifest.root
    base = str(root)
    found = read_layout(root, meta.get("layout") or "auto", **(meta.get("layout_options") or {}))
    table = manifest.table
    # Plain lists, not one dict per row: this runs on every use of a scan, over every file.
    cols = {c: _plain(table[c]) if c in table.columns else [None] * len(table)
            for c in ("path", "sha256", "bytes", *STAMP_COLUMNS, *_LAYOUT_COLUMNS)}
    index = {str(p): i for i, p in enumerate(cols["path"])}
    changes = ScanChanges()
    probe_paths: list[str] = []
    hash_paths: list[str] = []
    stamps: dict[str, tuple[int, int, int] | None] = {}
    relabelled = False
    for rec in found.records:
        rel = rec["path"]
        i = index.get(rel)
        if i is None:
            changes.added.append(rel)
            probe_paths.append(rel)
            continue
        relabelled = relabelled or _layout_fields_differ({c: cols[c][i] for c in _LAYOUT_COLUMNS}, rec)
        stamp = stamps[rel] = file_stamp(os.path.join(base, rel))
        size, sha = cols["bytes"][i], cols["sha256"][i]
        if stamp is None or size is None or int(size) != stamp[0] or sha is None:
            probe_paths.append(rel)  # new size, or never read: read it again
        elif any(cols[c][i] is None or int(cols[c][i]) != v for c, v in zip(STAMP_COLUMNS, stamp[1:])):
            hash_paths.append(rel)  # same size, new times: compare the bytes
    if hash_paths:
        hashes = _run_chunks(_hash_many, [os.path.join(base, r) for r in hash_paths], workers,
                             f"checking {len(hash_paths)} image(s) of {manifest.name or root.name}", progress, executor=executor)
        for rel, digest in zip(hash_paths, hashes):
            if digest is not None and digest == cols["sha256"][index[rel]]:
                changes.restamped += 1
            else:
                probe_paths.append(rel)
    found_paths = {rec["path"] for rec in found.records}
    changes.removed = sorted(p for p in index if p not in found_paths)
    if not probe_paths and not changes.removed and not changes.restamped and not relabelled:
        return manifest, changes
    old = {str(r["path"]): r for r in table.to_dict("records")}
    verify = meta.get("verify", True)
    probes = dict(zip(probe_paths, _run_chunks(_probe_many_verified if verify else _probe_many_header,
                                               [str(root / r) for r in probe_paths], workers,
                                               f"rescanning {len(probe_paths)} image(s) of {manifest.name or root.name}",
                                               progress, executor=executor)))
    for rel, probe in probes.items():
        if rel in old:
            before = old[rel]
            same = all(_same(before.get(k), probe[k]) for k in ("sha256", "bytes", "width", "height")) and \
                (probe["status"] == before.get("status") or before.get("status") == STATUS_NO_IDENTITY)
            if same:
                changes.restamped += 1  # read again (e.g. it could not be read before), same result
            else:
                changes.modified.append(rel)
    rows = []
    for rec in found.records:
        rel = rec["path"]
        if rel in probes:
            rows.append(_row(rec, probes[rel]))
            continue
        row = old[rel]
        if _layout_fields_differ(row, rec):
            changes.relabelled += 1
        # The probe's part of the old row; a layout status (no identity) only ever replaced "ok".
        probe = {k: row.get(k) for k in ("sha256", "bytes", "width", "height")}
        probe["status"] = STATUS_OK if row.get("status") == STATUS_NO_IDENTITY else row.get("status")
        stamp = stamps.get(rel)
        probe["mtime_ns"], probe["ctime_ns"] = (stamp[1], stamp[2]) if stamp else (None, None)
        extra = {k: v for k, v in row.items() if k not in COLUMNS and k not in STAMP_COLUMNS}
        rows.append({**extra, **_row(rec, probe)})
    table = _table(rows)
    new_meta = dict(meta)
    new_meta.pop("fingerprint", None)
    return Manifest(table=table, meta=new_meta, path=manifest.path), changes
