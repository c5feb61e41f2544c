"""Each layout reader on small trees made in the real layouts."""

from pathlib import Path

import numpy as np
import pytest

from mfrkit.data.imageio import encode_image, write_image
from mfrkit.data.layouts import detect_layout, read_layout
from mfrkit.data.scan import scan_dataset
from mfrkit.errors import DatasetError, UnknownNameError
from mfrkit.jobs import ExecutorSpec

TINY = np.full((6, 6, 3), 128, np.uint8)


def tree(root: Path, files: list[str], corrupt: tuple[str, ...] = ()) -> Path:
    for rel in files:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".txt"):
            continue
        if rel in corrupt:
            p.write_bytes(b"\xff\xd8\xff garbage")
        else:
            write_image(p, TINY)
    return root


def test_imagefolder_casia_style(tmp_path):
    root = tree(tmp_path, ["0000045/001.jpg", "0000045/002.JPG", "0000099/sub/003.png", "0000099/004.webp", "0000099/notes.txt"])
    result = read_layout(root, "imagefolder")
    assert [r["path"] for r in result.records] == ["0000045/001.jpg", "0000045/002.JPG", "0000099/004.webp", "0000099/sub/003.png"]
    assert [r["identity"] for r in result.records] == ["0000045", "0000045", "0000099", "0000099"]


def test_imagefolder_skips_hidden_and_flags_loose_files(tmp_path):
    root = tree(tmp_path, ["a/1.jpg", ".cache/x.jpg", "a/.hidden.jpg", "loose.jpg"])
    result = read_layout(root, "imagefolder")
    assert {r["path"] for r in result.records} == {"a/1.jpg", "loose.jpg"}
    loose = next(r for r in result.records if r["path"] == "loose.jpg")
    assert loose["status"] == "no_identity" and result.warnings


