"""A minimal reader of protocol folders, until ``mfrkit.protocols`` is merged.

This is the only place the benchmark touches the protocol file format. Its
:class:`Protocol` has the attributes of ``mfrkit.protocols.Protocol`` that the bench
uses (``info``, ``name``, ``kind``, ``manifests`` by role, ``pairs`` / ``gallery`` /
``probes``, ``folder``, ``sha256``), and :func:`resolve_protocol` hands over to the
protocol engine's ``resolve_protocol`` as soon as that exists, so swapping readers
changes nothing else.

A protocol folder holds ``protocol.json`` (``name``, ``kind``, ``spec``, ``seed``,
``version``, ``manifests``: by role, ``{"reference": {"path", "fingerprint"}, "probe":
{...}}``, or a list of one entry serving both roles) and either ``pairs.csv``
(``fold,left_id,right_id,label``; left ids are reference-manifest ``image_id``\\s, right
ids probe-manifest ones; an empty id is an image that could not be supplied) or
``gallery.csv`` (``image_id`` [, ``identity``]; reference manifest) and ``probes.csv``
(``image_id,mated`` [, ``identity``, ``mate_id``]; probe manifest).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pandas as pd

from ..data.manifest import Manifest, read_manifest
from ..errors import MfrkitError

VERIFICATION, IDENTIFICATION = "verification", "identification"
ROLES = ("reference", "probe")
_KINDS = {
    "verification": VERIFICATION, "1:1": VERIFICATION, "pairs": VERIFICATION,
    "identification": IDENTIFICATION, "1:n": IDENTIFICATION, "search": IDENTIFICATION,
}  # fmt: skip
_REQUIRED = {"pairs.csv": ("fold", "left_id", "right_id", "label"), "gallery.csv": ("image_id",), "probes.csv": ("image_id", "mated")}


class ProtocolError(MfrkitError):
    """A protocol folder is missing, malformed, or does not match its manifests."""


@dataclass
class Protocol:
    """A loaded protocol (the subset of ``mfrkit.protocols.Protocol`` the bench uses).

    Attributes
    ----------
    info : dict, the content of ``protocol.json``.
    manifests : dict role -> Manifest (``reference``, ``probe``; may be the same one).
    pairs : DataFrame ``fold, left_id, right_id, label`` (1:1) or None.
    gallery : DataFrame with ``image_id`` [, ``identity``] (1:N) or None.
    probes : DataFrame with ``image_id``, ``mated`` [, ``identity``, ``mate_id``] (1:N) or None.
    folder : Path or None.
    sha256 : str or None.
    """

    info: dict
    manifests: dict
    pairs: pd.DataFrame | None = None
    gallery: pd.DataFrame | None = None
    probes: pd.DataFrame | None = None
    folder: Path | None = None
    sha256: str | None = None

    @property
    def name(self) -> str:
        return str(self.info.get("name", ""))

    @property
    def kind(self) -> str:
        return str(self.info["kind"])

    @property
    def spec(self):
        return self.info.get("spec")

    @property
    def seed(self):
        return self.info.get("seed")


def _read_csv(path: Path, name: str) -> pd.DataFrame:
    if not path.is_file():
        raise ProtocolError(f"protocol folder {path.parent} lacks {name}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ProtocolError(f"cannot read {path}: {exc}") from None
    missing = [c for c in _REQUIRED[name] if c not in df.columns]
    if missing:
        raise ProtocolError(f"{name} lacks column(s) {', '.join(missing)}; it has {', '.join(df.columns)}")
    return df


def _flag(df: pd.DataFrame, col: str, fname: str) -> pd.Series:
    v = df[col].str.strip().str.lower()
    mapping = {"1": 1, "0": 0, "true": 1, "false": 0}
    bad = ~v.isin(list(mapping))
    if bad.any():
        raise ProtocolError(f"{fname}: {col} must be 0/1, got {df[col][bad].iloc[0]!r} on line {int(bad.values.argmax()) + 2}")
    return v.map(mapping).astype("int64")


def _manifest_entries(info: dict, meta_file: Path) -> dict[str, dict]:
    raw = info.get("manifests")
    if isinstance(raw, dict) and set(raw) <= set(ROLES) and raw:
        entries = {r: e for r, e in raw.items() if isinstance(e, dict)}
        if "probe" not in entries and "reference" in entries:
            entries["probe"] = entries["reference"]
        if "reference" not in entries and "probe" in entries:
            entries["reference"] = entries["probe"]
        return entries
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], dict):
        return {r: raw[0] for r in ROLES}
    raise ProtocolError(
        f"{meta_file}: manifests must map the roles reference and probe to {{path, fingerprint}} "
        "(or be a list of one manifest serving both)"
    )


def _open(value, folder: Path) -> Manifest:
    if isinstance(value, Manifest):
        return value
    p = Path(value)
    return read_manifest(p if p.is_absolute() else folder / p)


def load_protocol(folder: str | os.PathLike, manifests: Mapping[str, object] | None = None) -> Protocol:
    """Read a protocol folder (see the module docstring).

    Parameters
    ----------
    folder : path-like
    manifests : dict role -> manifest path (or Manifest), optional
        Replace the paths recorded in ``protocol.json``; each is checked against the
        recorded fingerprint.

    Raises
    ------
    ProtocolError
        Not a protocol folder, malformed files, a data file changed since
        ``protocol.json`` recorded its sha256, or a manifest whose fingerprint differs.
    """
    folder = Path(folder)
    meta_file = folder / "protocol.json"
    if not meta_file.is_file():
        raise ProtocolError(f"{folder} is not a protocol folder (no protocol.json)")
    raw = meta_file.read_bytes()
    try:
        info = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError(f"{meta_file} is not valid JSON: {exc}") from None
    if not isinstance(info, dict):
        raise ProtocolError(f"{meta_file} must hold a JSON object")
    kind = _KINDS.get(str(info.get("kind", "")).strip().lower())
    if kind is None:
        raise ProtocolError(f"{meta_file}: kind must be verification (1:1) or identification (1:N), got {info.get('kind')!r}")
    info = {**info, "kind": kind}
    names = ("pairs.csv",) if kind == VERIFICATION else ("gallery.csv", "probes.csv")
    frames, h = {}, hashlib.sha256(raw)
    recorded = info.get("files") if isinstance(info.get("files"), dict) else {}
    for name in names:
        path = folder / name
        frames[name] = _read_csv(path, name)
        data = path.read_bytes()
        want = (recorded.get(name) or {}).get("sha256") if isinstance(recorded.get(name), dict) else None
        if want and want != hashlib.sha256(data).hexdigest():
            raise ProtocolError(f"{path} changed after protocol.json was written (sha256 mismatch)")
        h.update(b"\0" + name.encode() + b"\0" + data)
    if kind == VERIFICATION:
        pairs = frames["pairs.csv"]
        pairs["label"] = _flag(pairs, "label", "pairs.csv")
        if pairs.empty:
            raise ProtocolError(f"{folder / 'pairs.csv'} has no pairs")
    else:
        gallery, probes = frames["gallery.csv"], frames["probes.csv"]
        probes["mated"] = _flag(probes, "mated", "probes.csv")
        if gallery.empty or probes.empty:
            raise ProtocolError(f"{folder}: gallery.csv and probes.csv must both list images")
        dup = gallery["image_id"].duplicated()
        if dup.any():
            raise ProtocolError(f"gallery.csv lists {gallery['image_id'][dup].iloc[0]!r} twice")
    entries = _manifest_entries(info, meta_file)
    given = dict(manifests or {})
    opened: dict[str, Manifest] = {}
    resolved: dict[str, Manifest] = {}
    for role in ROLES:
        entry = entries[role]
        value = given.get(role)
        if value is None:
            if not entry.get("path"):
                raise ProtocolError(f"protocol {info.get('name')!r} records no path for its {role} manifest; pass it with --manifest")
            value = entry["path"]
        key = str(value) if not isinstance(value, Manifest) else f"id:{id(value)}"
        if key not in opened:
            try:
                opened[key] = _open(value, folder)
            except MfrkitError as exc:
                raise ProtocolError(f"the {role} manifest of protocol {info.get('name')!r}: {exc}") from None
        m = opened[key]
        want = entry.get("fingerprint") or entry.get("sha256")
        if want and m.fingerprint() != want:
            raise ProtocolError(
                f"protocol {info.get('name')!r} was drawn from a {role} manifest with fingerprint {str(want)[:12]}, "
                f"but {m.path} has {m.fingerprint()[:12]}: the images differ"
            )
        resolved[role] = m
    # A protocol that records its files' hashes is identified by protocol.json alone.
    sha = hashlib.sha256(raw).hexdigest() if recorded else h.hexdigest()
    return Protocol(
        info=info, manifests=resolved, pairs=frames.get("pairs.csv"), gallery=frames.get("gallery.csv"),
        probes=frames.get("probes.csv"), folder=folder, sha256=sha,
    )  # fmt: skip


def parse_manifest_options(values: list[str] | None) -> dict[str, str]:
    """``--manifest`` values: ``PATH`` (both roles) or ``reference=PATH`` / ``probe=PATH``,
    applied in order."""
    out: dict[str, str] = {}
    for v in values or []:
        role, sep, path = str(v).partition("=")
        if sep and role in ROLES:
            out[role] = path
        else:
            out["reference"] = out["probe"] = str(v)
    return out


def resolve_protocol(value: str | os.PathLike, manifests: Mapping[str, object] | None = None):
    """A protocol from a folder (or, through the protocol engine once merged, a spec
    name such as ``mr-mp`` drawn from ``manifests``)."""
    try:
        from ..protocols import resolve_protocol as engine  # type: ignore[attr-defined]
    except ImportError:
        engine = None
    manifests = dict(manifests or {})
    if engine is not None:
        return engine(value, manifests.get("reference"), manifests.get("probe"))
    if not Path(value).is_dir():
        raise ProtocolError(
            f"no protocol folder at {value!s}; protocols by spec name need the protocol engine (mfrkit.protocols)"
        )
    return load_protocol(value, manifests)


def protocol_sha256(protocol) -> str:
    """The protocol's sha256; for one made in memory (not saved), a hash of its name,
    spec, seed and tables."""
    if getattr(protocol, "sha256", None):
        return protocol.sha256
    h = hashlib.sha256(json.dumps({k: protocol.info.get(k) for k in ("name", "kind", "spec", "seed")}, sort_keys=True, default=str).encode())
    for df in (protocol.pairs, protocol.gallery, protocol.probes):
        if df is not None:
            h.update(df.to_csv(index=False).encode())
    return h.hexdigest()


def describe_protocol(protocol) -> dict:
    """What a report records about a protocol."""
    d = {"name": protocol.name, "kind": protocol.kind, "spec": protocol.info.get("spec"), "seed": protocol.info.get("seed")}
    d.update(version=protocol.info.get("version"), sha256=protocol_sha256(protocol))
    d["folder"] = None if protocol.folder is None else str(protocol.folder)
    d["manifests"] = {r: {"path": None if m.path is None else str(m.path), "fingerprint": m.fingerprint()} for r, m in protocol.manifests.items()}
    if protocol.kind == VERIFICATION:
        d.update(n_pairs=int(len(protocol.pairs)), n_folds=int(protocol.pairs["fold"].nunique()))
    else:
        mated = pd.to_numeric(protocol.probes["mated"]).astype(bool)
        d.update(n_gallery=int(len(protocol.gallery)), n_probes=int(len(protocol.probes)), n_mated=int(mated.sum()))
    return d
