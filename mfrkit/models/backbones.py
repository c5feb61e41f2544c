"""Face-recognition backbones: IResNet-18/34/50/100 and MobileFaceNet.

Both follow insightface's ``arcface_torch`` layouts (the ones most published masked-face
results start from): 112x112 RGB input normalised as ``(x - 127.5) / 127.5``, a 512-d
embedding. Every backbone exposes the same three calls, so families can tap the
feature maps:

``forward_features(x, stages=None)``
    feature maps ``(N, C, H/16, W/16)`` after the last stage (fewer stages stop early:
    an IResNet gives stride ``2**stages``); ``feature_channels`` is ``C``;
``forward_head(fmap)``
    the embedding ``(N, D)`` from the full-depth maps;
``forward(x)``
    both.

``width`` scales every channel count (64 is the published size); tests use tiny widths.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import MfrkitError
from ..registry import Registry

#: Backbone factories by name: ``(**kwargs) -> nn.Module``.
BACKBONES: Registry = Registry("backbone")


def create_backbone(name: str, **kwargs) -> nn.Module:
    """Build the backbone called ``name`` (see :data:`BACKBONES`)."""
    return BACKBONES.get(name)(**kwargs)


def _stride_check(input_size: Sequence[int], stride: int) -> tuple[int, int]:
    h, w = (int(v) for v in input_size)
    if h % stride or w % stride:
        raise MfrkitError(f"input size {h}x{w} must be divisible by {stride}")
    return h // stride, w // stride


# --- IResNet ---------------------------------------------------------------------------------------


class IBasicBlock(nn.Module):
    """Improved residual block: BN-conv3x3-BN-PReLU-conv3x3(stride)-BN plus shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch, eps=1e-5)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch, eps=1e-5)
        self.prelu = nn.PReLU(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch, eps=1e-5)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch, eps=1e-5)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(nn.Module):
    """IResNet (Deng et al., ArcFace) as in insightface's ``arcface_torch``.

    Stem conv3x3 (stride 1)-BN-PReLU, four stages of :class:`IBasicBlock` each halving
    the resolution (112 -> 56 -> 28 -> 14 -> 7), then BN-dropout-FC-BN to the embedding.

    Parameters
    ----------
    layers : four ints
        Blocks per stage.
    embedding_dim : int
    width : int
        Channels of the first stage (64 published); stages use 1x, 2x, 4x, 8x.
    input_size : (int, int)
        Input height, width; must be divisible by 16.
    dropout : float
        Dropout before the FC layer.
    num_stages : int
        Build only the first stages (a truncated trunk, e.g. 3 for stride 8).
    head : bool
        Build the BN-dropout-FC-BN embedding head (families with their own head
        leave it out so no parameter goes untrained).
    """

    def __init__(
        self,
        layers: Sequence[int],
        *,
        embedding_dim: int = 512,
        width: int = 64,
        input_size: Sequence[int] = (112, 112),
        dropout: float = 0.0,
        num_stages: int = 4,
        head: bool = True,
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise MfrkitError(f"IResNet needs four stage depths, got {list(layers)}")
        if not 1 <= num_stages <= 4:
            raise MfrkitError(f"num_stages must be 1..4, got {num_stages}")
        head = head and num_stages == 4
        fh, fw = _stride_check(input_size, 16)
        widths = [width, 2 * width, 4 * width, 8 * width][:num_stages]
        self.stage_channels = tuple(widths)
        self.embedding_dim = embedding_dim if head else None
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=1e-5)
        self.prelu = nn.PReLU(width)
        stages, in_ch = [], width
        for depth, out_ch in zip(layers[:num_stages], widths):
            blocks = [IBasicBlock(in_ch, out_ch, stride=2)]
            blocks += [IBasicBlock(out_ch, out_ch) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        self.bn2 = nn.BatchNorm2d(widths[-1], eps=1e-5) if num_stages == 4 else None
        self.head = head
        if head:
            self.dropout = nn.Dropout(dropout)
            self.fc = nn.Linear(widths[-1] * fh * fw, embedding_dim)
            self.features = nn.BatchNorm1d(embedding_dim, eps=1e-5)
            # arcface_torch fixes the last BN's scale at 1: the embedding keeps the FC's scale.
            nn.init.constant_(self.features.weight, 1.0)
            self.features.weight.requires_grad = False
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)

    @property
    def feature_channels(self) -> int:
        """Channels C of the last feature maps."""
        return self.stage_channels[-1]

    def forward_features(self, x: torch.Tensor, stages: int | None = None) -> torch.Tensor:
        """Feature maps ``(N, C_s, H / 2^s, W / 2^s)`` of images ``(N, 3, H, W)`` after
        ``stages`` stages (default all built: 7x7 maps for 112x112 input); the full depth
        includes the final BN."""
        stages = len(self.stages) if stages is None else stages
        if stages > len(self.stages):
            raise MfrkitError(f"this IResNet was built with {len(self.stages)} stages, not {stages}")
        x = self.prelu(self.bn1(self.conv1(x)))
        for stage in self.stages[:stages]:
            x = stage(x)
        return self.bn2(x) if stages == 4 else x

    def forward_head(self, fmap: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, embedding_dim)`` of the full-depth feature maps (BN, dropout, FC, BN)."""
        if not self.head:
            raise MfrkitError("this IResNet was built without its embedding head")
        return self.features(self.fc(self.dropout(torch.flatten(fmap, 1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, embedding_dim)`` of normalised images ``(N, 3, H, W)``."""
        return self.forward_head(self.forward_features(x))


