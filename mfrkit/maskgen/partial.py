"""Partial faces: rectangular patches around the eyes, nose or mouth (PartialLFW).

The ``partiallfw`` template reproduces PartialLFW (Hoermann et al., "Attention-based
Partial Face Recognition", ICIP 2021) exactly:

1. Alignment to 160x160 with padding 0.3 on MTCNN's 5-point mean face: rotation and
   scale from the least-squares similarity to the padded mean face, translation putting
   the eye midpoint at (80, 64); bilinear, grey (128) border.
2. Region centre: the region's point of the padded mean face (image-left eye,
   image-right eye, nose tip, mouth centre = the corners' mean), 15 px lower (the
   alignment puts the eyes 15 px below the mean face's).
3. Box: ``x1 = int(cx - (15 + 120 f))``, ``y1 = int(cy - (10 + 105 f))``,
   ``x2 = int(cx + 15 + 120 f)``, ``y2 = int(cy + 10 + 105 f)``, inclusive, so a box is
   ``x2 - x1 + 1`` by ``y2 - y1 + 1`` pixels; everything outside is grey 128.
4. Centered variant: the patch shifted by ``(80 - cx, 80 - cy)`` (bilinear, grey
   border), so the region centre sits at the image centre.

The ``arcface112`` template offers the same regions on the 112x112 ArcFace crop: the
standard 5-point similarity alignment, region centres on the ArcFace template, box
half-sizes scaled by 112/160, centred variant at (56, 56).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..align import ARCFACE_112, similarity_transform
from ..errors import MfrkitError, UnknownNameError

#: MTCNN's 5-point mean face in unit coordinates, as PartialLFW aligns with it:
#: image-left eye, image-right eye, nose, left and right mouth corner.
MTCNN_MEAN_FACE = np.array(
    [[0.2194, 0.1871], [0.7747, 0.1871], [0.4971, 0.5337], [0.3207, 0.7633], [0.6735, 0.7633]],
    dtype=np.float64,
)

#: Regions by name: which template points their centre is the mean of.
REGIONS: dict[str, tuple[int, ...]] = {"leye": (0,), "reye": (1,), "nose": (2,), "mouth": (3, 4)}
#: PartialLFW's factors.
PARTIAL_LFW_FACTORS = tuple(round(0.10 + 0.05 * k, 2) for k in range(9))
GREY = 128


@dataclass(frozen=True)
class PartialTemplate:
    """Where the regions are in an aligned crop.

    Attributes
    ----------
    name : str
    size : int
        Side of the aligned crop, pixels.
    points : ndarray of shape (5, 2)
        Template the 5 landmarks are aligned to, pixels.
    eye_anchor : tuple of float or None
        When set, the alignment's translation puts the eye midpoint here instead of
        least squares (PartialLFW's aligner does this).
    centre_shift : tuple of float
        Added to every region centre (PartialLFW: 15 px down).
    box_scale : float
        Scales the half-sizes ``15 + 120 f`` and ``10 + 105 f``.
    """

    name: str
    size: int
    points: np.ndarray
    eye_anchor: tuple[float, float] | None
    centre_shift: tuple[float, float]
    box_scale: float

    def centre(self, region: str) -> tuple[float, float]:
        """Region centre in the aligned crop, pixels (unrounded)."""
        if region not in REGIONS:
            raise UnknownNameError(f"unknown face region {region!r}; choose one of: {', '.join(REGIONS)}")
        p = self.points[list(REGIONS[region])].mean(0)
        return float(p[0] + self.centre_shift[0]), float(p[1] + self.centre_shift[1])


def _partial_lfw() -> PartialTemplate:
    size, pad = 160, 0.3
    pts = (pad + MTCNN_MEAN_FACE) / (2 * pad + 1) * size
    return PartialTemplate("partiallfw", size, pts, (0.5 * size, 0.4 * size), (0.0, 15.0), 1.0)


TEMPLATES: dict[str, PartialTemplate] = {
    "partiallfw": _partial_lfw(),
    "arcface112": PartialTemplate("arcface112", 112, ARCFACE_112.copy(), None, (0.0, 0.0), 112.0 / 160.0),
}


def get_template(name: str) -> PartialTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise UnknownNameError(f"unknown partial-face template {name!r}; choose one of: {', '.join(TEMPLATES)}") from None


def alignment_matrix(points5: np.ndarray, template: PartialTemplate) -> np.ndarray:
    """(2, 3) matrix taking image pixels to the template's aligned crop, from 5
    ArcFace-order landmarks ``points5`` of shape (5, 2) in image pixels."""
    pts = np.asarray(points5, dtype=np.float64).reshape(-1, 2)
    if pts.shape != (5, 2):
        raise MfrkitError(f"partial faces need 5 landmarks, got {pts.shape[0]}")
    m = similarity_transform(pts, template.points)
    if template.eye_anchor is not None:
        eye_mid = pts[:2].mean(0)
        m[:, 2] = np.asarray(template.eye_anchor) - m[:, :2] @ eye_mid
    return m


def align(image: np.ndarray, points5: np.ndarray, template: PartialTemplate) -> np.ndarray:
    """The aligned crop of ``image`` (H, W, 3) uint8, shape (size, size, 3): bilinear,
    grey border; ``points5`` as in :func:`alignment_matrix`."""
    m = alignment_matrix(points5, template)
    return cv2.warpAffine(image, m, (template.size, template.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(GREY,) * 3)


def partial_box(region: str, factor: float, template: PartialTemplate | str = "partiallfw") -> tuple[int, int, int, int]:
    """The kept box ``(x1, y1, x2, y2)``, inclusive pixel bounds (may reach outside the crop)."""
    t = get_template(template) if isinstance(template, str) else template
    if not 0.0 < factor <= 1.0:
        raise MfrkitError(f"partial-face factor must be in (0, 1], got {factor}")
    cx, cy = t.centre(region)
    hw = (15.0 + 120.0 * factor) * t.box_scale
    hh = (10.0 + 105.0 * factor) * t.box_scale
    # int() truncates towards zero, as PartialLFW's generator does.
    return int(cx - hw), int(cy - hh), int(cx + hw), int(cy + hh)


def crop_region(aligned: np.ndarray, region: str, factor: float, *, centered: bool = False, template: PartialTemplate | str = "partiallfw") -> np.ndarray:
    """Keep one region of an aligned crop, grey elsewhere.

    Parameters
    ----------
    aligned : ndarray of shape (size, size, 3), uint8
        Output of :func:`align` for the same template.
    region : str
        ``leye``, ``reye``, ``nose`` or ``mouth``.
    factor : float
        Patch size factor (PartialLFW: 0.10 to 0.50).
    centered : bool
        Move the region centre to the crop centre.
    template : str or PartialTemplate

    Returns
    -------
    ndarray of shape (size, size, 3), uint8
    """
    t = get_template(template) if isinstance(template, str) else template
    if aligned.shape[:2] != (t.size, t.size):
        raise MfrkitError(f"expected a {t.size}x{t.size} aligned crop, got {aligned.shape[1]}x{aligned.shape[0]}")
    x1, y1, x2, y2 = partial_box(region, factor, t)
    out = np.full_like(aligned, GREY)
    ys = slice(max(0, y1), max(0, min(t.size, y2 + 1)))
    xs = slice(max(0, x1), max(0, min(t.size, x2 + 1)))
    out[ys, xs] = aligned[ys, xs]
    if centered:
        cx, cy = t.centre(region)
        half = t.size / 2.0
        shift = np.float32([[1, 0, half - cx], [0, 1, half - cy]])
        out = cv2.warpAffine(out, shift, (t.size, t.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(GREY,) * 3)
    return out


#: Most factors one run may ask for: PartialLFW uses 9; every factor multiplies the
#: outputs per image (by regions x placements), so a mistyped step must not plan millions.
MAX_FACTORS = 100


def factor_label(factor: float) -> str:
    """How a factor is written in output names (``factor_0.3``): ``%g``, 6 significant digits."""
    return f"{factor:g}"


def parse_factors(text: str, *, max_count: int = MAX_FACTORS) -> tuple[float, ...]:
    """``0.10:0.50:0.05`` (start:stop:step, stop included) or a comma list; exact repeats dropped.

    Checked up front, before any work: every factor in (0, 1]; at most ``max_count`` of
    them (:data:`MAX_FACTORS`); and no two that :func:`factor_label` writes alike
    (``0.1`` and ``0.10000001`` would both be ``factor_0.1``), since the output names
    would collide. Raises :class:`MfrkitError` naming the problem.
    """
    text = str(text).strip()
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if not step > 0:
                raise ValueError
            if stop < start:
                raise MfrkitError(f"factors {text!r}: start:stop:step needs stop >= start")
            span = np.floor((stop - start) / step + 1e-9) + 1  # a float: a tiny step must not build a huge int
            if not np.isfinite(span):
                raise ValueError
            if span > max_count:
                count = f"{span:,.0f}" if span < 1e15 else f"about {span:.1e}"  # "1,001", not "1e+03"
                raise MfrkitError(f"factors {text!r} make {count} values; at most {max_count} per run (PartialLFW "
                                  "uses 9, 0.10:0.50:0.05): use a coarser step, or split the range over several runs")
            n = int(span)
            values = [round(start + k * step, 6) for k in range(n)]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise MfrkitError(f"cannot read factors {text!r}: use start:stop:step (e.g. 0.10:0.50:0.05) or a comma list") from None
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise MfrkitError(f"factors must lie in (0, 1], got {text!r}")
    values = list(dict.fromkeys(values))
    if len(values) > max_count:
        raise MfrkitError(f"{len(values)} factors given; at most {max_count} per run: split them over several runs")
    by_label: dict[str, float] = {}
    for v in values:
        other = by_label.setdefault(factor_label(v), v)
        if other != v:
            raise MfrkitError(f"factors {other!r} and {v!r} are both written factor_{factor_label(v)} in output names "
                              "(6 significant digits): keep one of them")
    return tuple(values)


def parse_regions(text: str) -> tuple[str, ...]:
    """Comma list of regions; ``all`` for every one."""
    items = [x.strip().lower() for x in str(text).split(",") if x.strip()]
    if items == ["all"]:
        return tuple(REGIONS)
    for r in items:
        if r not in REGIONS:
            raise UnknownNameError(f"unknown face region {r!r}; choose from: {', '.join(REGIONS)} (or all)")
    if not items:
        raise MfrkitError("no regions given")
    return tuple(dict.fromkeys(items))
