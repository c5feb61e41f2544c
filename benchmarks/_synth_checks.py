"""Sections of ``benchmarks/synth.py`` beyond speed: how hard the masks make recognition
(a real recogniser on masked and unmasked captures), what start-up costs (imports), and
MaskTheFace on the same images when a checkout of it is given.

Figures, not assertions.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# --- recognition difficulty ---------------------------------------------------------------------------


def _dlib_recogniser():
    """dlib's face-recognition ResNet (the weights ship in ``face_recognition_models``),
    or None when dlib is not installed."""
    try:
        import dlib
        import face_recognition_models as frm
    except ImportError:
        return None
    return dlib.face_recognition_model_v1(frm.face_recognition_model_location())


def _descriptors(recogniser, images: list[np.ndarray], points68: list[np.ndarray]) -> np.ndarray:
    """Unit dlib descriptors (N, 128) of ``images`` cut with dlib's chip at ``points68``."""
    from mfrkit.align import dlib_chip

    chips = [np.ascontiguousarray(dlib_chip(img, pts).image) for img, pts in zip(images, points68)]
    d = np.array([np.asarray(v) for v in recogniser.compute_face_descriptor(chips)], dtype=np.float64)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _separation(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """d': distance of the genuine and impostor similarity means in pooled std units."""
    return float((genuine.mean() - impostor.mean()) / np.sqrt(0.5 * (genuine.var() + impostor.var()) + 1e-12))


def difficulty(images: list[np.ndarray], masked: list[np.ndarray], points68: list[np.ndarray], identities: list[str]) -> dict | None:
    """How much the masks hide, to a real recogniser (dlib's ResNet, chips cut at the
    unmasked face's landmarks, as inherited landmarks align a masked copy).

    Pairs are every capture against every other capture: genuine when the identities
    match. ``unmasked`` scores unmasked against unmasked, ``masked`` a masked probe
    against an unmasked reference (umr-mp). A mask that hides the lower face lowers
    the genuine similarity and the separation d'; a renderer change that made masks
    smaller, fainter or misplaced would show here as a smaller drop.

    Returns None when dlib is not installed.
    """
    recogniser = _dlib_recogniser()
    if recogniser is None:
        return None
    ref = _descriptors(recogniser, images, points68)
    probe = _descriptors(recogniser, masked, points68)
    ids = np.asarray(identities)
    same = ids[:, None] == ids[None, :]
    off = ~np.eye(len(ids), dtype=bool)
    out = {}
    for name, p in (("unmasked", ref), ("masked", probe)):
        sim = p @ ref.T
        genuine, impostor = sim[same & off], sim[~same]
        out[name] = {"genuine": float(genuine.mean()), "impostor": float(impostor.mean()), "d_prime": _separation(genuine, impostor)}
    return out


def print_difficulty(result: dict | None, n: int) -> None:
    if result is None:
        print("  recognition difficulty: skipped (dlib and face_recognition_models are not installed)")
        return
    u, m = result["unmasked"], result["masked"]
    print(f"  recognition difficulty (dlib ResNet, {n} captures, every pair; masked probe vs unmasked reference): "
          f"genuine cos {u['genuine']:.3f} -> {m['genuine']:.3f}, impostor {u['impostor']:.3f} -> {m['impostor']:.3f}, "
          f"d' {u['d_prime']:.2f} -> {m['d_prime']:.2f} (the captures are of the sample's two people, so only the drop "
          f"is meaningful, not the level; dlib's 0.6 threshold does not apply to these chips)")


# --- start-up -----------------------------------------------------------------------------------------


def startup(src: Path, workdir: Path) -> dict:
    """``mfrkit synth`` on a tiny source under ``python -X importtime``: the command's CPU
    seconds (what a run costs beyond its images), the imports' total and the packages
    that take most of it."""
    out, home = workdir / "startup-out", workdir / "startup-home"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "MFRKIT_HOME": str(home), "GLOG_minloglevel": "2"}
    cmd = [sys.executable, "-X", "importtime", "-m", "mfrkit.cli", "synth", "--src", str(src), "--out", str(out), "-j", "1"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"mfrkit synth failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    by_package: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line[len("import time:") :].split("|")
        top = name.strip().split(".")[0]
        by_package[top] = by_package.get(top, 0) + int(own)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    top = sorted(by_package.items(), key=lambda kv: -kv[1])[:8]
    return {"cpu": cpu, "imports": sum(by_package.values()) / 1e6, "top": [(k, v / 1e6) for k, v in top]}


def print_startup(r: dict, n: int) -> None:
    top = ", ".join(f"{k} {1000 * v:.0f}" for k, v in r["top"])
    print(f"start-up (mfrkit synth -j 1 on {n} images, python -X importtime): {r['cpu']:.2f} s CPU for the whole command, "
          f"imports {1000 * r['imports']:.0f} ms (self times; {top} ms)")


# --- MaskTheFace side by side ---------------------------------------------------------------------------


def masktheface(checkout: Path, src: Path, python: str | None = None) -> dict:
    """MaskTheFace (``mask_the_face.py`` of a checkout, its dlib model in place) on the
    images of ``src`` in a fresh process: wall and CPU seconds. It writes beside the
    source (``<src>_masked``), which is removed first and after."""
    script = checkout / "mask_the_face.py"
    if not script.is_file():
        raise SystemExit(f"--masktheface {checkout}: no mask_the_face.py there (a checkout of github.com/aqeelanwar/MaskTheFace)")
    tmp = Path(tempfile.mkdtemp(prefix="mtf-"))
    copy = tmp / src.name
    shutil.copytree(src, copy)
    cmd = [python or sys.executable, str(script), "--path", str(copy), "--mask_type", "surgical"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(tmp, ignore_errors=True)
    if proc.returncode:
        raise SystemExit(f"MaskTheFace failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return {"wall": wall, "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}
