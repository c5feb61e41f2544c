"""Data cards for manifests: a YAML header a program can read, a Markdown body a person can.

A card describes one manifest: how many images and identities it holds, how images are
spread over identities, variants, mask and partial-face fields, failures by reason,
landmark backends, face counts, and the parameters and provenance recorded in
``manifest.meta``. Everything is computed from the manifest alone, so the same manifest
always gives the same card (no clock, no file system access).

Counting rule: every breakdown counts *usable* images (``status == "ok"``); failed images
are counted once, by reason, under ``failures``. ``n_faces`` columns are the exception:
they are summarised over every row where they are set, because an image without a face
(``n_faces == 0``) is a failure yet is exactly what those statistics are about.

Header schema (``card_version: 1``)::

    card_version, generator, name
    counts:               images, ok, failed, identities, images_without_identity
    images_per_identity:  min, median, mean, max, histogram {bin: identities}
    variants:             {variant: images}     (unknown variant: "unknown")
    masks:                types, colors, textures, coverage   (only when present)
    partial:              regions, factors, centered           (only when present)
    failures:             total, by_reason {status: images}
    landmarks:            backends {backend: images}, summary (caller-supplied)
    n_faces:              {column: images, min, median, mean, max, none, several}
    image_size:           width / height {min, median, max}
    provenance:           mfrkit_version, created, fingerprint, ...
    parameters:           parameter-like entries of manifest.meta
    other_meta:           every remaining entry of manifest.meta
    known_dataset:        name, title, command, reported counts  (only when recognised)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
from collections import Counter
from pathlib import Path, PurePath

import numpy as np
import pandas as pd
import yaml

from .. import __version__
from ..atomic import atomic_write_text
from ..data.known_datasets import known_card_info, parse_front_matter, resolve_known_name
from ..data.manifest import Manifest
from ..data.manifest_stream import is_manifest
from ..data.subset import subset_text
from ..errors import CardError
from ..userfiles import read_user_text, user_file_errors_as
from .card_counts import CardCounts, count_items, stats_of

CARD_VERSION = 1
#: File name used when :func:`write_card` is given a folder.
CARD_NAME = "DATA_CARD.md"

#: Upper-inclusive bins of the images-per-identity histogram: (label, low, high).
HIST_BINS = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3-5", 3, 5),
    ("6-10", 6, 10),
    ("11-20", 11, 20),
    ("21-50", 21, 50),
    ("51-100", 51, 100),
    ("101+", 101, math.inf),
)

# Keys of manifest.meta, sorted into the header's sections; anything else goes to other_meta.
_PROVENANCE_KEYS = ("kind", "layout", "root", "mfrkit_version", "created", "seed")
_PARAMETER_KEYS = ("params", "parameters", "options", "layout_options", "command", "args", "argv")
_SKIP_META = ("name", "fingerprint", "description")
_UNKNOWN = "unknown"


# --------------------------------------------------------------------------- helpers


def _plain(obj):
    """``obj`` as plain YAML-safe Python (dict, list, str, int, float, bool, None)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [_plain(v) for v in items]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, (PurePath, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (_dt.date, _dt.datetime)):
        return obj.isoformat()
    return str(obj)


# --------------------------------------------------------------------------- summary


