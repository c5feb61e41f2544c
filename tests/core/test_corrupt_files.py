"""Hand-edited or corrupt files mfrkit reads back give one-line errors, never tracebacks,
and never lead a write outside $MFRKIT_HOME."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from mfrkit.data.imageio import write_image
from mfrkit.data.manifest import Manifest, make_table, read_manifest, write_manifest
from mfrkit.data.registry import add_dataset, list_datasets, resolve_source, scan_registered
from mfrkit.errors import DatasetError, ManifestError, MfrkitError
from mfrkit.registry import check_user_name


@pytest.mark.parametrize("name", ["casia", "CASIA-WebFace", "lfw_112", "a.b", "_x", "0", "x" * 64])
def test_plain_identifiers_are_names(name):
    assert check_user_name(name) == name


@pytest.mark.parametrize("name", ["../../x", "..", ".hidden", "a/b", "a\\b", "", "x" * 65, "a b", "é", None, 3])
def test_other_names_are_refused(name):
    with pytest.raises(MfrkitError, match="invalid dataset name"):
        check_user_name(name, "dataset")


@pytest.mark.parametrize("content, message", [
    ("[]", "expected a JSON object"),
    ("null", "expected a JSON object"),
    ('{"x": 5}', "must be a JSON object"),
    ('{"x": {"name": "x", "root": "/tmp", "options": [1]}}', "options must be a JSON object"),
    ('{"x": {"name": "x", "root": 7}}', "root must be a string"),
    ('{"x": {"name": "x"}}', "no root"),
    ('{"x": {"name": "x", "root": "/tmp", "colour": "red"}}', "unknown field"),
    ('{"../../x": {"name": "../../x", "root": "/tmp"}}', "invalid dataset name"),
    ("{not json", "cannot be read"),
])
def test_corrupt_dataset_registry_is_one_line_error(mfrkit_home, content, message):
    mfrkit_home.mkdir(parents=True, exist_ok=True)
    (mfrkit_home / "datasets.json").write_text(content)
    with pytest.raises(DatasetError, match=message):
        list_datasets()


def test_a_registered_name_never_points_outside_home(tmp_path, mfrkit_home):
    root = tmp_path / "data"
    for ident in ("a", "b"):
        write_image(root / ident / "1.jpg", np.full((8, 8, 3), 90, np.uint8))
    with pytest.raises(DatasetError, match="invalid dataset name"):
        add_dataset("../../x", root)
    # A hand-edited registry cannot smuggle the name in either.
    mfrkit_home.mkdir(parents=True, exist_ok=True)
    (mfrkit_home / "datasets.json").write_text(json.dumps({"../../x": {"name": "../../x", "root": str(root)}}))
    with pytest.raises(DatasetError, match="invalid dataset name"):
        scan_registered("../../x")
    with pytest.raises(DatasetError):
        resolve_source("../../x")
    assert not (mfrkit_home / "datasets" / ".." / ".." / "x").exists()
    assert not (tmp_path / "x").exists()


def _write_with_meta(path, meta_json: bytes):
    m = Manifest(make_table([{"image_id": "a.jpg", "path": "a.jpg", "status": "ok"}]), {"name": "m"})
    write_manifest(m, path)
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({b"mfrkit": meta_json}), path)


@pytest.mark.parametrize("meta, message", [
    (b"[1, 2]", "metadata must be a JSON object"),
    (b'{"root": 5}', "'root' must be a string"),
    (b'{"layout_options": [1]}', "'layout_options' must be a JSON object"),
])
def test_malformed_manifest_metadata_is_one_line_error(tmp_path, meta, message):
    path = tmp_path / "manifest.parquet"
    _write_with_meta(path, meta)
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)
    with pytest.raises(ManifestError, match=message):
        resolve_source(tmp_path)  # a folder holding the manifest


def test_manifest_root_of_the_wrong_type_in_memory():
    m = Manifest(make_table([{"image_id": "a.jpg", "path": "a.jpg", "status": "ok"}]), {"root": 5})
    with pytest.raises(ManifestError, match="'root' must be a folder path"):
        m.root
