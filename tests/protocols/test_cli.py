import sys

import pytest
from typer.testing import CliRunner

from mfrkit import cli
from mfrkit.protocols import load_protocol

runner = CliRunner()


def run(*args):
    result = runner.invoke(cli.app, ["protocol", *map(str, args)])
    return result


def test_list():
    result = run("list")
    assert result.exit_code == 0
    for name in ("umr-ump", "umr-mp", "mr-mp", "mr-ump", "partial-holistic", "partial-same", "partial-cross",
                 "insightface-bin", "pairs-label"):
        assert name in result.output


def test_make_show_validate_export_import(tmp_path, lfw_files, masked_files):
    out = tmp_path / "p"
    result = run("make", out, "-m", lfw_files.path, "-p", masked_files.path, "--spec", "umr-mp", "--folds", 3,
                 "--genuine", 3, "--impostor", 3, "--seed", 5)
    assert result.exit_code == 0, result.output
    assert "18 pairs (9 genuine) in 3 fold(s)" in result.output
    p = load_protocol(out)
    assert p.spec == "umr-mp" and p.seed == 5 and p.name == "p"

    result = run("show", out)
    assert result.exit_code == 0 and "masked:cloth" in result.output and "genuine" in result.output

    result = run("validate", out)
    assert result.exit_code == 0 and "ok" in result.output

    result = run("export", out, tmp_path / "pairs.csv", "--format", "csv")
    assert result.exit_code == 0
    result = run("import", tmp_path / "pairs.csv", tmp_path / "back", "-m", lfw_files.path, "-p",
                 masked_files.path)
    assert result.exit_code == 0, result.output
    back = load_protocol(tmp_path / "back")
    assert back.pairs.equals(p.pairs) and back.spec == "umr-mp"


def test_make_derived_and_partial_grid(tmp_path, lfw_files, masked_files, small_base):
    from tests.support.fake_data import partial_rows, save

    parent = tmp_path / "parent"
    assert run("make", parent, "-m", lfw_files.path, "--folds", 2, "--genuine", 3, "--impostor", 3).exit_code == 0
    result = run("make", tmp_path / "child", "--from", parent, "-m", masked_files.path, "--spec", "mr-mp")
    assert result.exit_code == 0, result.output
    child = load_protocol(tmp_path / "child")
    assert child.pairs["fold"].tolist() == load_protocol(parent).pairs["fold"].tolist()
    assert child.info["derived_from"]["name"] == "parent"

    part = save(tmp_path / "partial", partial_rows(small_base, regions=("Nose", "Mouth"), factors=(0.3, 0.5)), "p")
    result = run("make", tmp_path / "grid", "-m", lfw_files.path, "-p", part.path, "--spec", "partial-holistic",
                 "--folds", 2, "--genuine", 2, "--impostor", 2, "--region", "Nose")
    assert result.exit_code == 0, result.output
    made = sorted(x.name for x in (tmp_path / "grid").iterdir())
    assert made == ["partial-holistic_Nose_f0.3_noncentered", "partial-holistic_Nose_f0.5_noncentered"]


def test_identification(tmp_path, lfw_files, masked_files):
    result = run("make", tmp_path / "id", "-m", lfw_files.path, "-p", masked_files.path, "--spec", "umr-mp",
                 "--identification", "--mode", "open")
    assert result.exit_code == 0, result.output
    assert load_protocol(tmp_path / "id").info["params"]["mode"] == "open"


def test_validate_exits_1_on_errors(tmp_path, lfw_files):
    out = tmp_path / "p"
    run("make", out, "-m", lfw_files.path, "--folds", 2, "--genuine", 3, "--impostor", 3)
    p = load_protocol(out)
    p.abspath("reference", p.pairs["left_id"][0]).unlink()
    result = run("validate", out)
    assert result.exit_code == 1 and "INVALID" in result.output


