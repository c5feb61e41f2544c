"""The model-family registry and the interface every family implements.

A family is an ``nn.Module`` subclass of :class:`FamilyModel` with a frozen dataclass
``Config`` (a :class:`BackboneConfig` subclass: its architecture and loss weights, saved in
checkpoints) and:

``preprocessing_for(config)`` (and the ``preprocessing`` property)
    the :class:`~mfrkit.model_input.ModelInput` its inputs need, declared
    once and written into the exported ONNX metadata (default: ArcFace 112x112);
``embedding_dim``
    the size of the exported embedding (default: ``config.embedding_dim``);
``forward(x)``
    the embedding ``(N, D)`` of images ``(N, 3, H, W)``: exactly what is exported;
``training_step(batch, progress)``
    a dict of scalar losses whose ``"loss"`` entry is minimised; ``batch`` holds the
    tensors listed in ``batch_keys`` (see :mod:`mfrkit.models.dataset`);
``export_modules()``
    ``{domain: module}`` to export: ``{"": self}`` for single-graph families, one entry
    per domain for ``heterogeneous``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from ..errors import MfrkitError
from ..model_input import ARCFACE_112_INPUT, ModelInput
from ..registry import Registry

#: The modules of the built-in families (each registers its family when imported).
BUILTIN_FAMILY_MODULES = ("attention", "cosface", "csn", "domain_adapt", "heterogeneous")


class _FamilyRegistry(Registry):
    """The family registry; the first lookup imports the built-in family modules, so
    ``FAMILIES.get("csn")`` works whichever module was imported first."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            import importlib

            for module in BUILTIN_FAMILY_MODULES:
                importlib.import_module(f"{__package__}.{module}")

    def get(self, name: str):
        self._load()
        return super().get(name)

    def names(self) -> list[str]:
        self._load()
        return super().names()

    def __contains__(self, name: object) -> bool:
        self._load()
        return super().__contains__(name)

    def __len__(self) -> int:
        self._load()
        return super().__len__()


#: Model families by name: ``FamilyModel`` subclasses.
FAMILIES: Registry = _FamilyRegistry("model family")


class FamilyModel(nn.Module):
    """Base class of the reference families; see the module docstring."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = object
    #: Batch entries ``training_step`` reads.
    batch_keys: ClassVar[frozenset[str]] = frozenset({"image", "label"})
    #: True for a family some of whose trainable parameters sit out some steps:
    #: data-parallel training then searches for them every step (slower).
    unused_parameters: ClassVar[bool] = False

    def __init__(self, config: Any, n_classes: int) -> None:
        super().__init__()
        if n_classes < 1:
            raise MfrkitError(f"{self.name} needs at least one identity class, got {n_classes}")
        self.config = config
        self.n_classes = int(n_classes)

    @classmethod
    def preprocessing_for(cls, config: Any) -> ModelInput:
        """The input a model of this family with ``config`` expects (default: the
        ArcFace 112x112 crop, (x - 127.5) / 127.5)."""
        return ARCFACE_112_INPUT

    @property
    def preprocessing(self) -> ModelInput:
        return self.preprocessing_for(self.config)

    @property
    def embedding_dim(self) -> int:
        """Size of the exported embedding (default: ``config.embedding_dim``)."""
        return int(self.config.embedding_dim)

    def training_step(self, batch: Mapping[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def export_modules(self) -> dict[str, nn.Module]:
        return {"": self}


def make_config(name: str, **options) -> Any:
    """The ``Config`` of family ``name`` from keyword options.

    Unknown keys raise MfrkitError listing the valid ones (a typo never passes
    silently); lists become tuples so the config stays hashable and checkpoint-safe.
    """
    cls = FAMILIES.get(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise MfrkitError(f"unknown option(s) {unknown} for family {name!r}; valid: {', '.join(sorted(fields))}")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    hints = typing.get_type_hints(cls.Config)
    for key, value in options.items():
        if not _is_instance(value, hints[key]):
            raise MfrkitError(f"option {key} of family {name!r} must be {_type_name(hints[key])}, got {value!r}")
    try:
        return cls.Config(**options)
    except (TypeError, ValueError) as exc:
        raise MfrkitError(f"invalid options for family {name!r}: {exc}") from exc


def _is_instance(value: Any, hint: Any) -> bool:
    """``isinstance`` for the annotations configs use: int, float, str, bool, None,
    unions and ``tuple[X, ...]`` (an int is a float; a bool is neither)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, a) for a in args)
    if origin is tuple:
        return isinstance(value, tuple) and all(_is_instance(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint in (int, float) and isinstance(value, bool):
        return False
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint) if isinstance(hint, type) else True


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        return f"a list of {_type_name(args[0])}"
    if args:
        return " or ".join(_type_name(a) for a in args)
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))