def summarize_manifest(manifest: Manifest, *, landmark_summary: dict | None = None) -> dict:
    """The data card header of ``manifest``: plain, YAML-safe numbers and names.

    Parameters
    ----------
    manifest : Manifest
        Any manifest (scanned, synthesized, empty, or holding only failures).
    landmark_summary : dict, optional
        Landmark detection results to record verbatim under ``landmarks.summary``, e.g.
        ``{"mediapipe": {"ok": 230, "no_face": 3}}`` or ``dataclasses.asdict`` of a
        landmark cache summary.

    Returns
    -------
    dict
        The header described in the module docstring; :func:`render_card` dumps it as the
        card's YAML front matter.
    """
    if not is_manifest(manifest):
        raise CardError(f"expected a Manifest, got {type(manifest).__name__}")
    columns = manifest.table.columns if isinstance(manifest, Manifest) else manifest.columns
    if "status" not in columns:
        raise CardError("manifest table has no 'status' column")
    counts = CardCounts()
    for batch in manifest.batches():
        counts.add(batch)
    sizes = counts.identity_sizes()
    ipi = stats_of(Counter({float(k): v for k, v in sizes.items()}))
    if ipi is not None:
        ipi["histogram"] = {label: int(sum(v for k, v in sizes.items() if lo <= k <= hi)) for label, lo, hi in HIST_BINS}

    header: dict = {
        "card_version": CARD_VERSION,
        "generator": f"mfrkit {__version__}",
        "name": manifest.name or (manifest.path.parent.name if manifest.path else ""),
        "counts": {
            "images": int(counts.images),
            "ok": int(counts.ok),
            "failed": int(counts.images - counts.ok),
            "identities": int(sum(sizes.values())),
            "images_without_identity": int(counts.without_identity),
        },
        "images_per_identity": ipi,
        "variants": count_items(counts.counted["variant"]),
    }

    masks = {key: count_items(counts.counted[col])
             for key, col in (("types", "mask_type"), ("labels", "mask_label"), ("colors", "mask_color"),
                              ("textures", "mask_texture"), ("coverage", "coverage"))}
    # labels: a real dataset's raw mask labels, beside the types they map to (mask_taxonomy)
    if any(masks.values()):
        header["masks"] = masks

    regions = count_items(counts.counted["region"])
    if regions or counts.factors or counts.centered_seen:
        header["partial"] = {
            "regions": regions,
            "factors": {k: int(counts.factors[k]) for k in sorted(counts.factors, key=float)},
            "centered": {"centered": counts.centered[0], "not_centered": counts.centered[1]} if counts.centered_seen else {},
        }

    header["failures"] = {"total": int(sum(counts.failures.values())), "by_reason": count_items(counts.failures)}

    landmarks: dict = {"backends": count_items(counts.counted["landmark_backend"])}
    if landmark_summary is not None:
        landmarks["summary"] = _plain(landmark_summary)
    header["landmarks"] = landmarks

    n_faces = {}
    for col in sorted(counts.n_faces):
        values = counts.n_faces[col]
        if not values:
            continue
        entry = {"images": int(sum(values.values())), **stats_of(values)}
        entry["none"] = int(values.get(0.0, 0))
        entry["several"] = int(sum(c for v, c in values.items() if v > 1))
        n_faces[col] = entry
    if n_faces:
        header["n_faces"] = n_faces

    size = {dim: stats_of(counts.size[dim], mean=False) for dim in ("width", "height")}
    if any(size.values()):
        header["image_size"] = size

    header.update(_meta_sections(manifest))
    if (manifest.meta or {}).get("description"):
        header["description"] = str(manifest.meta["description"])

    known = _known_dataset(manifest)
    if known is not None:
        header["known_dataset"] = known
    return _plain(header)


def _meta_sections(manifest: Manifest) -> dict:
    meta = _plain(dict(manifest.meta or {}))
    provenance = {k: meta[k] for k in _PROVENANCE_KEYS if k in meta}
    provenance.update({k: v for k, v in sorted(meta.items()) if k.startswith("source")})
    provenance["fingerprint"] = manifest.fingerprint()
    recorded = meta.get("fingerprint")
    if recorded and recorded != provenance["fingerprint"]:
        # The table changed after the manifest was written: say so rather than hide it.
        provenance["fingerprint_recorded"] = recorded
    parameters = {k: meta[k] for k in _PARAMETER_KEYS if k in meta}
    used = set(_PROVENANCE_KEYS) | set(_PARAMETER_KEYS) | set(_SKIP_META) | set(provenance)
    other = {k: v for k, v in sorted(meta.items()) if k not in used}
    return {"provenance": provenance, "parameters": parameters, "other_meta": other}


def _known_dataset(manifest: Manifest) -> dict | None:
    meta = manifest.meta or {}
    for candidate in (meta.get("known_dataset"), meta.get("name")):
        if not isinstance(candidate, str) or not candidate:
            continue
        name = resolve_known_name(candidate)
        if name is not None:
            info = known_card_info(name)
            return {
                "name": name,
                "title": info.get("title", name),
                "card": f"mfrkit card --known {name}",
                "reported": info.get("reported", {}),
            }
    return None


