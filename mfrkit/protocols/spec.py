"""Protocol specs: which images may stand on each side of a comparison.

A spec names two *roles*. In a 1:1 protocol the ``reference`` role is the left image
of every pair and the ``probe`` role the right one; in a 1:N protocol the
``reference`` role fills the gallery and the ``probe`` role the probes. Each role has
a :class:`Selector` (variant plus optional mask / partial-face filters), and each
role is served by one manifest (possibly the same one for both).

Registered specs (``SPECS``; ``resolve_spec(name, **params)``):

=================== ================== ================== =====================================
name                reference          probe              notes
=================== ================== ================== =====================================
umr-ump             unmasked           unmasked           plain LFW-style verification
umr-mp              unmasked           masked             MFR "unmasked reference, masked probe"
mr-mp               masked             masked             MLFW: genuine pairs prefer different
                                                          mask types, impostors the same one
mr-ump              masked             unmasked
partial-holistic    unmasked           partial(r, f)      PartialLFW; every pair twice
partial-same        partial(r, f)      partial(r, f)      PartialLFW
partial-cross       partial(r, f)      partial(r2, f)     PartialLFW; every pair twice
=================== ================== ================== =====================================

The PartialLFW families follow https://github.com/stefhoer/PartialLFW: for
``partial-holistic`` and ``partial-cross`` the two sides are cropped differently, so
each underlying pair (a, b) is used in both orientations, (a, b) then (b, a), the
left image always from the reference role.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..registry import Registry
from .errors import ProtocolError

ROLES = ("reference", "probe")
MASK_PAIRINGS = ("independent", "mlfw")


@dataclass(frozen=True)
class Selector:
    """Which manifest rows may serve a role.

    Attributes
    ----------
    variant : str
        ``unmasked``, ``masked`` or ``partial``. Rows with a null variant count as
        ``unmasked`` (scanned datasets leave it empty).
    mask_types : tuple of str or None
        For masked rows: keep only these ``mask_type`` values.
    region, factor, centered :
        For partial rows: keep only this crop. ``None`` means any value.
    """

    variant: str
    mask_types: tuple[str, ...] | None = None
    region: str | None = None
    factor: float | None = None
    centered: bool | None = None

    def matches(self, table: pd.DataFrame) -> np.ndarray:
        """Boolean mask, shape (len(table),), of the rows this selector accepts."""
        variant = table["variant"].astype(object).where(table["variant"].notna(), "unmasked")
        keep = np.array(variant == self.variant, dtype=bool)
        if self.mask_types is not None:
            keep &= np.array(table["mask_type"].isin(list(self.mask_types)), dtype=bool)
        if self.region is not None:
            keep &= np.array(table["region"].astype(object) == self.region, dtype=bool)
        if self.factor is not None:
            factor = pd.to_numeric(table["factor"], errors="coerce").astype(float).to_numpy()
            keep &= np.isclose(np.nan_to_num(factor, nan=-1.0), self.factor, rtol=0, atol=1e-9)
        if self.centered is not None:
            centered = table["centered"].astype(object)
            keep &= np.array([v is not None and v is not pd.NA and bool(v) == self.centered for v in centered], dtype=bool)
        return keep

    def describe(self) -> str:
        parts = [self.variant]
        if self.mask_types:
            parts.append("mask_type in " + "/".join(self.mask_types))
        if self.region is not None:
            parts.append(f"region={self.region}")
        if self.factor is not None:
            parts.append(f"factor={self.factor:g}")
        if self.centered is not None:
            parts.append("centered" if self.centered else "non-centered")
        return ", ".join(parts)


@dataclass(frozen=True)
class ProtocolSpec:
    """A resolved spec: the selectors of both roles and how pairs are formed.

    Attributes
    ----------
    name : str
        Registry name (``umr-mp``, ...).
    reference, probe : Selector
    doubled : bool
        Use each underlying 1:1 pair in both orientations (PartialLFW).
    mask_pairing : str
        ``independent``: each side's image is drawn on its own. ``mlfw``: genuine
        pairs prefer different mask types and impostor pairs the same mask type
        (MLFW's rule, which makes masks uninformative about the label).
    params : dict
        The parameters the spec was resolved with (written to ``protocol.json``).
    """

    name: str
    reference: Selector
    probe: Selector
    doubled: bool = False
    mask_pairing: str = "independent"
    description: str = ""
    params: dict = field(default_factory=dict)

    def selector(self, role: str) -> Selector:
        if role not in ROLES:
            raise ProtocolError(f"unknown role {role!r}; expected one of {ROLES}")
        return self.reference if role == "reference" else self.probe


SpecBuilder = Callable[..., ProtocolSpec]
SPECS: Registry[SpecBuilder] = Registry("protocol spec")


def resolve_spec(name: str, **params: Any) -> ProtocolSpec:
    """Build the registered spec ``name`` with ``params`` (``None`` values are ignored).

    Raises
    ------
    UnknownNameError
        ``name`` is not registered (the message lists the valid names).
    ProtocolError
        A parameter is unknown to this spec, missing or invalid.
    """
    builder = SPECS.get(name)
    params = {k: v for k, v in params.items() if v is not None}
    try:
        return builder(**params)
    except TypeError as exc:
        raise ProtocolError(f"spec {name!r}: {exc}; its parameters are: {_param_names(builder)}") from None


def _param_names(builder: SpecBuilder) -> str:
    import inspect

    names = [p for p in inspect.signature(builder).parameters]
    return ", ".join(names) or "(none)"


def _mask_types(mask_types: Any) -> tuple[str, ...] | None:
    if mask_types is None:
        return None
    if isinstance(mask_types, str):
        mask_types = [m for m in mask_types.split(",") if m]
    values = tuple(sorted(str(m) for m in mask_types))
    if not values:
        raise ProtocolError("mask_types is empty")
    return values


def _pairing(value: str) -> str:
    if value not in MASK_PAIRINGS:
        raise ProtocolError(f"mask_pairing {value!r} is not one of {MASK_PAIRINGS}")
    return value


def _factor(value: Any) -> float:
    try:
        factor = float(value)
    except (TypeError, ValueError):
        raise ProtocolError(f"factor must be a number, got {value!r}") from None
    if not math.isfinite(factor) or factor <= 0:
        raise ProtocolError(f"factor must be a positive number, got {value!r}")
    return factor


def _params(**values: Any) -> dict:
    """JSON-ready, only the values that were given."""
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _masked_spec(name: str, ref_variant: str, probe_variant: str, default_pairing: str, description: str) -> SpecBuilder:
    def build(mask_types: Any = None, mask_pairing: str = default_pairing) -> ProtocolSpec:
        types = _mask_types(mask_types)
        pairing = _pairing(mask_pairing)
        ref = Selector(ref_variant, mask_types=types if ref_variant == "masked" else None)
        probe = Selector(probe_variant, mask_types=types if probe_variant == "masked" else None)
        return ProtocolSpec(name, ref, probe, mask_pairing=pairing, description=description,
                            params=_params(mask_types=types, mask_pairing=pairing))

    build.__name__ = name
    build.__doc__ = description
    return build


SPECS.add("umr-ump", _masked_spec("umr-ump", "unmasked", "unmasked", "independent",
                                  "unmasked reference, unmasked probe"))
SPECS.add("umr-mp", _masked_spec("umr-mp", "unmasked", "masked", "independent",
                                 "unmasked reference, masked probe"))
SPECS.add("mr-mp", _masked_spec("mr-mp", "masked", "masked", "mlfw",
                                "masked reference, masked probe (MLFW: genuine pairs prefer different masks, "
                                "impostors the same mask type)"))
SPECS.add("mr-ump", _masked_spec("mr-ump", "masked", "unmasked", "independent",
                                 "masked reference, unmasked probe"))


def _partial(region: Any, factor: Any, centered: Any) -> tuple[str, float, bool | None]:
    if region is None or factor is None:
        raise ProtocolError("partial specs need a region and a factor (see `mfrkit protocol make --help`)")
    return str(region), _factor(factor), (None if centered is None else bool(centered))


@SPECS.register("partial-holistic")
def partial_holistic(region: Any = None, factor: Any = None, centered: Any = None) -> ProtocolSpec:
    """Holistic (unmasked) reference, partial probe (PartialLFW)."""
    region, factor, centered = _partial(region, factor, centered)
    probe = Selector("partial", region=region, factor=factor, centered=centered)
    return ProtocolSpec("partial-holistic", Selector("unmasked"), probe, doubled=True,
                        description="holistic reference, partial probe; every pair in both orientations",
                        params=_params(region=region, factor=factor, centered=centered))


@SPECS.register("partial-same")
def partial_same(region: Any = None, factor: Any = None, centered: Any = None) -> ProtocolSpec:
    """Both sides partial, the same crop (PartialLFW)."""
    region, factor, centered = _partial(region, factor, centered)
    sel = Selector("partial", region=region, factor=factor, centered=centered)
    return ProtocolSpec("partial-same", sel, sel, description="partial reference and probe, same region",
                        params=_params(region=region, factor=factor, centered=centered))


@SPECS.register("partial-cross")
def partial_cross(region: Any = None, region2: Any = None, factor: Any = None, centered: Any = None) -> ProtocolSpec:
    """Reference cropped around one region, probe around another (PartialLFW)."""
    region, factor, centered = _partial(region, factor, centered)
    if region2 is None or str(region2) == region:
        raise ProtocolError("partial-cross needs a second region (region2) different from region")
    ref = Selector("partial", region=region, factor=factor, centered=centered)
    probe = Selector("partial", region=str(region2), factor=factor, centered=centered)
    return ProtocolSpec("partial-cross", ref, probe, doubled=True,
                        description="partial reference and probe from different regions; both orientations",
                        params=_params(region=region, region2=str(region2), factor=factor, centered=centered))


def describe_specs() -> list[tuple[str, str]]:
    """(name, one-line description) of every registered spec, sorted by name."""
    return [(name, (SPECS.get(name).__doc__ or "").strip().splitlines()[0]) for name in SPECS.names()]
