import pandas as pd
import pytest

from mfrkit.data.manifest import read_manifest, write_manifest
from mfrkit.protocols import (
    Protocol,
    import_pairs,
    load_protocol,
    make_verification,
    save_protocol,
    validate_protocol,
)


@pytest.fixture
def proto(tmp_path, lfw_files, masked_files):
    p = make_verification(lfw_files, masked_files, spec="umr-mp", n_folds=3, genuine_per_fold=3, impostor_per_fold=3)
    return save_protocol(p, tmp_path / "proto")


def kinds(report):
    return {p.kind: p for p in report.problems}


def test_generated_protocol_is_valid(proto):
    report = validate_protocol(proto)
    assert report.ok and report.problems == []
    assert report.counts["pairs"] == 18 and report.row_status == ["ok"] * 18


def test_missing_image_is_reported_in_place_never_dropped(proto):
    p = load_protocol(proto)
    victim = p.pairs["right_id"].iloc[7]
    p.abspath("probe", victim).unlink()
    report = validate_protocol(proto)
    assert not report.ok
    problem = kinds(report)["missing_file"]
    rows = [i + 1 for i, v in enumerate(p.pairs["right_id"]) if v == victim]
    assert problem.rows == rows and str(p.pairs["fold"].iloc[7]) in problem.message
    assert len(report.row_status) == len(p.pairs)  # positions kept
    assert report.row_status[7] == "missing_file"
    assert list(report.failed_rows()) == [r - 1 for r in rows]
    assert validate_protocol(proto, check_files=False).ok
    assert len(load_protocol(proto).pairs) == 18  # the protocol itself is untouched


def test_stale_manifest_is_reported_not_raised(proto, tmp_path):
    m = read_manifest(tmp_path / "masked_files")
    m.table.loc[0, "sha256"] = "0" * 64
    write_manifest(m)
    report = validate_protocol(proto)
    assert "stale_manifest" in kinds(report) and not report.ok


def test_imported_protocol_problems_are_reported_unchanged(tmp_path, lfw_files):
    ids = lfw_files.table["image_id"].tolist()  # Person_000/..._0001 .. Person_011/..._0003
    lines = [
        "fold,left,right,label",
        f"0,{ids[0]},{ids[1]},1",
        f"0,{ids[0]},{ids[3]},0",
        f"1,{ids[1]},{ids[2]},1",       # Person_000 again, in fold 1: not identity-disjoint
        f"1,{ids[4]},{ids[5]},0",       # label says impostor, same identity
        f"1,{ids[5]},{ids[4]},1",       # same pair as above, reversed
        "1,Nobody/Nobody_0001.jpg,Person_002/Person_002_0001.jpg,0",
        f"1,{ids[6]},{ids[6]},1",       # an image against itself
    ]
    (tmp_path / "mine.csv").write_text("\n".join(lines) + "\n")
    p, report = import_pairs(tmp_path / "mine.csv", "csv", lfw_files)
    assert report.unresolved == [(6, "left", "Nobody/Nobody_0001.jpg")]
    assert p.pairs["left_id"].iloc[5] == "Nobody/Nobody_0001.jpg"  # kept in place
    folder = save_protocol(p, tmp_path / "mine")
    v = validate_protocol(folder)
    found = kinds(v)
    assert "Person_000" in found["identity_overlap"].message and found["identity_overlap"].severity == "warning"
    assert found["label_mismatch"].rows == [4]
    assert found["duplicate_pair"].rows == [5]
    assert found["unknown_id"].rows == [6]
    assert found["self_pair"].rows == [7]
    assert v.row_status == ["ok", "ok", "ok", "ok", "ok", "unknown_id", "self_pair"]
    assert len(load_protocol(folder).pairs) == 7


def test_leakage_is_reported(tmp_path, lfw_files, masked_files):
    source = masked_files.table.iloc[0]
    pairs = pd.DataFrame({"fold": [0], "left_id": [source["source_id"]], "right_id": [source["image_id"]],
                          "label": [1]})
    p = Protocol(info={"name": "leaky", "kind": "verification", "spec": "umr-mp"},
                 manifests={"reference": lfw_files, "probe": masked_files}, pairs=pairs)
    report = validate_protocol(load_protocol(save_protocol(p, tmp_path / "leaky")))
    assert kinds(report)["same_source"].severity == "error"


def test_unbalanced_and_uneven_folds_are_warnings(tmp_path, lfw_files):
    ids = lfw_files.table["image_id"].tolist()
    pairs = pd.DataFrame({"fold": [0, 0, 0, 2], "left_id": [ids[0], ids[0], ids[3], ids[6]],
                          "right_id": [ids[1], ids[3], ids[6], ids[9]], "label": [1, 0, 0, 0]})
    p = Protocol(info={"name": "odd", "kind": "verification", "spec": None},
                 manifests={"reference": lfw_files, "probe": lfw_files}, pairs=pairs)
    report = validate_protocol(p)
    found = kinds(report)
    assert {"unbalanced_fold", "uneven_folds", "fold_numbers"} <= set(found)
    assert report.ok  # warnings only