def test_library_errors_become_one_line_messages(tmp_path, lfw_files, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["mfrkit", "protocol", "make", str(tmp_path / "x"), "-m", str(lfw_files.path)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "error:" in err and "--allow-fewer" in err


def test_people_folds(tmp_path, lfw_files):
    (tmp_path / "people.txt").write_text("2\n2\nPerson_000\t3\nPerson_001\t3\n2\nPerson_002\t3\nPerson_003\t3\n")
    result = run("make", tmp_path / "p", "-m", lfw_files.path, "--people", tmp_path / "people.txt",
                 "--genuine", 2, "--impostor", 2)
    assert result.exit_code == 0, result.output
    p = load_protocol(tmp_path / "p")
    idents = lfw_files.table.set_index("image_id")["identity"]
    for fold, left in zip(p.pairs["fold"], idents.loc[p.pairs["left_id"]]):
        assert fold == (0 if left in ("Person_000", "Person_001") else 1)


def test_resolve_protocol_from_folder_or_spec(tmp_path, lfw_files, masked_files):
    from mfrkit.protocols import ProtocolError, resolve_protocol

    run("make", tmp_path / "p", "-m", lfw_files.path, "--folds", 2, "--genuine", 2, "--impostor", 2)
    assert resolve_protocol(tmp_path / "p").name == "p"
    made = resolve_protocol("umr-mp", lfw_files.path, masked_files.path, n_folds=2, genuine_per_fold=2,
                            impostor_per_fold=2)
    assert made.spec == "umr-mp" and len(made.pairs) == 8
    search = resolve_protocol("umr-mp:open", lfw_files.path, masked_files.path)
    assert search.kind == "identification" and search.info["params"]["mode"] == "open"
    assert set(search.probes["mated"]) == {0, 1}
    for bad in ("mr-xx", "umr-mp:", "umr-mp:openset"):
        with pytest.raises(ProtocolError, match="neither a protocol folder nor a spec.*SPEC:MODE"):
            resolve_protocol(bad, lfw_files.path)
    with pytest.raises(ProtocolError, match="not a protocol folder"):
        resolve_protocol(tmp_path, lfw_files.path)
    with pytest.raises(ProtocolError, match=r"300 \+ 300 asked.*default settings.*mfrkit protocol make"):
        resolve_protocol("umr-mp", lfw_files.path, masked_files.path)


def test_import_a_bin(tmp_path):
    import pickle

    import numpy as np

    from mfrkit.data.imageio import encode_image

    img = encode_image(np.zeros((8, 8, 3), dtype=np.uint8), ".png")
    (tmp_path / "lfw.bin").write_bytes(pickle.dumps(([img] * 20, [True, False] * 5), protocol=4))
    result = run("import", tmp_path / "lfw.bin", tmp_path / "p", "--images", tmp_path / "ds")
    assert result.exit_code == 0, result.output
    p = load_protocol(tmp_path / "p")
    assert len(p.pairs) == 10 and p.pairs["fold"].nunique() == 10
    assert (tmp_path / "ds" / "images" / "000019.png").is_file()
    assert run("validate", tmp_path / "p").exit_code == 0


def test_registered_dataset_scanned_with_the_lfw_layout(tmp_path, lfw_files):
    from mfrkit.data.registry import add_dataset

    root = tmp_path / "real-lfw"
    (lfw_files.root).rename(root)
    (root / "manifest.parquet").unlink()  # a plain LFW folder, no manifest yet
    add_dataset("tiny-lfw", root, layout="lfw")
    result = run("make", tmp_path / "p", "-m", "tiny-lfw", "--folds", 2, "--genuine", 3, "--impostor", 3)
    assert result.exit_code == 0, result.output
    assert run("validate", tmp_path / "p").exit_code == 0
    assert run("export", tmp_path / "p", tmp_path / "pairs.txt", "--format", "lfw").exit_code == 0
    assert (tmp_path / "pairs.txt").read_text().startswith("2\t3\nPerson_")
    result = run("import", tmp_path / "pairs.txt", tmp_path / "again", "--format", "lfw", "-m", "tiny-lfw")
    assert result.exit_code == 0, result.output
    assert load_protocol(tmp_path / "again").pairs.equals(load_protocol(tmp_path / "p").pairs)


def test_import_of_pairs_of_other_images_fails_unless_allowed(tmp_path, lfw_files):
    # LFW-format pairs naming people the manifest does not hold (like the real LFW pairs.txt
    # against an unrelated dataset): refused, nothing written.
    lines = ["1\t3"] + [f"Stranger_{i}\t1\t2" for i in range(3)] + [f"Stranger_{i}\t1\tOther_{i}\t1" for i in range(3)]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    result = run("import", pairs, tmp_path / "p", "-f", "lfw", "-m", lfw_files.path)
    assert result.exit_code == 1
    assert "only 0 of the 12 image references of pairs.txt match an image" in str(result.exception)
    assert "--allow-missing" in str(result.exception) and not (tmp_path / "p").exists()
    # --allow-missing lifts this refusal, but a pair list with no usable pair at all still
    # makes nothing (the import's "made nothing -> exit 1" rule), saying so
    result = run("import", pairs, tmp_path / "p", "-f", "lfw", "-m", lfw_files.path, "--allow-missing")
    assert result.exit_code == 1 and "match an image" not in str(result.exception)
    assert "no pair of" in str(result.exception) and "12 image references not in the manifest" in str(result.exception)


def test_make_counts_line_says_how_many_people_were_found(tmp_path, lfw_files):
    people = tmp_path / "people.txt"
    names = sorted({i.split("/")[0] for i in __import__("pandas").read_parquet(lfw_files.path)["image_id"]})
    people.write_text("2\n" + f"{len(names) + 1}\n" + "\n".join(f"{n}\t3" for n in names) + "\nStranger\t2\n" + "1\nNobody\t1\n")
    result = run("make", tmp_path / "p", "-m", lfw_files.path, "--people", people, "--genuine", 2, "--impostor", 2,
                 "--allow-fewer")
    assert result.exit_code == 0, result.output
    assert f"{len(names)} of {len(names) + 2} people.txt identities found" in result.output


def test_make_maps_each_kinds_options(monkeypatch, tmp_path):
    # The per-kind option dataclasses (mfrkit.protocols.options) reach make_protocol_folder
    # as the keyword options of the chosen kind only.
    from mfrkit.protocols import workflow

    seen = {}
    monkeypatch.setattr(workflow, "make_protocol_folder", lambda *a, **k: seen.update(k) or [])
    result = run("make", tmp_path / "x", "-m", "m", "--identification", "--mode", "open", "--distractors", 5, "--non-centered",
                 "--no-register", "--force", "--seed", 3)
    assert result.exit_code == 0, result.output
    assert seen["kind"] == "identification" and seen["mode"] == "open" and seen["n_distractors"] == 5 and seen["seed"] == 3
    assert seen["spec_params"]["centered"] is False and seen["register"] is False and seen["overwrite"] is True
    assert "n_folds" not in seen
    seen.clear()
    result = run("make", tmp_path / "x", "-m", "m", "--folds", 2, "--people", "p.txt", "--name", "a/b")
    assert result.exit_code == 0, result.output
    assert seen["kind"] == "verification" and seen["n_folds"] == 2 and seen["genuine_per_fold"] == 300 and seen["seed"] == 0
    assert str(seen["people"]) == "p.txt" and seen["register"] == "a/b" and "mode" not in seen
