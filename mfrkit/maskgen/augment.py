"""``MaskAugment``: a random mask on an aligned face crop, as a training transform.

Usage (albumentations / torchvision style, but with an explicit generator so a run is
reproducible whatever the data-loader worker count)::

    augment = MaskAugment(types="surgical,cloth,kn95", coverage="random")
    masked = augment(crop, rng)          # (H, W, 3) uint8 -> same shape

The crop must be aligned to a crop template (default ArcFace: 112x112, 112x96, or any
size with the same framing; ``template=`` names another, e.g. ``mfr2``); its landmarks
are the template's mean face (:mod:`mfrkit.landmarks.template`), so nothing is detected. Sampling and rendering are
the synthesis renderers' own, so training-time masks look like ``mfrkit synth`` output.
"""

from __future__ import annotations

import numpy as np

from ..errors import MfrkitError
from ..landmarks.template import DEFAULT_TEMPLATE, template_landmarks
from .renderers import Rendered, create_renderer
from .styles import StyleSpec


class MaskAugment:
    """Put a random mask on an aligned face crop.

    Parameters
    ----------
    types, colors, textures, coverage : str
        A name, a comma list or ``random`` (declared weights), as for ``mfrkit synth``.
    renderer : str
        ``mesh`` (default; lit with the canonical mesh's normals) or ``template``.
    p : float
        Probability of masking a call's crop (1: always; the caller may decide instead).
    template : str
        The crop template the crops follow (:mod:`mfrkit.alignments`).
    """

    def __init__(self, types: str = "random", colors: str = "random", textures: str = "random", coverage: str = "random", renderer: str = "mesh", p: float = 1.0,
                 template: str = DEFAULT_TEMPLATE) -> None:
        if not 0.0 <= p <= 1.0:
            raise MfrkitError(f"MaskAugment probability must be in [0, 1], got {p}")
        self.spec = StyleSpec.parse(types, colors, textures, coverage)
        self.renderer = create_renderer(renderer)
        self.p = float(p)
        self.template = template
        template_landmarks(template, 112, 112)  # an unknown template fails here, not in a data loader

    def __repr__(self) -> str:
        return f"MaskAugment(spec={self.spec}, renderer={self.renderer.name!r}, p={self.p})"

    def render(self, image: np.ndarray, rng: np.random.Generator) -> Rendered:
        """Mask ``image``, an aligned (H, W, 3) uint8 RGB crop, unconditionally; the full
        result (image, occlusion, params)."""
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise MfrkitError(f"MaskAugment expects an (H, W, 3) uint8 RGB crop, got {img.shape} {img.dtype}")
        params = self.renderer.sample(rng, template_landmarks(self.template, img.shape[1], img.shape[0]), self.spec)
        return self.renderer.apply(img, params)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The crop with a mask (or unchanged, with probability ``1 - p``)."""
        if self.p < 1.0 and rng.random() >= self.p:
            return np.asarray(image)
        return self.render(image, rng).image
