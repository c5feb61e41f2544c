"""Import public pair lists as protocols, and export protocols to public formats.

Importing maps each image reference of the file to an ``image_id`` of the manifest of
its side (left: reference role, right: probe role), trying in turn: the manifest
``path``; the ``image_id``; the path with another extension; the reference with
leading folders removed (a file written relative to a parent folder); the bare file
name and its stem, when unique (CALFW / MLFW name files without their folder). A
reference that matches nothing is **kept in place** with the reference as its id, so
folds and positions never shift; the import report lists it, ``validate`` flags it,
and ``strict`` turns it into an error. References escaping the dataset root (absolute,
``..``) are refused by the readers.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ..atomic import check_new_file
from ..data.imageio import decode_image
from ..data.verification_bin import open_bin
from ..data.manifest import (
    STATUS_OK,
    Manifest,
    make_table,
    read_manifest,
    write_manifest,
)
from ..errors import ImageError, MfrkitError
from ..userfiles import read_user_bytes, user_file_sha256
from .errors import PairFormatError, ProtocolError
from .folder import Protocol
from .kinds import has_pair_list, protocol_kind
from .formats import (
    contiguous_folds,
    get_format,
    read_bin,
    read_pairs,
    read_people,
    write_pairs,
)
from .verification import check_references_found, role_manifests

_AMBIGUOUS = object()

#: (reference variant, probe variant) -> spec name, used to label imported protocols.
_SPEC_OF_VARIANTS = {("unmasked", "unmasked"): "umr-ump", ("unmasked", "masked"): "umr-mp",
                     ("masked", "masked"): "mr-mp", ("masked", "unmasked"): "mr-ump"}


def _unique(keys, values) -> dict:
    out: dict = {}
    for k, v in zip(keys, values):
        out[k] = _AMBIGUOUS if (k in out and out[k] != v) else v
    return out


def _stem(p: str) -> str:
    pp = PurePosixPath(p)
    return str(pp.with_suffix("")) if pp.suffix else p


class RefResolver:
    """Maps file references to the ``image_id``s of one manifest (see the module docstring)."""

    def __init__(self, manifest: Manifest) -> None:
        t = manifest.table
        ids, paths = t["image_id"].astype(str).tolist(), t["path"].astype(str).tolist()
        self.ids = set(ids)
        self.by_path = dict(zip(paths, ids))
        self.by_stem = _unique([_stem(p) for p in paths], ids)
        names = [PurePosixPath(p).name for p in paths]
        self.by_name = _unique(names, ids)
        self.by_name_stem = _unique([_stem(n) for n in names], ids)

    def resolve(self, ref: str) -> str | None:
        if ref in self.by_path:
            return self.by_path[ref]
        if ref in self.ids:
            return ref
        parts = PurePosixPath(ref).parts
        for i in range(len(parts)):
            sub = "/".join(parts[i:])
            for table in (self.by_path, self.by_stem):
                hit = table.get(sub) if table is self.by_path else table.get(_stem(sub))
                if hit is not None and hit is not _AMBIGUOUS:
                    return hit
        name = parts[-1] if parts else ref
        for hit in (self.by_name.get(name), self.by_name_stem.get(_stem(name))):
            if hit is not None and hit is not _AMBIGUOUS:
                return hit
        return None


@dataclass
class ImportReport:
    """What an import did. ``unresolved``: (row 1-based, side, reference) kept as ids."""

    pairs: int
    folds: int
    genuine: int
    unresolved: list[tuple[int, str, str]] = field(default_factory=list)
    #: Pairs with an image that is in the manifest but not usable (corrupt, ...): each a
    #: failure to acquire in the bench.
    unusable: int = 0

    @property
    def ok(self) -> bool:
        return not self.unresolved and not self.unusable

    @property
    def references(self) -> int:
        """Image references in the file (two per pair)."""
        return 2 * self.pairs

    @property
    def complete_pairs(self) -> int:
        """Pairs whose two images were both found."""
        return self.pairs - len({row for row, _, _ in self.unresolved})

    def summary(self) -> str:
        text = f"{self.pairs} pairs ({self.genuine} genuine) in {self.folds} fold(s)"
        if self.unresolved:
            row, side, ref = self.unresolved[0]
            text += (f"; {self.references - len(self.unresolved):,} of {self.references:,} references found, "
                     f"{self.complete_pairs:,} pairs with both images; {len(self.unresolved):,} reference(s) not found "
                     f"in the manifests, kept in place as failures (e.g. row {row} {side}: {ref!r})")
        return text

    def warning(self) -> str | None:
        """What the user should know of an import that is not :attr:`ok`, in one line."""
        parts = []
        if self.unresolved:
            parts.append(f"{len(self.unresolved)} image reference(s) were not found")
        if self.unusable:
            parts.append(f"{self.unusable} pair(s) have an image that cannot be used (corrupt or failed), scored as "
                         "failures to acquire")
        return "; ".join(parts) + "; run `mfrkit protocol validate` for details" if parts else None


def infer_spec(manifests: dict[str, Manifest], left_ids, right_ids) -> str | None:
    """The spec whose variants the pairs use, when every pair uses the same two; else None."""
    variants = []
    for role, ids in (("reference", left_ids), ("probe", right_ids)):
        t = manifests[role].table
        v = t["variant"].astype(object).where(t["variant"].notna(), "unmasked")
        found = set(pd.Series(v.to_numpy(), index=t["image_id"].astype(str)).reindex(list(ids)).dropna())
        if len(found) != 1:
            return None
        variants.append(found.pop())
    return _SPEC_OF_VARIANTS.get(tuple(variants))


def import_pairs(path: str | os.PathLike, fmt: str, reference: Manifest | str | os.PathLike,
                 probe: Manifest | str | os.PathLike | None = None, *, name: str | None = None,
                 strict: bool = False, allow_missing: bool = False, **read_options) -> tuple[Protocol, ImportReport]:
    """Read a public pair list as a 1:1 protocol over ``reference`` / ``probe`` manifests.

    Parameters
    ----------
    path : path-like
    fmt : str
        A registered format (``lfw``, ``mfr2``, ``calfw``, ``cplfw``, ``mlfw``,
        ``pairs-label``, ``csv``); insightface ``.bin`` files go through
        :func:`import_insightface_bin`.
    reference, probe : Manifest or path
        Manifests for the left and right images (``probe`` defaults to ``reference``).
    strict : bool
        Raise when a reference matches no image instead of keeping it in place.
    allow_missing : bool
        Import even when most references match no image (by default an
        :class:`~.errors.InsufficientDataError`: the file is probably not of these images).
    **read_options
        Format options: ``ext`` (lfw, mfr2), ``n_folds`` (formats without folds).

    Returns
    -------
    (Protocol, ImportReport). The protocol keeps the file's order, folds and labels;
    ``spec`` is inferred from the variants when unambiguous (else None).
    """
    path = Path(path)
    pairs = read_pairs(path, fmt, **read_options)
    manifests = role_manifests(reference, probe)
    resolvers = {role: RefResolver(m) for role, m in manifests.items()}
    left, right, unresolved = [], [], []
    for row, (l, r) in enumerate(zip(pairs["left"], pairs["right"]), start=1):
        for side, ref, out, role in (("left", l, left, "reference"), ("right", r, right, "probe")):
            hit = resolvers[role].resolve(ref)
            if hit is None:
                unresolved.append((row, side, ref))
                hit = ref
            out.append(hit)
    if unresolved and strict:
        row, side, ref = unresolved[0]
        raise ProtocolError(f"{len(unresolved)} reference(s) of {path} match no image of the manifests, e.g. row {row} "
                            f"{side}: {ref!r}. Check the manifests and the format options (ext).")
    check_references_found(2 * len(pairs) - len(unresolved), 2 * len(pairs), f"image references of {path.name}",
                           "match an image of the manifests", allow_missing=allow_missing)
    table = pd.DataFrame({"fold": pairs["fold"], "left_id": left, "right_id": right, "label": pairs["label"]})
    spec = infer_spec(manifests, left, right)  # unresolved ids are ignored
    info = {"name": name or path.stem, "kind": "verification", "spec": spec, "spec_params": {}, "seed": None,
            "params": {"read_options": {k: v for k, v in sorted(read_options.items()) if v is not None}},
            "source": {"format": get_format(fmt).name, "file": path.name, "sha256": user_file_sha256(path),
                       "unresolved": len(unresolved)}}
    report = ImportReport(pairs=len(table), folds=int(table["fold"].nunique()), genuine=int(table["label"].sum()),
                          unresolved=unresolved)
    return Protocol(info=info, manifests=manifests, pairs=table), report


def people_folds(path: str | os.PathLike) -> dict[str, int]:
    """identity -> 0-based fold from an LFW ``people.txt`` (for ``make_verification``)."""
    people = read_people(path)
    return dict(zip(people["identity"], people["fold"].astype(int)))


# --- export ----------------------------------------------------------------------------------------


def export_root(protocol: Protocol) -> Path:
    """The folder exported paths are relative to: the deepest folder holding both roots."""
    roots = {role: Path(os.path.abspath(protocol.manifest(role).root)) for role in ("reference", "probe")}
    return Path(os.path.commonpath([str(roots["reference"]), str(roots["probe"])]))


def protocol_pair_table(protocol: Protocol, root: Path | None = None) -> tuple[pd.DataFrame, Path]:
    """A 1:1 protocol as a pair table of paths relative to ``root`` (default :func:`export_root`)."""
    if not has_pair_list(protocol.kind) or protocol.pairs is None:
        raise ProtocolError(f"only 1:1 protocols can be exported as pair lists; {protocol.name!r} is {protocol.kind}")
    root = Path(os.path.abspath(root)) if root is not None else export_root(protocol)
    sides = {}
    for column, role in (("left_id", "reference"), ("right_id", "probe")):
        images = protocol.images(role)
        ids = protocol.pairs[column].astype(str)
        unknown = ids[~ids.isin(images.index)]
        if len(unknown):
            raise ProtocolError(f"{len(unknown)} {column} value(s) of {protocol.name!r} are not in the {role} manifest "
                                f"(e.g. {unknown.iloc[0]!r}); run `mfrkit protocol validate` and fix the protocol")
        base = Path(os.path.abspath(protocol.manifest(role).root))
        rel = os.path.relpath(base, root)
        prefix = "" if rel == "." else Path(rel).as_posix() + "/"
        if prefix.startswith("../"):
            raise ProtocolError(f"the {role} images lie outside {root}; choose a root that holds both datasets")
        sides[column] = [prefix + str(p) for p in images.loc[ids, "path"]]
    table = pd.DataFrame({"fold": protocol.pairs["fold"].to_numpy(), "left": sides["left_id"],
                          "right": sides["right_id"], "label": protocol.pairs["label"].to_numpy()})
    return table, root


def export_protocol(protocol: Protocol, path: str | os.PathLike, fmt: str, *,
                    root: str | os.PathLike | None = None, replace: bool = True) -> tuple[Path, Path]:
    """Write a 1:1 protocol as a public pair list (an all-pairs protocol: every comparison,
    as ``csv`` only, see :func:`~.all_pairs.export_all_pairs`).

    Paths in the file are relative to ``root`` (default: the deepest folder holding
    both manifests' dataset roots; with one manifest, its root). Formats without
    folds refuse protocols whose folds they could not give back.

    ``replace=False`` (``mfrkit protocol export`` without ``--force``): an existing
    ``path`` is refused before anything is written.

    Returns
    -------
    (path written, root the paths are relative to)
    """
    check_new_file(path, force=replace, what="pair list")
    return protocol_kind(protocol.kind).export(protocol, path, fmt, root=root, replace=replace)


def export_pair_list(protocol: Protocol, path: str | os.PathLike, fmt: str, *,
                     root: str | os.PathLike | None = None, replace: bool = True) -> tuple[Path, Path]:
    """A protocol's pair list written in ``fmt`` (see :func:`export_protocol`)."""
    table, root = protocol_pair_table(protocol, Path(root) if root is not None else None)
    options = {"root": root} if "root" in get_format(fmt).write_options else {}
    return write_pairs(table, path, fmt, replace=replace, **options), root


# --- insightface .bin ------------------------------------------------------------------------------

_MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"BM", ".bmp"), (b"GIF8", ".gif"))


