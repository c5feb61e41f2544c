import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfrkit.data.manifest import Manifest, make_table
from mfrkit.protocols import (
    InsufficientDataError,
    ProtocolError,
    make_verification,
    save_protocol,
)
from mfrkit.protocols.pool import RootResolver

from tests.support.fake_data import lfw_rows, masked_rows, partial_rows


def identities(manifest, ids):
    table = manifest.table.set_index("image_id")
    return table.loc[list(ids), "identity"].tolist()


def roots(manifests, ids):
    resolver = RootResolver(manifests)
    return [resolver.root(i) for i in ids]


def in_memory(rows, name="m"):
    return Manifest(make_table(rows), {"name": name, "root": "/nonexistent"})


def test_lfw_style_counts_and_order(lfw):
    p = make_verification(lfw, genuine_per_fold=20, impostor_per_fold=20, seed=3)
    counts = p.pairs.groupby(["fold", "label"]).size().unstack()
    assert counts.index.tolist() == list(range(10))
    assert (counts[0] == 20).all() and (counts[1] == 20).all()
    # Within a fold, genuine pairs come first (LFW's order).
    for _, fold in p.pairs.groupby("fold"):
        assert fold["label"].tolist() == [1] * 20 + [0] * 20
    assert p.info["kind"] == "verification" and p.info["spec"] == "umr-ump" and p.info["seed"] == 3


def test_labels_follow_identities_and_folds_are_identity_disjoint(lfw):
    p = make_verification(lfw, genuine_per_fold=20, impostor_per_fold=20)
    left = identities(lfw, p.pairs["left_id"])
    right = identities(lfw, p.pairs["right_id"])
    assert [int(a == b) for a, b in zip(left, right)] == p.pairs["label"].tolist()
    folds_of = {}
    for fold, a, b in zip(p.pairs["fold"], left, right):
        for ident in (a, b):
            folds_of.setdefault(ident, set()).add(fold)
    assert all(len(f) == 1 for f in folds_of.values())


def test_no_pair_repeats_and_no_image_meets_itself(lfw):
    p = make_verification(lfw, genuine_per_fold=20, impostor_per_fold=20)
    keys = {tuple(sorted(k)) for k in zip(p.pairs["left_id"], p.pairs["right_id"])}
    assert len(keys) == len(p.pairs)
    assert (p.pairs["left_id"] != p.pairs["right_id"]).all()


