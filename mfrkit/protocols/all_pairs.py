"""All-pairs 1:1 protocols: every reference image against every probe image, no pair list.

The field's large masked benchmarks are all-pairs: insightface's MFR "Mask" set
compares every masked probe with every unmasked reference (13,928 genuine and about
97 million impostor comparisons, reported at FAR <= 1e-4); NIST's FRVT mask study
scores every comparison of its sets. Such protocols have far too many comparisons for a
pair list, so an all-pairs protocol (kind ``all-pairs``) lists the **images** of each
side and defines the comparisons by rule:

* every image of ``reference_images.csv`` against every image of ``probe_images.csv``
  is one comparison; it is **genuine iff the two identities are equal**;
* **excluded**, and counted in ``protocol.json``: an image against itself (both roles
  read the same manifest and the ids are equal) and, unless ``allow_same_source``, two
  different images of one source photo (a synthetic image against its own source or
  another copy of it: the leakage rule the pair lists follow, see :mod:`.pool`).

Both lists hold every usable image (status ``ok``, with an identity) of the spec's
variant for that role; ``max_per_identity`` keeps a seeded sample of at most that many
images per identity and role. Both orientations of a pair are compared when both
lists hold the same images (every reference x every probe, as the rule says).

Files (beside ``protocol.json``): ``reference_images.csv`` and ``probe_images.csv``,
header ``image_id,identity,unit``; ``unit`` is the source photo the image belongs to
(its ``source_id`` chain followed to the root), so the exclusions can be applied and
checked without the manifests' history. Rows are sorted by identity, then image id.

``protocol.json`` ``counts``: ``references``, ``probes`` (images per side),
``reference_identities``, ``probe_identities``, ``cross`` (references x probes),
``excluded_self``, ``excluded_same_source``, ``genuine``, ``impostor`` and
``comparisons`` (= cross - excluded = genuine + impostor).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..data.manifest import Manifest
from ..rng import item_rng
from .errors import InsufficientDataError, ProtocolError
from .folder import Protocol
from .pool import build_pool
from .spec import ROLES, ProtocolSpec
from .verification import as_spec, role_manifests

KIND = "all-pairs"
#: The table of each side and the role it serves.
SIDE_FILES = {"reference": "reference_images.csv", "probe": "probe_images.csv"}
COLUMNS = ("image_id", "identity", "unit")


def side_table(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """A side's image table from (image_id, identity, unit) rows, sorted by identity then id."""
    df = pd.DataFrame(rows, columns=list(COLUMNS), dtype=object)
    return df.sort_values(["identity", "image_id"], kind="stable").reset_index(drop=True)


def _sample(ids: list[str], k: int | None, rng: np.random.Generator) -> list[str]:
    if k is None or len(ids) <= k:
        return ids
    return [ids[i] for i in sorted(rng.choice(len(ids), size=k, replace=False).tolist())]


