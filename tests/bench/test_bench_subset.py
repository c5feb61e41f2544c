"""``mfrkit bench --where COND --limit N`` (issue 21 item 2): the per-kind rule, the
seeded sample, refusals, and a subset result that is never read as the full protocol's."""

from __future__ import annotations

import dataclasses
import json
import types

import pandas as pd
import pytest
from tests.support.bench import all_pairs, write_protocol
from tests.support.fake_data import make_dataset
from typer.testing import CliRunner

from mfrkit.bench import benchmark
from mfrkit.bench.benchmark import BenchConfig, run_benchmark
from mfrkit.cli import app
from mfrkit.bench.evaluators import SubsetError, SubsetRequest, subset_of
from mfrkit.bench.report.console import results_tables
from mfrkit.bench.report.leaderboard import collect_leaderboard, collect_results
from mfrkit.errors import MfrkitError
from mfrkit.protocols import load_protocol, make_all_pairs, save_protocol


def config(tmp_path, models, protocols, **kw):
    kw.setdefault("n_boot", 0)
    kw.setdefault("plots", False)
    kw.setdefault("report", False)
    kw.setdefault("cache_dir", tmp_path / "cache")
    return BenchConfig(models=[str(m) for m in models], protocols=[str(p) for p in protocols], out=tmp_path / "runs", **kw)


@pytest.fixture
def big(tmp_path):
    """6 identities x 4 captures, every other one masked (variant / mask_type columns)."""
    return make_dataset(tmp_path / "big", n_ids=6, per_id=4, masked_every=2)


@pytest.fixture
def pairs_protocol(tmp_path, big):
    return write_protocol(tmp_path / "umr-ump", [big], name="umr-ump", pairs=all_pairs(big))


def _variant(manifest) -> dict:
    return dict(zip(manifest.table["image_id"], manifest.table["variant"]))


# --- the rule, per kind ---------------------------------------------------------------------------


def test_a_pair_is_kept_only_when_both_images_pass(big, pairs_protocol):
    proto = load_protocol(pairs_protocol)
    sub = subset_of(proto, SubsetRequest(("variant=unmasked",)))
    variant = _variant(big)
    both = [(l, r) for _, l, r, _ in all_pairs(big) if variant[l] == variant[r] == "unmasked"]
    one = [(l, r) for _, l, r, _ in all_pairs(big) if (variant[l] == "unmasked") != (variant[r] == "unmasked")]
    kept = list(zip(sub.pairs["left_id"], sub.pairs["right_id"]))
    assert kept == both and one and not set(one) & set(kept)  # in the protocol's order; one-sided pairs dropped
    assert sub.name.startswith("umr-ump@subset-") and sub.sha256 != proto.sha256
    rec = sub.info["subset"]
    assert rec["of"] == "umr-ump" and rec["unit"] == "pairs" and rec["kept"] == len(both) and rec["total"] == len(proto.pairs)
    assert sub.info["counts"]["pairs"] == len(both)
    assert len(proto.pairs) == len(all_pairs(big))  # the whole protocol is untouched


def test_limit_is_seeded_reproducible_and_nested(pairs_protocol):
    proto = load_protocol(pairs_protocol)

    def kept(limit, seed):
        sub = subset_of(proto, SubsetRequest((), limit, seed))
        return list(zip(sub.pairs["left_id"], sub.pairs["right_id"]))

    a, b = kept(40, 0), kept(40, 0)
    assert a == b and len(a) == 40
    assert kept(40, 1) != a  # another seed, another sample
    assert set(kept(20, 0)) <= set(a)  # a larger N keeps the smaller sample's pairs
    # the order of the pair list does not change which pairs are drawn
    shuffled = proto.pairs.sample(frac=1.0, random_state=3).reset_index(drop=True)
    again = subset_of(dataclasses.replace(proto, pairs=shuffled), SubsetRequest((), 40, 0))
    assert set(zip(again.pairs["left_id"], again.pairs["right_id"])) == set(a)
    # the tag names the request: the same request, the same name; the seed counts only with a limit
    assert SubsetRequest((), 40, 0).tag() == SubsetRequest((), 40, 0).tag() != SubsetRequest((), 40, 1).tag()
    assert SubsetRequest(("variant=unmasked",), None, 0).tag() == SubsetRequest(("variant=unmasked",), None, 5).tag()


def test_empty_selection_is_an_error_not_a_zero_pair_result(tmp_path, tiny_model, pairs_protocol):
    proto = load_protocol(pairs_protocol)
    with pytest.raises(SubsetError, match="keeps no pairs"):
        subset_of(proto, SubsetRequest(("identity=nobody",)))
    with pytest.raises(SubsetError, match="no column 'colour'"):
        subset_of(proto, SubsetRequest(("colour=red",)))
    with pytest.raises(SubsetError, match="0 impostor"):  # one identity: genuine pairs only
        subset_of(proto, SubsetRequest(("identity=id1",)))
    with pytest.raises(MfrkitError, match="keeps no pairs"):
        run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol], where=["identity=nobody"]))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # refused before a run folder


