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
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..data.imageio import encode_image, image_size, read_image
from ..data.manifest import MANIFEST_NAME, STATUS_OK, Manifest
from ..data.manifest_stream import ManifestReader, ManifestWriter, is_manifest
from ..data.subset import subset_meta
from ..errors import ManifestError, MfrkitError, require_made
from ..jobs import JOURNAL, Item, Job, JobError, OutputFolder, Plan, RunStats
from ..landmarks.base import FaceResult
from ..userfiles import read_user_bytes
from ..data.recordio_labels import record_labels_of
from .contact_sheet import draw_contact_sheet, sheet_picks
from .container_output import CONTAINER_EXT, PARTS, BinOut, PartSink, RecordsOut, container_of, part_done
from .dataset_finish import failures_of, manifest_schema, result_frames, survey, write_rows
from .dataset_source import PreviousRows, SourceRows

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


#: Manifest metadata key a layout of aligned crops sets to its crop template
#: (``arcface112`` for insightface's RecordIO sets): jobs then default to ``--aligned``.
ALIGNED_META = "aligned"


@dataclass(frozen=True)
class LandmarkSource:
    """Where a dataset job's landmarks come from.

    Attributes
    ----------
    backend : str
        A :data:`~mfrkit.landmarks.base.BACKENDS` name: ``template`` (aligned crops,
        nothing detected or stored), ``mediapipe``, ``dlib`` or ``file``.
    options : dict
        The backend's options (``{"template": ...}``, ``{"roi_template": ...}`` for
        mediapipe on aligned crops, ``{"path": ...}`` for a landmark file).
    template : str or None
        The crop template of aligned inputs, None for photos.
    """

    backend: str
    options: dict
    template: str | None = None

    @property
    def detects(self) -> bool:
        """Whether landmarks are detected (and cached in the source's store)."""
        return self.backend != "template"


def aligned_template(aligned) -> str | None:
    """The crop template of ``--aligned``: a name (checked), ``True`` for insightface's
    ``arcface112`` (what the flag meant before it took a template), None / False / ""
    for photos."""
    if aligned is None or aligned is False or aligned == "":
        return None
    name = "arcface112" if aligned is True else str(aligned)
    from ..alignments import crop_template

    crop_template(name)  # an unknown name lists the templates
    return name


def job_backend(aligned, landmarks: str | None, landmark_file: str | None, renderer: str | None = None, *, redetect: bool = False) -> LandmarkSource:
    """The landmark source a job uses, checked before the job claims its ``out`` folder.

    Aligned inputs (``aligned`` a crop template) take the template's landmarks (backend
    ``template``, the default there), or with ``redetect`` mediapipe's mesh run on the
    crop where the template puts the face (no face detector). Photos default to
    ``mediapipe``. A renderer, when given, must get what it fits from the backend.
    """
    from ..landmarks.base import BACKENDS
    from .renderers import landmarks_needed

    template = aligned_template(aligned)
    if landmarks == "template" and template is None:
        raise JobError("--landmarks template needs aligned inputs: give --aligned TEMPLATE (arcface112, arcface112x96, mfr2, ...)")
    if redetect and template is None:
        raise JobError("--redetect runs mediapipe on aligned crops: give --aligned TEMPLATE too (photos are always detected)")
    if template is not None and redetect:
        if landmarks not in (None, "mediapipe"):
            raise JobError(f"--redetect detects with mediapipe on the crop; --landmarks {landmarks} cannot be combined with it")
        backend, options = "mediapipe", {"roi_template": template}
    elif template is not None and landmarks in (None, "template"):
        backend, options = "template", {"template": template}
    else:
        backend, options = landmarks or "mediapipe", {}
    factory = BACKENDS.get(backend)
    if backend == "file":
        if not landmark_file:
            raise JobError("--landmarks file needs the landmark file: --landmark-file PATH")
        options = {"path": str(landmark_file)}
    needs = landmarks_needed(renderer) if renderer else None
    if needs == "mesh" and not getattr(factory, "has_mesh", False):
        raise JobError(f"the mesh renderer needs a dense mesh; backend {backend!r} has none (use --landmarks mediapipe or --renderer template)")
    # The file backend gives 68 points when its file holds them; the renderer checks each face.
    if needs == "68" and not getattr(factory, "has_68", False) and backend != "file":
        raise JobError(f"the template renderer needs 68 landmarks; backend {backend!r} gives none (use --landmarks mediapipe or dlib)")
    return LandmarkSource(backend, options, template)


@dataclass(frozen=True)
class Source:
    """A ``--src`` value resolved once: the manifest to stream, and the name a dataset
    made from it is named after (:func:`resolve_src`)."""

    manifest: Manifest | ManifestReader
    label: str


