"""Optimisation settings of ``mfrkit models train`` (the family's own live in its ``Config``).

Kept apart from :mod:`mfrkit.models.train`, and free of torch, so the command line can
declare its options from these fields without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import MfrkitError
from ..options import names, option

#: Precisions a run may ask for (see :mod:`mfrkit.models.precision`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the family's own settings live in its ``Config``).

    Attributes
    ----------
    epochs : int
    batch_size : int
        Per process; the global batch under ``torchrun`` is ``batch_size * world``.
    lr : float
        Peak learning rate; cosine decay to 0 after ``warmup_steps`` of linear warm-up.
    momentum, weight_decay : float
        SGD settings.
    warmup_steps : int
    clip_grad : float
        Max global gradient norm (0 disables).
    workers : int
        DataLoader worker processes (per process).
    device : str
        ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``...; under
        ``torchrun``, ``cuda`` means this process's GPU (``LOCAL_RANK``).
    precision : str
        ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` (see :mod:`mfrkit.models.precision`).
    seed : int
    log_every, checkpoint_every : int
        In steps.
    mask_probability : float
        Chance that ``mask_transform`` masks an unmasked sample.
    variants : tuple of str or None
        Train only on samples of these variants.
    amp : bool or None
        Deprecated spelling of ``precision`` (True: ``auto``, False: ``fp32``); read once
        and reset to None.
    """

    epochs: int = option(10, min=1, help="Passes over the training images.")
    batch_size: int = option(128, min=2, help="Images per step and process (the global batch under torchrun is this times the processes).")
    lr: float = option(0.1, help="Peak learning rate (SGD; linear warm-up, then cosine decay to 0).")
    momentum: float = option(0.9, min=0, help="SGD momentum.")
    weight_decay: float = option(5e-4, min=0, help="SGD weight decay.")
    warmup_steps: int = option(0, min=0, help="Steps of linear learning-rate warm-up.")
    clip_grad: float = option(5.0, min=0, help="Max global gradient norm (0: no clipping).")
    workers: int = option(2, short="-j", min=0, help="Data-loading worker processes per training process (0: in the main process).")
    device: str = option("auto", help="auto, cpu, cuda, cuda:N (under torchrun, cuda is each process's own GPU).")
    precision: str = option("auto", help="auto (bf16 autocast on GPUs that have it, fp16 on older ones, fp32 on CPU), fp32, bf16, fp16.")
    seed: int = option(0, help="Seed of the weights, the epoch orders, dropout and on-the-fly masks.")
    log_every: int = option(10, min=1, help="Write the losses every N steps.")
    checkpoint_every: int = option(500, min=1, help="Checkpoint every N steps (and at the end of each epoch).")
    mask_probability: float = option(0.5, min=0, max=1, help="With --mask-on-the-fly: the chance an unmasked image is masked.")
    variants: tuple[str, ...] | None = option(None, parse=names, help="Train only on images of these variants, comma-separated (e.g. unmasked).")
    amp: bool | None = option(None, cli=False, help="Deprecated (before precision): True = precision auto, False = fp32.")

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise MfrkitError(f"need epochs >= 1 and batch_size >= 2 (got {self.epochs}, {self.batch_size})")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise MfrkitError(f"lr must be a positive number, got {self.lr}")
        if self.precision not in PRECISIONS:
            raise MfrkitError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.log_every < 1 or self.checkpoint_every < 1 or self.warmup_steps < 0 or self.workers < 0:
            raise MfrkitError("log_every and checkpoint_every must be >= 1, warmup_steps and workers >= 0")
        if self.amp is not None:
            # The 0.1 field: mixed precision on or off. Kept so older callers still run.
            object.__setattr__(self, "precision", "auto" if self.amp else "fp32")
            object.__setattr__(self, "amp", None)
        if self.variants is not None:
            object.__setattr__(self, "variants", tuple(self.variants))