def _extension(data: bytes) -> str | None:
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return None


def import_insightface_bin(path: str | os.PathLike, dataset_dir: str | os.PathLike, *, variant: str = "unmasked",
                           n_folds: int = 10, name: str | None = None) -> tuple[Protocol, Manifest]:
    """Unpack an insightface ``.bin`` into images + a manifest, and return its 1:1 protocol.

    The ``.bin`` is read by :func:`~mfrkit.protocols.formats.read_bin` (nothing in it is
    executed). Images are written, with their original bytes, to
    ``dataset_dir/images/NNNNNN.<ext>`` (image ``2i`` and ``2i + 1`` form pair ``i``);
    an image that does not decode is recorded with its failure status and no file, and
    its pair is kept. Existing identical files are not rewritten, so an interrupted
    import can be run again. The manifest has no identities (a ``.bin`` carries none).

    Parameters
    ----------
    path : path-like
    dataset_dir : path-like
        Gets ``images/`` and ``manifest.parquet``.
    variant : str
        Variant recorded for every image (``masked`` for an MLFW-like file).
    n_folds : int
        Contiguous folds, 10 as in insightface's evaluation.

    Returns
    -------
    (Protocol, Manifest): the protocol is not saved yet; the manifest is written.
    """
    path, dataset_dir = Path(path), Path(dataset_dir)
    data = read_user_bytes(path, "bin")
    bins, issame = read_bin(data, source=str(path))
    folds = contiguous_folds(len(issame), n_folds)
    # The images go into a folder mfrkit owns: a new or empty one, or this very file's
    # earlier extraction (resumed); never an existing dataset, whose manifest would be
    # overwritten. Claimed after the file was read, so a bad file changes nothing.
    from ..jobs import OutputFolder

    fingerprint = f"{hashlib.sha256(data).hexdigest()[:16]}-{variant}"
    folder = OutputFolder(dataset_dir, kind="bin-images", fingerprint=fingerprint, adopt=_legacy_bin_images)
    with folder.claim():
        manifest, rows = _write_bin_images(folder, bins, variant, name or path.stem, path.name, hashlib.sha256(data).hexdigest())
        folder.finished()
    ids = [r["image_id"] for r in rows]
    pairs = pd.DataFrame({"fold": folds, "left_id": ids[0::2], "right_id": ids[1::2],
                          "label": np.asarray(issame, dtype=np.int64)})
    spec = _SPEC_OF_VARIANTS.get((variant, variant))
    info = {"name": name or path.stem, "kind": "verification", "spec": spec, "spec_params": {}, "seed": None,
            "params": {"read_options": {"n_folds": n_folds, "variant": variant}},
            "source": {"format": "insightface-bin", "file": path.name, "sha256": manifest.meta["source"]["sha256"],
                       "unresolved": 0}}
    return Protocol(info=info, manifests={"reference": manifest, "probe": manifest}, pairs=pairs), manifest


