"""Data-parallel training across processes (``torchrun``): ranks, the sharded sampler,
device choice and the check that every rank holds the same weights.

Under ``torchrun --nproc_per_node=G`` every process runs the same ``train`` call; the
environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``)
says which one it is. Each epoch's order is one seeded permutation cut into *global*
batches of ``batch_size * world`` samples; rank ``r`` takes every ``world``-th sample of
each global batch (:func:`rank_batches`), so the ranks see disjoint shards and the
global batch -- and hence resume points -- do not depend on timing. Gradients are
averaged by :class:`torch.nn.parallel.DistributedDataParallel`; buffers (BatchNorm
statistics) are broadcast from rank 0 every step; rank 0 alone writes the checkpoint
and the loss log.

The backend is NCCL on GPUs and gloo on the CPU (what the tests run: two processes on
one machine).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import MfrkitError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel run.

    Attributes
    ----------
    world : int
        Number of processes (1 without ``torchrun``).
    rank, local_rank : int
    owns_group : bool
        This context created the process group (and destroys it in :meth:`close`).
    """

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def env_world() -> tuple[int, int, int]:
    """``(world, rank, local_rank)`` from the ``torchrun`` environment ((1, 0, 0) without it)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise MfrkitError(f"malformed torchrun environment (WORLD_SIZE/RANK/LOCAL_RANK): {exc}") from None
    if world < 1 or not 0 <= rank < world:
        raise MfrkitError(f"malformed torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return world, rank, local


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The device of this process.

    ``auto`` -> CUDA when available else CPU; ``cuda`` -> ``cuda:<local_rank>`` (one
    GPU per process under torchrun); anything else is ``torch.device(name)``.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise MfrkitError(f"unknown device {name!r}") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MfrkitError("CUDA was requested but torch sees no CUDA device")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise MfrkitError(f"{device} does not exist: torch sees {torch.cuda.device_count()} GPU(s)")
    return device


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group ``torchrun`` set up (gloo on CPU, NCCL on CUDA); a plain
    single-process context without ``torchrun``."""
    world, rank, local = env_world()
    if world == 1:
        return DistContext()
    if device.type == "cuda":
        # Every rank's default CUDA device is its own, also when the process group was
        # made elsewhere: NCCL and any tensor made without a device index use it.
        torch.cuda.set_device(device)
    if dist.is_initialized():
        if dist.get_world_size() != world:
            raise MfrkitError(f"a process group of {dist.get_world_size()} processes exists, but WORLD_SIZE={world}")
        return DistContext(world=world, rank=rank, local_rank=local, owns_group=False)
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend=backend, init_method="env://", world_size=world, rank=rank)
    except (RuntimeError, ValueError) as exc:
        raise MfrkitError(f"cannot join the torchrun process group ({backend}): {exc}") from None
    return DistContext(world=world, rank=rank, local_rank=local, owns_group=True)


def rank_batches(global_batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """This rank's shard of each global batch: samples ``rank, rank + world, ...``."""
    return [b[rank::world] for b in global_batches]


def parameter_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter (names, shapes, bytes): equal digests mean
    bit-identical weights.

    Buffers (BatchNorm running statistics) are left out: each rank updates them from its
    own shard, and DistributedDataParallel overwrites them with rank 0's at the start of
    every forward pass, so rank 0's (the ones checkpointed) are the run's.
    """
    h = hashlib.sha256()
    for name, tensor in module.named_parameters():
        t = tensor.detach().cpu().contiguous().reshape(-1)  # 1-d: a 0-d tensor cannot be viewed as bytes
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_in_sync(module: torch.nn.Module, ctx: DistContext) -> None:
    """Raise MfrkitError unless every rank holds bit-identical parameters (an
    all-gather of a 60-bit digest per rank: cheap enough for every checkpoint)."""
    if not ctx.enabled:
        return
    digest = int(parameter_digest(module)[:15], 16)
    mine = torch.tensor([digest], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        mine = mine.cuda()
    gathered = [torch.zeros_like(mine) for _ in range(ctx.world)]
    dist.all_gather(gathered, mine)
    values = [int(g.item()) for g in gathered]
    if len(set(values)) != 1:
        raise MfrkitError(f"the ranks' weights diverged (digests {values}): data-parallel training is broken")


def mean_over_ranks(values: dict[str, float], ctx: DistContext, device: torch.device) -> dict[str, float]:
    """Average scalar losses over the ranks (for the log: the loss of the global batch)."""
    if not ctx.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    t /= ctx.world
    mean = dict(zip(keys, t.tolist()))
    return {k: float(mean[k]) for k in values}
