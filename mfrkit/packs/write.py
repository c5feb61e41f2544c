"""``mfrkit pack``: align every image of a dataset once and store the crops in shards.

See :mod:`mfrkit.packs.pack` for the format. Packing is a job on :mod:`mfrkit.jobs`,
one item per (alignment, shard): the source manifest and its cached landmarks (detected
first where missing) -> each shard's crops, made by the benchmark's own crop function
(:func:`mfrkit.crops.make_crop`, so a packed crop is bit-identical to the one the
bench would make) and written atomically with a small status file -> the index and
``pack.json`` last. Shards run in parallel on the job's executor (``-j``, or Ray).

A dataset of aligned crops (insightface's RecordIO, ``meta["aligned"]``) is aligned by
its template's landmarks: nothing is detected, and its records are read in place.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..alignments import get_alignment
from ..atomic import atomic_write_bytes, atomic_write_text
from ..data.manifest import STATUS_OK, Manifest, write_manifest
from ..data.manifest_stream import is_manifest
from ..jobs import ExecutorSpec, Item, Job, OutputFolder, RunStats, read_marker, run_job
from ..landmarks.base import FaceResult, Landmarks
from ..errors import MfrkitError, require_made
from ..options import option
from ..userfiles import check_user_file, read_user_bytes
from .pack import CROPS_DIR, FORMAT, INDEX_NAME, PACK_JSON, PackError, shard_name

NO_LANDMARKS = "no_landmarks"


@dataclass(frozen=True)
class PackConfig:
    """Options of ``mfrkit pack``.

    Attributes
    ----------
    align : str
        Alignment name(s), comma-separated (``arcface112``, ``arcface160p30``,
        ``dlib150``, ``none``): one set of shards each.
    landmarks : str
        Landmark backend whose cache aligns the faces (detected first where missing).
    shard_size : int
        Crops per shard file (1024 ArcFace-112 crops are 38.5 MB; shards are the unit
        of parallel work and of resuming).
    none_size : int
        Crop side for ``none`` (ready-aligned inputs, resized).
    """

    align: str = option("arcface112", help="Alignment(s), comma-separated: arcface112, arcface160p30, dlib150, none (ready crops). One set of shards each.")
    landmarks: str = option("mediapipe", help="Landmark backend whose cached landmarks align the faces (detected first where missing).")
    shard_size: int = option(1024, min=1, help="Crops per shard file (the unit of parallel work and of resuming).")
    none_size: int = option(112, min=8, max=1024, help="Crop side for --align none (ready-aligned inputs, resized).")
    output_format: str = option("npy", flags="--format", help="npy (the shards only) or rec: also insightface RecordIO of each "
                                                              "alignment's crops (recordio/<align>/train.rec, train.idx, property; JPEG "
                                                              "inside, labelled by identity) for arcface_torch and FaceX-Zoo.")


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
        if not 8 <= side <= 1024:
            raise PackError(f"alignment {name}: a crop side of {side} px is out of range (8-1024)")
        out[name] = (side, side)
    return out


def _points_only(lm: Landmarks) -> Landmarks:
    # Items carry the points, not the 478-vertex mesh: they stay small to pickle.
    return Landmarks(points5=lm.points5, points68=lm.points68, bbox=lm.bbox, score=lm.score, backend=lm.backend)


def _ok_landmarks(result: FaceResult | None) -> Landmarks | None:
    return result.landmarks if result is not None and result.status == STATUS_OK and result.landmarks is not None else None


def _same_size(a: dict, b: dict) -> bool:
    try:
        return int(a["width"]) == int(b["width"]) and int(a["height"]) == int(b["height"])
    except (KeyError, TypeError, ValueError):
        return False


def plan_landmarks(manifest: Manifest, faces: dict | None) -> tuple[list[Landmarks | None], list[str | None], list[str | None]]:
    """Per manifest row: the landmarks to align with, their origin (``own``,
    ``source``, None), and a status known before cropping (the manifest's failure, or
    ``no_landmarks``; None when the row is to be cropped)."""
    records = manifest.table.to_dict("records")
    by_id = {str(r["image_id"]): r for r in records}
    lms: list[Landmarks | None] = []
    origins: list[str | None] = []
    statuses: list[str | None] = []
    for r in records:
        lm, origin, status = None, None, None
        if r["status"] != STATUS_OK:
            status = str(r["status"])
        elif faces is not None:
            lm = _ok_landmarks(faces.get(str(r["image_id"])))
            origin = "own" if lm is not None else None
            sid = r.get("source_id")
            if lm is None and isinstance(sid, str) and sid in by_id and _same_size(r, by_id[sid]):
                lm = _ok_landmarks(faces.get(sid))
                origin = "source" if lm is not None else None
            status = None if lm is not None else NO_LANDMARKS
        lms.append(None if lm is None else _points_only(lm))
        origins.append(origin)
        statuses.append(status)
    return lms, origins, statuses


@dataclass(frozen=True)
class ShardItem(Item):
    """One shard of one alignment: rows ``[lo, hi)`` of the index.

    ``todo`` lists, per row of the shard, the image path and landmarks to crop, or the
    status it already failed with (a string).
    """

    align: str = ""
    size: tuple[int, int] = (112, 112)
    shard: int = 0
    rows: tuple = ()


class PackJob(Job):
    """Crop every image of a manifest into shards (see the module docstring)."""

    kind = "pack"
    chunk_size = 1
    error_status = "crop_error"

    def __init__(self, manifest: Manifest, out: str | os.PathLike, config: PackConfig, faces: dict | None) -> None:
        self.manifest = manifest
        self.out = Path(out)
        self.config = config
        self.alignments = parse_alignments(config.align, config.none_size)
        needs = any(get_alignment(a).needs_landmarks for a in self.alignments)
        self.landmark_backend = ("template" if isinstance(faces, _SameFace) else config.landmarks) if needs else None
        self.manifest_fp = manifest.fingerprint()
        text = json.dumps({"format": FORMAT, "manifest": self.manifest_fp, "alignments": {k: list(v) for k, v in self.alignments.items()},
                           "landmarks": self.landmark_backend, "shard_size": config.shard_size}, sort_keys=True)  # fmt: skip
        self.fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
        self._output = OutputFolder(self.out, kind=self.kind, fingerprint=self.fingerprint)
        lms, self.origins, self.pre = plan_landmarks(manifest, faces)
        paths = [str(manifest.abspath(p)) for p in manifest.table["path"]]
        n, size = len(manifest), config.shard_size
        self.items = []
        for name, crop_size in self.alignments.items():
            needs_lm = get_alignment(name).needs_landmarks
            for k in range((n + size - 1) // size):
                rows = []
                for i in range(k * size, min(n, (k + 1) * size)):
                    known = self.pre[i]
                    if known is None or (known == NO_LANDMARKS and not needs_lm):
                        rows.append((paths[i], lms[i] if needs_lm else None))
                    else:
                        rows.append(known)
                rel = f"{CROPS_DIR}/{name}/{shard_name(k)}"
                self.items.append(ShardItem(key=f"{name}/{k}", outputs=(rel, _status_rel(rel)), align=name, size=crop_size, shard=k,
                                            rows=tuple(rows)))  # fmt: skip

    def plan(self) -> list[ShardItem]:
        return self.items

    def output(self) -> OutputFolder:
        return self._output

    def is_complete(self, rows: list[dict]) -> bool:
        return all((self.out / rel).is_file() for r in rows for rel in (r["file"], _status_rel(r["file"])))

    def previous_results(self) -> dict[str, list[dict]]:
        """Shards a finished earlier run of this pack wrote (the journal is gone then):
        each whose array and status file are whole counts as done."""
        done = {}
        for it in self.items:
            rel = it.outputs[0]
            try:
                arr = np.load(check_user_file(self.out / rel, "array"), mmap_mode="r", allow_pickle=False)
                statuses = json.loads(read_user_bytes(self.out / _status_rel(rel), "json"))
            except (OSError, ValueError, MfrkitError):
                continue
            if arr.shape == (len(it.rows), *it.size, 3) and arr.dtype == np.uint8 and isinstance(statuses, list) and len(statuses) == len(it.rows):
                done[it.key] = [{"align": it.align, "shard": it.shard, "file": rel, "statuses": [str(v) for v in statuses]}]
        return done

    def run_item(self, item: ShardItem, state) -> list[dict]:
        from ..crops import CropRequest, make_crop

        array = np.zeros((len(item.rows), *item.size, 3), np.uint8)
        statuses = []
        for j, row in enumerate(item.rows):
            if isinstance(row, str):
                statuses.append(row)
                continue
            crop, status = make_crop(CropRequest(path=row[0], landmarks=row[1]), item.align, item.size)
            if crop is not None:
                array[j] = crop
            statuses.append(status)
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        rel = item.outputs[0]
        atomic_write_bytes(self._output.path_for(rel), buf.getvalue())
        atomic_write_text(self._output.path_for(_status_rel(rel)), json.dumps(statuses))
        return [{"align": item.align, "shard": item.shard, "file": rel, "statuses": statuses, "bytes": len(buf.getvalue())}]

    def failure_rows(self, item: ShardItem, status: str, message: str) -> list[dict]:
        # Per-image failures are statuses inside the shard; a whole shard failing means
        # the pack cannot be trusted: stop with the reason.
        raise PackError(f"packing shard {item.key} failed ({status}): {message}")

    def finish(self, results: dict[str, list[dict]], items: Sequence[ShardItem], stats: RunStats) -> PackSummary:
        n = len(self.manifest)
        final: list[str | None] = [None] * n
        total = 0
        for it in items:
            (row,) = results[it.key]
            total += int(row.get("bytes") or (self.out / row["file"]).stat().st_size)
            for i, status in enumerate(row["statuses"], start=it.shard * self.config.shard_size):
                # A row is ok when every alignment cropped it; else its first failure.
                if status != STATUS_OK and final[i] in (None, STATUS_OK):
                    final[i] = status
                elif final[i] is None:
                    final[i] = STATUS_OK
        table = self.manifest.table.copy()
        table["pack_row"] = np.arange(n, dtype=np.int64)
        table["crop_status"] = [s or STATUS_OK for s in final]
        table["landmarks_from"] = pd.array(self.origins, dtype="string")
        source = {"name": self.manifest.name, "manifest": str(self.manifest.path.resolve()) if self.manifest.path else None,
                  "root": str(self.manifest.root.resolve()), "fingerprint": self.manifest_fp}  # fmt: skip
        meta = {"name": f"{self.manifest.name or 'dataset'} (pack)", "root": source["root"], "kind": "pack-index",
                "pack": {"fingerprint": self.fingerprint, "alignments": list(self.alignments)}, "source": source}  # fmt: skip
        write_manifest(Manifest(table=table, meta=meta), self._output.path_for(INDEX_NAME))
        counts = {str(k): int(v) for k, v in table["crop_status"].value_counts().items()}
        origin_counts = {str(k): int(v) for k, v in table["landmarks_from"].dropna().value_counts().items()}
        info = {
            "format": FORMAT, "complete": True, "fingerprint": self.fingerprint, "mfrkit_version": __version__,
            "alignments": {k: {"size": list(v)} for k, v in self.alignments.items()}, "shard_size": self.config.shard_size,
            "landmarks": self.landmark_backend, "n_images": n, "counts": counts, "landmarks_from": origin_counts, "bytes": total,
            "source": source,
        }  # fmt: skip
        if self.config.output_format == "rec":
            from .recordio_out import write_pack_recordio

            self._output.path_for("recordio/x")  # no link on the way
            info["recordio"] = {a: write_pack_recordio(self.out, a, s, self.config.shard_size, table, self.manifest.meta)
                                for a, s in self.alignments.items()}
        atomic_write_text(self._output.path_for(PACK_JSON), json.dumps(info, indent=2))
        # A pack without one crop serves nothing (index.parquet holds each image's status).
        require_made(counts.get(STATUS_OK, 0), f"pack cropped no image of {n}", counts,
                     where=f"each image's status is in {self.out / INDEX_NAME}")
        return PackSummary(out=self.out, n_images=n, counts=counts, landmarks_from=origin_counts, shards_written=stats.processed,
                           shards_reused=stats.resumed, seconds=stats.elapsed, bytes=total)  # fmt: skip


class _SameFace(dict):
    """Every image's landmarks are the same template's (aligned crops)."""

    def __init__(self, face: FaceResult) -> None:
        super().__init__()
        self.face = face

    def get(self, key, default=None):
        return self.face


def template_faces(manifest: Manifest) -> dict | None:
    """For a dataset of aligned crops (``meta["aligned"]``, a crop template such as
    insightface's ``arcface112``), the template's landmarks for every image
    (:func:`~mfrkit.landmarks.template.template_landmarks`), so packing detects nothing;
    else None."""
    name = manifest.meta.get("aligned")
    if not name:
        return None
    from ..alignments import crop_template
    from ..landmarks.template import template_landmarks

    height, width = crop_template(str(name)).crop_size
    return _SameFace(FaceResult("ok", _points_only(template_landmarks(str(name), width, height)), 1))


def _refuse_foreign(out: Path) -> None:
    """Refuse early a folder the pack job would refuse when it claims it (see
    :class:`~mfrkit.jobs.OutputFolder`): a file, or a non-empty folder that is not a pack."""
    if out.exists() and not out.is_dir():
        raise PackError(f"{out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        marker = read_marker(out)
        if marker is None or marker.kind != PackJob.kind:
            raise PackError(f"{out} is not empty and is not a pack mfrkit made; choose a new or empty folder")


def _status_rel(rel: str) -> str:
    return rel[: -len(".npy")] + ".status.json"


def write_pack(
    src: str | os.PathLike | Manifest,
    out: str | os.PathLike,
    config: PackConfig = PackConfig(),
    *,
    executor: ExecutorSpec | None = None,
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
        The pack folder: new, empty, or this job's own (a rerun resumes).
    config : PackConfig
    executor : ExecutorSpec, optional
        Where the shards are written (default: in this process); landmarks are detected
        here with ``executor.local_workers`` processes.

    Returns
    -------
    PackSummary
    """
    from ..data.registry import resolve_source

    alignments = parse_alignments(config.align, config.none_size)  # bad names fail before any work
    if config.output_format not in ("npy", "rec"):
        raise PackError(f"--format must be npy or rec, got {config.output_format!r}")
    executor = executor or ExecutorSpec()
    manifest = src if is_manifest(src) else resolve_source(src, workers=executor.local_workers, progress=progress)
    if manifest.path is None:
        raise PackError("write the manifest before packing it (its landmarks are cached beside it)")
    _refuse_foreign(Path(out))  # before detecting landmarks: a refused folder costs nothing
    faces = None
    if any(get_alignment(a).needs_landmarks for a in alignments):
        from ..landmarks.lookup import get_landmarks

        faces = template_faces(manifest)
        if faces is None:
            faces = get_landmarks(manifest, config.landmarks, workers=executor.local_workers, progress=progress, mesh=False)
    job = PackJob(manifest, out, config, faces)
    return run_job(job, executor, progress=progress)
