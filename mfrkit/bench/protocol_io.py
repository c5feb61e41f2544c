"""The bench's side of the protocol contract: protocols come from :mod:`mfrkit.protocols`.

``--protocol`` is resolved by the protocol engine (:func:`mfrkit.protocols.resolve_protocol`):
a protocol folder, or a spec name such as ``mr-mp`` drawn from the ``--manifest``\\s. The
bench uses only what every protocol has: ``name``, ``kind`` (``verification``,
``all-pairs`` or ``identification``), ``info``, ``manifests`` by role (``reference``,
``probe``), the ``pairs``, ``reference_images`` / ``probe_images`` or ``gallery`` /
``probes`` tables, ``folder`` and ``sha256`` (None for a protocol made in memory from a
spec name).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Mapping

from ..protocols import ProtocolError
from ..protocols import resolve_protocol as _engine_resolve

ROLES = ("reference", "probe")

__all__ = ["ProtocolError", "parse_manifest_options", "resolve_protocol", "protocol_sha256"]


def parse_manifest_options(values: list[str] | None) -> dict[str, str]:
    """``--manifest`` values: ``PATH`` (both roles) or ``reference=PATH`` / ``probe=PATH``,
    applied in order. A PATH may also be a registered dataset name or a dataset folder.

    ``WORD=...`` with a word that is no role (``foo=bar``, ``refrence=x``) raises
    :class:`ProtocolError` naming the roles, unless the whole value is an existing path
    (a file or folder whose name holds ``=``).
    """
    out: dict[str, str] = {}
    for v in values or []:
        v = str(v)
        role, sep, path = v.partition("=")
        if sep and role in ROLES:
            if not path:
                raise ProtocolError(f"--manifest {v}: give the manifest after '=' ({role}=PATH)")
            out[role] = path
        elif sep and role and not any(c in role for c in "/\\") and not os.path.exists(v):
            raise ProtocolError(f"--manifest {v}: unknown role {role!r}; use reference=PATH or probe=PATH, or PATH "
                                "alone for both roles")
        else:
            out["reference"] = out["probe"] = v
    return out


def resolve_protocol(value: str | os.PathLike, manifests: Mapping[str, str] | None = None):
    """A protocol folder, or a spec name drawn from ``manifests`` (role -> manifest)."""
    manifests = dict(manifests or {})
    return _engine_resolve(value, manifests.get("reference"), manifests.get("probe"))


def protocol_sha256(protocol) -> str:
    """The protocol's sha256; for one made in memory (not saved), a hash of its name,
    kind, spec, seed and tables."""
    if getattr(protocol, "sha256", None):
        return protocol.sha256
    info = {k: protocol.info.get(k) for k in ("name", "kind", "spec", "spec_params", "seed")}
    h = hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode())
    for df in (protocol.pairs, protocol.gallery, protocol.probes, getattr(protocol, "reference_images", None),
               getattr(protocol, "probe_images", None)):
        if df is not None:
            h.update(df.to_csv(index=False).encode())
    return h.hexdigest()
