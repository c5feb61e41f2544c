"""The journal's shards: one entry a line, decoded per item; older one-line shards still read."""

import json
import warnings

import numpy as np

from mfrkit.jobs.journal import Journal, JournalWarning, shard_text, split_shard

ENTRIES = [["a#mask", [{"x": 1, "text": 'a "quoted"\n]], [ line', "n": np.int64(3)}]], ["b", []], ["c", [{"k": None}]]]


def test_a_shard_is_a_json_list_whose_entries_split_by_line():
    text = shard_text(ENTRIES)
    decoded = json.loads(text)
    assert [k for k, _ in decoded] == ["a#mask", "b", "c"]
    split = split_shard(text)
    assert [(k, json.loads(rows)) for k, rows in split] == [tuple(e) for e in decoded]
    assert split_shard(json.dumps(decoded)) is None  # a one-line shard: decoded whole


def _write_entries(folder):
    """A journal in ``folder`` holding ENTRIES in part 0, two items a shard."""
    journal = Journal(folder, "fp", flush_items=2)
    journal.open()
    for key, rows in ENTRIES:
        journal.add(0, key, rows)
    journal.flush()


def test_rows_come_back_per_item_and_from_one_line_shards(tmp_path):
    _write_entries(tmp_path / "j")
    (tmp_path / "j" / "part-000001-000099.json").write_text(json.dumps([["d", [{"old": True}]]]))  # an earlier version's shard
    again = Journal(tmp_path / "j", "fp")
    again.open()
    assert again.done(0, ["a#mask", "b", "c", "x"]) == {"a#mask", "b", "c"}
    results = again.results()
    assert results.part(0)["a#mask"] == [{"x": 1, "text": 'a "quoted"\n]], [ line', "n": 3}]
    assert results.part(1)["d"] == [{"old": True}]
    assert dict(results.items()) == {"a#mask": results["a#mask"], "b": [], "c": [{"k": None}], "d": [{"old": True}]}


def test_a_damaged_entry_sets_its_shard_aside_and_its_items_run_again(tmp_path):
    _write_entries(tmp_path / "j")
    first = sorted((tmp_path / "j").glob("part-*.json"))[0]
    first.write_text(first.read_text().replace('"x": 1', '"x": 1,,'))
    again = Journal(tmp_path / "j", "fp")
    again.open()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert again.done(0, ["a#mask", "b", "c"]) == {"c"}
    assert any(issubclass(w.category, JournalWarning) for w in caught)
    assert first.with_name(first.name + ".unreadable").exists()
    assert set(again.results().part(0)) == {"c"}
