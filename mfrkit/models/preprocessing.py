"""What a model expects of its input: crop, colour order and normalisation.

Each family declares one :class:`Preprocessing`; training uses it to build tensors and
:func:`mfrkit.models.export.write_onnx` writes it into the ONNX ``metadata_props``, so
the benchmark prepares images exactly as the model was trained on them.

Metadata format (all values are strings)
-----------------------------------------
================== ======================= ============================================
key                example                 meaning
================== ======================= ============================================
mfrkit.input_size  ``112,112``             crop height, width in pixels
mfrkit.color       ``RGB``                 channel order of the input tensor
mfrkit.mean        ``127.5,127.5,127.5``   per-channel mean, 0-255 pixel units
mfrkit.std         ``127.5,127.5,127.5``   per-channel std; input = (pixel - mean) / std
mfrkit.align       ``arcface112``          how the crop is made from the photo
================== ======================= ============================================

Alignment names
---------------
``arcface<S>`` is :func:`mfrkit.align.align_face` with ``size=S, padding=0``;
``arcface<S>p<P>`` adds a padding of ``P`` percent (``arcface160p30`` is PartialLFW's
160x160 crop with padding 0.3). Other alignments (e.g. dlib's 150x150 chip) register
a function in :data:`ALIGNMENTS` taking ``(image, landmarks)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

import cv2
import numpy as np

from ..align import align_face
from ..errors import MfrkitError, UnknownNameError
from ..landmarks.base import Landmarks
from ..registry import Registry

#: Alignments other than the ``arcface<S>[p<P>]`` family:
#: name -> ``fn(image (H,W,3) uint8, landmarks: Landmarks) -> crop (h,w,3) uint8``.
ALIGNMENTS: Registry[Callable[[np.ndarray, Landmarks], np.ndarray]] = Registry("alignment")

_ARCFACE = re.compile(r"^arcface(\d+)(?:p(\d+))?$")
COLORS = ("RGB", "BGR")


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


def align_crop(name: str, image: np.ndarray, landmarks: Landmarks | np.ndarray) -> np.ndarray:
    """Crop ``image`` with the alignment called ``name``.

    Parameters
    ----------
    name : str
        An alignment name (see the module docstring).
    image : ndarray of shape (H, W, 3), uint8
    landmarks : Landmarks or ndarray of shape (5, 2)
        ArcFace-order 5 points suffice for ``arcface*``; registered alignments get the
        :class:`Landmarks` object.
    """
    params = arcface_params(name)
    if params is not None:
        points = landmarks.points5 if isinstance(landmarks, Landmarks) else landmarks
        return align_face(image, points, size=params[0], padding=params[1]).image
    if name not in ALIGNMENTS:
        valid = ", ".join(["arcface<S>", "arcface<S>p<P>", *ALIGNMENTS.names()])
        raise UnknownNameError(f"unknown alignment {name!r}; choose one of: {valid}")
    if not isinstance(landmarks, Landmarks):
        raise MfrkitError(f"alignment {name!r} needs a Landmarks object, not a bare array")
    return ALIGNMENTS.get(name)(image, landmarks)


def _floats(text: str, n: int, key: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise MfrkitError(f"metadata {key}={text!r} is not a comma-separated list of numbers") from None
    if len(values) != n:
        raise MfrkitError(f"metadata {key}={text!r} should have {n} values")
    return values


@dataclass(frozen=True)
class Preprocessing:
    """How to turn an aligned crop into the model's input tensor.

    Attributes
    ----------
    input_size : (int, int)
        Crop height and width, pixels.
    align : str
        Alignment name, e.g. ``arcface112``.
    color : str
        ``RGB`` or ``BGR``: channel order the network expects.
    mean, std : (float, float, float)
        Per-channel normalisation in 0-255 pixel units, in the network's channel
        order: ``input = (pixel - mean) / std``.
    """

    input_size: tuple[int, int]
    align: str
    color: str = "RGB"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)

    def __post_init__(self) -> None:
        if self.color not in COLORS:
            raise MfrkitError(f"color must be one of {COLORS}, got {self.color!r}")
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise MfrkitError(f"input_size must be (height, width) > 0, got {self.input_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise MfrkitError(f"mean and std need 3 values each, std > 0 (got {self.mean}, {self.std})")
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def to_metadata(self) -> dict[str, str]:
        """The ``mfrkit.*`` keys for ONNX ``metadata_props``."""
        fmt = lambda vs: ",".join(f"{v:g}" for v in vs)  # noqa: E731
        return {
            "mfrkit.input_size": f"{self.input_size[0]},{self.input_size[1]}",
            "mfrkit.color": self.color,
            "mfrkit.mean": fmt(self.mean),
            "mfrkit.std": fmt(self.std),
            "mfrkit.align": self.align,
        }

    @classmethod
    def from_metadata(cls, props: Mapping[str, str]) -> "Preprocessing":
        """Parse what :meth:`to_metadata` wrote; raises MfrkitError naming a missing key."""
        missing = [k for k in ("mfrkit.input_size", "mfrkit.align", "mfrkit.mean", "mfrkit.std") if k not in props]
        if missing:
            raise MfrkitError(f"model metadata lacks {', '.join(missing)}")
        h, w = _floats(props["mfrkit.input_size"], 2, "mfrkit.input_size")
        return cls(
            input_size=(int(h), int(w)),
            align=props["mfrkit.align"],
            color=props.get("mfrkit.color", "RGB"),
            mean=_floats(props["mfrkit.mean"], 3, "mfrkit.mean"),
            std=_floats(props["mfrkit.std"], 3, "mfrkit.std"),
        )

    def resize(self, crop: np.ndarray) -> np.ndarray:
        """``crop`` (h, w, 3) resized to ``input_size`` (a no-op when it already is)."""
        h, w = self.input_size
        if crop.shape[:2] == (h, w):
            return crop
        interp = cv2.INTER_AREA if crop.shape[0] > h else cv2.INTER_LINEAR
        return cv2.resize(crop, (w, h), interpolation=interp)

    def to_input(self, crops: np.ndarray) -> np.ndarray:
        """Normalise RGB crops into the network's input layout.

        Parameters
        ----------
        crops : ndarray of shape (N, H, W, 3) or (H, W, 3), uint8 RGB
            ``H, W`` must equal ``input_size``.

        Returns
        -------
        ndarray of shape (N, 3, H, W) or (3, H, W), float32
        """
        crops = np.asarray(crops)
        single = crops.ndim == 3
        batch = crops[None] if single else crops
        if batch.ndim != 4 or batch.shape[-1] != 3 or tuple(batch.shape[1:3]) != self.input_size:
            raise MfrkitError(f"expected RGB crops of size {self.input_size}, got shape {crops.shape}")
        if self.color == "BGR":
            batch = batch[..., ::-1]
        x = (batch.astype(np.float32) - np.float32(self.mean)) / np.float32(self.std)
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x[0] if single else x


#: The ArcFace-style input every 112x112 backbone here uses.
ARCFACE_112_INPUT = Preprocessing(input_size=(112, 112), align="arcface112")
