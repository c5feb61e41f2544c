"""Alignment methods by name: how a model's input crop is cut from a photo.

A model declares its alignment in ``mfrkit.align`` (``arcface112``, ``none``, ...). Each
entry here is an :class:`Alignment`: a pure function ``(image, landmarks, (H, W)) ->
crop`` plus whether it needs landmarks. Another alignment (e.g. dlib's 150x150 chip)
plugs in with one ``ALIGNMENTS.add(name, Alignment(...))`` line in this module, so
worker processes, which import it, see the same entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from ..align import align_face
from ..errors import MfrkitError
from ..landmarks.base import Landmarks
from ..registry import Registry


class AlignmentError(MfrkitError):
    """An image cannot be aligned (no landmarks, degenerate landmarks, non-square crop)."""


@dataclass(frozen=True)
class Alignment:
    """One alignment method.

    Attributes
    ----------
    crop : callable ``(image, landmarks, size) -> ndarray``
        ``image`` (H0, W0, 3) uint8 RGB; ``landmarks`` a :class:`Landmarks` in that
        image's pixels, or None; ``size`` the model's ``(H, W)``. Returns (H, W, 3) uint8 RGB.
    needs_landmarks : bool
    description : str
    """

    crop: Callable[[np.ndarray, Landmarks | None, tuple[int, int]], np.ndarray]
    needs_landmarks: bool
    description: str


#: Alignment methods by the name models use in ``mfrkit.align``.
ALIGNMENTS: Registry[Alignment] = Registry("alignment")


def _resize(image: np.ndarray, landmarks: Landmarks | None, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    # INTER_AREA when shrinking avoids aliasing; it equals bilinear when enlarging.
    shrink = image.shape[0] > h or image.shape[1] > w
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _arcface(image: np.ndarray, landmarks: Landmarks | None, size: tuple[int, int]) -> np.ndarray:
    if landmarks is None:
        raise AlignmentError("arcface alignment needs landmarks")
    h, w = size
    if h != w:
        raise AlignmentError(f"arcface alignment makes square crops; the model wants {h}x{w}")
    try:
        return align_face(image, landmarks.points5, size=h).image
    except MfrkitError as exc:
        raise AlignmentError(str(exc)) from None


ALIGNMENTS.add("none", Alignment(_resize, False, "already-aligned crops, resized to the input size"))
ALIGNMENTS.add(
    "arcface112",
    Alignment(_arcface, True, "5-point similarity onto the ArcFace template, scaled to the input size"),
)


def _dlib150(image: np.ndarray, landmarks: Landmarks | None, size: tuple[int, int]) -> np.ndarray:
    if landmarks is None:
        raise AlignmentError("the dlib150 chip needs landmarks")
    if tuple(size) != (150, 150):
        raise AlignmentError(f"the dlib150 chip is 150x150; the model wants {size[0]}x{size[1]}")
    from ..models.dlib_resnet import dlib150_crop  # imports torch: only when this alignment is used

    try:
        return dlib150_crop(image, landmarks)
    except MfrkitError as exc:
        raise AlignmentError(str(exc)) from None


ALIGNMENTS.add(
    "dlib150",
    Alignment(_dlib150, True, "dlib's 150x150 face chip (68 points when available, else ArcFace 5 points)"),
)


def get_alignment(name: str) -> Alignment:
    """The alignment called ``name``; the error lists the valid ones."""
    return ALIGNMENTS.get(name)
