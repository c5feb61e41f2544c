"""Hostile use of the folder- and file-writing commands: a user's folder or file given
as the output, two jobs at once in one folder, jobs that make nothing."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from tests.support.fake_data import make_dataset
from tests.support.checks import one_line_error, tree_digest

from mfrkit.data.imageio import encode_image
from mfrkit.jobs.lock import FolderInUseError
from mfrkit.jobs.output import OutputFolder


@pytest.fixture
def dataset(tmp_path):
    make_dataset(tmp_path / "ds", n_ids=4, per_id=3)
    return tmp_path / "ds"


def _user_folder(path):
    path.mkdir()
    (path / "losses.jsonl").write_text('{"the user\'s": "own log"}\n')
    (path / "notes.txt").write_text("mine\n")
    return path


def test_train_into_a_users_folder_is_refused_before_the_data_is_read(cli, tmp_path, dataset):
    # was: appended to the user's own losses.jsonl
    mine = _user_folder(tmp_path / "mine")
    before = tree_digest(tmp_path, skip=("mfrkit-home",))
    code, _, err = cli("models", "train", "--data", dataset, "--family", "cosface", "--out", mine)
    one_line_error(code, err, "mine", "not empty and was not made by mfrkit")
    assert tree_digest(tmp_path, skip=("mfrkit-home",)) == before
    assert not (tmp_path / "mfrkit-home" / "landmarks").exists()  # refused before any detection


def test_protocol_make_into_a_users_folder_is_refused(cli, tmp_path, dataset):
    mine = _user_folder(tmp_path / "mine")
    before = tree_digest(tmp_path, skip=("mfrkit-home",))
    code, _, err = cli("protocol", "make", mine, "-m", dataset / "manifest.parquet", "--folds", "2", "--genuine", "2",
                       "--impostor", "2", "--allow-fewer", "--no-register")
    one_line_error(code, err, "mine")
    assert tree_digest(tmp_path, skip=("mfrkit-home",)) == before


@pytest.mark.parametrize("kind", ["train", "protocol"])
def test_a_second_job_in_a_claimed_folder_is_refused_while_the_first_runs(tmp_path, kind):
    # was: two `models train --out X` (or `protocol make X`) at once both exited 0, one's files lost
    if kind == "train":
        from mfrkit.models.run_folder import claim_run_folder

        first = claim_run_folder(tmp_path / "X", "cosface", {"seed": 0}, "f" * 64, ["a", "b"])
        with pytest.raises(FolderInUseError, match="in use"):
            claim_run_folder(tmp_path / "X", "cosface", {"seed": 1}, "f" * 64, ["a", "b"])
    else:
        from mfrkit.protocols.folder import OUTPUT_KIND

        first = OutputFolder(tmp_path / "X", kind=OUTPUT_KIND, fingerprint="1").claim()
        with pytest.raises(FolderInUseError, match="in use"):
            OutputFolder(tmp_path / "X", kind=OUTPUT_KIND, fingerprint="2").claim()
    first.release()


def test_an_existing_export_file_is_not_overwritten_without_force(cli, tmp_path, dataset):
    (tmp_path / "mine.csv").write_text("the user's table\n")
    code, _, err = cli("datasets", "export", dataset, tmp_path / "mine.csv")
    one_line_error(code, err, "mine.csv", "--force")
    assert (tmp_path / "mine.csv").read_text() == "the user's table\n"
    code, _, err = cli("datasets", "export", dataset, tmp_path / "mine.csv", "--force")
    assert code == 0 and "image_id" in (tmp_path / "mine.csv").read_text().splitlines()[0], err


def test_an_existing_pair_list_is_not_overwritten_by_protocol_export(cli, tmp_path):
    from tests.support.bench import all_pairs, write_protocol

    manifest = make_dataset(tmp_path / "data", n_ids=3, per_id=2)
    proto = write_protocol(tmp_path / "p", [manifest], name="p", pairs=all_pairs(manifest))
    (tmp_path / "pairs.csv").write_text("the user's pairs\n")
    code, _, err = cli("protocol", "export", proto, tmp_path / "pairs.csv")
    one_line_error(code, err, "pairs.csv", "--force")
    assert (tmp_path / "pairs.csv").read_text() == "the user's pairs\n"
    code, _, err = cli("protocol", "export", proto, tmp_path / "pairs.csv", "--force")
    assert code == 0 and (tmp_path / "pairs.csv").read_text().startswith("fold,left,right,label"), err


def test_an_existing_card_file_is_not_overwritten_without_force(cli, tmp_path):
    (tmp_path / "card.md").write_text("the user's card\n")
    code, _, err = cli("card", "lfw", "--known", "--out", tmp_path / "card.md")
    one_line_error(code, err, "card.md", "--force")
    assert (tmp_path / "card.md").read_text() == "the user's card\n"
    code, _, err = cli("card", "lfw", "--known", "--out", tmp_path / "card.md", "--force")
    assert code == 0 and (tmp_path / "card.md").read_text() != "the user's card\n", err


def test_pack_of_no_usable_image_exits_1(cli, tmp_path):
    # was: "wrote 1 shard(s)" and exit 0
    for identity in ("a", "b"):
        (tmp_path / "bad" / identity).mkdir(parents=True)
        for k in range(2):
            (tmp_path / "bad" / identity / f"{k}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    code, _, err = cli("pack", "--src", tmp_path / "bad", "--out", tmp_path / "pack", "--align", "none", "-j", "0")
    one_line_error(code, err)


def test_a_bin_of_corrupt_images_imports_nothing_and_exits_1(cli, tmp_path):
    # was: imported with exit 0 and no warning
    (tmp_path / "x.bin").write_bytes(pickle.dumps(([b"not an image"] * 20, [True, False] * 5), protocol=4))
    code, _, err = cli("protocol", "import", tmp_path / "x.bin", tmp_path / "p", "--images", tmp_path / "imgs",
                       "--no-register")
    one_line_error(code, err, "x.bin")


def test_a_bin_of_good_images_still_imports(cli, tmp_path):
    rng = np.random.default_rng(0)
    blobs = [encode_image(rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8), ".png") for _ in range(20)]
    (tmp_path / "x.bin").write_bytes(pickle.dumps((blobs, [True, False] * 5), protocol=4))
    code, _, err = cli("protocol", "import", tmp_path / "x.bin", tmp_path / "p", "--images", tmp_path / "imgs",
                       "--no-register")
    assert code == 0, err