_IRESNET_DEPTHS = {
    "iresnet18": (2, 2, 2, 2),
    "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
}


def _iresnet_factory(name: str, depths: tuple[int, ...]):
    def factory(**kwargs) -> IResNet:
        return IResNet(depths, **kwargs)

    factory.__name__ = name
    factory.__doc__ = f"IResNet with stage depths {depths}; keyword arguments as :class:`IResNet`."
    return factory


for _name, _depths in _IRESNET_DEPTHS.items():
    BACKBONES.add(_name, _iresnet_factory(_name, _depths))


# --- MobileFaceNet ---------------------------------------------------------------------------------


class ConvBNPReLU(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, k: int = 1, s: int = 1, p: int = 0, groups: int = 1) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, k, s, p, groups=groups, bias=False), nn.BatchNorm2d(out_ch), nn.PReLU(out_ch))


class ConvBN(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, k: int | tuple = 1, s: int = 1, p: int = 0, groups: int = 1) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, k, s, p, groups=groups, bias=False), nn.BatchNorm2d(out_ch))


class DepthWise(nn.Module):
    """Inverted bottleneck: 1x1 expand, 3x3 depthwise (stride), linear 1x1 project."""

    def __init__(self, in_ch: int, out_ch: int, hidden: int, stride: int = 1, residual: bool = False) -> None:
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBNPReLU(in_ch, hidden, 1),
            ConvBNPReLU(hidden, hidden, 3, stride, 1, groups=hidden),
            ConvBN(hidden, out_ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return x + out if self.residual else out


class MobileFaceNet(nn.Module):
    """MobileFaceNet (Chen et al., 2018) in the ``arcface_torch`` layout (``mbf``).

    Stride-16 body of inverted bottlenecks, a 1x1 conv to 512 channels, then a global
    depthwise convolution (GDC) over the whole map and a linear layer to the embedding.

    Parameters
    ----------
    embedding_dim : int
    width : int
        Channels of the first stage before ``scale`` (64 published).
    scale : int
        Channel multiplier of ``arcface_torch`` (2 there).
    blocks : four ints
        Residual bottlenecks per stage.
    input_size : (int, int)
        Must be divisible by 16.
    head : bool
        Build the GDC-linear-BN embedding head.
    """

    def __init__(
        self,
        *,
        embedding_dim: int = 512,
        width: int = 64,
        scale: int = 2,
        blocks: Sequence[int] = (1, 4, 6, 2),
        input_size: Sequence[int] = (112, 112),
        head: bool = True,
    ) -> None:
        super().__init__()
        fh, fw = _stride_check(input_size, 16)
        c1, c2 = width * scale, 2 * width * scale
        e1, e2, e3 = 2 * width, 4 * width, 8 * width  # bottleneck expansions (128, 256, 512 published)

        def residual(ch: int, n: int, hidden: int) -> nn.Sequential:
            return nn.Sequential(*[DepthWise(ch, ch, hidden, residual=True) for _ in range(n)])

        self.embedding_dim = embedding_dim if head else None
        self.head = head
        self.body = nn.Sequential(
            ConvBNPReLU(3, c1, 3, 2, 1),
            ConvBNPReLU(c1, c1, 3, 1, 1, groups=c1) if blocks[0] == 1 else residual(c1, blocks[0], e1),
            DepthWise(c1, c1, e1, stride=2),
            residual(c1, blocks[1], e1),
            DepthWise(c1, c2, e2, stride=2),
            residual(c2, blocks[2], e2),
            DepthWise(c2, c2, e3, stride=2),
            residual(c2, blocks[3], e2),
            ConvBNPReLU(c2, 8 * width, 1),
        )
        self.stage_channels = (8 * width,)
        if head:
            self.gdc = ConvBN(8 * width, 8 * width, (fh, fw), groups=8 * width)
            self.fc = nn.Linear(8 * width, embedding_dim, bias=False)
            self.features = nn.BatchNorm1d(embedding_dim)

    @property
    def feature_channels(self) -> int:
        """Channels C of the final feature maps."""
        return self.stage_channels[-1]

    def forward_features(self, x: torch.Tensor, stages: int | None = None) -> torch.Tensor:
        """Final feature maps ``(N, C, H / 16, W / 16)`` of images ``(N, 3, H, W)``."""
        if stages not in (None, 4):
            raise MfrkitError("MobileFaceNet exposes only its final feature maps (stages=4)")
        return self.body(x)

    def forward_head(self, fmap: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, embedding_dim)`` of the feature maps (global depthwise conv, FC, BN)."""
        if not self.head:
            raise MfrkitError("this MobileFaceNet was built without its embedding head")
        return self.features(self.fc(torch.flatten(self.gdc(fmap), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, embedding_dim)`` of normalised images ``(N, 3, H, W)``."""
        return self.forward_head(self.forward_features(x))


@BACKBONES.register("mobilefacenet")
def mobilefacenet(**kwargs) -> MobileFaceNet:
    """MobileFaceNet; keyword arguments as :class:`MobileFaceNet`."""
    return MobileFaceNet(**kwargs)
