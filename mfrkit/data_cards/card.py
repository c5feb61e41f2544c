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
from pathlib import Path, PurePath

import numpy as np
import pandas as pd
import yaml

from .. import __version__
from ..atomic import atomic_write_text
from ..data.manifest import STATUS_OK, Manifest
from ..data.subset import subset_text
from ..errors import MfrkitError
from ..userfiles import read_user_text, user_file_errors_as, yaml_error_text

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


class CardError(MfrkitError):
    """A data card cannot be built, read or parsed."""


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


def _counts(values: pd.Series) -> dict[str, int]:
    """Non-null values and how often each occurs: most frequent first, ties by name."""
    values = values.dropna()
    if values.empty:
        return {}
    counted = values.astype(str).value_counts()
    pairs = sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))
    return {k: int(v) for k, v in pairs}


def _stats(values: pd.Series, *, mean: bool = True) -> dict | None:
    """min / median / (mean) / max of the non-null numeric values; None when there are none."""
    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if v.size == 0:
        return None

    def num(x: float):
        return int(x) if float(x).is_integer() else float(x)

    out = {"min": num(v.min()), "median": num(np.median(v))}
    if mean:
        out["mean"] = float(v.mean())
    out["max"] = num(v.max())
    return out


def _histogram(sizes: np.ndarray) -> dict[str, int]:
    return {label: int(((sizes >= lo) & (sizes <= hi)).sum()) for label, lo, hi in HIST_BINS}


def _column(table: pd.DataFrame, name: str) -> pd.Series:
    if name in table.columns:
        return table[name]
    return pd.Series([None] * len(table), index=table.index, dtype=object)


def _factor_label(value) -> str:
    return f"{float(value):g}"


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
    if not isinstance(manifest, Manifest):
        raise CardError(f"expected a Manifest, got {type(manifest).__name__}")
    table = manifest.table
    if "status" not in table.columns:
        raise CardError("manifest table has no 'status' column")
    status = table["status"]
    is_ok = (status == STATUS_OK).fillna(False).astype(bool)
    ok = table[is_ok]

    identity = _column(ok, "identity")
    per_identity = identity.dropna().astype(str).value_counts()
    sizes = per_identity.to_numpy(dtype=np.int64)
    ipi = _stats(pd.Series(sizes, dtype="float64"))
    if ipi is not None:
        ipi["histogram"] = _histogram(sizes)

    header: dict = {
        "card_version": CARD_VERSION,
        "generator": f"mfrkit {__version__}",
        "name": manifest.name or (manifest.path.parent.name if manifest.path else ""),
        "counts": {
            "images": int(len(table)),
            "ok": int(is_ok.sum()),
            "failed": int((~is_ok).sum()),
            "identities": int(len(per_identity)),
            "images_without_identity": int(identity.isna().sum()),
        },
        "images_per_identity": ipi,
        "variants": _counts(_column(ok, "variant").fillna(_UNKNOWN)),
    }

    masks = {
        key: _counts(_column(ok, col))
        for key, col in (("types", "mask_type"), ("labels", "mask_label"), ("colors", "mask_color"), ("textures", "mask_texture"),
                         ("coverage", "coverage"))
    }  # labels: a real dataset's raw mask labels, beside the types they map to (mask_taxonomy)
    if any(masks.values()):
        header["masks"] = masks

    regions = _counts(_column(ok, "region"))
    factors = _column(ok, "factor")
    factors = factors[pd.to_numeric(factors, errors="coerce").notna()]
    centered = _column(ok, "centered").dropna()
    if regions or len(factors) or len(centered):
        factor_counts = factors.map(_factor_label).value_counts()
        header["partial"] = {
            "regions": regions,
            "factors": {k: int(factor_counts[k]) for k in sorted(factor_counts.index, key=float)},
            "centered": {
                "centered": int(centered.astype(bool).sum()),
                "not_centered": int((~centered.astype(bool)).sum()),
            }
            if len(centered)
            else {},
        }

    failed = status[~is_ok].fillna("(no status)")
    header["failures"] = {"total": int(len(failed)), "by_reason": _counts(failed)}

    landmarks: dict = {"backends": _counts(_column(ok, "landmark_backend"))}
    if landmark_summary is not None:
        landmarks["summary"] = _plain(landmark_summary)
    header["landmarks"] = landmarks

    n_faces = {}
    for col in sorted(c for c in table.columns if str(c).startswith("n_faces")):
        values = pd.to_numeric(table[col], errors="coerce").dropna()
        if values.empty:
            continue
        entry = {"images": int(len(values)), **_stats(values)}
        entry["none"] = int((values == 0).sum())
        entry["several"] = int((values > 1).sum())
        n_faces[str(col)] = entry
    if n_faces:
        header["n_faces"] = n_faces

    size = {dim: _stats(_column(ok, dim), mean=False) for dim in ("width", "height")}
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
    from .catalog import known_card_info, resolve_known_name

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


def parse_front_matter(text: str) -> tuple[dict, str]:
    """Split a card into its YAML header (parsed with ``yaml.safe_load``) and Markdown body."""
    if not text.startswith("---\n"):
        raise CardError("card has no YAML front matter (it must start with a '---' line)")
    end = text.find("\n---\n", 3)
    if end < 0:
        raise CardError("card front matter is not closed by a '---' line")
    try:
        header = yaml.safe_load(text[4 : end + 1]) or {}
    except yaml.YAMLError as exc:
        raise CardError(f"card front matter is not valid YAML: {yaml_error_text(exc)}") from None
    if not isinstance(header, dict):
        raise CardError("card front matter must be a YAML mapping")
    return header, text[end + 5 :]


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
