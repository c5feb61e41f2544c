"""The protocol registry: names, registration by make/import, resolution anywhere, removed folders."""

import shutil

import pytest
from typer.testing import CliRunner

from mfrkit import cli
from mfrkit.protocols import ProtocolError, load_protocol, resolve_protocol
from mfrkit.protocols.registry import (
    check_name,
    get_protocol,
    list_protocols,
    lookup,
    protocol_folder,
    register_protocol,
    registry_dir,
    remove_protocol,
)
from mfrkit.protocols.workflow import make_protocol_folder

runner = CliRunner()


def run(*args):
    return runner.invoke(cli.app, ["protocol", *map(str, args)])


def make(tmp_path, manifest, folder, spec="umr-ump", probe=None, **kw):
    return make_protocol_folder(tmp_path / folder, manifest.path, probe.path if probe else None, spec=spec, seed=0,
                                n_folds=2, genuine_per_fold=3, impostor_per_fold=3, **kw)[0][1]


@pytest.mark.parametrize("name", ["lfw", "lfw/umr-mp", "casia-webface/partial-same_leye_f0.3_centered", "a.b+c/d_e"])
def test_valid_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/../b", "/abs", "a/b/c", ".hidden", "a/.b", "a b", "a\\b", "a/", "x" * 65, "a:b"])
def test_invalid_names_are_refused_and_never_leave_the_registry(name, tmp_path):
    with pytest.raises(ProtocolError, match="invalid protocol name"):
        check_name(name)
    assert get_protocol(name) is None  # a lookup never builds a path from a bad name


def test_make_registers_dataset_slash_spec_and_the_name_resolves_anywhere(tmp_path, lfw, masked):
    p = make(tmp_path, lfw, "p1", register=True)
    assert p.registered_as == "lfw/umr-ump"
    entry = get_protocol("lfw/umr-ump")
    assert entry.folder == str((tmp_path / "p1").resolve()) and entry.kind == "verification" and entry.status() == "ok"
    assert (registry_dir() / "lfw" / "umr-ump.json").is_file()
    q = make(tmp_path, masked, "p2", spec="mr-mp", register=True)
    assert q.registered_as == "lfw-masked/mr-mp"
    # exact name, and a unique last part
    assert resolve_protocol("lfw/umr-ump").folder == (tmp_path / "p1").resolve()
    assert resolve_protocol("mr-mp").folder == (tmp_path / "p2").resolve()
    assert resolve_protocol("mr-mp").registered_as == "lfw-masked/mr-mp"
    assert protocol_folder("umr-ump") == (tmp_path / "p1").resolve()
    # "umr-mp" is not a suffix match of ".../mr-mp": parts are compared whole
    assert lookup("umr-mp") is None and lookup("p-mp") is None


def test_several_matches_are_an_error_listing_them(tmp_path, lfw, masked):
    make(tmp_path, lfw, "a", spec="umr-mp", probe=masked, register=True)
    make(tmp_path, lfw, "b", spec="umr-mp", probe=masked, register="other/umr-mp")
    with pytest.raises(ProtocolError, match="matches 2 registered protocols: lfw/umr-mp, other/umr-mp"):
        resolve_protocol("umr-mp")
    assert resolve_protocol("other/umr-mp").folder == (tmp_path / "b").resolve()


def test_a_spec_with_manifests_is_drawn_from_them_and_without_needs_them(tmp_path, lfw, masked):
    # nothing registered: the spec path, as before the registry existed
    with pytest.raises(ProtocolError, match="needs the manifest"):
        resolve_protocol("mr-mp")
    make(tmp_path, masked, "reg", spec="mr-mp", register=True)
    drawn = resolve_protocol("mr-mp", masked.path, n_folds=2, genuine_per_fold=3, impostor_per_fold=3)
    assert drawn.folder is None and drawn.registered_as is None  # made in memory
    assert resolve_protocol("mr-mp").folder == (tmp_path / "reg").resolve()


def test_a_folder_removed_by_hand_is_reported(tmp_path, lfw):
    make(tmp_path, lfw, "gone", register=True)
    shutil.rmtree(tmp_path / "gone")
    with pytest.raises(ProtocolError, match=r"registered at .*gone, which no longer holds a protocol \(removed by hand\?\)"):
        resolve_protocol("umr-ump")
    with pytest.raises(ProtocolError, match="no longer holds a protocol"):
        resolve_protocol("lfw/umr-ump")
    assert get_protocol("lfw/umr-ump").status() == "missing"
    result = run("list")
    assert result.exit_code == 0 and "folder removed" in result.output
    # its name can be taken again
    make(tmp_path, lfw, "again", register=True)
    assert protocol_folder("lfw/umr-ump") == (tmp_path / "again").resolve()


