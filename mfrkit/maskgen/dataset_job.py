"""What the dataset-making jobs (``synth``, ``partial``) share: the source, the output
folder, landmarks, output files, and finishing (manifest, card, failures, contact sheet).

Output folder of such a job::

    <out>/manifest.parquet   one row per output, ``meta.root = "."``
    <out>/DATA_CARD.md       the data card
    <out>/failures.csv       every source that produced no image, with the reason
    <out>/contact_sheet.png  random samples, for looking at
    <out>/<mirrored tree>    the images

The folder is claimed through :class:`~mfrkit.jobs.OutputFolder` (marked, locked, never
a folder holding files mfrkit did not write); the journal lives in ``<out>/.journal``
until the job finishes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..atomic import atomic_path
from ..data.imageio import encode_image, image_size
from ..data.manifest import MANIFEST_NAME, STATUS_OK, Manifest, make_table, read_manifest, write_manifest
from ..data.subset import select_rows, subset_meta
from ..errors import ManifestError, MfrkitError, require_made
from ..jobs import JOURNAL, Item, Job, JobError, OutputFolder, RunStats
from ..landmarks.base import FaceResult
from ..userfiles import read_user_bytes
from .contact_sheet import write_contact_sheet
from ..data.recordio_labels import group_by_identity, record_labels
from .container_output import CONTAINER_EXT, PARTS, BinOut, PartSink, RecordsOut, container_of, part_done

CARD = "DATA_CARD.md"
FAILURES = "failures.csv"
CONTACT_SHEET = "contact_sheet.png"
NO_FACE_ACTIONS = ("skip", "copy")
#: Extensions mfrkit can write; a source in another format needs ``--format``.
WRITABLE = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass
class JobSummary:
    """What a dataset job did.

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
    registered: str | None = None


@dataclass(frozen=True, slots=True)
class SourceItem(Item):
    """An item made from one source image.

    Attributes
    ----------
    source_id : str
        The source's ``image_id``.
    identity : str or None
    source_rel : str
        Its path relative to the source dataset (:meth:`DatasetJob.source_path` makes it
        absolute: the root is stored once, not per item).
    """

    source_id: str = ""
    identity: str | None = None
    source_rel: str = ""


# --- options shared by both jobs ----------------------------------------------------------------


def check_limit(limit: int | None) -> None:
    if limit is not None and int(limit) < 1:
        raise JobError(f"--limit must be a positive number of images, got {limit}")


def check_no_face(action: str) -> None:
    if action not in NO_FACE_ACTIONS:
        raise JobError(f"--on-no-face must be one of {', '.join(NO_FACE_ACTIONS)}, got {action!r}")


def job_backend(aligned: bool, landmarks: str | None, landmark_file: str | None, renderer: str | None = None) -> str:
    """The landmark backend a job uses, checked before the job claims its ``out`` folder.

    ``aligned`` jobs use the template landmarks (``"aligned"``); a renderer, when
    given, must get what it fits from the backend.
    """
    if aligned:
        return "aligned"
    from ..landmarks.base import BACKENDS
    from .renderers import landmarks_needed

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


def backend_options(landmark_file: str | None) -> dict:
    return {"path": str(landmark_file)} if landmark_file else {}


def resolve_manifest(src, workers: int, progress: bool) -> Manifest:
    """The source manifest of ``--src`` (a Manifest is used as it is)."""
    if isinstance(src, Manifest):
        manifest = src
    else:
        from ..data.registry import resolve_source

        manifest = resolve_source(src, workers=workers, progress=progress)
    if manifest.path is None:
        raise ManifestError(f"the manifest of {src} has no location; write it first")
    return manifest


def source_label(src, source: Manifest) -> str:
    """The name a made dataset is named after: a registered name as given, a folder's
    name (the folder holding a manifest file), else the manifest's own name."""
    from ..data.registry import is_registered

    if not isinstance(src, Manifest):
        text = str(src)
        if is_registered(text):
            return text
        path = Path(text).expanduser()
        folder = path if path.is_dir() else path.parent
        if folder.name:
            return folder.name
    if source.name:
        return source.name
    return source.path.parent.name if source.path is not None else "dataset"


