"""Executors give byte-identical outputs, resume alike, and never leave workers behind."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from mfrkit.data.manifest import read_manifest
from mfrkit.jobs import EXECUTORS, ExecutorSpec, JobError
from mfrkit.maskgen import PartialConfig, SynthConfig, make_partial, synthesize
from mfrkit.maskgen.synth_job import SynthJob


def _files(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in (".jpg", ".png")}


def _same_dataset(a, b):
    assert _files(a) == _files(b) and _files(a)
    ma, mb = read_manifest(a), read_manifest(b)
    assert ma.fingerprint() == mb.fingerprint()
    pd.testing.assert_frame_equal(ma.table, mb.table)


SYNTH = SynthConfig(seed=5, types="random", coverage="random")
PARTIAL = PartialConfig(regions="nose,leye", factors="0.2,0.4", placement="both", seed=5)


@pytest.fixture(scope="module")
def local_outputs(sample_manifest, tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    synthesize(sample_manifest, root / "synth", SYNTH)
    make_partial(sample_manifest, root / "partial", PARTIAL)
    return root


def test_registry_names_the_executors():
    assert EXECUTORS.names() == ["local", "ray"]
    with pytest.raises(Exception, match="unknown executor 'dask'"):
        ExecutorSpec(kind="dask").create()


def test_local_pool_of_two_gives_the_same_bytes(sample_manifest, local_outputs, tmp_path):
    synthesize(sample_manifest, tmp_path / "synth", SYNTH, executor=ExecutorSpec("local", workers=2))
    _same_dataset(local_outputs / "synth", tmp_path / "synth")


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_same_bytes_as_local(sample_manifest, local_outputs, tmp_path, ray_local):
    synthesize(sample_manifest, tmp_path / "synth", SYNTH, executor=ExecutorSpec("ray", workers=2))
    _same_dataset(local_outputs / "synth", tmp_path / "synth")
    make_partial(sample_manifest, tmp_path / "partial", PARTIAL, executor=ExecutorSpec("ray", workers=2))
    _same_dataset(local_outputs / "partial", tmp_path / "partial")


def test_an_interrupted_ray_run_resumes_like_a_local_one(sample_manifest, local_outputs, tmp_path, ray_local, monkeypatch):
    target = tmp_path / "resumed"
    from mfrkit.jobs import engine

    real_create = ExecutorSpec.create
    seen = {"chunks": 0}

    class Interrupting:
        def __init__(self, inner):
            self.inner = inner

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.inner.close()

        def run(self, job, chunks):
            for out in self.inner.run(job, chunks):
                seen["chunks"] += 1
                yield out
                if seen["chunks"] == 3:
                    raise KeyboardInterrupt

    monkeypatch.setattr(SynthJob, "chunk_size", 1)
    monkeypatch.setattr(engine.ExecutorSpec, "create", lambda self: Interrupting(real_create(self)))
    with pytest.raises(KeyboardInterrupt):
        synthesize(sample_manifest, target, SYNTH, executor=ExecutorSpec("ray", workers=2))
    assert (target / ".journal").exists() and not (target / "manifest.parquet").exists()
    monkeypatch.setattr(engine.ExecutorSpec, "create", real_create)
    summary = synthesize(sample_manifest, target, SYNTH, executor=ExecutorSpec("ray", workers=2))
    assert summary.resumed == 3 and summary.processed == len(sample_manifest.table) - 3
    _same_dataset(local_outputs / "synth", target)


def test_bad_limits_and_unwritable_sources_are_refused_up_front(sample_manifest, tmp_path):
    with pytest.raises(JobError, match="--limit must be a positive"):
        synthesize(sample_manifest, tmp_path / "a", SynthConfig(limit=-5))
    assert not (tmp_path / "a").exists()


def test_a_synth_that_makes_no_image_fails_and_says_why(sample_manifest, tmp_path):
    from mfrkit.data.manifest import Manifest, write_manifest

    table = sample_manifest.table.copy()
    table["path"] = "gone/" + table["path"]  # every file missing (an exported CSV used as --src does this)
    src = Manifest(table, dict(sample_manifest.meta, root=str(sample_manifest.root)), None)
    path = write_manifest(src, tmp_path / "src" / "manifest.parquet")
    with pytest.raises(JobError, match=r"synth wrote no image: 6 missing.*failures.csv"):
        synthesize(read_manifest(path), tmp_path / "out", SynthConfig(aligned=True))
    assert (tmp_path / "out" / "failures.csv").exists()


def test_workers_die_with_a_killed_main_process(sample_manifest, tmp_path):
    """SIGKILL of the main process must not leave its pool's workers running."""
    # The job class lives in an importable module: spawned workers unpickle it by
    # name, and a class defined in `python -c` code has no module they can import.
    (tmp_path / "slow_job.py").write_text(textwrap.dedent("""
        import time
        from mfrkit.maskgen.synth_job import SynthJob

        class Slow(SynthJob):
            chunk_size = 1
            def run_item(self, item, state):
                time.sleep(30)
                return []
    """))
    code = textwrap.dedent(f"""
        from mfrkit.data.manifest import read_manifest
        from mfrkit.maskgen import SynthConfig
        from mfrkit.jobs import ExecutorSpec, run_job
        from slow_job import Slow

        job = Slow(read_manifest({str(sample_manifest.path)!r}), {str(tmp_path / 'out')!r}, SynthConfig(aligned=True))
        run_job(job, ExecutorSpec("local", workers=2))
    """)
    # slow_job.py is found through PYTHONPATH, which the pool's workers inherit too
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, env={**os.environ, "PYTHONPATH": path})
    deadline = time.time() + 60
    children: list[int] = []
    while time.time() < deadline and len(children) < 2:
        time.sleep(0.5)
        children = _children(proc.pid)
    assert len(children) >= 2, "the pool did not start"
    time.sleep(1.0)  # the workers are past start-up and inside run_item
    assert all(_alive(c) for c in children), "a worker died before the main process was killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(c) for c in children):
        time.sleep(0.2)
    assert not any(_alive(c) for c in children)


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(entry))
            except OSError:
                continue
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_bench_embeddings_on_ray_equal_the_local_pipeline(sample_manifest, tmp_path, ray_local):
    """The bench's embedding step on Ray actors (one ONNX session each) gives the
    embeddings of the local pipeline, failures to acquire included."""
    from tests.support.tiny_onnx import ARCFACE_META, make_model

    from mfrkit.bench.embed.pipeline import ImageRef, embed_images
    from mfrkit.onnx_model import OnnxModel

    path = make_model(tmp_path / "m.onnx", meta={**ARCFACE_META, "mfrkit.align": "none"})
    model = OnnxModel(path)
    table = sample_manifest.table
    refs = [ImageRef(str(i), str(sample_manifest.abspath(p)), None, "ok") for i, p in zip(table["image_id"], table["path"])]
    refs.append(ImageRef("broken", str(tmp_path / "nowhere.jpg"), "0" * 64, "ok"))
    local = embed_images(model, refs, batch_size=4, executor=ExecutorSpec(workers=0))
    ray = embed_images(model, refs, batch_size=4, executor=ExecutorSpec("ray", workers=2))
    assert list(ray.status) == list(local.status) and ray.status[-1] != "ok"
    np.testing.assert_allclose(ray.vectors, local.vectors, atol=1e-6)
    assert ray.computed == local.computed == len(table)


def test_an_unreachable_ray_cluster_names_mfrkits_option(monkeypatch):
    """Ray's own message ends by naming its CLI's `--address` flag; the error names mfrkit's
    --ray-address and the way to a local instance instead."""
    import types

    from mfrkit.jobs import ray_executor

    def init(**kw):
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to by "
                              "setting `--address` flag or `RAY_ADDRESS` environment variable.")

    fake = types.SimpleNamespace(is_initialized=lambda: False, init=init)
    monkeypatch.setattr(ray_executor, "import_ray", lambda: fake)
    with pytest.raises(ray_executor.RayUnavailableError) as info:
        ray_executor.start_ray("auto")
    message = str(info.value)
    assert message.startswith("cannot reach a Ray cluster at 'auto' (Could not find any running Ray instance):")
    assert "--ray-address HOST:PORT" in message and "`--address`" not in message
