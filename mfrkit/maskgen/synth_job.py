"""``mfrkit synth``: a masked copy of a dataset, as a job on :mod:`mfrkit.jobs`.

One item per output slot of a source image (one slot, or one per mask type with
``--mask all``, plus the unmasked copy with ``--mix``). Every item depends only on its
source image, its landmarks and ``item_rng(seed, source_id, slot)``, so the output is
byte-identical whatever the executor, the worker count or the order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

import pandas as pd

from .. import __version__
from ..data.imageio import read_image_bytes
from ..data.manifest import MANIFEST_NAME, STATUS_OK, Manifest
from ..data.manifest_stream import ManifestReader
from ..errors import ImageError
from ..jobs import ExecutorSpec, Plan, RunStats, check_unique_outputs, run_job
from ..data.subset import limit_option, where_option
from ..options import option
from ..rng import item_rng
from .dataset_job import (
    ALIGNED_META,
    WRITABLE,
    DatasetJob,
    JobError,
    JobSummary,
    SourceItem,
    job_backend,
)
from .container_output import CONTAINERS, placeholder
from .quality import check_coverage
from .occlusion import encode_occlusion, occlusion_rel
from .assets import DRAWING_VERSION
from .renderers import RENDERERS, create_renderer, landmarks_needed
from .styles import MASK_TYPES, StyleSpec, grid_cells, parse_names


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
        Landmark backend; default ``mediapipe`` for photos, ``template`` for aligned inputs.
    landmark_file : str or None
        For the ``file`` backend: the landmark file.
    aligned : str or None
        Inputs are aligned crops of this template (``arcface112``, ``arcface112x96``,
        ``mfr2``, ``arcface160p30``, ...; ``True`` means ``arcface112``): the landmarks
        come from the template, nothing is detected.
    redetect : bool
        With ``aligned``: mediapipe's mesh on each crop (no face detector) instead.
    mix : bool
        Also keep each source image, unmasked (a mixed training set).
    on_no_face : str
        ``skip`` (record the failure) or ``copy`` (also copy the image unmasked).
    image_format : str or None
        Output extension (``.jpg``, ``.png``); None keeps each source's.
    where : list of str
        ``--where`` conditions on the source manifest's columns (:mod:`mfrkit.data.subset`).
    limit : int or None
        Only a seeded sample of ``limit`` usable source images (after ``where``).
    """

    types: str = option("random", flags="--mask", help="Mask type (surgical, n95, kn95, cloth, gas), a comma list, random, all (one output per type), "
                                                       "or grid:nist (one output per cell of a NIST-style grid: shape x nose coverage x colour).")
    colors: str = option("random", flags="--color", help="Colour names or #rrggbb, comma list, or random (each type's palette).")
    textures: str = option("random", flags="--texture", help="plain, nonwoven, weave, stripes, dots, floral, camo, plaid, rubber, or an image file or folder of them "
                             "(tiled over the mask, as MaskTheFace's --pattern); comma list or random.")
    coverage: str = option("proper", help="How masks are worn: proper (default), nose_exposed, chin; a comma list, or random (70/20/10 %).")
    shape: str = option("natural", help="Mask outline: natural (each type's own), or NIST's wide or round; a comma list.")
    nose: str = option("random", help="How far up the nose a proper mask reaches: high, medium, low (NIST's levels); a comma list, or random "
                                      "(each type's own top edge).")
    save_occlusion: bool = option(False, negatable=False, help="Also write each output's binary occlusion mask (<name>_occlusion.png, "
                                                                 "255 = covered) beside it, its path in the manifest.")
    renderer: str = option("mesh", help="mesh (3D face mesh, follows pose) or template (68-point warp).")
    seed: int = option(0, help="Seed: the same seed gives the same images, whatever --workers.")
    landmarks: str | None = option(None, help="Landmark backend: mediapipe (default for photos), dlib or file (template renderer only), "
                                                "template (default with --aligned).")
    landmark_file: str | None = option(None, help="For --landmarks file: the landmark file.")
    aligned: str | None = option(None, metavar="TEMPLATE", help="Inputs are aligned crops of this template: arcface112 (insightface 112x112), "
                                                                "arcface112x96, mfr2 (160x160), arcface160p30 (PartialLFW), dlib150, arcface<S>[p<P>]; "
                                                                "landmarks come from the template, nothing is detected.")
    redetect: bool = option(False, negatable=False, help="With --aligned: run mediapipe's face mesh on each crop (where the template puts the "
                                                         "face; no face detector) instead of using the template's landmarks.")
    mix: bool = option(False, negatable=False, help="Also keep every source image unmasked (a mixed training set).")
    on_no_face: str = option("skip", help="skip (record it) or copy (also copy the image unmasked).")
    image_format: str | None = option(None, flags="--format", short="-f", help="Output format: jpg, png (image files), rec (insightface RecordIO: "
                                                                              "train.rec, train.idx, property) or bin (a masked verification .bin); "
                                                                              "default: the source's (RecordIO for RecordIO, .bin for a .bin, else each file's).")
    where: list[str] = where_option()
    limit: int | None = limit_option("usable source images")

    def grid(self) -> str | None:
        """The grid's name for ``--mask grid:<name>``, else None."""
        text = str(self.types).strip()
        return text[len("grid:") :].strip() if text.startswith("grid:") else None

    def spec(self) -> StyleSpec:
        if self.grid() is not None:
            grid_cells(self.grid())  # an unknown grid lists the known ones
            if (self.colors, self.textures, self.shape, self.nose) != ("random", "random", "natural", "random") or self.coverage not in ("proper", "random"):
                raise JobError(f"--mask {self.types} fixes each cell's type, colour, texture, coverage, shape and nose coverage; "
                               "leave --color, --texture, --coverage, --shape and --nose at their defaults")
            return StyleSpec()
        types = "random" if self.types == "all" else self.types
        return StyleSpec.parse(types, self.colors, self.textures, self.coverage, self.shape, self.nose)

    def slots(self) -> tuple[str, ...]:
        """Output slots per source: one per type for ``all``, one per cell for a grid,
        else one (``mask``)."""
        if self.grid() is not None:
            return tuple(cell.name for cell in grid_cells(self.grid()))
        if self.types == "all":
            return tuple(MASK_TYPES.names())
        return ("mask",)

    def label(self) -> str:
        """What a default output folder is named after: ``masked`` for random types, the
        types (``surgical``, ``surgical-cloth``, ``all``), or ``grid-<name>``."""
        if self.grid() is not None:
            return f"grid-{self.grid()}"
        names = parse_names(self.types, "--mask")
        return "masked" if names is None else "-".join(names)


