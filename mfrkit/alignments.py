"""Alignment methods by name: how a model's input crop is cut from a photo.

A model declares its crop in the ``mfrkit.align`` metadata key; training
(:mod:`mfrkit.models.dataset`) and the benchmark (:mod:`mfrkit.bench`) both look the
name up here, so a model is always fed the crop it was trained on. The geometry itself
lives in :mod:`mfrkit.align`; this module only names it.

Names
-----
``arcface<S>`` / ``arcface<S>p<P>``
    :func:`mfrkit.align.align_face`: the 5 landmarks onto the ArcFace template, with a
    margin of ``P`` percent (``S`` 1 to 2048, ``P`` 0 to 100) (``arcface160p30`` is PartialLFW's 160x160 crop with padding
    0.3). ``S`` is the crop side the name was made for; at another (square) input size
    the same template is scaled to it in one warp, which is the ``S``-pixel crop resized.
``arcface112x96``
    the 112x96 (height x width) crop of SphereFace, CosFace and insightface's 112x96
    models: the ArcFace 112 template with 8 px cut from each side.
``mfr2`` (also ``facenet160``)
    MFR2's 160x160 crops, made with FaceNet's MTCNN box crop (no rotation; margin
    32). That crop follows the detector's box, not landmarks, so it has no exact
    template: this one is mfrkit's estimate (the ArcFace proportions, eyes 49 px apart
    at height 62, chin near the bottom edge). Cutting such a crop from a photo uses a
    5-point similarity onto it.
``dlib150``
    dlib's 150x150 face chip (:func:`mfrkit.align.dlib_chip`, padding 0.25), from the
    68 points when the landmarks have them (bit-exact with dlib), else from the 5.
``none``
    already-aligned crops, resized to the input size.

Each is an :class:`Alignment`: a pure function ``(image, landmarks, (H, W)) -> crop``
plus whether it needs landmarks; a *crop template* (every name but ``none``) also
carries its 5 points in the crop (``template``, ``crop_size``), which is what the
``template`` landmark backend places mfrkit's mean face with (``synth --aligned``).
This module imports neither torch nor pandas: the benchmark's spawned workers import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .align import ARCFACE_112, align_face, arcface_template, dlib_chip, dlib_chip_template, similarity_transform
from .errors import MfrkitError, UnknownNameError
from .registry import Registry


class AlignmentError(MfrkitError):
    """An image cannot be aligned (no landmarks, degenerate landmarks, wrong crop size)."""


#: ``landmarks`` argument of a crop: a :class:`Landmarks`, or (``arcface*`` only) the
#: 5 ArcFace points as an array of shape (5, 2).
#: Landmarks are recognised by their attributes (``points5``, ``points68``), not by
#: class: :mod:`mfrkit.landmarks` imports the crop templates from here, so this module
#: does not import it back.
LandmarksLike = Any


@dataclass(frozen=True)
class Alignment:
    """One alignment method.

    Attributes
    ----------
    crop : callable ``(image, landmarks, size) -> ndarray``
        ``image`` (H0, W0, 3) uint8 RGB; ``landmarks`` in that image's pixels, or None;
        ``size`` the model's ``(H, W)`` in pixels. Returns (H, W, 3) uint8 RGB; raises
        :class:`AlignmentError`.
    needs_landmarks : bool
    description : str
    size : int or None
        The crop side the name stands for (``arcface160p30``: 160), None for ``none``.
    template : ndarray of shape (5, 2) or None
        Where a face's ArcFace 5 points lie in the crop, pixels (None for ``none``).
    crop_size : (H, W) or None
        The crop the template is for, pixels.
    """

    crop: Callable[[np.ndarray, LandmarksLike, tuple[int, int]], np.ndarray]
    needs_landmarks: bool
    description: str
    size: int | None = None
    template: np.ndarray | None = None
    crop_size: tuple[int, int] | None = None

    def template_at(self, height: int, width: int) -> np.ndarray:
        """The template's 5 points in a crop of ``height`` x ``width`` pixels: scaled by
        the height ratio and centred across (the ArcFace 112 template in a 112x96 crop is
        the 112x96 template; at 224x224 it is twice the 112 one), shape (5, 2)."""
        if self.template is None or self.crop_size is None:
            raise AlignmentError("this alignment has no crop template (landmarks cannot come from it)")
        h0, w0 = self.crop_size
        scale = height / h0
        return self.template * scale + np.array([(width - w0 * scale) / 2.0, 0.0])


#: Alignments with a fixed name; ``arcface<S>[p<P>]`` names are built by :func:`get_alignment`.
ALIGNMENTS: Registry[Alignment] = Registry("alignment")

_ARCFACE = re.compile(r"^arcface(\d+)(?:p(\d+))?$")
#: Bounds of ``arcface<S>p<P>`` names: a crop side up to 2048 px, a margin up to 100% of
#: the unpadded crop (the face then spans a third of the crop; PartialLFW uses 30%).
MAX_CROP_SIDE, MAX_PADDING_PERCENT = 2048, 100
#: dlib's chip: side in pixels and margin (``compute_face_descriptor``'s defaults).
DLIB_CHIP_SIZE, DLIB_CHIP_PADDING = 150, 0.25


def arcface_params(name: str) -> tuple[int, float] | None:
    """``(size, padding)`` of an ``arcface<S>[p<P>]`` name, or None for other names."""
    match = _ARCFACE.match(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0) / 100.0


def arcface_name(size: int, padding: float = 0.0) -> str:
    """Inverse of :func:`arcface_params`: ``arcface_name(160, 0.3) == "arcface160p30"``."""
    pct = round(padding * 100)
    if abs(pct - padding * 100) > 1e-6:
        raise MfrkitError(f"padding {padding} is not a whole percentage")
    return f"arcface{size}" + (f"p{pct}" if pct else "")


def resize_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (h, w, 3) resized to ``size`` = (H, W) pixels; a no-op when it already is.

    INTER_AREA when shrinking (no aliasing), bilinear when enlarging.
    """
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    shrink = image.shape[0] > h or image.shape[1] > w
    import cv2  # here, not at the top: model_input (and so scoring) imports this module without OpenCV

    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _points5(landmarks: LandmarksLike) -> np.ndarray:
    """The 5 ArcFace points of a :class:`~mfrkit.landmarks.Landmarks` or of a (5, 2) array."""
    return landmarks.points5 if hasattr(landmarks, "points5") else landmarks


