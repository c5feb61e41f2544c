"""CPLFW's real pairs file: two lines per pair, token = label, 3000 genuine then 3000 impostor
pairs, fold i = genuine 300i.. plus impostor 3000+300i.. (FaceX-Zoo's reading)."""

import hashlib

import pytest

from mfrkit.data.manifest import Manifest, make_table
from mfrkit.protocols import PairFormatError, export_protocol, import_pairs, validate_protocol
from mfrkit.protocols.formats import pairs_bytes, read_pairs


def _cplfw_file() -> tuple[str, list[tuple[str, str, int]]]:
    """A file in the official layout (names as the official images: ``Name_N.jpg``).

    Fold f uses identities ``P<f>_<j>`` only, so a correct reading keeps every identity
    in one fold. Returns the text and the pairs in file order.
    """
    genuine, impostor = [], []
    for f in range(10):
        for j in range(300):
            genuine.append((f"P{f}_{j}_1.jpg", f"P{f}_{j}_2.jpg", 1))
            impostor.append((f"P{f}_{j}_3.jpg", f"P{f}_{(j + 1) % 300}_4.jpg", 0))
    pairs = genuine + impostor
    lines = []
    for left, right, label in pairs:
        lines += [f"{left} {label}", f"{right} {label}"]
    return "\n".join(lines) + "\n", pairs


def _facex_zoo_order(pairs):
    """FaceX-Zoo's CPLFW_PairsParser: for set i, pairs[300i:300i+300] + pairs[3000+300i:...]."""
    out = []
    for i in range(10):
        out += [(i, *p) for p in pairs[300 * i: 300 * i + 300]]
        out += [(i, *p) for p in pairs[3000 + 300 * i: 3000 + 300 * i + 300]]
    return out


def test_cplfw_reads_ten_folds_as_facex_zoo(tmp_path):
    text, pairs = _cplfw_file()
    path = tmp_path / "pairs_CPLFW.txt"
    path.write_text(text)
    table = read_pairs(path, "cplfw")
    assert len(table) == 6000 and table["fold"].nunique() == 10
    assert table["label"].tolist() == [1] * 3000 + [0] * 3000
    got = sorted(zip(table["fold"], table["left"], table["right"], table["label"]))
    assert got == sorted(_facex_zoo_order(pairs))
    # Every fold holds 300 + 300.
    counts = table.groupby(["fold", "label"]).size()
    assert set(counts.tolist()) == {300}


def test_cplfw_round_trip_is_byte_exact(tmp_path):
    text, _ = _cplfw_file()
    path = tmp_path / "pairs_CPLFW.txt"
    path.write_text(text)
    assert pairs_bytes(read_pairs(path, "cplfw"), "cplfw") == text.encode()


def test_cplfw_accepts_crlf_and_a_header(tmp_path):
    text, _ = _cplfw_file()
    path = tmp_path / "pairs_CPLFW.txt"
    path.write_bytes(("name same_person\r\n" + text.replace("\n", "\r\n")).encode())
    table = read_pairs(path, "cplfw")
    assert table["fold"].nunique() == 10 and len(table) == 6000
    assert pairs_bytes(table, "cplfw") == text.encode()  # written back in the official layout


@pytest.mark.parametrize("text, message", [
    ("a_1.jpg 2\na_2.jpg 2\nb_1.jpg 0\nc_1.jpg 0\n", "--format calfw"),
    ("a_1.jpg 0\nb_1.jpg 0\na_1.jpg 1\na_2.jpg 1\n", "genuine pair after impostor"),
    ("a_1.jpg 1\na_2.jpg 1\nb_1.jpg 0\n", "two lines per pair"),
    ("a_1.jpg 1\na_2.jpg 1\nb_1.jpg 0\nc_1.jpg 0\n", "cannot both be split into 10 folds"),
])
def test_cplfw_malformed_files_are_named(tmp_path, text, message):
    path = tmp_path / "p.txt"
    path.write_text(text)
    with pytest.raises(PairFormatError, match=message):
        read_pairs(path, "cplfw")


def test_cplfw_writer_refuses_folds_it_cannot_give_back(tmp_path):
    text, _ = _cplfw_file()
    path = tmp_path / "pairs_CPLFW.txt"
    path.write_text(text)
    table = read_pairs(path, "cplfw")
    table.loc[0, "fold"] = 9  # one genuine pair moved to the last fold
    with pytest.raises(PairFormatError, match="stores no folds"):
        pairs_bytes(table, "cplfw")


def _flat_manifest(pairs, root) -> Manifest:
    names = sorted({n for left, right, _ in pairs for n in (left, right)})
    rows = [{"image_id": n, "path": n, "identity": n.rsplit("_", 1)[0], "variant": "unmasked", "status": "ok",
             "sha256": hashlib.sha256(n.encode()).hexdigest()} for n in names]
    m = Manifest(make_table(rows), {"name": "cplfw", "root": str(root)})
    m.path = root / "manifest.parquet"
    return m


def test_cplfw_import_keeps_identities_within_folds_and_exports_back(tmp_path):
    text, pairs = _cplfw_file()
    path = tmp_path / "pairs_CPLFW.txt"
    path.write_text(text)
    manifest = _flat_manifest(pairs, tmp_path)
    protocol, report = import_pairs(path, "cplfw", manifest)
    assert report.ok and report.folds == 10 and report.pairs == 6000
    v = validate_protocol(protocol, check_files=False)
    kinds = {p.kind for p in v.problems}
    assert "identity_overlap" not in kinds and "single_fold" not in kinds and v.ok
    out, _ = export_protocol(protocol, tmp_path / "again.txt", "cplfw", root=tmp_path)
    assert out.read_bytes() == text.encode()


def test_validate_warns_when_an_imported_protocol_has_one_fold(tmp_path):
    """The old reading (token read as CALFW's fold) put all 6000 pairs in one fold, and
    validate said ok: a protocol of a format with folds that ends with one is flagged."""
    text, pairs = _cplfw_file()
    path = tmp_path / "pairs_CPLFW.txt"
    path.write_text(text)
    protocol, _ = import_pairs(path, "calfw", _flat_manifest(pairs, tmp_path))
    assert protocol.pairs["fold"].nunique() == 1
    v = validate_protocol(protocol, check_files=False)
    single = [p for p in v.problems if p.kind == "single_fold"]
    assert single and single[0].severity == "warning"
    assert "cplfw" in single[0].message and "accuracy" in single[0].message
