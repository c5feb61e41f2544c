"""benchmarks/gpu_check.py: its device choice, and a CPU smoke run of every section."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_device_choice():
    g = load()
    assert g.choose_device(cpu_smoke=True, cuda_available=True) == "cpu"
    assert g.choose_device(cpu_smoke=False, cuda_available=True) == "cuda"
    with pytest.raises(SystemExit, match="no CUDA device.*--cpu-smoke"):
        g.choose_device(cpu_smoke=False, cuda_available=False)
    assert g.GPU_SIZES.all_pairs_side ** 2 >= 1e11  # the issue asks for >= 1e11 comparisons
    assert (g.GPU_SIZES.topk_probes, g.GPU_SIZES.topk_gallery) == (10_000, 1_000_000)
    assert set(g.CHECKS) == set(g.SECTIONS)


def test_a_failed_check_fails_the_run(monkeypatch, capsys):
    g = load()

    def broken(device, sizes, tmp):
        raise g.CheckFailed("asked for cuda, onnxruntime runs on cpu")

    monkeypatch.setitem(g.CHECKS, "topk", broken)
    assert g.main(["--cpu-smoke", "--sections", "topk"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_cpu_smoke_runs_every_section(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--json", str(out)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    assert {r["section"] for r in rows} >= {"onnx", "topk", "all-pairs", "train"}
    assert all(r["status"] == "ok" for r in rows)
    from mfrkit.models import family_names

    assert sum(r["section"] == "train" and "steps/s" in r["result"] for r in rows) == len(family_names())
    assert any("identical" in r["result"] for r in rows)
