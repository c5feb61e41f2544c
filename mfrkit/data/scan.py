"""Scanning a dataset folder into a manifest: layout records + file hashes + image checks."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ImageError
from .imageio import MAX_PIXELS, decode_image, image_size, read_file_bytes
from .layouts import read_layout
from .manifest import STATUS_OK, Manifest, make_table


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


def probe_image(path: str, verify: bool = True, max_pixels: int = MAX_PIXELS) -> dict:
    """Hash, size and status of one image file.

    The file is read once; its bytes are hashed and then decoded. With ``verify`` the
    image is fully decoded (catches truncated files); without it only the header is
    read. Never raises for a bad image: the failure is the ``status``.

    Returns
    -------
    dict with ``sha256`` (hex), ``bytes``, ``width`` and ``height`` (pixels, after the
    EXIF orientation; None when unknown) and ``status``.
    """
    info: dict = {"sha256": None, "bytes": None, "width": None, "height": None, "status": STATUS_OK}
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


def _probe_many(args: tuple[list[str], bool]) -> list[dict]:
    paths, verify = args
    return [probe_image(p, verify) for p in paths]


def scan_dataset(
    root: str | os.PathLike,
    *,
    layout: str = "auto",
    name: str = "",
    workers: int = 1,
    verify: bool = True,
    progress: bool = False,
    **layout_options,
) -> tuple[Manifest, ScanReport]:
    """Read a dataset folder into a manifest.

    Every image the layout finds becomes a row, including the ones that cannot be
    decoded (their ``status`` says why). ``image_id`` is the relative path.

    Parameters
    ----------
    root : path-like
        The dataset folder.
    layout : str
        A name in :data:`mfrkit.data.layouts.LAYOUTS` or ``auto``.
    workers : int
        Processes used to hash and decode images.
    verify : bool
        Decode every image fully (slower, catches truncated files).

    Returns
    -------
    (Manifest, ScanReport); the manifest is not written (see :func:`write_manifest`).
    """
    from ..progress import progress_bar

    root = Path(root).expanduser().resolve()
    found = read_layout(root, layout, **layout_options)
    paths = [str(root / r["path"]) for r in found.records]
    chunk = 64
    chunks = [(paths[i : i + chunk], verify) for i in range(0, len(paths), chunk)]
    probes: list[dict] = []
    with progress_bar(len(paths), f"scanning {name or root.name}", enabled=progress) as advance:
        if workers <= 1 or len(chunks) <= 1:
            results = map(_probe_many, chunks)
            for part in results:
                probes += part
                advance(len(part))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for part in pool.map(_probe_many, chunks):
                    probes += part
                    advance(len(part))
    rows = []
    for rec, probe in zip(found.records, probes):
        row = {"image_id": rec["path"], "variant": "unmasked", **rec, **probe}
        if rec.get("status") and probe["status"] == STATUS_OK:
            row["status"] = rec["status"]  # layout-level failure (no identity) wins over "ok"
        rows.append(row)
    table = make_table(rows) if rows else make_table(pd.DataFrame(columns=["image_id", "path", "status"]))
    meta = {
        "name": name or root.name,
        "root": str(root),
        "layout": found.layout,
        "layout_options": layout_options,
        "kind": "scanned",
    }
    failures = table.loc[table["status"] != STATUS_OK, "status"].value_counts().to_dict()
    report = ScanReport(layout=found.layout, n_images=len(table), failures={str(k): int(v) for k, v in failures.items()}, warnings=found.warnings)
    return Manifest(table=table, meta=meta), report