def make_all_pairs(reference: Manifest | str | os.PathLike, probe: Manifest | str | os.PathLike | None = None, *,
                   spec: str | ProtocolSpec = "umr-ump", spec_params: Mapping | None = None, seed: int = 0,
                   max_per_identity: int | None = None, allow_same_source: bool = False,
                   name: str | None = None) -> Protocol:
    """Generate an all-pairs protocol (in memory; write it with :func:`~.folder.save_protocol`).

    Parameters
    ----------
    reference, probe : Manifest or path
        Manifests serving the reference and probe roles (``probe`` defaults to ``reference``).
    spec, spec_params : a 1:1 spec (see :mod:`.spec`). Its selectors choose each side's
        images; pair-forming settings (``mask_pairing``, the PartialLFW doubling) do not
        apply: every combination is compared.
    seed : int
        Seeds ``max_per_identity``'s sampling (one generator per role and identity).
    max_per_identity : int, optional
        Keep at most this many images per identity on each side.
    allow_same_source : bool
        Compare different images of one source photo (genuine) instead of excluding them.
    name : str, optional

    Returns
    -------
    Protocol of kind ``all-pairs``.

    Raises
    ------
    InsufficientDataError
        No genuine or no impostor comparison remains.
    """
    if max_per_identity is not None and int(max_per_identity) < 1:
        raise ProtocolError(f"max_per_identity must be >= 1, got {max_per_identity}")
    spec_obj = as_spec(spec, spec_params)
    manifests = role_manifests(reference, probe)
    pool = build_pool(spec_obj, manifests)
    pool.require_roles()
    tables = {}
    for role in ROLES:
        by_identity: dict[str, list[tuple[str, str]]] = {}
        for unit, ids in pool.candidates[role].items():
            for image_id in ids:
                by_identity.setdefault(pool.identity[unit], []).append((image_id, unit))
        rows = []
        for ident in sorted(by_identity):
            items = sorted(by_identity[ident])
            unit_of = dict(items)
            keep = _sample([i for i, _ in items], max_per_identity, item_rng(seed, "all-pairs", role, ident))
            rows += [(i, ident, unit_of[i]) for i in keep]
        tables[role] = side_table(rows)
    same = manifests["reference"].fingerprint() == manifests["probe"].fingerprint()
    counts = count_comparisons(tables["reference"], tables["probe"], same_images=same,
                               allow_same_source=allow_same_source)
    if counts["genuine"] == 0 or counts["impostor"] == 0:
        raise InsufficientDataError(
            f"spec {spec_obj.name!r} gives {counts['genuine']} genuine and {counts['impostor']} impostor comparisons "
            f"({counts['references']} reference and {counts['probes']} probe images); an all-pairs protocol needs both")
    params = {"max_per_identity": None if max_per_identity is None else int(max_per_identity),
              "allow_same_source": bool(allow_same_source)}
    info = {"name": name or spec_obj.name, "kind": KIND, "spec": spec_obj.name, "spec_params": spec_obj.params,
            "seed": int(seed), "params": params,
            "pool": {"units": len(pool.units()), "identities": len(pool.by_identity()), "skipped": pool.skipped}}
    return Protocol(info=info, manifests=manifests, reference_images=tables["reference"],
                    probe_images=tables["probe"])


# --- counting --------------------------------------------------------------------------------------


def count_comparisons(references: pd.DataFrame, probes: pd.DataFrame, *, same_images: bool,
                      allow_same_source: bool = False) -> dict:
    """The comparison counts of an all-pairs protocol (see the module docstring), in closed form.

    Parameters
    ----------
    references, probes : DataFrame with ``image_id``, ``identity``, ``unit``
    same_images : bool
        Both sides read the same manifest (same fingerprint): an id on both sides is one
        image, compared with itself.
    allow_same_source : bool

    Returns
    -------
    dict of int: references, probes, reference_identities, probe_identities, cross,
    excluded_self, excluded_same_source, genuine, impostor, comparisons.
    """
    def pairs_sharing(column: str) -> int:
        a = references[column].astype(str).value_counts()
        b = probes[column].astype(str).value_counts()
        common = a.index.intersection(b.index)
        return int((a[common].astype(np.int64) * b[common].astype(np.int64)).sum())

    n_r, n_q = len(references), len(probes)
    same_identity = pairs_sharing("identity")
    same_unit = pairs_sharing("unit")
    self_pairs = pairs_sharing("image_id") if same_images else 0
    same_source = 0 if allow_same_source else same_unit - self_pairs
    genuine = same_identity - self_pairs - same_source
    impostor = n_r * n_q - same_identity
    return {
        "references": n_r, "probes": n_q,
        "reference_identities": int(references["identity"].nunique()),
        "probe_identities": int(probes["identity"].nunique()),
        "cross": n_r * n_q, "excluded_self": self_pairs, "excluded_same_source": same_source,
        "genuine": genuine, "impostor": impostor, "comparisons": genuine + impostor,
    }  # fmt: skip


def protocol_counts(protocol: Protocol) -> dict:
    """:func:`count_comparisons` of an all-pairs protocol's two lists."""
    same = protocol.manifest("reference").fingerprint() == protocol.manifest("probe").fingerprint()
    allow = bool((protocol.info.get("params") or {}).get("allow_same_source"))
    return count_comparisons(protocol.reference_images, protocol.probe_images, same_images=same,
                             allow_same_source=allow)


