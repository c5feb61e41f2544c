"""Mask synthesis: mask styles, two renderers, blending, partial faces, dataset jobs.

Public API::

    from mfrkit.maskgen import create_renderer, StyleSpec, MaskAugment
    renderer = create_renderer("mesh")                 # or "template"
    params = renderer.sample(rng, landmarks, StyleSpec(types=("surgical",)))
    out = renderer.apply(image, params)                # out.image, out.occlusion, out.params

    from mfrkit.maskgen import synthesize, SynthConfig, make_partial, PartialConfig
"""

from .augment import MaskAugment
from .partial import REGIONS, crop_region, partial_box
from .pipeline import (
    JobSummary,
    PartialConfig,
    SynthConfig,
    aligned_landmarks,
    make_partial,
    synthesize,
)
from .quality import CoverageCheck, check_coverage
from .renderers import RENDERERS, Rendered, Renderer, RenderParams, create_renderer
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
    "aligned_landmarks",
    "check_coverage",
    "create_renderer",
    "crop_region",
    "make_partial",
    "partial_box",
    "sample_style",
    "synthesize",
]