def resolve_src(src, workers: int, progress: bool) -> Source:
    """``--src`` (a registered name, a manifest file or folder, a dataset folder, a
    ``.bin``, or a manifest used as it is) as a :class:`Source`. Its label is a
    registered name as given, else a folder's name (the folder holding a manifest
    file), else the manifest's own name, else its folder's."""
    from ..data.registry import is_registered, open_source

    label = None
    if is_manifest(src):
        manifest = src
    else:
        manifest = open_source(src, workers=workers, progress=progress)
        text = str(src)
        if is_registered(text):
            label = text
        else:
            path = Path(text).expanduser()
            label = (path if path.is_dir() else path.parent).name or None
    if manifest.path is None:
        raise ManifestError(f"the manifest of {src} has no location; write it first")
    return Source(manifest, label or manifest.name or manifest.path.parent.name)


def dataset_name(*parts: str) -> str:
    """A registrable dataset name from parts (``lfw``, ``surgical``): joined with ``-``,
    anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``."""
    import re

    name = "-".join(p for p in parts if p)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._-") or "dataset"
    return name[:64]


_REMEDY = "give --out (and register it yourself), or free the name with `mfrkit datasets remove {name}` (your files are not touched)"


def check_registrable(name: str, out: Path, *, legacy: Callable[[Path], object] | None = None, remedy: str = _REMEDY) -> None:
    """Refuse, before any work, to register ``name`` for ``out`` when the name already
    belongs to a user's own dataset elsewhere (one mfrkit did not make, still there).

    ``legacy`` (folder -> not None when an older mfrkit made it, such as the demo's
    sample) adds to the markers known here; ``remedy`` is what the error tells the user
    to do (``{name}`` filled in)."""
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
    if read_marker(old_root) is None and legacy_fingerprint(old_root) is None and (legacy is None or legacy(old_root) is None):
        raise JobError(f"dataset name {name!r} is registered to {old_root}, which mfrkit did not make; {remedy.format(name=name)}")


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
            with ManifestReader(root / MANIFEST_NAME) as found:
                meta = found.meta
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
        source = resolve_src(src, workers, progress)
        self.source = source.manifest
        self.register_as: str | None = None
        if out is None:
            # No --out: $MFRKIT_HOME/datasets/<source>-<what>, registered under that name.
            from ..data.registry import mfrkit_home

            self.register_as = dataset_name(source.label, self.output_label())
            out = mfrkit_home() / "datasets" / self.register_as
            check_registrable(self.register_as, out)
        self.out = out_folder(out, self.source)
        # Aligned inputs by the option, or by the layout (a RecordIO set of ArcFace crops).
        aligned = config.aligned if config.aligned not in (None, False, "") else self.source.meta.get(ALIGNED_META)
        self.landmark_source = job_backend(aligned, config.landmarks, config.landmark_file, getattr(config, "renderer", None),
                                           redetect=bool(getattr(config, "redetect", False)))
        self.backend = self.landmark_source.backend
        where = tuple(getattr(config, "where", ()) or ())
        self.container = container_of(getattr(config, "image_format", None), self.source.meta, self.containers)
        self.rows = SourceRows(self.source, config.limit, self._container_source(), where=where, seed=config.seed)
        self.subset = subset_meta(where, config.limit, seed=config.seed, rows=self.rows.n_selected, of=self.rows.n_total)
        if self.container == "rec":
            self.rec_labels, self.rec_classes = self._record_labels()
        self._sink: PartSink | None = None
        self.source_fp = self.source.fingerprint()  # hashes every row (streamed): once per job
        self.fingerprint = fingerprint_of(self.kind, config, self.source_fp)
        self._folder = OutputFolder(self.out, kind=self.kind, fingerprint=self.fingerprint, adopt=legacy_fingerprint)
        # The cached landmarks are read by each worker for its own chunks; only the cache's
        # location travels with the job.
        self.landmark_manifest = self.source.path
        self.source_root = self.source.root
        self.items: Sequence[SourceItem] | Plan = []

    def _container_source(self) -> str | None:
        """What a container output takes of the source (:class:`SourceRows`): RecordIO
        groups the images by identity (records without one cannot be written:
        ``no_identity``); a ``.bin`` masks its probe side and keeps the reference side."""
        if self.container == "bin":
            from .container_output import BIN_LAYOUT

            columns = self.source.table.columns if isinstance(self.source, Manifest) else self.source.columns
            if self.source.meta.get("layout") != BIN_LAYOUT or "side" not in columns:
                raise JobError("--format bin writes a masked insightface verification .bin: give the .bin as --src (e.g. --src lfw.bin)")
        return self.container

    def _record_labels(self) -> tuple[dict, int]:
        if not self.rows.n_usable:
            raise JobError(f"--format rec writes class labels, and no usable image of {self.source.name or self.source.path} "
                           "has an identity (an insightface .bin carries none: use --format bin)")
        return record_labels_of(self.source)

    def __getstate__(self) -> dict:
        # Workers need the items they are sent, the options and the output folder; not
        # the source table, the plan or the main process's caches.
        state = dict(self.__dict__)
        for heavy in ("source", "rows", "items", "rec_labels"):
            state[heavy] = None
        return state

    # --- Job interface ---------------------------------------------------------------

    def plan(self) -> Sequence[SourceItem] | Plan:
        return self.items

    def plan_sources(self, items_of: Callable[[str, str, str | None], list[SourceItem]], per_source: int) -> Plan:
        """The plan: ``items_of(source_id, source_path, identity)`` for every usable source
        row, one part per row group of the source (``per_source`` items each)."""
        rows = self.rows

        def parts():
            for batch in rows.usable(["image_id", "path", "identity"]):
                identities = batch["identity"] if "identity" in batch.columns else [None] * len(batch)
                items: list[SourceItem] = []
                for sid, rel, identity in zip(batch["image_id"], batch["path"], identities):
                    items += items_of(str(sid), str(rel), None if isna(identity) else identity)
                yield items

        return Plan(parts, rows.n_usable * per_source)

    def output(self) -> OutputFolder:
        return self._folder

    def replace_files(self, root: Path) -> Iterator[str] | None:
        if not self.replace:
            return None
        return self._own_files(root)

    def _own_files(self, root: Path) -> Iterator[str]:
        """Every file an earlier job of this kind wrote in ``root`` (by its records), named
        as they are read: the manifest's files a row group at a time, then the journal's
        part by part, then the job's own files (the manifest and journal last, so they are
        read before they are removed)."""
        if (root / MANIFEST_NAME).is_file():
            try:
                reader = ManifestReader(root / MANIFEST_NAME)
                extra = [c for c in ("occlusion_path",) if c in reader.columns]
                for batch in reader.batches(["path", "status", *extra]):
                    yield from (str(p) for p, s in zip(batch["path"], batch["status"]) if s == STATUS_OK and isinstance(p, str) and "#" not in p)
                    for col in extra:
                        yield from (str(p) for p in batch[col] if isinstance(p, str))
            except ManifestError:
                pass
        for part in sorted((root / JOURNAL).glob("part-*.json")):
            try:
                names = [r["path"] for _, rows in json.loads(read_user_bytes(part, "json")) for r in rows if r.get("status") == STATUS_OK and r.get("path")]
            except (OSError, ValueError, TypeError, KeyError, MfrkitError):
                continue
            yield from names
        yield from [p.name for p in root.glob("landmarks.*")] + [p.name for p in root.glob("*.bin")]
        yield from ["train.rec", "train.idx", "property", CARD, FAILURES, CONTACT_SHEET, PARTS, MANIFEST_NAME, JOURNAL]

    def previous_results(self) -> PreviousRows | dict:
        final = self.out / MANIFEST_NAME
        if not final.exists():
            return {}
        # A finished job rerun (e.g. with a larger --limit): its manifest lists what is
        # done, failures included (their causes are in the source or its landmarks), in
        # plan order; it is read a row group at a time as the parts are planned.
        try:
            previous = PreviousRows(final)
        except ManifestError:
            return {}
        return previous if "job_item" in previous.columns else {}

    def is_complete(self, rows: list[dict]) -> bool:
        if self.container is not None:
            return all(part_done(self.out, r) for r in rows if r.get("status") == STATUS_OK and r.get("bytes") is not None)
        return all((self.out / r["path"]).exists() for r in rows if r.get("status") == STATUS_OK and r.get("path"))

    #: Whether items need the dense mesh (the mesh renderer) or the points only.
    needs_mesh: bool = False

    def open_worker(self) -> dict:
        store = None
        if self.landmark_source.detects:
            from ..landmarks.lookup import open_store

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
            state.pop("decoded", None)
            self._sink = None

    def source_image(self, item: SourceItem, state: dict) -> np.ndarray:
        """An item's source image, decoded once for all of its slots (``--mask all``,
        a grid, ``--mix``: a source's items are consecutive in a chunk)."""
        held = state.get("decoded")
        if held is not None and held[0] == item.source_id:
            return held[1]
        image = read_image(self.source_path(item))
        state["decoded"] = (item.source_id, image)
        return image

    def faces(self, state: dict) -> dict[str, FaceResult]:
        """The landmarks of the chunk being run, by source image_id."""
        return state["faces"]

    def face_of(self, item: SourceItem, image: np.ndarray, state: dict) -> FaceResult | None:
        """The landmarks of an item's source image: its template's for aligned inputs,
        else the chunk's cached ones (None when the store has none)."""
        if not self.landmark_source.detects:
            from ..landmarks.template import template_landmarks

            return FaceResult("ok", template_landmarks(self.landmark_source.template, image.shape[1], image.shape[0]), 1)
        return state["faces"].get(item.source_id)

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

    def detect_needed(self, progress: bool, executor=None) -> None:
        """Fill the landmark store for the job's usable images (nothing for template
        landmarks), on the job's executor (an ExecutorSpec; None: in this process)."""
        if not self.landmark_source.detects or not self.rows.n_usable:
            return
        from ..landmarks.lookup import detect_landmarks

        # A --limit / --where run detects only its own images; the store keeps every other image's rows.
        whole = self.config.limit is None and not getattr(self.config, "where", None)
        manifest = self.source if whole else self.rows
        detect_landmarks(manifest, self.backend, progress=progress, backend_options=self.landmark_source.options, executor=executor)

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

    def _placing(self, container, write: bool) -> Callable[[dict], dict] | None:
        """How each result row goes into a container output, in plan order: copied in
        (``write``) or, for the finish's first pass, the same row without writing."""
        if container is None:
            return None
        keys = iter(range(1, 1 << 62))

        def place(row: dict) -> dict:
            if row.get("status") != STATUS_OK or row.get("bytes") is None:
                return row
            if self.container == "rec":
                return container.add(row) if write else container.placed(row, next(keys))
            return container.add(row, str(row["source_id"])) if write else container.placed(row, str(row["source_id"]))

        return place

    def finish_dataset(self, results: Mapping[str, list[dict]], items: Sequence[SourceItem] | Plan, stats: RunStats, meta: dict,
                       unusable_rel: Callable[[str], str], sheet_label: Callable[[dict], str]) -> JobSummary:
        """Write the manifest, failures, card and contact sheet (and a container output),
        a part of the plan at a time (:mod:`mfrkit.maskgen.dataset_finish`); a job that
        made no image at all is an error (after failures.csv is written, so the reasons
        can be read)."""
        from ..data_cards import write_card

        out = self.out
        container = self._container_writer()

        def frames(write: bool):
            return result_frames(results, items, lambda: self._extra_rows(unusable_rel, container), self._placing(container, write))

        fail_path = out / FAILURES
        try:
            found = survey(frames(False), fail_path)
            failures = failures_of(found)
            require_made(found.outputs, f"{self.kind} wrote no image", failures, where=f"the reasons per source are in {fail_path}")
            quality = found.quality()
            meta = {**meta, "failures": failures, "quality": quality, "outputs": int(found.outputs)}
            # Every source is accounted for: failed ones as rows whose status is the reason
            # (their messages go to failures.csv).
            made_only, candidates = found.sheet()
            picks = sheet_picks(candidates, seed=self.config.seed)
            with ManifestWriter(out / MANIFEST_NAME, meta, schema=manifest_schema(found.signatures)) as writer:
                sheet_rows = write_rows(frames(True), writer, picks, made_only)
                if container is not None:
                    writer.meta = {**meta, **container.close()}  # before the manifest, which names its records
                    container = None
        finally:
            if container is not None:
                container.abort()
        if self.container is not None:
            import shutil

            shutil.rmtree(self._folder.path_for(f"{PARTS}/part", create=False).parent, ignore_errors=True)  # all copied in
        path = writer.path
        manifest = ManifestReader(path)
        card = write_card(manifest, out / CARD)
        sheet = (draw_contact_sheet(sheet_rows, manifest.abspath, out / CONTACT_SHEET, label=sheet_label, source=self.source)
                 if sheet_rows else None)
        return JobSummary(kind=self.kind, out=out, manifest=path, outputs=int(found.outputs), processed=stats.processed, resumed=stats.resumed,
                          failures=failures, quality=quality, elapsed=stats.elapsed, card=card, contact_sheet=sheet, failures_file=fail_path)

    def _extra_rows(self, unusable_rel: Callable[[str], str], container) -> Iterator[dict]:
        """The rows after the items': a ``.bin``'s reference side (copied unchanged), then
        a row per source that is not usable (its status the reason)."""
        if self.container == "bin":
            for batch in self.rows.reference(["image_id", "path", "sha256", "width", "height", "bytes", "pair"]):
                yield from container.reference_rows(batch)
        for batch in self.rows.unusable(["image_id", "path", "identity"]):
            for src in batch.to_dict("records"):
                rel = f"{src['path']}#unusable" if self.container else unusable_rel(str(src["path"]))
                yield {"image_id": rel, "path": rel, "identity": None if isna(src.get("identity")) else src.get("identity"), "source_id": src["image_id"],
                       "status": str(src["status"]), "message": "unusable in the source manifest", "source_path": src["path"],
                       "job_item": f"{src['image_id']}#source"}
