"""Regression tests of the hostile-user run (issue 10) on the model commands: nothing
useless passes with exit code 0, bad options are one-line errors, a broken teacher is
named as the cause."""

from __future__ import annotations

import pytest
import torch
from tests.support.models import TINY

from mfrkit.data.manifest import Manifest
from mfrkit.errors import MfrkitError
from mfrkit.model_input import ModelInput
from mfrkit.models.teacher import TorchTeacher
from mfrkit.models.train import TrainConfig, train

FAST = dict(batch_size=4, lr=0.02, workers=0, log_every=1, epochs=1, device="cpu")


def _main(argv, monkeypatch, capsys):
    from mfrkit import cli

    monkeypatch.setattr("sys.argv", ["mfrkit", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code, capsys.readouterr()


def test_training_on_one_identity_fails_with_a_reason(tiny_dataset, tmp_path):
    table = tiny_dataset.table
    one = Manifest(table[table["identity"].isin(["ada"]) | table["identity"].isna()].reset_index(drop=True), meta=dict(tiny_dataset.meta),
                   path=tiny_dataset.path)  # fmt: skip
    for family in ("csn", "cosface", "domain_adapt"):
        with pytest.raises(MfrkitError, match="one identity \\('ada'\\).*at least two identities"):
            train(family, one, tmp_path / family, options=TINY[family], config=TrainConfig(**FAST), aligned=True)
    assert not (tmp_path / "csn" / "checkpoint.pt").exists()


def test_the_cli_says_so_too(tiny_dataset, tmp_path, monkeypatch, capsys):
    from mfrkit.data.manifest import write_manifest

    table = tiny_dataset.table
    one = Manifest(table[table["identity"] == "bob"].reset_index(drop=True), meta={"name": "one", "root": str(tiny_dataset.root)})
    write_manifest(one, tmp_path / "one.parquet")
    code, out = _main(["models", "train", "--family", "cosface", "--data", str(tmp_path / "one.parquet"), "--aligned", "-j", "0",
                       "--device", "cpu", "--batch-size", "2", "-o", str(tmp_path / "run"), "--option", "backbone=iresnet18",
                       "--option", "width=4", "--option", "embedding_dim=8"], monkeypatch, capsys)  # fmt: skip
    assert code == 1 and "one identity ('bob')" in out.err and "Traceback" not in out.err + out.out


@pytest.mark.parametrize(
    "option, message",
    [
        ("width=-1", "width must be >= 1, got -1"),
        ("embedding_dim=0", "embedding_dim must be >= 1, got 0"),
        ("input_size=100", "input_size must be a positive multiple of 16, got 100"),
    ],
)
def test_export_with_a_bad_size_is_a_one_line_error(option, message, tmp_path, monkeypatch, capsys):
    code, out = _main(["models", "export", "--family", "csn", "--out", str(tmp_path / "m.onnx"), "--option", option], monkeypatch, capsys)
    assert code == 1 and message in out.err and "Traceback" not in out.err and len(out.err.strip().splitlines()) <= 2
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("family", ["attention", "heterogeneous", "domain_adapt", "cosface"])
def test_every_family_refuses_sizes_it_cannot_build(family):
    from mfrkit.models import create_family

    with pytest.raises(MfrkitError, match="width must be >= 1"):
        create_family(family, width=0)
    with pytest.raises(MfrkitError, match="embedding_dim must be >= 1"):
        create_family(family, embedding_dim=-3)


class _NaNNet(torch.nn.Module):
    """A teacher whose output is NaN for every second image (a broken export, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.mean((2, 3)).repeat(1, 4) * self.scale
        out[::2] = float("nan")
        return out


def test_a_nan_teacher_is_named_as_the_cause_not_the_learning_rate(tiny_dataset, tmp_path):
    teacher = TorchTeacher(_NaNNet(), ModelInput(input_size=(64, 64), align="arcface64"))
    with pytest.raises(MfrkitError) as info:
        train("csn", tiny_dataset, tmp_path, options=TINY["csn"], config=TrainConfig(**FAST), teacher=teacher, aligned=True)
    message = str(info.value)
    assert "teacher returned non-finite embeddings" in message and "learning rate" not in message
    assert "for 2 of 4 images" in message


def test_a_diverging_loss_names_the_term_and_the_learning_rate(tiny_dataset, tmp_path, monkeypatch):
    from mfrkit.models.cosface import CosFaceBaseline

    real = CosFaceBaseline.training_step

    def exploding(self, batch, progress):
        losses = real(self, batch, progress)
        losses["cls"] = losses["cls"] * float("inf")
        losses["loss"] = losses["cls"]
        return losses

    monkeypatch.setattr(CosFaceBaseline, "training_step", exploding)
    with pytest.raises(MfrkitError, match="loss term\\(s\\) cls became non-finite at step 0 .*lower the learning rate"):
        train("cosface", tiny_dataset, tmp_path, options=TINY["cosface"], config=TrainConfig(**FAST), aligned=True)


def test_a_copy_without_its_sources_trains_a_family_that_reads_none(tiny_dataset, tmp_path):
    """The README's `models train --family attention --data partial-casia`: a partial (or
    masked) copy holds no source photos; families that do not read the source train on it,
    families that do still say which rows lack one."""
    from mfrkit.models.dataset import PairedFaceDataset

    table = tiny_dataset.table
    copy = table[table["source_id"].notna()].reset_index(drop=True)  # sources left out, as in a partial copy
    assert len(copy)
    orphan = Manifest(copy, meta=dict(tiny_dataset.meta), path=tiny_dataset.path)
    result = train("attention", orphan, tmp_path / "att", options=TINY["attention"], config=TrainConfig(**FAST), aligned=True, max_steps=1)
    assert result.n_samples == len(copy) and not result.dropped.get("source_missing")
    prep = ModelInput(input_size=(32, 32), align="arcface32")
    with_source = PairedFaceDataset(orphan, prep, aligned=True)
    assert with_source.dropped["source_missing"] == len(copy)


def test_export_compares_onnx_and_torch_relative_to_huge_embedding_norms(tmp_path):
    """A briefly trained network can put out norms of millions: the export check is
    relative to the norm there (float32 rounding alone exceeds an absolute 1e-4)."""
    from mfrkit.models.export import write_onnx

    class Loud(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = torch.nn.Linear(3 * 16 * 16, 16)
            with torch.no_grad():
                self.fc.weight.mul_(1e5)

        def forward(self, x):
            return self.fc(x.flatten(1))

    import numpy as np
    import onnxruntime as ort

    prep = ModelInput(input_size=(16, 16), align="arcface16")
    result = write_onnx(Loud(), tmp_path / "loud.onnx", prep, {"family": "test"})
    assert all(d <= 1e-4 for d in result.max_abs_diff.values())
    # The absolute difference itself is far above 1e-4 (the old check refused this model).
    x = np.random.default_rng(1).normal(size=(8, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = Loud()(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(str(tmp_path / "loud.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.abs(got - expected).max() > 1e-4 and np.linalg.norm(expected, axis=1).max() > 1e5
