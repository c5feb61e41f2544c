"""Training speed: N real optimisation steps of a family on a device, in a precision.

:func:`run_training_steps` runs the same :class:`~mfrkit.models.train_step.TrainStep` as
``mfrkit models train`` (autocast, loss checks, backward, clipping, SGD update) on
random inputs of the family's input size, so steps per second measure the model and the
device, not the data pipeline (``benchmarks/train_io.py`` measures that). Used by
``benchmarks/gpu_check.py`` (steps/s per GPU in bf16) and by the tests on the CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from .distributed import resolve_device
from .families import FAMILIES, build_family, make_config
from .precision import device_precision


@dataclass(frozen=True)
class StepTiming:
    """What :func:`run_training_steps` measured.

    Attributes
    ----------
    family : str
    device : str
    precision : str
        ``fp32``, ``bf16`` or ``fp16``.
    batch_size, steps : int
        Steps timed (after ``warmup`` untimed ones).
    seconds : float
        Wall time of the timed steps (the device synchronised before and after).
    steps_per_second, images_per_second : float
    peak_memory_bytes : int or None
        CUDA peak allocated memory over the run (None on other devices).
    last_loss : float
    """

    family: str
    device: str
    precision: str
    batch_size: int
    steps: int
    seconds: float
    steps_per_second: float
    images_per_second: float
    peak_memory_bytes: int | None
    last_loss: float


def random_batch(model, batch_size: int, n_classes: int, device: torch.device, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A batch with every key ``model.training_step`` reads: normalised-looking images
    of its input size, labels, mask domains, teacher embeddings, attributes."""
    h, w = model.preprocessing.input_size
    batch: dict[str, torch.Tensor] = {}
    for key in model.batch_keys:
        if key in ("image", "source"):
            batch[key] = torch.randn(batch_size, 3, h, w, generator=generator)
        elif key == "label":
            batch[key] = torch.randint(0, n_classes, (batch_size,), generator=generator)
        elif key == "domain":
            batch[key] = torch.randint(0, 2, (batch_size,), generator=generator)
        elif key == "teacher_embedding" and getattr(model.config, "teacher_dim", None):
            batch[key] = torch.randn(batch_size, model.config.teacher_dim, generator=generator)
        elif key in ("attributes", "source_attributes"):
            batch[key] = torch.randint(0, 2, (batch_size, len(getattr(model.config, "attributes", ()))), generator=generator).float()
    return {k: v.to(device) for k, v in batch.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_training_steps(
    family: str,
    *,
    steps: int = 20,
    batch_size: int = 64,
    device: str = "auto",
    precision: str = "auto",
    options: Mapping[str, Any] | None = None,
    n_classes: int = 1000,
    warmup: int = 3,
    lr: float = 0.01,
    seed: int = 0,
) -> StepTiming:
    """Time ``steps`` training steps of ``family`` (after ``warmup`` untimed ones).

    Parameters
    ----------
    family : str
        A registered family.
    steps, warmup : int
    batch_size : int
        Images per step (>= 2: BatchNorm).
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
    precision : str
        ``auto`` (bf16 where the GPU has it), ``fp32``, ``bf16``, ``fp16``.
    options : mapping
        Family config options (default: the published config, e.g. IResNet-50).
    n_classes : int
        Identities of the margin heads (the head's size matters at scale).
    """
    from .train_step import TrainStep

    if steps < 1 or warmup < 0 or batch_size < 2:
        from ..errors import MfrkitError

        raise MfrkitError(f"need steps >= 1, warmup >= 0 and batch_size >= 2 (got {steps}, {warmup}, {batch_size})")
    FAMILIES.get(family)
    dev = resolve_device(device)
    prec = device_precision(precision, dev)
    torch.manual_seed(seed)
    model = build_family(family, make_config(family, **dict(options or {})), n_classes).to(dev).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    stepper = TrainStep(model, optimizer, prec, dev, clip_grad=5.0)
    gen = torch.Generator().manual_seed(seed)
    batch = random_batch(model, batch_size, n_classes, dev, gen)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    losses = {}
    for i in range(warmup):
        losses = stepper(batch, lr=lr, progress=0.0, step=i)
    _sync(dev)
    start = time.perf_counter()
    for i in range(steps):
        losses = stepper(batch, lr=lr, progress=i / steps, step=warmup + i)
    _sync(dev)
    seconds = time.perf_counter() - start
    peak = int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else None
    return StepTiming(
        family=family, device=str(dev), precision=prec.name, batch_size=batch_size, steps=steps, seconds=seconds,
        steps_per_second=steps / seconds, images_per_second=steps * batch_size / seconds, peak_memory_bytes=peak,
        last_loss=float(losses["loss"]),
    )  # fmt: skip
