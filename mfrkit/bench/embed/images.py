"""The images a set of protocols uses, across their manifests.

A protocol's ids are ``image_id``\\s of its *reference* manifest (pairs' left side, the
gallery, MegaFace mates) or its *probe* manifest (pairs' right side, the probes). Two
manifests may use the same ``image_id`` for different images (a masked copy of a
dataset keeps the relative paths), so the bench keys images by ``uid`` =
``<manifest short name>:<image_id>``. An empty id in a protocol (an image that could
not be supplied) maps to :data:`MISSING_UID`, an image that is a failure to acquire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ...data.manifest import Manifest, safe_relpath
from ...protocols import ProtocolError

#: uid of "no image" (an empty id in a protocol).
MISSING_UID = "-"
#: FtA reason of an image a protocol could not supply.
NOT_SUPPLIED = "not_supplied"
#: Manifest columns carried into scores files and breakdowns.
ATTRIBUTES = ("identity", "variant", "mask_type", "coverage", "region")


def manifest_key(m: Manifest) -> str:
    """Identity of a manifest: where it is and which images it holds."""
    where = str(Path(m.path).resolve()) if m.path is not None else f"memory:{id(m)}"
    return f"{where}|{m.fingerprint()}"


@dataclass
class ImageTable:
    """Every image of some manifests, indexed by uid.

    Attributes
    ----------
    table : DataFrame indexed by uid: ``uid``, ``image_id``, ``manifest`` (key), ``path``
        (absolute), ``sha256``, ``status`` and :data:`ATTRIBUTES`.
    manifests : dict key -> Manifest
    """

    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    manifests: dict = field(default_factory=dict)
    _short: dict = field(default_factory=dict)

    def add(self, m: Manifest) -> str:
        """Add a manifest (once); returns its key."""
        key = manifest_key(m)
        if key in self.manifests:
            return key
        short = f"m{len(self.manifests)}"
        self.manifests[key], self._short[key] = m, short
        t = m.table
        root = m.root.resolve()
        df = pd.DataFrame({"image_id": t["image_id"].astype(str)})
        df["uid"] = short + ":" + df["image_id"]
        df["manifest"] = key
        df["path"] = [str(root / safe_relpath(p)) for p in t["path"]]
        df["sha256"] = t["sha256"].astype(object).where(t["sha256"].notna(), None)
        df["status"] = t["status"].astype(str)
        for c in ATTRIBUTES:
            df[c] = t[c].astype(object).where(t[c].notna(), None) if c in t else None
        if self.table.empty:
            missing = {"uid": MISSING_UID, "image_id": "", "manifest": "", "path": "", "sha256": None, "status": NOT_SUPPLIED}
            df = pd.concat([pd.DataFrame([{**missing, **{c: None for c in ATTRIBUTES}}]), df], ignore_index=True)
            self.table = df.set_index("uid", drop=False)
        else:
            self.table = pd.concat([self.table, df.set_index("uid", drop=False)])
        return key

    def uids(self, m: Manifest, ids: Sequence[str], *, what: str, why: str | None = None) -> list[str]:
        """uids of ``ids`` in manifest ``m`` (added first if new); empty ids -> MISSING_UID.

        Raises ProtocolError naming an id the manifest does not hold and ``why`` (what
        the caller knows of the protocol's origin; a generic list of causes otherwise).
        """
        key = self.add(m)
        short = self._short[key]
        out = [MISSING_UID if (i is None or str(i).strip() == "") else f"{short}:{i}" for i in ids]
        known = self.table.index
        bad = [i for i, u in zip(ids, out) if u != MISSING_UID and u not in known]
        if bad:
            raise ProtocolError(
                f"{what} uses {len(set(bad))} image id(s) that its manifest {m.path} does not hold, "
                f"e.g. {bad[0]!r}: " + (why or "the protocol was made from another manifest, or the manifest was "
                                                   "rescanned since and no longer holds it")
            )
        return out


@dataclass
class Sides:
    """uids a protocol uses, by side: ``reference`` (left, gallery, mates), ``probe`` (right, probes)."""

    left: list = field(default_factory=list)
    right: list = field(default_factory=list)
    gallery: list = field(default_factory=list)
    probes: list = field(default_factory=list)
    mates: list = field(default_factory=list)

    def reference(self) -> list:
        return self.left + self.gallery + [u for u in self.mates if u != MISSING_UID]

    def probe(self) -> list:
        return self.right + self.probes