def dataset_name(*parts: str) -> str:
    """A registrable dataset name from parts (``lfw``, ``surgical``): joined with ``-``,
    anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``."""
    import re

    name = "-".join(p for p in parts if p)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._-") or "dataset"
    return name[:64]


def check_registrable(name: str, out: Path) -> None:
    """Refuse, before any work, to register ``name`` for ``out`` when the name already
    belongs to a user's own dataset elsewhere (one mfrkit did not make, still there)."""
    from ..data.registry import get_dataset
    from ..errors import DatasetError
    from ..jobs.output import read_marker

    try:
        old = get_dataset(name)
    except DatasetError:
        return
    old_root = Path(old.root)
    if old_root.resolve() == Path(out).resolve() or not old_root.exists():
        return
    if read_marker(old_root) is None and legacy_fingerprint(old_root) is None:
        raise JobError(f"dataset name {name!r} is registered to {old_root}, which mfrkit did not make; give --out (and register it yourself), "
                       f"or free the name with `mfrkit datasets remove {name}` (your files are not touched)")


def register_output(name: str, out: Path) -> str:
    """Register a made dataset folder (it holds its own manifest) under ``name``."""
    from ..data.registry import add_dataset

    add_dataset(name, out, layout="imagefolder", replace=True)
    return name


def out_folder(out, source: Manifest) -> Path:
    """``out``, refused when it lies in the source dataset's folder (outputs mirror the
    source paths, so they would overwrite its images or mix with them) or holds it."""
    out = Path(out)
    root = source.root.resolve()
    target = out.resolve()
    if target == root or target.is_relative_to(root):
        raise JobError(f"--out {out} lies inside the source dataset folder {root}; outputs would overwrite or mix with its images, choose a folder outside it")
    if root.is_relative_to(target):
        raise JobError(f"--out {out} holds the source dataset folder {root}; choose a folder outside it")
    return out


