"""The Ray executor: a job's chunks on a pool of Ray actors, locally or on a cluster.

Each actor makes the job's worker state once (a renderer, a detector, an ONNX session)
and runs chunks sent to it; at most two chunks per actor are in flight and results
stream back into the journal as they finish, so progress bars, Ctrl-C and resuming
work exactly as with the local executor, and the outputs are byte-identical.

Ray is an optional extra (``pip install mfrkit[ray]``). Every node must have mfrkit
installed and see the dataset and output folders at the same paths (a shared file
system).
"""

from __future__ import annotations

from typing import Iterable, Iterator

from ..errors import MfrkitError
from .base import Job
from .executors import Chunk, Executor, ExecutorSpec, Result


class RayUnavailableError(MfrkitError):
    """Ray is not installed, or the cluster cannot be reached."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailableError("--executor ray needs Ray: pip install 'mfrkit[ray]'") from None
    return ray


class _JobActor:
    """Holds one job and its worker state; runs chunks of its items."""

    def __init__(self, job: Job) -> None:
        import cv2

        cv2.setNumThreads(1)
        self.job = job
        self.state = job.open_worker()

    def run(self, chunk: Chunk) -> list[list[dict]]:
        return self.job.run_chunk(chunk, self.state)


def start_ray(address: str | None, num_cpus: int | None = None):
    """Connect to Ray: ``address`` None starts a local instance (``num_cpus`` CPUs),
    ``auto`` joins a running cluster; returns ``(ray, started_here)``."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        # Ray's own message ends by naming *its* CLI flag (`--address`): say mfrkit's.
        reason = str(exc).strip().split(". ")[0].rstrip(".") or type(exc).__name__
        raise RayUnavailableError(
            f"cannot reach a Ray cluster at {address!r} ({reason}): start one (`ray start --head`) and give its "
            "address (--ray-address HOST:PORT, or 'auto' on one of its nodes), or leave --ray-address out to start "
            "a local Ray instance"
        ) from None
    return ray, True


class RayExecutor(Executor):
    """Runs chunks on ``spec.workers`` Ray actors (0: one per CPU of the cluster)."""

    def __init__(self, spec: ExecutorSpec) -> None:
        super().__init__(spec)
        self._ray, self._started = start_ray(spec.address, spec.workers or None)

    def run(self, job: Job, chunks: Iterable[Chunk]) -> Iterator[Result]:
        ray = self._ray
        n = self.spec.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor_cls = ray.remote(**job.ray_resources())(_JobActor)
        actors = [actor_cls.remote(job) for _ in range(n)]
        try:
            it = iter(chunks)
            pending = {}
            for actor in actors:
                for _ in range(2):
                    chunk = next(it, None)
                    if chunk is not None:
                        pending[actor.run.remote(chunk)] = (actor, chunk)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                ref = ready[0]
                actor, chunk = pending.pop(ref)
                nxt = next(it, None)
                if nxt is not None:
                    pending[actor.run.remote(nxt)] = (actor, nxt)
                try:
                    rows = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    raise MfrkitError(f"a Ray worker failed: {exc}") from None
                yield chunk, rows
        finally:
            # Killing the actors drops the chunks still queued on them (a stopped run
            # resumes from the journal).
            for actor in actors:
                ray.kill(actor)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