@dataclass(frozen=True, slots=True)
class SynthItem(SourceItem):
    """One output slot of one source image.

    Attributes
    ----------
    slot : str
        ``mask``, a mask type (``--mask all``) or ``unmasked`` (``--mix``).
    primary : bool
        The source's first slot: the one that records a failure of the source.
    out_rel : str
        The output image's path.
    copy_rel : str or None
        With ``--on-no-face copy``: where the unmasked copy of a faceless source goes.
    """

    slot: str = "mask"
    primary: bool = True
    out_rel: str = ""
    copy_rel: str | None = None


def out_rel(source_rel: str, suffix: str, ext: str | None) -> str:
    """The output path of a source: same folders, ``<stem>_<suffix><ext>``."""
    p = PurePosixPath(source_rel)
    name = p.stem + (f"_{suffix}" if suffix else "") + (ext or p.suffix or ".jpg")
    return str(p.with_name(name))


def output_ext(fmt: str | None) -> str | None:
    """``--format`` as an extension (None keeps each source's)."""
    if fmt is None or fmt.lower().lstrip(".") in CONTAINERS:
        return None
    fmt = fmt.lower() if fmt.startswith(".") else "." + fmt.lower()
    if fmt not in WRITABLE:
        raise JobError(f"cannot write images as {fmt!r}; use jpg or png (or rec, bin)")
    return fmt


def sheet_label(row: dict) -> str:
    """A synth output's label on the contact sheet (the image id goes on a line of its
    own): the mask type with the NIST axes when they were set (``--shape``, ``--nose``,
    ``grid:nist``), colour / texture, and how the mask is worn, e.g. ``surgical |
    light_blue/nonwoven | proper``; an unmasked copy (``--mix``) is ``unmasked``."""

    def text(key: str) -> str | None:
        value = row.get(key)
        return value if isinstance(value, str) and value else None

    mask_type = text("mask_type")
    if mask_type is None:
        return text("variant") or ""
    kind = [mask_type]
    shape, nose = text("mask_shape"), text("nose_coverage")
    if shape and shape != "natural":
        kind.append(shape)
    if nose:
        kind.append(f"nose:{nose}")
    parts = [" ".join(kind)]
    look = "/".join(v for v in (text("mask_color"), text("mask_texture")) if v)
    if look:
        parts.append(look)
    if text("coverage"):
        parts.append(text("coverage"))
    return " | ".join(parts)