def test_lfw_layout_and_naming_warning(tmp_path):
    root = tree(tmp_path, ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg", "Zico/odd.jpg"])
    result = read_layout(root, "lfw")
    assert {r["identity"] for r in result.records} == {"Aaron_Peirsol", "Zico"}
    assert any("naming" in w for w in result.warnings)


def test_mfr2_labels(tmp_path):
    root = tree(tmp_path, ["Dana_Kim/Dana_Kim_0001.png", "Dana_Kim/Dana_Kim_0002.png", "Dana_Kim/Dana_Kim_0003.png"])
    (root / "mfr2_labels.txt").write_text("Dana_Kim, 1, no-mask\nDana_Kim, 2, mask-3\nDana_Kim, 9, no-mask\n")
    result = read_layout(root, "mfr2")
    by = {r["path"]: r for r in result.records}
    assert by["Dana_Kim/Dana_Kim_0001.png"]["variant"] == "unmasked"
    assert by["Dana_Kim/Dana_Kim_0002.png"]["variant"] == "masked"
    # the raw label kept, its type on mfrkit's axis: "mask-3" maps to none, and is reported
    assert by["Dana_Kim/Dana_Kim_0002.png"]["mask_label"] == "mask-3" and by["Dana_Kim/Dana_Kim_0002.png"]["mask_type"] == "other"
    assert any("'mask-3' (1)" in w and "map to no mfrkit mask type" in w for w in result.warnings)
    assert by["Dana_Kim/Dana_Kim_0003.png"]["variant"] is None  # unlabelled: not guessed
    assert any("not on disk" in w for w in result.warnings) and any("no line" in w for w in result.warnings)


def test_mfr2_malformed_label_line(tmp_path):
    root = tree(tmp_path, ["A/A_0001.png"])
    (root / "mfr2_labels.txt").write_text("A; 1; no-mask\n")
    with pytest.raises(DatasetError, match="mfr2_labels.txt:1"):
        read_layout(root, "mfr2")


def test_mfr2_labels_that_are_not_text(tmp_path):
    root = tree(tmp_path, ["A/A_0001.png"])
    (root / "mfr2_labels.txt").write_bytes(b"\xff\xd8\xff\xe0 a jpeg")
    with pytest.raises(DatasetError, match="UTF-8"):
        read_layout(root, "mfr2")


def test_mfr2_needs_labels(tmp_path):
    with pytest.raises(DatasetError, match="labels"):
        read_layout(tree(tmp_path, ["A/A_0001.png"]), "mfr2")


def test_rmfd_trees(tmp_path):
    root = tree(tmp_path, ["AFDB_face_dataset/wang/1.jpg", "AFDB_face_dataset/li/1.jpg", "AFDB_masked_face_dataset/wang/m1.jpg"])
    result = read_layout(root, "rmfd")
    by = {r["path"]: r for r in result.records}
    assert by["AFDB_masked_face_dataset/wang/m1.jpg"]["variant"] == "masked"
    assert by["AFDB_face_dataset/wang/1.jpg"]["variant"] == "unmasked"
    assert by["AFDB_masked_face_dataset/wang/m1.jpg"]["identity"] == "wang"


def test_rmfd_explicit_dirs_and_missing_masked_tree(tmp_path):
    root = tree(tmp_path, ["plain/a/1.jpg", "covered/a/2.jpg"])
    with pytest.raises(DatasetError, match="masked"):
        read_layout(root, "rmfd")
    result = read_layout(root, "rmfd", masked_dir="covered")
    assert {r["path"]: r["variant"] for r in result.records} == {"covered/a/2.jpg": "masked", "plain/a/1.jpg": "unmasked"}


def test_flat_calfw_and_mlfw_names(tmp_path):
    root = tree(tmp_path, ["Aaron_Peirsol_0001.jpg", "Aaron_Peirsol_0002_0003.jpg", "nonumber.jpg"])
    result = read_layout(root, "flat")
    ids = {r["path"]: r["identity"] for r in result.records}
    assert ids == {"Aaron_Peirsol_0001.jpg": "Aaron_Peirsol", "Aaron_Peirsol_0002_0003.jpg": "Aaron_Peirsol", "nonumber.jpg": None}
    custom = read_layout(root, "flat", identity_regex=r"^(?P<identity>[A-Za-z]+)")
    assert {r["identity"] for r in custom.records} == {"Aaron", "nonumber"}


def test_flat_regex_needs_identity_group(tmp_path):
    with pytest.raises(DatasetError, match="identity"):
        read_layout(tree(tmp_path, ["a_1.jpg"]), "flat", identity_regex=r"(.+)")


@pytest.mark.parametrize(
    "files, expected",
    [
        (["x_0001.jpg", "y_0002.jpg"], "flat"),
        (["Ann/Ann_0001.jpg", "Bob/Bob_0001.jpg"], "lfw"),
        (["0000045/001.jpg", "0000046/001.jpg"], "imagefolder"),
        (["faces/a/1.jpg", "masked_faces/a/1.jpg"], "rmfd"),
    ],
)
def test_auto_detection(tmp_path, files, expected):
    assert detect_layout(tree(tmp_path, files)) == expected


def test_unknown_layout_lists_valid_names(tmp_path):
    with pytest.raises(UnknownNameError, match="imagefolder"):
        read_layout(tree(tmp_path, ["a/1.jpg"]), "casia-style")


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        read_layout(tmp_path / "empty", "imagefolder")
    with pytest.raises(DatasetError, match="does not exist"):
        read_layout(tmp_path / "nowhere", "imagefolder")


def test_scan_keeps_bad_images_as_rows(tmp_path):
    root = tree(tmp_path, ["a/good.png", "a/bad.jpg", "b/good.png"], corrupt=("a/bad.jpg",))
    manifest, report = scan_dataset(root, layout="imagefolder")
    table = manifest.table.set_index("image_id")
    assert len(table) == 3
    assert table.loc["a/bad.jpg", "status"] == "corrupt"
    assert table.loc["a/good.png", "status"] == "ok" and table.loc["a/good.png", "width"] == 6
    assert len(table.loc["a/good.png", "sha256"]) == 64
    assert report.failures == {"corrupt": 1}


def test_scan_is_the_same_with_workers(tmp_path):
    root = tree(tmp_path, [f"id{i}/{j}.png" for i in range(5) for j in range(30)], corrupt=("id3/7.png",))
    one, _ = scan_dataset(root, layout="imagefolder", executor=ExecutorSpec(workers=1))
    two, _ = scan_dataset(root, layout="imagefolder", executor=ExecutorSpec(workers=2))
    assert one.table.equals(two.table)
    assert one.fingerprint() == two.fingerprint()


def test_probe_without_verify_reads_the_header_only(tmp_path, photos):
    from mfrkit.data.scan import probe_image

    data = encode_image(photos["grace_hopper"], ".jpg")
    (tmp_path / "whole.jpg").write_bytes(data)
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 3])
    whole = probe_image(str(tmp_path / "whole.jpg"), verify=False)
    assert whole["status"] == "ok" and (whole["height"], whole["width"]) == photos["grace_hopper"].shape[:2]
    assert whole["sha256"] == probe_image(str(tmp_path / "whole.jpg"))["sha256"] and whole["bytes"] == len(data)
    assert probe_image(str(tmp_path / "trunc.jpg"), verify=False)["status"] == "ok"  # the header is intact
    assert probe_image(str(tmp_path / "trunc.jpg"))["status"] == "corrupt"
    for verify in (True, False):
        assert probe_image(str(tmp_path / "whole.jpg"), verify=verify, max_pixels=1000)["status"] == "too_large"
    assert probe_image(str(tmp_path / "gone.jpg"))["status"] == "missing"


