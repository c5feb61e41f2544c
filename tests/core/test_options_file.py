"""``mfrkit bench --config study.yaml`` (issue 21 item 7): every bench option from a YAML
file, unknown keys refused, command-line flags overriding the file."""

from __future__ import annotations


import pytest
from typer.testing import CliRunner

from mfrkit.bench import benchmark
from mfrkit.bench.benchmark import BenchConfig
from mfrkit.cli import app
from mfrkit.errors import ConfigFileError
from mfrkit.options_file import option_keys, read_options_file

runner = CliRunner()


def _bench(monkeypatch, *args):
    seen = {}

    def fake(cfg, **kw):
        seen["cfg"] = cfg
        raise SystemExit(0)

    monkeypatch.setattr(benchmark, "run_benchmark", fake)
    result = runner.invoke(app, ["bench", *map(str, args)])
    return seen.get("cfg"), result


STUDY = """\
# the settings of one study
model: [a.onnx, b.onnx]
protocol: mr-mp
batch: 16
bootstrap: 2000
far: [1e-3, 1e-4]
tta: flip
fta: exclude
save-embeddings: true
input-size: 112
transfer_from: umr-ump
"""


def test_every_setting_comes_from_the_file(monkeypatch, tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(STUDY)
    cfg, result = _bench(monkeypatch, "--config", study)
    assert cfg is not None, result.output
    assert cfg == BenchConfig(models=["a.onnx", "b.onnx"], protocols=["mr-mp"], batch_size=16, n_boot=2000, far_targets=(1e-3, 1e-4),
                              tta="flip", fta_policy="exclude", save_embeddings=True, model_options={"input_size": "112"},
                              transfer_from="umr-ump")  # fmt: skip


def test_flags_override_the_file_and_untyped_defaults_do_not(monkeypatch, tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(STUDY)
    cfg, result = _bench(monkeypatch, "--config", study, "--bootstrap", "0", "--protocol", "umr-mp", "--color", "BGR")
    assert cfg is not None, result.output
    assert cfg.n_boot == 0 and cfg.protocols == ["umr-mp"] and cfg.models == ["a.onnx", "b.onnx"]
    assert cfg.batch_size == 16  # --batch was not typed: its default does not undo the file's value
    assert cfg.model_options == {"input_size": "112", "color": "BGR"}


def test_unknown_keys_and_bad_values_are_refused_with_the_key_named(monkeypatch, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: a.onnx\nprotocol: mr-mp\nbootstrapp: 10\n")
    with pytest.raises(ConfigFileError, match=r"unknown option\(s\) bootstrapp; valid keys: .*bootstrap"):
        read_options_file(bad, BenchConfig)
    cfg, result = _bench(monkeypatch, "--config", bad)
    assert cfg is None and result.exit_code == 1 and "bootstrapp" in str(result.exception)
    for text, match in [("batch: 0\n", "batch: 0 is out of range"), ("batch: many\n", "batch: expected an integer"),
                        ("far: [2]\n", "far: rates must lie in"), ("plots: maybe\n", "plots: expected true or false"),
                        ("- a\n- b\n", "expected a mapping"), ("model: [a\n", "not valid YAML")]:  # fmt: skip
        bad.write_text(text)
        with pytest.raises(ConfigFileError, match=match):
            read_options_file(bad, BenchConfig)
    with pytest.raises(ConfigFileError, match="no such YAML file"):
        read_options_file(tmp_path / "missing.yaml", BenchConfig)


def test_required_options_come_from_either_place(monkeypatch, tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("model: a.onnx\n")
    cfg, result = _bench(monkeypatch, "--config", study)
    assert cfg is None and result.exit_code == 2 and "missing --protocol" in result.output
    cfg, _ = _bench(monkeypatch, "--config", study, "--protocol", "p")
    assert cfg.models == ["a.onnx"] and cfg.protocols == ["p"]
    cfg, result = _bench(monkeypatch, "--protocol", "p")
    assert cfg is None and "missing --model" in result.output
    cfg, _ = _bench(monkeypatch, "--model", "m.onnx", "--protocol", "p")  # no file: as before
    assert cfg == BenchConfig(models=["m.onnx"], protocols=["p"])


def test_every_bench_option_has_a_file_key():
    keys = option_keys(BenchConfig)
    from mfrkit.options import declared_options

    for f, o in declared_options(BenchConfig):
        if o.entries:
            assert all(e in keys for e in o.entries)
        elif o.cli:
            assert keys[f.name] == (f.name, None)
    assert keys["batch"] == ("batch_size", None) and keys["model_meta"] == ("sidecar", None)
