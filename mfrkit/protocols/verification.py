"""1:1 verification protocols: LFW-style folds of genuine and impostor pairs.

Generation has two steps, each deterministic from the seed:

1. **Base pairs** over source units (see :mod:`.pool`): identities are dealt to
   ``n_folds`` identity-disjoint folds by a seeded snake draft, largest first, so
   each fold gets as many identities and a share of the large ones; in each
   fold, genuine pairs are drawn round-robin over the fold's identities (one pair per
   identity per round, so large identities do not dominate) and impostor pairs
   between two different identities of the fold. Two distinct units are never the
   same photo, so the **leakage guard** holds by construction; ``allow_same_source``
   adds a unit paired with itself (e.g. an unmasked photo against its own masked copy)
   as a genuine candidate.
2. **Realisation** (shared with :mod:`.derive`): each base pair (a, b) becomes
   (left_id, right_id) by drawing one image of unit a for the reference role and one
   of unit b for the probe role, with a generator keyed by the seed and the pair
   (:func:`mfrkit.rng.item_rng`), so the result does not depend on order.
"""

from __future__ import annotations

import os
from math import comb
from typing import Mapping

import numpy as np
import pandas as pd

from ..data.manifest import Manifest
from ..data.manifest_stream import ManifestReader, is_manifest
from ..rng import item_rng
from .errors import InsufficientDataError, ProtocolError
from .folder import Protocol, open_manifest
from .compact_pool import build_compact_pool, compact_eligible
from .pool import Pool, build_pool, pick_image, pick_pair
from .spec import ProtocolSpec, resolve_spec

DEFAULT_FOLDS = 10
DEFAULT_PAIRS = 300
# Below this many candidate pairs a sampler enumerates them all instead of rejection sampling.
_ENUMERATE_LIMIT = 100_000


def as_spec(spec: str | ProtocolSpec, params: Mapping | None = None) -> ProtocolSpec:
    """A resolved spec from a registered name and its parameters (or a spec as is)."""
    if isinstance(spec, ProtocolSpec):
        if params:
            raise ProtocolError("spec parameters go with a spec name, not a resolved ProtocolSpec")
        return spec
    return resolve_spec(spec, **dict(params or {}))


def role_manifests(reference, probe, *, stream: bool = False) -> dict[str, Manifest]:
    """``{"reference": ..., "probe": ...}`` Manifests (see :func:`~.folder.open_manifest`); the
    probe role defaults to the reference manifest. ``stream``: a manifest file is opened as a
    :class:`~mfrkit.data.manifest_stream.ManifestReader` (read by column, its table only
    when asked for) instead of read whole."""
    opener = _open_streamed if stream else open_manifest
    ref = opener(reference)
    return {"reference": ref, "probe": ref if probe is None else opener(probe)}


def _open_streamed(value):
    if is_manifest(value):
        return value
    from ..data.registry import open_source

    return open_source(value, records=False)


# --- base pairs ------------------------------------------------------------------------------------


class _Units:
    """Role availability of the units of one pool, for pair validity and capacities."""

    def __init__(self, pool: Pool, doubled: bool, allow_self: bool) -> None:
        self.pool, self.doubled, self.allow_self = pool, doubled, allow_self

    def left(self, u: str) -> bool:
        return self.pool.has("reference", u)

    def right(self, u: str) -> bool:
        return self.pool.has("probe", u)

    def usable(self, u: str) -> bool:
        if self.doubled:
            return self.left(u) and self.right(u)
        return self.left(u) or self.right(u)

    def orientations(self, a: str, b: str) -> list[tuple[str, str]]:
        """Valid (left unit, right unit) orders of the unordered pair {a, b}."""
        if a == b:
            ok = self.allow_self and self._distinct_self(a)
            return [(a, a)] if ok else []
        out = []
        if self.left(a) and self.right(b):
            out.append((a, b))
        if self.left(b) and self.right(a):
            out.append((b, a))
        if self.doubled:
            return out if len(out) == 2 else []
        return out

    def _distinct_self(self, a: str) -> bool:
        refs, probes = self.pool.candidates["reference"].get(a, []), self.pool.candidates["probe"].get(a, [])
        return any(l != r for l in refs for r in probes)

    def counts(self, units: list[str]) -> tuple[int, int, int]:
        both = sum(1 for u in units if self.left(u) and self.right(u))
        if self.doubled:
            return both, 0, 0
        only_l = sum(1 for u in units if self.left(u) and not self.right(u))
        only_r = sum(1 for u in units if self.right(u) and not self.left(u))
        return both, only_l, only_r

    @staticmethod
    def pairs_of(counts: tuple[int, int, int]) -> int:
        """Number of valid unordered pairs of distinct units, from :meth:`counts`."""
        b, l, r = counts
        return comb(b, 2) + b * (l + r) + l * r

    def genuine_capacity(self, units: list[str]) -> int:
        cap = self.pairs_of(self.counts(units))
        if self.allow_self:
            cap += sum(1 for u in units if self.orientations(u, u))
        return cap


