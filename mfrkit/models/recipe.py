"""Training recipes: one YAML file per seed paper, which a user can copy and edit.

``mfrkit models train --recipe NAME`` reads ``mfrkit/models/recipes/NAME.yaml`` (or any
YAML file given by path) and trains with its family, family options and optimisation
settings; options given on the command line override the recipe's. ``mfrkit models
recipe NAME`` prints a recipe to copy.

A recipe file holds::

    name: csn-zhao2022            # how --recipe finds it
    family: csn                   # a registered family
    summary: one line
    paper: the citation (or what the method is, where no paper could be verified)
    data: what training data it expects (prose: the kind of dataset and how to make it)
    teacher: what teacher it expects (csn), optional
    options: {...}                # the family's Config fields (mfrkit models list)
    train: {...}                  # TrainConfig fields (epochs, batch_size, lr, ...)
    mask_on_the_fly: false        # mask unmasked images during training
    paper_states: [...]           # what the paper says, as far as it was checked
    our_choices: [...]            # what mfrkit chose where the paper is silent or unchecked

Unknown keys are errors (a misspelt key never passes silently); ``options`` and
``train`` are checked against the family's config and :class:`~mfrkit.models.train.TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import MfrkitError
from ..userfiles import parse_yaml, read_user_text
from .families import FAMILIES, make_config

KEYS = ("name", "family", "summary", "paper", "data", "teacher", "options", "train", "mask_on_the_fly", "paper_states", "our_choices")
REQUIRED = ("name", "family", "summary", "paper", "data", "options", "train", "paper_states", "our_choices")


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe (see the module docstring for the fields)."""

    name: str
    family: str
    summary: str
    paper: str
    data: str
    options: dict[str, Any]
    train: dict[str, Any]
    paper_states: tuple[str, ...]
    our_choices: tuple[str, ...]
    teacher: str | None = None
    mask_on_the_fly: bool = False
    path: Path | None = field(default=None, compare=False)

    def train_config(self, **overrides):
        """The recipe's :class:`~mfrkit.models.train.TrainConfig`, with ``overrides`` on top."""
        from .train import TrainConfig

        return TrainConfig(**{**self.train, **overrides})


def _recipe_dir():
    return resources.files(__package__).joinpath("recipes")


def recipe_names() -> list[str]:
    """Names of the recipes that ship with mfrkit."""
    return sorted(p.name[: -len(".yaml")] for p in _recipe_dir().iterdir() if p.name.endswith(".yaml"))


def recipe_text(name_or_path: str | os.PathLike) -> tuple[str, Path | None]:
    """The YAML text of a shipped recipe (by name) or of a recipe file (by path)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or os.sep in str(name_or_path):
        return read_user_text(path, "yaml"), path
    name = str(name_or_path)
    if name not in recipe_names():
        raise MfrkitError(f"unknown recipe {name!r}; choose one of: {', '.join(recipe_names())} (or give a .yaml file)")
    return _recipe_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8"), None


def parse_recipe(text: str, path: Path | None = None) -> Recipe:
    """Parse and check a recipe's YAML text."""
    where = f"recipe {path}" if path else "recipe"
    data = parse_yaml(text, source=where)
    if not isinstance(data, dict):
        raise MfrkitError(f"{where} must be a YAML mapping of {', '.join(REQUIRED)}")
    unknown = sorted(set(data) - set(KEYS))
    missing = [k for k in REQUIRED if k not in data]
    if unknown or missing:
        raise MfrkitError(f"{where}: " + "; ".join(
            ([f"unknown key(s) {unknown} (valid: {', '.join(KEYS)})"] if unknown else []) + ([f"missing {missing}"] if missing else [])
        ))  # fmt: skip
    family = str(data["family"])
    FAMILIES.get(family)
    for key in ("options", "train"):
        if not isinstance(data[key], dict):
            raise MfrkitError(f"{where}: {key} must be a mapping")
    for key in ("paper_states", "our_choices"):
        if not isinstance(data[key], list) or not all(isinstance(v, str) for v in data[key]):
            raise MfrkitError(f"{where}: {key} must be a list of sentences")
    try:
        make_config(family, **data["options"])
    except MfrkitError as exc:
        raise MfrkitError(f"{where}: options: {exc}") from None
    from .train import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(data["train"]) - fields)
    if bad:
        raise MfrkitError(f"{where}: unknown train setting(s) {bad}; valid: {', '.join(sorted(fields))}")
    try:
        TrainConfig(**data["train"])
    except TypeError as exc:
        raise MfrkitError(f"{where}: train: {exc}") from None
    return Recipe(
        name=str(data["name"]), family=family, summary=str(data["summary"]), paper=str(data["paper"]).strip(),
        data=str(data["data"]).strip(), options=dict(data["options"]), train=dict(data["train"]),
        paper_states=tuple(data["paper_states"]), our_choices=tuple(data["our_choices"]),
        teacher=None if data.get("teacher") is None else str(data["teacher"]).strip(),
        mask_on_the_fly=bool(data.get("mask_on_the_fly", False)), path=path,
    )  # fmt: skip


def load_recipe(name_or_path: str | os.PathLike) -> Recipe:
    """A shipped recipe by name (``csn-zhao2022``) or a recipe file by path."""
    text, path = recipe_text(name_or_path)
    return parse_recipe(text, path)


def list_recipes() -> list[Recipe]:
    """Every shipped recipe, parsed (a broken one fails here, in the tests)."""
    return [load_recipe(name) for name in recipe_names()]


@dataclass(frozen=True)
class TrainingPlan:
    """What ``mfrkit models train`` runs: the family, its options, the settings, and
    the recipe they came from (None without one)."""

    family: str
    options: dict[str, Any]
    config: Any
    mask_on_the_fly: bool
    recipe: str | None = None


def plan_training(*, family: str | None, recipe: str | os.PathLike | None, options: dict[str, Any], config, given=frozenset(),
                  mask_on_the_fly: bool = False) -> TrainingPlan:  # fmt: skip
    """Merge a recipe with the command line: the recipe's family, options and settings,
    overridden by the options given (``options``: family options; ``given``: names of
    the :class:`~mfrkit.models.train_config.TrainConfig` fields typed in, whose values
    are in ``config``). Without a recipe it is the command line alone."""
    from .train_config import TrainConfig

    if recipe is None:
        if family is None:
            raise MfrkitError("name a family (--family) or a recipe (--recipe; see `mfrkit models recipes`)")
        return TrainingPlan(family=family, options=dict(options), config=config, mask_on_the_fly=mask_on_the_fly)
    r = load_recipe(recipe)
    if family is not None and family != r.family:
        raise MfrkitError(f"recipe {r.name!r} trains family {r.family!r}, not {family!r}; drop --family or choose another recipe")
    merged = {**r.train, **{name: getattr(config, name) for name in given}}
    return TrainingPlan(family=r.family, options={**r.options, **options}, config=TrainConfig(**merged),
                        mask_on_the_fly=mask_on_the_fly or r.mask_on_the_fly, recipe=r.name)  # fmt: skip
