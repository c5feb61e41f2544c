"""Dataset jobs: ``synth`` (masked faces) and ``partial`` (partial faces).

A job reads a source manifest, plans one *item* per output (or per source image for
``partial``), and runs the items in a process pool. Every item depends only on its
source image, its landmarks and ``item_rng(seed, source_id, slot)``, so the output is
byte-identical whatever the worker count or order.

Output folder::

    <out>/manifest.parquet   one row per output, ``meta.root = "."``
    <out>/DATA_CARD.md       the data card
    <out>/failures.csv       every source that produced no image, with the reason
    <out>/contact_sheet.png  random samples, for looking at
    <out>/<mirrored tree>    the images

Resuming: finished items are journalled in atomic shards under ``<out>/.journal``;
images are written atomically (temporary name, then rename). A rerun skips items that
are journalled and whose files exist, and refuses an ``out`` folder that holds a
different job. The journal is folded into the manifest at the end and removed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
import pandas as pd

from .. import __version__
from ..atomic import atomic_path, atomic_write_bytes, atomic_write_text
from ..data.imageio import image_size, read_image, write_image
from ..data.manifest import (
    MANIFEST_NAME,
    STATUS_OK,
    Manifest,
    make_table,
    read_manifest,
    write_manifest,
)
from ..data_cards import write_card
from ..errors import ImageError, ManifestError, MfrkitError
from ..landmarks.base import FaceResult, Landmarks
from ..options import option
from ..rng import item_rng
from .canonical import canonical_face, mean_face_68
from .partial import align, crop_region, get_template, parse_factors, parse_regions
from .quality import check_coverage
from .renderers import RENDERERS, create_renderer, landmarks_needed
from .styles import MASK_TYPES, StyleSpec

JOURNAL = ".journal"
CARD = "DATA_CARD.md"
FAILURES = "failures.csv"
CONTACT_SHEET = "contact_sheet.png"
NO_FACE_ACTIONS = ("skip", "copy")
#: Items per task sent to a worker (and per journal shard): a partial item is 36-72 images.
CHUNK = {"synth": 16, "partial": 2}


class JobError(MfrkitError):
    """A synthesis job cannot start (bad options, an ``out`` folder in use, ...)."""


# --- configuration -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthConfig:
    """Options of a ``synth`` job (see ``mfrkit synth --help``).

    Attributes
    ----------
    types : str
        A mask type, a comma list, ``random`` or ``all`` (one output per type).
    colors, textures, coverage : str
        A name, a comma list or ``random``.
    renderer : str
        ``mesh`` or ``template``.
    landmarks : str or None
        Landmark backend; default ``mediapipe``. Ignored with ``aligned``.
    landmark_file : str or None
        For the ``file`` backend: the landmark file.
    aligned : bool
        Inputs are ArcFace crops (112x112 or 112x96): use the template landmarks.
    mix : bool
        Also keep each source image, unmasked (a mixed training set).
    on_no_face : str
        ``skip`` (record the failure) or ``copy`` (also copy the image unmasked).
    image_format : str or None
        Output extension (``.jpg``, ``.png``); None keeps each source's.
    limit : int or None
        Only the first ``limit`` usable source images.
    """

    types: str = option("random", flags="--mask", help="Mask type (surgical, n95, kn95, cloth, gas), a comma list, random, or all (one output per type).")
    colors: str = option("random", flags="--color", help="Colour names or #rrggbb, comma list, or random (each type's palette).")
    textures: str = option("random", flags="--texture", help="plain, nonwoven, weave, stripes, dots, floral, camo, plaid, rubber; comma list or random.")
    coverage: str = option("random", help="proper, nose_exposed, chin; comma list or random.")
    renderer: str = option("mesh", help="mesh (3D face mesh, follows pose) or template (68-point warp).")
    seed: int = option(0, help="Seed: the same seed gives the same images, whatever --workers.")
    landmarks: str | None = option(None, help="Landmark backend: mediapipe (default), dlib or file (template renderer only).")
    landmark_file: str | None = option(None, help="For --landmarks file: the landmark file.")
    aligned: bool = option(False, negatable=False, help="Inputs are ArcFace 112x112 crops: use the mean face, detect nothing.")
    mix: bool = option(False, negatable=False, help="Also keep every source image unmasked (a mixed training set).")
    on_no_face: str = option("skip", help="skip (record it) or copy (also copy the image unmasked).")
    image_format: str | None = option(None, flags="--format", short="-f", help="Output format (jpg, png); default: each source's.")
    limit: int | None = option(None, min=1, help="Only the first N usable images (for a try).")

    def spec(self) -> StyleSpec:
        types = "random" if self.types == "all" else self.types
        return StyleSpec.parse(types, self.colors, self.textures, self.coverage)

    def slots(self) -> tuple[str, ...]:
        """Output slots per source: one per type for ``all``, else one (``mask``)."""
        if self.types == "all":
            return tuple(MASK_TYPES.names())
        return ("mask",)


@dataclass(frozen=True)
class PartialConfig:
    """Options of a ``partial`` job (see ``mfrkit partial --help``).

    Attributes
    ----------
    regions : str
        Comma list of ``leye``, ``reye``, ``nose``, ``mouth`` or ``all``.
    factors : str
        ``start:stop:step`` or a comma list.
    placement : str
        ``original`` (patch where it is), ``centered`` or ``both``.
    template : str
        ``partiallfw`` (160x160, PartialLFW) or ``arcface112``.
    """

    regions: str = option("leye,reye,nose,mouth", help="leye, reye, nose, mouth (image left/right), comma list, or all.")
    factors: str = option("0.10:0.50:0.05", help="start:stop:step (stop included) or a comma list.")
    placement: str = option(
        "original", switches={"--centered": "centered", "--both": "both"},
        help="original (patch where it is), centered (moved to the image centre, PartialLFW's centered variant) or both.",
    )  # fmt: skip
    template: str = option("partiallfw", help="partiallfw (160x160, exactly PartialLFW) or arcface112.")
    seed: int = option(0, help="Seed of the contact sheet's sample (the crops themselves draw nothing at random).")
    landmarks: str | None = option(None, help="Landmark backend: mediapipe (default), dlib or file.")
    landmark_file: str | None = option(None, help="For --landmarks file: the landmark file.")
    aligned: bool = option(False, negatable=False, help="Inputs are ArcFace 112x112 crops: use the template points, detect nothing.")
    on_no_face: str = option("skip", help="skip (record it) or copy (PartialLFW's fallback: crop the resized image).")
    limit: int | None = option(None, min=1, help="Only the first N usable images (for a try).")

    def centered(self) -> tuple[bool, ...]:
        return {"original": (False,), "centered": (True,), "both": (False, True)}[self.placement]


@dataclass
class JobSummary:
    """What a job did.

    Attributes
    ----------
    kind : str
    out : Path
    manifest : Path
    outputs : int
        Rows with status ``ok``.
    processed, resumed : int
        Items run now, and items found done by an earlier run (an item is one output
        slot of one source image for ``synth``, one source image for ``partial``).
    failures : dict
        Sources without output, by reason.
    quality : dict or None
        ``synth`` only: coverage checks passed / failed, by failed expectation.
    elapsed : float
        Seconds.
    """

    kind: str
    out: Path
    manifest: Path
    outputs: int
    processed: int
    resumed: int
    failures: dict
    quality: dict | None
    elapsed: float
    card: Path | None = None
    contact_sheet: Path | None = None
    failures_file: Path | None = None


# --- landmarks ---------------------------------------------------------------------------------------


def aligned_landmarks(width: int, height: int) -> Landmarks:
    """Template landmarks of an ArcFace crop (112x112, or 112x96 with 8 px cut off each
    side; other sizes scaled from the height): the mean 68-point face, the ArcFace 5
    points and the canonical mesh."""
    from ..align import ARCFACE_112

    scale = height / 112.0
    dx = (width - height) / 2.0
    shift = np.array([dx, 0.0])
    p68 = mean_face_68(112) * scale + shift
    mesh = canonical_face().vertices.copy() * scale
    mesh[:, 0] += dx
    bbox = np.array([0, 0, width, height], dtype=np.float32)
    return Landmarks(points5=(ARCFACE_112 * scale + shift).astype(np.float32), points68=p68.astype(np.float32), bbox=bbox,
                     score=float("nan"), backend="aligned", mesh=mesh.astype(np.float32))


def _job_backend(aligned: bool, landmarks: str | None, landmark_file: str | None, renderer: str | None = None) -> str:
    """The landmark backend a job uses, checked before the job claims its ``out`` folder.

    ``aligned`` jobs use the template landmarks (``"aligned"``); a renderer, when
    given, must get what it fits from the backend.
    """
    if aligned:
        return "aligned"
    from ..landmarks.base import BACKENDS

    backend = landmarks or "mediapipe"
    factory = BACKENDS.get(backend)
    if backend == "file" and not landmark_file:
        raise JobError("--landmarks file needs the landmark file: --landmark-file PATH")
    needs = landmarks_needed(renderer) if renderer else None
    if needs == "mesh" and not getattr(factory, "has_mesh", False):
        raise JobError(f"the mesh renderer needs a dense mesh; backend {backend!r} has none (use --landmarks mediapipe or --renderer template)")
    # The file backend gives 68 points when its file holds them; the renderer checks each face.
    if needs == "68" and not getattr(factory, "has_68", False) and backend != "file":
        raise JobError(f"the template renderer needs 68 landmarks; backend {backend!r} gives none (use --landmarks mediapipe or dlib)")
    return backend


def _backend_options(landmark_file: str | None) -> dict:
    return {"path": str(landmark_file)} if landmark_file else {}


def _job_landmarks(source: Manifest, usable: pd.DataFrame, backend: str, landmark_file: str | None, limit: int | None, workers: int,
                   progress: bool) -> dict[str, FaceResult]:
    """Landmarks of the job's usable images, by image_id, from (and into) the landmark
    cache beside the source manifest; none for an ``aligned`` job."""
    if backend == "aligned" or not len(usable):
        return {}
    from ..landmarks.cache import get_landmarks

    # A --limit run detects only its own images; the cache keeps every other image's rows.
    manifest = source if limit is None else Manifest(usable.reset_index(drop=True), source.meta, source.path)
    return get_landmarks(manifest, backend, workers=workers, progress=progress, backend_options=_backend_options(landmark_file))


# --- the shared job runner ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    key: str  # unique per item; the journal's key
    outputs: tuple[str, ...]  # every path relative to out the item may write (checked to be unique)
    payload: dict = field(repr=False, default_factory=dict)


_STATE: dict = {}


def _init_worker(kind: str, options: dict) -> None:
    if options.get("threads"):
        import cv2

        cv2.setNumThreads(int(options["threads"]))  # one process per core already
    _STATE.clear()
    _STATE["kind"] = kind
    _STATE["options"] = options
    if kind == "synth":
        _STATE["renderer"] = create_renderer(options["renderer"])


def _run_chunk(items: list[_Item]) -> list[list[dict]]:
    fn = _synth_item if _STATE["kind"] == "synth" else _partial_item
    out = []
    for item in items:
        try:
            out.append(fn(item.payload, _STATE["options"]))
        except MfrkitError as exc:
            out.append([_failure_row(item.payload, getattr(exc, "reason", "error"), str(exc))])
        except Exception as exc:  # noqa: BLE001 - one bad image must not stop a long job
            msg = f"{type(exc).__name__}: {exc}; {traceback.format_exc(limit=3)}"
            out.append([_failure_row(item.payload, "render_error", msg)])
    return out


def _failure_row(payload: dict, status: str, message: str) -> dict:
    """A manifest row for a source that produced no image: it keeps the output's
    intended path (the file does not exist) and the failure reason as its status."""
    rel = payload.get("out_rel") or payload["outputs"][0][0]
    return {
        "image_id": rel,
        "path": rel,
        "identity": payload.get("identity"),
        "source_id": payload["source_id"],
        "status": status,
        "message": message,
        "source_path": payload.get("source_rel"),
    }


def _out_folder(out, source: Manifest) -> Path:
    """``out``, refused when it lies in the source dataset's folder: outputs mirror the
    source paths, so they would overwrite its images (or mix with them)."""
    out = Path(out)
    root = source.root.resolve()
    if out.resolve() == root or out.resolve().is_relative_to(root):
        raise JobError(f"--out {out} lies inside the source dataset folder {root}; outputs would overwrite or mix with its images, choose a folder outside it")
    return out


def _check_unique_outputs(items: list[_Item], hint: str) -> None:
    """Refuse, before any work, a job where two outputs would share a file."""
    seen: dict[str, str] = {}
    for it in items:
        for rel in dict.fromkeys(it.outputs):  # a masked image and its no-face copy may share a path
            if rel in seen:
                raise JobError(f"sources {seen[rel]!r} and {it.payload['source_id']!r} would both be written to {rel!r}; {hint}")
            seen[rel] = it.payload["source_id"]


def _config_fingerprint(kind: str, config, source_fp: str) -> str:
    data = {"kind": kind, "config": dataclasses.asdict(config), "source": source_fp, "version": __version__}
    data["config"].pop("limit", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _job_meta(kind: str, suffix: str, description: str, source: Manifest, source_fp: str, config, fingerprint: str, **params) -> dict:
    """The output manifest's metadata: what was made, from which manifest, how."""
    return {
        "name": f"{source.name or 'dataset'}-{suffix}",
        "kind": kind,
        "root": ".",
        "description": f"{description} from {source.name or source.path}",
        "seed": config.seed,
        "params": {**dataclasses.asdict(config), **params},
        "source": {"name": source.name, "path": str(source.path) if source.path else None, "fingerprint": source_fp},
        "job_fingerprint": fingerprint,
    }