# --------------------------------------------------------------------------- rendering


def _md(text) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(rows: list[tuple], head: tuple[str, str]) -> list[str]:
    lines = [f"| {head[0]} | {head[1]} |", "| --- | ---: |"]
    lines += [f"| {_md(k)} | {_md(v)} |" for k, v in rows]
    return lines


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:,.2f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _yaml_block(data) -> list[str]:
    if not data:
        return ["None recorded."]
    return ["```yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100).rstrip(), "```"]


def _counts_section(title: str, counts: dict, head: tuple[str, str], total: int | None = None) -> list[str]:
    lines = [f"### {title}", ""]
    if not counts:
        return lines + ["None.", ""]
    rows = [(k, _fmt(v) + (f" ({100 * v / total:.1f}%)" if total else "")) for k, v in counts.items()]
    return lines + _table(rows, head) + [""]


def _body(h: dict) -> list[str]:
    c = h["counts"]
    out = [f"# Data card: {h['name'] or '(unnamed dataset)'}", ""]
    prov = h["provenance"]
    made = ", ".join(
        part
        for part in (
            f"kind `{prov['kind']}`" if "kind" in prov else "",
            f"layout `{prov['layout']}`" if "layout" in prov else "",
            f"created {prov['created']}" if "created" in prov else "",
            f"by mfrkit {prov['mfrkit_version']}" if "mfrkit_version" in prov else "",
        )
        if part
    )
    if h.get("description"):
        out += [h["description"], ""]
    out += [f"Manifest: {made or 'no provenance recorded'}. Card generated by {h['generator']}.", ""]
    subset = subset_text(prov.get("source_subset"))
    if subset:
        out += [f"Subset of the source: {subset}.", ""]
    out += [
        "Every breakdown below counts usable images (status `ok`); failed images are counted "
        "once, by reason, under *Failures*.",
        "",
        "## Summary",
        "",
    ]
    out += _table(
        [
            ("images", _fmt(c["images"])),
            ("usable (status ok)", _fmt(c["ok"])),
            ("failed", _fmt(c["failed"])),
            ("identities", _fmt(c["identities"])),
            ("usable images without identity", _fmt(c["images_without_identity"])),
        ],
        ("", "count"),
    )
    out += [""]
    if c["images"] == 0:
        out += ["The manifest is empty: it lists no images.", ""]

    out += ["## Images per identity", ""]
    ipi = h["images_per_identity"]
    if ipi is None:
        out += ["No usable image carries an identity.", ""]
    else:
        out += [
            f"min {_fmt(ipi['min'])}, median {_fmt(ipi['median'])}, mean {_fmt(ipi['mean'])}, max {_fmt(ipi['max'])}.",
            "",
            "| images per identity | identities | |",
            "| --- | ---: | --- |",
        ]
        peak = max(ipi["histogram"].values()) or 1
        for label, n in ipi["histogram"].items():
            bar = f"`{'#' * math.ceil(20 * n / peak)}`" if n else ""
            out.append(f"| {label} | {_fmt(n)} | {bar} |")
        out += [""]

    out += ["## Variants", ""]
    out += _counts_section("Images by variant", h["variants"], ("variant", "images"), c["ok"])[2:]

    if "masks" in h:
        out += ["## Masks", ""]
        for key, title, label in (
            ("types", "Mask types", "type"),
            ("labels", "Raw mask labels (the dataset's own; mapped to the types above)", "label"),
            ("colors", "Mask colours", "colour"),
            ("textures", "Mask textures", "texture"),
            ("coverage", "Coverage", "coverage"),
        ):
            if h["masks"][key]:
                out += _counts_section(title, h["masks"][key], (label, "images"))
    if "partial" in h:
        p = h["partial"]
        out += ["## Partial faces", ""]
        for key, title, label in (("regions", "Regions", "region"), ("factors", "Factors", "factor"), ("centered", "Centering", "")):
            if p[key]:
                out += _counts_section(title, p[key], (label, "images"))

    f = h["failures"]
    out += ["## Failures", ""]
    if f["total"] == 0:
        out += ["None: every image has status `ok`." if c["images"] else "None.", ""]
    else:
        out += [f"{_fmt(f['total'])} image(s) cannot be used:", ""]
        out += _table([(k, _fmt(v)) for k, v in f["by_reason"].items()], ("reason", "images")) + [""]

    lm = h["landmarks"]
    out += ["## Landmarks", ""]
    if lm["backends"]:
        out += _table([(k, _fmt(v)) for k, v in lm["backends"].items()], ("backend", "images")) + [""]
    else:
        out += ["No `landmark_backend` recorded in the manifest.", ""]
    if "summary" in lm:
        out += ["Detection summary:", ""] + _yaml_block(lm["summary"]) + [""]

    if "n_faces" in h:
        out += ["## Faces per image", ""]
        for col, s in h["n_faces"].items():
            out += [
                f"`{col}` over {_fmt(s['images'])} image(s): min {_fmt(s['min'])}, median {_fmt(s['median'])}, "
                f"mean {_fmt(s['mean'])}, max {_fmt(s['max'])}; no face in {_fmt(s['none'])}, "
                f"several faces in {_fmt(s['several'])}.",
                "",
            ]

    if "image_size" in h:
        out += ["## Image size (pixels)", ""]
        for dim in ("width", "height"):
            s = h["image_size"][dim]
            if s:
                out.append(f"- {dim}: min {_fmt(s['min'])}, median {_fmt(s['median'])}, max {_fmt(s['max'])}")
        out += [""]

    out += ["## Parameters", ""] + _yaml_block(h["parameters"]) + [""]
    out += ["## Provenance", ""] + _yaml_block(h["provenance"]) + [""]
    if h["other_meta"]:
        out += ["Other metadata:", ""] + _yaml_block(h["other_meta"]) + [""]

    if "known_dataset" in h:
        k = h["known_dataset"]
        out += ["## Known dataset", ""]
        out += [
            f"This manifest is registered as **{k['title']}**. Its built-in card (what it is, how to obtain it, "
            f"licence, citation) is shown by `{k['card']}`.",
            "",
        ]
        reported = k.get("reported") or {}
        if "images" in reported:
            out += [f"The authors report {_fmt(reported['images'])} images; this manifest lists {_fmt(c['images'])} ({_fmt(c['ok'])} usable).", ""]
        if "identities" in reported:
            out += [f"The authors report {_fmt(reported['identities'])} identities; this manifest has {_fmt(c['identities'])}.", ""]
    return out


def render_card(manifest: Manifest, *, landmark_summary: dict | None = None) -> str:
    """A data card for ``manifest``: YAML front matter (see :func:`summarize_manifest`) and Markdown.

    The result is deterministic: it depends only on the manifest (and
    ``landmark_summary``), never on the clock or the disk.
    """
    header = summarize_manifest(manifest, landmark_summary=landmark_summary)
    front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
    return "---\n" + front + "---\n\n" + "\n".join(_body(header)).rstrip() + "\n"


def write_card(manifest: Manifest, path: str | os.PathLike, *, landmark_summary: dict | None = None) -> Path:
    """Write the card of ``manifest`` to ``path`` atomically; returns the file written.

    ``path`` may be an existing folder, in which case the card is ``<folder>/DATA_CARD.md``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CARD_NAME
    atomic_write_text(path, render_card(manifest, landmark_summary=landmark_summary))
    return path


def read_card_header(path: str | os.PathLike) -> dict:
    """The YAML header of the card file at ``path``."""
    with user_file_errors_as(CardError):
        text = read_user_text(path, "text", encoding="utf-8")
    return parse_front_matter(text)[0]


__all__ = [
    "CARD_NAME",
    "CARD_VERSION",
    "CardError",
    "HIST_BINS",
    "parse_front_matter",
    "read_card_header",
    "render_card",
    "summarize_manifest",
    "write_card",
]