RWMFD = ["RWMFD_part_1/0000/0002.jpg", "RWMFD_part_1/0000/0003.jpg", "RWMFD_part_1/0001/0002.jpg",
         "RWMFD_part_2/0005/0001.jpg", "example/0.jpg"]  # RMFD's raw samples, as in its repository


def test_rmfd_raw_sample_folders_are_masked_trees(tmp_path):
    """RWMFD_part_1/0000/... holds masked photos only: auto read them as imagefolder,
    every one labelled unmasked, without a word."""
    root = tree(tmp_path / "Real-World-Masked-Face-Dataset", RWMFD)
    assert detect_layout(root) == "rmfd"
    manifest, report = scan_dataset(root)  # --layout auto
    t = manifest.table.set_index("path")
    assert manifest.meta["layout"] == "rmfd"
    assert (t.loc[[p for p in RWMFD if p.startswith("RWMFD")], "variant"] == "masked").all()
    assert t.at["RWMFD_part_1/0001/0002.jpg", "identity"] == "0001"
    assert t.at["example/0.jpg", "status"] == "no_identity"


def test_a_masked_folder_read_as_identity_folders_is_warned_and_can_be_labelled(tmp_path):
    root = tree(tmp_path, RWMFD) / "RWMFD_part_1"
    manifest, report = scan_dataset(root)  # auto: identity folders 0000, 0001
    assert manifest.meta["layout"] == "imagefolder" and set(manifest.table["variant"]) == {"unmasked"}
    assert any("suggest masked photos" in w and "variant=masked" in w for w in report.warnings)
    labelled, report = scan_dataset(root, layout="imagefolder", variant="masked")
    assert set(labelled.table["variant"]) == {"masked"} and set(labelled.table["identity"]) == {"0000", "0001"}
    assert not any("suggest masked" in w for w in report.warnings)
    with pytest.raises(DatasetError, match="variant must be one of"):
        read_layout(root, "imagefolder", variant="covered")


@pytest.mark.parametrize("name, masked", [
    ("AFDB_masked_face_dataset", True), ("AFDB_face_dataset", False), ("RWMFD_part_1", True), ("RMFRD", True),
    ("without_mask", False), ("unmasked", False), ("faces", False), ("rmfd_no_mask", False),
])
def test_masked_tree_names(name, masked):
    from mfrkit.data.layouts import _is_masked_dir

    assert _is_masked_dir(name) is masked


def test_mfr2_raw_mask_labels_map_to_mfrkit_types(tmp_path):
    labels = {1: "KN95", 2: "N99", 3: "cloth_black", 4: "surgical_blue", 5: "no-mask", 6: "Surgical Green", 7: "gas"}
    root = tree(tmp_path, [f"A/A_{i:04d}.png" for i in labels])
    (root / "mfr2_labels.txt").write_text("".join(f"A, {i}, {label}\n" for i, label in labels.items()))
    result = read_layout(root, "mfr2")
    got = {r["path"]: (r.get("mask_label"), r.get("mask_type")) for r in result.records}
    assert got == {
        "A/A_0001.png": ("KN95", "kn95"), "A/A_0002.png": ("N99", "n95"), "A/A_0003.png": ("cloth_black", "cloth"),
        "A/A_0004.png": ("surgical_blue", "surgical"), "A/A_0005.png": (None, None),
        "A/A_0006.png": ("Surgical Green", "surgical"), "A/A_0007.png": ("gas", "gas"),
    }  # fmt: skip
    assert not any("map to no" in w for w in result.warnings)


def test_the_taxonomy_names_exactly_mfrkits_mask_types():
    from mfrkit.data.mask_taxonomy import ALIASES, MASK_TYPE_NAMES, OTHER, mask_type_of
    from mfrkit.maskgen.styles import MASK_TYPES

    assert set(MASK_TYPE_NAMES) == set(MASK_TYPES.names())
    assert set(ALIASES.values()) <= set(MASK_TYPE_NAMES)
    assert mask_type_of("FFP2") == "n95" and mask_type_of("kn-95") == "kn95" and mask_type_of("") is None
    assert mask_type_of("visor") == OTHER and mask_type_of("n955") == OTHER
