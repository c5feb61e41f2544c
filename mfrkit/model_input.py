"""The input contract of a face-recognition model: crop, colour order, normalisation.

One module, read by the benchmark (ONNX models), training (each family declares one
:class:`ModelInput`) and export (which writes it into the ONNX metadata), so a model is
scored on exactly the tensors it was trained on. Lower layers import it; it imports
nothing of ``bench/`` or ``models/``.

A model is an ONNX file with input ``[N, 3, H, W]`` float32 (dynamic ``N``) and output
``[N, D]``. Its preprocessing is declared in ``metadata_props``:

===================== ==================================================================
key                   value
===================== ==================================================================
``mfrkit.input_size`` ``112`` or ``112,112`` (H, W), pixels, at most 2048 a side
``mfrkit.color``      ``RGB`` or ``BGR``: channel order the model expects
``mfrkit.mean``       one or three numbers, **in 0-255 pixel units** (ArcFace: ``127.5``),
                      listed in the model's channel order (BGR models: B, G, R)
``mfrkit.std``        one or three numbers, same units: input = (pixel - mean) / std
``mfrkit.align``      an alignment name (:mod:`mfrkit.alignments`)
``mfrkit.family``     optional, e.g. ``csn``
``mfrkit.embedding_dim`` optional; checked against the output
``mfrkit.domain``     optional, ``reference`` or ``probe`` for heterogeneous models
===================== ==================================================================

Models without these keys get them from a sidecar JSON (``model.mfrkit.json`` beside
``model.onnx``, or a path given explicitly) or from options; mfrkit never guesses:
a missing key is an error that says how to provide it. Lists may be written as JSON
(``[127.5, 127.5, 127.5]``) or comma-separated.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .alignments import MAX_CROP_SIDE, get_alignment
from .errors import MfrkitError, ModelError
from .userfiles import read_user_json

PREFIX = "mfrkit."
#: Largest crop side, pixels. Face models take 96 to 512; a batch of 30000x30000 crops
#: (a typo in metadata or an option on a model with dynamic H and W) would not fit in memory.
MAX_INPUT_SIDE = MAX_CROP_SIDE
REQUIRED_KEYS = ("input_size", "color", "mean", "std", "align")
OPTIONAL_KEYS = ("family", "embedding_dim", "domain")
DOMAINS = ("reference", "probe")
COLORS = ("RGB", "BGR")


@dataclass(frozen=True)
class ModelInput:
    """What a model expects of its input, and where each value came from.

    Attributes
    ----------
    input_size : (int, int)
        Crop height and width, pixels.
    align : str
        Alignment name (:mod:`mfrkit.alignments`), e.g. ``arcface112``.
    color : str
        ``"RGB"`` or ``"BGR"``: channel order the network expects.
    mean, std : (float, float, float)
        Per-channel normalisation in 0-255 pixel units, in the network's channel order:
        ``input = (pixel - mean) / std``.
    family : str
    embedding_dim : int or None
    domain : ``"reference"``, ``"probe"`` or None (heterogeneous models).
    origin : dict
        key -> where the value came from (``metadata``, ``sidecar``, ``option``); not
        part of equality.
    """

    input_size: tuple[int, int]
    align: str
    color: str = "RGB"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    family: str = "unknown"
    embedding_dim: int | None = None
    domain: str | None = None
    origin: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.color not in COLORS:
            raise ModelError(f"color must be one of {COLORS}, got {self.color!r}")
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise ModelError(f"input_size must be (height, width) > 0, got {self.input_size}")
        if max(self.input_size) > MAX_INPUT_SIDE:
            raise ModelError(_too_large(self.input_size))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ModelError(f"mean and std need 3 values each, std > 0 (got {self.mean}, {self.std})")
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def preprocessing(self) -> dict:
        """The fields that change the pixels fed to the model (the cache key uses them)."""
        return {
            "input_size": list(self.input_size),
            "color": self.color,
            "mean": list(self.mean),
            "std": list(self.std),
            "align": self.align,
        }

    def as_dict(self) -> dict:
        d = self.preprocessing()
        d.update(family=self.family, embedding_dim=self.embedding_dim, domain=self.domain, origin=dict(self.origin))
        return d

    def to_metadata(self) -> dict[str, str]:
        """The preprocessing ``mfrkit.*`` keys for ONNX ``metadata_props``."""
        fmt = lambda vs: ",".join(f"{v:g}" for v in vs)  # noqa: E731
        return {
            "mfrkit.input_size": f"{self.input_size[0]},{self.input_size[1]}",
            "mfrkit.color": self.color,
            "mfrkit.mean": fmt(self.mean),
            "mfrkit.std": fmt(self.std),
            "mfrkit.align": self.align,
        }

    @classmethod
    def from_metadata(cls, props: Mapping[str, str]) -> "ModelInput":
        """Read the ``mfrkit.*`` keys of a model's metadata (:func:`resolve_model_input`);
        raises :class:`ModelError` naming a missing or malformed key."""
        return resolve_model_input(props)

    def resize(self, crop: np.ndarray) -> np.ndarray:
        """``crop`` (h, w, 3) resized to ``input_size`` (a no-op when it already is)."""
        from .alignments import resize_crop

        return resize_crop(crop, self.input_size)

    def to_input(self, crops: np.ndarray) -> np.ndarray:
        """Normalise RGB crops into the network's input layout (:func:`to_tensor`).

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
            raise ModelError(f"expected RGB crops of size {self.input_size}, got shape {crops.shape}")
        x = to_tensor(batch, self)
        return x[0] if single else x


