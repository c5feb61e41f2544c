"""The training loop: plain, readable, resumable, and data-parallel under ``torchrun``.

``train(family, data, out)`` reads a manifest (or a pack made by ``mfrkit pack``),
builds a :class:`PairedFaceDataset` and the family, and runs SGD with a cosine
learning-rate schedule, in the precision :mod:`mfrkit.models.precision` picks for the
device (bfloat16 autocast on GPUs that have it). Into ``out`` it writes:

``checkpoint.pt``
    the latest state (see :mod:`mfrkit.models.checkpoint`), every
    ``checkpoint_every`` steps and at the end of each epoch, atomically;
``losses.jsonl``
    one JSON line per logged step (``epoch``, ``step``, ``lr``, every loss term).

Run it again with the same ``out`` and it resumes from the checkpoint, at the same
batch of the same epoch: each epoch's order is a permutation seeded by
``(seed, epoch)``, so the batches still to come are the ones an uninterrupted run would
have seen. A checkpoint of another family, config or manifest is refused, not mixed.

Under ``torchrun --nproc_per_node=G`` the same call runs in G processes (see
:mod:`mfrkit.models.distributed`): ``batch_size`` is per process, each rank trains on
its shard of every global batch, DistributedDataParallel averages the gradients, and
rank 0 writes the checkpoint and the log; every checkpoint verifies that all ranks
hold bit-identical weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch
from torch.utils.data import DataLoader

from ..atomic import atomic_write_text
from ..data.manifest import Manifest
from ..data.manifest_stream import is_manifest
from ..errors import MfrkitError
from ..packs.pack import Pack, is_pack
from ..progress import progress_bar
from ..rng import keyed_rng
from ..userfiles import read_user_text
from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .dataset import MaskTransform, PairedFaceDataset
from .distributed import (
    DistContext,
    check_in_sync,
    env_world,
    init_distributed,
    mean_over_ranks,
    parameter_digest,
    rank_batches,
    resolve_device,
)
from .families import FAMILIES, FamilyModel, build_family, config_dict, make_config
from .precision import device_precision
from .run_folder import check_run_folder, claim_run_folder, different_run_error, resume_problems
from .teacher import Teacher, load_teacher
from .train_config import TrainConfig
from .train_step import TrainStep

__all__ = ["TrainResult", "TrainStep", "epoch_batches", "lr_at", "train"]

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "losses.jsonl"
T = TypeVar("T")


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
        The last step's losses (the mean over ranks under ``torchrun``).
    n_samples, n_classes : int
    dropped : dict of str to int
        Manifest rows left out, by reason.
    device : str
    precision : str
        ``fp32``, ``bf16`` or ``fp16``.
    world, rank : int
        Processes in the run and this one's rank.
    weights_digest : str
        SHA-256 of this process's final parameters (:func:`~mfrkit.models.distributed.parameter_digest`).
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
    precision: str = "fp32"
    world: int = 1
    rank: int = 0
    weights_digest: str = ""


def lr_at(step: int, total: int, base: float, warmup: int = 0) -> float:
    """Learning rate at ``step`` (0-based) of ``total``: linear warm-up, then cosine to 0."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, (step - warmup) / span)
    return 0.5 * base * (1.0 + math.cos(math.pi * t))


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, *, min_size: int = 2) -> list[list[int]]:
    """The batches of ``epoch``: a seeded permutation cut into ``batch_size`` chunks.

    A last chunk smaller than ``min_size`` is dropped (BatchNorm cannot train on one
    sample; under ``torchrun`` every rank needs two).
    """
    order = keyed_rng(seed, epoch).permutation(n).tolist()
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if batches and len(batches[-1]) < min_size:
        batches.pop()
    return batches


