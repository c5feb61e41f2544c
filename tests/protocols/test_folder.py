import json

import pandas as pd
import pytest

from mfrkit.data.manifest import Manifest, make_table, read_manifest, write_manifest
from mfrkit.protocols import (
    ProtocolError,
    StaleManifestError,
    load_protocol,
    make_identification,
    make_verification,
    protocol_sha256,
    read_info,
    save_protocol,
)

from tests.support.fake_data import lfw_rows


@pytest.fixture
def saved(tmp_path, lfw, masked):
    p = make_verification(lfw, masked, spec="umr-mp", genuine_per_fold=5, impostor_per_fold=5, seed=2)
    return save_protocol(p, tmp_path / "proto"), p


def test_folder_layout_and_info(saved, tmp_path):
    folder, p = saved
    assert sorted(x.name for x in folder.iterdir() if not x.name.startswith(".")) == ["pairs.csv", "protocol.json"]
    text = (folder / "pairs.csv").read_text()
    assert text.startswith("fold,left_id,right_id,label\n0,") and text.endswith("\n") and "\r" not in text
    info = read_info(folder)
    assert info["format"] == "mfrkit-protocol" and info["version"] == 1
    assert {k: info[k] for k in ("name", "kind", "spec", "seed")} == {
        "name": "umr-mp", "kind": "verification", "spec": "umr-mp", "seed": 2}
    assert info["manifests"]["reference"] == {"name": "lfw", "path": "../lfw/manifest.parquet",
                                              "fingerprint": read_manifest(tmp_path / "lfw").fingerprint(),
                                              "rows": 270}
    assert info["manifests"]["probe"]["path"] == "../masked/manifest.parquet"
    assert info["files"]["pairs.csv"]["rows"] == 100
    assert info["counts"]["genuine"] == 50


def test_load_round_trip(saved):
    folder, p = saved
    q = load_protocol(folder)
    pd.testing.assert_frame_equal(q.pairs, p.pairs)
    assert q.sha256 == protocol_sha256(folder) and len(q.sha256) == 64
    assert q.manifest("probe").name == "lfw-masked"
    path = q.abspath("probe", q.pairs["right_id"][0])
    assert path == q.manifest("probe").root / q.pairs["right_id"][0]


def test_identification_folder(tmp_path, lfw, masked):
    p = make_identification(lfw, masked, spec="umr-mp")
    folder = save_protocol(p, tmp_path / "id")
    assert sorted(x.name for x in folder.iterdir() if not x.name.startswith(".")) == ["gallery.csv", "probes.csv", "protocol.json"]
    assert (folder / "probes.csv").read_text().startswith("image_id,identity,mated,mate_id\n")
    q = load_protocol(folder)
    pd.testing.assert_frame_equal(q.gallery, p.gallery)
    pd.testing.assert_frame_equal(q.probes, p.probes)


def test_changed_manifest_is_refused_with_a_clear_message(saved, tmp_path):
    folder, _ = saved
    m = read_manifest(tmp_path / "masked")
    m.table.loc[0, "identity"] = "Somebody_Else"
    write_manifest(m)
    with pytest.raises(StaleManifestError, match="probe manifest.*make / import the protocol again"):
        load_protocol(folder)


def test_added_image_is_refused_but_cached_columns_are_not(saved, tmp_path):
    folder, _ = saved
    m = read_manifest(tmp_path / "lfw")
    m.table["landmark_backend"] = "mediapipe"  # caching landmarks / quality columns
    m.table["quality"] = 0.5
    write_manifest(m)
    load_protocol(folder)
    extra = make_table(lfw_rows([1], prefix="Newcomer"))
    write_manifest(Manifest(pd.concat([m.table, extra], ignore_index=True), m.meta, m.path))
    with pytest.raises(StaleManifestError, match="reference manifest"):
        load_protocol(folder)


def test_manifests_can_be_given_explicitly(saved, tmp_path):
    folder, _ = saved
    moved = tmp_path / "elsewhere"
    (tmp_path / "masked").rename(moved)
    with pytest.raises(ProtocolError, match="no manifest"):
        load_protocol(folder)
    q = load_protocol(folder, {"probe": moved})
    assert q.manifest("probe").path == moved / "manifest.parquet"
    with pytest.raises(StaleManifestError):
        load_protocol(folder, tmp_path / "lfw")  # one manifest for both roles: the probe side does not match


def test_edited_data_file_is_detected(saved):
    folder, _ = saved
    lines = (folder / "pairs.csv").read_text().splitlines(keepends=True)
    (folder / "pairs.csv").write_text("".join(lines[:-1]))
    with pytest.raises(ProtocolError, match="changed after protocol.json"):
        load_protocol(folder)


def test_save_refuses_to_clobber(saved, tmp_path, lfw):
    folder, p = saved
    with pytest.raises(ProtocolError, match="already exists.*--force"):
        save_protocol(p, folder)
    other = tmp_path / "not-a-protocol"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ProtocolError, match="not empty"):
        save_protocol(p, other)
    # Overwriting with another kind leaves no stale table behind.
    save_protocol(make_identification(lfw), folder, overwrite=True)
    assert sorted(x.name for x in folder.iterdir() if not x.name.startswith(".")) == ["gallery.csv", "probes.csv", "protocol.json"]
    assert load_protocol(folder).kind == "identification"


def test_not_a_protocol_folder(tmp_path):
    with pytest.raises(ProtocolError, match="not a protocol folder"):
        load_protocol(tmp_path)
    (tmp_path / "protocol.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ProtocolError, match="not an mfrkit protocol"):
        load_protocol(tmp_path)


def test_ids_with_commas_and_quotes_survive(tmp_path):
    rows = lfw_rows([2] * 4)
    for r in rows:
        r["image_id"] = r["image_id"].replace("_0", ',"0')
    m = Manifest(make_table(rows), {"name": "odd"})
    write_manifest(m, tmp_path / "odd" / "manifest.parquet")
    p = make_verification(m, n_folds=2, genuine_per_fold=2, impostor_per_fold=2)
    q = load_protocol(save_protocol(p, tmp_path / "p"))
    pd.testing.assert_frame_equal(q.pairs, p.pairs)


@pytest.mark.parametrize("fold", ["99999999999999999999999", "1e30", "inf", "-99999999999999999999"])
def test_huge_fold_number_is_a_one_line_error(saved, fold):
    """An edited pairs.csv (its sha256 updated too) with an absurd fold gave an OverflowError."""
    import hashlib

    folder, _ = saved
    lines = (folder / "pairs.csv").read_text().splitlines(keepends=True)
    lines[1] = fold + lines[1][lines[1].index(","):]
    data = "".join(lines).encode()
    (folder / "pairs.csv").write_bytes(data)
    info = json.loads((folder / "protocol.json").read_text())
    info["files"]["pairs.csv"]["sha256"] = hashlib.sha256(data).hexdigest()
    (folder / "protocol.json").write_text(json.dumps(info))
    with pytest.raises(ProtocolError, match="column fold"):
        load_protocol(folder)
