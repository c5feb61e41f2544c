"""Mask synthesis: mask styles, two renderers, blending, partial faces, and the dataset
jobs ``synth`` (:mod:`.synth_job`) and ``partial`` (:mod:`.partial_job`).

Public API::

    from mfrkit.maskgen import create_renderer, StyleSpec, MaskAugment
    renderer = create_renderer("mesh")                 # or "template"
    params = renderer.sample(rng, landmarks, StyleSpec(types=("surgical",)))
    out = renderer.apply(image, params)                # out.image, out.occlusion, out.params

    from mfrkit.maskgen import synthesize, SynthConfig, make_partial, PartialConfig
"""

from .augment import MaskAugment
from .partial import REGIONS, crop_region, partial_box
from .dataset_job import JobSummary
from .partial_job import PartialConfig, make_partial
from .quality import CoverageCheck, check_coverage
from .renderers import RENDERERS, Rendered, Renderer, RenderParams, create_renderer
from .synth_job import SynthConfig, synthesize
from .styles import COLORS, COVERAGES, MASK_TYPES, StyleParams, StyleSpec, sample_style
from .textures import TEXTURES

__all__ = [
    "COLORS",
    "COVERAGES",
    "CoverageCheck",
    "JobSummary",
    "MASK_TYPES",
    "MaskAugment",
    "PartialConfig",
    "REGIONS",
    "RENDERERS",
    "RenderParams",
    "Rendered",
    "Renderer",
    "StyleParams",
    "StyleSpec",
    "SynthConfig",
    "TEXTURES",
    "check_coverage",
    "create_renderer",
    "crop_region",
    "make_partial",
    "partial_box",
    "sample_style",
    "synthesize",
]