def create_family(name: str, *, n_classes: int = 2, **options) -> FamilyModel:
    """Build family ``name`` for ``n_classes`` identities with config ``options``.

    ``n_classes`` only sizes the training heads; it does not change the exported graph.
    """
    return build_family(name, make_config(name, **options), n_classes)


def build_family(name: str, config: Any, n_classes: int) -> FamilyModel:
    """Instantiate family ``name`` from a config; a config the network cannot be built
    with (a feature map that vanishes, a layer of size 0) is a MfrkitError, not a
    traceback from deep inside torch."""
    cls = FAMILIES.get(name)
    try:
        return cls(config, n_classes)
    except MfrkitError:
        raise
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        raise MfrkitError(f"cannot build family {name!r} with {config}: {exc}") from None


def check_positive(config: Any, *names: str) -> None:
    """Raise ValueError (made a MfrkitError by :func:`make_config`) unless every named
    field that is set is >= 1."""
    for name in names:
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def check_input_size(size: int, stride: int = 16) -> None:
    """Raise ValueError unless ``size`` is a positive multiple of ``stride`` (the
    backbone halves the resolution four times)."""
    if size < stride or size % stride:
        raise ValueError(f"input_size must be a positive multiple of {stride}, got {size}")


def square_input(size: int, padding: float = 0.0) -> ModelInput:
    """The ArcFace-template input of side ``size`` (``arcface<size>[p<padding>]``)."""
    from ..alignments import arcface_name

    if size == 112 and padding == 0.0:
        return ARCFACE_112_INPUT
    return ModelInput(input_size=(size, size), align=arcface_name(size, padding))


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """What every family's ``Config`` holds (each subclasses this one): the backbone and
    the size of its input and embedding. A family changes a default by declaring the field
    again (``attention``: 160 px, 256-d); checkpoints store the fields by name, so adding
    this base changed none of them.

    Attributes
    ----------
    backbone : str
        A name from :data:`~mfrkit.models.backbones.BACKBONES`.
    width : int
        Backbone width (64 published).
    embedding_dim : int
        Size of the exported embedding.
    input_size : int
        Square crop side, pixels (a multiple of 16).
    """

    backbone: str = "iresnet50"
    width: int = 64
    embedding_dim: int = 512
    input_size: int = 112

    def __post_init__(self) -> None:
        check_positive(self, "width", "embedding_dim")
        check_input_size(self.input_size)


def config_dict(config: Any) -> dict[str, Any]:
    """A config as a plain dict (for checkpoints and logs)."""
    return dataclasses.asdict(config)


def check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    """Raise MfrkitError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise MfrkitError(f"{what} must be one of {choices}, got {value!r}")


def family_names() -> list[str]:
    """Names of the registered families."""
    return FAMILIES.names()


@dataclasses.dataclass(frozen=True)
class FamilyInfo:
    """A family's defaults, for listings: name, one-line summary, input, alignment,
    embedding size and the names of its config options."""

    name: str
    summary: str
    input: str
    align: str
    embedding_dim: int
    options: str


def list_families() -> list[FamilyInfo]:
    """Describe every registered family with its default config."""
    import sys

    infos = []
    for name in FAMILIES.names():
        cls = FAMILIES.get(name)
        config = cls.Config()
        prep = cls.preprocessing_for(config)
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().split("\n\n")[0]
        summary = " ".join(doc.split()).split(": ", 1)[-1]
        infos.append(
            FamilyInfo(
                name=name,
                summary=summary,
                input=f"{prep.input_size[0]}x{prep.input_size[1]} {prep.color}",
                align=prep.align,
                embedding_dim=config.embedding_dim,
                options=", ".join(f.name for f in dataclasses.fields(config)),
            )
        )
    return infos
