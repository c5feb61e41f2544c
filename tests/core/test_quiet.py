"""Native log lines (mediapipe, TFLite, absl) are hidden by default and shown with --verbose."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from mfrkit.quiet import VERBOSE_ENV, filter_noise, native_logs

ABSL_WARNING = (
    b"W0000 00:00:1795990153.369927    9903 inference_feedback_manager.cc:114] Feedback manager requires a model "
    b"with a single signature inference. Disabling support for feedback tensors.\n"
)
NOISE = [
    ABSL_WARNING,
    b"I0000 00:00:1795990143.169596    9811 gl_context.cc:369] GL version: 3.2\n",
    b"W0000 00:00:1795990143.169596    9811 landmark_projection_calculator.cc:186] Using NORM_RECT without IMAGE_DIMENSIONS\n",
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
]
KEPT = [
    b"E0000 00:00:1795990143.169596    9811 calculator_graph.cc:887] a real error\n",
    b"progress 3/12\n",
    b"Traceback (most recent call last):\n",
]


def test_filter_noise_drops_info_and_warning_lines_only():
    assert filter_noise(b"".join(NOISE)) == b""
    assert filter_noise(b"".join(KEPT)) == b"".join(KEPT)
    assert filter_noise(NOISE[0] + KEPT[0] + NOISE[1] + KEPT[1]) == KEPT[0] + KEPT[1]


def test_native_logs_hide_noise_written_to_the_descriptor(capfd, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    with native_logs():
        for line in NOISE + KEPT:
            os.write(2, line)  # as C++ code writes: to the descriptor, past sys.stderr
        print("python line", file=sys.stderr)
    err = capfd.readouterr().err
    assert "inference_feedback_manager" not in err and "XNNPACK" not in err and "absl::InitializeLog" not in err
    for line in KEPT:
        assert line.decode() in err
    assert "python line" in err
    os.write(2, ABSL_WARNING)  # outside the block nothing is filtered
    assert "inference_feedback_manager" in capfd.readouterr().err


def test_native_logs_show_everything_when_verbose(capfd, monkeypatch):
    monkeypatch.setenv(VERBOSE_ENV, "1")
    with native_logs():
        os.write(2, ABSL_WARNING)
    assert "inference_feedback_manager" in capfd.readouterr().err


def test_native_logs_restore_stderr_when_the_call_fails(capfd, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    with pytest.raises(RuntimeError):
        with native_logs():
            os.write(2, b"kept before the failure\n")
            raise RuntimeError("boom")
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "kept before the failure" in err and "after" in err


def _landmarks(tmp_path, sample_manifest, name, *flags):
    folder = tmp_path / name
    shutil.copytree(sample_manifest.root, folder)
    for cached in folder.glob("landmarks.*"):  # other tests may have cached them: detect again
        shutil.rmtree(cached) if cached.is_dir() else cached.unlink()
    env = {k: v for k, v in os.environ.items() if k != VERBOSE_ENV}
    cmd = [sys.executable, "-m", "mfrkit.cli", *flags, "landmarks", str(folder), "--backend", "mediapipe", "-j", "2"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_mediapipe_is_quiet_in_spawned_workers_and_verbose_on_request(tmp_path, sample_manifest):
    # -j 2: the detection runs in spawned worker processes, which follow the parent.
    quiet = _landmarks(tmp_path, sample_manifest, "quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "ok" in quiet.stdout and "(0 new" not in quiet.stdout
    for noise in ("inference_feedback_manager", "W0000", "XNNPACK", "absl::InitializeLog"):
        assert noise not in quiet.stderr, quiet.stderr
    loud = _landmarks(tmp_path, sample_manifest, "loud", "--verbose")
    assert loud.returncode == 0, loud.stderr
    # mediapipe 0.10.21 (pinned) logs these on every graph it starts
    assert "inference_feedback_manager" in loud.stderr


def test_a_first_non_square_image_after_square_ones_logs_nothing(capfd, monkeypatch, photos):
    """mediapipe's projection calculator warns once, on the first non-square image a graph
    sees (which is not always its first run)."""
    from mfrkit.landmarks import create_backend
    from mfrkit.landmarks.base import detect_primary

    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    backend = create_backend("mediapipe")
    img = photos["grace_hopper"]
    detect_primary(backend, img[:300, :300].copy())
    capfd.readouterr()
    assert detect_primary(backend, img[:420, :300].copy()).status == "ok"
    assert b"NORM_RECT" not in capfd.readouterr().err.encode()
