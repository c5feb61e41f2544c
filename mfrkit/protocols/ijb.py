"""The IJB template protocol (kind ``ijb-templates``): IJB-B / IJB-C as insightface scores them.

``mfrkit protocol import-ijb ROOT --set ijbc`` reads insightface's release
(:mod:`.ijb_release`) and writes a protocol folder::

    <folder>/
      protocol.json                 kind "ijb-templates", the set, counts, files' sha256
      loose_crop.manifest.parquet   a manifest of the loose crops (root: ROOT/loose_crop;
                                    image_id = path = the face's name in the lists;
                                    identity = its template's subject where the 1:N lists
                                    give one); the user's folder is never written to
      faces.parquet                 one row per face, in the lists' order: image_id,
                                    template_id, media_id, detector_score, points5
                                    (10 float32: x1 y1 ... x5 y5, ArcFace order, pixels)
      templates.parquet             one row per template (ascending id): template_id,
                                    subject_id (-1 unknown), faces, medias, left / right
                                    (appears as TEMPLATE_1 / TEMPLATE_2 of a 1:1 pair),
                                    gallery ("S1", "S2" (IJB-C's G1, G2) or ""), probe
      template_pairs.parquet        the 1:1 comparisons in file order: t1, t2, label
                                    (row groups of 2^20; read back a group at a time)

**Sides.** A pair's first template is on the reference side, its second on the
probe side; 1:N gallery templates are reference, probe templates probe. Both sides
read the loose-crop manifest unless the bench is given another probe manifest: a
**masked IJB-C** is ``mfrkit synth`` over the loose-crop manifest, passed as
``--probe-manifest`` (``--manifest probe=...``): each face of a probe template is then
the masked image whose ``source_id`` is the face's id (same crop geometry, so the
release's 5 points still apply), while the gallery side stays untouched. A face with
no masked copy is a failure to acquire, never silently the unmasked crop.

Faces listed but absent from ``loose_crop/`` are kept (status ``missing``, failures to
acquire); when most are absent the import refuses unless ``allow_missing``. A
template named by the pair list or the 1:N lists but holding no face is an error
(insightface would silently score it as template 0).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path, atomic_write_bytes
from ..data.manifest import Manifest, make_table, read_manifest, write_manifest
from .errors import InsufficientDataError, ProtocolError
from .ijb_release import PAIR_CHUNK, SETS, FaceList, ReleasePaths, find_release, iter_template_pairs, read_faces, read_template_subjects

KIND = "ijb-templates"
MANIFEST_FILE = "loose_crop.manifest.parquet"
FACES_FILE, TEMPLATES_FILE, PAIRS_FILE = "faces.parquet", "templates.parquet", "template_pairs.parquet"
DATA_FILES = (FACES_FILE, TEMPLATES_FILE, PAIRS_FILE)
#: Mfrkit's names of the two 1:N galleries, whatever the set calls them (IJB-C: G1, G2).
GALLERIES = ("S1", "S2")
#: Below this fraction of listed faces found on disk, the import refuses (unless allow_missing).
MIN_FOUND = 0.5


def _probe_faces(paths: list[str]) -> list[dict]:
    from ..data.scan import probe_image

    return [probe_image(p, False) for p in paths]


def _manifest(paths: ReleasePaths, faces: FaceList, subject_of: dict, *, workers: int, progress: bool) -> Manifest:
    """The loose crops as a manifest: hash, size and stamp of each listed face (header read only)."""
    from ..jobs import ExecutorSpec, map_chunks

    files = [str(paths.images / n) for n in faces.names]
    probes = map_chunks(_probe_faces, files, executor=ExecutorSpec(workers=max(1, workers)), chunk_size=256,
                        progress=progress, description=f"hashing {paths.set} loose crops")
    subjects = pd.Series(faces.templates).map(subject_of)
    rows = [{"image_id": n, "path": n, "identity": None if pd.isna(s) else str(int(s)), "variant": "unmasked", **p}
            for n, s, p in zip(faces.names, subjects, probes)]
    table = make_table(rows)
    for col in ("mtime_ns", "ctime_ns"):
        table[col] = table[col].astype("Int64")
    meta = {"name": f"{paths.set}-loose-crop", "root": str(paths.images), "layout": "ijb-loose-crop",
            "kind": "scanned", "verify": False}
    return Manifest(table=table, meta=meta)


def _subjects(paths: ReleasePaths) -> tuple[dict, dict[str, np.ndarray], np.ndarray]:
    """template -> subject over every 1:N list, the gallery templates by mfrkit name, the probe templates."""
    subject_of: dict = {}
    lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for ours, theirs in zip(GALLERIES, SETS[paths.set]):
        if theirs in paths.galleries:
            lists[ours] = read_template_subjects(paths.galleries[theirs])
    probes = read_template_subjects(paths.probes) if paths.probes is not None else (np.zeros(0, np.int64),) * 2
    for what, (t, s) in [*lists.items(), ("probes", probes)]:
        for tid, sid in zip(t.tolist(), s.tolist()):
            if subject_of.setdefault(tid, sid) != sid:
                raise ProtocolError(f"template {tid} has subject {subject_of[tid]} in one 1:N list and {sid} in "
                                    f"{what}: the release's lists disagree")
    both = set(lists.get("S1", (np.zeros(0),))[0].tolist()) & set(lists.get("S2", (np.zeros(0),))[0].tolist())
    if both:
        raise ProtocolError(f"template {min(both)} is in both 1:N galleries; a gallery template belongs to one")
    return subject_of, {g: t for g, (t, _) in lists.items()}, probes[0]


def _write_pairs(paths: ReleasePaths, folder: Path, known: np.ndarray) -> dict:
    """Stream the pair list into ``template_pairs.parquet``; counts and the templates of each column."""
    schema = pa.schema([("t1", pa.int64()), ("t2", pa.int64()), ("label", pa.int8())])
    counts = {"pairs": 0, "genuine": 0, "impostor": 0}
    left: set = set()
    right: set = set()
    with atomic_path(folder / PAIRS_FILE) as tmp:
        with pq.ParquetWriter(str(tmp), schema, compression="zstd") as writer:
            for t1, t2, label in iter_template_pairs(paths.pairs, chunk=PAIR_CHUNK):
                for col, t in (("TEMPLATE_1", t1), ("TEMPLATE_2", t2)):
                    unknown = ~np.isin(t, known)
                    if unknown.any():
                        i = int(np.flatnonzero(unknown)[0])
                        raise ProtocolError(f"{paths.pairs}:{counts['pairs'] + i + 1}: {col} {int(t[i])} has no face in "
                                            f"{paths.faces.name}")
                left.update(np.unique(t1).tolist())
                right.update(np.unique(t2).tolist())
                writer.write_table(pa.table({"t1": t1, "t2": t2, "label": label}, schema=schema), row_group_size=PAIR_CHUNK)
                counts["pairs"] += len(label)
                counts["genuine"] += int(label.sum())
    counts["impostor"] = counts["pairs"] - counts["genuine"]
    if counts["pairs"] == 0:
        raise InsufficientDataError(f"{paths.pairs} lists no template pair")
    return {**counts, "left": left, "right": right}


def _templates_table(faces: FaceList, subject_of: dict, galleries: dict, probes: np.ndarray, left: set, right: set) -> pd.DataFrame:
    ids, n_faces = np.unique(faces.templates, return_counts=True)
    media_pairs = np.unique(np.stack([faces.templates, faces.medias], 1), axis=0)
    n_medias = np.bincount(np.searchsorted(ids, media_pairs[:, 0]), minlength=len(ids))
    gallery = np.full(len(ids), "", dtype=object)
    for g, t in galleries.items():
        missing = t[~np.isin(t, ids)]
        if len(missing):
            raise ProtocolError(f"gallery {g} template {int(missing[0])} has no face in the face list")
        gallery[np.isin(ids, t)] = g
    missing = probes[~np.isin(probes, ids)]
    if len(missing):
        raise ProtocolError(f"probe template {int(missing[0])} has no face in the face list")
    return pd.DataFrame({
        "template_id": ids, "subject_id": np.array([subject_of.get(int(t), -1) for t in ids], np.int64),
        "faces": n_faces.astype(np.int64), "medias": n_medias.astype(np.int64),
        "left": np.isin(ids, list(left)), "right": np.isin(ids, list(right)),
        "gallery": gallery.astype(str), "probe": np.isin(ids, probes),
    })  # fmt: skip


def _faces_table(faces: FaceList) -> pa.Table:
    points = pa.FixedSizeListArray.from_arrays(pa.array(faces.points.reshape(-1), pa.float32()), 10)
    return pa.table({"image_id": pa.array(faces.names.tolist(), pa.string()), "template_id": faces.templates,
                     "media_id": faces.medias, "detector_score": pa.array(faces.scores, pa.float32()),
                     "points5": points})


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class IjbImport:
    """What :func:`import_ijb` wrote: the folder, its ``protocol.json`` content, the manifest."""

    folder: Path
    info: dict
    manifest: Manifest

    def summary(self) -> str:
        c = self.info["counts"]
        kept = f"{c['faces_found']:,} of {c['faces']:,} faces found in loose_crop/"
        one_n = ", ".join(f"gallery {g} {c['gallery'].get(g, 0):,}" for g in GALLERIES)
        return (f"{self.info['set']}: {kept}; {c['templates']:,} templates ({c['medias']:,} medias); "
                f"1:1 {c['pairs']:,} template pairs ({c['genuine']:,} genuine, {c['impostor']:,} impostor); "
                f"1:N {one_n}, {c['probes']:,} probe templates")


def import_ijb(root: str | os.PathLike, out: str | os.PathLike, *, set_name: str = "ijbc", name: str | None = None,
               allow_missing: bool = False, overwrite: bool = False, workers: int = 1,
               progress: bool = False) -> IjbImport:
    """Read insightface's IJB release at ``root`` and write an ``ijb-templates`` protocol folder.

    Parameters
    ----------
    root : path-like
        The set folder (``IJBC/``, holding ``meta/`` and ``loose_crop/``) or its parent.
    out : path-like
        The protocol folder (new, empty, or an earlier protocol with ``overwrite``).
    set_name : ``ijbc`` or ``ijbb``
    name : str, optional
        The protocol's recorded name (default: the set).
    allow_missing : bool
        Write the protocol even when most listed faces are not in ``loose_crop/``.
    workers : int
        Processes hashing the crops.

    Returns
    -------
    IjbImport

    Raises
    ------
    PairFormatError
        A malformed meta file (file and line named).
    ProtocolError
        Lists that contradict each other, a non-empty folder that is not a protocol, or
        most faces missing (without ``allow_missing``).
    """
    from .folder import INFO_NAME, _manifest_entry, info_bytes, VERSION, FORMAT
    from .. import __version__

    folder = Path(out)
    _check_folder(folder, overwrite)
    paths = find_release(root, set_name)
    faces = read_faces(paths.faces, paths.landmarks)
    if len(faces) == 0:
        raise InsufficientDataError(f"{paths.faces} lists no face")
    subject_of, galleries, probes = _subjects(paths)
    manifest = _manifest(paths, faces, subject_of, workers=workers, progress=progress)
    found = int((manifest.table["status"] == "ok").sum())
    if found < MIN_FOUND * len(faces) and not allow_missing:
        example = manifest.table.loc[manifest.table["status"] != "ok"].iloc[0]
        raise InsufficientDataError(
            f"only {found:,} of the {len(faces):,} faces listed in {paths.faces.name} are usable images in "
            f"{paths.images} (e.g. {example['path']!r}: {example['status']}); check ROOT and --set, or pass "
            "--allow-missing to score the others as failures to acquire")
    folder.mkdir(parents=True, exist_ok=True)
    write_manifest(manifest, folder / MANIFEST_FILE)
    pairs = _write_pairs(paths, folder, np.unique(faces.templates))
    templates = _templates_table(faces, subject_of, galleries, probes, pairs.pop("left"), pairs.pop("right"))
    with atomic_path(folder / FACES_FILE) as tmp:
        pq.write_table(_faces_table(faces), str(tmp), compression="zstd")
    with atomic_path(folder / TEMPLATES_FILE) as tmp:
        pq.write_table(pa.Table.from_pandas(templates, preserve_index=False), str(tmp), compression="zstd")
    counts = {"faces": len(faces), "faces_found": found, "templates": int(len(templates)),
              "medias": int(templates["medias"].sum()), **pairs,
              "gallery": {g: int((templates["gallery"] == g).sum()) for g in GALLERIES},
              "probes": int(templates["probe"].sum()),
              "subjects": int(templates.loc[templates["subject_id"] >= 0, "subject_id"].nunique())}
    entry = _manifest_entry(manifest, folder)
    info = {"format": FORMAT, "version": VERSION, "mfrkit_version": __version__, "name": name or paths.set,
            "kind": KIND, "set": paths.set, "spec": None, "spec_params": {}, "seed": None, "params": {},
            "manifests": {"reference": entry, "probe": entry}, "counts": counts,
            "files": {f: {"sha256": _file_sha256(folder / f)} for f in DATA_FILES},
            "source": {"format": "insightface-ijb", "root": str(paths.root),
                       "files": {p.name: _file_sha256(p) for p in _meta_files(paths)}}}
    atomic_write_bytes(folder / INFO_NAME, info_bytes(info))
    return IjbImport(folder=folder, info=info, manifest=manifest)


def _meta_files(paths: ReleasePaths) -> list[Path]:
    return [paths.faces, paths.landmarks, paths.pairs, *paths.galleries.values(), *([paths.probes] if paths.probes else [])]


def _check_folder(folder: Path, overwrite: bool) -> None:
    from .folder import check_protocol_folder  # here, as its INFO_NAME was: folder imports the kinds, and they read IJB tables

    check_protocol_folder(folder, overwrite)


# --- reading back ------------------------------------------------------------------------------------


@dataclass
class IjbTables:
    """The tables of an ``ijb-templates`` folder (checked against ``protocol.json`` when opened).

    Attributes
    ----------
    folder : Path
    faces : DataFrame: image_id, template_id, media_id, detector_score, points5 (ndarray (n, 5, 2) apart)
    points : ndarray of float32, shape (n, 5, 2)
    templates : DataFrame (see the module docstring)
    """

    folder: Path
    faces: pd.DataFrame
    points: np.ndarray
    templates: pd.DataFrame

    @property
    def n_pairs(self) -> int:
        return pq.ParquetFile(self.folder / PAIRS_FILE).metadata.num_rows

    def iter_pairs(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(t1, t2, label) a row group (2^20 pairs) at a time: memory stays flat."""
        pf = pq.ParquetFile(self.folder / PAIRS_FILE)
        for i in range(pf.num_row_groups):
            t = pf.read_row_group(i)
            yield (t.column("t1").to_numpy(), t.column("t2").to_numpy(), t.column("label").to_numpy().astype(np.int8))

    def side_templates(self, side: str) -> np.ndarray:
        """Template ids needed on a side: ``reference`` (pair column 1, galleries) or ``probe``."""
        t = self.templates
        keep = (t["left"] | (t["gallery"] != "")) if side == "reference" else (t["right"] | t["probe"])
        return t.loc[keep, "template_id"].to_numpy(np.int64)


