import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mfrkit.cli import app
from mfrkit.data.sample import build_sample

runner = CliRunner()


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.jpg"))}


def test_sample_is_reproducible_and_varied(tmp_path):
    a = build_sample(tmp_path / "a", captures=3, seed=7)
    build_sample(tmp_path / "b", captures=3, seed=7)
    build_sample(tmp_path / "c", captures=3, seed=8)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert len(a) == 6 and len({r["jpeg_quality"] for r in a} | {round(r["angle"], 3) for r in a}) > 3


def test_demo_command_builds_registers_and_detects(tmp_path, mfrkit_home):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--sample-only"])
    assert result.exit_code == 0, result.output
    assert "12 images of 2 identities" in result.output
    assert "landmarks (mediapipe): 12 ok" in result.output and "landmarks (dlib): 12 ok" in result.output
    listed = runner.invoke(app, ["datasets", "list"])
    assert "demo" in listed.output and "scanned" in listed.output


def test_datasets_commands_and_errors(tmp_path, mfrkit_home):
    build_sample(tmp_path / "lfwlike", captures=2)
    assert runner.invoke(app, ["datasets", "add", "mine", str(tmp_path / "lfwlike")]).exit_code == 0
    scanned = runner.invoke(app, ["datasets", "scan", "mine"])
    assert scanned.exit_code == 0 and "4 images (4 ok), 2 identities, layout lfw" in scanned.output
    lm = runner.invoke(app, ["landmarks", "mine", "--backend", "dlib"])
    assert lm.exit_code == 0 and "4 ok" in lm.output


