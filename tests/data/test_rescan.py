"""A dataset changed after its scan is never used stale: every resolve compares each
file's size and times with the scan, hashes where only the times differ, and reads again
only what changed."""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np
import pytest

from mfrkit.data import scan as scan_module
from mfrkit.data.imageio import write_image
from mfrkit.data.registry import add_dataset, resolve_source, scan_registered
from mfrkit.data.scan import scan_dataset, update_scan


def _bmp(path, value):
    """A BMP: same dimensions give the same file size whatever the pixels."""
    write_image(path, np.full((12, 12, 3), value, np.uint8))
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "faces"
    for ident in ("ann", "bob"):
        for k in range(2):
            _bmp(root / ident / f"{k}.bmp", 40 + 10 * k)
    return root


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _replace_same_size_keep_mtime(path, value):
    time.sleep(0.05)  # past the file system's timestamp tick, so the new ctime differs
    st = os.stat(path)
    size = st.st_size
    _bmp(path, value)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `cp -p` or `rsync -t` would
    assert os.path.getsize(path) == size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def test_registered_dataset_sees_a_same_size_replacement(folder):
    add_dataset("faces", folder, layout="imagefolder")
    first, _ = scan_registered("faces")
    photo = folder / "ann" / "0.bmp"
    old_sha = first.table.set_index("path").at["ann/0.bmp", "sha256"]
    time.sleep(0.05)
    _bmp(photo, 200)  # same size, new pixels, new mtime
    assert os.path.getsize(photo) == first.table.set_index("path").at["ann/0.bmp", "bytes"]
    again = resolve_source("faces")
    assert again.table.set_index("path").at["ann/0.bmp", "sha256"] == _sha(photo) != old_sha
    assert again.fingerprint() != first.fingerprint()  # protocols made from the old scan become stale
    # and it was written back: the next resolve reads nothing
    assert resolve_source("faces").fingerprint() == again.fingerprint()


def test_registered_dataset_sees_new_and_removed_images(folder):
    add_dataset("faces", folder, layout="imagefolder")
    scan_registered("faces")
    _bmp(folder / "cat" / "0.bmp", 90)
    (folder / "bob" / "1.bmp").unlink()
    paths = set(resolve_source("faces").table["path"])
    assert paths == {"ann/0.bmp", "ann/1.bmp", "bob/0.bmp", "cat/0.bmp"}


def test_mtime_set_back_is_still_caught(folder):
    manifest, _ = scan_dataset(folder, layout="imagefolder")
    _replace_same_size_keep_mtime(folder / "bob" / "0.bmp", 7)
    updated, changes = update_scan(manifest)
    assert changes.modified == ["bob/0.bmp"] and changes.changed
    assert updated.table.set_index("path").at["bob/0.bmp", "sha256"] == _sha(folder / "bob" / "0.bmp")


def test_only_changed_files_are_read_again(folder, monkeypatch):
    manifest, _ = scan_dataset(folder, layout="imagefolder")
    probed, hashed = [], []
    real_probe, real_hash = scan_module.probe_image, scan_module._hash_many
    monkeypatch.setattr(scan_module, "probe_image", lambda p, *a, **k: probed.append(p) or real_probe(p, *a, **k))
    monkeypatch.setattr(scan_module, "_hash_many", lambda ps: hashed.extend(ps) or real_hash(ps))
    same, changes = update_scan(manifest)
    assert same is manifest and not changes.changed and probed == [] and hashed == []
    time.sleep(0.05)
    os.utime(folder / "ann" / "1.bmp")  # touched: new mtime, same bytes
    _bmp(folder / "bob" / "1.bmp", 255)  # new bytes
    updated, changes = update_scan(manifest)
    assert changes.restamped == 1 and changes.modified == ["bob/1.bmp"]
    assert sorted(os.path.basename(os.path.dirname(p)) + "/" + os.path.basename(p) for p in probed) == ["bob/1.bmp"]
    assert len(hashed) >= 1 and all("bob/0.bmp" not in p for p in hashed)
    assert updated.table.set_index("path").at["ann/1.bmp", "sha256"] == manifest.table.set_index("path").at[
        "ann/1.bmp", "sha256"]


def test_unregistered_folder_cache_sees_a_same_size_replacement(folder):
    first = resolve_source(str(folder))
    _replace_same_size_keep_mtime(folder / "ann" / "1.bmp", 99)
    again = resolve_source(str(folder))
    assert again.table.set_index("path").at["ann/1.bmp", "sha256"] == _sha(folder / "ann" / "1.bmp")
    assert again.fingerprint() != first.fingerprint()


def test_a_protocol_over_replaced_photos_stops_with_a_message(tmp_path):
    """The bench reads a protocol's manifests by path: a photo replaced (same size) after the
    scan would be scored under its old hash (and a cached embedding of the old photo)."""
    from mfrkit.protocols import StaleManifestError, load_protocol, make_verification, save_protocol, validate_protocol

    root = tmp_path / "faces"
    for ident in ("ann", "bob", "cid", "dan"):
        for k in range(3):
            _bmp(root / ident / f"{k}.bmp", 30 * k + ord(ident[0]) % 7)
    add_dataset("faces", root, layout="imagefolder")
    manifest, _ = scan_registered("faces")
    folder = save_protocol(make_verification(manifest, n_folds=1, genuine_per_fold=2, impostor_per_fold=2, seed=0),
                           tmp_path / "proto")
    load_protocol(folder)  # unchanged: fine
    (root / "dan" / "2.bmp").unlink()  # a missing photo is a failure to acquire, not a stale manifest
    load_protocol(folder)
    _replace_same_size_keep_mtime(root / "ann" / "0.bmp", 250)
    with pytest.raises(StaleManifestError, match="changed on disk since they were scanned.*ann/0.bmp"):
        load_protocol(folder)
    report = validate_protocol(folder)
    assert not report.ok and any("changed on disk" in p.message for p in report.problems)
