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
