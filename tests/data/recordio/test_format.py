"""mfrkit.data.recordio against the format as written down (tests/recordio/reference.py)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from mfrkit.data import recordio as rio
from mfrkit.errors import BadRecordError, MissingImageError, RecordIOError

from tests.support import recordio_reference as ref

MAGIC_LE = struct.pack("<I", rio.MAGIC)


def _payloads():
    return [b"", b"a", b"abcd", b"xyz" * 7, MAGIC_LE, b"1234" + MAGIC_LE + b"56", MAGIC_LE * 3 + b"tail!",
            b"ab" + MAGIC_LE + b"cd",  # unaligned magic: no split
            bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8))]


@pytest.mark.parametrize("payload", _payloads())
def test_frame_is_what_dmlc_writes_and_reads_back(payload):
    buf = io.BytesIO()
    ref.write_record(buf, payload)
    assert rio.frame(payload) == buf.getvalue()  # byte-identical to the reference writer
    assert ref.read_record(rio.frame(payload), 0) == payload
    assert list(rio.iter_payloads(rio.frame(payload) * 2))[1][1] == payload


def test_aligned_magic_splits_into_parts_with_flags():
    data = rio.frame(b"1234" + MAGIC_LE + b"5678")
    first = struct.unpack_from("<II", data, 0)
    assert first == (rio.MAGIC, (1 << 29) | 4)
    second = struct.unpack_from("<II", data, 12)
    assert second == (rio.MAGIC, (3 << 29) | 4)
    assert len(data) == 24


def test_pack_unpack_matches_mxnet_layout():
    one = rio.pack(7, b"IMG", id=3)
    assert one[:24] == struct.pack("<IfQQ", 0, 7.0, 3, 0)
    header, img = rio.unpack(one)
    assert (header.flag, header.label, header.id, img) == (0, 7.0, 3, b"IMG")
    many = rio.pack([5.0, 1.0], b"IMG", id=9)
    assert many[:32] == struct.pack("<IfQQ", 2, 0.0, 9, 0) + struct.pack("<2f", 5, 1)
    header, img = rio.unpack(many)
    assert header.label == (5.0, 1.0) and header.class_label == 5.0 and img == b"IMG"
    with pytest.raises(BadRecordError, match="too short"):
        rio.unpack(b"short")
    with pytest.raises(BadRecordError, match="announces 1000 labels"):
        rio.unpack(struct.pack("<IfQQ", 1000, 0, 0, 0))


@pytest.mark.parametrize("label, expected", [(3.0, 3), (0.0, 0), (2.5, None), (-1.0, None), (float("nan"), None), (float("inf"), None)])
def test_identity_of(label, expected):
    assert rio.identity_of(rio.IRHeader(0, label)) == expected
    assert rio.identity_of(rio.IRHeader(0, 9.0), num_classes=5) is None


def _images(n=12, classes=3):
    rng = np.random.default_rng(1)
    return [(i * classes // n, bytes(rng.integers(0, 256, 50 + i, dtype=np.uint8)) + (MAGIC_LE if i == 4 else b"")) for i in range(n)]


def test_writer_output_read_by_the_reference_reader(tmp_path):
    images = _images()
    prop = rio.write_insightface(tmp_path, images, image_size=(112, 96))
    assert prop == rio.RecordProperty(3, 112, 96)
    got = ref.read_dataset(tmp_path)
    assert [(label, img) for label, img, _ in got["images"].values()] == images
    assert got["ranges"] == [(1, 5), (5, 9), (9, 13)]
    assert got["header0"][1] == (13.0, 16.0)
    assert got["property"] == (3, 112, 96)
    # idx lines in write order: images, record 0, identity records (as face2rec2 writes them)
    assert list(got["idx"]) == list(range(1, 13)) + [0, 13, 14, 15]
    assert not list(tmp_path.glob(".*part"))


def test_writer_refuses_identities_that_are_not_contiguous(tmp_path):
    with pytest.raises(RecordIOError, match="not contiguous"):
        rio.write_insightface(tmp_path, [(0, b"a"), (1, b"b"), (0, b"c")])
    assert not (tmp_path / "train.rec").exists() and not list(tmp_path.glob(".*part"))


@pytest.mark.parametrize("label_vector", [False, True])
def test_reader_reads_the_reference_writer(tmp_path, label_vector):
    images = _images()
    ref.write_dataset(tmp_path, images, label_vector=label_vector)
    rf = rio.RecordFile(tmp_path / "train.rec")
    for key, (label, img) in enumerate(images, 1):
        header, data = rf.read(key)
        assert data == img and header.class_label == label and header.id == key
    assert rf.read(0)[0].label == (13.0, 16.0)
    with pytest.raises(MissingImageError, match="no record 99"):
        rf.read(99)


def test_reader_errors_are_one_line(tmp_path):
    ref.write_dataset(tmp_path, _images())
    rec = tmp_path / "train.rec"
    idx = (tmp_path / "train.idx").read_text().splitlines()
    data = rec.read_bytes()
    # an index that points inside a record: wrong magic
    (tmp_path / "train.idx").write_text("\n".join(idx[:1] + [f"2\t{int(idx[1].split()[1]) + 4}"] + idx[2:]) + "\n")
    rf = rio.RecordFile(rec)
    with pytest.raises(BadRecordError, match="wrong magic") as exc:
        rf.read(2)
    assert "\n" not in str(exc.value)
    # a truncated file: the last image's record runs past the end
    (tmp_path / "train.idx").write_text("\n".join(idx) + "\n")
    last = int(idx[11].split()[1])
    rec.write_bytes(data[: last + 20])
    with pytest.raises(BadRecordError, match="truncated"):
        rio.RecordFile(rec).read(12)


@pytest.mark.parametrize("text, message", [("1\t0\n2\tx\n", "line 2"), ("1\t0\n1\t8\n", "listed 2 times"), ("1 0\n", "line 1"),
                                           ("", "empty"), ("1\t0\t3\n", "line 1")])
def test_index_errors(tmp_path, text, message):
    (tmp_path / "train.idx").write_text(text)
    with pytest.raises(RecordIOError, match=message):
        rio.read_index(tmp_path / "train.idx")


def test_property(tmp_path):
    with pytest.raises(RecordIOError, match="no property file"):
        rio.read_property(tmp_path)
    (tmp_path / "property").write_text("10,112\n")
    with pytest.raises(RecordIOError, match="num_classes,height,width"):
        rio.read_property(tmp_path)
    (tmp_path / "property").write_text("10572,112,112")
    assert rio.read_property(tmp_path) == rio.RecordProperty(10572, 112, 112)


def test_open_records_sees_a_replaced_file(tmp_path):
    rio.write_insightface(tmp_path, [(0, b"old")])
    assert rio.read_record_image(tmp_path / "train.rec", 1) == b"old"
    rio.write_insightface(tmp_path, [(0, b"new-and-longer")])
    assert rio.read_record_image(tmp_path / "train.rec", 1) == b"new-and-longer"
    with pytest.raises(MissingImageError):
        rio.read_record_image(tmp_path / "nope.rec", 1)


def test_record_refs():
    assert rio.record_ref("train.rec", 17) == "train.rec#17"
    assert rio.parse_record_ref("/a/b/train.rec#17") == ("/a/b/train.rec", 17)
    assert rio.parse_record_ref("a/b.jpg") is None and rio.parse_record_ref("train.rec#x") is None
