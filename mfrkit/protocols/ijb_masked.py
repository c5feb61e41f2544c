"""A masked IJB: the same templates and template pairs, the probe-side faces masked.

insightface's masked-face papers and the MFR challenge score IJB-C with the probe side
masked and the gallery untouched. Here that is an ``ijb-templates`` protocol derived
from an imported one (:func:`derive_masked_ijb`, ``mfrkit protocol make OUT --from
IJB_PROTOCOL -p MASKED``): ``faces.parquet``, ``templates.parquet`` and
``template_pairs.parquet`` are copied unchanged, the reference manifest stays the
loose-crop manifest and the probe manifest becomes ``MASKED``, a ``mfrkit synth`` over
the loose-crop manifest (``--src <IJB_PROTOCOL>/loose_crop.manifest.parquet``). Each
image of it points back at its loose crop by ``source_id``; the bench aligns it with the
release's 5 points of that face (synth keeps the crop's geometry).

A probe-side face with no masked image (synth found no face on it) is kept: the bench
scores it as a failure to acquire (``no_masked_copy``), counted here in
``counts.probe_faces_masked``. When most probe-side faces have none the derivation
refuses unless ``allow_missing``; a face with several masked images (a synth grid or
``--mask all``) is an error, since which one is scored would be arbitrary.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path, atomic_write_bytes
from ..data.manifest import Manifest
from .errors import InsufficientDataError, ProtocolError
from .ijb import DATA_FILES, KIND, MANIFEST_FILE, MIN_FOUND, _check_folder, _file_sha256
from .verification import role_manifests


def masked_copies(faces: pd.Series, masked: Manifest) -> pd.Series:
    """Row of ``masked``'s table holding each face's masked image (NaN where none).

    Raises ProtocolError when a face has several, or when the manifest has no ``source_id``.
    """
    t = masked.table
    if "source_id" not in t:
        raise ProtocolError(f"the probe manifest {masked.path} has no source_id column: give a mfrkit synth output "
                            "of the IJB protocol's loose-crop manifest")
    ok = t["status"].astype(str).eq("ok") & t["source_id"].notna()
    src = t.loc[ok, "source_id"].astype(str)
    counts = src.value_counts()
    if (counts > 1).any():
        face = counts.index[counts > 1][0]
        raise ProtocolError(f"the probe manifest {masked.path} holds {int(counts[face])} usable images made from face "
                            f"{face!r}; a masked IJB probe side needs one per face (synth without --grid or --mask all)")
    by_face = pd.Series(np.flatnonzero(ok.to_numpy()), index=src.to_numpy())
    return by_face.reindex(faces.astype(str).to_numpy())


def derive_masked_ijb(parent, probe, out: str | os.PathLike, *, name: str | None = None, allow_missing: bool = False,
                      overwrite: bool = False) -> dict:
    """Write the masked variant of the ``ijb-templates`` protocol ``parent`` into ``out``.

    Parameters
    ----------
    parent : Protocol of kind ``ijb-templates`` (loaded, its manifests checked).
    probe : Manifest or path: the masked images (see the module docstring).
    out : the new protocol folder.
    allow_missing : go ahead when most probe-side faces have no masked image.

    Returns
    -------
    dict, the new ``protocol.json`` content.
    """
    from .folder import INFO_NAME, _manifest_entry, info_bytes

    if parent.kind != KIND:
        raise ProtocolError(f"protocol {parent.name!r} is a {parent.kind} protocol, not {KIND}")
    masked = role_manifests(probe, None)["probe"]
    loose = parent.manifest("reference")
    if masked.fingerprint() == loose.fingerprint():
        raise ProtocolError("the probe manifest given is the loose-crop manifest itself; give its masked copy")
    tables = parent.ijb
    probe_templates = tables.side_templates("probe")
    faces = tables.faces.loc[np.isin(tables.faces["template_id"].to_numpy(np.int64), probe_templates), "image_id"]
    found = int(masked_copies(faces, masked).notna().sum())
    if found < MIN_FOUND * len(faces) and not allow_missing:
        raise InsufficientDataError(
            f"only {found:,} of the {len(faces):,} probe-side faces of {parent.name!r} have a masked image in "
            f"{masked.path} (by source_id); is it the synth output of {parent.folder / MANIFEST_FILE}? Pass "
            "--allow-missing to score the others as failures to acquire")
    folder = Path(out)
    _check_folder(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    for f in (*DATA_FILES, MANIFEST_FILE):
        with atomic_path(folder / f) as tmp:
            shutil.copyfile(parent.folder / f, tmp)
    info = {k: v for k, v in parent.info.items() if k not in ("manifests", "files", "name")}
    ref_entry = _manifest_entry(parent.manifest("reference"), folder)
    ref_entry["path"] = MANIFEST_FILE
    info.update(name=name or f"{parent.name}-masked-probe",
                manifests={"reference": ref_entry, "probe": _manifest_entry(masked, folder)},
                files={f: {"sha256": _file_sha256(folder / f)} for f in DATA_FILES},
                derived_from={"name": parent.name, "sha256": parent.sha256, "folder": str(parent.folder)},
                variants={"reference": "unmasked", "probe": "masked"})
    info["counts"] = {**parent.info["counts"], "probe_faces": int(len(faces)), "probe_faces_masked": found}
    atomic_write_bytes(folder / INFO_NAME, info_bytes(info))
    return info