class SynthJob(DatasetJob):
    """Masks on every usable image of a source manifest."""

    kind = "synth"
    suffix = "masked"
    chunk_size = 16

    def __init__(self, src, out, config: SynthConfig = SynthConfig(), *, workers: int = 1, progress: bool = False, replace: bool = False) -> None:
        RENDERERS.get(config.renderer)
        self.spec = config.spec()
        self.ext = output_ext(config.image_format)
        job_backend(config.aligned, config.landmarks, config.landmark_file, config.renderer, redetect=config.redetect)  # bad options: before the scan
        self.needs_mesh = landmarks_needed(config.renderer) == "mesh"
        self._setup(src, out, config, workers=workers, progress=progress, replace=replace)
        self._check_container()
        self._check_formats()
        self.items = self._plan_items()
        check_unique_outputs(self.items, lambda it: it.source_id, "use --format to keep source extensions apart or rename the sources")

    def _check_container(self) -> None:
        if self.container is None:
            return
        if self.config.save_occlusion:
            raise JobError(f"--save-occlusion writes a file beside each image; a --format {self.container} output has none")
        if self.container == "bin" and (len(self.config.slots()) > 1 or self.config.mix):
            raise JobError("a .bin holds one probe image per pair: --format bin takes one mask per image (not --mask all, a grid, or --mix)")

    def _check_formats(self) -> None:
        if self.ext is not None or self.container is not None:
            return
        found: set[str] = set()
        for batch in self.rows.usable(["path"]):
            found |= {PurePosixPath(str(p)).suffix.lower() for p in batch["path"]}
        unwritable = sorted(found - set(WRITABLE) - {""})
        if unwritable:
            raise JobError(f"the source holds {', '.join(unwritable)} images, which mfrkit cannot write; give an output format: --format png (or jpg)")

    def _plan_items(self) -> Plan:
        config = self.config
        slots = config.slots()

        def items_of(sid: str, rel: str, identity: str | None) -> list[SynthItem]:
            items = []
            common = {"source_id": sid, "identity": identity, "source_rel": rel}
            for slot in slots:
                suffix = slot if slot != "mask" else ("masked" if config.mix else "")
                rel_out = placeholder(sid, slot) if self.container else out_rel(rel, suffix, self.ext)
                copy_rel = (placeholder(sid, "copy") if self.container else out_rel(rel, "", None)) \
                    if (config.on_no_face == "copy" and slot == slots[0] and not config.mix) else None
                extra = (occlusion_rel(rel_out),) if config.save_occlusion else ()
                items.append(SynthItem(key=f"{sid}#{slot}", outputs=(rel_out,) + extra + ((copy_rel,) if copy_rel else ()), slot=slot, primary=slot == slots[0],
                                       out_rel=rel_out, copy_rel=copy_rel, **common))
            if config.mix:
                rel_out = placeholder(sid, "unmasked") if self.container else out_rel(rel, "", None)
                items.append(SynthItem(key=f"{sid}#unmasked", outputs=(rel_out,), slot="unmasked", primary=False, out_rel=rel_out, **common))
            return items

        return self.plan_sources(items_of, len(slots) + int(config.mix))

    def output_label(self) -> str:
        return self.config.label()

    def open_worker(self) -> dict:
        return {**super().open_worker(), "renderer": create_renderer(self.config.renderer)}

    def is_complete(self, rows: list[dict]) -> bool:
        # An item is done when its image and, with --save-occlusion, its mask are there.
        return super().is_complete(rows) and all((self.out / r["occlusion_path"]).exists() for r in rows if r.get("occlusion_path"))

    def _slot_spec(self, slot: str) -> tuple[StyleSpec, dict]:
        """The style spec of an output slot and the manifest columns it adds."""
        grid = self.config.grid()
        if grid is not None:
            cell = {c.name: c for c in grid_cells(grid)}[slot]
            return cell.spec, {**cell.params, "grid_cell": cell.name}
        if slot in MASK_TYPES:
            return self.spec.with_type(slot), {}
        return self.spec, {}
    def run_item(self, item: SynthItem, state: dict) -> list[dict]:
        config = self.config
        base = {"identity": item.identity, "source_id": item.source_id, "seed": config.seed, "landmark_backend": self.backend, "renderer": config.renderer}
        if item.slot == "unmasked":
            files = self.write_output(item.out_rel, data=read_image_bytes(self.source_path(item)))
            return [{**base, "image_id": item.out_rel, "variant": "unmasked", "status": STATUS_OK, **files}]
        try:
            image = self.source_image(item, state)
        except ImageError as exc:
            # One failure per source, not one per output slot.
            return self.failure_rows(item, exc.reason, str(exc)) if item.primary else []
        face = self.face_of(item, image, state)
        if face is None or face.status != STATUS_OK or face.landmarks is None:
            status = face.status if face is not None else "no_landmarks"
            if not item.primary:
                return []
            if config.on_no_face == "copy" and status == "no_face" and item.copy_rel:
                files = self.write_output(item.copy_rel, data=read_image_bytes(self.source_path(item)))
                return [{**base, "image_id": item.copy_rel, "variant": "unmasked", "status": STATUS_OK, "n_faces": 0, "fallback": "no_face",
                         "message": "no face found; copied unmasked", "source_path": item.source_rel, **files}]
            message = "no face found" if status == "no_face" else f"landmarks: {status}"
            return [{**self.failure_rows(item, status, message)[0], "n_faces": 0 if face is None else face.n_faces}]
        landmarks, n_faces = face.landmarks, face.n_faces
        renderer = state["renderer"]
        rng = item_rng(config.seed, item.source_id, item.slot)
        spec, columns = self._slot_spec(item.slot)
        params = renderer.sample(rng, landmarks, spec)
        rendered = renderer.apply(image, params)
        check = check_coverage(rendered.occlusion, landmarks, params.style.coverage)
        files = self.write_output(item.out_rel, rendered.image)
        style = params.style
        row = {**base, "image_id": item.out_rel, "variant": "masked", "status": STATUS_OK, "n_faces": n_faces, **params.record(),
               "mask_shape": style.outline, "nose_coverage": style.nose, **columns, **check.record(), "mask_params": rendered.params_json(), **files}
        if config.save_occlusion:
            rel = occlusion_rel(item.out_rel)
            self._folder.write_bytes(rel, encode_occlusion(rendered.occlusion))
            row["occlusion_path"] = rel
        return [row]

    def finish(self, results: dict[str, list[dict]], items: Sequence[SynthItem], stats: RunStats) -> JobSummary:
        config = self.config
        meta = self.meta(f"masked faces synthesized by mfrkit {__version__} ({config.renderer} renderer; drawing version "
                         f"{DRAWING_VERSION}, whose images differ from earlier versions' for the same seed)", landmark_backend=self.backend,
                         aligned_template=self.landmark_source.template)
        if self.landmark_source.template is not None:
            meta[ALIGNED_META] = self.landmark_source.template  # the masked copy is aligned like its source
        if self.landmark_source.detects:
            meta["landmarks"] = {"backend": self.backend, "inherited": True, "from": str(self.source.path),
                                 "note": "each output carries its source's landmarks (points, no mesh); detect on the masked pixels with mfrkit landmarks"}
        slots = config.slots()
        first = slots[0] if slots[0] != "mask" else ("masked" if config.mix else "")
        summary = self.finish_dataset(results, items, stats, meta, lambda rel: out_rel(rel, first, self.ext), sheet_label)
        self.inherit_landmarks(summary.manifest)
        return summary

    def inherit_landmarks(self, manifest_path: Path, chunk: int = 1024) -> Path | None:
        """Write the landmarks every output was drawn from into the output's own landmark
        store (``<out>/landmarks.<backend>/``), keyed by the output's id and sha256.

        A masked copy keeps its source's geometry, so the source's landmarks are its
        landmarks, as MLFW's aligned images carry LFW's. They are *inherited*: the store's
        options key says so (``{"inherited_from": ...}``), so a reader that reuses whatever
        is cached (the bench) uses them, and a detection with explicit backend options
        (``mfrkit landmarks``, a later synth or partial on the copy) replaces them with
        landmarks detected on the masked pixels. Points only: the dense mesh is not copied.
        The outputs are read from the manifest just written, ``chunk`` at a time.
        """
        if not self.landmark_source.detects:
            return None
        from ..landmarks.lookup import open_store
        from ..landmarks.store import STORE_FILE, encode_results, write_shard

        store = None
        number = 0
        for part in _chunks(_made(manifest_path), chunk):
            if store is None:
                source_store = open_store(Manifest(pd.DataFrame(), {}, self.landmark_manifest), self.backend)
                key = json.dumps({"inherited_from": str(self.landmark_manifest), "source_options": source_store.options_key()}, sort_keys=True)
                self._folder.path_for(f"landmarks.{self.backend}/{STORE_FILE}")  # refuses a link planted in the output folder
                store = open_store(Manifest(pd.DataFrame(), {}, self.out / MANIFEST_NAME), self.backend)
                store.reset(key)
            faces = source_store.get([sid for _, _, sid in part], mesh=False)
            kept = [(oid, sha, faces[sid]) for oid, sha, sid in part if sid in faces and faces[sid].status == STATUS_OK]
            if kept:
                write_shard(store.folder, number, encode_results([k[0] for k in kept], [k[1] for k in kept], [k[2] for k in kept]), key)
            number += 1
        if store is None:
            return None
        store.commit()
        return store.folder


