"""The image pool a protocol draws from: source units, identities and per-role candidates.

A *source unit* is one original photo and everything synthesized from it: an
unmasked image is its own unit, and a masked or partial image belongs to the unit
of the image it was made from (its ``source_id``, followed transitively, across
manifests). The leakage guard works on units: two images of the same unit are never
compared unless the caller asks for it.

For each role of a spec (``reference``, ``probe``) the pool lists, per unit, the
``image_id``s of that role's manifest that pass the role's selector, have status
``ok`` and an identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data.manifest import STATUS_OK, Manifest
from .errors import ProtocolError
from .spec import ROLES, ProtocolSpec


def _distinct(manifests: dict[str, Manifest]) -> list[Manifest]:
    out: list[Manifest] = []
    for role in sorted(manifests):
        m = manifests[role]
        if all(m is not other for other in out):
            out.append(m)
    return out


class RootResolver:
    """Maps any ``image_id`` to its source unit (the root of its ``source_id`` chain).

    Parameters
    ----------
    manifests : sequence of Manifest
        Looked up in order; an id is first looked up in the manifest it came from.
    """

    def __init__(self, manifests: list[Manifest]) -> None:
        self._parents: list[dict[str, str]] = []
        self._ids: list[set] = []
        for m in manifests:
            table = m.table
            self._ids.append(set(table["image_id"].astype(str)))
            src = table[table["source_id"].notna()]
            self._parents.append(dict(zip(src["image_id"].astype(str), src["source_id"].astype(str))))

    def root(self, image_id: str, home: int | None = None) -> str:
        """The unit of ``image_id``; ``home`` is the index of the manifest it belongs to."""
        cur, seen = image_id, set()
        while cur not in seen:
            seen.add(cur)
            order = ([home] if home is not None else []) + [i for i in range(len(self._ids)) if i != home]
            parent = None
            for i in order:
                if cur in self._ids[i]:
                    parent, home = self._parents[i].get(cur), i
                    break
            if parent is None or parent == cur:
                return cur
            cur = parent
        return cur


@dataclass
class Pool:
    """Candidates per role and unit, and the identity of every unit.

    Attributes
    ----------
    spec : ProtocolSpec
    manifests : dict role -> Manifest
    identity : dict unit -> identity
    candidates : dict role -> dict unit -> list of image_id (sorted)
    mask_type : dict image_id -> mask type (or None), for the candidate images
    skipped : dict reason -> number of rows passing a selector but left out
    resolver : RootResolver
    """

    spec: ProtocolSpec
    manifests: dict[str, Manifest]
    identity: dict[str, str]
    candidates: dict[str, dict[str, list[str]]]
    mask_type: dict[str, str | None]
    skipped: dict[str, int] = field(default_factory=dict)
    resolver: RootResolver | None = None

    def has(self, role: str, unit: str) -> bool:
        return bool(self.candidates[role].get(unit))

    def units(self) -> list[str]:
        """Every unit with a candidate in some role, sorted."""
        return sorted(set(self.candidates["reference"]) | set(self.candidates["probe"]))

    def by_identity(self) -> dict[str, list[str]]:
        """identity -> sorted units."""
        out: dict[str, list[str]] = {}
        for unit in self.units():
            out.setdefault(self.identity[unit], []).append(unit)
        return dict(sorted(out.items()))

    def unit_name(self, unit: str) -> str:
        """The name of ``unit`` (its own: the array pool of :mod:`.compact_pool` numbers them)."""
        return unit

    def root(self, image_id: str) -> str:
        assert self.resolver is not None
        return self.resolver.root(image_id)

    def require_roles(self) -> None:
        """Raise :class:`ProtocolError` naming a role no image can serve (e.g.
        ``umr-mp`` drawn from a masked copy alone: nothing unmasked for the reference side)."""
        for role in ROLES:
            if not self.candidates[role]:
                m = self.manifests[role]
                raise ProtocolError(
                    f"the {role} manifest ({m.name or m.path}) has no usable image for the {role} side of spec "
                    f"{self.spec.name!r} ({self.spec.selector(role).describe()}, status ok, with an identity); "
                    f"give the manifest that holds them for the {role} role")


def build_pool(spec: ProtocolSpec, manifests: dict[str, Manifest], *, extra: list[Manifest] = ()) -> Pool:
    """Collect the candidates of ``spec``'s roles from ``manifests`` (role -> Manifest).

    ``extra`` manifests only help resolve ``source_id`` chains and identities (e.g. the
    unmasked manifest a masked one was made from, when neither role uses it).

    Raises
    ------
    ProtocolError
        A role has no manifest, a partial selector matches several crops, or two
        images of one source unit carry different identities.
    """
    for role in ROLES:
        if role not in manifests:
            raise ProtocolError(f"no manifest for the {role} role")
    distinct = _distinct(manifests)
    for m in extra:
        if all(m is not d for d in distinct):
            distinct.append(m)
    resolver = RootResolver(distinct)
    identity_of_id: dict[str, str] = {}
    for m in distinct:
        t = m.table[m.table["identity"].notna()]
        for image_id, ident in zip(t["image_id"].astype(str), t["identity"].astype(str)):
            identity_of_id.setdefault(image_id, ident)

    identity: dict[str, str] = {}
    candidates: dict[str, dict[str, list[str]]] = {}
    mask_type: dict[str, str | None] = {}
    skipped: dict[str, set] = {"status_not_ok": set(), "no_identity": set()}
    for role in ROLES:
        m = manifests[role]
        home = next(i for i, d in enumerate(distinct) if d is m)
        sel = spec.selector(role)
        table = m.table
        matched = table[sel.matches(table)]
        _check_single_crop(matched, sel, role)
        skipped["status_not_ok"].update(matched.loc[matched["status"] != STATUS_OK, "image_id"].astype(str))
        matched = matched[matched["status"] == STATUS_OK]
        per_unit: dict[str, list[str]] = {}
        mtypes = matched["mask_type"].astype(object).where(matched["mask_type"].notna(), None)
        for image_id, ident, mt in zip(matched["image_id"].astype(str), matched["identity"].astype(object), mtypes):
            unit = resolver.root(image_id, home)
            if ident is None or ident is pd.NA or (isinstance(ident, float) and np.isnan(ident)):
                ident = identity_of_id.get(unit)
            if ident is None:
                skipped["no_identity"].add(image_id)
                continue
            ident = str(ident)
            known = identity.setdefault(unit, ident)
            if known != ident:
                raise ProtocolError(
                    f"image {image_id!r} is labelled {ident!r} but its source {unit!r} is labelled {known!r}; "
                    "fix the manifest's identity column before making protocols")
            per_unit.setdefault(unit, []).append(image_id)
            mask_type[image_id] = mt
        candidates[role] = {u: sorted(ids) for u, ids in sorted(per_unit.items())}
    counts = {reason: len(ids) for reason, ids in skipped.items()}
    return Pool(spec, dict(manifests), identity, candidates, mask_type, counts, resolver)


def _check_single_crop(matched: pd.DataFrame, sel, role: str) -> None:
    if sel.variant != "partial" or matched.empty:
        return
    combos = matched[["region", "factor", "centered"]].astype(object).drop_duplicates()
    if len(combos) > 1:
        listed = "; ".join(f"region={r} factor={f} centered={c}" for r, f, c in combos.itertuples(index=False))
        raise ProtocolError(f"the {role} selector ({sel.describe()}) matches several crops ({listed}); "
                            "pass centered=True/False to pick one")


def pick_image(pool: Pool, role: str, unit: str, rng: np.random.Generator) -> str | None:
    """One candidate image of ``unit`` for ``role`` (None when it has none)."""
    ids = pool.candidates[role].get(unit)
    if not ids:
        return None
    return ids[int(rng.integers(len(ids)))]


def pick_pair(pool: Pool, a: str, b: str, label: int, rng: np.random.Generator) -> tuple[str, str] | None:
    """Left image of unit ``a`` (reference role) and right image of unit ``b`` (probe role).

    With the spec's ``mlfw`` mask pairing, a genuine pair prefers two different mask
    types and an impostor pair the same one, falling back to any choice when the
    units offer no such combination. Never returns the same image on both sides.
    Returns None when either unit has no candidate.
    """
    left, right = pool.candidates["reference"].get(a), pool.candidates["probe"].get(b)
    if not left or not right:
        return None
    options = [(l, r) for l in left for r in right if l != r]
    if not options:
        return None
    if pool.spec.mask_pairing == "mlfw":
        mt = pool.mask_type
        preferred = [(l, r) for l, r in options if mt.get(l) is not None and mt.get(r) is not None
                     and ((mt[l] != mt[r]) if label else (mt[l] == mt[r]))]
        options = preferred or options
    return options[int(rng.integers(len(options)))]


def available_crops(manifest: Manifest) -> list[tuple[str, float, bool | None]]:
    """Distinct (region, factor, centered) of the manifest's ok partial images, sorted."""
    t = manifest.table
    t = t[(t["variant"] == "partial") & (t["status"] == STATUS_OK)]
    combos = set()
    for region, factor, centered in t[["region", "factor", "centered"]].astype(object).itertuples(index=False):
        if region is None or region is pd.NA or factor is None or factor is pd.NA:
            continue
        c = None if centered is None or centered is pd.NA else bool(centered)
        combos.add((str(region), float(factor), c))
    return sorted(combos, key=lambda x: (x[0], x[1], -1 if x[2] is None else int(x[2])))