def _trim_log(path: Path, step: int) -> None:
    # On resume, drop log lines after the checkpoint (and a line cut by a crash).
    if not path.exists():
        return
    keep = []
    for line in read_user_text(path, "log", encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    atomic_write_text(path, "".join(k + "\n" for k in keep))


def _check_resume(state: Mapping[str, Any], family: str, config: dict, fingerprint: str, classes: list[str], out: Path) -> None:
    problems = resume_problems(state, family, config, fingerprint, classes)
    if problems:
        raise different_run_error(out, problems)


# --- the loop -------------------------------------------------------------------------------------


def _main_first(ctx: DistContext, fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 first (it may write caches), then on the other ranks."""
    if not ctx.enabled:
        return fn()
    if ctx.is_main:
        result = fn()
        ctx.barrier()
        return result
    ctx.barrier()
    return fn()


def _resolve_data(data, workers: int, progress: bool) -> tuple[Manifest, Pack | None]:
    if isinstance(data, Pack):
        return data.manifest, data
    if is_manifest(data):
        return data, None
    if isinstance(data, (str, os.PathLike)) and is_pack(data):
        pack = Pack(data)
        return pack.manifest, pack
    from ..data.registry import resolve_source

    return resolve_source(data, workers=max(1, workers), progress=progress), None


def train(
    family: str,
    data: str | os.PathLike | Manifest | Pack,
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
    recipe: str | None = None,
) -> TrainResult:
    """Train family ``family`` on a manifest or pack, resuming from ``out`` when it holds a checkpoint.

    Parameters
    ----------
    family : str
        A name from :data:`~mfrkit.models.families.FAMILIES`.
    data : str, path, Manifest or Pack
        A pack folder (``mfrkit pack``), a registered dataset name, a manifest file, a
        dataset folder (see :func:`mfrkit.data.registry.resolve_source`), a Manifest or
        a Pack.
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
        Cached landmarks; default: ``mfrkit.landmarks.lookup.get_landmarks(manifest,
        landmark_backend)`` (detecting what is not cached yet). Not used with a pack.
    mask_transform : callable, optional
        ``(crop, rng) -> crop`` masking unmasked samples on the fly.
    max_steps : int, optional
        Stop (after checkpointing) once this many steps are done in total.
    progress : bool
        Show a rich progress bar on stderr (rank 0 only).
    recipe : str, optional
        The recipe the settings came from; saved in the checkpoint, so an export says
        which recipe trained it (``mfrkit.recipe``).
    """
    cfg = config or TrainConfig()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MfrkitError(f"the run folder {out} is a file; give a folder (it gets the checkpoint and the loss log)")
    check_run_folder(out)  # a user's folder is refused before the data is read or landmarks detected
    device = resolve_device(cfg.device, env_world()[2])
    ctx = init_distributed(device)
    try:
        with contextlib.ExitStack() as claims:  # rank 0's claim on the run folder, released at the end
            return _train(family, data, out, cfg, ctx, device, options=options, teacher=teacher, aligned=aligned, landmarks=landmarks,
                          landmark_backend=landmark_backend, mask_transform=mask_transform, max_steps=max_steps,
                          progress=progress and ctx.is_main, claims=claims, recipe=recipe)  # fmt: skip
    finally:
        ctx.close()


def _train(family, data, out: Path, cfg: TrainConfig, ctx: DistContext, device: torch.device, *, options, teacher, aligned,
           landmarks, landmark_backend, mask_transform, max_steps, progress, claims: contextlib.ExitStack,
           recipe=None) -> TrainResult:  # fmt: skip
    manifest, pack = _main_first(ctx, lambda: _resolve_data(data, cfg.workers, progress))
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
    precision = device_precision(cfg.precision, device)
    aligned = aligned or bool(manifest.meta.get("aligned"))  # insightface's RecordIO holds aligned crops

    if pack is None and not aligned and landmarks is None:
        from ..landmarks.lookup import get_landmarks

        # Points only (a lazy mapping over the landmark store): training never needs the mesh.
        landmarks = _main_first(
            ctx, lambda: get_landmarks(manifest, landmark_backend, workers=max(1, cfg.workers), progress=progress, mesh=False)
        )
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
        pack=pack,
        with_source="source" in cls.batch_keys,
    )
    if len(dataset) < 2 * ctx.world:
        raise MfrkitError(f"only {len(dataset)} usable image(s) (left out: {dict(dataset.dropped)}); need at least {2 * ctx.world}")
    if not dataset.classes:
        raise MfrkitError("no image has an identity: nothing to train the identity losses on")
    if len(dataset.classes) < 2:
        # One class: every identity loss is exactly 0 and the model learns nothing.
        raise MfrkitError(
            f"the training images show one identity ({dataset.classes[0]!r}): a face model learns by telling identities "
            "apart, so every identity loss would be 0; give images of at least two identities"
        )

    global_batch = cfg.batch_size * ctx.world

    def batches_of(epoch: int) -> list[list[int]]:
        return rank_batches(epoch_batches(len(dataset), global_batch, cfg.seed, epoch, min_size=2 * ctx.world), ctx.rank, ctx.world)

    batches_per_epoch = len(batches_of(0))
    if batches_per_epoch == 0:
        raise MfrkitError(f"{len(dataset)} images do not fill one batch of 2 per process")
    total_steps = cfg.epochs * batches_per_epoch
    fingerprint = manifest.fingerprint()
    conf_dict = config_dict(family_cfg)
    ckpt_path = out / CHECKPOINT_NAME
    log_path = out / LOG_NAME
    # Claimed before anything is read from or written to it: a user's folder, or one
    # another run is writing, is refused here (rank 0 writes; the other ranks only read).
    folder = claims.enter_context(claim_run_folder(out, family, conf_dict, fingerprint, dataset.classes)) if ctx.is_main else None
    ctx.barrier()

    state = load_checkpoint(ckpt_path, map_location=device) if ckpt_path.exists() else None
    if state is not None:
        _check_resume(state, family, conf_dict, fingerprint, dataset.classes, out)
        model: FamilyModel = model_from_checkpoint(state)
    else:
        torch.manual_seed(cfg.seed)  # the initial weights (DDP then copies rank 0's to every rank)
        model = build_family(family, family_cfg, len(dataset.classes))
    model.to(device)
    if teacher_obj is not None and hasattr(teacher_obj, "to"):
        teacher_obj.to(device)

    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    stepper = TrainStep(model, optimizer, precision, device, clip_grad=cfg.clip_grad, ctx=ctx)
    epoch, batch_in_epoch, step = 0, 0, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and precision.loss_scaling:
            stepper.scaler.load_state_dict(state["scaler"])
        epoch, batch_in_epoch, step = int(state["epoch"]), int(state["batch_in_epoch"]), int(state["step"])
        if ctx.is_main:
            _trim_log(log_path, step)
    resumed_from = step
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)

    def checkpoint() -> None:
        check_in_sync(model, ctx)
        if not ctx.is_main:
            return
        save_checkpoint(
            ckpt_path,
            {
                "family": family,
                "config": conf_dict,
                "n_classes": len(dataset.classes),
                "classes": list(dataset.classes),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": stepper.scaler.state_dict() if precision.loss_scaling else {},
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "step": step,
                "total_steps": total_steps,
                "train_config": dataclasses.asdict(cfg),
                "manifest_fingerprint": fingerprint,
                "teacher_dim": getattr(family_cfg, "teacher_dim", None),
                "world": ctx.world,
                "precision": precision.name,
                "recipe": recipe or "",
            },
        )

    last: dict[str, float] = {}
    stop = max_steps if max_steps is not None else total_steps
    bar = progress_bar(min(stop, total_steps), f"train {family}", enabled=progress, completed=step)
    log = open(log_path, "a", encoding="utf-8") if ctx.is_main else None
    try:
        with bar as advance:
            model.train()
            while epoch < cfg.epochs and step < stop:
                dataset.set_epoch(epoch)
                loader = DataLoader(
                    dataset, batch_sampler=batches_of(epoch)[batch_in_epoch:], num_workers=cfg.workers,
                    pin_memory=device.type == "cuda", persistent_workers=False,
                )  # fmt: skip
                for batch in loader:
                    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                    if teacher_obj is not None:
                        batch["teacher_embedding"] = teacher_obj(batch.pop("teacher"))
                    # Dropout draws from torch's global generator; seeding it per step (and
                    # rank) makes a resumed run take exactly the steps an uninterrupted one would.
                    torch.manual_seed(cfg.seed * 1_000_003 + step + 7919 * ctx.rank)
                    lr = lr_at(step, total_steps, cfg.lr, cfg.warmup_steps)
                    losses = stepper(batch, lr=lr, progress=step / max(1, total_steps), step=step)
                    step += 1
                    batch_in_epoch += 1
                    end_of_epoch = batch_in_epoch == batches_per_epoch
                    if step % cfg.log_every == 0 or step == stop or end_of_epoch:
                        last = mean_over_ranks({k: float(v) for k, v in losses.items()}, ctx, device)
                        if log is not None:
                            log.write(json.dumps({"epoch": epoch, "step": step, "lr": lr, "time": time.time(), **last}) + "\n")
                            log.flush()
                    advance(1, status=f"epoch {epoch + 1}/{cfg.epochs} loss {float(losses['loss']):.4f}")
                    if end_of_epoch:
                        epoch, batch_in_epoch = epoch + 1, 0
                        checkpoint()
                    elif step % cfg.checkpoint_every == 0 or step >= stop:
                        checkpoint()
                    if step >= stop:
                        break
        if state is None and step == 0:
            checkpoint()
    finally:
        if log is not None:
            log.close()
    if folder is not None and epoch >= cfg.epochs:
        folder.finished()
    ctx.barrier()  # the checkpoint is on disk before any rank returns
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
        precision=precision.name,
        world=ctx.world,
        rank=ctx.rank,
        weights_digest=parameter_digest(model),
    )