def _none(image: np.ndarray, landmarks: LandmarksLike, size: tuple[int, int]) -> np.ndarray:
    return resize_crop(image, size)


def _arcface(padding: float) -> Callable[[np.ndarray, LandmarksLike, tuple[int, int]], np.ndarray]:
    def crop(image: np.ndarray, landmarks: LandmarksLike, size: tuple[int, int]) -> np.ndarray:
        if landmarks is None:
            raise AlignmentError("arcface alignment needs landmarks")
        h, w = size
        if h != w:
            raise AlignmentError(f"arcface alignment makes square crops; the model wants {h}x{w}")
        points = _points5(landmarks)
        try:
            return align_face(image, points, size=h, padding=padding).image
        except MfrkitError as exc:
            raise AlignmentError(str(exc)) from None

    return crop


def _template_crop(alignment_name: str) -> Callable[[np.ndarray, LandmarksLike, tuple[int, int]], np.ndarray]:
    """A crop function: a 5-point similarity onto a registered template, at any size
    (the template scaled as :meth:`Alignment.template_at` says)."""

    def crop(image: np.ndarray, landmarks: LandmarksLike, size: tuple[int, int]) -> np.ndarray:
        import cv2  # lazily, as above

        if landmarks is None:
            raise AlignmentError(f"the {alignment_name} alignment needs landmarks")
        points = np.asarray(_points5(landmarks), dtype=np.float64).reshape(-1, 2)
        if points.shape != (5, 2):
            raise AlignmentError(f"the {alignment_name} alignment needs 5 landmarks, got {points.shape[0]}")
        h, w = size
        try:
            matrix = similarity_transform(points, ALIGNMENTS.get(alignment_name).template_at(h, w))
        except MfrkitError as exc:
            raise AlignmentError(str(exc)) from None
        return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))

    return crop


def dlib150_crop(image: np.ndarray, landmarks: LandmarksLike) -> np.ndarray:
    """dlib's 150x150 face chip, the input of its face-recognition ResNet.

    Uses dlib's own 68-point fit when the landmarks have iBUG-68 points (bit-exact with
    dlib), else the ArcFace 5 points on dlib's mean face (``order="arcface5"``, close but
    not identical; see :func:`mfrkit.align.dlib_chip_template`).

    Returns
    -------
    ndarray of shape (150, 150, 3), uint8 RGB
    """
    if landmarks.points68 is not None:
        return dlib_chip(image, landmarks.points68, size=DLIB_CHIP_SIZE, padding=DLIB_CHIP_PADDING).image
    return dlib_chip(image, landmarks.points5, size=DLIB_CHIP_SIZE, padding=DLIB_CHIP_PADDING, order="arcface5").image


def _dlib150(image: np.ndarray, landmarks: LandmarksLike, size: tuple[int, int]) -> np.ndarray:
    if not hasattr(landmarks, "points68"):
        raise AlignmentError("the dlib150 chip needs landmarks")
    if tuple(size) != (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE):
        raise AlignmentError(f"the dlib150 chip is 150x150; the model wants {size[0]}x{size[1]}")
    try:
        return dlib150_crop(image, landmarks)
    except MfrkitError as exc:
        raise AlignmentError(str(exc)) from None


