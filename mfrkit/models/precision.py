"""Which floating-point precision a training step runs in, per device.

``precision`` names what the user asks for; :func:`select_precision` turns it into the
autocast dtype and whether gradients need loss scaling, from facts about the device
passed in explicitly (so the rules are tested on a machine without a GPU):

========== ======================================= ===================================
precision  CUDA                                    CPU
========== ======================================= ===================================
``auto``   bfloat16 where the GPU supports it      float32
           (Ampere, Hopper...), else float16 with
           loss scaling
``fp32``   float32                                 float32
``bf16``   bfloat16 (error if unsupported)         bfloat16 autocast
``fp16``   float16 with loss scaling               error: float16 autocast needs CUDA
========== ======================================= ===================================

bfloat16 has float32's exponent range, so it needs no loss scaling; float16 does.
Weights, optimizer state and the losses (computed in float32 by the loss functions)
stay float32 in every case.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import MfrkitError
from .train_config import PRECISIONS


@dataclass(frozen=True)
class Precision:
    """The chosen precision of a run.

    Attributes
    ----------
    name : str
        ``fp32``, ``bf16`` or ``fp16``.
    dtype : torch.dtype or None
        The autocast dtype; None runs without autocast (float32).
    loss_scaling : bool
        Whether a GradScaler must scale the loss (float16 only).
    """

    name: str
    dtype: torch.dtype | None
    loss_scaling: bool = False

    def autocast(self, device_type: str):
        """The autocast context for a step on ``device_type`` (a no-op for fp32)."""
        return torch.autocast(device_type=device_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)


FP32 = Precision("fp32", None)
BF16 = Precision("bf16", torch.bfloat16)
FP16 = Precision("fp16", torch.float16, loss_scaling=True)


def select_precision(requested: str, device_type: str, *, bf16_supported: bool) -> Precision:
    """The precision of a run (see the module table).

    Parameters
    ----------
    requested : str
        One of :data:`PRECISIONS`.
    device_type : str
        ``cuda`` or ``cpu`` (other types train in float32 unless asked otherwise).
    bf16_supported : bool
        Whether the device computes bfloat16 natively (:func:`native_bf16`).
    """
    if requested not in PRECISIONS:
        raise MfrkitError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    cuda = device_type == "cuda"
    if requested == "fp32":
        return FP32
    if requested == "auto":
        if not cuda:
            return FP32
        return BF16 if bf16_supported else FP16
    if requested == "bf16":
        if cuda and not bf16_supported:
            raise MfrkitError("this GPU has no native bfloat16: use --precision fp16 (or auto)")
        return BF16
    if not cuda:
        raise MfrkitError("float16 autocast needs a CUDA device; on the CPU use --precision bf16 or fp32")
    return FP16


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA GPU of compute capability
    8.0 or later (Ampere, Ada, Hopper, Blackwell).

    ``torch.cuda.is_bf16_supported()`` also answers True on older GPUs, where bfloat16 is
    emulated and slower than float16 with loss scaling, so the capability decides.
    """
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def device_precision(requested: str, device: torch.device) -> Precision:
    """:func:`select_precision` for a real device (native bfloat16 from :func:`native_bf16`)."""
    return select_precision(requested, device.type, bf16_supported=native_bf16(device))