#: The ArcFace-style input every 112x112 backbone here uses.
ARCFACE_112_INPUT = ModelInput(input_size=(112, 112), align="arcface112")


def to_tensor(crops: np.ndarray, spec: ModelInput, *, flip: bool = False) -> np.ndarray:
    """Model input from RGB crops (the benchmark and training both call this).

    Parameters
    ----------
    crops : ndarray of shape (N, H, W, 3), uint8 RGB
    spec : ModelInput
        Colour order, mean and std in 0-255 units.
    flip : bool
        Mirror left-right (test-time augmentation).

    Returns
    -------
    ndarray of shape (N, 3, H, W), float32: ``(pixel - mean) / std`` in the model's channel order.
    """
    x = crops
    if spec.color == "BGR":
        x = x[..., ::-1]
    if flip:
        x = x[:, :, ::-1]
    # Transpose while still uint8 (a quarter of the bytes), then normalise in place:
    # ten times faster than converting first, and this runs between model calls.
    out = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32)
    # mean/std are listed in the model's channel order, which x now has
    out -= np.asarray(spec.mean, np.float32)[None, :, None, None]
    out *= (1.0 / np.asarray(spec.std, np.float32))[None, :, None, None]
    return out


def _too_large(size) -> str:
    h, w = size
    return (f"{h}x{w} pixels is over the limit of {MAX_INPUT_SIDE} a side (one float32 batch of 64 such crops "
            f"would take {64 * 3 * 4 * h * w / 2**30:,.0f} GiB); face models take 96 to 512. Check the value "
            "(--input-size, the sidecar or the model's mfrkit.input_size)")


