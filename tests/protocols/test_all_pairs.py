"""All-pairs protocols: counts and exclusions against a brute-force enumeration."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mfrkit import cli
from mfrkit.protocols import (
    InsufficientDataError,
    PairFormatError,
    ProtocolError,
    export_protocol,
    load_protocol,
    make_all_pairs,
    save_protocol,
    summarize,
    validate_protocol,
)
from mfrkit.protocols.all_pairs import comparison_mask, protocol_counts

from tests.support.fake_data import lfw_rows, masked_rows, partial_rows, save


def brute_force(reference, probe, spec_variants, allow_same_source=False):
    """Every (reference row, probe row) of the manifests, enumerated one by one.

    ``spec_variants``: (reference variant, probe variant). Units follow ``source_id``
    through both manifests; returns the counts and the genuine (left, right) pairs. One
    set of images on both sides (same manifest and variant): each unordered pair once
    (self pairs included in ``cross``), genuine pairs as frozensets."""
    parent = {}
    for m in (reference, probe):
        for iid, src in zip(m.table["image_id"], m.table["source_id"]):
            if src is not None and not pd.isna(src):
                parent.setdefault(iid, src)

    def unit(iid):
        while iid in parent:
            iid = parent[iid]
        return iid

    def side(m, variant):
        t = m.table[(m.table["variant"] == variant) & (m.table["status"] == "ok")]
        return list(zip(t["image_id"], t["identity"]))

    refs, probes = side(reference, spec_variants[0]), side(probe, spec_variants[1])
    same_manifest = reference.fingerprint() == probe.fingerprint()
    counts = dict.fromkeys(("cross", "excluded_self", "excluded_same_source", "genuine", "impostor"), 0)
    genuine = set()
    symmetric = same_manifest and spec_variants[0] == spec_variants[1]
    grid = itertools.combinations_with_replacement(refs, 2) if symmetric else itertools.product(refs, probes)
    for (r, ir), (q, iq) in grid:
        counts["cross"] += 1
        if same_manifest and r == q:
            counts["excluded_self"] += 1
        elif unit(r) == unit(q) and not allow_same_source:
            counts["excluded_same_source"] += 1
        elif ir == iq:
            counts["genuine"] += 1
            genuine.add(frozenset((r, q)) if symmetric else (r, q))
        else:
            counts["impostor"] += 1
    counts["comparisons"] = counts["genuine"] + counts["impostor"]
    counts["references"], counts["probes"] = len(refs), len(probes)
    return counts, genuine


def small(tmp_path, counts, mask_types=("surgical", "cloth")):
    base = lfw_rows(counts)
    return save(tmp_path / "u", base, "u"), save(tmp_path / "m", masked_rows(base, mask_types), "m"), base


@pytest.mark.parametrize("spec, variants, allow", [
    ("umr-mp", ("unmasked", "masked"), False),
    ("umr-ump", ("unmasked", "unmasked"), False),
    ("mr-mp", ("masked", "masked"), False),
    ("mr-mp", ("masked", "masked"), True),
    ("mr-ump", ("masked", "unmasked"), False),
])
def test_counts_and_exclusions_equal_brute_force(tmp_path, spec, variants, allow):
    unmasked, masked, _ = small(tmp_path, [4, 3, 1, 2, 5])
    both = save(tmp_path / "both", unmasked.table.to_dict("records") + masked.table.to_dict("records"), "both")
    for ref, probe in ((unmasked, masked), (both, both)):
        if spec == "umr-ump":
            ref = probe = unmasked if ref is unmasked else both
        if spec == "mr-mp":
            ref = probe = masked if ref is unmasked else both
        if spec == "mr-ump":
            ref, probe = (masked, unmasked) if ref is unmasked else (both, both)
        p = make_all_pairs(ref, probe, spec=spec, allow_same_source=allow)
        want, genuine = brute_force(ref, probe, variants, allow)
        got = protocol_counts(p)
        assert {k: got[k] for k in want} == want
        # the grid mask the bench uses gives the same comparisons
        labels, keep = comparison_mask(p.reference_images, p.probe_images,
                                       same_images=ref.fingerprint() == probe.fingerprint(), allow_same_source=allow)
        assert int(keep.sum()) == want["comparisons"] and int((labels & keep).sum()) == want["genuine"]
        rows, cols = np.nonzero(labels & keep)
        pairs = zip(p.reference_images["image_id"][rows], p.probe_images["image_id"][cols])
        assert {frozenset(x) if got["symmetric"] else x for x in pairs} == genuine
        assert got["symmetric"] == (ref is probe and variants[0] == variants[1])
        if got["symmetric"]:
            assert got["ordered"]["comparisons"] == 2 * got["comparisons"]


def test_partial_spec_and_units_across_manifests(tmp_path):
    base = lfw_rows([3, 2, 2])
    unmasked = save(tmp_path / "u", base, "u")
    part = save(tmp_path / "p", partial_rows(base, regions=("Nose",), factors=(0.3,)), "p")
    p = make_all_pairs(unmasked, part, spec="partial-holistic", spec_params={"region": "Nose", "factor": 0.3})
    want, _ = brute_force(unmasked, part, ("unmasked", "partial"))
    got = protocol_counts(p)
    assert {k: got[k] for k in want} == want
    # each partial crop is excluded against its own source photo only
    assert got["excluded_same_source"] == 7 and got["excluded_self"] == 0
    assert (p.probe_images["unit"] == [r["image_id"] for r in base]).all()


def test_max_per_identity_is_seeded_and_bounded(tmp_path):
    unmasked, masked, _ = small(tmp_path, [6, 6, 2, 5])
    a = make_all_pairs(unmasked, masked, spec="umr-mp", max_per_identity=3, seed=1)
    b = make_all_pairs(unmasked, masked, spec="umr-mp", max_per_identity=3, seed=1)
    c = make_all_pairs(unmasked, masked, spec="umr-mp", max_per_identity=3, seed=2)
    for t in (a.reference_images, a.probe_images):
        assert t.groupby("identity").size().max() <= 3
    assert a.reference_images.equals(b.reference_images) and a.probe_images.equals(b.probe_images)
    assert not (a.reference_images.equals(c.reference_images) and a.probe_images.equals(c.probe_images))
    assert (a.reference_images.groupby("identity").size() == [3, 3, 2, 3]).all()
    assert a.info["params"]["max_per_identity"] == 3
    with pytest.raises(ProtocolError, match="max_per_identity"):
        make_all_pairs(unmasked, masked, spec="umr-mp", max_per_identity=0)


def test_no_genuine_comparison_is_refused(tmp_path):
    unmasked, masked, _ = small(tmp_path, [1, 1, 1])
    with pytest.raises(InsufficientDataError, match="0 genuine"):
        make_all_pairs(unmasked, masked, spec="umr-mp")  # each probe is a copy of the only reference


def test_folder_round_trip_validate_show_export(tmp_path):
    unmasked, masked, _ = small(tmp_path, [4, 3, 2])
    p = make_all_pairs(unmasked, masked, spec="umr-mp", seed=3)
    folder = save_protocol(p, tmp_path / "proto")
    assert not (folder / "pairs.csv").exists()
    assert sorted(f.name for f in folder.iterdir() if not f.name.startswith(".")) == ["probe_images.csv", "protocol.json", "reference_images.csv"]
    q = load_protocol(folder)
    assert q.kind == "all-pairs" and q.reference_images.equals(p.reference_images.astype(str))
    counts = q.info["counts"]
    assert counts["cross"] == 9 * 18 and counts["excluded_same_source"] == 18
    assert counts["genuine"] == (16 + 9 + 4) * 2 - 18 and counts["impostor"] == 9 * 18 - (16 + 9 + 4) * 2

    report = validate_protocol(folder, check_files=False)
    assert report.ok, [p.message for p in report.problems]
    assert report.counts == counts and len(report.row_status) == 18 and len(report.gallery_status) == 9

    tables = summarize(q)
    comp = dict(zip(tables["comparisons"]["what"], tables["comparisons"]["count"]))
    assert comp["genuine"] == counts["genuine"] and comp["excluded: same source photo"] == 18
    v = tables["variants"]
    assert set(v["right"]) == {"masked:cloth", "masked:surgical"}
    assert v["genuine"].sum() == counts["genuine"] and v["impostor"].sum() == counts["impostor"]

    out = tmp_path / "all.csv"
    export_protocol(q, out, "csv")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == counts["comparisons"] and sum(int(r["label"]) for r in rows) == counts["genuine"]
    assert all(r["left"].startswith("u/") and r["right"].startswith("m/") for r in rows)
    # a masked copy is never next to its own source
    assert not any(r["right"].split("/", 2)[2][:-4] == r["left"][2:-4] for r in rows)
    with pytest.raises(PairFormatError, match="csv only"):
        export_protocol(q, tmp_path / "pairs.txt", "lfw")


def test_validate_finds_edited_lists(tmp_path):
    unmasked, masked, _ = small(tmp_path, [3, 3])
    p = make_all_pairs(unmasked, masked, spec="umr-mp")
    p.probe_images.loc[0, "unit"] = "someone/else.jpg"
    save_protocol(p, tmp_path / "a")  # counts are recomputed from the edited list...
    report = validate_protocol(tmp_path / "a", check_files=False)
    assert not report.ok and {pr.kind for pr in report.errors} == {"unit_mismatch"}
    # ...and a list edited after saving no longer matches its recorded sha256
    (tmp_path / "a" / "probe_images.csv").write_text("image_id,identity,unit\n")
    with pytest.raises(ProtocolError, match="sha256 mismatch"):
        load_protocol(tmp_path / "a")
    q = make_all_pairs(unmasked, masked, spec="umr-mp")
    q.reference_images = pd.concat([q.reference_images, q.reference_images.iloc[:1]], ignore_index=True)
    report = validate_protocol(q, check_files=False)
    assert "duplicate_image" in {pr.kind for pr in report.errors}
    assert "counts_mismatch" not in {pr.kind for pr in report.errors}  # nothing recorded in memory


def test_cli_make_show_validate_export(tmp_path, lfw_files, masked_files, monkeypatch):
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli.app, ["protocol", *map(str, args)])

    out = tmp_path / "ap"
    result = run("make", out, "-m", lfw_files.path, "-p", masked_files.path, "--spec", "umr-mp", "--all-pairs",
                 "--max-per-identity", 2)
    assert result.exit_code == 0, result.output
    p = load_protocol(out)
    c = p.info["counts"]
    assert f"{c['genuine']:,} genuine" in result.output and "same-source excluded" in result.output
    assert p.kind == "all-pairs" and p.reference_images.groupby("identity").size().max() == 2
    result = run("show", out)
    assert result.exit_code == 0 and "excluded: same source photo" in result.output
    result = run("validate", out)
    assert result.exit_code == 0 and "0 image(s) would be failures" in result.output
    result = run("export", out, tmp_path / "x.csv")
    assert result.exit_code == 0 and f"{c['comparisons']:,} rows" in result.output
    assert (tmp_path / "x.csv").read_text().count("\n") == c["comparisons"] + 1
    monkeypatch.setattr("mfrkit.cli.protocol._EXPORT_LIMIT", 10)
    result = run("export", out, tmp_path / "y.csv")
    assert result.exit_code != 0 and "--force" in result.output and not (tmp_path / "y.csv").exists()
    assert run("export", out, tmp_path / "y.csv", "--force").exit_code == 0
    result = run("make", tmp_path / "bad", "-m", lfw_files.path, "--max-per-identity", 2)
    assert result.exit_code != 0 and "--all-pairs" in result.output