def test_a_name_taken_by_another_folder_is_refused_unless_forced(tmp_path, lfw):
    make(tmp_path, lfw, "first", register=True)
    with pytest.raises(ProtocolError, match="already registered for"):
        make(tmp_path, lfw, "second", register=True)
    make(tmp_path, lfw, "second", register=True, overwrite=True)
    assert get_protocol("lfw/umr-ump").folder == str((tmp_path / "second").resolve())
    # registering the same folder again just refreshes the entry
    register_protocol("lfw/umr-ump", tmp_path / "second")
    assert [e.name for e in list_protocols()] == ["lfw/umr-ump"]


def test_a_refused_name_writes_nothing_so_a_retry_under_another_name_needs_no_force(tmp_path, lfw_files):
    """make/import check the registry name before writing: a refused name used to leave
    the folder written, so the retry with --name then failed with 'a protocol already
    exists' and needed --force."""
    args = ("-m", lfw_files.path, "--spec", "umr-ump", "--folds", 2, "--genuine", 3, "--impostor", 3)
    assert run("make", tmp_path / "first", *args).exit_code == 0
    result = run("make", tmp_path / "second", *args)
    assert result.exit_code != 0 and "already registered for" in str(result.exception)
    assert not (tmp_path / "second").exists()
    result = run("make", tmp_path / "second", *args, "--name", "lfw-small/umr-ump-2")
    assert result.exit_code == 0 and "registered as lfw-small/umr-ump-2" in result.output, result.output
    # import: the folder's name is taken by another folder
    run("export", "lfw-small/umr-ump", tmp_path / "pairs.csv", "--format", "csv")
    assert run("import", tmp_path / "pairs.csv", tmp_path / "a" / "imported", "-m", lfw_files.path).exit_code == 0
    result = run("import", tmp_path / "pairs.csv", tmp_path / "b" / "imported", "-m", lfw_files.path)
    assert result.exit_code != 0 and "already registered for" in str(result.exception)
    assert not (tmp_path / "b").exists()


def test_a_changed_protocol_is_flagged(tmp_path, lfw):
    make(tmp_path, lfw, "p", register=True)
    # made again in place without registering: protocol.json differs from the registered one
    make_protocol_folder(tmp_path / "p", lfw.path, spec="umr-ump", seed=1, n_folds=2, genuine_per_fold=3,
                         impostor_per_fold=3, overwrite=True)
    assert get_protocol("lfw/umr-ump").status() == "changed"
    assert "changed since registered" in run("list").output
    assert resolve_protocol("lfw/umr-ump").seed == 1  # still usable: the folder checks its own files


def test_register_refuses_a_folder_that_is_not_a_protocol(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProtocolError, match="not a protocol folder"):
        register_protocol("x", tmp_path / "empty")
    assert list_protocols() == []


def test_cli_make_import_list_show_remove(tmp_path, lfw_files, masked_files):
    result = run("make", tmp_path / "p", "-m", lfw_files.path, "-p", masked_files.path, "--spec", "umr-mp",
                 "--folds", 2, "--genuine", 3, "--impostor", 3)
    assert result.exit_code == 0, result.output
    assert "registered as lfw-small/umr-mp" in result.output
    assert load_protocol(tmp_path / "p").name == "p"  # the recorded name stays the folder's
    result = run("make", tmp_path / "q", "-m", lfw_files.path, "--spec", "umr-ump", "--folds", 2, "--genuine", 3,
                 "--impostor", 3, "--name", "mine/base")
    assert result.exit_code == 0 and "registered as mine/base" in result.output
    assert load_protocol(tmp_path / "q").name == "mine/base"
    result = run("make", tmp_path / "r", "-m", lfw_files.path, "--spec", "umr-ump", "--folds", 2, "--genuine", 3,
                 "--impostor", 3, "--no-register")
    assert result.exit_code == 0 and "registered" not in result.output
    run("export", "umr-mp", tmp_path / "pairs.csv", "--format", "csv")
    result = run("import", tmp_path / "pairs.csv", tmp_path / "imported", "-m", lfw_files.path, "-p", masked_files.path)
    assert result.exit_code == 0 and "registered as imported" in result.output, result.output
    result = run("list")
    assert result.output.index("registered protocols") > result.output.index("umr-ump")  # after the specs
    for name in ("lfw-small/umr-mp", "mine/base", "imported"):
        assert name in result.output
    # names work where folders do: show, validate, export, make --from
    assert run("show", "umr-mp").exit_code == 0
    assert run("validate", "base").exit_code == 0
    result = run("make", tmp_path / "d", "--from", "mine/base", "-m", masked_files.path, "--spec", "mr-mp")
    assert result.exit_code == 0 and "registered as lfw-small-masked/mr-mp" in result.output, result.output
    result = run("show", "nothing-like-it")
    assert result.exit_code != 0
    result = run("remove", "imported")
    assert result.exit_code == 0 and (tmp_path / "imported").is_dir()
    assert get_protocol("imported") is None
    with pytest.raises(ProtocolError, match="no protocol is registered as 'imported'"):
        remove_protocol("imported")
