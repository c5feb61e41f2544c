"""A minimal reader of protocol folders, until ``mfrkit.protocols`` ships its loader.

This is the only place the benchmark touches the protocol file format; when the
protocol engine lands, :func:`load_protocol` and :func:`resolve_protocol` become thin
calls into it (the rest of ``mfrkit.bench`` only uses :class:`Protocol`).

A protocol folder holds ``protocol.json`` (``name``, ``kind``, ``spec``, ``seed``,
``version``, ``manifests``: the manifests it draws from, each with its
``fingerprint``) and either ``pairs.csv`` (``fold,left_id,right_id,label``; 1:1) or
``gallery.csv`` and ``probes.csv`` (``image_id`` and, for probes, ``mated``; 1:N).
Ids are manifest ``image_id``\\s.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..data.manifest import Manifest, read_manifest
from ..errors import MfrkitError

VERIFICATION, IDENTIFICATION = "1:1", "1:N"
_KINDS = {
    "1:1": VERIFICATION, "verification": VERIFICATION, "pairs": VERIFICATION, "1to1": VERIFICATION,
    "1:n": IDENTIFICATION, "identification": IDENTIFICATION, "1ton": IDENTIFICATION, "search": IDENTIFICATION,
}  # fmt: skip


class ProtocolError(MfrkitError):
    """A protocol folder is missing, malformed, or does not match its manifests."""


@dataclass
class Protocol:
    """A loaded protocol.

    Attributes
    ----------
    name, kind (``"1:1"`` or ``"1:N"``), spec, seed, version : from ``protocol.json``.
    manifests : list of dicts from ``protocol.json`` (each with ``fingerprint`` and,
        optionally, ``path`` and ``name``).
    sha256 : hash of ``protocol.json`` and the list files' bytes.
    path : the folder.
    pairs : DataFrame ``fold, left_id, right_id, label`` (1:1) or None.
    gallery : DataFrame with ``image_id`` (1:N) or None.
    probes : DataFrame with ``image_id``, ``mated`` (bool) (1:N) or None.
    """

    name: str
    kind: str
    spec: dict
    seed: int | None
    version: str | None
    manifests: list[dict]
    sha256: str
    path: Path
    pairs: pd.DataFrame | None = None
    gallery: pd.DataFrame | None = None
    probes: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)

    def image_ids(self) -> list[str]:
        """Every image id the protocol uses, each once, in first-use order."""
        if self.kind == VERIFICATION:
            cols = [self.pairs["left_id"], self.pairs["right_id"]]
        else:
            cols = [self.gallery["image_id"], self.probes["image_id"]]
        return list(dict.fromkeys(pd.concat(cols).tolist()))

    def describe(self) -> dict:
        d = {"name": self.name, "kind": self.kind, "spec": self.spec, "seed": self.seed, "version": self.version}
        d.update(sha256=self.sha256, path=str(self.path), manifests=self.manifests)
        if self.kind == VERIFICATION:
            d.update(n_pairs=len(self.pairs), n_folds=int(self.pairs["fold"].nunique()))
        else:
            d.update(n_gallery=len(self.gallery), n_probes=len(self.probes), n_mated=int(self.probes["mated"].sum()))
        return d


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise ProtocolError(f"protocol file missing: {path}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ProtocolError(f"cannot read {path}: {exc}") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ProtocolError(f"{path.name} lacks column(s) {', '.join(missing)}; it has {', '.join(df.columns)}")
    for c in required:
        empty = df[c].str.strip() == ""
        if empty.any():
            raise ProtocolError(f"{path.name}: empty {c} on line {int(empty.values.argmax()) + 2}")
    return df


def _bool_column(df: pd.DataFrame, col: str, fname: str) -> pd.Series:
    v = df[col].str.strip().str.lower()
    mapping = {"1": True, "0": False, "true": True, "false": False}
    bad = ~v.isin(list(mapping))
    if bad.any():
        raise ProtocolError(f"{fname}: {col} must be 0/1 or true/false, got {df[col][bad].iloc[0]!r} on line {int(bad.values.argmax()) + 2}")
    return v.map(mapping).astype(bool)


def load_protocol(path: str | os.PathLike) -> Protocol:
    """Read a protocol folder (see the module docstring); raises ProtocolError."""
    folder = Path(path)
    meta_file = folder / "protocol.json"
    if not meta_file.is_file():
        raise ProtocolError(f"{folder} is not a protocol folder (no protocol.json)")
    raw = meta_file.read_bytes()
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError(f"{meta_file} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ProtocolError(f"{meta_file} must hold a JSON object")
    has_pairs = (folder / "pairs.csv").is_file()
    kind_raw = str(meta.get("kind", "")).strip().lower()
    if kind_raw:
        if kind_raw not in _KINDS:
            raise ProtocolError(f"{meta_file}: unknown kind {meta.get('kind')!r}; expected 1:1 or 1:N")
        kind = _KINDS[kind_raw]
    else:
        kind = VERIFICATION if has_pairs else IDENTIFICATION
    h = hashlib.sha256(raw)
    if kind == VERIFICATION:
        files = {"pairs": folder / "pairs.csv"}
    else:
        files = {"gallery": folder / "gallery.csv", "probes": folder / "probes.csv"}
    frames = {}
    for key, f in files.items():
        required = {"pairs": ("fold", "left_id", "right_id", "label"), "gallery": ("image_id",), "probes": ("image_id", "mated")}[key]
        frames[key] = _read_csv(f, required)
        h.update(b"\0" + f.name.encode() + b"\0" + f.read_bytes())
    if kind == VERIFICATION:
        pairs = frames["pairs"]
        pairs["label"] = _bool_column(pairs, "label", "pairs.csv").astype(int)
        pairs["fold"] = pairs["fold"].str.strip()
        if pairs.empty:
            raise ProtocolError(f"{folder / 'pairs.csv'} has no pairs")
    else:
        frames["probes"]["mated"] = _bool_column(frames["probes"], "mated", "probes.csv")
        for key in ("gallery", "probes"):
            dup = frames[key]["image_id"].duplicated()
            if dup.any():
                raise ProtocolError(f"{key}.csv lists {frames[key]['image_id'][dup].iloc[0]!r} twice")
        if frames["gallery"].empty or frames["probes"].empty:
            raise ProtocolError(f"{folder}: gallery.csv and probes.csv must both list images")
    manifests = meta.get("manifests", [])
    if isinstance(manifests, dict):
        manifests = [{"name": k, **(v if isinstance(v, dict) else {"fingerprint": v})} for k, v in manifests.items()]
    if not isinstance(manifests, list):
        raise ProtocolError(f"{meta_file}: manifests must be a list")
    manifests = [m if isinstance(m, dict) else {"fingerprint": str(m)} for m in manifests]
    for m in manifests:
        if "fingerprint" not in m and "sha256" in m:
            m["fingerprint"] = m["sha256"]
    return Protocol(
        name=str(meta.get("name") or folder.name),
        kind=kind,
        spec=meta.get("spec") if isinstance(meta.get("spec"), dict) else {"name": meta.get("spec")},
        seed=meta.get("seed"),
        version=None if meta.get("version") is None else str(meta.get("version")),
        manifests=manifests,
        sha256=h.hexdigest(),
        path=folder,
        pairs=frames.get("pairs"),
        gallery=frames.get("gallery"),
        probes=frames.get("probes"),
        meta=meta,
    )


def resolve_protocol(name_or_path: str | os.PathLike) -> Protocol:
    """A protocol from a folder path (a registered name once ``mfrkit.protocols`` has a loader)."""
    p = Path(name_or_path)
    if p.is_dir():
        return load_protocol(p)
    try:  # the protocol engine's loader, when it exists
        from ..protocols import load_protocol as engine_load  # type: ignore[attr-defined]
    except ImportError:
        engine_load = None
    if engine_load is not None:
        return engine_load(name_or_path)
    raise ProtocolError(f"no protocol folder at {name_or_path!s} (named protocols need the protocol engine; give a folder path)")


def protocol_manifests(protocol: Protocol, manifests: list[str | os.PathLike] | None = None) -> list[Manifest]:
    """The manifests a protocol draws from, checked against its fingerprints.

    ``manifests`` (e.g. ``--manifest`` options) win; otherwise each entry's ``path`` in
    ``protocol.json`` is used (relative to the protocol folder). A manifest whose
    fingerprint is not one the protocol lists is an error: the protocol was made from
    other images.
    """
    wanted = {m.get("fingerprint") for m in protocol.manifests if m.get("fingerprint")}
    if manifests:
        found = [read_manifest(p) for p in manifests]
    else:
        paths = [m.get("path") for m in protocol.manifests]
        if not paths or any(not p for p in paths):
            raise ProtocolError(
                f"protocol {protocol.name} does not say where its manifests are; pass them with --manifest"
            )
        found = []
        for p in paths:
            q = Path(p)
            found.append(read_manifest(q if q.is_absolute() else protocol.path / q))
    if wanted:
        for m in found:
            fp = m.fingerprint()
            if fp not in wanted:
                raise ProtocolError(
                    f"manifest {m.path} (fingerprint {fp[:12]}) is not one protocol {protocol.name} was drawn from "
                    f"({', '.join(sorted(w[:12] for w in wanted))}); the images differ"
                )
        missing = wanted - {m.fingerprint() for m in found}
        if missing:
            raise ProtocolError(f"protocol {protocol.name} also draws from manifest(s) {', '.join(sorted(w[:12] for w in missing))}; pass them with --manifest")
    return found
