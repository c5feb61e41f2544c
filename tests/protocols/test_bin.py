import pickle

import numpy as np
import pandas as pd
import pytest

from mfrkit.data.imageio import encode_image
from mfrkit.protocols import (
    PairFormatError,
    UnsafePickleError,
    export_protocol,
    import_insightface_bin,
    load_protocol,
    read_bin,
    save_protocol,
    validate_protocol,
)


def images(n):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
        out.append(encode_image(img, ".jpg" if i % 2 else ".png"))
    return out


class Payload:
    """Would create a file if its __reduce__ were ever executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_reads_a_plain_bin():
    bins, issame = images(4), [True, False]
    assert read_bin(pickle.dumps((bins, issame), protocol=4)) == (bins, issame)


def test_reads_a_python2_bin():
    # lfw.bin files were written by Python 2: str -> SHORT_BINSTRING, read back as bytes.
    data = b"\x80\x02](U\x04abcdU\x04efghe](\x88e\x86."
    assert read_bin(data) == ([b"abcd", b"efgh"], [True])


@pytest.mark.parametrize("where", ["top", "in_bins", "in_issame"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, where):
    marker = tmp_path / "pwned"
    evil = Payload(marker)
    obj = {"top": evil, "in_bins": ([b"a", evil], [True]), "in_issame": ([b"a", b"b"], [evil])}[where]
    data = pickle.dumps(obj, protocol=4)
    with pytest.raises(UnsafePickleError, match="refused"):
        read_bin(data)
    assert not marker.exists()
    # The opcode scan is what stops it: a plain unpickle would have run the payload.
    pickle.loads(data)
    assert marker.exists()


@pytest.mark.parametrize("obj, message", [
    ({"bins": [b"a"]}, "expected a tuple"),
    (([b"a", b"b"], [1]), "only bools"),
    ((["a", "b"], [True]), "only bytes"),
    (([b"a", b"b", b"c"], [True]), "two images per pair"),
    (([b"a", b"b"], [True], "extra"), "expected a tuple"),
])
def test_wrong_structures_are_refused(obj, message):
    with pytest.raises(PairFormatError, match=message):
        read_bin(pickle.dumps(obj, protocol=4))


def test_not_a_pickle():
    with pytest.raises(PairFormatError, match="not a pickle"):
        read_bin(b"\x80\x04\x95")  # truncated
    with pytest.raises(PairFormatError):  # a PNG reads as a PERSID opcode: refused too
        read_bin(b"\x89PNG\r\n\x1a\nnot a pickle")


def test_import_unpacks_images_and_manifest_then_exports_the_same_bytes(tmp_path):
    bins = images(40)
    issame = [bool(i % 2 == 0) for i in range(20)]
    data = pickle.dumps((bins, issame), protocol=4)
    (tmp_path / "lfw.bin").write_bytes(data)
    protocol, manifest = import_insightface_bin(tmp_path / "lfw.bin", tmp_path / "lfw-bin", variant="masked")
    assert len(manifest) == 40 and (manifest.table["status"] == "ok").all()
    assert (tmp_path / "lfw-bin" / "manifest.parquet").is_file()
    first = manifest.table.iloc[0]
    assert first["path"] == "images/000000.png" and (first["width"], first["height"]) == (10, 12)
    assert (tmp_path / "lfw-bin" / first["path"]).read_bytes() == bins[0]
    assert manifest.table.iloc[1]["path"].endswith(".jpg")
    assert protocol.pairs["label"].tolist() == [int(s) for s in issame]
    assert protocol.pairs["fold"].tolist() == [i // 2 for i in range(20)]  # 10 contiguous folds
    assert protocol.spec == "mr-mp"
    folder = save_protocol(protocol, tmp_path / "proto")
    assert validate_protocol(folder).ok
    out, _ = export_protocol(load_protocol(folder), tmp_path / "again.bin", "insightface-bin")
    assert out.read_bytes() == data


def test_a_corrupt_image_is_recorded_and_its_pair_kept(tmp_path):
    bins = images(4)
    bins[3] = b"\xff\xd8\xff not really a jpeg"
    (tmp_path / "x.bin").write_bytes(pickle.dumps((bins, [True, False]), protocol=4))
    protocol, manifest = import_insightface_bin(tmp_path / "x.bin", tmp_path / "ds", n_folds=1)
    assert manifest.table["status"].tolist() == ["ok", "ok", "ok", "corrupt"]
    assert not (tmp_path / "ds" / manifest.table["path"].iloc[3]).exists()
    folder = save_protocol(protocol, tmp_path / "proto")
    report = validate_protocol(folder)
    assert report.row_status == ["ok", "bad_status"] and not report.ok
    assert pd.Series(report.row_status).index.tolist() == [0, 1]


def test_one_image_repeated_through_the_memo_is_refused(tmp_path):
    """A 25 KB .bin whose lists point at one image thousands of times unpacked to 63 MB."""
    rng = np.random.default_rng(1)
    one = encode_image(rng.integers(0, 256, size=(100, 100, 3), dtype=np.uint8), ".png")  # ~30 KB of noise
    bins = [one] * 4000  # pickle stores it once and then 4000 short memo references
    data = pickle.dumps((bins, [True] * 2000), protocol=4)
    assert len(data) < 60_000 and len(one) * 4000 > 100 * len(data) and len(one) * 4000 > (1 << 20) + 2 * len(data)
    (tmp_path / "bomb.bin").write_bytes(data)
    with pytest.raises(PairFormatError, match="repeated through the pickle's memo"):
        read_bin(data)
    with pytest.raises(PairFormatError, match="limit: 2x the file size"):
        import_insightface_bin(tmp_path / "bomb.bin", tmp_path / "ds")
    assert not (tmp_path / "ds").exists()  # nothing written


def test_a_few_repeats_within_the_limit_are_read():
    bins = images(4)
    bins[3] = bins[0]  # one image twice (a memo reference): the images still add up to less than 2x the file
    assert read_bin(pickle.dumps((bins, [True, False]), protocol=4))[0] == bins


@pytest.mark.parametrize("data, what", [
    (b"Abel_Pacheco\t1\t4\nAkhmed_Zakayev\t1\t3\n", "a text file"),
    (b"c__builtin__\neval\n(S'1'\ntR.", "a text file"),  # a protocol-0 pickle is text too: never loaded
    (b"\xff\xd8\xff\xe0 jpeg", "a JPEG image"),
    (b"\x00\x01\x02\x03", "binary data that is not a pickle"),
])
def test_a_file_that_is_no_binary_pickle_is_named_for_what_it_is(data, what):
    with pytest.raises(PairFormatError) as err:
        read_bin(data)
    assert what in str(err.value) and "import or call code" not in str(err.value)
