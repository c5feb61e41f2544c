"""Hostile cases whose defect was a misleading message or a lost earlier output: every
message says the real reason, and a refusal leaves what was there as it was."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tests.support.fake_data import make_dataset
from tests.support.checks import tree_digest

from mfrkit.errors import MfrkitError


def test_no_threshold_says_the_false_accept_budget_is_zero():
    # was: "needs both genuine and impostor comparisons" with 32 genuine / 124 impostor
    from mfrkit.bench.report.scores import no_threshold_reason

    text = no_threshold_reason(32, 124, far=1e-3)
    assert "allows no false accept among 124 impostor" in text and "needs both" not in text
    assert no_threshold_reason(0, 124) == "needs genuine comparisons (it has none)"
    assert no_threshold_reason(32, 0) == "needs impostor comparisons (it has none)"


def test_an_import_with_unmatched_references_is_named_as_the_cause(tmp_path):
    # was: "it was made from another manifest" for an import that kept unmatched references
    from mfrkit.bench.embed.images import ImageTable
    from mfrkit.bench.evaluators.base import protocol_uids
    from mfrkit.protocols import ProtocolError

    manifest = make_dataset(tmp_path / "ds", n_ids=2, per_id=2)
    imported = SimpleNamespace(name="p", info={"source": {"file": "pairs.txt", "unresolved": 1}})
    with pytest.raises(ProtocolError, match=r"import of pairs.txt kept 1 reference\(s\) that match no image"):
        protocol_uids(ImageTable(), imported)(manifest, ["nobody/x.png"])
    made = SimpleNamespace(name="p", info={"spec": "umr-ump"})
    with pytest.raises(ProtocolError, match="made from another manifest"):
        protocol_uids(ImageTable(), made)(manifest, ["nobody/x.png"])


def test_the_demo_refuses_a_users_file_before_touching_its_earlier_sample(tmp_path, monkeypatch):
    # was: the earlier sample deleted first, then the refusal, `demo` left "not scanned"
    from mfrkit.demo import build_demo_sample

    monkeypatch.setenv("MFRKIT_HOME", str(tmp_path / "home"))
    out = tmp_path / "sample"
    build_demo_sample(out, seed=0, captures=2)
    identity = sorted(p.name for p in out.iterdir() if p.is_dir())[0]
    (out / identity / "mine.jpg").write_bytes((out / identity / f"{identity}_0001.jpg").read_bytes())
    before = tree_digest(out)
    with pytest.raises(MfrkitError, match="mine.jpg"):
        build_demo_sample(out, seed=1, captures=2)  # other options: would replace the earlier sample
    assert tree_digest(out) == before


def test_an_insightface_tar_of_zero_is_explained_where_shown():
    from mfrkit.bench.report.table import INSIGHTFACE_ZERO_NOTE, insightface_zero_shown, parse_metric

    def result(rules, tar):
        return {"model": {"name": "m"}, "protocol": {"name": "p", "kind": "verification"}, "settings": {"rules": rules},
                "metrics": {"tar_at_far": [{"far_target": 1e-3, "tar": tar}],
                            "insightface": {"tar_at_far": [{"far_target": 1e-3, "tar": tar}]}}}

    spec = [parse_metric("tar@far=1e-3")]
    assert "highest-scoring comparison is an impostor" in INSIGHTFACE_ZERO_NOTE  # not "perfect separation": fixed
    assert not insightface_zero_shown([result("mfrkit", 0.0)], spec)
    assert not insightface_zero_shown([result("insightface", 0.9)], spec)
    assert insightface_zero_shown([result("insightface", 0.0)], spec)
