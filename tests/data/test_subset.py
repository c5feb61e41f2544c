"""``--where`` / ``--limit`` (issue 21 item 2): the subset rules, and synth masking exactly
the unmasked photos of an MFR2-style dataset."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from mfrkit.cli import app
from mfrkit.data.manifest import read_manifest
from mfrkit.data.sample import build_sample
from mfrkit.data.subset import parse_condition, select_rows
from mfrkit.errors import DatasetError

runner = CliRunner()


def _table(n=20):
    return pd.DataFrame({
        "image_id": [f"p{i:02d}" for i in range(n)],
        "identity": [f"id{i % 4}" for i in range(n)],
        "variant": ["masked" if i % 3 == 0 else "unmasked" for i in range(n)],
        "mask_type": ["kn95" if i % 3 == 0 else None for i in range(n)],
        "factor": [0.25 * (i % 2) for i in range(n)],
    })  # fmt: skip


def test_where_keeps_the_rows_meeting_every_condition(tmp_path):
    t = _table()
    assert select_rows(t, ["variant=unmasked"])["variant"].eq("unmasked").all()
    assert len(select_rows(t, ["variant=unmasked"])) == sum(i % 3 != 0 for i in range(20))
    both = select_rows(t, ["variant=unmasked", "identity=id1,id2"])
    assert set(both["identity"]) == {"id1", "id2"} and both["variant"].eq("unmasked").all()
    assert set(select_rows(t, ["identity!=id0,id1"])["identity"]) == {"id2", "id3"}
    assert select_rows(t, ["mask_type=none"])["variant"].eq("unmasked").all()  # a missing value is "none"
    assert select_rows(t, ["factor=0.25"])["factor"].eq(0.25).all()
    ids = tmp_path / "ids.txt"
    ids.write_text("# the held-out identities\nid3\n\nid0\n")
    assert set(select_rows(t, [f"identity=@{ids}"])["identity"]) == {"id0", "id3"}


def test_where_errors_name_the_problem(tmp_path):
    t = _table()
    with pytest.raises(DatasetError, match="no column 'varient'.*variant"):
        select_rows(t, ["varient=unmasked"])
    with pytest.raises(DatasetError, match="no row"):
        select_rows(t, ["variant=partial"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_condition("variant")
    with pytest.raises(ValueError, match="cannot read the value list"):
        parse_condition(f"identity=@{tmp_path / 'missing.txt'}")


def test_limit_is_a_seeded_sample_independent_of_row_order_and_nested():
    t = _table(50)
    five = select_rows(t, limit=5, seed=3)
    assert len(five) == 5 and list(five.index) == sorted(five.index)  # source order kept
    shuffled = t.sample(frac=1.0, random_state=1)
    assert set(select_rows(shuffled, limit=5, seed=3)["image_id"]) == set(five["image_id"])
    assert set(five["image_id"]) <= set(select_rows(t, limit=12, seed=3)["image_id"])
    assert set(select_rows(t, limit=5, seed=4)["image_id"]) != set(five["image_id"])
    assert len(select_rows(t, ["variant=masked"], limit=100)) == 17  # fewer rows than the limit: all


@pytest.fixture
def mfr2(tmp_path):
    """An MFR2-style folder made from the sample: identity folders and mfr2_labels.txt,
    captures 1, 3, 4 unmasked and 2 (KN95) masked per identity."""
    root = tmp_path / "mfr2"
    build_sample(root, captures=4, seed=0)
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    lines = [f"{n}, {k}, {'KN95' if k == 2 else 'no-mask'}" for n in names for k in range(1, 5)]
    (root / "mfr2_labels.txt").write_text("\n".join(lines) + "\n")
    return root


def test_synth_where_variant_unmasked_masks_exactly_the_unmasked_photos(mfr2, tmp_path):
    out = tmp_path / "masked"
    result = runner.invoke(app, ["synth", "--src", str(mfr2), "--where", "variant=unmasked", "--mask", "surgical",
                                 "--renderer", "template", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    masked = read_manifest(out)
    ok = masked.table[masked.table["status"] == "ok"]
    unmasked_ids = {p for p in ok["source_id"]}
    expected = {f"{n}/{n}_{k:04d}.jpg" for n in {s.split("/")[0] for s in unmasked_ids} for k in (1, 3, 4)}
    assert unmasked_ids == expected and len(masked.table) == 6  # no masked source, no row for it
    assert set(ok["mask_type"]) == {"surgical"}
    assert masked.meta["source_subset"]["where"] == ["variant=unmasked"] and masked.meta["source_subset"]["rows"] == 6
    assert "Subset of the source: 6 of 8 source rows, selected by `--where variant=unmasked`" in (out / "DATA_CARD.md").read_text()
    # --limit on top: a seeded sample of the unmasked photos, recorded too
    out2 = tmp_path / "masked2"
    result = runner.invoke(app, ["synth", "--src", str(mfr2), "--where", "variant=unmasked", "--limit", "2", "--mask", "surgical",
                                 "--renderer", "template", "--out", str(out2)])  # fmt: skip
    assert result.exit_code == 0, result.output
    two = read_manifest(out2).table
    assert len(two) == 2 and set(two["source_id"]) <= expected
    result = runner.invoke(app, ["synth", "--src", str(mfr2), "--where", "colour=red", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "no column 'colour'" in str(result.exception)  # main() prints it on one line
