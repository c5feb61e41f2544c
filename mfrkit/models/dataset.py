"""A torch Dataset over a mfrkit manifest that pairs each image with its unmasked source.

Every usable manifest row (status ``ok``) is a sample. Its *source* is the row named by
its ``source_id`` (a synthetic masked/partial image's unmasked original) or, for an
image without one, the image itself. A sample yields (all float tensors normalised with
the model's :class:`~mfrkit.model_input.ModelInput`):

=================== ================ ==================================================
key                 shape, dtype     meaning
=================== ================ ==================================================
image               (3, H, W) f32    the sample
source              (3, H, W) f32    its unmasked source (unless ``with_source=False``)
label               () int64         identity index into ``classes``; -1 = no identity
domain              () int64         1 = masked or partial, 0 = unmasked
teacher             (3, h, w) f32    the source prepared for the teacher (when one is set)
attributes          (A,) f32         attribute columns of the sample (NaN = unknown)
source_attributes   (A,) f32         the same for the source
=================== ================ ==================================================

Crops come from one of three places:

* ``aligned=False``: the photo is aligned from cached 5-point landmarks with the
  alignment the preprocessing names (``arcface112``...). A synthetic image whose own
  landmarks are missing (a mask can defeat the detector) borrows its source's when both
  images have the same size, since synthesis draws on the source photo in place.
* ``aligned=True``: the files already are aligned crops; they are only resized.
* ``pack=``: a :class:`~mfrkit.packs.Pack` made by ``mfrkit pack``: the crops were
  aligned once and are read from memory-mapped shards (no decoding, no warp; resized
  when the model's size differs from the pack's). Rows whose crop failed are dropped
  (``no_crop``).

``mask_transform(crop, rng) -> crop`` masks unmasked crops on the fly (e.g.
``mfrkit.maskgen.MaskAugment``) with probability ``mask_probability``, drawing from
``item_rng(seed, image_id, "mask", epoch)`` so a run is reproducible whatever the worker
count; a transformed sample gets ``domain = 1``. It is applied to the aligned crop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..alignments import get_alignment
from ..data.imageio import read_image
from ..data.manifest import Manifest
from ..errors import MfrkitError
from ..landmarks.base import FaceResult, Landmarks
from ..model_input import ModelInput
from ..packs.pack import Pack
from ..rng import item_rng

MaskTransform = Callable[[np.ndarray, np.random.Generator], np.ndarray]
OCCLUDED_VARIANTS = ("masked", "partial")


@dataclass(frozen=True)
class _Sample:
    image_id: str
    path: str
    source_path: str
    label: int
    domain: int
    landmarks: Landmarks | None
    source_landmarks: Landmarks | None
    attributes: tuple[float, ...]
    source_attributes: tuple[float, ...]
    row: int = -1  # pack rows (-1 without a pack)
    source_row: int = -1


def _as_landmarks(value: FaceResult | Landmarks | None) -> Landmarks | None:
    if isinstance(value, Landmarks):
        return value
    if isinstance(value, FaceResult) and value.status == "ok":
        return value.landmarks
    return None


def _attribute_values(row: Mapping[str, Any], columns: Sequence[str]) -> tuple[float, ...]:
    out = []
    for col in columns:
        v = row.get(col)
        out.append(float("nan") if v is None or pd.isna(v) else float(bool(v)) if isinstance(v, (bool, np.bool_)) else float(v))
    return tuple(out)


class PairedFaceDataset(Dataset):
    """Samples of a manifest paired with their unmasked sources (see the module docstring).

    Parameters
    ----------
    manifest : Manifest
    preprocessing : ModelInput
        The student's input.
    landmarks : mapping of image_id to FaceResult or Landmarks, optional
        Required unless ``aligned``; from ``mfrkit.landmarks.lookup.get_landmarks``.
    aligned : bool
        The images already are aligned crops.
    teacher_preprocessing : ModelInput, optional
        Also yield ``teacher``, the source prepared for a teacher.
    mask_transform : callable, optional
        ``(crop, rng) -> crop`` applied to unmasked samples with ``mask_probability``.
    attributes : sequence of str
        Manifest columns yielded as ``attributes`` / ``source_attributes``.
    variants : sequence of str, optional
        Keep only samples of these variants (sources may be of any variant).
    seed : int
    pack : Pack, optional
        Read crops from this pack (``manifest`` must be its index, ``pack.manifest``);
        no landmarks are needed.
    with_source : bool
        Yield ``source`` (families that do not read it save a crop per sample).

    Attributes
    ----------
    classes : list of str
        Identity names; ``label`` indexes this list.
    dropped : Counter
        Rows left out, by reason (``no_landmarks``, ``source_missing``, ``variant``,
        ``no_crop``).
    """

    def __init__(
        self,
        manifest: Manifest,
        preprocessing: ModelInput,
        *,
        landmarks: Mapping[str, FaceResult | Landmarks] | None = None,
        aligned: bool = False,
        teacher_preprocessing: ModelInput | None = None,
        mask_transform: MaskTransform | None = None,
        mask_probability: float = 0.5,
        attributes: Sequence[str] = (),
        variants: Sequence[str] | None = None,
        seed: int = 0,
        pack: Pack | None = None,
        with_source: bool = True,
    ) -> None:
        if pack is not None:
            aligned = False
            for prep in (preprocessing, teacher_preprocessing):
                if prep is not None:
                    pack.alignment_for(prep.align)  # a pack without the crop fails here, naming it
        elif not aligned and landmarks is None:
            raise MfrkitError("landmarks are needed to align the images (or pass aligned=True for ready crops)")
        if not 0.0 <= mask_probability <= 1.0:
            raise MfrkitError(f"mask_probability must be in [0, 1], got {mask_probability}")
        missing_cols = [c for c in attributes if c not in manifest.table.columns]
        if missing_cols:
            raise MfrkitError(f"manifest has no attribute column(s) {missing_cols}")
        self.manifest = manifest
        self.preprocessing = preprocessing
        self.teacher_preprocessing = teacher_preprocessing
        self.aligned = aligned
        self.pack = pack
        self.with_source = bool(with_source)
        self.mask_transform = mask_transform
        self.mask_probability = float(mask_probability)
        self.attributes = tuple(attributes)
        self.seed = int(seed)
        self.epoch = 0
        self.dropped: Counter = Counter()

        ok = manifest.ok()
        rows = {r["image_id"]: r for r in ok.to_dict("records")}
        identities = sorted({str(r["identity"]) for r in rows.values() if not pd.isna(r.get("identity"))})
        self.classes = identities
        index = {name: i for i, name in enumerate(identities)}
        lms = landmarks or {}
        self.samples: list[_Sample] = []
        for image_id, row in rows.items():
            variant = row.get("variant")
            variant = None if pd.isna(variant) else str(variant)
            if variants is not None and variant not in variants:
                self.dropped["variant"] += 1
                continue
            source_id = row.get("source_id")
            if source_id is None or pd.isna(source_id):
                source = row
            elif source_id in rows:
                source = rows[source_id]
            elif not self.with_source and teacher_preprocessing is None:
                source = row  # nothing reads the source: a copy without its sources (partial crops) trains as it is
            else:
                self.dropped["source_missing"] += 1
                continue
            own_lm = src_lm = None
            row_no = source_no = -1
            if pack is not None:
                row_no, source_no = pack.row(image_id), pack.row(source["image_id"])
                if row["crop_status"] != "ok" or source["crop_status"] != "ok":
                    self.dropped["no_crop"] += 1
                    continue
            elif not aligned:
                src_lm = _as_landmarks(lms.get(source["image_id"]))
                own_lm = _as_landmarks(lms.get(image_id))
                if own_lm is None and source is not row and _same_size(row, source):
                    own_lm = src_lm
                if own_lm is None or src_lm is None:
                    self.dropped["no_landmarks"] += 1
                    continue
            identity = row.get("identity")
            self.samples.append(
                _Sample(
                    image_id=image_id,
                    path=row["path"],
                    source_path=source["path"],
                    label=-1 if pd.isna(identity) else index[str(identity)],
                    domain=int(variant in OCCLUDED_VARIANTS),
                    landmarks=own_lm,
                    source_landmarks=src_lm,
                    attributes=_attribute_values(row, self.attributes),
                    source_attributes=_attribute_values(source, self.attributes),
                    row=row_no,
                    source_row=source_no,
                )
            )

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the on-the-fly masking draws of ``epoch``."""
        self.epoch = int(epoch)

    def _crop(self, image: np.ndarray, lm: Landmarks | None, prep: ModelInput) -> np.ndarray:
        if self.aligned:
            return prep.resize(image)
        return get_alignment(prep.align).crop(image, lm, prep.input_size)

    def _crops(self, s: _Sample) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The sample's crop, its source's crop (when ``with_source``) and the source's
        teacher crop (with a teacher), (H, W, 3) uint8 RGB; each photo decoded once."""
        prep, tprep = self.preprocessing, self.teacher_preprocessing
        if self.pack is not None:
            crop = self.pack.crop(s.row, prep.align, prep.input_size)
            src = self.pack.crop(s.source_row, prep.align, prep.input_size) if self.with_source else None
            teacher = self.pack.crop(s.source_row, tprep.align, tprep.input_size) if tprep is not None else None
            return crop, src, teacher
        image = read_image(self.manifest.abspath(s.path))
        crop = self._crop(image, s.landmarks, prep)
        if not self.with_source and tprep is None:
            return crop, None, None
        source = image if s.source_path == s.path else read_image(self.manifest.abspath(s.source_path))
        src = self._crop(source, s.source_landmarks, prep) if self.with_source else None
        teacher = self._crop(source, s.source_landmarks, tprep) if tprep is not None else None
        return crop, src, teacher

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = self.samples[i]
        crop, src_crop, teacher_crop = self._crops(s)
        domain = s.domain
        if self.mask_transform is not None and domain == 0:
            rng = item_rng(self.seed, s.image_id, "mask", self.epoch)
            if rng.random() < self.mask_probability:
                crop = np.ascontiguousarray(self.mask_transform(crop, rng), dtype=np.uint8)
                if crop.shape[:2] != tuple(self.preprocessing.input_size):
                    raise MfrkitError(f"mask_transform changed the crop size to {crop.shape[:2]}")
                domain = 1
        item = {
            "image": torch.from_numpy(self.preprocessing.to_input(crop)),
            "label": torch.tensor(s.label, dtype=torch.int64),
            "domain": torch.tensor(domain, dtype=torch.int64),
        }
        if src_crop is not None:
            item["source"] = torch.from_numpy(self.preprocessing.to_input(src_crop))
        if teacher_crop is not None:
            item["teacher"] = torch.from_numpy(self.teacher_preprocessing.to_input(teacher_crop))
        if self.attributes:
            item["attributes"] = torch.tensor(s.attributes, dtype=torch.float32)
            item["source_attributes"] = torch.tensor(s.source_attributes, dtype=torch.float32)
        return item


def _same_size(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    try:
        return int(a["width"]) == int(b["width"]) and int(a["height"]) == int(b["height"])
    except (KeyError, TypeError, ValueError):
        return False


def mask_augment(**options) -> MaskTransform:
    """The mask-synthesis transform ``mfrkit.maskgen.MaskAugment(**options)`` as a ``mask_transform``."""
    from ..maskgen import MaskAugment

    return MaskAugment(**options)
