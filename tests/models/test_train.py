"""The training loop end to end: checkpoints, the loss log, exact resume, refusal to mix runs."""

from __future__ import annotations

import json

import pytest
import torch
from tests.support.models import TINY

from mfrkit.errors import MfrkitError
from mfrkit.model_input import ModelInput
from mfrkit.models import create_backbone
from mfrkit.models.checkpoint import load_checkpoint
from mfrkit.models.teacher import TorchTeacher
from mfrkit.models.train import TrainConfig, epoch_batches, lr_at, train

FAST = dict(batch_size=6, lr=0.02, workers=0, log_every=1, checkpoint_every=2, epochs=2)


def _teacher():
    torch.manual_seed(7)
    net = create_backbone("iresnet18", width=4, embedding_dim=12, input_size=(96, 96))
    # A teacher with its own input: 96x96, another normalisation.
    return TorchTeacher(net, ModelInput(input_size=(96, 96), align="arcface96", mean=(120.0,) * 3, std=(60.0,) * 3))


def _weights(path):
    return load_checkpoint(path)["model"]


def test_lr_schedule_and_batches():
    assert lr_at(0, 100, 0.1) == pytest.approx(0.1)
    assert lr_at(50, 100, 0.1) == pytest.approx(0.05)
    assert lr_at(0, 100, 0.1, warmup=10) == pytest.approx(0.01)
    b = epoch_batches(13, 6, seed=0, epoch=0)
    assert [len(x) for x in b] == [6, 6]  # a last batch of one is dropped (BatchNorm)
    assert sorted(sum(epoch_batches(14, 6, 0, 0), [])) == list(range(14))
    assert epoch_batches(14, 6, 0, 1) != epoch_batches(14, 6, 0, 0)


def test_train_csn_with_teacher_checkpoints_logs_and_resumes_exactly(tiny_dataset, tmp_path):
    cfg = TrainConfig(**FAST)
    straight = train("csn", tiny_dataset, tmp_path / "a", options=TINY["csn"], config=cfg, teacher=_teacher(),
                     aligned=True, max_steps=5)
    assert (straight.step, straight.resumed_from, straight.n_classes) == (5, 0, 3)
    assert {"cls", "sub", "kl", "kd", "loss"} <= set(straight.last_losses)

    first = train("csn", tiny_dataset, tmp_path / "b", options=TINY["csn"], config=cfg, teacher=_teacher(),
                  aligned=True, max_steps=2)
    assert first.step == 2
    resumed = train("csn", tiny_dataset, tmp_path / "b", options=TINY["csn"], config=cfg, teacher=_teacher(),
                    aligned=True, max_steps=5)
    assert (resumed.resumed_from, resumed.step) == (2, 5)
    wa, wb = _weights(straight.checkpoint), _weights(resumed.checkpoint)
    assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6) for k in wa)

    log = [json.loads(line) for line in (tmp_path / "b" / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    state = load_checkpoint(resumed.checkpoint)
    assert state["teacher_dim"] == 12 and state["config"]["teacher_dim"] == 12
    assert state["classes"] == ["ada", "bob", "cyd"]


def test_training_lowers_the_loss_over_epochs(tiny_dataset, tmp_path):
    cfg = TrainConfig(**{**FAST, "epochs": 6, "lr": 0.05})
    train("domain_adapt", tiny_dataset, tmp_path, options=TINY["domain_adapt"], config=cfg, aligned=True)
    log = [json.loads(line) for line in (tmp_path / "losses.jsonl").read_text().splitlines()]
    per_epoch = {}
    for r in log:
        per_epoch.setdefault(r["epoch"], []).append(r["id"])
    means = [sum(v) / len(v) for _, v in sorted(per_epoch.items())]
    assert means[-1] < means[0]


def test_refuses_to_mix_runs_and_bad_setups(tiny_dataset, tmp_path):
    cfg = TrainConfig(**FAST)
    train("attention", tiny_dataset, tmp_path, options=TINY["attention"], config=cfg, aligned=True, max_steps=1)
    with pytest.raises(MfrkitError, match="different run.*family options differ"):
        train("attention", tiny_dataset, tmp_path, options={**TINY["attention"], "n_maps": 2}, config=cfg, aligned=True)
    with pytest.raises(MfrkitError, match="does not use a teacher"):
        train("attention", tiny_dataset, tmp_path / "x", options=TINY["attention"], config=cfg, teacher=_teacher(), aligned=True)
    with pytest.raises(MfrkitError, match="pass the teacher"):
        train("csn", tiny_dataset, tmp_path / "y", options={**TINY["csn"], "teacher_dim": 8}, config=cfg, aligned=True)
    with pytest.raises(MfrkitError, match="batch_size"):
        TrainConfig(batch_size=1)


def test_onnx_teacher_reads_its_preprocessing_and_matches_torch(tmp_path):
    from mfrkit.models.export import write_onnx
    from mfrkit.models.teacher import OnnxTeacher

    torch_teacher = _teacher()
    path = tmp_path / "teacher.onnx"
    write_onnx(torch_teacher.module, path, torch_teacher.preprocessing, {"family": "test"}, check_batches=(2,))
    onnx_teacher = OnnxTeacher(path)
    assert onnx_teacher.preprocessing.preprocessing() == torch_teacher.preprocessing.preprocessing() and onnx_teacher.embedding_dim == 12
    x = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(onnx_teacher(x), torch_teacher(x), rtol=0, atol=1e-4)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(MfrkitError, match="teacher: .*not a loadable ONNX model"):
        OnnxTeacher(tmp_path / "junk.onnx")


def test_a_run_folder_that_is_a_file_is_refused(tiny_dataset, tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(MfrkitError, match="run folder .* is a file"):
        train("csn", tiny_dataset, tmp_path / "run", options=TINY["csn"], config=TrainConfig(**FAST), aligned=True)