def _prepare_out(out: Path, fingerprint: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    journal = out / JOURNAL
    stamp = journal / "job.json"
    if stamp.exists():
        if json.loads(stamp.read_text()).get("fingerprint") != fingerprint:
            if any(journal.glob("part-*.json")):
                raise JobError(f"{out} holds an unfinished job with other options; finish it with the same options, or use another --out")
            # That job stopped before finishing anything (e.g. a landmark backend that
            # could not load): there is nothing of it to protect.
            atomic_write_text(stamp, json.dumps({"fingerprint": fingerprint}))
    else:
        final = out / MANIFEST_NAME
        if final.exists():
            try:
                old = read_manifest(final)
            except ManifestError:
                old = None
            if old is None or old.meta.get("job_fingerprint") != fingerprint:
                raise JobError(f"{out} already holds a dataset made with other options; use another --out")
        journal.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stamp, json.dumps({"fingerprint": fingerprint}))
    return journal


def _load_journal(journal: Path, out: Path) -> dict[str, list[dict]]:
    done: dict[str, list[dict]] = {}
    final = out / MANIFEST_NAME
    if final.exists():
        # A finished job rerun (e.g. with a larger --limit): its manifest lists what is
        # done; failed items are simply tried again.
        table = read_manifest(final).table
        if "job_item" in table.columns:
            for key, group in table.groupby("job_item", sort=False):
                done[str(key)] = [{k: (None if _isna(v) else v) for k, v in r.items()} for r in group.drop(columns=["job_item"]).to_dict("records")]
    for part in sorted(journal.glob("part-*.json")):
        for key, rows in json.loads(part.read_text()):
            done[key] = rows
    return done


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _run_items(kind: str, items: list[_Item], options: dict, out: Path, journal: Path, workers: int, progress: bool) -> tuple[dict[str, list[dict]], int, int]:
    from ..progress import progress_bar

    chunk = CHUNK[kind]
    done = _load_journal(journal, out)
    todo = [it for it in items if it.key not in done or not _complete(done[it.key], out)]
    resumed = len(items) - len(todo)
    parts = sorted(journal.glob("part-*.json"))
    number = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
    chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
    with progress_bar(len(todo), kind, enabled=progress) as advance:
        pool = None
        if workers > 1 and len(chunks) > 1:
            # Workers only render (landmarks come from the cache), so they may fork.
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(kind, {**options, "threads": 1}))
            results = pool.map(_run_chunk, chunks)
        else:
            _init_worker(kind, options)
            results = map(_run_chunk, chunks)
        try:
            for batch, rows in zip(chunks, results):
                entries = [[it.key, r] for it, r in zip(batch, rows)]
                atomic_write_text(journal / f"part-{number:06d}.json", json.dumps(entries, default=_json_default))
                number += 1
                for it, r in zip(batch, rows):
                    done[it.key] = r
                advance(len(batch))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return done, len(todo), resumed