def bin_protocol_in_place(path: str | os.PathLike, *, n_folds: int = 10, name: str | None = None) -> tuple[Protocol, Manifest]:
    """The 1:1 protocol of an insightface ``.bin`` whose images stay in the file.

    The manifest is the ``.bin``'s own: the one mfrkit wrote beside it (a masked copy
    made by ``mfrkit synth --src lfw.bin``: reference side unmasked, probe side masked, so
    the protocol is ``umr-mp``), else an in-place scan
    (:func:`mfrkit.data.registry.resolve_source`; every image ``unmasked``). Image ``2k``
    and ``2k + 1`` form pair ``k``; folds are contiguous as insightface's.

    Returns
    -------
    (Protocol, Manifest): the protocol is not saved yet.
    """
    from ..data.registry import resolve_source

    path = Path(path).resolve()
    manifest = _made_bin_manifest(path) or resolve_source(str(path))
    bins, issame = open_bin(path)
    t = manifest.table.set_index("path")
    refs = [f"{path.name}#{i}" for i in range(len(bins))]
    missing = [r for r in refs if r not in t.index]
    if missing:
        raise PairFormatError(f"the manifest beside {path} does not list {missing[0]} ({len(missing)} image(s)): "
                              "it belongs to another file; move it away or scan the .bin alone")
    ids = t.loc[refs, "image_id"].astype(str).tolist()
    pairs = pd.DataFrame({"fold": contiguous_folds(len(issame), n_folds), "left_id": ids[0::2], "right_id": ids[1::2],
                          "label": np.asarray(issame, dtype=np.int64)})
    variants = t.loc[refs, "variant"].astype(str).tolist()
    spec = _SPEC_OF_VARIANTS.get((variants[0], variants[1]))
    info = {"name": name or path.stem, "kind": "verification", "spec": spec, "spec_params": {}, "seed": None,
            "params": {"read_options": {"n_folds": n_folds}},
            "source": {"format": "insightface-bin", "file": path.name, "sha256": user_file_sha256(path), "unresolved": 0, "in_place": True}}
    return Protocol(info=info, manifests={"reference": manifest, "probe": manifest}, pairs=pairs), manifest


