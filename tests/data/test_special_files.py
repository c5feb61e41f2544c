"""Only regular files are images: a FIFO named x.jpg, a link to /dev/zero, an unreadable
file and an oversized file are reported with their own status, never hang a scan or
fill memory."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager

import numpy as np
import pytest

from mfrkit.data.imageio import read_file_bytes, read_image, write_image
from mfrkit.data.scan import probe_image, scan_dataset
from mfrkit.errors import ImageTooLargeError, MissingImageError, NotAFileError, UnreadableImageError

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (the old code blocked forever opening a FIFO)."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def hostile_folder(tmp_path):
    root = tmp_path / "ds"
    for ident in ("a", "b"):
        write_image(root / ident / "1.jpg", np.full((16, 16, 3), 120, np.uint8))
    os.mkfifo(root / "a" / "x.jpg")
    os.symlink("/dev/zero", root / "b" / "zero.jpg")
    return root


def test_read_file_bytes_refuses_fifo_and_devices_without_blocking(hostile_folder):
    with deadline(10):
        with pytest.raises(NotAFileError, match="FIFO"):
            read_file_bytes(hostile_folder / "a" / "x.jpg")
        with pytest.raises(NotAFileError, match="device"):
            read_image(hostile_folder / "b" / "zero.jpg")
        assert probe_image(str(hostile_folder / "a" / "x.jpg"))["status"] == "not_a_file"
        assert probe_image(str(hostile_folder / "b" / "zero.jpg"))["status"] == "not_a_file"


def test_scan_skips_special_files_and_says_so(hostile_folder):
    with deadline(20):
        manifest, report = scan_dataset(hostile_folder, layout="imagefolder")
    assert sorted(manifest.table["path"]) == ["a/1.jpg", "b/1.jpg"]
    assert (manifest.table["status"] == "ok").all()
    assert any("not regular files" in w for w in report.warnings)


def test_size_cap(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"\0" * 5000)
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        read_file_bytes(path, max_bytes=1000)
    assert len(read_file_bytes(path, max_bytes=10_000)) == 5003


def test_permission_denied_is_unreadable_not_missing(tmp_path, monkeypatch):
    path = tmp_path / "locked.jpg"
    write_image(path, np.zeros((8, 8, 3), np.uint8))
    real_open = os.open

    def denied(p, *a, **k):  # chmod 0 does not stop root, who runs the CI: deny by hand
        if os.fspath(p) == str(path):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, *a, **k)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(UnreadableImageError, match="unreadable: permission denied"):
        read_image(path)
    assert probe_image(str(path))["status"] == "unreadable"
    with pytest.raises(MissingImageError):
        read_image(tmp_path / "nope.jpg")


def test_an_unreadable_folder_is_reported_not_silently_skipped(tmp_path, monkeypatch):
    from mfrkit.data import layouts

    root = tmp_path / "ds"
    for ident in ("a", "b"):
        write_image(root / ident / "1.jpg", np.full((8, 8, 3), 60, np.uint8))
    real_scandir = os.scandir

    def scandir(path, *a, **k):  # root ignores chmod: refuse to list folder b by hand
        if os.path.basename(path) == "b":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path, *a, **k)

    monkeypatch.setattr(layouts.os, "scandir", scandir)
    manifest, report = scan_dataset(root, layout="imagefolder")
    assert list(manifest.table["path"]) == ["a/1.jpg"]
    assert any("could not be read" in w and "b: permission denied" in w for w in report.warnings)