@pytest.mark.parametrize(
    "argv, message",
    [
        (["landmarks", "casia"], "mfrkit datasets add casia"),
        (["datasets", "scan", "nothing"], "neither a registered dataset"),
        (["datasets", "add", "x", "/definitely/missing"], "not a folder"),
    ],
)
def test_errors_become_messages_and_exit_code_1(argv, message, capsys, monkeypatch):
    from mfrkit import cli

    monkeypatch.setattr("sys.argv", ["mfrkit", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    assert message in capsys.readouterr().err


def test_exit_codes_reach_the_shell(capsys, monkeypatch):
    # Through main(), as the console script runs: typer.Exit and Ctrl-C must set the exit code.
    from mfrkit import cli, doctor

    monkeypatch.setattr(doctor, "run_checks", lambda: [doctor.Check("broken thing", False, "detail")])
    monkeypatch.setattr("sys.argv", ["mfrkit", "doctor"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1 and "broken thing" in capsys.readouterr().out

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr("mfrkit.data.registry.list_datasets", interrupted)
    monkeypatch.setattr("sys.argv", ["mfrkit", "datasets", "list"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 130 and "interrupted" in capsys.readouterr().err


def test_doctor_reports_backends_and_providers():
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "onnxruntime will use" in result.output
    assert "landmarks: mediapipe" in result.output and "landmarks: dlib" in result.output


def test_card_command_generated_and_builtin(tmp_path, mfrkit_home):
    import yaml

    runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--sample-only"])
    text = (tmp_path / "demo" / "sample" / "DATA_CARD.md").read_text()
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["counts"]["images"] == 12 and "smoke-test sample, not a benchmark" in text
    out = tmp_path / "card.md"
    assert runner.invoke(app, ["card", "demo", "--out", str(out)]).exit_code == 0
    assert yaml.safe_load(out.read_text().split("---\n")[1])["landmarks"]["summary"]["dlib"] == {"ok": 12}
    builtin = runner.invoke(app, ["card", "casia"])  # known, not registered: the built-in card
    assert builtin.exit_code == 0 and "CASIA-WebFace" in builtin.output


def test_card_known_gives_the_builtin_card_of_a_registered_name(tmp_path, mfrkit_home):
    """With a dataset registered as `lfw` (as the README does), `mfrkit card lfw` is the
    generated card; its pointer to the built-in card used to be `mfrkit card lfw`, the
    same command again. `--known` always gives the built-in card, and the pointers say so."""
    build_sample(tmp_path / "lfw", captures=2)
    assert runner.invoke(app, ["datasets", "add", "lfw", str(tmp_path / "lfw")]).exit_code == 0
    generated = runner.invoke(app, ["card", "lfw"])
    assert generated.exit_code == 0 and "images: 4" in generated.output
    assert "`mfrkit card --known lfw`" in generated.output
    builtin = runner.invoke(app, ["card", "--known", "lfw"])
    assert builtin.exit_code == 0 and "Labeled Faces in the Wild" in builtin.output and "images: 4" not in builtin.output
    unknown = runner.invoke(app, ["card", "--known", "not-a-dataset"])
    assert unknown.exit_code != 0 and "known datasets: calfw" in str(unknown.exception)


def test_doctor_flags_both_onnxruntime_packages(monkeypatch):
    from mfrkit import doctor

    versions = {"onnxruntime": "1.31.1", "onnxruntime-gpu": "1.31.1", "opencv-python": "4.11.0.86"}
    optional = {"onnxruntime", "onnxruntime-gpu", *doctor._FOREIGN_OPENCV}
    monkeypatch.setattr(doctor, "_version", lambda dist: versions.get(dist) if dist in optional else "1.0")
    failed = {c.name for c in doctor.package_checks() if c.ok is False}
    assert {"onnxruntime conflict", "opencv conflict"} <= failed
    versions.pop("onnxruntime-gpu"), versions.pop("opencv-python")
    assert not [c for c in doctor.package_checks() if c.ok is False]


def test_demo_no_train_ends_with_where_its_results_are(tmp_path, mfrkit_home):
    import re

    import pandas as pd

    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--no-train"])
    assert result.exit_code == 0, result.output
    (run,) = list((tmp_path / "demo" / "runs").iterdir())
    assert set(pd.read_csv(run / "leaderboard.csv")["model"]) == {"dlib_resnet"}  # no family trained
    assert not (tmp_path / "demo" / "families").exists()
    last = [line for line in result.output.splitlines() if line.strip()][-3:]
    assert [line.split(":")[0] for line in last] == ["leaderboard", "report", "next"]
    paths = [Path(p) for p in re.findall(r"(/\S+\.(?:md|html|png))", " ".join(last))]
    assert {p.name for p in paths} == {"leaderboard.md", "report.html", "contact_sheet.png"}
    assert all(p.is_file() for p in paths)


def test_full_demo_runs_every_stage(tmp_path, mfrkit_home):
    import pandas as pd

    from mfrkit.data.manifest import read_manifest

    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    masked = read_manifest(tmp_path / "demo" / "sample-masked")
    assert (masked.table["variant"] == "masked").sum() == 12 and masked.table["source_id"].notna().all()
    runs = list((tmp_path / "demo" / "runs").iterdir())
    board = pd.read_csv(runs[0] / "leaderboard.csv")
    # dlib's ResNet and the four families trained on synthetic identities, on the sample's
    # protocols and on the held-out synthetic ones
    assert set(board["protocol"]) == {"mr-mp", "umr-mp", "umr-ump", "synthetic-umr-ump", "synthetic-umr-mp"}
    assert set(board["model"]) == {"dlib_resnet", "csn", "attention", "heterogeneous", "domain_adapt"} and len(board) == 25
    assert board["auc"].between(0, 1).all()
    assert "synthetic identities: a check of the training machinery, not a face-recognition benchmark" in " ".join(result.output.split())
    listed = runner.invoke(app, ["datasets", "list"]).output
    assert "demo-masked" in listed
    # the demo registers its protocols: the user's own command runs as written
    listed = runner.invoke(app, ["protocol", "list"]).output
    assert all(f"demo/{spec}" in listed for spec in ("umr-ump", "umr-mp", "mr-mp"))
    csn = tmp_path / "csn-untrained.onnx"  # the demo has a trained csn of its own
    assert runner.invoke(app, ["models", "export", "--family", "csn", "--out", str(csn)]).exit_code == 0
    result = runner.invoke(app, ["bench", "--model", str(csn), "--protocol", "mr-mp", "--out", str(tmp_path / "runs"), "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    (run,) = list((tmp_path / "runs").iterdir())
    assert pd.read_csv(run / "leaderboard.csv")["protocol"].tolist() == ["mr-mp"]
    assert (run / "report.html").is_file()
    # leaderboard and report work on its runs, and on the demo's
    runs = [str(tmp_path / "runs"), str(tmp_path / "demo" / "runs")]
    result = runner.invoke(app, ["leaderboard", *runs, "--table", str(tmp_path / "table.md")])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "table.md").read_text()
    from mfrkit.names import markdown_cell  # names escaped for Markdown (dlib\_resnet)

    assert all(f"| {markdown_cell(name)} |" in table for name in ("csn-untrained", "csn", "dlib_resnet", "attention", "heterogeneous", "domain_adapt"))
    result = runner.invoke(app, ["report", *runs, "--out", str(tmp_path / "report.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report.html").read_text()
    assert "Protocol mr-mp" in page and "Threshold drift" in page and ">csn<" in page


def test_card_out_to_a_new_folder(tmp_path, mfrkit_home):
    result = runner.invoke(app, ["card", "lfw", "--out", str(tmp_path / "cards")])
    assert result.exit_code == 0 and (tmp_path / "cards" / "DATA_CARD.md").is_file()


def test_os_errors_become_messages(tmp_path, capsys, monkeypatch):
    from mfrkit import atomic, cli

    def refuse(path, text, **kwargs):  # as atomic_write_text (replace=...)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(atomic, "atomic_write_text", refuse)
    monkeypatch.setattr("sys.argv", ["mfrkit", "card", "lfw", "--out", str(tmp_path / "card.md")])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    assert "Permission denied" in capsys.readouterr().err


def test_datasets_export_csv_round_trips(tmp_path, mfrkit_home):
    from mfrkit.data.manifest import read_manifest

    build_sample(tmp_path / "s", captures=2)
    out = tmp_path / "m.csv"
    result = runner.invoke(app, ["datasets", "export", str(tmp_path / "s"), str(out)])
    assert result.exit_code == 0 and "4 rows" in result.output
    back = read_manifest(out)
    assert sorted(back.table["image_id"]) == sorted(p.relative_to(tmp_path / "s").as_posix() for p in (tmp_path / "s").rglob("*.jpg"))
    assert set(back.table["identity"]) == {"eileen_collins", "grace_hopper"}


def test_doctor_ray_message_is_a_whole_sentence(monkeypatch):
    """Ray's 'no cluster' message was cut at 120 characters, mid-word and mid-quote."""
    import types

    from mfrkit import doctor

    message = ("Could not find any running Ray instance. Please specify the one to connect to by setting `--address` "
               "flag or `RAY_ADDRESS` environment variable.")

    def init(**kw):
        raise ConnectionError(message)

    monkeypatch.setitem(__import__("sys").modules, "ray", types.SimpleNamespace(init=init))
    monkeypatch.setattr(doctor, "_version", lambda dist: "2.60.0")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cluster = [c for c in doctor.ray_checks() if c.name == "ray cluster"][0]
    assert cluster.ok is None
    assert cluster.detail == "none reachable at auto (Could not find any running Ray instance.); --executor ray starts a local instance"
    assert doctor.first_sentence("word " * 50, limit=20) == "word word word word ..."
    assert doctor.first_sentence("one line\nsecond") == "one line"


def test_version_and_python_dash_m():
    """`mfrkit --version` and `python -m mfrkit` (neither existed)."""
    import subprocess
    import sys

    from mfrkit import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"mfrkit {__version__}"
    done = subprocess.run([sys.executable, "-m", "mfrkit", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"mfrkit {__version__}", done.stderr
