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

Alignment names (``arcface112``, ``arcface160p30``, ``dlib150``, ``none``) are those of
:mod:`mfrkit.alignments`, the one registry training and the benchmark share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..alignments import resize_crop
from ..bench.pipeline import to_tensor
from ..bench.runner import resolve_spec
from ..errors import MfrkitError

if TYPE_CHECKING:
    from ..bench.runner import ModelSpec

COLORS = ("RGB", "BGR")


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
        """Read the ``mfrkit.*`` keys of a model's metadata with the benchmark's parser
        (:func:`mfrkit.bench.runner.resolve_spec`), the one reading of the contract;
        raises an MfrkitError naming a missing or malformed key."""
        return cls.from_spec(resolve_spec(props))

    @classmethod
    def from_spec(cls, spec: "ModelSpec") -> "Preprocessing":
        """The preprocessing part of the benchmark's :class:`~mfrkit.bench.runner.ModelSpec`."""
        return cls(input_size=spec.input_size, align=spec.align, color=spec.color, mean=spec.mean, std=spec.std)

    def resize(self, crop: np.ndarray) -> np.ndarray:
        """``crop`` (h, w, 3) resized to ``input_size`` (a no-op when it already is)."""
        return resize_crop(crop, self.input_size)

    def to_input(self, crops: np.ndarray) -> np.ndarray:
        """Normalise RGB crops into the network's input layout, with the benchmark's
        own function (:func:`mfrkit.bench.pipeline.to_tensor`), so a model is trained
        and scored on the same tensors.

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
        x = to_tensor(batch, self)
        return x[0] if single else x


#: The ArcFace-style input every 112x112 backbone here uses.
ARCFACE_112_INPUT = Preprocessing(input_size=(112, 112), align="arcface112")