def _numbers(value: Any, key: str) -> list[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
            items = [parsed]
        elif isinstance(parsed, list):
            items = parsed
        else:
            items = [p for p in text.replace("x", ",").replace(" ", ",").split(",") if p]
    else:
        raise ModelError(f"{PREFIX}{key}: cannot read {value!r} as numbers")
    try:
        out = [float(v) for v in items]
    except (TypeError, ValueError):
        raise ModelError(f"{PREFIX}{key}: cannot read {value!r} as numbers") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise ModelError(f"{PREFIX}{key}: expected finite numbers, got {value!r}")
    return out


def _triple(value: Any, key: str) -> tuple[float, float, float]:
    v = _numbers(value, key)
    if len(v) == 1:
        v = v * 3
    if len(v) != 3:
        raise ModelError(f"{PREFIX}{key}: expected 1 or 3 numbers, got {len(v)}")
    return (v[0], v[1], v[2])


def parse_model_input(values: Mapping[str, Any], origin: Mapping[str, str] | None = None) -> ModelInput:
    """A :class:`ModelInput` from raw key -> value pairs (keys with or without ``mfrkit.``).

    Raises
    ------
    ModelError
        A required key is missing (the message lists how to give it) or a value is malformed.
    """
    vals = {(k[len(PREFIX):] if k.startswith(PREFIX) else k): v for k, v in values.items() if v is not None}
    missing = [k for k in REQUIRED_KEYS if k not in vals]
    if missing:
        raise ModelError(
            "the model does not declare its preprocessing: missing "
            + ", ".join(PREFIX + k for k in missing)
            + ". Give them as options (--input-size, --color, --mean, --std, --align) or in a sidecar "
            "JSON (model.mfrkit.json); mfrkit does not guess them"
        )
    size = [int(round(v)) for v in _numbers(vals["input_size"], "input_size")]
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) <= 0:
        raise ModelError(f"{PREFIX}input_size: expected one or two positive integers, got {vals['input_size']!r}")
    if max(size) > MAX_INPUT_SIDE:
        where = {"metadata": "the model's metadata", "sidecar": "the sidecar", "option": "--input-size"}.get(
            (origin or {}).get("input_size", ""))
        raise ModelError(f"{PREFIX}input_size" + (f" (from {where})" if where else "") + ": " + _too_large(size))
    color = str(vals["color"]).strip().upper()
    if color not in ("RGB", "BGR"):
        raise ModelError(f"{PREFIX}color must be RGB or BGR, got {vals['color']!r}")
    mean, std = _triple(vals["mean"], "mean"), _triple(vals["std"], "std")
    if min(std) <= 0:
        raise ModelError(f"{PREFIX}std must be positive, got {std}")
    if max(std) < 1:
        # In 0-255 units a std below 1 would stretch pixels beyond +-255: these are 0-1 units.
        raise ModelError(
            f"{PREFIX}std {list(std)} is below 1, but mean and std are in 0-255 pixel units; "
            f"values for 0-1 pixels must be multiplied by 255 (e.g. 0.5 -> 127.5)"
        )
    align = str(vals["align"]).strip()
    try:
        get_alignment(align)
    except MfrkitError as exc:
        raise type(exc)(f"{PREFIX}align: {exc}") from None
    dim = vals.get("embedding_dim")
    if dim is not None:
        d = _numbers(dim, "embedding_dim")
        if len(d) != 1 or d[0] <= 0 or d[0] != int(d[0]):
            raise ModelError(f"{PREFIX}embedding_dim must be a positive integer, got {dim!r}")
        dim = int(d[0])
    domain = vals.get("domain")
    if domain is not None:
        domain = str(domain).strip().lower()
        if domain not in DOMAINS:
            raise ModelError(f"{PREFIX}domain must be one of {DOMAINS}, got {vals['domain']!r}")
    return ModelInput(
        input_size=(size[0], size[1]),
        color=color,
        mean=mean,
        std=std,
        align=align,
        family=str(vals.get("family", "unknown")),
        embedding_dim=dim,
        domain=domain,
        origin=dict(origin or {}),
    )


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """The sidecar JSON looked for beside a model: ``name.onnx`` -> ``name.mfrkit.json``."""
    p = Path(model_path)
    return p.with_name(p.stem + ".mfrkit.json")


def read_sidecar(path: str | os.PathLike) -> dict:
    """Keys of a sidecar JSON file (an object; keys with or without ``mfrkit.``)."""
    data = read_user_json(path, "sidecar")
    if not isinstance(data, dict):
        raise ModelError(f"sidecar {path} must hold a JSON object of mfrkit.* keys")
    return data


def resolve_model_input(
    metadata: Mapping[str, str],
    *,
    sidecar: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> ModelInput:
    """Merge the three sources of preprocessing keys: options > sidecar > embedded metadata.

    ``origin`` records, for each key, which source gave it, so a run's ``metrics.json``
    shows where an overridden value came from.
    """
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, source in (("metadata", metadata), ("sidecar", sidecar or {}), ("option", options or {})):
        for k, v in source.items():
            if v is None:
                continue
            key = k[len(PREFIX):] if k.startswith(PREFIX) else k
            if name == "metadata" and not k.startswith(PREFIX):
                continue  # other tools' metadata
            if key not in REQUIRED_KEYS + OPTIONAL_KEYS:
                if name != "metadata":
                    raise ModelError(f"unknown model key {k!r} in {name}; known: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}")
                continue
            merged[key] = v
            origin[key] = name
    return parse_model_input(merged, origin)