def source_rows(manifest: Manifest, where=(), limit: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The source's usable rows meeting ``where`` (a seeded sample of ``limit`` of them,
    :func:`mfrkit.data.subset.select_rows`) and its unusable rows meeting ``where``."""
    table = select_rows(manifest.table, where) if where else manifest.table
    usable = table[table["status"] == STATUS_OK]
    unusable = table[table["status"] != STATUS_OK]
    if limit is not None:
        usable = select_rows(usable, limit=limit, seed=seed)
    return usable, unusable


def fingerprint_of(kind: str, config, source_fp: str) -> str:
    """The job's identity: its kind, options (``--limit`` aside), source and version."""
    data = {"kind": kind, "config": dataclasses.asdict(config), "source": source_fp, "version": __version__}
    data["config"].pop("limit", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def legacy_fingerprint(root: Path) -> str | None:
    """The fingerprint of a synth/partial folder made before output markers existed."""
    stamp = root / JOURNAL / "job.json"
    if stamp.is_file():
        try:
            return str(json.loads(read_user_bytes(stamp, "json"))["fingerprint"])
        except (OSError, ValueError, KeyError, TypeError, MfrkitError):
            return None
    if (root / MANIFEST_NAME).is_file():
        try:
            meta = read_manifest(root / MANIFEST_NAME).meta
        except ManifestError:
            return None
        if meta.get("kind") in ("synth", "partial") and meta.get("job_fingerprint"):
            return str(meta["job_fingerprint"])
    return None


def isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


#: Result rows turned into one DataFrame at a time when a job finishes.
_FRAME_BATCH = 4096


class _ManifestRows(Mapping):
    """``item key -> rows`` of a finished job's manifest (its ``job_item`` column), built
    on demand: a rerun of a large finished job does not hold every row as a dict."""

    def __init__(self, table: pd.DataFrame) -> None:
        self._table = table.drop(columns=["job_item"])
        keys = table["job_item"].astype(str).to_numpy()
        order = np.argsort(keys, kind="stable")
        uniq, starts = np.unique(keys[order], return_index=True)
        bounds = list(starts[1:]) + [len(order)]
        self._rows = {str(k): order[a:b] for k, a, b in zip(uniq, starts, bounds)}

    def __getitem__(self, key: str) -> list[dict]:
        part = self._table.iloc[self._rows[key]]
        return [{k: (None if isna(v) else v) for k, v in r.items()} for r in part.to_dict("records")]

    def __iter__(self):
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


# --- the job base ----------------------------------------------------------------------------------------


class DatasetJob(Job):
    """A job that makes a dataset folder from a source manifest (``synth``, ``partial``).

    Subclasses set ``kind``, build ``self.items`` in ``__init__`` (after calling
    :meth:`_setup`) and implement ``run_item``.
    """

    error_status = "render_error"
    #: The container formats the job can write (``--format rec`` / ``bin``).
    containers: tuple[str, ...] = ("rec", "bin")
    #: Name suffix of the made dataset (``<source>-<suffix>``) and its description.
    suffix: str = ""

    def output_label(self) -> str:
        """What the default output folder and dataset name add to the source's name."""
        return self.suffix

    def registered(self, summary: "JobSummary") -> "JobSummary":
        """Register the made dataset when the job chose its folder (no ``--out``)."""
        if self.register_as is not None:
            summary.registered = register_output(self.register_as, self.out)
        return summary

    def _setup(self, src, out, config, *, workers: int, progress: bool, replace: bool) -> None:
        check_limit(config.limit)
        check_no_face(config.on_no_face)
        self.config = config
        self.replace = replace
        self.source = resolve_manifest(src, workers, progress)
        self.register_as: str | None = None
        if out is None:
            # No --out: $MFRKIT_HOME/datasets/<source>-<what>, registered under that name.
            from ..data.registry import mfrkit_home

            self.register_as = dataset_name(source_label(src, self.source), self.output_label())
            out = mfrkit_home() / "datasets" / self.register_as
            check_registrable(self.register_as, out)
        self.out = out_folder(out, self.source)
        where = tuple(getattr(config, "where", ()) or ())
        self.usable, self.unusable = source_rows(self.source, where, config.limit, config.seed)
        self.subset = subset_meta(where, config.limit, seed=config.seed, rows=len(self.usable) + len(self.unusable), of=len(self.source.table))
        self.container = container_of(getattr(config, "image_format", None), self.source.meta, self.containers)
        if self.container is not None:
            self._container_rows()
        self.source_fp = self.source.fingerprint()  # hashes every row: once per job
        self.fingerprint = fingerprint_of(self.kind, config, self.source_fp)
        self._folder = OutputFolder(self.out, kind=self.kind, fingerprint=self.fingerprint, adopt=legacy_fingerprint)
        # The cached landmarks are read by each worker for its own chunks; only the cache's
        # location travels with the job.
        self.landmark_manifest = self.source.path
        self.source_root = self.source.root
        self.items: list[SourceItem] = []

    def _container_rows(self) -> None:
        """What a container output takes of the source: RecordIO groups the images by
        identity (records without one cannot be written: ``no_identity``); a ``.bin``
        masks its probe side and keeps the reference side as it is."""
        if self.container == "rec":
            missing = self.usable["identity"].isna()
            if missing.all():
                raise JobError(f"--format rec writes class labels, and no usable image of {self.source.name or self.source.path} "
                               "has an identity (an insightface .bin carries none: use --format bin)")
            self.unusable = pd.concat([self.unusable, self.usable[missing].assign(status="no_identity")])
            self.usable = group_by_identity(self.usable[~missing])
            self.rec_labels, self.rec_classes = record_labels(self.source.table, self.source.meta)
        else:
            from .container_output import BIN_LAYOUT

            if self.source.meta.get("layout") != BIN_LAYOUT or "side" not in self.usable.columns:
                raise JobError("--format bin writes a masked insightface verification .bin: give the .bin as --src (e.g. --src lfw.bin)")
            side = self.usable["side"]
            self.bin_reference = self.usable[side == "reference"]
            self.usable = self.usable[side == "probe"]
        self._sink: PartSink | None = None

    def __getstate__(self) -> dict:
        # Workers need the items they are sent, the options and the output folder; not
        # the source table, the plan or the main process's caches.
        state = dict(self.__dict__)
        for heavy in ("source", "usable", "unusable", "items", "bin_reference", "rec_labels"):
            state[heavy] = None
        return state

    # --- Job interface ---------------------------------------------------------------

    def plan(self) -> Sequence[SourceItem]:
        return self.items

    def output(self) -> OutputFolder:
        return self._folder

    def replace_files(self, root: Path):
        if not self.replace:
            return None
        return self._own_files(root)

    def _own_files(self, root: Path) -> list[str]:
        """Every file an earlier job of this kind wrote in ``root`` (by its records)."""
        files = [MANIFEST_NAME, CARD, FAILURES, CONTACT_SHEET, JOURNAL, PARTS, "train.rec", "train.idx", "property"]
        files += [p.name for p in root.glob("landmarks.*")] + [p.name for p in root.glob("*.bin")]
        if (root / MANIFEST_NAME).is_file():
            try:
                table = read_manifest(root / MANIFEST_NAME).table
                files += [str(p) for p, s in zip(table["path"], table["status"]) if s == STATUS_OK and isinstance(p, str) and "#" not in p]
                for col in ("occlusion_path",):
                    if col in table.columns:
                        files += [str(p) for p in table[col] if isinstance(p, str)]
            except ManifestError:
                pass
        for part in sorted((root / JOURNAL).glob("part-*.json")):
            try:
                for _, rows in json.loads(read_user_bytes(part, "json")):
                    files += [r["path"] for r in rows if r.get("status") == STATUS_OK and r.get("path")]
            except (OSError, ValueError, TypeError, KeyError, MfrkitError):
                continue
        return files

    def previous_results(self) -> Mapping[str, list[dict]]:
        final = self.out / MANIFEST_NAME
        if not final.exists():
            return {}
        # A finished job rerun (e.g. with a larger --limit): its manifest lists what is
        # done, failures included (their causes are in the source or its landmarks).
        try:
            table = read_manifest(final).table
        except ManifestError:
            return {}
        if "job_item" not in table.columns:
            return {}
        return _ManifestRows(table)

    def is_complete(self, rows: list[dict]) -> bool:
        if self.container is not None:
            return all(part_done(self.out, r) for r in rows if r.get("status") == STATUS_OK and r.get("bytes") is not None)
        return all((self.out / r["path"]).exists() for r in rows if r.get("status") == STATUS_OK and r.get("path"))

    #: Whether items need the dense mesh (the mesh renderer) or the points only.
    needs_mesh: bool = False

    def open_worker(self) -> dict:
        store = None
        if self.backend != "aligned":
            from ..landmarks.cache import open_store

            store = open_store(Manifest(pd.DataFrame(), {}, self.landmark_manifest), self.backend)
        return {"store": store, "faces": {}}

    def run_chunk(self, items: Sequence[SourceItem], state: dict) -> list[list[dict]]:
        # The chunk's landmarks in one read of the store (only the row groups holding them):
        # no worker ever holds every image's landmarks.
        if state["store"] is not None:
            state["faces"] = state["store"].get([it.source_id for it in items], mesh=self.needs_mesh)
        if self.container is not None and "sink" not in state:
            state["sink"] = PartSink(self._folder.path_for(f"{PARTS}/part").parent)  # checked: no link on the way
        # write_output puts this chunk's images into the worker's part file; it is flushed
        # before the rows go back to be journalled.
        self._sink = state.get("sink")
        try:
            rows = super().run_chunk(items, state)
            if self._sink is not None:
                self._sink.flush()
            return rows
        finally:
            state["faces"] = {}
            self._sink = None

    def faces(self, state: dict) -> dict[str, FaceResult]:
        """The landmarks of the chunk being run, by source image_id."""
        return state["faces"]

    def source_path(self, item: SourceItem) -> Path:
        """Absolute path of an item's source image."""
        return self.source_root / item.source_rel

    def failure_rows(self, item: SourceItem, status: str, message: str) -> list[dict]:
        """A manifest row for a source that produced no image: it keeps the output's
        intended path (the file does not exist) and the failure reason as its status."""
        rel = item.outputs[0] if item.outputs else item.source_rel
        return [{"image_id": rel, "path": rel, "identity": item.identity, "source_id": item.source_id, "status": status,
                 "message": message, "source_path": item.source_rel}]

    # --- helpers for subclasses --------------------------------------------------------------

    def detect_needed(self, workers: int, progress: bool, executor=None) -> None:
        """Fill the landmark store for the job's usable images (nothing for ``aligned``),
        on the job's executor."""
        if self.backend == "aligned" or not len(self.usable):
            return
        from ..landmarks.cache import detect_landmarks

        # A --limit / --where run detects only its own images; the store keeps every other image's rows.
        whole = self.config.limit is None and not getattr(self.config, "where", None)
        manifest = self.source if whole else Manifest(self.usable.reset_index(drop=True), self.source.meta, self.source.path)
        detect_landmarks(manifest, self.backend, workers=workers, progress=progress, backend_options=backend_options(self.config.landmark_file),
                         executor=executor)

    def write_output(self, rel: str, image: np.ndarray | None = None, *, data: bytes | None = None) -> dict:
        """Write ``image`` (encoded by the extension of ``rel``), or already encoded ``data``
        as it is, atomically inside the output folder; the manifest's file columns."""
        if data is None:
            data = encode_image(image, CONTAINER_EXT if self.container else Path(rel).suffix)
            h, w = image.shape[:2]
        else:
            w, h = image_size(data)
        if self.container is not None:
            where = self._sink.add(data)  # into the container at the finish (container_output)
        else:
            self._folder.write_bytes(rel, data)
            where = {}
        return {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "width": int(w), "height": int(h), "bytes": len(data), **where}

    def meta(self, description: str, **params) -> dict:
        """The output manifest's metadata: what was made, from which manifest, how."""
        source = self.source
        return {
            "name": self.register_as or f"{source.name or 'dataset'}-{self.suffix}",
            "kind": self.kind,
            "root": ".",
            "description": f"{description} from {source.name or source.path}",
            "seed": self.config.seed,
            "params": {**dataclasses.asdict(self.config), **params},
            "source": {"name": source.name, "path": str(source.path) if source.path else None, "fingerprint": self.source_fp},
            "source_subset": self.subset,
            "job_fingerprint": self.fingerprint,
        }

    def _container_writer(self):
        """The finish's writer of a container output (None for image files)."""
        if self.container == "rec":
            return RecordsOut(self._folder.path_for("train.rec").parent, self.rec_labels, self.rec_classes)
        if self.container == "bin":
            name = str(self.source.meta["verification_bin"]["file"])
            return BinOut(self._folder.path_for(name).parent, self.source.root / name)
        return None

    def _rows_frame(self, results, items: Sequence[SourceItem], unusable_rel: Callable[[str], str], container) -> pd.DataFrame:
        """Every result row in plan order, then a row per unusable source, as one frame;
        a container output gets each image as its row comes (its order is the plan's)."""
        # Rows are turned into frames a batch at a time: the results stay on disk until
        # read, and no list of every row's dict is ever held.
        frames: list[pd.DataFrame] = []
        rows: list[dict[str, Any]] = []
        for it in items:
            for r in results.get(it.key, []):
                r = {**r, "job_item": it.key}
                if container is not None and r.get("status") == STATUS_OK and r.get("bytes") is not None:
                    r = container.add(r) if self.container == "rec" else container.add(r, str(r["source_id"]))
                rows.append(r)
            if len(rows) >= _FRAME_BATCH:
                frames.append(pd.DataFrame(rows))
                rows = []
        if self.container == "bin":
            rows += container.reference_rows(self.bin_reference)
        for _, src in self.unusable.iterrows():
            rel = f"{src['path']}#unusable" if self.container else unusable_rel(str(src["path"]))
            rows.append({"image_id": rel, "path": rel, "identity": None if isna(src.get("identity")) else src.get("identity"), "source_id": src["image_id"],
                         "status": str(src["status"]), "message": "unusable in the source manifest", "source_path": src["path"], "job_item": f"{src['image_id']}#source"})
        frames.append(pd.DataFrame(rows))
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def finish_dataset(self, results: dict[str, list[dict]], items: Sequence[SourceItem], stats: RunStats, meta: dict,
                       unusable_rel: Callable[[str], str], sheet_label: Callable[[dict], str]) -> JobSummary:
        """Write the manifest, failures, card and contact sheet; a job that made no image
        at all is an error (after failures.csv is written, so the reasons can be read)."""
        from ..data_cards import write_card

        out = self.out
        container = self._container_writer()
        try:
            frame = self._rows_frame(results, items, unusable_rel, container)
        except BaseException:
            if container is not None:
                container.abort()
            raise
        ok = frame[frame["status"] == STATUS_OK] if len(frame) else frame
        failed = frame[frame["status"] != STATUS_OK] if len(frame) else frame
        if "fallback" in frame.columns:
            # Images kept by a fallback (copied unmasked, PartialLFW's resize) still count.
            fell = frame[frame["fallback"].notna() & (frame["status"] == STATUS_OK)].copy()
            fell["status"] = fell["fallback"]
            failed = pd.concat([failed, fell], ignore_index=True)
        failures = {str(k): int(v) for k, v in failed["status"].value_counts().sort_index().items()} if len(failed) else {}
        fail_path = out / FAILURES
        cols = ["source_id", "source_path", "status", "message"]
        fail_frame = failed.reindex(columns=["image_id", *cols]) if len(failed) else pd.DataFrame(columns=["image_id", *cols])
        with atomic_path(fail_path) as tmp:
            fail_frame.to_csv(tmp, index=False)
        if not len(ok):
            if container is not None:
                container.abort()
            require_made(0, f"{self.kind} wrote no image", failures,
                         where=f"the reasons per source are in {fail_path}")
        if container is not None:
            meta = {**meta, **container.close()}
            frame = frame.drop(columns=[c for c in ("part_file", "part_offset") if c in frame.columns])
            ok = frame[frame["status"] == STATUS_OK]
        quality = None
        if "quality_ok" in ok.columns and ok["quality_ok"].notna().any():
            checked = ok[ok["quality_ok"].notna()]
            reasons_q: dict[str, int] = {}
            for failed_checks in checked.loc[~checked["quality_ok"].astype(bool), "quality_failed"]:
                for reason in str(failed_checks or "").split(","):
                    if reason:
                        reasons_q[reason] = reasons_q.get(reason, 0) + 1
            quality = {"checked": int(len(checked)), "passed": int(checked["quality_ok"].astype(bool).sum()), "failed_by_reason": dict(sorted(reasons_q.items()))}
        meta = {**meta, "failures": failures, "quality": quality, "outputs": int(len(ok))}
        # Every source is accounted for: failed ones as rows whose status is the reason
        # (their messages go to failures.csv).
        table = frame.drop(columns=[c for c in ("message", "source_path") if c in frame.columns]).reset_index(drop=True)
        manifest = Manifest(table=make_table(table), meta=meta)
        path = write_manifest(manifest, out / MANIFEST_NAME)
        card = write_card(manifest, out / CARD)
        sheet = write_contact_sheet(manifest, out / CONTACT_SHEET, seed=self.config.seed, label=sheet_label)
        if container is not None:
            import shutil

            shutil.rmtree(self._folder.path_for(f"{PARTS}/part", create=False).parent, ignore_errors=True)  # all copied in
        return JobSummary(kind=self.kind, out=out, manifest=path, outputs=int(len(ok)), processed=stats.processed, resumed=stats.resumed,
                          failures=failures, quality=quality, elapsed=stats.elapsed, card=card, contact_sheet=sheet, failures_file=fail_path)
