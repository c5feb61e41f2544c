"""The synth and partial commands: options map onto the library call; errors become messages."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mfrkit.cli import app
from mfrkit.jobs import ExecutorSpec
from mfrkit.maskgen import JobSummary, PartialConfig, SynthConfig

runner = CliRunner()


def _summary(kind, out):
    return JobSummary(kind=kind, out=Path(out), manifest=Path(out) / "manifest.parquet", outputs=3, processed=2, resumed=1,
                      failures={"no_face": 1}, quality={"checked": 3, "passed": 2, "failed_by_reason": {"chin_not_covered": 1}}, elapsed=1.0)


def test_synth_maps_options(monkeypatch, tmp_path):
    seen = {}

    def fake(src, out, config, *, executor, progress):
        seen.update(src=src, out=out, config=config, executor=executor)
        return _summary("synth", out)

    monkeypatch.setattr("mfrkit.maskgen.synth_job.synthesize", fake)
    result = runner.invoke(app, ["synth", "--src", "casia", "--out", str(tmp_path), "--mask", "surgical,n95", "--coverage", "chin",
                                 "--renderer", "template", "--landmarks", "dlib", "--seed", "5", "--mix", "--on-no-face", "copy", "-j", "2"])
    assert result.exit_code == 0, result.output
    assert seen["src"] == "casia" and seen["executor"].local_workers == 2 and seen["executor"] == ExecutorSpec("local", workers=2)
    assert seen["config"] == SynthConfig(types="surgical,n95", coverage="chin", renderer="template", landmarks="dlib", seed=5, mix=True, on_no_face="copy")
    assert "3 images" in result.output and "2 items run now, 1 found done" in result.output
    assert "no_face" in result.output and "2/3 passed" in result.output


def test_synth_needs_no_out(monkeypatch):
    # The user's own command, as written (issue 12): no --out.
    seen = {}

    def fake(src, out, config, *, executor, progress):
        seen.update(src=src, out=out, config=config)
        return _summary("synth", "/home/u/.mfrkit/datasets/casia-surgical")

    monkeypatch.setattr("mfrkit.maskgen.synth_job.synthesize", fake)
    result = runner.invoke(app, ["synth", "--src", "casia", "--mask", "surgical"])
    assert result.exit_code == 0, result.output
    assert seen["out"] is None and seen["config"] == SynthConfig(types="surgical") and seen["config"].coverage == "proper"


def test_partial_maps_options(monkeypatch, tmp_path):
    seen = {}

    def fake(src, out, config, *, executor, progress):
        seen["config"], seen["executor"] = config, executor
        return _summary("partial", out)

    monkeypatch.setattr("mfrkit.maskgen.partial_job.make_partial", fake)
    result = runner.invoke(app, ["partial", "--src", "lfw", "--out", str(tmp_path), "--regions", "leye,mouth", "--factors", "0.1:0.3:0.1", "--centered",
                                 "--executor", "ray", "--ray-address", "auto"])
    assert result.exit_code == 0, result.output
    assert seen["executor"] == ExecutorSpec("ray", workers=1, address="auto")
    assert seen["config"] == PartialConfig(regions="leye,mouth", factors="0.1:0.3:0.1", placement="centered")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["synth", "--src", "nowhere-registered", "--out", "x", "--mask", "hazmat"], "surgical"),
        (["synth", "--src", "nowhere-registered", "--out", "x", "--renderer", "mesh", "--landmarks", "dlib"], "dense mesh"),
        (["partial", "--src", "nowhere-registered", "--out", "x", "--regions", "forehead"], "leye"),
        # An empty mask list is a typo, not "random" (issue 10, item 13).
        (["synth", "--src", "nowhere-registered", "--mask", ""], "empty name"),
        (["synth", "--src", "nowhere-registered", "--mask", ",,"], "empty name"),
        (["synth", "--src", "nowhere-registered", "--color", "white,"], "--color"),
    ],
)
def test_errors_become_messages(argv, message, capsys, monkeypatch, tmp_path):
    from mfrkit import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["mfrkit", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    assert message in capsys.readouterr().err
