import pandas as pd
import pytest

from mfrkit.data.manifest import (
    Manifest,
    make_table,
    read_manifest,
    safe_relpath,
    write_manifest,
)
from mfrkit.errors import ManifestError


def rows():
    return [
        {"image_id": "a/1.jpg", "path": "a/1.jpg", "identity": "a", "variant": "unmasked", "status": "ok", "sha256": "x", "width": 5},
        {"image_id": "a/2.jpg", "path": "a/2.jpg", "identity": "a", "variant": "masked", "source_id": "a/1.jpg", "status": "ok", "factor": 0.3},
    ]


def test_round_trip_keeps_types_metadata_and_extra_columns(tmp_path):
    table = make_table(rows())
    table["quality_ok"] = [True, False]
    m = Manifest(table, {"name": "demo", "seed": 3})
    write_manifest(m, tmp_path / "manifest.parquet")
    back = read_manifest(tmp_path)
    assert back.meta["name"] == "demo" and back.meta["seed"] == 3 and back.meta["mfrkit_version"]
    assert back.table["width"].tolist()[0] == 5 and pd.isna(back.table["width"].tolist()[1])
    assert back.table["quality_ok"].tolist() == [True, False]
    assert back.root == tmp_path


def test_a_read_without_records_leaves_them_on_disk_and_cannot_be_written_back(tmp_path):
    """Protocols and the bench read masked manifests without synth's per-image
    parameters (most of their bytes); such a manifest must never overwrite the file."""
    table = make_table(rows())
    table["mask_params"] = ['{"color": "blue"}', None]
    path = write_manifest(Manifest(table, {"name": "m"}), tmp_path / "manifest.parquet")
    whole = read_manifest(path)
    light = read_manifest(path, records=False)
    assert "mask_params" in whole.table.columns and whole.left_on_disk == ()
    assert "mask_params" not in light.table.columns and light.left_on_disk == ("mask_params",)
    assert light.fingerprint() == whole.fingerprint()
    before = path.read_bytes()
    with pytest.raises(ManifestError, match="without its mask_params column"):
        write_manifest(light)
    assert path.read_bytes() == before
    # A manifest without record columns reads the same either way, and writes.
    plain = write_manifest(Manifest(make_table(rows()), {}), tmp_path / "plain.parquet")
    assert read_manifest(plain, records=False).left_on_disk == ()


def test_fingerprint_ignores_extra_columns_but_not_labels():
    base = make_table(rows())
    extra = base.copy()
    extra["landmark_backend"] = "mediapipe"
    relabelled = base.copy()
    relabelled.loc[0, "identity"] = "b"
    m = Manifest(base)
    assert m.fingerprint() == Manifest(extra).fingerprint()
    assert m.fingerprint() == Manifest(base.iloc[::-1]).fingerprint()  # row order does not matter
    assert m.fingerprint() != Manifest(relabelled).fingerprint()
    nullable = base.copy()
    nullable["source_id"] = nullable["source_id"].astype("string")  # missing: pd.NA, not None
    assert Manifest(nullable).fingerprint() == m.fingerprint()


@pytest.mark.parametrize("bad", ["../x.jpg", "/etc/passwd", "a/../../x.jpg", "C:/x.jpg", "a\\b.jpg", ""])
def test_paths_escaping_the_root_are_refused(bad):
    with pytest.raises(ManifestError):
        safe_relpath(bad)
    with pytest.raises(ManifestError):
        make_table([{"image_id": "x", "path": bad, "status": "ok"}])


def test_duplicates_and_bad_variants_are_refused():
    with pytest.raises(ManifestError, match="duplicate"):
        make_table([{"image_id": "x", "path": "x.jpg", "status": "ok"}] * 2)
    with pytest.raises(ManifestError, match="variant"):
        make_table([{"image_id": "x", "path": "x.jpg", "status": "ok", "variant": "covered"}])


def test_missing_and_broken_manifests(tmp_path):
    with pytest.raises(ManifestError, match="no manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.parquet").write_bytes(b"PAR1 nonsense")
    with pytest.raises(ManifestError, match="cannot read"):
        read_manifest(tmp_path)
