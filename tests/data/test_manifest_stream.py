"""Manifests streamed by row group (ManifestReader / ManifestWriter), the external sort
under them and the vectorised path check: the same tables, fingerprints and errors as
the in-memory functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import mfrkit.data.manifest_stream as ms
from mfrkit.data.manifest import FINGERPRINT_COLUMNS, Manifest, check_relpaths, make_table, manifest_fingerprint, read_manifest, safe_relpath, write_manifest
from mfrkit.data.manifest_stream import ManifestReader, ManifestWriter, manifest_fingerprint_of
from mfrkit.errors import ManifestError
from mfrkit.external_sort import ExternalSort


def table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"id{int(i):05d}/img.jpg" for i in rng.permutation(n)]  # not in id order: the fingerprint sorts
    return make_table({"image_id": ids, "path": ids, "identity": [f"p{i % 7}" if i % 5 else None for i in range(n)],
                       "variant": "unmasked", "status": ["ok" if i % 9 else "corrupt" for i in range(n)],
                       "sha256": [f"{i:064x}" for i in range(n)], "width": pd.array([i if i % 4 else None for i in range(n)], dtype="Int64"),
                       "quality_ok": pd.array([bool(i % 2) if i % 3 else None for i in range(n)], dtype="boolean")})


def test_written_by_row_group_reads_back_as_write_manifest_writes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(ms, "ROW_GROUP", 100)  # several row groups
    whole = table(1000)
    write_manifest(Manifest(whole, {"name": "x"}), tmp_path / "whole.parquet")
    with ManifestWriter(tmp_path / "streamed.parquet", {"name": "x"}) as writer:
        for start in range(0, len(whole), 333):
            writer.write(whole.iloc[start : start + 333])
    ref, back = read_manifest(tmp_path / "whole.parquet"), read_manifest(tmp_path / "streamed.parquet")
    pd.testing.assert_frame_equal(ref.table, back.table)
    assert ref.meta["fingerprint"] == back.meta["fingerprint"] == manifest_fingerprint(whole)
    with ManifestReader(tmp_path / "streamed.parquet") as reader:
        groups = [reader._file.metadata.row_group(i).num_rows for i in range(reader._file.metadata.num_row_groups)]
        assert len(groups) >= 10 and max(groups) <= 100 and len(reader) == 1000
        parts = list(reader.batches(size=128))
        assert max(len(p) for p in parts) == 128
        pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), ref.table)
        assert reader.fingerprint() == ref.meta["fingerprint"]
        cols = list(FINGERPRINT_COLUMNS)
        assert manifest_fingerprint_of(reader.arrow_batches(cols, 64), cols) == ref.meta["fingerprint"]


def test_an_id_repeated_in_another_row_group_is_refused_and_nothing_is_written(tmp_path):
    rows = table(20)
    with pytest.raises(ManifestError, match="duplicate image_ids"):
        with ManifestWriter(tmp_path / "m.parquet", {}) as writer:
            writer.write(rows.iloc[:10])
            writer.write(rows.iloc[5:15])
    assert not list(tmp_path.iterdir())  # no manifest, no body file left behind


@pytest.mark.parametrize("bad", ["/etc/passwd", "a/../b", "..", "a\\b", "C:x", "é:x", "", None, float("nan"), 3, "a/..", "./..", "a//..//b"])
def test_vectorised_path_check_refuses_what_safe_relpath_refuses(bad):
    with pytest.raises(ManifestError) as expected:
        safe_relpath(bad)
    with pytest.raises(ManifestError) as got:
        check_relpaths(pd.Series(["ok/1.jpg", bad, "b/2.jpg"], dtype=object))
    assert str(got.value) == str(expected.value)


def test_vectorised_path_check_accepts_what_safe_relpath_accepts():
    paths = pd.Series(["a/b.jpg", "train.rec#17", "a..b/..c.png", "x:/y"[1:], "é/ü.jpg", "a/./b.jpg"])
    for p in paths:
        safe_relpath(p)
    check_relpaths(paths)
    check_relpaths(pd.Series([], dtype=object))


@pytest.mark.parametrize("run_rows", [7, 64, 100000])
def test_external_sort_spills_and_merges_to_the_full_sort(run_rows, tmp_path):
    rng = np.random.default_rng(run_rows)
    n = 1000
    data = pa.table({"k": pa.array([f"{v:04d}" for v in rng.integers(0, 300, n)]), "v": pa.array(rng.integers(0, 10, n), pa.int64()),
                     "pos": pa.array(np.arange(n), pa.int64())})
    keys = [("k", "ascending"), ("v", "descending"), ("pos", "ascending")]
    with ExternalSort(data.schema, keys, run_rows=run_rows, tmp_dir=tmp_path) as sort:
        for start in range(0, n, 37):
            sort.add(data.slice(start, 37))
        out = pa.concat_tables(list(sort.sorted(batch_rows=50)))
        spilled = list(tmp_path.iterdir())
    assert out.equals(data.take(pa.compute.sort_indices(data, sort_keys=keys)))
    assert bool(spilled) == (run_rows < n)
    assert not list(tmp_path.iterdir())  # the runs are removed