def test_ijb_templates_are_refused_with_the_reason():
    ijb = types.SimpleNamespace(kind="ijb-templates", name="ijbc")
    with pytest.raises(SubsetError, match="templates"):
        subset_of(ijb, SubsetRequest(limit=10))
    assert subset_of(ijb, SubsetRequest()) is ijb  # nothing asked: nothing refused


def test_identification_keeps_passing_images_and_drops_probes_left_without_a_mate(tmp_path, big):
    t = big.table
    gallery = [i for i in t["image_id"] if i.endswith(("img0.png", "img1.png"))]  # img1: masked
    probes = [(i, True) for i in t["image_id"] if i.endswith(("img2.png", "img3.png"))]
    folder = write_protocol(tmp_path / "search", [big], name="search", gallery=gallery, probes=probes)
    proto = load_protocol(folder)
    sub = subset_of(proto, SubsetRequest(("variant=unmasked",)))
    variant = _variant(big)
    assert list(sub.gallery["image_id"]) == [g for g in gallery if variant[g] == "unmasked"]
    assert list(sub.probes["image_id"]) == [p for p, _ in probes if variant[p] == "unmasked"]
    # the gallery keeps id_k/img0 for every identity, so no unmasked probe loses its mate here;
    # with only id0..id2 enrolled, the other identities' mated probes are dropped
    sub = subset_of(proto, SubsetRequest(("identity=id0,id1,id2",)))
    assert set(sub.probes["image_id"].str[:3]) == {"id0", "id1", "id2"}
    limited = subset_of(proto, SubsetRequest((), 5, 0))
    assert len(limited.probes) == 5 and len(limited.gallery) == len(gallery)  # N probes, the gallery whole
    assert limited.info["subset"]["unit"] == "probes"
    with pytest.raises(SubsetError, match="no gallery image"):
        subset_of(proto, SubsetRequest(("image_id=id0/img2.png",)))


def test_identification_drops_mated_probes_whose_identity_left_the_gallery(tmp_path, big):
    t = big.table
    gallery = [i for i in t["image_id"] if i.endswith("img1.png")]  # masked only
    probes = [(i, True) for i in t["image_id"] if i.endswith("img2.png")]  # unmasked
    folder = write_protocol(tmp_path / "s2", [big], name="s2", gallery=gallery, probes=probes)
    proto = load_protocol(folder)
    # the gallery keeps id0's image only: the other identities' probes have no mate left
    sub = subset_of(proto, SubsetRequest(("identity!=id1,id2,id3,id4,id5",)))
    assert list(sub.gallery["image_id"]) == ["id0/img1.png"] and list(sub.probes["image_id"]) == ["id0/img2.png"]
    sub = subset_of(proto, SubsetRequest(("image_id!=id3/img1.png",)))
    assert "id3/img2.png" not in set(sub.probes["image_id"]) and len(sub.probes) == len(probes) - 1
    assert sub.info["subset"]["detail"]["mated_probes_without_gallery_mate"] == 1


def test_all_pairs_limit_is_per_side_and_one_set_stays_one_set(tmp_path, big):
    ap = save_protocol(make_all_pairs(big, spec="mr-mp", name="ap"), tmp_path / "ap")
    proto = load_protocol(ap)
    sub = subset_of(proto, SubsetRequest((), 8, 0))
    assert len(sub.reference_images) == len(sub.probe_images) == 8
    assert list(sub.reference_images["image_id"]) == list(sub.probe_images["image_id"])
    assert sub.info["counts"]["symmetric"] and sub.info["counts"]["comparisons"] == 8 * 7 // 2
    masked = subset_of(proto, SubsetRequest(("variant=masked",)))
    assert set(masked.reference_images["image_id"]) == {i for i, v in _variant(big).items() if v == "masked"}


# --- recorded, shown, kept apart ------------------------------------------------------------------


