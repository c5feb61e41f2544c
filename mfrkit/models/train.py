"""The training loop: plain, readable and resumable.

``train(family, data, out)`` reads a manifest, builds a :class:`PairedFaceDataset` and
the family, and runs SGD with a cosine learning-rate schedule (mixed precision on
CUDA). Into ``out`` it writes:

``checkpoint.pt``
    the latest state (see :mod:`mfrkit.models.checkpoint`), every
    ``checkpoint_every`` steps and at the end of each epoch, atomically;
``losses.jsonl``
    one JSON line per logged step (``epoch``, ``step``, ``lr``, every loss term).

Run it again with the same ``out`` and it resumes from the checkpoint, at the same
batch of the same epoch: each epoch's order is a permutation seeded by
``(seed, epoch)``, so the batches still to come are the ones an uninterrupted run would
have seen. A checkpoint of another family, config or manifest is refused, not mixed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..atomic import atomic_write_text
from ..data.manifest import Manifest
from ..data.registry import resolve_source
from ..errors import MfrkitError
from ..progress import progress_bar
from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .dataset import MaskTransform, PairedFaceDataset
from .families import FAMILIES, FamilyModel, config_dict, make_config
from .teacher import Teacher, load_teacher

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "losses.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the family's own settings live in its ``Config``).

    Attributes
    ----------
    epochs, batch_size : int
    lr : float
        Peak learning rate; cosine decay to 0 after ``warmup_steps`` of linear warm-up.
    momentum, weight_decay : float
        SGD settings.
    warmup_steps : int
    clip_grad : float
        Max global gradient norm (0 disables).
    workers : int
        DataLoader worker processes.
    device : str
        ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``...
    amp : bool
        float16 autocast with loss scaling on CUDA (ignored on CPU).
    seed : int
    log_every, checkpoint_every : int
        In steps.
    mask_probability : float
        Chance that ``mask_transform`` masks an unmasked sample.
    variants : tuple of str or None
        Train only on samples of these variants.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 0
    clip_grad: float = 5.0
    workers: int = 2
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    mask_probability: float = 0.5
    variants: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise MfrkitError(f"need epochs >= 1 and batch_size >= 2 (got {self.epochs}, {self.batch_size})")
        if self.lr <= 0:
            raise MfrkitError(f"lr must be positive, got {self.lr}")


@dataclass(frozen=True)
class TrainResult:
    """What a :func:`train` call did.

    Attributes
    ----------
    out : Path
    checkpoint : Path
    step, epoch : int
        Steps done and epochs completed in total (including earlier runs).
    resumed_from : int
        Step the run resumed from (0 for a fresh run).
    last_losses : dict of str to float
    n_samples, n_classes : int
    dropped : dict of str to int
        Manifest rows left out, by reason.
    device : str
    """

    out: Path
    checkpoint: Path
    step: int
    epoch: int
    resumed_from: int
    last_losses: dict[str, float] = field(default_factory=dict)
    n_samples: int = 0
    n_classes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    device: str = "cpu"


def lr_at(step: int, total: int, base: float, warmup: int = 0) -> float:
    """Learning rate at ``step`` (0-based) of ``total``: linear warm-up, then cosine to 0."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, (step - warmup) / span)
    return 0.5 * base * (1.0 + math.cos(math.pi * t))


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of ``epoch``: a seeded permutation cut into ``batch_size`` chunks.

    A last chunk of one sample is dropped (BatchNorm cannot train on it).
    """
    order = np.random.default_rng([seed, epoch]).permutation(n).tolist()
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if batches and len(batches[-1]) < 2:
        batches.pop()
    return batches


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise MfrkitError(f"unknown device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MfrkitError("CUDA was requested but torch sees no CUDA device")
    return device


def _trim_log(path: Path, step: int) -> None:
    # On resume, drop log lines after the checkpoint (and a line cut by a crash).
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    atomic_write_text(path, "".join(k + "\n" for k in keep))


def _check_resume(state: Mapping[str, Any], family: str, config: dict, fingerprint: str, classes: list[str]) -> None:
    problems = []
    if state["family"] != family:
        problems.append(f"family {state['family']!r} != {family!r}")
    if config_dict(make_config(family, **state["config"])) != config:
        problems.append("family options differ")
    if state.get("manifest_fingerprint") != fingerprint:
        problems.append("the manifest's images differ")
    if list(state.get("classes", [])) != classes:
        problems.append("the identity classes differ")
    if problems:
        raise MfrkitError(
            "the output folder holds a checkpoint of a different run (" + "; ".join(problems) + "): "
            "choose a new output folder to start over"
        )


def train(
    family: str,
    data: str | os.PathLike | Manifest,
    out: str | os.PathLike,
    *,
    options: Mapping[str, Any] | None = None,
    config: TrainConfig | None = None,
    teacher: "str | os.PathLike | Teacher | None" = None,
    aligned: bool = False,
    landmarks: Mapping | None = None,
    landmark_backend: str = "mediapipe",
    mask_transform: MaskTransform | None = None,
    max_steps: int | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train family ``family`` on a manifest, resuming from ``out`` when it holds a checkpoint.

    Parameters
    ----------
    family : str
        A name from :data:`~mfrkit.models.families.FAMILIES`.
    data : str, path or Manifest
        A registered dataset name, a manifest file, a dataset folder (see
        :func:`mfrkit.data.registry.resolve_source`), or a Manifest.
    out : path
        Output folder (checkpoint and loss log).
    options : mapping
        Family config options (see the family's ``Config``).
    config : TrainConfig
    teacher : ONNX path or Teacher, optional
        Distillation teacher (``csn`` only); its embedding size sets ``teacher_dim``.
    aligned : bool
        The images are ready-aligned crops (no landmarks needed).
    landmarks : mapping of image_id to FaceResult, optional
        Cached landmarks; default: ``mfrkit.landmarks.cache.get_landmarks(manifest,
        landmark_backend)`` (detecting what is not cached yet).
    mask_transform : callable, optional
        ``(crop, rng) -> crop`` masking unmasked samples on the fly.
    max_steps : int, optional
        Stop (after checkpointing) once this many steps are done in total.
    progress : bool
        Show a rich progress bar on stderr.
    """
    cfg = config or TrainConfig()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MfrkitError(f"the run folder {out} is a file; give a folder (it gets the checkpoint and the loss log)")
    manifest = data if isinstance(data, Manifest) else resolve_source(data, workers=max(1, cfg.workers), progress=progress)
    cls = FAMILIES.get(family)
    opts = dict(options or {})
    teacher_obj = load_teacher(teacher) if teacher is not None else None
    if teacher_obj is not None:
        if "teacher_embedding" not in cls.batch_keys:
            raise MfrkitError(f"family {family!r} does not use a teacher")
        opts["teacher_dim"] = teacher_obj.embedding_dim
    family_cfg = make_config(family, **opts)
    if getattr(family_cfg, "teacher_dim", None) is not None and teacher_obj is None:
        raise MfrkitError(f"{family} is configured for a {family_cfg.teacher_dim}-d teacher: pass the teacher model")

    device = resolve_device(cfg.device)
    if not aligned and landmarks is None:
        from ..landmarks.cache import get_landmarks

        # Points only (a lazy mapping over the landmark store): training never needs the mesh.
        landmarks = get_landmarks(manifest, landmark_backend, workers=max(1, cfg.workers), progress=progress, mesh=False)
    dataset = PairedFaceDataset(
        manifest,
        cls.preprocessing_for(family_cfg),
        landmarks=landmarks,
        aligned=aligned,
        teacher_preprocessing=teacher_obj.preprocessing if teacher_obj is not None else None,
        mask_transform=mask_transform,
        mask_probability=cfg.mask_probability,
        attributes=getattr(family_cfg, "attributes", ()),
        variants=cfg.variants,
        seed=cfg.seed,
    )
    if len(dataset) < 2:
        raise MfrkitError(f"only {len(dataset)} usable image(s) (left out: {dict(dataset.dropped)}); need at least 2")
    if not dataset.classes:
        raise MfrkitError("no image has an identity: nothing to train the identity losses on")

    batches_per_epoch = len(epoch_batches(len(dataset), cfg.batch_size, cfg.seed, 0))
    total_steps = cfg.epochs * batches_per_epoch
    fingerprint = manifest.fingerprint()
    conf_dict = config_dict(family_cfg)
    ckpt_path = out / CHECKPOINT_NAME
    log_path = out / LOG_NAME

    state = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if state is not None:
        _check_resume(state, family, conf_dict, fingerprint, dataset.classes)
        model: FamilyModel = model_from_checkpoint(state)
    else:
        model = cls(family_cfg, len(dataset.classes))
    model.to(device)
    if teacher_obj is not None and hasattr(teacher_obj, "to"):
        teacher_obj.to(device)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    epoch, batch_in_epoch, step = 0, 0, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        epoch, batch_in_epoch, step = int(state["epoch"]), int(state["batch_in_epoch"]), int(state["step"])
        _trim_log(log_path, step)
    resumed_from = step
    out.mkdir(parents=True, exist_ok=True)

    def checkpoint() -> None:
        save_checkpoint(
            ckpt_path,
            {
                "family": family,
                "config": conf_dict,
                "n_classes": len(dataset.classes),
                "classes": list(dataset.classes),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if use_amp else {},
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "step": step,
                "total_steps": total_steps,
                "train_config": {k: v for k, v in dataclasses.asdict(cfg).items()},
                "manifest_fingerprint": fingerprint,
                "teacher_dim": getattr(family_cfg, "teacher_dim", None),
            },
        )

    last: dict[str, float] = {}
    stop = max_steps if max_steps is not None else total_steps
    bar = progress_bar(min(stop, total_steps), f"train {family}", enabled=progress, completed=step)
    with bar as advance, open(log_path, "a", encoding="utf-8") as log:
        model.train()
        while epoch < cfg.epochs and step < stop:
            dataset.set_epoch(epoch)
            batches = epoch_batches(len(dataset), cfg.batch_size, cfg.seed, epoch)[batch_in_epoch:]
            loader = DataLoader(
                dataset, batch_sampler=batches, num_workers=cfg.workers, pin_memory=device.type == "cuda"
            )
            for batch in loader:
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                if teacher_obj is not None:
                    batch["teacher_embedding"] = teacher_obj(batch.pop("teacher"))
                # Dropout draws from torch's global generator; seeding it per step makes a
                # resumed run take exactly the steps an uninterrupted one would.
                torch.manual_seed(cfg.seed * 1_000_003 + step)
                lr = lr_at(step, total_steps, cfg.lr, cfg.warmup_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    losses = model.training_step(batch, progress=step / max(1, total_steps))
                loss = losses["loss"]
                if not torch.isfinite(loss):
                    raise MfrkitError(f"loss became {loss.item()} at step {step}; lower the learning rate")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.clip_grad > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                step += 1
                batch_in_epoch += 1
                last = {k: float(v.detach()) for k, v in losses.items()}
                if step % cfg.log_every == 0 or step == stop or batch_in_epoch == batches_per_epoch:
                    log.write(json.dumps({"epoch": epoch, "step": step, "lr": lr, "time": time.time(), **last}) + "\n")
                    log.flush()
                advance(1, status=f"epoch {epoch + 1}/{cfg.epochs} loss {last['loss']:.4f}")
                if batch_in_epoch == batches_per_epoch:
                    epoch, batch_in_epoch = epoch + 1, 0
                    checkpoint()
                elif step % cfg.checkpoint_every == 0 or step >= stop:
                    checkpoint()
                if step >= stop:
                    break
    if state is None and step == 0:
        checkpoint()
    return TrainResult(
        out=out,
        checkpoint=ckpt_path,
        step=step,
        epoch=epoch,
        resumed_from=resumed_from,
        last_losses=last,
        n_samples=len(dataset),
        n_classes=len(dataset.classes),
        dropped=dict(dataset.dropped),
        device=str(device),
    )