def _assign_folds(by_identity: dict[str, list[str]], units: _Units, n_folds: int,
                  rng: np.random.Generator) -> dict[str, int]:
    """identity -> fold by a snake draft: identities that can form genuine pairs first,
    largest first, dealt 0..k-1 then k-1..0, then the others. Every fold gets the same
    number of identities (within one) and a share of the large ones, so no identity
    crowds a fold. Ties and fold labels follow a seeded shuffle."""
    idents = list(by_identity)
    order = [idents[i] for i in rng.permutation(len(idents))]
    multi = {i: units.genuine_capacity(by_identity[i]) > 0 for i in idents}
    order.sort(key=lambda i: (not multi[i], -len(by_identity[i])))  # stable: the shuffle breaks ties
    labels = rng.permutation(n_folds)
    out = {}
    for pos, ident in enumerate(order):
        r, k = divmod(pos, n_folds)
        out[ident] = int(labels[k if r % 2 == 0 else n_folds - 1 - k])
    return out


def _genuine_stream(group: list[str], units: _Units, rng: np.random.Generator):
    """Random, non-repeating genuine pairs (left unit, right unit) of one identity."""
    k = len(group)
    if comb(k, 2) + k <= 4096:
        # The candidates (group[i], group[j]), i <= j (i < j without self pairs), in that
        # order, as index arrays: every identity's stream is open at once in a fold.
        first, second = np.triu_indices(k, 0 if units.allow_self else 1)
        for idx in rng.permutation(len(first)):
            a, b = group[int(first[idx])], group[int(second[idx])]
            options = units.orientations(a, b)
            if options:
                yield options[int(rng.integers(len(options)))]
        return
    used: set[tuple[str, str]] = set()
    misses = 0
    while misses < 1000:
        i, j = sorted(rng.integers(k, size=2).tolist())
        if i == j and not units.allow_self:
            continue
        key = (group[i], group[j])
        options = units.orientations(*key)
        if key in used or not options:
            misses += 1
            continue
        misses = 0
        used.add(key)
        yield options[int(rng.integers(len(options)))]
    # Nearly exhausted: enumerate what is left.
    rest = [(group[i], group[j]) for i in range(k) for j in range(i + (0 if units.allow_self else 1), k)
            if (group[i], group[j]) not in used]
    for idx in rng.permutation(len(rest)):
        options = units.orientations(*rest[idx])
        if options:
            yield options[int(rng.integers(len(options)))]


