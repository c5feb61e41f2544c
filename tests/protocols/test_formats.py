import pandas as pd
import pytest

from mfrkit.data.manifest import Manifest, make_table
from mfrkit.errors import MfrkitError
from mfrkit.protocols import (
    PairFormatError,
    export_protocol,
    import_pairs,
    make_verification,
    read_people,
)
from mfrkit.protocols.formats import FORMATS, contiguous_folds, pairs_bytes, read_pairs

from tests.support.fake_data import lfw_rows

LFW_VIEW2 = (
    "2\t2\n"
    "Abel_Pacheco\t1\t4\n"
    "Akhmed_Zakayev\t1\t3\n"
    "Abdel_Madi_Shabneh\t1\tDean_Barker\t1\n"
    "Abdel_Madi_Shabneh\t1\tGiancarlo_Fisichella\t1\n"
    "Gary_Doer\t2\t3\n"
    "Gary_Barnett\t1\t2\n"
    "Zico\t1\tZico\t2\n"
    "Abdullah_Gul\t13\tBill_Frist\t9\n"
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_lfw_view2_parses_into_sets(tmp_path):
    pairs = read_pairs(write(tmp_path, "pairs.txt", LFW_VIEW2), "lfw")
    assert pairs["fold"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert pairs["label"].tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    assert pairs.loc[0, "left"] == "Abel_Pacheco/Abel_Pacheco_0001.jpg"
    assert pairs.loc[0, "right"] == "Abel_Pacheco/Abel_Pacheco_0004.jpg"
    assert pairs.loc[7, "left"] == "Abdullah_Gul/Abdullah_Gul_0013.jpg"
    assert pairs.loc[7, "right"] == "Bill_Frist/Bill_Frist_0009.jpg"


def test_lfw_view1_single_integer_header(tmp_path):
    text = "2\nA\t1\t2\nB\t1\t2\nA\t1\tB\t2\nB\t1\tC\t1\n"
    pairs = read_pairs(write(tmp_path, "pairsDevTest.txt", text), "lfw", ext=".png")
    assert pairs["fold"].tolist() == [0] * 4 and pairs["label"].tolist() == [1, 1, 0, 0]
    assert pairs.loc[0, "left"] == "A/A_0001.png"
    assert pairs_bytes(pairs, "lfw").decode() == text  # one set is written with the View 1 header


def test_lfw_round_trip_is_byte_exact(tmp_path):
    pairs = read_pairs(write(tmp_path, "pairs.txt", LFW_VIEW2), "lfw")
    assert pairs_bytes(pairs, "lfw").decode() == LFW_VIEW2


@pytest.mark.parametrize("text, message", [
    ("2\t2\nA\t1\t2\n", "header announces"),
    ("1\t1\nA\t1\tB\t2\nA\t1\t2\n", "expects a matched"),
    ("1\t1\nA\t1\t2\nA\tone\tB\t2\n", "must be an integer"),
    ("1\t1\nA\t1\t2\t9\t9\nB\t1\tC\t1\n", "expected 3 fields"),
    ("x y z\n", "header"),
])
def test_lfw_malformed_files_name_the_line(tmp_path, text, message):
    with pytest.raises(PairFormatError, match=message):
        read_pairs(write(tmp_path, "pairs.txt", text), "lfw")


def test_generated_lfw_file_of_6000_pairs_parses_into_the_right_folds(tmp_path):
    m = Manifest(make_table(lfw_rows([4] * 500 + [1] * 100)), {"name": "big"})
    m.path = tmp_path / "big" / "manifest.parquet"
    protocol = make_verification(m, seed=0)  # LFW defaults: 10 folds x (300 + 300)
    path, _ = export_protocol(protocol, tmp_path / "pairs.txt", "lfw")
    lines = path.read_text().splitlines()
    assert lines[0] == "10\t300" and len(lines) == 1 + 6000
    parsed = read_pairs(path, "lfw")
    assert len(parsed) == 6000
    assert parsed.groupby(["fold", "label"]).size().eq(300).all()
    assert parsed["fold"].tolist() == protocol.pairs["fold"].tolist()
    # ... and importing it gives the very same pairs.
    imported, report = import_pairs(path, "lfw", m)
    assert report.ok
    pd.testing.assert_frame_equal(imported.pairs, protocol.pairs)
    with pytest.raises(MfrkitError, match="it is a folder; give the file"):
        export_protocol(protocol, tmp_path, "lfw")


def test_mfr2_pairs(tmp_path):
    text = "AdrianDunbar 1 2\nAdrianDunbar 1 AlanJackson 3\nAlanJackson 1 2\nBobDole 1 AlanJackson 2\n"
    pairs = read_pairs(write(tmp_path, "pairs.txt", text), "mfr2", n_folds=2)
    assert pairs["fold"].tolist() == [0, 0, 1, 1] and pairs["label"].tolist() == [1, 0, 1, 0]
    assert pairs.loc[1, "right"] == "AlanJackson/AlanJackson_0003.png"
    assert pairs_bytes(pairs, "mfr2").decode() == text


CALFW = (
    "Aaron_Eckhart_0001.jpg 1\nAaron_Eckhart_0002.jpg 1\n"
    "Bob_0001.jpg 1\nBob_0004.jpg 1\n"
    "Carl_0002.jpg 2\nCarl_0003.jpg 2\n"
    "Aaron_Eckhart_0001.jpg 0\nBob_0003.jpg 0\n"
    "Dan_0001.jpg 0\nEve_0002.jpg 0\n"
    "Carl_0001.jpg 0\nDan_0002.jpg 0\n"
)


def test_calfw_positives_first_tokens_are_folds(tmp_path):
    pairs = read_pairs(write(tmp_path, "pairs_CALFW.txt", CALFW), "calfw")
    assert pairs["label"].tolist() == [1, 1, 1, 0, 0, 0]
    assert pairs["fold"].tolist() == [0, 0, 1, 0, 0, 1]  # negatives: blocks sized like the positive folds
    assert pairs.loc[0, "left"] == "Aaron_Eckhart_0001.jpg"
    assert pairs_bytes(pairs, "calfw").decode() == CALFW


def test_calfw_malformed(tmp_path):
    with pytest.raises(PairFormatError, match="two lines per pair"):
        read_pairs(write(tmp_path, "p.txt", "a.jpg 1\n"), "calfw")
    with pytest.raises(PairFormatError, match="different tokens"):
        read_pairs(write(tmp_path, "p.txt", "a.jpg 1\nb.jpg 0\n"), "calfw")


def test_mlfw_and_pairs_label(tmp_path):
    mlfw = "Aaron_0001_0000.jpg\tAaron_0002_0001.jpg\t1\nAaron_0001_0000.jpg\tBob_0001_0003.jpg\t0\n" * 3
    pairs = read_pairs(write(tmp_path, "pairs.txt", mlfw), "mlfw", n_folds=3)
    assert pairs["fold"].tolist() == [0, 0, 1, 1, 2, 2] and pairs["label"].tolist() == [1, 0] * 3
    assert pairs_bytes(pairs, "mlfw").decode() == mlfw
    label = mlfw.replace("\t", " ")
    pairs = read_pairs(write(tmp_path, "pairs_label.txt", label), "pairs-label", n_folds=2)
    assert pairs["fold"].tolist() == [0, 0, 0, 1, 1, 1]
    assert pairs_bytes(pairs, "pairs-label").decode() == label


def test_generic_csv_with_and_without_folds(tmp_path):
    text = "label,right,left,fold,note\n1,b/b_1.jpg,a/a_1.jpg,3,x\nfalse,c/c_1.jpg,a/a_1.jpg,3,\n"
    pairs = read_pairs(write(tmp_path, "p.csv", text), "csv")
    assert pairs.to_dict("records") == [
        {"fold": 3, "left": "a/a_1.jpg", "right": "b/b_1.jpg", "label": 1},
        {"fold": 3, "left": "a/a_1.jpg", "right": "c/c_1.jpg", "label": 0}]
    out = pairs_bytes(pairs, "csv").decode()
    assert out == "fold,left,right,label\n3,a/a_1.jpg,b/b_1.jpg,1\n3,a/a_1.jpg,c/c_1.jpg,0\n"
    pd.testing.assert_frame_equal(read_pairs(write(tmp_path, "q.csv", out), "csv"), pairs)
    no_fold = read_pairs(write(tmp_path, "r.csv", "left,right,label\nx.jpg,y.jpg,1\nx.jpg,z.jpg,0\n"), "csv", n_folds=2)
    assert no_fold["fold"].tolist() == [0, 1]
    with pytest.raises(PairFormatError, match="header must name"):
        read_pairs(write(tmp_path, "s.csv", "a,b,c\n1,2,3\n"), "csv")


@pytest.mark.parametrize("fmt, text", [
    ("lfw", "1\t1\n..\t1\t2\nA\t1\tB\t1\n"),
    ("csv", "left,right,label\n../../etc/passwd,a.jpg,1\n"),
    ("csv", "left,right,label\n/etc/passwd,a.jpg,1\n"),
    ("mlfw", "a.jpg\t../b.jpg\t1\n"),
    ("pairs-label", "C:/x.jpg b.jpg 1\n"),
    ("calfw", "../a.jpg 1\nb.jpg 1\n"),
])
def test_paths_escaping_the_dataset_root_are_refused(tmp_path, fmt, text):
    with pytest.raises(PairFormatError, match="escapes the dataset root"):
        read_pairs(write(tmp_path, "p.txt", text), fmt, **({"n_folds": 1} if fmt in ("csv", "mlfw", "pairs-label") else {}))


def test_flat_formats_refuse_folds_they_cannot_keep():
    pairs = pd.DataFrame({"fold": [0, 1, 0, 1], "left": ["a.jpg"] * 4, "right": ["b.jpg"] * 4, "label": [1, 1, 0, 0]})
    for fmt in ("mlfw", "pairs-label", "mfr2"):
        with pytest.raises(PairFormatError, match="csv"):
            pairs_bytes(pairs, fmt)
    assert pairs_bytes(pairs, "csv")  # csv keeps any folds


def test_lfw_writer_refuses_unbalanced_folds_and_foreign_paths():
    unbalanced = pd.DataFrame({"fold": [0, 0, 0], "left": ["A/A_0001.jpg"] * 3,
                               "right": ["A/A_0002.jpg", "B/B_0001.jpg", "C/C_0001.jpg"], "label": [1, 0, 0]})
    with pytest.raises(PairFormatError, match="same number"):
        pairs_bytes(unbalanced, "lfw")
    foreign = pd.DataFrame({"fold": [0, 0], "left": ["masks/A/A_0001.png", "A/A_0001.jpg"],
                            "right": ["A/A_0002.jpg", "B/B_0001.jpg"], "label": [1, 0]})
    with pytest.raises(PairFormatError, match="layout"):
        pairs_bytes(foreign, "lfw")


def test_contiguous_folds_match_kfold():
    from sklearn.model_selection import KFold

    for n, k in ((6000, 10), (848, 10), (13, 4), (5, 5)):
        expected = [0] * n
        for fold, (_, test) in enumerate(KFold(k).split(range(n))):
            for i in test:
                expected[i] = fold
        assert contiguous_folds(n, k).tolist() == expected
    with pytest.raises(PairFormatError, match="fewer folds"):
        contiguous_folds(3, 10)


def test_people_txt_view2_and_view1(tmp_path):
    view2 = "2\n2\nAaron\t1\nBob\t3\n1\nCarl\t2\n"
    people = read_people(write(tmp_path, "people.txt", view2))
    assert people.to_dict("records") == [{"fold": 0, "identity": "Aaron", "n_images": 1},
                                         {"fold": 0, "identity": "Bob", "n_images": 3},
                                         {"fold": 1, "identity": "Carl", "n_images": 2}]
    view1 = read_people(write(tmp_path, "peopleDevTrain.txt", "2\nAaron\t1\nBob\t3\n"))
    assert view1["fold"].tolist() == [0, 0] and view1["identity"].tolist() == ["Aaron", "Bob"]
    with pytest.raises(PairFormatError, match="ends early"):
        read_people(write(tmp_path, "bad.txt", "1\n3\nAaron\t1\n"))


def test_format_options_are_checked(tmp_path):
    with pytest.raises(PairFormatError, match="takes: ext"):
        read_pairs(write(tmp_path, "pairs.txt", LFW_VIEW2), "lfw", n_folds=3)
    assert set(FORMATS.names()) >= {"lfw", "mfr2", "calfw", "cplfw", "mlfw", "pairs-label", "csv", "insightface-bin"}


def test_binary_garbage_is_not_a_pair_file(tmp_path):
    with pytest.raises(PairFormatError, match="not a text file"):
        read_pairs(write(tmp_path, "p.txt", b"\x00\x01\x02"), "mlfw")


@pytest.mark.parametrize("fmt", ["lfw", "mfr2", "calfw", "cplfw", "mlfw", "pairs-label", "csv"])
def test_every_format_round_trips_a_generated_protocol(tmp_path, fmt):
    m = Manifest(make_table(lfw_rows([4] * 40 + [1] * 10)), {"name": "m"})
    m.path = tmp_path / "m" / "manifest.parquet"
    protocol = make_verification(m, seed=1, genuine_per_fold=6, impostor_per_fold=6)
    expected = protocol.pairs
    if fmt in ("calfw", "cplfw"):  # both list every positive pair first, fold by fold
        expected = expected.sort_values(["label", "fold"], ascending=[False, True], kind="stable").reset_index(drop=True)
    path, _ = export_protocol(protocol, tmp_path / f"out.{fmt}", fmt)
    options = {"ext": ".jpg"} if fmt == "mfr2" else {}
    imported, report = import_pairs(path, fmt, m, **options)
    assert report.ok
    pd.testing.assert_frame_equal(imported.pairs, expected)
    # Writing the imported protocol again gives the same bytes.
    again, _ = export_protocol(imported, tmp_path / f"again.{fmt}", fmt)
    assert again.read_bytes() == path.read_bytes()
