import numpy as np
import pytest

from mfrkit.data.imageio import write_image
from mfrkit.data.registry import (
    add_dataset,
    get_dataset,
    list_datasets,
    remove_dataset,
    resolve_source,
    scan_registered,
)
from mfrkit.errors import DatasetError, UnknownNameError


@pytest.fixture
def casia(tmp_path):
    root = tmp_path / "CASIA-WebFace"
    for ident in ("0000045", "0000099"):
        for k in range(2):
            write_image(root / ident / f"{k:03d}.jpg", np.full((8, 8, 3), 100, np.uint8))
    return root


def test_add_list_scan_resolve(casia, mfrkit_home):
    entry = add_dataset("casia", casia)
    assert entry.layout == "imagefolder"  # the known dataset's layout
    assert [e.name for e in list_datasets()] == ["casia"]
    manifest, report = scan_registered("casia")
    assert report.n_images == 4 and manifest.path.is_relative_to(mfrkit_home)
    assert not (casia / "manifest.parquet").exists()  # the user's folder is never written to
    assert resolve_source("casia").fingerprint() == manifest.fingerprint()
    assert resolve_source(str(casia)).fingerprint() == manifest.fingerprint()  # its root resolves to it too
    remove_dataset("casia")
    assert list_datasets() == []
    # removing a name that is not registered says so (it used to say how to register it)
    with pytest.raises(DatasetError, match=r"no dataset is registered as 'casia' \(registered: none\)"):
        remove_dataset("casia")


def test_unregistered_path_is_scanned_once_and_cached(casia, mfrkit_home, monkeypatch):
    from mfrkit.data import registry

    scans = []
    real = registry.scan_to_file
    monkeypatch.setattr(registry, "scan_to_file", lambda *a, **k: scans.append(a) or real(*a, **k))
    m = resolve_source(str(casia))
    assert len(m) == 4 and m.path.is_relative_to(mfrkit_home / "cache")
    assert resolve_source(str(casia)).path == m.path and len(scans) == 1  # read, not scanned again
    # Images added or changed since: the folder is scanned again, never served stale.
    write_image(casia / "0000099" / "009.jpg", np.full((8, 8, 3), 50, np.uint8))
    assert len(resolve_source(str(casia))) == 5
    write_image(casia / "0000045" / "000.png", np.full((16, 16, 3), 50, np.uint8))
    (casia / "0000045" / "000.png").replace(casia / "0000045" / "000.jpg")  # same name, new content
    rescanned = resolve_source(str(casia)).table.set_index("path")
    assert rescanned.loc["0000045/000.jpg", "width"] == 16
    assert len(scans) == 1  # updated in place: only the new and changed files were read again


def test_unknown_names_say_how_to_register(mfrkit_home):
    with pytest.raises(DatasetError) as err:
        resolve_source("casia")
    msg = str(err.value)
    assert "mfrkit datasets add casia" in msg and "mfrkit card --known casia-webface" in msg
    with pytest.raises(DatasetError, match="neither a registered dataset"):
        get_dataset("my-private-set")


def test_sources_that_are_no_dataset_say_what_they_are(casia, tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as err:
        resolve_source(str(tmp_path / "typo"))
    assert "datasets add" not in str(err.value)  # no advice to register a path under its own name
    with pytest.raises(DatasetError, match="is an image"):
        resolve_source(str(casia / "0000045" / "000.jpg"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a manifest"):
        resolve_source(str(tmp_path / "notes.txt"))


def test_bad_registrations(casia, tmp_path):
    with pytest.raises(DatasetError, match="invalid dataset name"):
        add_dataset("../evil", casia)
    with pytest.raises(DatasetError, match="not a folder"):
        add_dataset("x", tmp_path / "missing")
    with pytest.raises(UnknownNameError):
        add_dataset("x", casia, layout="nonsense")
    with pytest.raises(DatasetError, match="takes no option labels; its options: identity_regex"):
        add_dataset("x", casia, layout="flat", labels="mfr2_labels.txt")  # refused now, not at scan time
    add_dataset("x", casia)
    with pytest.raises(DatasetError, match="already registered.*--replace"):
        add_dataset("x", tmp_path)


def test_corrupt_registry_file(mfrkit_home):
    mfrkit_home.mkdir(parents=True)
    (mfrkit_home / "datasets.json").write_text("{not json")
    with pytest.raises(DatasetError, match="corrupt"):
        list_datasets()


def test_a_name_pointed_at_another_folder_is_scanned_again(casia, tmp_path, mfrkit_home):
    add_dataset("x", casia)
    assert len(scan_registered("x")[0]) == 4
    remove_dataset("x")
    other = tmp_path / "other"
    write_image(other / "p1" / "a.jpg", np.full((8, 8, 3), 10, np.uint8))
    add_dataset("x", other)
    m = resolve_source("x")
    assert len(m) == 1 and m.meta["root"] == str(other.resolve())  # not the old folder's manifest
    # a whole stem is the identity: with the default (name_0001) pattern "a" has none, and a
    # scan that makes no usable image is refused
    add_dataset("x", other, layout="flat", replace=True, identity_regex=r"^(?P<identity>.+)$")
    assert resolve_source("x").meta["layout"] == "flat"


def test_registering_a_folder_mfrkit_made(tmp_path, mfrkit_home):
    """Such a folder carries its own manifest: `datasets add` no longer suggests a scan
    that would fail, and refuses layout options it would silently ignore."""
    from typer.testing import CliRunner

    from mfrkit.cli import app
    from mfrkit.data.manifest import write_manifest
    from mfrkit.data.sample import build_sample
    from mfrkit.data.scan import scan_dataset

    build_sample(tmp_path / "made", captures=2)
    manifest, _ = scan_dataset(tmp_path / "made", layout="imagefolder", name="made")
    write_manifest(manifest, tmp_path / "made" / "manifest.parquet")
    with pytest.raises(DatasetError, match=r"carries its own manifest; layout options \(variant\) do not apply"):
        add_dataset("made", tmp_path / "made", variant="masked")
    result = CliRunner().invoke(app, ["datasets", "add", "made", str(tmp_path / "made")])
    assert result.exit_code == 0 and "its own manifest is used, nothing to scan" in result.output
    assert "datasets scan" not in result.output