def load_ijb_tables(folder: str | os.PathLike, info: dict) -> IjbTables:
    """Open the tables of an ``ijb-templates`` protocol folder.

    Raises
    ------
    ProtocolError
        A file is missing or changed since ``protocol.json`` was written.
    """
    folder = Path(folder)
    for name in DATA_FILES:
        path = folder / name
        if not path.is_file():
            raise ProtocolError(f"protocol folder {folder} lacks {name}")
        if _file_sha256(path) != ((info.get("files") or {}).get(name) or {}).get("sha256"):
            raise ProtocolError(f"{path} changed after protocol.json was written (sha256 mismatch): import the "
                                "release again (mfrkit protocol import-ijb)")
    try:
        faces = pq.read_table(folder / FACES_FILE)
        templates = pq.read_table(folder / TEMPLATES_FILE).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise ProtocolError(f"cannot read the tables of {folder}: {exc}") from None
    points = faces.column("points5").combine_chunks().flatten().to_numpy().reshape(-1, 5, 2)
    table = faces.drop(["points5"]).to_pandas()
    table["image_id"] = table["image_id"].astype(str)
    return IjbTables(folder=folder, faces=table, points=points.astype(np.float32), templates=templates)


def read_loose_crop_manifest(folder: str | os.PathLike) -> Manifest:
    """The loose-crop manifest an import wrote into ``folder``."""
    return read_manifest(Path(folder) / MANIFEST_FILE, records=False)
