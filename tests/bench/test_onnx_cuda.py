"""onnxruntime on CUDA, checked on the CPU: onnxruntime-gpu is mocked where it decides
(providers listed, the provider that really loads, ``preload_dlls``), the code paths
that run on a GPU (I/O binding, padded batches) run on the CPU device."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest

from mfrkit import doctor
from mfrkit.bench.embed import embedding_cache as C
from mfrkit import onnx_model as R
from mfrkit.bench.embed.pipeline import ImageRef, embed_images
from mfrkit.errors import ModelError
from mfrkit.jobs import ExecutorSpec

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


class FakeGpuRuntime:
    """onnxruntime-gpu as far as mfrkit can see it: CUDA listed; a session whose CUDA
    provider loads (``loads=True``) or falls back to the CPU. Sessions really run on the
    CPU; what they were asked for is recorded."""

    def __init__(self, monkeypatch, *, loads: bool, torch_imported: bool = False) -> None:
        self.loads, self.calls, self.preloads, self.torch_imports = loads, [], 0, 0
        real = ort.InferenceSession
        fake = self

        class Session(real):
            def __init__(self, model, sess_options=None, providers=None, **kw):
                fake.calls.append(providers)
                super().__init__(model, sess_options=sess_options, providers=[CPU])

            def get_providers(self):
                return [CUDA, CPU] if fake.loads else [CPU]

        def preload(**kw):
            fake.preloads += 1

        def import_torch():
            fake.torch_imports += 1
            return "loaded by importing torch"

        monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
        monkeypatch.setattr(ort, "InferenceSession", Session)
        monkeypatch.setattr(ort, "preload_dlls", preload, raising=False)
        monkeypatch.setattr(R, "_torch_imported", lambda: torch_imported)
        monkeypatch.setattr(R, "_import_torch_libraries", import_torch)
        monkeypatch.setattr(R, "_device_memory", lambda device_id: 80 * 2**30)
        R.prepare_cuda_libraries.cache_clear()

    def cuda_options(self, call: int = 0) -> dict:
        entry = self.calls[call][0]
        assert isinstance(entry, tuple) and entry[0] == CUDA, self.calls[call]
        return entry[1]


@pytest.fixture(autouse=True)
def fresh_preload():
    R.prepare_cuda_libraries.cache_clear()
    yield
    R.prepare_cuda_libraries.cache_clear()


def test_provider_options_per_device():
    opts = R.CudaOptions(device_id=2).provider_options(total_memory=80 * 2**30)
    assert opts == {"device_id": "2", "arena_extend_strategy": "kSameAsRequested", "cudnn_conv_algo_search": "HEURISTIC",
                    "use_tf32": "0", "gpu_mem_limit": str(40 * 2**30)}
    opts = R.CudaOptions(tf32=True, memory_limit=2**30, conv_search="EXHAUSTIVE").provider_options()
    assert (opts["use_tf32"], opts["gpu_mem_limit"], opts["cudnn_conv_algo_search"]) == ("1", str(2**30), "EXHAUSTIVE")
    assert "gpu_mem_limit" not in R.CudaOptions().provider_options(total_memory=None)  # unknown device: no limit
    with pytest.raises(ModelError, match="cuDNN search"):
        R.CudaOptions(conv_search="FASTEST")


def test_device_id_follows_local_rank(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert R.CudaOptions().resolved_device_id() == 3  # each torchrun rank on its own GPU
    assert R.CudaOptions(device_id=1).resolved_device_id() == 1
    monkeypatch.delenv("LOCAL_RANK")
    assert R.CudaOptions().resolved_device_id() == 0


def test_cuda_session_preloads_libraries_and_passes_options(monkeypatch, tiny_model):
    monkeypatch.setenv("LOCAL_RANK", "1")
    rt = FakeGpuRuntime(monkeypatch, loads=True)
    m = R.OnnxModel(tiny_model, provider="cuda")
    assert m.provider == "cuda" and rt.preloads == 1 and rt.torch_imports == 0  # before: no preload, CPU fallback
    opts = rt.cuda_options()
    assert opts["device_id"] == "1" and opts["use_tf32"] == "0" and opts["arena_extend_strategy"] == "kSameAsRequested"
    d = m.describe()
    assert d["numerics"] == {"provider": "cuda", "tf32": False} and d["cuda"]["device_id"] == 1
    assert "preload_dlls" in d["cuda"]["libraries"]
    R.OnnxModel(tiny_model, provider="cuda", cuda=R.CudaOptions(tf32=True))
    assert rt.preloads == 1  # once per process
    assert rt.cuda_options(1)["use_tf32"] == "1"


def test_torch_imported_first_needs_no_preload(monkeypatch, tiny_model):
    rt = FakeGpuRuntime(monkeypatch, loads=True, torch_imported=True)
    m = R.OnnxModel(tiny_model)
    assert m.provider == "cuda" and rt.preloads == 0 and "torch" in m.cuda_libraries


def test_a_provider_that_does_not_load_is_never_silent(monkeypatch, tiny_model):
    rt = FakeGpuRuntime(monkeypatch, loads=False)
    with pytest.raises(ModelError, match="CUDA was requested but onnxruntime fell back.*driver"):
        R.OnnxModel(tiny_model, provider="cuda")
    assert rt.torch_imports == 1 and len(rt.calls) == 2  # retried once with torch's libraries
    with pytest.warns(RuntimeWarning, match="could not load it.*embedding on the CPU"):
        m = R.OnnxModel(tiny_model, provider="auto")
    assert m.provider == "cpu" and m.numerics() == {"provider": "cpu"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert R.OnnxModel(tiny_model, provider="cpu").provider == "cpu"  # asked for: no warning


def test_bound_buffers_are_made_once_per_shape(tiny_model):
    m = R.OnnxModel(tiny_model, provider="cpu")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 16, 16)).astype(np.float32)
    m.run(x)  # learns the output width
    first = m._run_bound(x, "cpu")
    bound = m._bound
    buffers = (bound.x, bound.y, bound.binding)
    y = rng.normal(size=(4, 3, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(m._run_bound(y, "cpu"), m._run_plain(y))
    assert (bound.x, bound.y, bound.binding) == buffers  # same shape: reused
    np.testing.assert_array_equal(first, m._run_plain(x))
    np.testing.assert_array_equal(m._run_bound(x[:2], "cpu"), m._run_plain(x[:2]))
    assert bound.x is not buffers[0]  # a new shape: new buffers


def test_cuda_batches_are_padded_to_one_shape(monkeypatch, tiny_model):
    m = R.OnnxModel(tiny_model, provider="cpu")
    x = np.random.default_rng(1).normal(size=(11, 3, 16, 16)).astype(np.float32)
    want = m.run(x)
    shapes = []

    def bound(batch, device):
        shapes.append(batch.shape[0])
        return m._run_plain(batch)

    monkeypatch.setattr(m, "_run_bound", bound)
    m.provider = "cuda"  # the CUDA code path, the CPU session
    m.pad_batches(4)
    got = np.concatenate([m.run(x[:7]), m.run(x[7:])])
    assert set(shapes) == {4}
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_cache_key_names_provider_and_tf32():
    pre = {"input_size": [112, 112]}
    cpu = C.preprocessing_key(pre, tta=None, landmark_backend=None, numerics={"provider": "cpu"})
    assert cpu == C.preprocessing_key(pre, tta=None, landmark_backend=None)  # CPU caches made before stay valid
    gpu = C.preprocessing_key(pre, tta=None, landmark_backend=None, numerics={"provider": "cuda", "tf32": False})
    tf32 = C.preprocessing_key(pre, tta=None, landmark_backend=None, numerics={"provider": "cuda", "tf32": True})
    assert len({cpu, gpu, tf32}) == 3


def test_gpu_and_cpu_embeddings_never_share_a_cache(monkeypatch, tmp_path, tiny_model):
    from tests.support.fake_data import make_dataset

    data = make_dataset(tmp_path / "data")
    t = data.table.head(4)
    refs = [ImageRef(i, str(data.abspath(p))) for i, p in zip(t["image_id"], t["path"])]
    m = R.OnnxModel(tiny_model, provider="cpu")
    assert embed_images(m, refs, cache_dir=tmp_path / "cache").computed == 4
    assert embed_images(m, refs, cache_dir=tmp_path / "cache").cached == 4
    monkeypatch.setattr(m, "numerics", lambda: {"provider": "cuda", "tf32": True})
    again = embed_images(m, refs, cache_dir=tmp_path / "cache")
    assert again.cached == 0 and again.computed == 4  # before: the CPU entries were reused


def test_doctor_reports_the_providers_a_cuda_session_really_got(monkeypatch):
    FakeGpuRuntime(monkeypatch, loads=False)
    checks = {c.name: c for c in doctor.onnxruntime_checks()}
    assert "CUDAExecutionProvider" in checks["onnxruntime providers"].detail  # listed...
    assert checks["onnxruntime CUDA session"].ok is False  # ...but not loadable
    assert "driver >= 580" in checks["onnxruntime CUDA session"].detail
    assert checks["onnxruntime will use"].detail == CPU  # before: "will use CUDAExecutionProvider"
    FakeGpuRuntime(monkeypatch, loads=True)
    checks = {c.name: c for c in doctor.onnxruntime_checks()}
    assert checks["onnxruntime CUDA session"].ok is True and checks["onnxruntime will use"].detail == CUDA


def test_doctor_names_a_cuda_torch_without_a_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    build = {c.name: c for c in doctor.torch_checks()}["torch build"]
    assert "CUDA 13.0 build" in build.detail and "no GPU" in build.detail
    assert "--index-url https://download.pytorch.org/whl/cpu" in build.detail
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "CPU build" in {c.name: c for c in doctor.torch_checks()}["torch build"].detail


def test_doctor_opens_a_real_session_on_a_cpu_runtime(monkeypatch):
    checks = {c.name: c for c in doctor.onnxruntime_checks()}
    assert checks["onnxruntime session"].ok is True and checks["onnxruntime session"].detail == f"runs on {CPU}"
    assert checks["onnxruntime will use"].detail == CPU

    def broken(*a, **k):
        raise RuntimeError("libonnxruntime_providers_shared.so: cannot open shared object file")

    monkeypatch.setattr(ort, "InferenceSession", broken)
    checks = {c.name: c for c in doctor.onnxruntime_checks()}  # before: "will use CPUExecutionProvider" from the list
    assert checks["onnxruntime session"].ok is False and "cannot open shared object" in checks["onnxruntime session"].detail
    assert checks["onnxruntime will use"].detail.startswith("nothing")


def test_bench_tf32_reaches_the_session_metrics_and_cache(monkeypatch, tmp_path, tiny_model):
    import json

    from tests.support.bench import all_pairs, write_protocol
    from tests.support.fake_data import make_dataset

    from mfrkit.bench.benchmark import BenchConfig, run_benchmark

    rt = FakeGpuRuntime(monkeypatch, loads=True)
    monkeypatch.setattr(R.OnnxModel, "_run_bound", lambda self, x, device: self._run_plain(x))  # the CPU session
    data = make_dataset(tmp_path / "data")
    proto = write_protocol(tmp_path / "umr-ump", [data], name="umr-ump", pairs=all_pairs(data))
    for tf32 in (False, True):
        cfg = BenchConfig(models=[str(tiny_model)], protocols=[str(proto)], out=tmp_path / f"runs-{tf32}", n_boot=10,
                          cache_dir=tmp_path / "cache", plots=False, executor=ExecutorSpec(workers=0), tf32=tf32)
        run = run_benchmark(cfg)
        assert rt.cuda_options(-1)["use_tf32"] == ("1" if tf32 else "0")
        model = json.loads((run.folder / "tiny" / "umr-ump" / "metrics.json").read_text())["model"]
        assert model["numerics"] == {"provider": "cuda", "tf32": tf32} and model["cuda"]["tf32"] is tf32
    (model_dir,) = (tmp_path / "cache").iterdir()
    assert len([p for p in model_dir.iterdir() if p.is_dir()]) == 2  # TF32 did not reuse the float32 embeddings