def _made(manifest_path: Path) -> Iterator[tuple[str, str | None, str]]:
    """(image id, sha256, source id) of every output a synth made from its source's pixels
    (masked or unmasked copies, not the fallback copies of faceless sources), in order."""
    columns = ["image_id", "sha256", "source_id", "status", "variant", "fallback"]
    with ManifestReader(manifest_path) as manifest:
        for batch in manifest.batches([c for c in columns if c in manifest.columns]):
            made = (batch["status"] == STATUS_OK) & batch["variant"].isin(["masked", "unmasked"])
            if "fallback" in batch.columns:
                made &= batch["fallback"].isna() | (batch["fallback"].astype(str) == "")
            made = batch[made]
            sha = made["sha256"].astype(object).where(made["sha256"].notna(), None)
            yield from zip(made["image_id"].astype(str), sha, made["source_id"].astype(str))


def _chunks(values: Iterator, size: int) -> Iterator[list]:
    part: list = []
    for value in values:
        part.append(value)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


def synthesize(src, out=None, config: SynthConfig = SynthConfig(), *, executor: ExecutorSpec | None = None, progress: bool = False,
               replace: bool = False) -> JobSummary:
    """Make a masked version of a dataset (``mfrkit synth``).

    Parameters
    ----------
    src : str, path or Manifest
        A registered dataset name, a manifest, or a dataset folder (see
        :func:`mfrkit.data.registry.resolve_source`).
    out : path, optional
        Output folder: new, empty, or this job's own (a rerun with the same options
        resumes). A folder holding files mfrkit did not write is refused. None:
        ``$MFRKIT_HOME/datasets/<source>-<mask>`` (``<source>`` a registered name as given
        or the source folder's name; ``<mask>`` the types, ``masked`` for random,
        ``grid-<name>`` for a grid), registered as a dataset of that name
        (``JobSummary.registered``).
    config : SynthConfig
    executor : ExecutorSpec, optional
        Where landmark detection and rendering run: ``local`` (the default,
        ``workers`` processes) or ``ray``; scanning the source takes
        ``executor.local_workers`` processes here.
    progress : bool
        Show progress bars.
    replace : bool
        When ``out`` holds another synth output made by mfrkit, remove the files it
        recorded and make this one there (files mfrkit did not write are never touched).

    Returns
    -------
    JobSummary

    Raises
    ------
    JobError
        Bad options, or no image could be made at all.
    OutputFolderError, FolderInUseError
        ``out`` cannot be used.
    """
    executor = executor or ExecutorSpec()
    job = SynthJob(src, out, config, workers=executor.local_workers, progress=progress, replace=replace)
    with job.output().claim(replace=job.replace_files):  # before detecting: a refused folder costs nothing
        job.detect_needed(progress, executor)
        summary = run_job(job, executor, progress=progress)
    return job.registered(summary)

