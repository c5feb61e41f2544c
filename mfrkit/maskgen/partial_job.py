"""``mfrkit partial``: partial-face crops (PartialLFW) of a dataset, as a job on
:mod:`mfrkit.jobs`; the crops themselves are :mod:`mfrkit.maskgen.partial`.

One item per source image; it writes one crop per (region, factor, placement).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Sequence

from .. import __version__
from ..data.imageio import read_image
from ..data.manifest import STATUS_OK
from ..errors import ImageError
from ..jobs import ExecutorSpec, RunStats, check_unique_outputs, run_job
from ..data.subset import limit_option, where_option
from ..options import option
from .container_output import placeholder
from .dataset_job import DatasetJob, JobError, JobSummary, SourceItem, job_backend
from .partial import align, crop_region, get_template, parse_factors, parse_regions


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
    aligned: str | None = option(None, metavar="TEMPLATE", help="Inputs are aligned crops of this template (arcface112, arcface112x96, mfr2, "
                                                                "arcface160p30, ...): use the template's points, detect nothing.")
    on_no_face: str = option("skip", help="skip (record it) or copy (PartialLFW's fallback: crop the resized image).")
    image_format: str | None = option(None, flags="--format", short="-f", help="rec: write the crops as insightface RecordIO (train.rec, train.idx, "
                                                                              "property; JPEG inside), labelled by identity; default: PNG files, or RecordIO "
                                                                              "for a RecordIO source.")
    where: list[str] = where_option()
    limit: int | None = limit_option("usable source images")

    def centered(self) -> tuple[bool, ...]:
        return {"original": (False,), "centered": (True,), "both": (False, True)}[self.placement]


@dataclass(frozen=True, slots=True)
class PartialItem(SourceItem):
    """One source image and the crops to make of it.

    Attributes
    ----------
    crops : tuple of (path, region, factor, centered)
    """

    crops: tuple[tuple[str, str, float, bool], ...] = ()


def partial_rel(source_rel: str, region: str, factor: float, centered: bool) -> str:
    """``<region>[_centered]/factor_<f>/<source path>.png``."""
    p = PurePosixPath(source_rel)
    folder = f"{region}_centered" if centered else region
    return str(PurePosixPath(folder) / f"factor_{factor:g}" / p.with_suffix(".png"))


class PartialJob(DatasetJob):
    """Partial-face crops of every usable image of a source manifest."""

    kind = "partial"
    suffix = "partial"
    chunk_size = 2  # an item is 36-72 images
    containers = ("rec",)  # several crops per image: no .bin

    def __init__(self, src, out, config: PartialConfig = PartialConfig(), *, workers: int = 1, progress: bool = False, replace: bool = False) -> None:
        if config.placement not in ("original", "centered", "both"):
            raise JobError(f"placement must be original, centered or both, got {config.placement!r}")
        self.regions = parse_regions(config.regions)
        self.factors = parse_factors(config.factors)
        self.template = get_template(config.template)
        job_backend(config.aligned, config.landmarks, config.landmark_file)  # bad options: before the scan
        self._setup(src, out, config, workers=workers, progress=progress, replace=replace)
        if config.image_format is not None and self.container is None:
            raise JobError(f"partial writes PNG files, or --format rec; not {config.image_format!r}")
        def items_of(sid: str, rel: str, identity: str | None) -> list[PartialItem]:
            crops = tuple((placeholder(sid, f"{r}_{f:g}{'_c' if c else ''}") if self.container else partial_rel(rel, r, f, c), r, f, c)
                          for r in self.regions for f in self.factors for c in config.centered())
            return [PartialItem(key=f"{sid}#partial", outputs=tuple(c[0] for c in crops), source_id=sid, identity=identity, source_rel=rel, crops=crops)]

        self.items = self.plan_sources(items_of, 1)
        # Sources differing only in extension (x.jpg, x.png) both become x.png.
        check_unique_outputs(self.items, lambda it: it.source_id, "rename the sources")

    def run_item(self, item: PartialItem, state: dict) -> list[dict]:
        config = self.config
        base = {"identity": item.identity, "source_id": item.source_id, "seed": config.seed, "landmark_backend": self.backend, "variant": "partial"}
        try:
            image = read_image(self.source_path(item))
        except ImageError as exc:
            return self.failure_rows(item, exc.reason, str(exc))
        template = self.template
        fallback = None
        face = self.face_of(item, image, state)
        if face is not None and face.status == STATUS_OK and face.landmarks is not None:
            aligned = align(image, face.landmarks.points5, template)
        else:
            status = face.status if face is not None else "no_landmarks"
            if config.on_no_face != "copy" or status != "no_face":
                return self.failure_rows(item, status, "no face found" if status == "no_face" else f"landmarks: {status}")
            import cv2

            # PartialLFW's own fallback: the whole image resized to the crop size.
            aligned = cv2.resize(image, (template.size, template.size), interpolation=cv2.INTER_LINEAR)
            fallback = "no_face"
        rows = []
        for rel, region, factor, centered in item.crops:
            crop = crop_region(aligned, region, factor, centered=centered, template=template)
            files = self.write_output(rel, crop)
            rows.append({**base, "image_id": rel, "status": STATUS_OK, "region": region, "factor": float(factor), "centered": bool(centered),
                         "partial_template": template.name, "fallback": fallback, **files})
        if fallback:
            rows[0].update(message="no face found; cropped the resized image", source_path=item.source_rel)
        return rows

    def finish(self, results: dict[str, list[dict]], items: Sequence[PartialItem], stats: RunStats) -> JobSummary:
        config = self.config
        meta = self.meta(f"partial faces ({self.template.name}) made by mfrkit {__version__}", regions=list(self.regions), factors=list(self.factors),
                         landmark_backend=self.backend)
        first = (self.regions[0], self.factors[0], config.centered()[0])
        return self.finish_dataset(results, items, stats, meta, lambda rel: partial_rel(rel, *first),
                                   lambda r: f"{r.get('region')} {r.get('factor'):g}{' c' if r.get('centered') else ''}")


def make_partial(src, out=None, config: PartialConfig = PartialConfig(), *, executor: ExecutorSpec | None = None, progress: bool = False,
                 replace: bool = False) -> JobSummary:
    """Make partial-face crops of a dataset (``mfrkit partial``); see :mod:`.partial`.

    Parameters are as for :func:`mfrkit.maskgen.synth_job.synthesize`; without ``out``
    the folder is ``$MFRKIT_HOME/datasets/<source>-partial``, registered under that name.
    """
    executor = executor or ExecutorSpec()
    job = PartialJob(src, out, config, workers=executor.local_workers, progress=progress, replace=replace)
    with job.output().claim(replace=job.replace_files):
        job.detect_needed(progress, executor)
        summary = run_job(job, executor, progress=progress)
    return job.registered(summary)
