"""1:N identification protocols: a gallery and probes, closed set, open set or MegaFace-like.

The gallery is filled from the ``reference`` role and the probes from the ``probe``
role of the spec, so gallery and probe variants are chosen independently (``umr-mp``:
unmasked gallery, masked probes). Every image stands for one source unit (see
:mod:`.pool`), and within an identity the gallery units and the probe units are
disjoint: a probe is never searched against its own source photo (the leakage guard).

Modes
-----
``closed``
    Every identity with at least ``gallery_per_identity`` usable units is enrolled
    with that many units; its other units become probes. Every probe is mated.
``open``
    A seeded ``unmated_fraction`` of the identities is kept out of the gallery: their
    units become non-mated probes (``mated`` = 0). The others are enrolled as in
    ``closed``.
``megaface``
    MegaFace-like: a ``probe_fraction`` of the identities with two or more units
    become probe identities and every other identity contributes distractors (all its
    units, or ``n_distractors`` in all). For a probe identity, each of its units is in
    turn the single mate of each of its other units: one ``probes.csv`` row per
    (probe, mate), searched against the distractors plus that mate only.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import pandas as pd

from ..data.manifest import Manifest
from ..rng import item_rng
from .errors import InsufficientDataError, ProtocolError
from .folder import Protocol
from .pool import Pool, build_pool, pick_image
from .spec import ProtocolSpec
from .verification import as_spec, role_manifests

MODES = ("closed", "open", "megaface")


def _image(pool: Pool, role: str, unit: str, seed: int) -> str:
    image = pick_image(pool, role, unit, item_rng(seed, unit, role))
    assert image is not None
    return image


def _take(items: list, k: int | None, rng: np.random.Generator) -> list:
    """``k`` items drawn without replacement (all of them when k is None), kept in order."""
    if k is None or k >= len(items):
        return list(items)
    idx = sorted(rng.choice(len(items), size=k, replace=False).tolist())
    return [items[i] for i in idx]


def make_identification(reference: Manifest | str | os.PathLike, probe: Manifest | str | os.PathLike | None = None, *,
                        spec: str | ProtocolSpec = "umr-ump", spec_params: Mapping | None = None, seed: int = 0,
                        mode: str = "closed", gallery_per_identity: int | None = None,
                        probes_per_identity: int | None = None, unmated_fraction: float = 0.5,
                        probe_fraction: float = 0.5, n_distractors: int | None = None,
                        max_identities: int | None = None, name: str | None = None) -> Protocol:
    """Generate a 1:N protocol (in memory; write it with :func:`~.folder.save_protocol`).

    Parameters
    ----------
    reference, probe : Manifest or path
        Manifests of the gallery (reference role) and probes; ``probe`` defaults to
        ``reference``.
    spec, spec_params : see :func:`~.verification.make_verification`.
    seed : int
    mode : {"closed", "open", "megaface"}
    gallery_per_identity : int, optional
        Gallery units per enrolled identity (closed/open, default 1) or mates per
        probe identity (megaface, default all).
    probes_per_identity : int, optional
        Cap on probe units per identity (default: all that remain).
    unmated_fraction : float
        Open set: fraction of identities whose probes are non-mated.
    probe_fraction : float
        MegaFace: fraction of eligible identities used as probe identities.
    n_distractors : int, optional
        MegaFace: number of distractor images (default: every unit of the other
        identities).
    max_identities : int, optional
        Cap on enrolled identities (closed/open) or probe identities (megaface).

    Returns
    -------
    Protocol of kind ``identification`` with ``gallery`` (``image_id, identity,
    distractor``) and ``probes`` (``image_id, identity, mated, mate_id``).
    """
    if mode not in MODES:
        raise ProtocolError(f"unknown 1:N mode {mode!r}; choose one of {MODES}")
    for label, value in (("unmated_fraction", unmated_fraction), ("probe_fraction", probe_fraction)):
        if not 0.0 < value < 1.0:
            raise ProtocolError(f"{label} must be between 0 and 1 (exclusive), got {value}")
    for label, value in (("gallery_per_identity", gallery_per_identity), ("probes_per_identity", probes_per_identity),
                         ("max_identities", max_identities)):
        if value is not None and value < 1:
            raise ProtocolError(f"{label} must be at least 1, got {value}")
    if n_distractors is not None and n_distractors < 0:
        raise ProtocolError(f"n_distractors must be >= 0, got {n_distractors}")
    spec_obj = as_spec(spec, spec_params)
    if spec_obj.doubled:
        raise ProtocolError(f"spec {spec_obj.name!r} pairs each comparison both ways and has no 1:N form; "
                            "use partial-same, or a masked/unmasked spec")
    manifests = role_manifests(reference, probe)
    pool = build_pool(spec_obj, manifests)
    pool.require_roles()
    rng = item_rng(seed, "identification", mode)
    by_identity = pool.by_identity()
    idents = [list(by_identity)[i] for i in rng.permutation(len(by_identity))]

    if mode == "megaface":
        gallery, probes = _megaface(pool, by_identity, idents, seed, rng, gallery_per_identity, probes_per_identity,
                                    probe_fraction, n_distractors, max_identities)
    else:
        gallery, probes = _enrolled(pool, by_identity, idents, seed, rng, mode, gallery_per_identity or 1,
                                    probes_per_identity, unmated_fraction, max_identities)
    gallery = pd.DataFrame(gallery, columns=["image_id", "identity", "distractor"])
    probes = pd.DataFrame(probes, columns=["image_id", "identity", "mated", "mate_id"])
    probe_idents = set(probes["identity"])
    gallery["distractor"] = (~gallery["identity"].isin(probe_idents)).astype("int64")
    gallery = gallery.sort_values(["identity", "image_id"], kind="stable").reset_index(drop=True)
    probes = probes.sort_values(["identity", "image_id", "mate_id"], kind="stable").reset_index(drop=True)
    if probes.empty or gallery.empty:
        raise InsufficientDataError(f"the manifests give no {'probes' if probes.empty else 'gallery'} for a {mode}-set "
                                    f"protocol with spec {spec_obj.name!r}: identities need more usable images")
    params = {"mode": mode, "gallery_per_identity": gallery_per_identity, "probes_per_identity": probes_per_identity,
              "unmated_fraction": unmated_fraction if mode == "open" else None,
              "probe_fraction": probe_fraction if mode == "megaface" else None,
              "n_distractors": n_distractors, "max_identities": max_identities}
    info = {"name": name or f"{spec_obj.name}-{mode}", "kind": "identification", "spec": spec_obj.name,
            "spec_params": spec_obj.params, "seed": int(seed), "params": params,
            "pool": {"units": len(pool.units()), "identities": len(by_identity), "skipped": pool.skipped}}
    return Protocol(info=info, manifests=manifests, gallery=gallery, probes=probes)


def _enrolled(pool: Pool, by_identity: dict, idents: list, seed: int, rng, mode: str, per_gallery: int,
              per_probe: int | None, unmated_fraction: float, max_identities: int | None):
    gallery, probes = [], []
    unmated: list[str] = []
    if mode == "open":
        k = int(round(unmated_fraction * len(idents)))
        unmated, idents = idents[:k], idents[k:]
    enrolled = 0
    for ident in idents:
        if max_identities is not None and enrolled >= max_identities:
            break
        units = by_identity[ident]
        refs = [u for u in units if pool.has("reference", u)]
        if len(refs) < per_gallery:
            continue
        g_units = _take(refs, per_gallery, rng)
        p_units = [u for u in units if u not in g_units and pool.has("probe", u)]
        enrolled += 1
        gallery += [(_image(pool, "reference", u, seed), ident, 0) for u in g_units]
        probes += [(_image(pool, "probe", u, seed), ident, 1, "") for u in _take(p_units, per_probe, rng)]
    for ident in unmated:
        p_units = [u for u in by_identity[ident] if pool.has("probe", u)]
        probes += [(_image(pool, "probe", u, seed), ident, 0, "") for u in _take(p_units, per_probe, rng)]
    if mode == "open" and not any(m == 0 for _, _, m, _ in probes):
        raise InsufficientDataError("no non-mated probes: the open-set split left no identity with probe images; "
                                    "raise unmated_fraction or use more identities")
    return gallery, probes


def _megaface(pool: Pool, by_identity: dict, idents: list, seed: int, rng, per_mate: int | None,
              per_probe: int | None, probe_fraction: float, n_distractors: int | None, max_identities: int | None):
    def eligible(ident: str) -> bool:
        units = by_identity[ident]
        return any(pool.has("reference", v) and any(pool.has("probe", u) for u in units if u != v) for v in units)

    candidates = [i for i in idents if eligible(i)]
    n_probe = max(1, int(round(probe_fraction * len(candidates)))) if candidates else 0
    if max_identities is not None:
        n_probe = min(n_probe, max_identities)
    probe_idents = candidates[:n_probe]
    chosen = set(probe_idents)
    gallery, probes = [], []
    for ident in probe_idents:
        units = by_identity[ident]
        mates = _take([v for v in units if pool.has("reference", v)], per_mate, rng)
        probe_units = _take([u for u in units if pool.has("probe", u)], per_probe, rng)
        gallery += [(_image(pool, "reference", v, seed), ident, 0) for v in mates]
        for u in probe_units:
            p_img = _image(pool, "probe", u, seed)
            probes += [(p_img, ident, 1, _image(pool, "reference", v, seed)) for v in mates if v != u]
    distractors = [(u, i) for i in idents if i not in chosen for u in by_identity[i] if pool.has("reference", u)]
    distractors = _take(distractors, n_distractors, rng)
    gallery += [(_image(pool, "reference", u, seed), ident, 1) for u, ident in distractors]
    if not distractors:
        raise InsufficientDataError("no distractors: every identity was used for probes; lower probe_fraction")
    return gallery, probes