def comparison_mask(references: pd.DataFrame, probes: pd.DataFrame, *, same_images: bool,
                    allow_same_source: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels and usable-comparison mask of the full references x probes grid.

    For tests and small protocols only: memory is references x probes.

    Returns
    -------
    labels : ndarray of bool, shape (n_references, n_probes): same identity.
    keep : ndarray of bool, same shape: False for the excluded comparisons.
    """
    ident_r, ident_q = references["identity"].astype(str).to_numpy(), probes["identity"].astype(str).to_numpy()
    unit_r, unit_q = references["unit"].astype(str).to_numpy(), probes["unit"].astype(str).to_numpy()
    labels = ident_r[:, None] == ident_q[None, :]
    keep = np.ones(labels.shape, bool)
    if same_images:
        keep &= references["image_id"].astype(str).to_numpy()[:, None] != probes["image_id"].astype(str).to_numpy()[None, :]
    if not allow_same_source:
        keep &= unit_r[:, None] != unit_q[None, :]
    return labels, keep


# --- export ----------------------------------------------------------------------------------------


def export_size(protocol: Protocol) -> tuple[int, int]:
    """(rows, approximate bytes) of :func:`export_all_pairs`'s CSV."""
    counts = protocol_counts(protocol)
    lengths = {}
    for role, table in (("reference", protocol.reference_images), ("probe", protocol.probe_images)):
        images = protocol.images(role)
        ids = table["image_id"].astype(str)
        known = ids[ids.isin(images.index)]
        lengths[role] = float(images.loc[known, "path"].astype(str).str.len().mean()) if len(known) else 0.0
    per_row = lengths["reference"] + lengths["probe"] + 8  # "0," + 2 commas + label + newline + prefixes
    return counts["comparisons"], int(counts["comparisons"] * per_row)


def export_all_pairs(protocol: Protocol, path: str | os.PathLike, *, root: Path, replace: bool = True) -> Path:
    """Write every comparison of an all-pairs protocol as a generic CSV pair list.

    ``fold,left,right,label`` (fold 0 throughout), one row per comparison in the order
    reference row x probe row, excluded comparisons left out; paths relative to
    ``root``. Written in chunks, atomically: memory stays at one reference row's
    comparisons whatever the size. See :func:`export_size` first: the file can be huge.
    """
    paths = {}
    for role, table in (("reference", protocol.reference_images), ("probe", protocol.probe_images)):
        images = protocol.images(role)
        ids = table["image_id"].astype(str)
        unknown = ids[~ids.isin(images.index)]
        if len(unknown):
            raise ProtocolError(f"{len(unknown)} {role} image(s) of {protocol.name!r} are not in the {role} manifest "
                                f"(e.g. {unknown.iloc[0]!r}); run `mfrkit protocol validate`")
        rel = os.path.relpath(Path(os.path.abspath(protocol.manifest(role).root)), root)
        prefix = "" if rel == "." else Path(rel).as_posix() + "/"
        if prefix.startswith("../"):
            raise ProtocolError(f"the {role} images lie outside {root}; choose a root that holds both datasets")
        paths[role] = np.array([prefix + str(p) for p in images.loc[ids, "path"]], dtype=object)
    same = protocol.manifest("reference").fingerprint() == protocol.manifest("probe").fingerprint()
    allow = bool((protocol.info.get("params") or {}).get("allow_same_source"))
    refs, probes = protocol.reference_images, protocol.probe_images
    ident_q = probes["identity"].astype(str).to_numpy()
    unit_q = probes["unit"].astype(str).to_numpy()
    id_q = probes["image_id"].astype(str).to_numpy()
    with atomic_path(path, replace=replace) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write("fold,left,right,label\n")
        for i, (image_id, ident, unit) in enumerate(refs[["image_id", "identity", "unit"]].astype(str).itertuples(index=False)):
            keep = np.ones(len(probes), bool)
            if same:
                keep &= id_q != image_id
            if not allow:
                keep &= unit_q != unit
            labels = (ident_q == ident)[keep].astype(int)
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerows(zip([0] * int(keep.sum()), [paths["reference"][i]] * int(keep.sum()),
                                 paths["probe"][keep], labels))
            fh.write(buf.getvalue())
    return Path(path)