def _sample_genuine(groups: list[list[str]], units: _Units, n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    streams = [_genuine_stream(g, units, rng) for g in groups]
    active = list(range(len(groups)))
    out: list[tuple[str, str]] = []
    while active and len(out) < n:
        still = []
        for s in active:
            if len(out) >= n:
                break
            pair = next(streams[s], None)
            if pair is not None:
                out.append(pair)
                still.append(s)
        active = still
    return out


def _sample_impostors(groups: list[list[str]], units: _Units, n: int, capacity: int,
                      rng: np.random.Generator) -> list[tuple[str, str]]:
    if n <= 0:
        return []
    if capacity <= max(4 * n, _ENUMERATE_LIMIT) and capacity <= 5_000_000:
        cand = []
        for gi in range(len(groups)):
            for gj in range(gi + 1, len(groups)):
                for a in groups[gi]:
                    for b in groups[gj]:
                        if units.orientations(a, b):
                            cand.append((a, b))
        chosen = rng.choice(len(cand), size=min(n, len(cand)), replace=False) if cand else []
        out = []
        for idx in chosen:
            options = units.orientations(*cand[idx])
            out.append(options[int(rng.integers(len(options)))])
        return out
    used: set[tuple[str, str]] = set()
    out = []
    attempts, limit = 0, 200 * n + 10_000
    while len(out) < n:
        attempts += 1
        if attempts > limit:
            raise ProtocolError("impostor sampling did not converge; the usable images are too unevenly spread "
                                "over roles. Check the manifests' variants and status.")
        gi, gj = rng.choice(len(groups), size=2, replace=False)
        a = groups[gi][int(rng.integers(len(groups[gi])))]
        b = groups[gj][int(rng.integers(len(groups[gj])))]
        key = (a, b) if a < b else (b, a)
        options = units.orientations(a, b)
        if key in used or not options:
            continue
        used.add(key)
        out.append(options[int(rng.integers(len(options)))])
    return out


def sample_base_pairs(pool: Pool, *, seed: int, n_folds: int = DEFAULT_FOLDS,
                      genuine_per_fold: int = DEFAULT_PAIRS, impostor_per_fold: int = DEFAULT_PAIRS,
                      allow_fewer: bool = False, allow_same_source: bool = False,
                      identity_folds: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Identity-disjoint folds of genuine and impostor pairs of source units.

    Returns
    -------
    DataFrame with columns ``fold`` (int), ``a`` (left unit), ``b`` (right unit),
    ``label`` (1 genuine, 0 impostor); per fold, genuine rows first.

    Raises
    ------
    InsufficientDataError
        A fold cannot supply the pairs asked for (unless ``allow_fewer``).
    """
    if n_folds < 1 or genuine_per_fold < 0 or impostor_per_fold < 0 or genuine_per_fold + impostor_per_fold == 0:
        raise ProtocolError("need n_folds >= 1 and a positive number of pairs per fold")
    units = _Units(pool, pool.spec.doubled, allow_same_source)
    by_identity = {i: [u for u in us if units.usable(u)] for i, us in pool.by_identity().items()}
    by_identity = {i: us for i, us in by_identity.items() if us}
    if identity_folds is not None:
        folds_of = {i: int(f) for i, f in identity_folds.items() if i in by_identity}
        n_folds = (max(identity_folds.values()) + 1) if identity_folds else 0
        if not folds_of:
            raise InsufficientDataError("none of the identities in the given folds has usable images")
    else:
        if len(by_identity) < n_folds:
            raise InsufficientDataError(
                f"{len(by_identity)} identities have usable images for spec {pool.spec.name!r}, fewer than the "
                f"{n_folds} identity-disjoint folds asked for; use fewer folds")
        folds_of = _assign_folds(by_identity, units, n_folds, item_rng(seed, "folds"))

    plan = []
    for fold in range(n_folds):
        idents = sorted(i for i, f in folds_of.items() if f == fold)
        groups = [by_identity[i] for i in idents]
        gen_cap = sum(units.genuine_capacity(g) for g in groups)
        imp_cap = units.pairs_of(units.counts([u for g in groups for u in g])) - \
            sum(units.pairs_of(units.counts(g)) for g in groups)
        plan.append((fold, idents, groups, gen_cap, imp_cap))
    short = [(f, g, i) for f, _, _, g, i in plan if g < genuine_per_fold or i < impostor_per_fold]
    if short and not allow_fewer:
        f, g, i = min(short, key=lambda t: (min(t[1] - genuine_per_fold, t[2] - impostor_per_fold), t[0]))
        n_ident = sum(1 for us in by_identity.values() if len(us) >= 2)
        raise InsufficientDataError(
            f"fold {f} can supply only {g} genuine and {i} impostor pairs ({genuine_per_fold} + {impostor_per_fold} "
            f"asked; {len(short)} of {n_folds} folds fall short). The manifests hold {len(by_identity)} identities "
            f"with usable images for spec {pool.spec.name!r}, {n_ident} of them with 2 or more. Ask for fewer "
            "pairs per fold or fewer folds, or allow fewer pairs (allow_fewer / --allow-fewer).")

    rows = []
    for fold, idents, groups, gen_cap, imp_cap in plan:
        n_gen, n_imp = min(genuine_per_fold, gen_cap), min(impostor_per_fold, imp_cap)
        if genuine_per_fold == impostor_per_fold:  # keep a balanced request balanced
            n_gen = n_imp = min(n_gen, n_imp)
        rng = item_rng(seed, "fold", fold)
        order = rng.permutation(len(groups))
        shuffled = [groups[k] for k in order]
        for a, b in _sample_genuine(shuffled, units, n_gen, rng):
            rows.append((fold, a, b, 1))
        for a, b in _sample_impostors(shuffled, units, n_imp, imp_cap, rng):
            rows.append((fold, a, b, 0))
    if not rows:  # allow_fewer took what there is, and there is nothing: never an empty protocol
        capacity = "; ".join(f"fold {f}: {len(i)} identities, {g} genuine + {m} impostor pairs available"
                             for f, i, _, g, m in plan[:5])
        raise InsufficientDataError(
            f"no pair can be made: even with allow_fewer every fold is empty ({capacity}"
            f"{'; ...' if len(plan) > 5 else ''}). A balanced request "
            "stays balanced in each fold, so a fold needs two identities (impostors) and one with 2 or more images "
            f"(genuine pairs). The manifests hold {len(by_identity)} identities with usable images for spec "
            f"{pool.spec.name!r}: use fewer folds (--folds), or add images.")
    return pd.DataFrame(rows, columns=["fold", "a", "b", "label"])


# --- realisation -----------------------------------------------------------------------------------


def realise_pairs(pool: Pool, base: pd.DataFrame, *, seed: int, allow_missing: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """Turn unit pairs into image pairs (see the module docstring).

    Parameters
    ----------
    pool : Pool
    base : DataFrame
        ``fold``, ``a``, ``b``, ``label``, in order.
    seed : int
    allow_missing : bool
        Keep a pair whose unit has no image for its role, with an empty id on that
        side, instead of raising.

    Returns
    -------
    (pairs, missing): ``pairs`` with ``fold, left_id, right_id, label`` (two rows per
    base pair for doubled specs, in the order (a, b), (b, a)); ``missing`` lists the
    units that could not be supplied.
    """
    orders = [(0, 1), (1, 0)] if pool.spec.doubled else [(0, 1)]
    rows, missing = [], []
    for fold, a, b, label in base[["fold", "a", "b", "label"]].itertuples(index=False, name=None):
        for i, j in orders:
            left, right = (a, b)[i], (a, b)[j]
            # The names seed the draw (the array pool numbers its units; the names do not change).
            l_name, r_name = pool.unit_name(left), pool.unit_name(right)
            rng = item_rng(seed, f"{l_name}\x1f{r_name}", "pick", int(label))
            picked = pick_pair(pool, left, right, int(label), rng)
            if picked is None:
                l_ok, r_ok = pool.has("reference", left), pool.has("probe", right)
                if l_ok and r_ok:
                    raise ProtocolError(f"pair ({l_name}, {r_name}) has a single image for both sides; "
                                        "an image cannot be compared with itself")
                missing.extend(([] if l_ok else [f"{l_name} (reference)"]) + ([] if r_ok else [f"{r_name} (probe)"]))
                if not allow_missing:
                    continue
                picked = (pick_image(pool, "reference", left, rng) or "", pick_image(pool, "probe", right, rng) or "")
            rows.append((int(fold), picked[0], picked[1], int(label)))
    if missing and not allow_missing:
        uniq = sorted(set(missing))
        raise InsufficientDataError(
            f"{len(uniq)} source image(s) have no image for the role they are needed in, e.g. "
            f"{', '.join(uniq[:5])}; the pairs would change. Synthesize the missing variants, or pass "
            "allow_missing (--allow-missing) to keep those pairs with an empty id (scored as failures).")
    return pd.DataFrame(rows, columns=["fold", "left_id", "right_id", "label"]), sorted(set(missing))


# --- the entry point -------------------------------------------------------------------------------


#: Below this fraction of a file's references found in the manifests, protocol import
#: and make refuse unless told to go ahead (allow_missing): the file is probably not of
#: these images.
MIN_FOUND_FRACTION = 0.5


def check_references_found(found: int, total: int, what: str, where: str, *, allow_missing: bool) -> int:
    """``found`` when at least half of ``total`` references were found (or ``allow_missing``);
    else an :class:`InsufficientDataError` that says how many and how to go ahead."""
    if total and found < MIN_FOUND_FRACTION * total and not allow_missing:
        raise InsufficientDataError(
            f"only {found:,} of the {total:,} {what} {where}: the file is probably not of these images (check the "
            "manifest and the format options); pass --allow-missing (allow_missing=True) to keep the others as failures")
    return found


def make_verification(reference: Manifest | str | os.PathLike, probe: Manifest | str | os.PathLike | None = None, *,
                      spec: str | ProtocolSpec = "umr-ump", spec_params: Mapping | None = None, seed: int = 0,
                      n_folds: int = DEFAULT_FOLDS, genuine_per_fold: int = DEFAULT_PAIRS,
                      impostor_per_fold: int = DEFAULT_PAIRS, allow_fewer: bool = False,
                      allow_same_source: bool = False, identity_folds: Mapping[str, int] | None = None,
                      allow_missing: bool = False, name: str | None = None) -> Protocol:
    """Generate a 1:1 protocol (in memory; write it with :func:`~.folder.save_protocol`).

    Parameters
    ----------
    reference, probe : Manifest or path
        Manifests serving the reference (left) and probe (right) roles; ``probe``
        defaults to ``reference``. Masked / partial images link to their unmasked
        source by ``source_id``, possibly across the two manifests.
    spec : str or ProtocolSpec
        A registered spec name (``umr-mp``, ...) with ``spec_params``
        (e.g. ``{"region": "Nose", "factor": 0.3}`` for partial specs).
    seed : int
        Same seed and manifests -> the same protocol, byte for byte.
    n_folds, genuine_per_fold, impostor_per_fold : int
        LFW: 10, 300, 300. Doubled specs (partial-holistic, partial-cross) have twice
        as many rows: each base pair in both orientations.
    allow_fewer : bool
        Take what the data offers instead of raising :class:`InsufficientDataError`
        (a balanced request stays balanced per fold).
    allow_same_source : bool
        Also allow genuine pairs of one photo with a synthetic copy of itself (off:
        the leakage guard).
    identity_folds : mapping identity -> fold, optional
        Use these folds (e.g. LFW's ``people.txt``) instead of dealing identities;
        identities not listed are not used.
    allow_missing : bool
        With ``identity_folds``: go ahead when most listed identities have no usable
        image in the manifests (by default that is an error: the folds were probably
        meant for another dataset). ``params.identity_folds_found`` says how many were.
    name : str, optional
        Protocol name (default: the spec name).

    Returns
    -------
    Protocol of kind ``verification``.
    """
    spec_obj = as_spec(spec, spec_params)
    # Manifest files, a spec the array pool serves, no given folds: the columns the pool
    # needs are read and held as arrays (:mod:`.compact_pool`); the same pairs either way.
    compact = (identity_folds is None and compact_eligible(spec_obj)
               and not is_manifest(reference) and not is_manifest(probe))
    manifests = role_manifests(reference, probe, stream=compact)
    if compact and all(isinstance(m, ManifestReader) for m in manifests.values()):
        pool = build_compact_pool(spec_obj, manifests)
    else:
        pool = build_pool(spec_obj, manifests)
    pool.require_roles()
    found = None
    if identity_folds is not None:
        found = check_references_found(len(set(pool.by_identity()) & set(identity_folds)), len(identity_folds),
                                       "identities of the given folds (people.txt)", "have usable images in the manifests",
                                       allow_missing=allow_missing)
    base = sample_base_pairs(pool, seed=seed, n_folds=n_folds, genuine_per_fold=genuine_per_fold,
                             impostor_per_fold=impostor_per_fold, allow_fewer=allow_fewer,
                             allow_same_source=allow_same_source, identity_folds=identity_folds)
    pairs, _ = realise_pairs(pool, base, seed=seed)
    params = {"n_folds": int(pairs["fold"].max() + 1) if len(pairs) else n_folds,
              "genuine_per_fold": genuine_per_fold, "impostor_per_fold": impostor_per_fold,
              "allow_fewer": allow_fewer, "allow_same_source": allow_same_source,
              "identity_folds": "given" if identity_folds is not None else "dealt"}
    if found is not None:
        params["identity_folds_found"] = {"found": found, "listed": len(identity_folds)}
    info = {"name": name or spec_obj.name, "kind": "verification", "spec": spec_obj.name,
            "spec_params": spec_obj.params, "seed": int(seed), "params": params,
            "pool": {"units": len(pool.units()), "identities": len(pool.by_identity()), "skipped": pool.skipped}}
    return Protocol(info=info, manifests=manifests, pairs=pairs)
