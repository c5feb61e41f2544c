"""The insightface-rec layout: scanning RecordIO folders, bad input, staying current."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from mfrkit.data.imageio import encode_image, read_image, read_image_bytes
from mfrkit.data.layouts import detect_layout
from mfrkit.data.registry import add_dataset, resolve_source
from mfrkit.data.scan import scan_dataset, update_scan
from mfrkit.errors import BadRecordError, RecordIOError

from tests.support import recordio_reference as ref


def face_images(n=24, classes=4, size=(112, 112), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = np.full((*size, 3), 40 * (i % 5), np.uint8)
        img[20:60, 20:60] = rng.integers(0, 255, 3)
        out.append((i * classes // n, encode_image(img)))
    return out


@pytest.fixture
def rec_folder(tmp_path):
    folder = tmp_path / "faces_webface_112x112"
    ref.write_dataset(folder, face_images(), label_vector=True)
    return folder


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_scan_reads_records_in_place(rec_folder):
    assert detect_layout(rec_folder) == "insightface-rec"
    before = _snapshot(rec_folder)
    manifest, report = scan_dataset(rec_folder)
    images = face_images()
    assert report.layout == "insightface-rec" and report.n_images == len(images) and not report.failures
    t = manifest.table
    assert list(t["path"]) == [f"train.rec#{k}" for k in range(1, len(images) + 1)]
    assert list(t["identity"]) == [str(label) for label, _ in images]
    assert list(t["label"]) == [label for label, _ in images]
    assert list(t["sha256"]) == [hashlib.sha256(img).hexdigest() for _, img in images]
    assert set(t["width"]) == {112} and set(t["status"]) == {"ok"}
    assert manifest.meta["recordio"]["num_classes"] == 4 and manifest.meta["aligned"] == "arcface112"
    assert read_image_bytes(manifest.abspath(t["path"][3])) == images[3][1]
    assert read_image(manifest.abspath(t["path"][3])).shape == (112, 112, 3)
    assert _snapshot(rec_folder) == before  # nothing written into the user's folder
    assert [p.name for p in rec_folder.iterdir()] and not list(rec_folder.glob("*.jpg"))


def test_verify_decodes_and_finds_corrupt_images(tmp_path):
    images = face_images(8)
    images[2] = (images[2][0], images[2][1][: len(images[2][1]) // 2])  # a truncated JPEG inside a good record
    ref.write_dataset(tmp_path, images)
    quick, _ = scan_dataset(tmp_path)
    full, report = scan_dataset(tmp_path, verify=True)
    assert quick.table["status"][2] == "ok"  # the header alone looks fine
    assert full.table["status"][2] == "corrupt" and report.failures == {"corrupt": 1}


def test_truncated_rec_loses_only_the_cut_records(rec_folder):
    rec = rec_folder / "train.rec"
    idx = dict(line.split("\t") for line in (rec_folder / "train.idx").read_text().splitlines())
    cut = int(idx["20"]) + 30  # inside image 20: images 20.. and the trailing records are gone
    rec.write_bytes(rec.read_bytes()[:cut])
    with pytest.raises(RecordIOError, match="record 0 .*cannot be read"):
        scan_dataset(rec_folder)  # record 0 was written after the images: it is gone too
    # keep record 0 readable: write the file again with the images truncated only
    images = face_images()
    ref.write_dataset(rec_folder, images)
    offsets = dict(line.split("\t") for line in (rec_folder / "train.idx").read_text().splitlines())
    data = bytearray(rec.read_bytes())
    start = int(offsets["20"])
    data[start + 8 + 24 : start + 8 + 40] = b"\0" * 16  # damage the JPEG header of image 20
    struct.pack_into("<I", data, int(offsets["21"]), 0xDEADBEEF)  # wrong magic at image 21
    rec.write_bytes(bytes(data))
    manifest, report = scan_dataset(rec_folder)
    status = dict(zip(manifest.table["path"], manifest.table["status"]))
    assert status["train.rec#21"] == "bad_record" and status["train.rec#20"] == "corrupt"
    assert sum(s == "ok" for s in status.values()) == len(images) - 2
    assert any("wrong magic" in w for w in report.warnings)
    with pytest.raises(BadRecordError, match="wrong magic number 0xdeadbeef") as exc:
        read_image(manifest.abspath("train.rec#21"))
    assert "\n" not in str(exc.value)


def test_index_that_does_not_match(rec_folder):
    lines = (rec_folder / "train.idx").read_text().splitlines()
    # drop image 5's line, and point image 6 past the end of the file
    kept = [ln for ln in lines if not ln.startswith("5\t")]
    kept = [f"6\t{10 ** 9}" if ln.startswith("6\t") else ln for ln in kept]
    (rec_folder / "train.idx").write_text("\n".join(kept) + "\n")
    manifest, report = scan_dataset(rec_folder)
    status = dict(zip(manifest.table["path"], manifest.table["status"]))
    assert status["train.rec#5"] == "missing" and status["train.rec#6"] == "bad_record"
    assert len(manifest) == 24 and any("past the end" in w for w in report.warnings)


def test_labels_that_are_not_identities(tmp_path):
    images = face_images(6, classes=2)
    ref.write_dataset(tmp_path, images, num_classes=2)
    data = bytearray((tmp_path / "train.rec").read_bytes())
    offsets = dict(line.split("\t") for line in (tmp_path / "train.idx").read_text().splitlines())
    struct.pack_into("<f", data, int(offsets["2"]) + 12, 0.5)  # the label field of image 2's header
    struct.pack_into("<f", data, int(offsets["3"]) + 12, 7.0)  # >= num_classes
    (tmp_path / "train.rec").write_bytes(bytes(data))
    manifest, report = scan_dataset(tmp_path)
    t = manifest.table.set_index("path")
    assert t.loc["train.rec#2", "status"] == "no_identity" and t.loc["train.rec#3", "status"] == "no_identity"
    assert report.failures == {"no_identity": 2} and any("not an identity" in w for w in report.warnings)


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "property").unlink(), "no property file"),
    (lambda f: (f / "train.idx").write_text("1\t0\nnot a line\n"), "line 2"),
    (lambda f: (f / "property").write_text("many,112,112"), "num_classes,height,width"),
])
def test_whole_file_problems_are_one_line_errors(rec_folder, damage, message):
    damage(rec_folder)
    before = _snapshot(rec_folder)
    with pytest.raises(RecordIOError, match=message) as exc:
        scan_dataset(rec_folder)
    assert "\n" not in str(exc.value)
    assert _snapshot(rec_folder) == before


def test_plain_im2rec_layout_without_record_0(tmp_path):
    with open(tmp_path / "train.rec", "wb") as f:
        lines = []
        for key, (label, img) in enumerate(face_images(4), start=0):
            lines.append(f"{key}\t{f.tell()}\n")
            ref.write_record(f, struct.pack("<IfQQ", 0, float(label), key, 0) + img)
    (tmp_path / "train.idx").write_text("".join(lines))
    (tmp_path / "property").write_text("4,112,112")
    manifest, report = scan_dataset(tmp_path)
    assert list(manifest.table["path"]) == [f"train.rec#{k}" for k in range(4)]
    assert not any("no record 0" in w for w in report.warnings)  # record 0 exists: it is an image (flag 0)


def test_registered_scan_stays_current(rec_folder):
    add_dataset("webface", rec_folder)
    first = resolve_source("webface")
    again, changes = update_scan(first)
    assert again is first and not changes.changed
    images = face_images()
    images[3] = (images[3][0], encode_image(np.zeros((112, 112, 3), np.uint8)))
    ref.write_dataset(rec_folder, images)
    updated = resolve_source("webface")
    assert updated.table["sha256"][3] == hashlib.sha256(images[3][1]).hexdigest()
    _, changes = update_scan(first)
    assert changes.modified == ["train.rec#4"] and not changes.added


def test_record_0_variants_other_writers_use(tmp_path):
    """Record 0 first in the file, no identity records, an end key below the first:
    the images are read as MXFaceDataset reads them (keys 1 .. label[0] - 1)."""
    images = face_images(6, classes=2)
    lines = []
    with open(tmp_path / "train.rec", "wb") as f:
        lines.append(f"0\t{f.tell()}\n")
        ref.write_record(f, struct.pack("<IfQQ", 2, 0.0, 0, 0) + struct.pack("<2f", 7, 2))  # [N + 1, num_ids]
        for key, (label, img) in enumerate(images, 1):
            lines.append(f"{key}\t{f.tell()}\n")
            ref.write_record(f, struct.pack("<IfQQ", 0, float(label), key, 0) + img)
    (tmp_path / "train.idx").write_text("".join(lines))
    (tmp_path / "property").write_text("2,112,112")
    manifest, report = scan_dataset(tmp_path)
    assert list(manifest.table["path"]) == [f"train.rec#{k}" for k in range(1, 7)] and set(manifest.table["status"]) == {"ok"}
    assert any("below its first identity key" in w for w in report.warnings)
    with pytest.raises(RecordIOError, match="first >= 1"):
        (tmp_path / "train.idx").write_text("".join(lines))
        data = bytearray((tmp_path / "train.rec").read_bytes())
        struct.pack_into("<2f", data, 32, 0, 2)
        (tmp_path / "train.rec").write_bytes(bytes(data))
        scan_dataset(tmp_path)
