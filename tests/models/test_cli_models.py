"""The models CLI maps options onto the library calls (library patched), and lists the families."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import mfrkit.models.export as export_mod
import mfrkit.models.train as train_mod
from mfrkit.cli import app
from mfrkit.models.export import ExportResult
from mfrkit.models.train import TrainResult

runner = CliRunner()


def test_models_list_names_every_family():
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    for name in ("csn", "attention", "heterogeneous", "domain_adapt", "arcface160p30", "iresnet100", "mobilefacenet"):
        assert name in result.output


def test_models_train_maps_options(monkeypatch, tiny_dataset, tmp_path):
    calls = {}

    def fake_train(family, data, out, **kw):
        calls.update(family=family, data=data, out=out, **kw)
        return TrainResult(out=Path(out), checkpoint=Path(out) / "checkpoint.pt", step=3, epoch=1, resumed_from=0,
                           last_losses={"loss": 1.5}, n_samples=20, n_classes=3, dropped={"no_landmarks": 2})

    monkeypatch.setattr(train_mod, "train", fake_train)
    args = ["models", "train", "--family", "csn", "--data", str(tiny_dataset.path), "--teacher", "t.onnx",
            "--epochs", "4", "--device", "cpu", "--out", str(tmp_path / "run"), "--aligned", "-j", "0",
            "--option", "width=8", "--option", "sub_dropout=[0.1, 0.2]"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls["family"] == "csn" and calls["out"] == tmp_path / "run" and calls["teacher"] == Path("t.onnx")
    assert calls["options"] == {"width": 8, "sub_dropout": [0.1, 0.2]}
    assert (calls["config"].epochs, calls["config"].device, calls["config"].workers) == (4, "cpu", 0)
    assert calls["aligned"] is True and calls["mask_transform"] is None and calls["data"] == str(tiny_dataset.path)
    assert "step 3" in result.output and "2 no_landmarks" in result.output


def _fake_train(calls):
    def fake_train(family, data, out, **kw):
        calls.update(family=family, data=data, out=out, **kw)
        return TrainResult(out=Path(out), checkpoint=Path(out) / "checkpoint.pt", step=1, epoch=0, resumed_from=0)

    return fake_train


def test_a_recipe_fills_what_the_command_line_does_not_give(monkeypatch, tmp_path):
    calls = {}
    monkeypatch.setattr(train_mod, "train", _fake_train(calls))
    # --epochs 10 is TrainConfig's default, typed in: it must still beat the recipe's 20.
    args = ["models", "train", "--recipe", "cosface-baseline", "--data", "somewhere", "--epochs", "10", "--option", "width=8",
            "-o", str(tmp_path / "run")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    config = calls["config"]
    assert calls["family"] == "cosface" and config.epochs == 10 and config.batch_size == 128 and config.warmup_steps == 1000
    assert config.variants == ("unmasked",)  # from the recipe
    assert calls["options"]["width"] == 8 and calls["options"]["backbone"] == "iresnet50"
    assert "(recipe cosface-baseline)" in result.output


def test_a_recipe_file_can_be_copied_edited_and_used(monkeypatch, tmp_path):
    calls = {}
    monkeypatch.setattr(train_mod, "train", _fake_train(calls))
    text = runner.invoke(app, ["models", "recipe", "csn-zhao2022"]).output
    assert "paper_states" in text and "our_choices" in text
    edited = tmp_path / "mine.yaml"
    edited.write_text(text.replace("epochs: 20", "epochs: 3"))
    result = runner.invoke(app, ["models", "train", "--recipe", str(edited), "--data", "x", "--lr", "0.01"])
    assert result.exit_code == 0, result.output
    assert (calls["family"], calls["config"].epochs, calls["config"].lr) == ("csn", 3, 0.01)
    edited.write_text(text.replace("epochs: 20", "epoch: 3"))
    result = runner.invoke(app, ["models", "train", "--recipe", str(edited), "--data", "x"])
    assert result.exit_code == 1 or "unknown train setting" in str(result.exception)


def test_train_needs_a_family_or_a_recipe_and_they_must_agree():
    from mfrkit.errors import MfrkitError
    from mfrkit.models.recipe import plan_training
    from mfrkit.models.train_config import TrainConfig

    import pytest

    with pytest.raises(MfrkitError, match="name a family"):
        plan_training(family=None, recipe=None, options={}, config=TrainConfig())
    with pytest.raises(MfrkitError, match="trains family 'csn', not 'attention'"):
        plan_training(family="attention", recipe="csn-zhao2022", options={}, config=TrainConfig())


def test_models_export_maps_options(monkeypatch, tmp_path):
    calls = {}

    def fake_export(family, out, **kw):
        calls.update(family=family, out=out, **kw)
        meta = {"mfrkit.align": "arcface112", "mfrkit.domain": "probe"}
        return [ExportResult(path=out, metadata=meta, max_abs_diff={1: 1e-6, 8: 2e-6}, embedding_dim=512)]

    monkeypatch.setattr(export_mod, "export_family", fake_export)
    result = runner.invoke(app, ["models", "export", "--family", "heterogeneous", "--out", str(tmp_path / "h.onnx"),
                                 "--option", "backbone=iresnet18"])
    assert result.exit_code == 0, result.output
    assert calls == {"family": "heterogeneous", "out": tmp_path / "h.onnx", "checkpoint": None,
                     "options": {"backbone": "iresnet18"}, "replace": False}
    assert "(probe)" in result.output and "untrained" in result.output
