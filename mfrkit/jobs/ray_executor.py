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

import contextlib
import os
import re
import socket
from typing import Iterable, Iterator

from ..deadline import deadline
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


#: Seconds a connection to a Ray cluster may take (``MFRKIT_RAY_CONNECT_TIMEOUT``): Ray
#: itself retries an unreachable address for minutes or for ever.
CONNECT_TIMEOUT_S = 30.0

_HOW_TO = ("start one (`ray start --head`) and give its address (--ray-address HOST:PORT, or 'auto' on one of its "
           "nodes), or leave --ray-address out to start a local Ray instance")


def connect_timeout() -> float:
    raw = os.environ.get("MFRKIT_RAY_CONNECT_TIMEOUT", "").strip()
    try:
        value = float(raw) if raw else CONNECT_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise MfrkitError(f"MFRKIT_RAY_CONNECT_TIMEOUT={raw!r} is not a positive number of seconds")
    return value


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``; None for ``auto`` and
    other forms Ray resolves itself."""
    m = re.match(r"^(?:ray://)?\[?([^\[\]]+?)\]?:(\d{1,5})/?$", address.strip())
    return (m.group(1), int(m.group(2))) if m else None


def check_reachable(address: str, timeout: float) -> None:
    """Refuse, in at most ``timeout`` seconds, an address nothing listens at (Ray would
    retry it for ever): one TCP connection to its host and port."""
    if address.startswith("ray://"):
        import importlib.util

        if importlib.util.find_spec("grpc") is None:
            raise RayUnavailableError(f"--ray-address {address} uses Ray Client, which needs pip install 'ray[client]'; "
                                      "or give the cluster's HOST:PORT (6379) from one of its nodes")
    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout) as sock:
            speaks = _speaks_http2(sock)
    except OSError as exc:
        reason = (f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError)
                  else (exc.strerror or type(exc).__name__).lower())
        raise RayUnavailableError(f"cannot reach a Ray cluster at {address!r} ({reason}): {_HOW_TO}") from None
    if not speaks:
        raise RayUnavailableError(f"{address!r} answers, but not as a Ray cluster (Ray's GCS and Ray Client speak "
                                  f"gRPC; this port does not): {_HOW_TO}")


#: HTTP/2's client connection preface and an empty SETTINGS frame (RFC 9113, 3.4).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _speaks_http2(sock: socket.socket) -> bool:
    """Whether the server on ``sock`` answers the HTTP/2 preface with a SETTINGS frame, as
    every gRPC server (Ray's GCS, Ray Client) does first; an HTTP/1 server, an SSH daemon
    or a silent port does not (Ray would retry them for ever)."""
    sock.sendall(_H2_PREFACE)
    head = b""
    while len(head) < 9:
        block = sock.recv(9 - len(head))
        if not block:
            return False
        head += block
    return head[3] == 0x04  # frame type SETTINGS


def _deadline(seconds: float, address: str):
    """Interrupt the block after ``seconds`` (:func:`mfrkit.deadline.deadline`; off the
    main thread the TCP check alone bounds the wait)."""
    return deadline(seconds, lambda: RayUnavailableError(f"no Ray cluster answered at {address!r} within {seconds:g} s "
                                                         f"(MFRKIT_RAY_CONNECT_TIMEOUT): {_HOW_TO}"))


def start_ray(address: str | None, num_cpus: int | None = None):
    """Connect to Ray: ``address`` None starts a local instance (``num_cpus`` CPUs),
    ``auto`` joins a running cluster; returns ``(ray, started_here)``.

    A connection takes at most :func:`connect_timeout` seconds and fails with one line
    (:class:`RayUnavailableError`): an address nothing listens at, a ``ray://`` address
    without Ray Client installed, or a cluster that does not answer in time.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        ray.init(num_cpus=num_cpus, **kwargs)
        return ray, True
    timeout = connect_timeout()
    check_reachable(address, timeout)
    try:
        with _deadline(timeout, address):
            ray.init(address=address, **kwargs)
    except RayUnavailableError:
        with contextlib.suppress(Exception):
            ray.shutdown()
        raise
    except Exception as exc:  # ConnectionError, ValueError ("requires ray[client]"), RuntimeError, ...: Ray's many types
        # Ray's own message ends by naming *its* CLI flag (`--address`): say mfrkit's.
        reason = " ".join(str(exc).split()).split(". ")[0].rstrip(".") or type(exc).__name__
        raise RayUnavailableError(f"cannot reach a Ray cluster at {address!r} ({reason}): {_HOW_TO}") from None
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