#: mfrkit's estimate of where MFR2's (FaceNet MTCNN) 160x160 crops put the 5 points: the
#: ArcFace template scaled by 1.4 and moved so the eyes sit at height 62 (see the module doc).
MFR2_TEMPLATE = ARCFACE_112 * 1.4 + np.array([80.0 - 56.0 * 1.4, 62.0 - 51.6 * 1.4])

ALIGNMENTS.add("none", Alignment(_none, False, "already-aligned crops, resized to the input size"))
_DLIB_TEMPLATE = (DLIB_CHIP_PADDING + dlib_chip_template("arcface5")[0]) / (2 * DLIB_CHIP_PADDING + 1) * DLIB_CHIP_SIZE
ALIGNMENTS.add(
    "dlib150",
    Alignment(_dlib150, True, "dlib's 150x150 face chip (68 points when available, else ArcFace 5 points)", DLIB_CHIP_SIZE,
              template=_DLIB_TEMPLATE, crop_size=(DLIB_CHIP_SIZE, DLIB_CHIP_SIZE)),
)
ALIGNMENTS.add("arcface112x96", Alignment(_template_crop("arcface112x96"), True, "112x96 (HxW) crop: the ArcFace 112 template with 8 px cut from each side",
                                          None, template=ARCFACE_112 - np.array([8.0, 0.0]), crop_size=(112, 96)))
for _name in ("mfr2", "facenet160"):
    ALIGNMENTS.add(_name, Alignment(_template_crop(_name), True, "MFR2's 160x160 FaceNet (MTCNN box) crops; template estimated by mfrkit", 160,
                                    template=MFR2_TEMPLATE, crop_size=(160, 160)))


def alignment_names() -> list[str]:
    """Valid names, for messages: the ``arcface`` patterns and the registered names."""
    return ["arcface<S>", "arcface<S>p<P>", *ALIGNMENTS.names()]


def get_alignment(name: str) -> Alignment:
    """The alignment called ``name``; :class:`UnknownNameError` lists the valid ones."""
    params = arcface_params(name)
    if params is not None:
        size, padding = params
        if not 0 < size <= MAX_CROP_SIDE:
            raise UnknownNameError(f"alignment {name!r}: the crop size must be 1 to {MAX_CROP_SIDE} pixels, got {size}")
        if padding * 100 > MAX_PADDING_PERCENT:
            raise UnknownNameError(
                f"alignment {name!r}: a padding of {padding * 100:g}% is over the limit of {MAX_PADDING_PERCENT}% "
                f"(at 100% the face spans a third of the crop); ArcFace crops use 0 (arcface112) to 30 (arcface160p30)")
        what = "5-point similarity onto the ArcFace template" + (f", padding {padding:g}" if padding else "")
        return Alignment(_arcface(padding), True, what + ", scaled to the input size", size, template=arcface_template(size, padding), crop_size=(size, size))
    if name not in ALIGNMENTS:
        raise UnknownNameError(f"unknown alignment {name!r}; choose one of: {', '.join(alignment_names())}")
    return ALIGNMENTS.get(name)


def crop_template(name: str) -> Alignment:
    """The alignment called ``name`` when it is a crop template (``arcface<S>[p<P>]``,
    ``arcface112x96``, ``mfr2``, ``dlib150``, ...); :class:`UnknownNameError` otherwise,
    listing the templates."""
    alignment = get_alignment(name)
    if alignment.template is None:
        raise UnknownNameError(f"alignment {name!r} has no crop template; choose one of: {', '.join(template_names())}")
    return alignment


def template_names() -> list[str]:
    """Names of the crop templates, for messages and help."""
    return ["arcface<S>", "arcface<S>p<P>", *[n for n in ALIGNMENTS.names() if ALIGNMENTS.get(n).template is not None]]


def align_crop(name: str, image: np.ndarray, landmarks: LandmarksLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Crop ``image`` with the alignment called ``name``.

    Parameters
    ----------
    name : str
        An alignment name (see the module docstring).
    image : ndarray of shape (H0, W0, 3), uint8 RGB
    landmarks : Landmarks, ndarray of shape (5, 2) (``arcface*`` only), or None (``none``)
    size : (H, W), optional
        Crop size in pixels; default the size the name stands for (``arcface160p30``:
        160x160). ``none`` needs it.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8 RGB
    """
    alignment = get_alignment(name)
    if size is None:
        if alignment.crop_size is None:
            raise AlignmentError(f"alignment {name!r} has no size of its own: give the crop size")
        size = alignment.crop_size
    return alignment.crop(image, landmarks, size)
