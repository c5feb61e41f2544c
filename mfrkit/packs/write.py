"""``mfrkit pack``: align every image of a dataset once and store the crops in shards.

See :mod:`mfrkit.packs.pack` for the format. Writing follows the data flow: the source
manifest and its cached landmarks (detected first when missing) -> one crop per image
and alignment, made by the benchmark's decode-and-align workers
(:func:`mfrkit.bench.crops.iter_crops`) -> shards written atomically, each with a small
status file -> the index and ``pack.json`` last.

An image without landmarks of its own borrows its source's (``source_id``) when both
have the same size: a synthetic masked copy is drawn on its source photo in place, and
a mask can defeat the detector. ``landmarks_from`` records which (``own``, ``source``).

Interrupted? Run the same command again: finished shards are kept, the rest is made.
A folder that holds anything else (another pack's options, files mfrkit did not write)
is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..alignments import get_alignment
from ..atomic import atomic_path, atomic_write_text
from ..data.manifest import STATUS_OK, Manifest, write_manifest
from ..landmarks.base import FaceResult, Landmarks
from .pack import CROPS_DIR, FORMAT, INDEX_NAME, PACK_JSON, PackError, shard_name

DEFAULT_SHARD_SIZE = 4096
NO_LANDMARKS = "no_landmarks"


@dataclass(frozen=True)
class PackSummary:
    """What :func:`write_pack` did.

    Attributes
    ----------
    out : Path
    n_images : int
        Index rows (every manifest row).
    counts : dict of str to int
        Rows per ``crop_status``.
    landmarks_from : dict of str to int
        Rows per landmark origin (``own``, ``source``).
    shards_written, shards_reused : int
    seconds : float
    bytes : int
        Size of the shards.
    """

    out: Path
    n_images: int
    counts: dict = field(default_factory=dict)
    landmarks_from: dict = field(default_factory=dict)
    shards_written: int = 0
    shards_reused: int = 0
    seconds: float = 0.0
    bytes: int = 0


def parse_alignments(text: str | Sequence[str], none_size: int = 112) -> dict[str, tuple[int, int]]:
    """``arcface112,dlib150`` -> ``{"arcface112": (112, 112), "dlib150": (150, 150)}``;
    ``none`` (ready crops) is resized to ``none_size``."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise PackError("name at least one alignment (e.g. --align arcface112)")
    out = {}
    for name in names:
        alignment = get_alignment(name)
        side = alignment.size if alignment.size is not None else none_size
        if side < 8 or side > 1024:
            raise PackError(f"alignment {name}: a crop side of {side} px is out of range (8-1024)")
        out[name] = (side, side)
    return out


def _points_only(lm: Landmarks) -> Landmarks:
    # Workers get the points, not the 478-vertex mesh: jobs stay small to pickle.
    return Landmarks(points5=lm.points5, points68=lm.points68, bbox=lm.bbox, score=lm.score, backend=lm.backend)


def _ok_landmarks(result: FaceResult | None) -> Landmarks | None:
    return result.landmarks if result is not None and result.status == STATUS_OK and result.landmarks is not None else None


def _same_size(a: dict, b: dict) -> bool:
    try:
        return int(a["width"]) == int(b["width"]) and int(a["height"]) == int(b["height"])
    except (KeyError, TypeError, ValueError):
        return False


def _plan(manifest: Manifest, faces: dict | None) -> tuple[list[Landmarks | None], list[str | None], list[str | None]]:
    """Per manifest row: the landmarks to align with, their origin, and a status known
    before cropping (the manifest's failure, or ``no_landmarks``; None = to crop)."""
    records = manifest.table.to_dict("records")
    by_id = {str(r["image_id"]): r for r in records}
    lms, origins, statuses = [], [], []
    for r in records:
        if r["status"] != STATUS_OK:
            lms.append(None), origins.append(None), statuses.append(str(r["status"]))
            continue
        if faces is None:
            lms.append(None), origins.append(None), statuses.append(None)
            continue
        own = _ok_landmarks(faces.get(str(r["image_id"])))
        origin = "own" if own is not None else None
        sid = r.get("source_id")
        if own is None and isinstance(sid, str) and sid in by_id and _same_size(r, by_id[sid]):
            own = _ok_landmarks(faces.get(sid))
            origin = "source" if own is not None else None
        lms.append(None if own is None else _points_only(own))
        origins.append(origin)
        statuses.append(None if own is not None else NO_LANDMARKS)
    return lms, origins, statuses