def _made_bin_manifest(path: Path) -> Manifest | None:
    """The manifest mfrkit wrote beside a ``.bin`` it made (``synth --src lfw.bin``), if any."""
    beside = path.parent / "manifest.parquet"
    if not beside.is_file():
        return None
    try:
        manifest = read_manifest(beside, records=False)
    except MfrkitError:
        return None
    return manifest if (manifest.meta.get("verification_bin") or {}).get("file") == path.name else None


def _legacy_bin_images(root: Path) -> str | None:
    """An extraction made before output markers existed (its manifest says so)."""
    try:
        meta = read_manifest(root / "manifest.parquet").meta
    except MfrkitError:
        return None
    if meta.get("layout") != "insightface-bin":
        return None
    return f"{str((meta.get('source') or {}).get('sha256', ''))[:16]}-{meta.get('variant', 'unmasked')}"


def _write_bin_images(folder, bins: list[bytes], variant: str, name: str, file_name: str, file_sha256: str) -> tuple[Manifest, list[dict]]:
    width = max(6, len(str(len(bins) - 1)))
    rows = []
    for i, blob in enumerate(bins):
        row = {"image_id": None, "path": None, "identity": None, "variant": variant, "status": STATUS_OK,
               "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
        try:
            img = decode_image(blob)
            row["height"], row["width"] = int(img.shape[0]), int(img.shape[1])
            ext = _extension(blob) or ".img"
        except ImageError as exc:
            row["status"], ext = exc.reason, ".img"
        rel = f"images/{i:0{width}d}{ext}"
        row["image_id"] = row["path"] = rel
        if row["status"] == STATUS_OK:
            target = folder.path_for(rel)
            if not (target.is_file() and target.stat().st_size == len(blob) and target.read_bytes() == blob):
                folder.write_bytes(rel, blob)
        rows.append(row)
    manifest = Manifest(make_table(rows), {"name": name, "layout": "insightface-bin", "variant": variant,
                                           "source": {"file": file_name, "sha256": file_sha256}})
    write_manifest(manifest, folder.root / "manifest.parquet")
    return manifest, rows


def export_every_comparison(protocol: Protocol, path: str | os.PathLike, fmt: str, *,
                            root: str | os.PathLike | None = None, replace: bool = True) -> tuple[Path, Path]:
    """An all-pairs protocol as a CSV of every comparison (see :func:`export_protocol`)."""
    from .all_pairs import export_all_pairs

    if fmt != "csv":
        raise PairFormatError(f"an all-pairs protocol has no pair list to write as {fmt}; it exports as csv only "
                              "(one row per comparison: see its size with `mfrkit protocol show` first)")
    root = Path(os.path.abspath(root)) if root is not None else export_root(protocol)
    return export_all_pairs(protocol, path, root=root, replace=replace), root
