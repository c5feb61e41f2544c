import pytest

from mfrkit.protocols import (
    InsufficientDataError,
    ProtocolError,
    derive_verification,
    import_pairs,
    load_protocol,
    make_verification,
    save_protocol,
    validate_protocol,
)
from mfrkit.protocols.formats import write_pairs

from tests.support.fake_data import masked_rows, save


@pytest.fixture
def lfw_protocol(tmp_path, lfw):
    return save_protocol(make_verification(lfw, genuine_per_fold=10, impostor_per_fold=10, seed=11), tmp_path / "lfw-p")


def test_umr_mp_over_the_same_pairs_and_folds(lfw_protocol, lfw, masked):
    parent = load_protocol(lfw_protocol)
    child = derive_verification(parent, lfw, masked, spec="umr-mp")
    assert child.pairs["fold"].tolist() == parent.pairs["fold"].tolist()
    assert child.pairs["label"].tolist() == parent.pairs["label"].tolist()
    assert child.pairs["left_id"].tolist() == parent.pairs["left_id"].tolist()  # unmasked side unchanged
    source = masked.table.set_index("image_id")["source_id"]
    assert source.loc[child.pairs["right_id"]].tolist() == parent.pairs["right_id"].tolist()
    assert child.info["derived_from"] == {"name": parent.name, "spec": "umr-ump", "sha256": parent.sha256}
    assert child.seed == parent.seed


def test_mr_mp_from_an_imported_lfw_pairs_file(tmp_path, lfw, masked, lfw_protocol):
    # The real workflow: LFW pairs.txt -> protocol -> masked variants of the same pairs.
    parent = load_protocol(lfw_protocol)
    from mfrkit.protocols.interop import protocol_pair_table

    table, _ = protocol_pair_table(parent)
    write_pairs(table, tmp_path / "pairs.txt", "lfw")
    imported, report = import_pairs(tmp_path / "pairs.txt", "lfw", lfw)
    assert report.ok
    child = derive_verification(imported, masked, spec="mr-mp", seed=0)
    source = masked.table.set_index("image_id")["source_id"]
    assert source.loc[child.pairs["left_id"]].tolist() == parent.pairs["left_id"].tolist()
    assert source.loc[child.pairs["right_id"]].tolist() == parent.pairs["right_id"].tolist()
    mt = masked.table.set_index("image_id")["mask_type"]
    differ = mt.loc[child.pairs["left_id"]].to_numpy() != mt.loc[child.pairs["right_id"]].to_numpy()
    assert (differ == (child.pairs["label"].to_numpy() == 1)).all()  # MLFW's mask pairing


def test_same_seed_same_bytes(tmp_path, lfw_protocol, lfw, masked):
    a = save_protocol(derive_verification(lfw_protocol, lfw, masked, spec="umr-mp", seed=3), tmp_path / "a")
    b = save_protocol(derive_verification(lfw_protocol, lfw, masked, spec="umr-mp", seed=3), tmp_path / "b")
    assert (a / "pairs.csv").read_bytes() == (b / "pairs.csv").read_bytes()


def test_missing_variant_is_refused_or_kept_as_failure(tmp_path, lfw, lfw_base, lfw_protocol):
    parent = load_protocol(lfw_protocol)
    gone = parent.pairs["right_id"].iloc[5]
    rows = [r for r in masked_rows(lfw_base) if r["source_id"] != gone]
    masked = save(tmp_path / "masked-partial", rows, "masked-with-failures")
    with pytest.raises(InsufficientDataError, match="allow-missing"):
        derive_verification(parent, lfw, masked, spec="umr-mp")
    child = derive_verification(parent, lfw, masked, spec="umr-mp", allow_missing=True)
    assert len(child.pairs) == len(parent.pairs)
    assert child.pairs["right_id"].iloc[5] == ""
    folder = save_protocol(child, tmp_path / "child")
    report = validate_protocol(folder, check_files=False)
    assert not report.ok
    assert report.row_status[5] == "no_image"
    assert 5 in report.failed_rows()


def test_parent_pair_of_one_photo_is_refused(tmp_path, lfw, masked):
    parent = make_verification(lfw, genuine_per_fold=2, impostor_per_fold=2)
    parent.pairs.loc[0, "right_id"] = parent.pairs.loc[0, "left_id"]
    with pytest.raises(ProtocolError, match="same source photo"):
        derive_verification(parent, lfw, masked, spec="umr-mp")


def test_only_verification_protocols_can_be_derived(lfw, masked):
    from mfrkit.protocols import make_identification

    with pytest.raises(ProtocolError, match="only 1:1"):
        derive_verification(make_identification(lfw), lfw, masked, spec="umr-mp")
