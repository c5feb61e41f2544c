"""Hostile inputs: unbounded or special files, links out of a dataset, regexes that
backtrack for ever, YAML that is broken or builds objects, a Ray address nothing serves."""

from __future__ import annotations

import os

import pytest
from tests.support.fake_data import make_dataset
from tests.support.checks import one_line_error, tree_digest


@pytest.fixture
def registered(cli, tmp_path):
    make_dataset(tmp_path / "ds", n_ids=3, per_id=2)
    (tmp_path / "ds" / "manifest.parquet").unlink()
    assert cli("datasets", "add", "r01", tmp_path / "ds", "--layout", "imagefolder")[0] == 0
    assert cli("datasets", "scan", "r01")[0] == 0
    return tmp_path / "ds"


def test_an_endless_stream_is_refused_unread(cli, registered, tmp_path):
    # was: /dev/zero read whole until the kernel killed it (21.8 GB)
    before = tree_digest(tmp_path, skip=("mfrkit-home",))
    code, _, err = cli("protocol", "import", "/dev/zero", tmp_path / "P", "-f", "mlfw", "-m", "r01", "--no-register")
    one_line_error(code, err, "/dev/zero", "not a regular file")
    assert tree_digest(tmp_path, skip=("mfrkit-home",)) == before and not (tmp_path / "P").exists()


def test_a_pair_list_over_its_cap_names_the_limit_and_how_to_raise_it(cli, registered, tmp_path, monkeypatch):
    (tmp_path / "pairs.txt").write_text("a/a_1.png\tb/b_1.png\t0\n" * 200)
    monkeypatch.setenv("MFRKIT_MAX_PAIRS_BYTES", "1000")
    code, _, err = cli("protocol", "import", tmp_path / "pairs.txt", tmp_path / "P", "-f", "mlfw", "-m", "r01",
                       "--no-register")
    one_line_error(code, err, "pairs.txt", "MFRKIT_MAX_PAIRS_BYTES")
    assert not (tmp_path / "P").exists()


def test_a_fifo_pair_list_is_refused_without_blocking(cli, registered, tmp_path):
    os.mkfifo(tmp_path / "pairs.fifo")  # opening it to read would wait for a writer for ever
    code, _, err = cli("protocol", "import", tmp_path / "pairs.fifo", tmp_path / "P", "-f", "mlfw", "-m", "r01",
                       "--no-register")
    one_line_error(code, err, "pairs.fifo")


def test_a_folder_link_out_of_the_dataset_is_skipped_and_counted(cli, tmp_path):
    # was: p1/root -> / catalogued the whole file system under one identity
    make_dataset(tmp_path / "ds", n_ids=2, per_id=2)
    (tmp_path / "ds" / "manifest.parquet").unlink()
    make_dataset(tmp_path / "outside", n_ids=1, per_id=3, seed=1)
    ids = sorted(p.name for p in (tmp_path / "ds").iterdir() if p.is_dir())
    os.symlink(tmp_path / "outside" / sorted(p.name for p in (tmp_path / "outside").iterdir() if p.is_dir())[0],
               tmp_path / "ds" / ids[0] / "root")
    assert cli("datasets", "add", "linked", tmp_path / "ds", "--layout", "imagefolder")[0] == 0
    code, out, err = cli("datasets", "scan", "linked")
    assert code == 0, err
    assert "4 images" in out and "1 folder link(s) lead out of the dataset folder and were not followed" in out
    # asked for, the link is followed
    assert cli("datasets", "add", "followed", tmp_path / "ds", "--layout", "imagefolder", "--follow-links")[0] == 0
    code, out, err = cli("datasets", "scan", "followed")
    assert code == 0 and "7 images" in out, out + err


def test_a_catastrophic_identity_regex_is_refused_at_add(cli, tmp_path):
    # was: ^(?P<identity>(a+)+)$ hung the scan
    (tmp_path / "flat").mkdir()
    code, _, err = cli("datasets", "add", "r03", tmp_path / "flat", "--layout", "flat",
                       "--option", "identity_regex=^(?P<identity>(a+)+)$")
    one_line_error(code, err, "identity_regex", "repeat")
    assert cli("datasets", "list")[1].count("r03") == 0


def test_a_regex_match_runs_under_a_deadline(monkeypatch):
    # a pattern the static check cannot see (compiled here directly) still cannot hang a scan
    import re

    from mfrkit.user_regex import UnsafeRegexError, bounded_matches

    monkeypatch.setenv("MFRKIT_REGEX_SECONDS", "0.2")
    with pytest.raises(UnsafeRegexError, match="identity_regex.*MFRKIT_REGEX_SECONDS"):
        bounded_matches(re.compile(r"^(.*)*x$"), ["a" * 40], what="identity_regex")


@pytest.mark.parametrize("value", ["width=[", "width=[unclosed", 'width=!!python/object/apply:os.system ["touch PWNED"]'])
def test_broken_or_object_building_yaml_options_are_one_line(cli, tmp_path, value):
    # was: raw ParserError / ConstructorError tracebacks (nothing executed, but no message)
    code, _, err = cli("models", "train", "--data", tmp_path / "nowhere", "--family", "cosface", "--option", value,
                       "--out", tmp_path / "run")
    one_line_error(code, err, "--option", "YAML")
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("address, needle", [("127.0.0.1:1", "cannot reach a Ray cluster"), ("ray://nohost:10001", "ray")])
def test_a_ray_address_nothing_serves_is_one_line_not_a_hang(cli, registered, tmp_path, monkeypatch, address, needle):
    # was: 127.0.0.1:1 retried for ever; ray://... a raw "Ray Client requires ray[client]"
    pytest.importorskip("ray")
    monkeypatch.setenv("MFRKIT_RAY_CONNECT_TIMEOUT", "5")
    code, _, err = cli("synth", "--src", "r01", "--out", tmp_path / "s", "--executor", "ray", "--ray-address", address)
    one_line_error(code, err, needle)
