import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfrkit.data.manifest import Manifest, make_table
from mfrkit.protocols import (
    InsufficientDataError,
    ProtocolError,
    make_identification,
    save_protocol,
    validate_protocol,
)
from mfrkit.protocols.pool import RootResolver

from tests.support.fake_data import lfw_rows, masked_rows


def _memory(rows, name):
    return Manifest(make_table(rows), {"name": name, "root": "/nonexistent"})


def _roots(resolver, ids):
    return [resolver.root(i) for i in ids]


def test_closed_set(lfw, masked):
    p = make_identification(lfw, masked, spec="umr-mp", mode="closed", seed=1)
    g, pr = p.gallery, p.probes
    assert g["image_id"].isin(lfw.table["image_id"]).all()
    assert pr["image_id"].isin(masked.table["image_id"]).all()
    assert (pr["mated"] == 1).all() and pr["identity"].isin(g["identity"]).all()
    # One gallery image per identity, every 4-image identity gives 3 probes.
    assert g["identity"].is_unique and len(g) == 90
    assert len(pr) == 60 * 3
    # Identities without probes are marked as distractors.
    assert set(g.loc[g["distractor"] == 1, "identity"]) == set(g["identity"]) - set(pr["identity"])
    resolver = RootResolver([lfw, masked])
    assert not set(_roots(resolver, g["image_id"])) & set(_roots(resolver, pr["image_id"]))
    assert p.info["kind"] == "identification" and p.info["params"]["mode"] == "closed"


def test_open_set(lfw, masked):
    p = make_identification(lfw, masked, spec="umr-mp", mode="open", unmated_fraction=0.3, seed=2)
    g, pr = p.gallery, p.probes
    unmated = pr[pr["mated"] == 0]
    assert len(unmated) > 0 and (pr["mated"] == 1).any()
    assert not unmated["identity"].isin(g["identity"]).any()
    assert pr.loc[pr["mated"] == 1, "identity"].isin(g["identity"]).all()


def test_megaface_mode(lfw, masked):
    p = make_identification(lfw, masked, spec="umr-mp", mode="megaface", probe_fraction=0.5, seed=3,
                            n_distractors=40)
    g, pr = p.gallery, p.probes
    assert (pr["mate_id"] != "").all() and (pr["mated"] == 1).all()
    gallery_identity = dict(zip(g["image_id"], g["identity"]))
    assert all(gallery_identity[m] == i for m, i in zip(pr["mate_id"], pr["identity"]))
    distractors = g[g["distractor"] == 1]
    assert len(distractors) == 40 and not distractors["identity"].isin(pr["identity"]).any()
    resolver = RootResolver([lfw, masked])
    assert all(a != b for a, b in zip(_roots(resolver, pr["image_id"]), _roots(resolver, pr["mate_id"])))
    # Each probe photo is searched once per other photo of its identity.
    per_probe = pr.groupby("image_id").size()
    assert (per_probe == 3).all()


@pytest.mark.parametrize("mode", ["closed", "open", "megaface"])
def test_generated_identification_protocols_validate(tmp_path, lfw_files, masked_files, mode):
    p = make_identification(lfw_files, masked_files, spec="umr-mp", mode=mode, seed=4)
    folder = save_protocol(p, tmp_path / mode)
    report = validate_protocol(folder)
    assert report.ok, [x.message for x in report.problems]
    assert report.row_status == ["ok"] * len(p.probes)


def test_same_seed_same_files(tmp_path, lfw, masked):
    a = save_protocol(make_identification(lfw, masked, spec="umr-mp", mode="open", seed=5), tmp_path / "a")
    b = save_protocol(make_identification(lfw, masked, spec="umr-mp", mode="open", seed=5), tmp_path / "b")
    for name in ("gallery.csv", "probes.csv", "protocol.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_gallery_and_probe_variants_are_independent(masked, lfw):
    p = make_identification(masked, lfw, spec="mr-ump", mode="closed", gallery_per_identity=2, probes_per_identity=1)
    assert p.gallery["image_id"].isin(masked.table["image_id"]).all()
    assert p.probes["image_id"].isin(lfw.table["image_id"]).all()
    assert (p.gallery[p.gallery["distractor"] == 0].groupby("identity").size() == 2).all()
    assert (p.probes.groupby("identity").size() == 1).all()


def test_bad_options_and_impossible_requests(lfw, masked):
    with pytest.raises(ProtocolError, match="mode"):
        make_identification(lfw, mode="half-open")
    with pytest.raises(ProtocolError, match="no 1:N form"):
        make_identification(lfw, spec="partial-holistic", spec_params={"region": "Nose", "factor": 0.3})
    single = _memory(lfw_rows([1] * 10), "singles")
    with pytest.raises(InsufficientDataError):
        make_identification(single, mode="closed")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=st.lists(st.integers(1, 5), min_size=6, max_size=20), seed=st.integers(0, 2**32 - 1),
       mode=st.sampled_from(["closed", "open", "megaface"]))
def test_property_probe_never_meets_its_own_source(counts, seed, mode):
    base = lfw_rows(counts)
    ref, probe = _memory(base, "lfw"), _memory(masked_rows(base), "masked")
    try:
        p = make_identification(ref, probe, spec="umr-mp", mode=mode, seed=seed)
    except InsufficientDataError:
        return
    resolver = RootResolver([ref, probe])
    g_roots = dict(zip(p.gallery["image_id"], _roots(resolver, p.gallery["image_id"])))
    for image_id, ident, mate in zip(p.probes["image_id"], p.probes["identity"], p.probes["mate_id"]):
        root = resolver.root(image_id)
        search = [mate] if mate else p.gallery.loc[p.gallery["identity"] == ident, "image_id"]
        assert root not in {g_roots[s] for s in search}