def _fingerprint(manifest_fp: str, alignments: dict, backend: str | None, shard_size: int) -> str:
    text = json.dumps({"format": FORMAT, "manifest": manifest_fp, "alignments": {k: list(v) for k, v in alignments.items()},
                       "landmarks": backend, "shard_size": shard_size}, sort_keys=True)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _prepare(out: Path, fingerprint: str) -> None:
    meta = out / PACK_JSON
    if meta.exists():
        try:
            recorded = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = {}
        if recorded.get("fingerprint") != fingerprint:
            raise PackError(f"{out} holds a pack of other data or options; choose a new folder (mfrkit does not overwrite it)")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PackError(f"{out} exists and is not a pack; choose a new or empty folder")


def _save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _shard_done(path: Path, n: int, size: tuple[int, int]) -> list[str] | None:
    """The statuses of a finished shard, or None when it must be (re)made."""
    status = path.with_suffix(".status.json")
    if not (path.exists() and status.exists()):
        return None
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        statuses = json.loads(status.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if arr.shape != (n, *size, 3) or arr.dtype != np.uint8 or not isinstance(statuses, list) or len(statuses) != n:
        return None
    return [str(s) for s in statuses]


def write_pack(
    src: str | os.PathLike | Manifest,
    out: str | os.PathLike,
    *,
    align: str | Sequence[str] = "arcface112",
    landmarks: str = "mediapipe",
    shard_size: int = DEFAULT_SHARD_SIZE,
    none_size: int = 112,
    workers: int = 1,
    progress: bool = False,
) -> PackSummary:
    """Pack the images of ``src`` as aligned crops (``mfrkit pack``).

    Parameters
    ----------
    src : str, path or Manifest
        A registered dataset, a manifest or a dataset folder
        (:func:`mfrkit.data.registry.resolve_source`); the manifest must be written (its
        landmarks are cached beside it).
    out : path
        The pack folder: new, empty, or an unfinished pack of the same options.
    align : str or list of str
        Alignment name(s), comma-separated (``arcface112``, ``arcface160p30``,
        ``dlib150``, ``none``); one set of shards each.
    landmarks : str
        Landmark backend whose cache aligns the faces (detected first where missing).
    shard_size : int
        Crops per shard file (4096 ArcFace-112 crops are 154 MB).
    none_size : int
        Crop side for ``none`` (ready-aligned inputs, resized).
    workers : int
        Decode-and-align processes (0: in this process).

    Returns
    -------
    PackSummary
    """
    from ..bench.crops import CropJob, iter_crops
    from ..data.registry import resolve_source
    from ..progress import progress_bar

    started = time.time()
    if shard_size < 1:
        raise PackError(f"shard_size must be >= 1, got {shard_size}")
    alignments = parse_alignments(align, none_size)
    manifest = src if isinstance(src, Manifest) else resolve_source(src, workers=max(1, workers), progress=progress)
    if manifest.path is None:
        raise PackError("write the manifest before packing it (its landmarks are cached beside it)")
    needs = any(get_alignment(a).needs_landmarks for a in alignments)
    faces = None
    if needs:
        from ..landmarks.cache import get_landmarks

        faces = get_landmarks(manifest, landmarks, workers=max(1, workers), progress=progress)
    out = Path(out)
    manifest_fp = manifest.fingerprint()
    fingerprint = _fingerprint(manifest_fp, alignments, landmarks if needs else None, shard_size)
    _prepare(out, fingerprint)
    info = {
        "format": FORMAT, "fingerprint": fingerprint, "complete": False, "mfrkit_version": __version__,
        "alignments": {k: {"size": list(v)} for k, v in alignments.items()}, "shard_size": shard_size,
        "landmarks": landmarks if needs else None, "n_images": len(manifest),
        "source": {"name": manifest.name, "manifest": str(manifest.path.resolve()), "root": str(manifest.root.resolve()), "fingerprint": manifest_fp},
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / PACK_JSON, json.dumps(info, indent=2))

    lms, origins, pre = _plan(manifest, faces)
    paths = [str(manifest.abspath(p)) for p in manifest.table["path"]]
    n = len(manifest)
    n_shards = (n + shard_size - 1) // shard_size
    final = list(pre)
    written = reused = 0
    total_bytes = 0
    with progress_bar(n * len(alignments), "pack", enabled=progress) as advance:
        for name, size in alignments.items():
            (out / CROPS_DIR / name).mkdir(parents=True, exist_ok=True)
            needs_lm = get_alignment(name).needs_landmarks
            for k in range(n_shards):
                lo, hi = k * shard_size, min(n, (k + 1) * shard_size)
                path = out / CROPS_DIR / name / shard_name(k)
                statuses = _shard_done(path, hi - lo, size)
                if statuses is None:
                    # Rows with a known failure stay zeros; "" marks the rows to crop.
                    statuses = ["" if pre[i] is None or (pre[i] == NO_LANDMARKS and not needs_lm) else pre[i] for i in range(lo, hi)]
                    todo = [i for i in range(lo, hi) if statuses[i - lo] == ""]
                    array = np.zeros((hi - lo, *size, 3), np.uint8)
                    jobs = [CropJob(path=paths[i], landmarks=lms[i] if needs_lm else None) for i in todo]
                    for start, crops, got in iter_crops(jobs, align=name, size=size, workers=workers):
                        for j, (crop, status) in enumerate(zip(crops, got)):
                            statuses[todo[start + j] - lo] = status
                            if status == STATUS_OK:
                                array[todo[start + j] - lo] = crop
                        advance(len(got))
                    advance(hi - lo - len(todo))
                    _save_npy(path, array)
                    atomic_write_text(path.with_suffix(".status.json"), json.dumps(statuses))
                    written += 1
                else:
                    advance(hi - lo)
                    reused += 1
                total_bytes += path.stat().st_size
                for i, status in enumerate(statuses, start=lo):
                    # A row is ok when every alignment cropped it; else its first failure.
                    if status != STATUS_OK and final[i] in (None, STATUS_OK):
                        final[i] = status
                    elif final[i] is None:
                        final[i] = STATUS_OK

    table = manifest.table.copy()
    table["pack_row"] = np.arange(n, dtype=np.int64)
    table["crop_status"] = [s if s is not None else STATUS_OK for s in final]
    table["landmarks_from"] = origins
    meta = {
        "name": f"{manifest.name or 'dataset'} (pack)", "root": str(manifest.root.resolve()), "kind": "pack-index",
        "pack": {"fingerprint": fingerprint, "alignments": list(alignments)}, "source": info["source"],
    }  # fmt: skip
    write_manifest(Manifest(table=table, meta=meta), out / INDEX_NAME)
    counts = {str(k): int(v) for k, v in table["crop_status"].value_counts().items()}
    origin_counts = {str(k): int(v) for k, v in pd.Series(origins, dtype=object).dropna().value_counts().items()}
    info.update(complete=True, counts=counts, landmarks_from=origin_counts, bytes=total_bytes)
    atomic_write_text(out / PACK_JSON, json.dumps(info, indent=2))
    return PackSummary(out=out, n_images=n, counts=counts, landmarks_from=origin_counts, shards_written=written,
                       shards_reused=reused, seconds=time.time() - started, bytes=total_bytes)  # fmt: skip
