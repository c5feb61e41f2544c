"""The mask taxonomy: raw mask labels of real datasets -> mfrkit's mask types.

Real datasets name their masks in their own words (MFR2's labels file: ``KN95``,
``N99``, ``cloth_black``, ``surgical_blue``, ...); mfrkit's synthetic masks use its mask
types (``surgical``, ``n95``, ``kn95``, ``cloth``, ``gas``: the registry
:data:`mfrkit.maskgen.styles.MASK_TYPES`). A layout that reads raw labels keeps the raw
label in the manifest's ``mask_label`` column and puts :func:`mask_type_of` of it in
``mask_type``, so per-type breakdowns put real and synthetic masks on the same axis. A
label that maps to no type gets ``mask_type`` :data:`OTHER` and is reported by the scan
(:func:`unknown_labels_warning`), never dropped.

Rules (on the label lower-cased, ``-``/space read as ``_``): an exact entry of
:data:`ALIASES` first; else the first word (``cloth_black`` -> ``cloth``) looked up the
same way; else a respirator grade (``n95``, ``n99``, ``n100``, ``ffp1``-``ffp3``,
``p2``) is ``n95``, the US/EU filtering-facepiece class the ``n95`` renderer draws.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

#: mfrkit's mask types (the names of :data:`mfrkit.maskgen.styles.MASK_TYPES`; a test
#: keeps the two equal: ``data`` sits below ``maskgen`` and cannot import it).
MASK_TYPE_NAMES = ("surgical", "n95", "kn95", "cloth", "gas")
#: The type of a raw label that maps to none of them.
OTHER = "other"

#: Raw label (normalised) -> mask type.
ALIASES: dict[str, str] = {
    **{t: t for t in MASK_TYPE_NAMES},
    "medical": "surgical", "procedure": "surgical", "disposable": "surgical", "surgery": "surgical",
    "kn_95": "kn95", "kn99": "kn95", "kf94": "kn95",
    "n_95": "n95", "respirator": "n95", "ffp": "n95",
    "fabric": "cloth", "cotton": "cloth", "textile": "cloth", "homemade": "cloth", "bandana": "cloth",
    "scarf": "cloth", "neck_gaiter": "cloth", "gaiter": "cloth",
    "gas_mask": "gas", "gasmask": "gas",
}  # fmt: skip
_RESPIRATOR = re.compile(r"^(?:n|r|p)(?:95|99|100)$|^ffp[123]$|^p[123]$")


def _norm(label: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(label).strip().lower())


def mask_type_of(label: str | None) -> str | None:
    """The mfrkit mask type of raw label ``label``; :data:`OTHER` when none fits; None
    for no label."""
    if label is None or not str(label).strip():
        return None
    key = _norm(label)
    for candidate in (key, key.split("_")[0]):
        if candidate in ALIASES:
            return ALIASES[candidate]
        if _RESPIRATOR.match(candidate):
            return "n95"
    return OTHER


def unknown_labels_warning(labels: Iterable[str]) -> str | None:
    """The scan's line naming the raw labels that map to no type (None: every one maps)."""
    counts = Counter(str(label) for label in labels if mask_type_of(label) == OTHER)
    if not counts:
        return None
    listed = ", ".join(f"{label!r} ({n})" for label, n in sorted(counts.items()))
    return (f"{sum(counts.values())} image(s) carry mask labels that map to no mfrkit mask type: {listed}; "
            f"kept in mask_label, mask_type set to {OTHER!r}")  # fmt: skip