def _complete(rows: list[dict], out: Path) -> bool:
    """A journalled item is complete when every file it produced is still there."""
    return all((out / r["path"]).exists() for r in rows if r.get("status") == STATUS_OK and r.get("path"))


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _write_output(out: Path, rel: str, image: np.ndarray | None = None, *, data: bytes | None = None) -> dict:
    """Write ``image`` (encoded by the extension of ``rel``), or already encoded ``data``
    as it is, atomically; the manifest's file columns for it."""
    if data is None:
        data = write_image(out / rel, image)
        h, w = image.shape[:2]
    else:
        atomic_write_bytes(out / rel, data)
        w, h = image_size(data)
    return {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "width": int(w), "height": int(h), "bytes": len(data)}


def _source_rows(manifest: Manifest, limit: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = manifest.table
    usable = table[table["status"] == STATUS_OK]
    unusable = table[table["status"] != STATUS_OK]
    if limit is not None:
        usable = usable.iloc[: max(0, int(limit))]
    return usable, unusable


def _finish(kind: str, out: Path, journal: Path, items: list[_Item], done: dict[str, list[dict]], meta: dict, unusable: pd.DataFrame,
            unusable_rel: Callable[[str], str], seed: int, processed: int, resumed: int, started: float, sheet_label: Callable[[dict], str]) -> JobSummary:
    rows = []
    for it in items:
        for r in done.get(it.key, []):
            rows.append({**r, "job_item": it.key})
    for _, src in unusable.iterrows():
        rel = unusable_rel(str(src["path"]))
        rows.append({"image_id": rel, "path": rel, "identity": None if _isna(src.get("identity")) else src.get("identity"), "source_id": src["image_id"],
                     "status": str(src["status"]), "message": "unusable in the source manifest", "source_path": src["path"], "job_item": f"{src['image_id']}#source"})
    frame = pd.DataFrame(rows)
    ok = frame[frame["status"] == STATUS_OK] if len(frame) else frame
    failed = frame[frame["status"] != STATUS_OK] if len(frame) else frame
    if "fallback" in frame.columns:
        # Images kept by a fallback (copied unmasked, PartialLFW's resize) still count.
        fell = frame[frame["fallback"].notna() & (frame["status"] == STATUS_OK)].copy()
        fell["status"] = fell["fallback"]
        failed = pd.concat([failed, fell], ignore_index=True)
    failures = {str(k): int(v) for k, v in failed["status"].value_counts().sort_index().items()} if len(failed) else {}
    quality = None
    if "quality_ok" in ok.columns and ok["quality_ok"].notna().any():
        checked = ok[ok["quality_ok"].notna()]
        reasons: dict[str, int] = {}
        for text in checked.loc[~checked["quality_ok"].astype(bool), "quality_failed"]:
            for reason in str(text).split(","):
                if reason:
                    reasons[reason] = reasons.get(reason, 0) + 1
        quality = {"checked": int(len(checked)), "passed": int(checked["quality_ok"].astype(bool).sum()), "failed_by_reason": dict(sorted(reasons.items()))}
    meta = {**meta, "failures": failures, "quality": quality, "outputs": int(len(ok))}
    # Every source is accounted for: failed ones as rows whose status is the reason
    # (their messages go to failures.csv).
    table = frame.drop(columns=[c for c in ("message", "source_path") if c in frame.columns]).reset_index(drop=True) if len(frame) else frame
    manifest = Manifest(table=make_table(table) if len(table) else make_table([]), meta=meta)
    path = write_manifest(manifest, out / MANIFEST_NAME)
    fail_path = out / FAILURES
    cols = ["source_id", "source_path", "status", "message"]
    fail_frame = failed[["image_id", *cols]] if len(failed) else pd.DataFrame(columns=["image_id", *cols])
    with atomic_path(fail_path) as tmp:
        fail_frame.to_csv(tmp, index=False)
    card = write_card(manifest, out / CARD)
    sheet = write_contact_sheet(manifest, out / CONTACT_SHEET, seed=seed, label=sheet_label)
    shutil.rmtree(journal, ignore_errors=True)
    return JobSummary(kind=kind, out=out, manifest=path, outputs=int(len(ok)), processed=processed, resumed=resumed, failures=failures,
                      quality=quality, elapsed=time.time() - started, card=card, contact_sheet=sheet, failures_file=fail_path)


def write_contact_sheet(manifest: Manifest, path: Path, *, seed: int = 0, n: int = 36, tile: int = 160, columns: int = 6, label: Callable[[dict], str] | None = None) -> Path | None:
    """A PNG of up to ``n`` outputs drawn at random (seeded), labelled; None when empty."""
    import cv2

    table = manifest.ok()
    if "variant" in table.columns:
        pick = table[table["variant"].isin(["masked", "partial"])]
        table = pick if len(pick) else table
    if not len(table):
        return None
    rng = np.random.default_rng([int(seed), 7])
    idx = np.sort(rng.choice(len(table), size=min(n, len(table)), replace=False))
    rows = table.iloc[idx].to_dict("records")
    cols = min(columns, len(rows))
    nrows = -(-len(rows) // cols)
    band = 18
    sheet = np.full((nrows * (tile + band), cols * tile, 3), 255, np.uint8)
    for k, row in enumerate(rows):
        img = read_image(manifest.abspath(row["path"]))
        h, w = img.shape[:2]
        s = tile / max(h, w)
        small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        r, c = divmod(k, cols)
        y, x = r * (tile + band), c * tile
        oy, ox = (tile - small.shape[0]) // 2, (tile - small.shape[1]) // 2
        sheet[y + oy : y + oy + small.shape[0], x + ox : x + ox + small.shape[1]] = small
        text = (label(row) if label else str(row.get("image_id")))[:26]
        cv2.putText(sheet, text, (x + 3, y + tile + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (30, 30, 30), 1, cv2.LINE_AA)
    write_image(path, sheet)
    return path


# --- synth ---------------------------------------------------------------------------------------------


def _out_rel(source_rel: str, suffix: str, ext: str | None) -> str:
    p = PurePosixPath(source_rel)
    name = p.stem + (f"_{suffix}" if suffix else "") + (ext or p.suffix or ".jpg")
    return str(p.with_name(name))


def _ext(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    fmt = fmt.lower() if fmt.startswith(".") else "." + fmt.lower()
    if fmt not in (".jpg", ".jpeg", ".png", ".webp", ".bmp"):
        raise JobError(f"cannot write images as {fmt!r}; use jpg or png")
    return fmt


def _synth_item(p: dict, opts: dict) -> list[dict]:
    base = {"identity": p["identity"], "source_id": p["source_id"], "seed": opts["seed"], "landmark_backend": opts["backend"], "renderer": opts["renderer"]}
    if p["slot"] == "unmasked":
        data = Path(p["source"]).read_bytes()
        files = _write_output(Path(opts["out"]), p["out_rel"], data=data)
        return [{**base, "image_id": p["out_rel"], "variant": "unmasked", "status": STATUS_OK, **files}]
    try:
        image = read_image(p["source"])
    except ImageError as exc:
        # One failure per source, not one per output slot.
        return [_failure_row(p, exc.reason, str(exc))] if p["primary"] else []
    face = None if opts["aligned"] else p["face"]
    if opts["aligned"]:
        landmarks, n_faces = aligned_landmarks(image.shape[1], image.shape[0]), 1
    elif face is None or face.status != STATUS_OK or face.landmarks is None:
        status = face.status if face is not None else "no_landmarks"
        if not p["primary"]:
            return []
        if opts["on_no_face"] == "copy" and status == "no_face" and p.get("copy_rel"):
            data = Path(p["source"]).read_bytes()
            files = _write_output(Path(opts["out"]), p["copy_rel"], data=data)
            return [{**base, "image_id": p["copy_rel"], "variant": "unmasked", "status": STATUS_OK, "n_faces": 0, "fallback": "no_face",
                     "message": "no face found; copied unmasked", "source_path": p["source_rel"], **files}]
        return [{**_failure_row(p, status, "no face found" if status == "no_face" else f"landmarks: {status}"), "n_faces": 0 if face is None else face.n_faces}]
    else:
        landmarks, n_faces = face.landmarks, face.n_faces
    renderer = _STATE["renderer"]
    rng = item_rng(opts["seed"], p["source_id"], p["slot"])
    spec = opts["spec"].with_type(p["slot"]) if p["slot"] in MASK_TYPES else opts["spec"]
    params = renderer.sample(rng, landmarks, spec)
    rendered = renderer.apply(image, params)
    check = check_coverage(rendered.occlusion, landmarks, params.style.coverage)
    files = _write_output(Path(opts["out"]), p["out_rel"], rendered.image)
    return [{**base, "image_id": p["out_rel"], "variant": "masked", "status": STATUS_OK, "n_faces": n_faces, **params.record(), **check.record(),
             "mask_params": rendered.params_json(), **files}]


def synthesize(src, out, config: SynthConfig = SynthConfig(), *, workers: int = 1, progress: bool = False) -> JobSummary:
    """Make a masked version of a dataset (``mfrkit synth``).

    Parameters
    ----------
    src : str, path or Manifest
        A registered dataset name, a manifest, or a dataset folder (see
        :func:`mfrkit.data.registry.resolve_source`).
    out : path
        Output folder (created; a rerun with the same options resumes).
    config : SynthConfig
    workers : int
        Processes for landmarks and rendering.
    progress : bool
        Show progress bars.

    Returns
    -------
    JobSummary
    """
    started = time.time()
    if config.on_no_face not in NO_FACE_ACTIONS:
        raise JobError(f"--on-no-face must be one of {', '.join(NO_FACE_ACTIONS)}, got {config.on_no_face!r}")
    RENDERERS.get(config.renderer)
    spec = config.spec()
    ext = _ext(config.image_format)
    backend = _job_backend(config.aligned, config.landmarks, config.landmark_file, config.renderer)
    source = _resolve(src, workers, progress)
    out = _out_folder(out, source)
    usable, unusable = _source_rows(source, config.limit)
    source_fp = source.fingerprint()  # hashes every row: once per job
    fingerprint = _config_fingerprint("synth", config, source_fp)
    faces = _job_landmarks(source, usable, backend, config.landmark_file, config.limit, workers, progress)
    items = []
    slots = config.slots()
    for _, row in usable.iterrows():
        sid, rel = str(row["image_id"]), str(row["path"])
        common = {"source_id": sid, "identity": None if pd.isna(row.get("identity")) else row.get("identity"), "source": str(source.abspath(rel)), "source_rel": rel}
        for slot in slots:
            suffix = slot if slot != "mask" else ("masked" if config.mix else "")
            out_rel = _out_rel(rel, suffix, ext)
            copy_rel = _out_rel(rel, "", None) if (config.on_no_face == "copy" and slot == slots[0] and not config.mix) else None
            items.append(_Item(key=f"{sid}#{slot}", outputs=(out_rel,) + ((copy_rel,) if copy_rel else ()), payload={**common, "slot": slot, "primary": slot == slots[0], "out_rel": out_rel,
                                                                                  "copy_rel": copy_rel, "face": faces.get(sid)}))
        if config.mix:
            items.append(_Item(key=f"{sid}#unmasked", outputs=(_out_rel(rel, "", None),), payload={**common, "slot": "unmasked", "out_rel": _out_rel(rel, "", None)}))
    _check_unique_outputs(items, "use --format to keep source extensions apart or rename the sources")
    journal = _prepare_out(out, fingerprint)
    options = {"kind": "synth", "out": str(out), "renderer": config.renderer, "seed": config.seed, "spec": spec, "aligned": config.aligned,
               "on_no_face": config.on_no_face, "backend": backend}
    done, processed, resumed = _run_items("synth", items, options, out, journal, workers, progress)
    # An item whose face was missing produced no file: "done" only in the journal.
    meta = _job_meta("synth", "masked", f"masked faces synthesized by mfrkit {__version__} ({config.renderer} renderer)", source, source_fp,
                     config, fingerprint, landmark_backend=backend)
    first = slots[0] if slots[0] != "mask" else ("masked" if config.mix else "")
    return _finish("synth", out, journal, items, done, meta, unusable, lambda rel: _out_rel(rel, first, ext), config.seed, processed, resumed, started,
                   lambda r: f"{r.get('mask_type') or r.get('variant')} {r.get('coverage') or ''}".strip())


def _resolve(src, workers: int, progress: bool) -> Manifest:
    if isinstance(src, Manifest):
        return src
    from ..data.registry import resolve_source

    manifest = resolve_source(src, workers=workers, progress=progress)
    if manifest.path is None:
        raise ManifestError(f"the manifest of {src} has no location; write it first")
    return manifest


# --- partial -------------------------------------------------------------------------------------------


def _partial_rel(source_rel: str, region: str, factor: float, centered: bool) -> str:
    p = PurePosixPath(source_rel)
    folder = f"{region}_centered" if centered else region
    return str(PurePosixPath(folder) / f"factor_{factor:g}" / p.with_suffix(".png"))


def _partial_item(p: dict, opts: dict) -> list[dict]:
    base = {"identity": p["identity"], "source_id": p["source_id"], "seed": opts["seed"], "landmark_backend": opts["backend"], "variant": "partial"}
    try:
        image = read_image(p["source"])
    except ImageError as exc:
        return [_failure_row(p, exc.reason, str(exc))]
    template = get_template(opts["template"])
    face = None if opts["aligned"] else p["face"]
    fallback = None
    if opts["aligned"]:
        aligned = align(image, aligned_landmarks(image.shape[1], image.shape[0]).points5, template)
    elif face is not None and face.status == STATUS_OK and face.landmarks is not None:
        aligned = align(image, face.landmarks.points5, template)
    else:
        status = face.status if face is not None else "no_landmarks"
        if opts["on_no_face"] != "copy" or status != "no_face":
            return [_failure_row(p, status, "no face found" if status == "no_face" else f"landmarks: {status}")]
        import cv2

        # PartialLFW's own fallback: the whole image resized to the crop size.
        aligned = cv2.resize(image, (template.size, template.size), interpolation=cv2.INTER_LINEAR)
        fallback = "no_face"
    rows = []
    out = Path(opts["out"])
    for rel, region, factor, centered in p["outputs"]:
        crop = crop_region(aligned, region, factor, centered=centered, template=template)
        files = _write_output(out, rel, crop)
        rows.append({**base, "image_id": rel, "status": STATUS_OK, "region": region, "factor": float(factor), "centered": bool(centered),
                     "partial_template": template.name, "fallback": fallback, **files})
    if fallback:
        rows[0].update(message="no face found; cropped the resized image", source_path=p["source_rel"])
    return rows


def make_partial(src, out, config: PartialConfig = PartialConfig(), *, workers: int = 1, progress: bool = False) -> JobSummary:
    """Make partial-face crops of a dataset (``mfrkit partial``); see :mod:`.partial`.

    Parameters are as for :func:`synthesize`.
    """
    started = time.time()
    if config.on_no_face not in NO_FACE_ACTIONS:
        raise JobError(f"--on-no-face must be one of {', '.join(NO_FACE_ACTIONS)}, got {config.on_no_face!r}")
    if config.placement not in ("original", "centered", "both"):
        raise JobError(f"placement must be original, centered or both, got {config.placement!r}")
    regions = parse_regions(config.regions)
    factors = parse_factors(config.factors)
    template = get_template(config.template)
    backend = _job_backend(config.aligned, config.landmarks, config.landmark_file)
    source = _resolve(src, workers, progress)
    out = _out_folder(out, source)
    usable, unusable = _source_rows(source, config.limit)
    source_fp = source.fingerprint()
    fingerprint = _config_fingerprint("partial", config, source_fp)
    faces = _job_landmarks(source, usable, backend, config.landmark_file, config.limit, workers, progress)
    items = []
    for _, row in usable.iterrows():
        sid, rel = str(row["image_id"]), str(row["path"])
        outputs = tuple((_partial_rel(rel, r, f, c), r, f, c) for r in regions for f in factors for c in config.centered())
        items.append(_Item(key=f"{sid}#partial", outputs=tuple(o[0] for o in outputs), payload={
            "source_id": sid, "identity": None if pd.isna(row.get("identity")) else row.get("identity"), "source": str(source.abspath(rel)),
            "source_rel": rel, "outputs": outputs, "face": faces.get(sid)}))
    # Sources differing only in extension (x.jpg, x.png) both become x.png.
    _check_unique_outputs(items, "rename the sources")
    journal = _prepare_out(out, fingerprint)
    options = {"kind": "partial", "out": str(out), "seed": config.seed, "template": template.name, "aligned": config.aligned,
               "on_no_face": config.on_no_face, "backend": backend}
    done, processed, resumed = _run_items("partial", items, options, out, journal, workers, progress)
    meta = _job_meta("partial", "partial", f"partial faces ({template.name}) made by mfrkit {__version__}", source, source_fp, config, fingerprint,
                     regions=list(regions), factors=list(factors), landmark_backend=backend)
    first = (regions[0], factors[0], config.centered()[0])
    return _finish("partial", out, journal, items, done, meta, unusable, lambda rel: _partial_rel(rel, *first), config.seed, processed, resumed, started,
                   lambda r: f"{r.get('region')} {r.get('factor'):g}{' c' if r.get('centered') else ''}")
