"""Counts that describe a protocol (``mfrkit protocol show``)."""

from __future__ import annotations

import pandas as pd

from .folder import Protocol
from .kinds import protocol_kind


def _lookup(protocol: Protocol, role: str, ids: pd.Series, column: str) -> pd.Series:
    images = protocol.images(role)
    values = images[column].astype(object).where(images[column].notna(), None)
    out = ids.map(values.to_dict())
    return out.where(out.notna(), "-").astype(str)


def _variant(protocol: Protocol, role: str, ids: pd.Series) -> pd.Series:
    """Variant per id, with the crop (partial) or mask type (masked) appended."""
    v = _lookup(protocol, role, ids, "variant").replace("-", "unmasked")
    v = v.where(ids.isin(protocol.images(role).index), "(unknown id)")
    mask = _lookup(protocol, role, ids, "mask_type")
    region = _lookup(protocol, role, ids, "region")
    factor = _lookup(protocol, role, ids, "factor")
    out = v.copy()
    out[v == "masked"] = "masked:" + mask[v == "masked"]
    out[v == "partial"] = "partial:" + region[v == "partial"] + "@" + factor[v == "partial"]
    return out


def summarize(protocol: Protocol) -> dict[str, pd.DataFrame]:
    """Tables describing ``protocol``.

    Returns
    -------
    dict name -> DataFrame. 1:1: ``folds`` (fold, genuine, impostor, identities) and
    ``variants`` (left, right -> genuine, impostor, where a side is its variant plus
    mask type or crop). 1:N: ``sets`` (gallery / probes: images, identities, mated,
    distractors) and ``variants`` (set, variant -> images). All-pairs: ``sides``
    (side: images, identities, source units), ``comparisons`` (what -> count: every
    reference x probe, excluded self and same-source, genuine, impostor) and ``variants``
    (left, right -> genuine, impostor, counted in closed form).
    """
    return protocol_kind(protocol.kind).summarize(protocol)


def summarize_verification(protocol: Protocol) -> dict[str, pd.DataFrame]:
    """A pair list's ``folds`` and ``variants`` (see :func:`summarize`)."""
    p = protocol.pairs
    ident_l = _lookup(protocol, "reference", p["left_id"], "identity")
    ident_r = _lookup(protocol, "probe", p["right_id"], "identity")
    folds = []
    for fold, idx in p.groupby("fold", sort=True).groups.items():
        labels = p.loc[idx, "label"]
        ids = set(ident_l[idx]) | set(ident_r[idx])
        ids.discard("-")
        folds.append((int(fold), int(labels.sum()), int((labels == 0).sum()), len(ids)))
    fold_table = pd.DataFrame(folds, columns=["fold", "genuine", "impostor", "identities"])
    sides = pd.DataFrame({"left": _variant(protocol, "reference", p["left_id"]),
                          "right": _variant(protocol, "probe", p["right_id"]),
                          "label": p["label"].map({1: "genuine", 0: "impostor"})})
    variants = sides.groupby(["left", "right", "label"]).size().unstack(fill_value=0)
    variants = variants.reindex(columns=["genuine", "impostor"], fill_value=0).reset_index()
    variants.columns.name = None
    return {"folds": fold_table, "variants": variants}


def summarize_identification(protocol: Protocol) -> dict[str, pd.DataFrame]:
    """A 1:N protocol's ``sets`` and ``variants`` (see :func:`summarize`)."""
    g, pr = protocol.gallery, protocol.probes
    sets = pd.DataFrame([
        ("gallery", len(g), g["image_id"].nunique(), g["identity"].nunique(), None, int(g["distractor"].sum())),
        ("probes", len(pr), pr["image_id"].nunique(), pr["identity"].nunique(), int(pr["mated"].sum()), None),
    ], columns=["set", "rows", "images", "identities", "mated", "distractors"])
    sets[["mated", "distractors"]] = sets[["mated", "distractors"]].astype("Int64")
    variants = pd.concat([
        pd.DataFrame({"set": "gallery", "variant": _variant(protocol, "reference", g["image_id"])}),
        pd.DataFrame({"set": "probes", "variant": _variant(protocol, "probe", pr["image_id"].drop_duplicates())}),
    ]).groupby(["set", "variant"]).size().rename("images").reset_index()
    return {"sets": sets, "variants": variants}


def summarize_all_pairs(protocol: Protocol) -> dict[str, pd.DataFrame]:
    """An all-pairs protocol's ``sides``, ``comparisons`` and ``variants`` (see :func:`summarize`)."""
    from .all_pairs import count_comparisons, protocol_counts

    refs, probes = protocol.reference_images, protocol.probe_images
    sides = pd.DataFrame([
        (side, len(t), t["identity"].nunique(), t["unit"].nunique())
        for side, t in (("reference", refs), ("probe", probes))
    ], columns=["side", "images", "identities", "source units"])
    counts = protocol_counts(protocol)
    labels = {"cross": "reference x probe", "excluded_self": "excluded: same image",
              "excluded_same_source": "excluded: same source photo", "genuine": "genuine", "impostor": "impostor",
              "comparisons": "comparisons"}
    comparisons = pd.DataFrame([(text, counts[k]) for k, text in labels.items()], columns=["what", "count"])
    same = protocol.manifest("reference").fingerprint() == protocol.manifest("probe").fingerprint()
    allow = bool((protocol.info.get("params") or {}).get("allow_same_source"))
    v_ref = _variant(protocol, "reference", refs["image_id"].astype(str)).to_numpy()
    v_probe = _variant(protocol, "probe", probes["image_id"].astype(str)).to_numpy()
    rows = []
    for left in sorted(set(v_ref)):
        for right in sorted(set(v_probe)):
            c = count_comparisons(refs[v_ref == left], probes[v_probe == right], same_images=same,
                                  allow_same_source=allow)
            rows.append((left, right, c["genuine"], c["impostor"]))
    variants = pd.DataFrame(rows, columns=["left", "right", "genuine", "impostor"])
    return {"sides": sides, "comparisons": comparisons, "variants": variants}
