"""One optimisation step of a family (forward in the run's precision, the checks that
keep a broken run from passing silently, backward, clipping, update), data-parallel
under ``torchrun``.

Apart from the training loop (:mod:`mfrkit.models.train`) so that timing steps
(:mod:`mfrkit.models.speed`, ``benchmarks/gpu_check.py``) imports no data pipeline
(image decoding, landmarks).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import MfrkitError
from .distributed import DistContext
from .families import FamilyModel
from .precision import Precision


class _StepModule(nn.Module):
    # DistributedDataParallel synchronises gradients of what runs inside its forward;
    # the families' training_step is not forward, so this wrapper makes it one.
    def __init__(self, model: FamilyModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        return self.model.training_step(batch, progress=progress)


class TrainStep:
    """One SGD step of a family: forward in the run's precision, the checks that keep a
    broken run from passing silently, backward, gradient clipping, update.

    Parameters
    ----------
    model : FamilyModel
        On ``device`` already.
    optimizer : torch.optim.Optimizer
    precision : Precision
    device : torch.device
    clip_grad : float
        Max global gradient norm (0: no clipping).
    ctx : DistContext
        With more than one rank the model is wrapped in DistributedDataParallel.
    """

    def __init__(self, model: FamilyModel, optimizer: torch.optim.Optimizer, precision: Precision, device: torch.device,
                 *, clip_grad: float = 0.0, ctx: DistContext = DistContext()) -> None:  # fmt: skip
        self.model = model
        self.optimizer = optimizer
        self.precision = precision
        self.device = device
        self.clip_grad = clip_grad
        self.ctx = ctx
        self.params = [p for p in model.parameters() if p.requires_grad]
        runner: nn.Module = _StepModule(model)
        if ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device.index] if device.type == "cuda" else None
            # The reference families use every parameter in every step (tests check it);
            # searching the graph for unused ones each step costs a traversal, so only a
            # family that declares some sit out steps gets the search.
            runner = DistributedDataParallel(runner, device_ids=ids,
                                             find_unused_parameters=bool(getattr(model, "unused_parameters", False)))
        self.runner = runner
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision.loss_scaling)

    def _all_ranks(self, ok: bool) -> bool:
        # A check that fails on one rank must stop every rank, or the others hang in the
        # next gradient all-reduce.
        if not self.ctx.enabled:
            return ok
        import torch.distributed as dist

        flag = torch.tensor([1.0 if ok else 0.0], device=self.device if dist.get_backend() == "nccl" else "cpu")
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item() > 0)

    def __call__(self, batch: dict[str, torch.Tensor], *, lr: float, progress: float, step: int) -> dict[str, torch.Tensor]:
        """Run one step on ``batch`` (tensors on the device); the losses, detached."""
        teacher = batch.get("teacher_embedding")
        if teacher is not None:
            bad = int((~torch.isfinite(teacher).all(dim=1)).sum())
            if not self._all_ranks(bad == 0):
                raise MfrkitError(
                    f"the teacher returned non-finite embeddings (NaN or inf) at step {step}"
                    + (f" for {bad} of {teacher.shape[0]} images of this batch" if bad else " on another rank")
                    + ": the teacher model is broken (or fed inputs it cannot take); the student was not updated"
                )
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self.precision.autocast(self.device.type):
            losses = self.runner(batch, progress)
        loss = losses["loss"]
        if not self._all_ranks(bool(torch.isfinite(loss))):
            terms = [k for k, v in losses.items() if k != "loss" and not bool(torch.isfinite(v))]
            what = f"loss term(s) {', '.join(terms)}" if terms else ("the loss" if not torch.isfinite(loss) else "the loss on another rank")
            weights_ok = all(bool(torch.isfinite(p).all()) for p in self.params)
            raise MfrkitError(
                f"{what} became non-finite at step {step} (inputs{' and teacher embeddings' if teacher is not None else ''} were finite, "
                f"weights {'finite' if weights_ok else 'already non-finite'}): training diverged; lower the learning rate "
                f"(now {lr:.3g}) or the gradient clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: v.detach() for k, v in losses.items()}


