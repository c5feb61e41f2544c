"""Coverage checks: does a rendered mask cover what its coverage preset says it covers?

Each preset (:data:`~mfrkit.maskgen.styles.COVERAGES`) lists landmark groups the mask
must cover and groups it must leave visible. A group is *covered* when every one of
its points lies on the occlusion mask and *exposed* when none does. Both tests give
the edge of the mask the benefit of the doubt, so a check does not hinge on one pixel
of anti-aliasing: a point counts as covered when the mask holds a pixel within
``tolerance`` of it, and as exposed unless the mask holds the point's own pixel.

Groups, from iBUG-68 points (5-point fallbacks in brackets):

* ``eyes``: the twelve eye-contour points 36-47 [both eye centres];
* ``nose``: the nose tip, point 30 [nose tip];
* ``mouth``: the mouth corners 48, 54 and the lip midpoints 51, 57 [mouth corners];
* ``chin``: point 8 moved 15 % of the way towards point 57, i.e. on the chin rather
  than on its outline [not available from 5 points].
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..landmarks.base import Landmarks
from .styles import COVERAGES

GROUPS = ("eyes", "nose", "mouth", "chin")


def group_points(landmarks: Landmarks) -> dict[str, np.ndarray]:
    """Landmark points of each group, ``{group: (n, 2)}``, pixels. ``chin`` is absent
    without 68 points."""
    p68 = landmarks.points68
    if p68 is not None:
        p = np.asarray(p68, dtype=np.float64)
        return {
            "eyes": p[36:48],
            "nose": p[30:31],
            "mouth": p[[48, 54, 51, 57]],
            "chin": (p[8] + 0.15 * (p[57] - p[8]))[None, :],
        }
    p = np.asarray(landmarks.points5, dtype=np.float64)
    return {"eyes": p[0:2], "nose": p[2:3], "mouth": p[3:5]}


@dataclass(frozen=True)
class CoverageCheck:
    """Result of checking one masked image.

    Attributes
    ----------
    coverage : str
        The preset checked against.
    covered : dict
        Fraction of each group's points on the mask, ``{group: 0..1}``; None for a
        group whose points all lie outside the image (not checked).
    failed : tuple of str
        Expectations not met, e.g. ``("nose_not_covered",)``.
    """

    coverage: str
    covered: dict
    failed: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failed

    def record(self) -> dict:
        """Manifest columns: ``quality_ok`` and ``quality_failed`` (comma list)."""
        return {"quality_ok": self.ok, "quality_failed": ",".join(self.failed)}


def check_coverage(occlusion: np.ndarray, landmarks: Landmarks, coverage: str, *, tolerance: float = 1.0) -> CoverageCheck:
    """Check an occlusion mask against a coverage preset.

    Parameters
    ----------
    occlusion : ndarray of shape (H, W), bool
        Pixels the mask covers.
    landmarks : Landmarks
        The face's landmarks, pixels of the same image.
    coverage : str
        A :data:`~mfrkit.maskgen.styles.COVERAGES` name.
    tolerance : float
        Pixels: a point counts as covered when the mask holds a pixel this close to it.

    Returns
    -------
    CoverageCheck
    """
    preset = COVERAGES.get(coverage)
    occ = np.asarray(occlusion, dtype=bool)
    h, w = occ.shape
    r = max(0, int(round(tolerance)))
    kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    near = cv2.dilate(occ.astype(np.uint8), kernel).astype(bool) if r else occ
    groups = group_points(landmarks)
    covered: dict[str, float] = {}
    failed = []
    for name, pts in groups.items():
        # Points outside the image (a chin cut off by a tight crop) cannot be judged.
        inside = (pts[:, 0] >= -0.5) & (pts[:, 0] < w - 0.5) & (pts[:, 1] >= -0.5) & (pts[:, 1] < h - 0.5)
        if not inside.any():
            covered[name] = None
            continue
        x = np.round(pts[inside, 0]).astype(int)
        y = np.round(pts[inside, 1]).astype(int)
        on = near[y, x]
        covered[name] = round(float(on.mean()), 3)
        if name in preset.covers and not on.all():
            failed.append(f"{name}_not_covered")
        if name in preset.exposes and occ[y, x].any():
            failed.append(f"{name}_covered")
    return CoverageCheck(coverage=coverage, covered=covered, failed=tuple(failed))


# --- how photographed a mask's edge looks -----------------------------------------------------------


def _gradient(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude (Sobel, 3x3) of an image's grey levels, float32 (H, W)."""
    g = np.asarray(image)
    if g.ndim == 3:
        g = cv2.cvtColor(g, cv2.COLOR_RGB2GRAY)
    g = g.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy)


def boundary_band(occlusion: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels within ``width`` pixels of an occlusion mask's edge, (H, W) bool: the
    dilated mask minus the eroded mask, clipped to the image."""
    occ = np.asarray(occlusion, dtype=np.uint8)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return (cv2.dilate(occ, kernel) > 0) & ~(cv2.erode(occ, kernel, borderType=cv2.BORDER_REPLICATE) > 0)


def boundary_gradients(original: np.ndarray, masked: np.ndarray, occlusion: np.ndarray, *, width: int = 1) -> tuple[float, float, int]:
    """Gradient energy on a mask's boundary, in the masked image and in the original.

    A mask pasted onto a photo adds a step edge: the gradient on its boundary is far
    above the photo's own there. A mask that looks photographed (edge softened like the
    photo, lit like the face) adds less. The ratio of the two sums, pooled over many
    images, measures that: 1.0 would be an edge as soft as the skin it covers.

    Parameters
    ----------
    original, masked : ndarray of shape (H, W, 3), uint8
        The photo before and after masking.
    occlusion : ndarray of shape (H, W), bool
        The renderer's occlusion mask.
    width : int
        Half-width of the boundary band, pixels (:func:`boundary_band`).

    Returns
    -------
    masked_sum, original_sum : float
        Sums of the gradient magnitude (grey levels per pixel) over the band.
    pixels : int
        Pixels in the band (0 when the mask is empty or covers everything).
    """
    band = boundary_band(occlusion, width)
    if not band.any():
        return 0.0, 0.0, 0
    return float(_gradient(masked)[band].sum()), float(_gradient(original)[band].sum()), int(band.sum())
