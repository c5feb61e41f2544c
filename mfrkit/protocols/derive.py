"""Derived protocols: the same pairs and folds as an existing 1:1 protocol, other variants.

Given a protocol on an unmasked dataset (e.g. the real LFW ``pairs.txt`` imported with
``mfrkit protocol import``) and a synthesized manifest whose rows point back to the
unmasked images by ``source_id``, :func:`derive_verification` keeps every pair, label,
fold and row order and swaps each side for an image of the same source photo in the
variant the new spec asks for (``umr-mp``: left stays unmasked, right becomes one of
its masked copies; ``mr-mp``: both masked, MLFW's mask pairing). This is how LFW plus
``mfrkit synth`` becomes an MLFW-like benchmark. Doubled specs (``partial-holistic``,
``partial-cross``) list each pair twice, as PartialLFW does.
"""

from __future__ import annotations

import os
from typing import Mapping

import pandas as pd

from ..data.manifest import Manifest
from .errors import ProtocolError
from .folder import Protocol, load_protocol
from .kinds import has_pair_list
from .pool import build_pool
from .spec import ProtocolSpec
from .verification import as_spec, realise_pairs, role_manifests


def derive_verification(parent: Protocol | str | os.PathLike, reference: Manifest | str | os.PathLike,
                        probe: Manifest | str | os.PathLike | None = None, *, spec: str | ProtocolSpec = "umr-mp",
                        spec_params: Mapping | None = None, seed: int | None = None, allow_missing: bool = False,
                        allow_same_source: bool = False, name: str | None = None) -> Protocol:
    """Re-express ``parent``'s pairs under ``spec``.

    Parameters
    ----------
    parent : Protocol or path of a protocol folder
        A ``verification`` protocol; its manifests are checked (fingerprints) and used
        to trace source photos.
    reference, probe : Manifest or path
        Manifests for the new spec's roles (``probe`` defaults to ``reference``).
    spec, spec_params : the new spec.
    seed : int, optional
        Seeds the choice among a photo's synthetic copies (default: the parent's seed, or 0).
    allow_missing : bool
        Keep a pair whose source photo has no image of the needed variant (e.g. the
        synthesis found no face) with an empty id on that side, to be scored as a
        failure; by default such pairs raise, because dropping them would change the
        protocol.
    allow_same_source : bool
        Accept parent pairs whose two sides come from the same photo.

    Returns
    -------
    Protocol with the parent's folds, labels and order.
    """
    if not isinstance(parent, Protocol):
        parent = load_protocol(parent)
    if not has_pair_list(parent.kind) or parent.pairs is None:
        raise ProtocolError(f"protocol {parent.name!r} is a {parent.kind} protocol; only 1:1 protocols can be derived")
    spec_obj = as_spec(spec, spec_params)
    manifests = role_manifests(reference, probe)
    pool = build_pool(spec_obj, manifests, extra=list(parent.manifests.values()))
    seed = int(seed if seed is not None else (parent.seed if parent.seed is not None else 0))

    pairs = parent.pairs
    units_a = [pool.root(i) if i else "" for i in pairs["left_id"]]
    units_b = [pool.root(i) if i else "" for i in pairs["right_id"]]
    base = pd.DataFrame({"fold": pairs["fold"].to_numpy(), "a": units_a, "b": units_b,
                         "label": pairs["label"].to_numpy()})
    same = base[(base["a"] == base["b"]) & (base["a"] != "")]
    if len(same) and not allow_same_source:
        raise ProtocolError(
            f"{len(same)} pair(s) of {parent.name!r} compare two images of the same source photo (e.g. row "
            f"{int(same.index[0]) + 1}: {pairs['left_id'].iloc[same.index[0]]!r}); the leakage guard refuses them. "
            "Pass allow_same_source (--allow-same-source) if that is intended.")
    derived, missing = realise_pairs(pool, base, seed=seed, allow_missing=allow_missing)
    info = {"name": name or f"{parent.name}-{spec_obj.name}", "kind": "verification", "spec": spec_obj.name,
            "spec_params": spec_obj.params, "seed": seed,
            "params": {"allow_missing": allow_missing, "allow_same_source": allow_same_source,
                       "missing_sources": len(missing)},
            "derived_from": {"name": parent.name, "spec": parent.spec, "sha256": parent.sha256}}
    return Protocol(info=info, manifests=manifests, pairs=derived)