def test_subset_is_recorded_shown_and_never_replaces_the_full_run(tmp_path, tiny_model, pairs_protocol, big):
    full = run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol]))
    sub = run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol], where=["variant=unmasked"], limit=20, seed=3))
    (res,) = sub.results
    rec = res.subset
    assert rec is not None and full.results[0].subset is None
    assert rec.where == ("variant=unmasked",) and rec.limit == 20 and rec.seed == 3 and rec.unit == "pairs"
    assert rec.kept == res.metrics["n_pairs"] == 20 and rec.total == len(all_pairs(big)) and rec.of == "umr-ump"
    data = json.loads((res.folder / "metrics.json").read_text())
    assert data["protocol"]["subset"]["kept"] == 20 and data["settings"]["where"] == ["variant=unmasked"]
    run_json = json.loads((sub.folder / "run.json").read_text())
    assert run_json["protocols"][0]["subset"]["of"] == "umr-ump"
    # its own folder in the run, its own name
    assert res.protocol.startswith("umr-ump@subset-") and res.folder.name != "umr-ump"
    scores = pd.read_csv(res.folder / "scores.csv")
    variant = _variant(big)
    assert len(scores) == 20 and all(variant[i] == "unmasked" for i in [*scores["left_id"], *scores["right_id"]])
    # the leaderboard: two rows, the full one still the full protocol's, the subset marked
    board = collect_leaderboard(tmp_path / "runs")
    assert len(board) == 2
    whole = board[board["protocol"] == "umr-ump"].iloc[0]
    part = board[board["protocol"] != "umr-ump"].iloc[0]
    assert whole["n_pairs"] == len(all_pairs(big)) and pd.isna(whole["subset"])
    assert part["n_pairs"] == 20 and "variant=unmasked" in part["subset"] and "20 of" in part["subset"]
    assert part["protocol_sha256"] != whole["protocol_sha256"]
    assert {r.protocol for r in collect_results([tmp_path / "runs"])} == {"umr-ump", res.protocol}
    # the console says so under the table
    _, notes = results_tables([res])
    assert any("is a subset, not the full protocol" in n and "20 of" in n for n in notes)
    _, notes = results_tables(full.results)
    assert not any("subset" in n for n in notes)


def test_transfer_source_named_by_its_full_name_still_transfers(tmp_path, tiny_model, big, pairs_protocol):
    masked = write_protocol(tmp_path / "umr-mp", [big], name="umr-mp", pairs=all_pairs(big))
    run = run_benchmark(config(tmp_path, [tiny_model], [pairs_protocol, masked], limit=30, transfer_from="umr-ump",
                               transfer_far=0.1))
    by = {r.protocol.split("@")[0]: r for r in run.results}
    assert by["umr-ump"].transfer_source is not None
    assert by["umr-mp"].transfer["from"] == by["umr-ump"].protocol


def test_where_and_limit_from_the_command_line_and_a_config_file(monkeypatch, tmp_path):
    seen = {}

    def fake(cfg, **kw):
        seen["cfg"] = cfg
        raise SystemExit(0)

    monkeypatch.setattr(benchmark, "run_benchmark", fake)
    runner = CliRunner()
    result = runner.invoke(app,
                           ["bench", "--model", "a.onnx", "--protocol", "p", "--where", "variant=unmasked",
                            "--where", "mask_type!=cloth", "--limit", "50"])
    assert seen, result.output
    assert seen["cfg"].where == ["variant=unmasked", "mask_type!=cloth"] and seen["cfg"].limit == 50
    study = tmp_path / "study.yaml"
    study.write_text("model: a.onnx\nprotocol: p\nwhere: [variant=unmasked]\nlimit: 10\n")
    seen.clear()
    result = runner.invoke(app, ["bench", "--config", str(study), "--limit", "5"])
    assert seen, result.output
    assert seen["cfg"].where == ["variant=unmasked"] and seen["cfg"].limit == 5  # the flag overrides the file
    seen.clear()
    result = runner.invoke(app,
                           ["bench", "--model", "a.onnx", "--protocol", "p", "--where", "variant"])
    assert not seen and result.exit_code != 0 and "KEY=VALUE" in result.output


def test_identification_and_all_pairs_subsets_score_end_to_end(tmp_path, tiny_model, big):
    t = big.table
    gallery = [i for i in t["image_id"] if i.endswith("img0.png")]
    probes = [(i, True) for i in t["image_id"] if not i.endswith("img0.png")]
    search = write_protocol(tmp_path / "search", [big], name="search", gallery=gallery, probes=probes)
    ap = save_protocol(make_all_pairs(big, spec="mr-mp", name="ap"), tmp_path / "ap")
    run = run_benchmark(config(tmp_path, [tiny_model], [search, ap], where=["identity!=id5"], limit=6, transfer_from=""))
    by = {r.protocol.split("@")[0]: r for r in run.results}
    assert by["search"].metrics["n_probes"] == 6 and by["search"].subset.unit == "probes"
    probes_csv = pd.read_csv(by["search"].folder / "probes.csv")
    assert len(probes_csv) == 6 and not probes_csv["probe_id"].str.startswith("id5/").any()
    images = pd.read_csv(by["ap"].folder / "images.csv")
    assert set(images["role"].value_counts()) == {6} and not images["image_id"].str.startswith("id5/").any()
    assert by["ap"].protocol_info.counts["comparisons"] == by["ap"].metrics["n_pairs"] == 6 * 5 // 2