def test_same_seed_same_bytes_other_seed_other_pairs(tmp_path, lfw, masked):
    a = save_protocol(make_verification(lfw, masked, spec="umr-mp", seed=7, genuine_per_fold=20,
                                        impostor_per_fold=20), tmp_path / "a")
    b = save_protocol(make_verification(lfw, masked, spec="umr-mp", seed=7, genuine_per_fold=20,
                                        impostor_per_fold=20), tmp_path / "b")
    c = save_protocol(make_verification(lfw, masked, spec="umr-mp", seed=8, genuine_per_fold=20,
                                        impostor_per_fold=20), tmp_path / "c")
    for name in ("pairs.csv", "protocol.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "pairs.csv").read_bytes() != (c / "pairs.csv").read_bytes()


def test_umr_mp_pairs_unmasked_left_with_masked_right(lfw, masked):
    p = make_verification(lfw, masked, spec="umr-mp", genuine_per_fold=20, impostor_per_fold=20)
    assert p.pairs["left_id"].isin(lfw.table["image_id"]).all()
    assert p.pairs["right_id"].isin(masked.table["image_id"]).all()
    # Both mask types are used.
    types = masked.table.set_index("image_id").loc[p.pairs["right_id"], "mask_type"]
    assert set(types) == {"surgical", "cloth"}


def test_mr_mp_mlfw_pairing(masked):
    p = make_verification(masked, spec="mr-mp", genuine_per_fold=20, impostor_per_fold=20)
    mt = masked.table.set_index("image_id")["mask_type"]
    same = (mt.loc[p.pairs["left_id"]].to_numpy() == mt.loc[p.pairs["right_id"]].to_numpy())
    genuine = p.pairs["label"].to_numpy() == 1
    # MLFW: genuine pairs wear different masks, impostor pairs share a mask type.
    assert not same[genuine].any() and same[~genuine].all()
    q = make_verification(masked, spec="mr-mp", spec_params={"mask_pairing": "independent"},
                          genuine_per_fold=20, impostor_per_fold=20)
    same = (mt.loc[q.pairs["left_id"]].to_numpy() == mt.loc[q.pairs["right_id"]].to_numpy())
    assert same[q.pairs["label"].to_numpy() == 1].any()


def test_mask_types_filter(masked):
    p = make_verification(masked, spec="mr-mp", spec_params={"mask_types": "cloth"}, genuine_per_fold=10,
                          impostor_per_fold=10)
    types = masked.table.set_index("image_id")["mask_type"]
    assert set(types.loc[p.pairs["left_id"]]) | set(types.loc[p.pairs["right_id"]]) == {"cloth"}


def test_not_enough_pairs_is_a_clear_error_or_fewer_on_request(lfw):
    with pytest.raises(InsufficientDataError, match="allow-fewer") as err:
        make_verification(lfw, genuine_per_fold=300, impostor_per_fold=300)
    assert "fold" in str(err.value) and "genuine" in str(err.value)
    p = make_verification(lfw, genuine_per_fold=300, impostor_per_fold=300, allow_fewer=True)
    counts = p.pairs.groupby(["fold", "label"]).size().unstack()
    assert (counts[0] == counts[1]).all() and (counts[1] < 300).all() and (counts[1] > 0).all()


def test_a_manifest_without_images_for_a_side_is_named(masked):
    # umr-mp from a masked copy alone: nothing unmasked for the reference side (1:1 and 1:N alike)
    from mfrkit.protocols import make_identification

    with pytest.raises(ProtocolError, match="reference manifest .*no usable image .*spec 'umr-mp' \\(unmasked"):
        make_verification(masked, spec="umr-mp", allow_fewer=True)
    with pytest.raises(ProtocolError, match="reference manifest .*no usable image"):
        make_identification(masked, spec="umr-mp")


def test_too_few_identities_for_the_folds(tmp_path):
    m = in_memory(lfw_rows([3] * 5))
    with pytest.raises(InsufficientDataError, match="identities"):
        make_verification(m, n_folds=10, genuine_per_fold=1, impostor_per_fold=1)


def test_identity_folds_from_people(lfw):
    folds = {f"Person_{i:03d}": i % 3 for i in range(30)}
    p = make_verification(lfw, identity_folds=folds, genuine_per_fold=5, impostor_per_fold=5)
    assert sorted(p.pairs["fold"].unique()) == [0, 1, 2]
    for side in ("left_id", "right_id"):
        for fold, ident in zip(p.pairs["fold"], identities(lfw, p.pairs[side])):
            assert folds[ident] == fold


def test_images_with_bad_status_or_no_identity_are_not_used():
    rows = lfw_rows([3] * 12)
    rows[0]["status"] = "no_face"
    rows[1]["identity"] = None
    p = make_verification(in_memory(rows), n_folds=2, genuine_per_fold=3, impostor_per_fold=3)
    used = set(p.pairs["left_id"]) | set(p.pairs["right_id"])
    assert rows[0]["image_id"] not in used and rows[1]["image_id"] not in used
    assert p.info["pool"]["skipped"] == {"status_not_ok": 1, "no_identity": 1}


def test_leakage_guard_and_its_opt_out():
    base = lfw_rows([1] * 12)  # one photo per identity: only same-source genuine pairs exist
    masked = masked_rows(base, ("cloth",))
    ref, probe = in_memory(base, "lfw"), in_memory(masked, "masked")
    with pytest.raises(InsufficientDataError):
        make_verification(ref, probe, spec="umr-mp", n_folds=2, genuine_per_fold=2, impostor_per_fold=2)
    p = make_verification(ref, probe, spec="umr-mp", n_folds=2, genuine_per_fold=2, impostor_per_fold=2,
                          allow_same_source=True)
    genuine = p.pairs[p.pairs["label"] == 1]
    assert len(genuine) == 4
    assert roots([ref, probe], genuine["left_id"]) == roots([ref, probe], genuine["right_id"])


def test_partial_holistic_uses_each_pair_both_ways(lfw, partial):
    p = make_verification(lfw, partial, spec="partial-holistic", spec_params={"region": "Nose", "factor": 0.3},
                          genuine_per_fold=5, impostor_per_fold=5)
    assert len(p.pairs) == 10 * 20  # doubled, as in PartialLFW
    crops = partial.table.set_index("image_id")
    assert set(crops.loc[p.pairs["right_id"], "region"]) == {"Nose"}
    assert set(crops.loc[p.pairs["right_id"], "factor"]) == {0.3}
    assert p.pairs["left_id"].isin(lfw.table["image_id"]).all()
    resolver = RootResolver([lfw, partial])
    rows = p.pairs.to_dict("records")
    for first, second in zip(rows[0::2], rows[1::2]):
        # (a holistic, b partial) then (b holistic, a partial)
        assert resolver.root(first["left_id"]) == resolver.root(second["right_id"])
        assert resolver.root(first["right_id"]) == resolver.root(second["left_id"])
        assert first["label"] == second["label"] and first["fold"] == second["fold"]


def test_partial_same_and_cross(partial):
    crops = partial.table.set_index("image_id")
    same = make_verification(partial, spec="partial-same", spec_params={"region": "Mouth", "factor": 0.5},
                             genuine_per_fold=5, impostor_per_fold=5)
    assert len(same.pairs) == 100
    assert set(crops.loc[same.pairs["left_id"], "region"]) == set(crops.loc[same.pairs["right_id"], "region"]) == {"Mouth"}
    cross = make_verification(partial, spec="partial-cross",
                              spec_params={"region": "Nose", "region2": "Mouth", "factor": 0.3},
                              genuine_per_fold=5, impostor_per_fold=5)
    assert len(cross.pairs) == 200
    assert set(crops.loc[cross.pairs["left_id"], "region"]) == {"Nose"}
    assert set(crops.loc[cross.pairs["right_id"], "region"]) == {"Mouth"}


def test_partial_selector_matching_several_crops_is_refused(lfw_base):
    rows = partial_rows(lfw_base[:40], regions=("Nose",), factors=(0.3,), centered=(False, True))
    with pytest.raises(ProtocolError, match="centered"):
        make_verification(in_memory(rows), spec="partial-same", spec_params={"region": "Nose", "factor": 0.3},
                          n_folds=2, genuine_per_fold=2, impostor_per_fold=2)


def test_conflicting_identity_between_source_and_copy_is_refused(lfw_base):
    masked = masked_rows(lfw_base[:20], ("cloth",))
    masked[0]["identity"] = "Someone_Else"
    with pytest.raises(ProtocolError, match="labelled"):
        make_verification(in_memory(lfw_base[:20]), in_memory(masked), spec="umr-mp", n_folds=2,
                          genuine_per_fold=1, impostor_per_fold=1)


# --- properties over many seeds and dataset shapes -------------------------------------------------

shapes = st.lists(st.integers(min_value=1, max_value=6), min_size=12, max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=shapes, seed=st.integers(min_value=0, max_value=2**32 - 1),
       spec=st.sampled_from(["umr-ump", "umr-mp", "mr-mp", "mr-ump"]), n_folds=st.integers(2, 5))
def test_properties_identity_disjoint_balanced_leak_free(counts, seed, spec, n_folds):
    base = lfw_rows(counts)
    ref, probe = in_memory(base, "lfw"), in_memory(masked_rows(base), "masked")
    if spec == "umr-ump":
        probe = ref  # (the masked manifest holds no unmasked probe: an empty protocol proved nothing)
    elif spec == "mr-mp":
        ref = probe
    elif spec == "mr-ump":
        ref, probe = probe, ref
    if max(counts) < 2:  # no genuine pair anywhere: a balanced request takes nothing, and says so
        with pytest.raises(InsufficientDataError, match="no pair can be made"):
            make_verification(ref, probe, spec=spec, seed=seed, n_folds=n_folds, genuine_per_fold=3,
                              impostor_per_fold=3, allow_fewer=True)
        return
    p = make_verification(ref, probe, spec=spec, seed=seed, n_folds=n_folds, genuine_per_fold=3,
                          impostor_per_fold=3, allow_fewer=True)
    pairs = p.pairs
    # >= 12 identities in <= 5 folds: a fold holding an identity with 2 photos has both kinds of pairs
    assert len(pairs) > 0
    # Identity-disjoint folds.
    folds_of = {}
    for side, m in (("left_id", ref), ("right_id", probe)):
        for fold, ident in zip(pairs["fold"], identities(m, pairs[side])):
            folds_of.setdefault(ident, set()).add(fold)
    assert all(len(f) == 1 for f in folds_of.values())
    # Balanced per fold.
    counts_ = pairs.groupby(["fold", "label"]).size().unstack(fill_value=0).reindex(columns=[0, 1], fill_value=0)
    assert (counts_[0] == counts_[1]).all()
    # Leakage guard: the two sides never come from the same photo.
    assert all(a != b for a, b in zip(roots([ref, probe], pairs["left_id"]), roots([ref, probe], pairs["right_id"])))
    # Labels follow identities.
    left, right = identities(ref, pairs["left_id"]), identities(probe, pairs["right_id"])
    assert [int(a == b) for a, b in zip(left, right)] == pairs["label"].tolist()
    # Same seed, same pairs.
    again = make_verification(ref, probe, spec=spec, seed=seed, n_folds=n_folds, genuine_per_fold=3,
                              impostor_per_fold=3, allow_fewer=True)
    pd.testing.assert_frame_equal(again.pairs, pairs)


def test_a_huge_identity_does_not_crowd_its_fold():
    # LFW has one identity with 530 images; its fold must still draw genuine pairs from many identities.
    m = in_memory(lfw_rows([120] + [3] * 100 + [1] * 50))
    p = make_verification(m, n_folds=5, genuine_per_fold=30, impostor_per_fold=30, seed=4)
    ident = m.table.set_index("image_id")["identity"]
    genuine = p.pairs[p.pairs["label"] == 1]
    per_fold = genuine.assign(identity=ident.loc[genuine["left_id"]].to_numpy()).groupby("fold")["identity"]
    assert (per_fold.nunique() >= 10).all()
    assert (per_fold.agg(lambda s: s.value_counts().iloc[0]) <= 5).all()


def test_allow_fewer_that_finds_nothing_is_an_error(tmp_path):
    """Two identities dealt to two folds: no fold has an impostor pair, and a balanced
    request stays balanced, so allow_fewer found 0 pairs and the old code wrote an empty
    protocol with exit code 0."""
    from tests.support.fake_data import save

    two = save(tmp_path / "two", lfw_rows([4, 4]), "two")
    with pytest.raises(InsufficientDataError, match="no pair can be made.*fewer folds"):
        make_verification(two, n_folds=2, genuine_per_fold=2, impostor_per_fold=2, allow_fewer=True)
    p = make_verification(two, n_folds=1, genuine_per_fold=2, impostor_per_fold=2, allow_fewer=True)
    assert len(p.pairs) == 4  # one fold of both identities works


def test_cli_make_with_nothing_to_take_fails_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import sys

    from mfrkit import cli

    from tests.support.fake_data import save

    two = save(tmp_path / "two", lfw_rows([4, 4]), "two")
    out = tmp_path / "p"
    monkeypatch.setattr(sys, "argv", ["mfrkit", "protocol", "make", str(out), "-m", str(two.path), "--folds", "2",
                                      "--genuine", "2", "--impostor", "2", "--allow-fewer"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    assert "error: no pair can be made" in capsys.readouterr().err
    assert not out.exists()


def test_folds_mostly_of_other_people_fail_unless_allowed(lfw):
    from mfrkit.protocols.errors import InsufficientDataError

    folds = {f"Person_{i:03d}": i % 3 for i in range(30)}
    folds.update({f"Stranger_{i:03d}": i % 3 for i in range(40)})  # 30 of 70 found
    with pytest.raises(InsufficientDataError, match="only 30 of the 70 identities of the given folds"):
        make_verification(lfw, identity_folds=folds, genuine_per_fold=5, impostor_per_fold=5)
    p = make_verification(lfw, identity_folds=folds, genuine_per_fold=5, impostor_per_fold=5, allow_missing=True)
    assert p.info["params"]["identity_folds_found"] == {"found": 30, "listed": 70}
