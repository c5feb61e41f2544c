"""A RecordIO scan made a row group at a time (mfrkit.data.recordio_manifest): the rows
in key order whatever the file's order, keys the index lacks at their place, the file
written by row group equal to the scan in memory, and rescans compared by merging."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

import mfrkit.data.recordio_manifest as rm
from mfrkit.data.imageio import encode_image
from mfrkit.data.manifest import read_manifest, write_manifest
from mfrkit.data.registry import add_dataset, open_source, scan_registered
from mfrkit.data.scan import modified_images, scan_dataset, scan_to_file, update_scan
from mfrkit.jobs import ExecutorSpec

from tests.support import recordio_reference as ref


def images(n=40, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = np.full((112, 112, 3), 30 * (i % 7), np.uint8)
        img[30:70, 30:70] = rng.integers(0, 255, 3)
        out.append((i * classes // n, encode_image(img)))
    return out


def shuffle_records(folder, seed=1):
    """Rewrite ``train.rec`` with its records in a random order (the index follows)."""
    rec = folder / "train.rec"
    data = rec.read_bytes()
    idx = [tuple(map(int, line.split("\t"))) for line in (folder / "train.idx").read_text().splitlines()]
    starts = sorted(off for _, off in idx) + [len(data)]
    span = {off: data[off : starts[starts.index(off) + 1]] for off in starts[:-1]}
    order = np.random.default_rng(seed).permutation(len(idx))
    lines, out = [], bytearray()
    for i in order:
        key, off = idx[i]
        lines.append(f"{key}\t{len(out)}\n")
        out += span[off]
    rec.write_bytes(bytes(out))
    (folder / "train.idx").write_text("".join(lines))


@pytest.fixture
def small_spans(monkeypatch):
    monkeypatch.setattr(rm, "SPAN_RECORDS", 6)  # many spans: results come back out of order with -j 2


@pytest.mark.parametrize("workers", [1, 2])
def test_records_out_of_key_order_give_the_rows_in_key_order(tmp_path, small_spans, workers):
    imgs = images()
    ref.write_dataset(tmp_path / "ordered", imgs)
    ref.write_dataset(tmp_path / "shuffled", imgs)
    shuffle_records(tmp_path / "shuffled")
    ordered, _ = scan_dataset(tmp_path / "ordered")
    shuffled, report = scan_dataset(tmp_path / "shuffled", executor=ExecutorSpec(workers=workers))
    assert list(shuffled.table["path"]) == [f"train.rec#{k}" for k in range(1, len(imgs) + 1)]
    assert list(shuffled.table["sha256"]) == [hashlib.sha256(img).hexdigest() for _, img in imgs]
    pd.testing.assert_frame_equal(shuffled.table, ordered.table)
    assert report.n_images == report.ok == len(imgs) and report.identities == 5
    # streamed into its file, row group by row group: the same rows and fingerprint
    report2 = scan_to_file(tmp_path / "shuffled", tmp_path / "m.parquet", executor=ExecutorSpec(workers=workers))
    back = read_manifest(tmp_path / "m.parquet")
    pd.testing.assert_frame_equal(back.table, read_manifest(write_manifest(shuffled, tmp_path / "whole.parquet")).table)
    assert back.meta["recordio"] == shuffled.meta["recordio"] and back.fingerprint() == shuffled.fingerprint()
    assert report2 == report


def test_keys_the_index_lacks_are_rows_at_their_place(tmp_path, small_spans):
    ref.write_dataset(tmp_path, images())
    lines = (tmp_path / "train.idx").read_text().splitlines()
    (tmp_path / "train.idx").write_text("\n".join(ln for ln in lines if ln.split("\t")[0] not in ("1", "7", "40")) + "\n")
    for layout in ("ordered", "shuffled"):
        if layout == "shuffled":
            shuffle_records(tmp_path)
        manifest, report = scan_dataset(tmp_path)
        t = manifest.table
        assert list(t["path"]) == [f"train.rec#{k}" for k in range(1, 41)]
        assert list(t.loc[t["status"] == "missing", "path"]) == ["train.rec#1", "train.rec#7", "train.rec#40"]
        assert report.failures == {"missing": 3} and any("3 record(s) missing: e.g. train.rec record 1" in w for w in report.warnings)


def test_a_streamed_rescan_finds_what_the_scan_in_memory_finds(tmp_path, small_spans):
    imgs = images()
    folder = tmp_path / "faces"
    ref.write_dataset(folder, imgs)
    add_dataset("webface", folder)
    scanned, _ = scan_registered("webface")
    first = read_manifest(scanned.path)
    assert modified_images(scanned) == []
    changed = list(imgs)
    changed[9] = (imgs[9][0], encode_image(np.zeros((112, 112, 3), np.uint8)))
    changed[30] = (4, imgs[30][1])  # relabelled
    ref.write_dataset(folder, changed + [imgs[0]])  # and one record more
    memory, changes = update_scan(first)
    assert changes.modified == ["train.rec#10"] and changes.added == ["train.rec#41"] and changes.relabelled == 1
    assert modified_images(first) == ["train.rec#10"]
    streamed = open_source("webface")  # brings the registered scan up to date, streamed into its file
    pd.testing.assert_frame_equal(streamed.load().table, read_manifest(write_manifest(memory, tmp_path / "memory.parquet")).table)
    again, none = update_scan(read_manifest(streamed.path))
    assert not none.changed
