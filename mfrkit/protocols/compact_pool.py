"""The pool of :mod:`.pool` held in arrays: what a 1:1 protocol of a large dataset draws from.

:func:`~.pool.build_pool` keeps Python dicts of strings (unit -> identity, unit -> image
ids, image id -> mask type, the source chains of every row of both manifests): about
2.6 KB of driver memory per image. :func:`build_compact_pool` reads only the columns
the pool needs from the manifest files (Arrow column projection) and keeps

- the unit names, sorted (an Arrow string array; unit ``u`` is the ``u``-th name, so
  integer order is name order and the samplers' draws are those of the dict pool),
- the identity of each unit as an int code into the sorted identity names,
- per role, the candidate image ids grouped by unit (CSR: offsets per unit, ids in an
  Arrow string array sorted by (unit, image_id)).

It answers what the 1:1 samplers and :func:`~.verification.realise_pairs` ask of a
:class:`~.pool.Pool` (``has``, ``candidates[role].get``, ``by_identity``, ``units``,
``unit_name``), with units and identities as int codes, so the pairs come out the same,
byte for byte. It covers specs without partial selectors and without the ``mlfw`` mask
pairing (those keep :func:`~.pool.build_pool`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..data.manifest import STATUS_OK
from .errors import ProtocolError
from .spec import ROLES, ProtocolSpec, Selector

#: Source-chain steps resolved in Arrow before the few ids left (cycles, long chains)
#: are walked one by one.
_VECTOR_STEPS = 16
_NEEDED = ("image_id", "identity", "variant", "source_id", "mask_type", "status")


def compact_eligible(spec: ProtocolSpec) -> bool:
    """Whether :func:`build_compact_pool` can serve ``spec``."""
    return spec.mask_pairing == "independent" and all(spec.selector(r).variant != "partial" for r in ROLES)


def _columns(manifest) -> pa.Table:
    """The pool's columns of a :class:`~mfrkit.data.manifest_stream.ManifestReader`, as
    Arrow strings (absent columns null), each row group checked as the reader checks it."""
    for _ in manifest.batches(["image_id", "path", "variant"]):  # validity (ids, paths, variants), bounded memory
        pass
    present = [c for c in _NEEDED if c in manifest.columns]
    parts = [t for t in manifest.arrow_batches(present, size=1 << 16)]
    table = pa.concat_tables(parts) if parts else pa.table({c: pa.array([], pa.string()) for c in present})
    del parts
    out = {}
    for c in _NEEDED:
        col = table[c] if c in table.column_names else pa.nulls(table.num_rows, pa.string())
        out[c] = pc.cast(col, pa.string()).combine_chunks() if isinstance(col, pa.ChunkedArray) else pc.cast(col, pa.string())
    ids = out["image_id"]
    if pc.count_distinct(ids).as_py() != len(ids):
        from ..errors import ManifestError

        counts = pc.value_counts(ids)
        dup = counts.field("values").filter(pc.greater(counts.field("counts"), 1))[0].as_py()
        raise ManifestError(f"manifest {manifest.path}: manifest has duplicate image_ids, e.g. {dup!r}")
    return pa.table(out)


def _matches(sel: Selector, t: pa.Table) -> np.ndarray:
    """:meth:`~.spec.Selector.matches` on Arrow columns (no partial filters here)."""
    variant = pc.fill_null(t["variant"], "unmasked")
    keep = pc.fill_null(pc.equal(variant, sel.variant), False).to_numpy(zero_copy_only=False)
    if sel.mask_types is not None:
        inset = pc.is_in(t["mask_type"], value_set=pa.array(list(sel.mask_types), pa.string()))
        keep &= pc.fill_null(inset, False).to_numpy(zero_copy_only=False)
    return keep


def _positions(values: pa.Array, ids: pa.Array) -> np.ndarray:
    """Index of each value in ``ids`` (-1 when absent), shape (len(values),)."""
    return pc.fill_null(pc.index_in(values, value_set=ids), -1).to_numpy(zero_copy_only=False).astype(np.int64)


class _Resolver:
    """:class:`~.pool.RootResolver` over Arrow columns: every id of an array at once."""

    def __init__(self, tables: list[pa.Table]) -> None:
        self.ids = [_plain(t["image_id"]) for t in tables]
        self.parents = [_plain(t["source_id"]) for t in tables]

    def _parent(self, i: int, pos: np.ndarray) -> pa.Array:
        return self.parents[i].take(pa.array(pos))

    def roots(self, ids: pa.Array, home: int) -> pa.Array:
        """The unit of each of ``ids`` (of manifest ``home``), as :meth:`RootResolver.root`."""
        n = len(ids)
        cur = ids
        homes = np.full(n, home, dtype=np.int64)
        done = np.zeros(n, dtype=bool)
        for _ in range(_VECTOR_STEPS):
            active = np.flatnonzero(~done)
            if not len(active):
                return cur
            sub = cur.take(pa.array(active))
            pos = np.stack([_positions(sub, ids_i) for ids_i in self.ids])  # (manifests, active)
            # The manifest each id is looked up in: its home first, then the others in order.
            found = np.full(len(active), -1, dtype=np.int64)
            h = homes[active]
            at_home = pos[h, np.arange(len(active))] >= 0
            found[at_home] = h[at_home]
            for i in range(len(self.ids)):  # not at home: the first other manifest that holds it
                found = np.where((found < 0) & (pos[i] >= 0), i, found)
            parent = pa.nulls(len(active), pa.string())
            for i in range(len(self.ids)):
                sel = np.flatnonzero(found == i)
                if len(sel):
                    parent = pc.replace_with_mask(parent, _mask(len(active), sel),
                                                  self._parent(i, pos[i, sel]))
            stop = pc.fill_null(pc.or_(pc.is_null(parent), pc.equal(parent, sub)), True).to_numpy(zero_copy_only=False)
            stop |= found < 0
            done[active[stop]] = True
            move = ~stop
            if move.any():
                homes[active[move]] = found[move]
                cur = pc.replace_with_mask(cur, _mask(n, active[move]), parent.filter(pa.array(move)))
        rest = np.flatnonzero(~done)  # long chains or cycles: the dict resolver's walk, id by id
        if len(rest):
            walked = [self._walk(ids[int(k)].as_py(), home) for k in rest]
            cur = pc.replace_with_mask(cur, _mask(n, rest), pa.array(walked, pa.string()))
        return cur

    def _find(self, image_id: str, order: list[int]) -> tuple[int | None, str | None]:
        for i in order:
            pos = _positions(pa.array([image_id], pa.string()), self.ids[i])[0]
            if pos >= 0:
                return i, self.parents[i][int(pos)].as_py()
        return None, None

    def _walk(self, image_id: str, home: int) -> str:
        cur, seen = image_id, set()
        while cur not in seen:
            seen.add(cur)
            order = [home] + [i for i in range(len(self.ids)) if i != home]
            i, parent = self._find(cur, order)
            if i is not None:
                home = i
            if parent is None or parent == cur:
                return cur
            cur = parent
        return cur


def _plain(values) -> pa.Array:
    """One Arrow array (a table's column is chunked)."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _mask(n: int, where: np.ndarray) -> pa.Array:
    m = np.zeros(n, dtype=bool)
    m[where] = True
    return pa.array(m)


class _Candidates:
    """One role's candidates: unit code -> sorted image ids (``get`` as on a dict)."""

    def __init__(self, offsets: np.ndarray, ids: pa.Array) -> None:
        self.offsets, self.ids = offsets, ids
        self.count = np.diff(offsets)

    def get(self, unit: int, default=None):
        s, e = int(self.offsets[unit]), int(self.offsets[unit + 1])
        return self.ids.slice(s, e - s).to_pylist() if e > s else default

    def __len__(self) -> int:
        return int(np.count_nonzero(self.count))


class CompactPool:
    """A :class:`~.pool.Pool` in arrays (see the module docstring); units and identities
    are int codes, ``unit_name`` / ``identity_name`` give their names."""

    def __init__(self, spec, manifests, unit_names: pa.Array, identity_names: pa.Array, unit_identity: np.ndarray,
                 candidates: dict[str, _Candidates], skipped: dict[str, int]) -> None:
        self.spec, self.manifests, self.skipped = spec, dict(manifests), skipped
        self.unit_names, self.identity_names, self.unit_identity = unit_names, identity_names, unit_identity
        self.candidates = candidates
        self._has = {role: candidates[role].count > 0 for role in ROLES}
        self._by_identity: dict[int, list[int]] | None = None

    def has(self, role: str, unit: int) -> bool:
        return bool(self._has[role][unit])

    def unit_name(self, unit: int) -> str:
        return self.unit_names[int(unit)].as_py()

    def units(self) -> range:
        return range(len(self.unit_names))

    def by_identity(self) -> dict[int, list[int]]:
        """identity code -> sorted unit codes (identity codes ascending, as names)."""
        if self._by_identity is None:
            order = np.argsort(self.unit_identity, kind="stable")  # units ascending within an identity
            idents, starts = np.unique(self.unit_identity[order], return_index=True)
            bounds = list(starts[1:]) + [len(order)]
            self._by_identity = {int(i): order[s:e].tolist() for i, s, e in zip(idents, starts, bounds)}
        return self._by_identity

    def require_roles(self) -> None:
        from .pool import Pool

        Pool.require_roles(self)  # same message; it reads only candidates, manifests and spec


def build_compact_pool(spec: ProtocolSpec, manifests: dict) -> CompactPool:
    """:func:`~.pool.build_pool` for ``manifests`` (role -> ManifestReader) and a spec
    :func:`compact_eligible` accepts; raises what it raises."""
    distinct: list = []
    for role in sorted(manifests):
        if all(manifests[role] is not d for d in distinct):
            distinct.append(manifests[role])
    tables = [_columns(m) for m in distinct]
    resolver = _Resolver(tables)

    roles: dict[str, tuple] = {}
    not_ok, no_ident = [], []
    for role in ROLES:
        home = next(i for i, d in enumerate(distinct) if d is manifests[role])
        t = tables[home]
        matched = t.filter(pa.array(_matches(spec.selector(role), t)))
        ok = _plain(pc.fill_null(pc.equal(matched["status"], STATUS_OK), False))
        not_ok.append(_plain(matched["image_id"]).filter(_plain(pc.invert(ok))))
        matched = matched.filter(ok)
        ids = matched["image_id"].combine_chunks()
        units = resolver.roots(ids, home)
        ident = matched["identity"].combine_chunks()
        missing = np.flatnonzero(pc.is_null(ident).to_numpy(zero_copy_only=False))
        if len(missing):  # the identity of the unit's own row, first manifest first
            lookup = units.take(pa.array(missing))
            filled = pa.nulls(len(missing), pa.string())
            for d in tables:
                labelled = d.filter(pc.is_valid(d["identity"]))
                pos = _positions(lookup, _plain(labelled["image_id"]))
                take = (pos >= 0) & pc.is_null(filled).to_numpy(zero_copy_only=False)
                if take.any():
                    filled = pc.replace_with_mask(filled, pa.array(take),
                                                  labelled["identity"].combine_chunks().take(pa.array(pos[take])))
            ident = pc.replace_with_mask(ident, _mask(len(ident), missing), filled)
        has = pc.is_valid(ident)
        no_ident.append(ids.filter(pc.invert(has)))
        roles[role] = (ids.filter(has), units.filter(has), ident.filter(has))

    unit_names = pc.unique(pa.concat_arrays([roles[r][1] for r in ROLES]))
    unit_names = unit_names.take(pc.sort_indices(unit_names))  # UTF-8 byte order: Python's str order
    ident_names = pc.unique(pa.concat_arrays([roles[r][2] for r in ROLES]))
    ident_names = ident_names.take(pc.sort_indices(ident_names))
    codes = {r: (_positions(roles[r][1], unit_names), _positions(roles[r][2], ident_names)) for r in ROLES}

    # One identity per unit: the first row (reference rows, then probe rows) sets it.
    all_units = np.concatenate([codes[r][0] for r in ROLES])
    all_idents = np.concatenate([codes[r][1] for r in ROLES])
    _, first = np.unique(all_units, return_index=True)
    unit_identity = np.empty(len(unit_names), dtype=np.int64)
    unit_identity[all_units[first]] = all_idents[first]
    clash = np.flatnonzero(unit_identity[all_units] != all_idents)
    if len(clash):
        k = int(clash[0])
        all_ids = pa.concat_arrays([roles[r][0] for r in ROLES])
        u = int(all_units[k])
        raise ProtocolError(
            f"image {all_ids[k].as_py()!r} is labelled {ident_names[int(all_idents[k])].as_py()!r} but its source "
            f"{unit_names[u].as_py()!r} is labelled {ident_names[int(unit_identity[u])].as_py()!r}; "
            "fix the manifest's identity column before making protocols")
    del all_units, all_idents

    candidates = {}
    for role in ROLES:
        ids, (ucodes, _) = roles[role][0], codes[role]
        rank = np.empty(len(ids), dtype=np.int64)
        rank[pc.sort_indices(ids).to_numpy()] = np.arange(len(ids))
        order = np.lexsort((rank, ucodes))
        offsets = np.zeros(len(unit_names) + 1, dtype=np.int64)
        np.cumsum(np.bincount(ucodes, minlength=len(unit_names)), out=offsets[1:])
        candidates[role] = _Candidates(offsets, ids.take(pa.array(order)))
    skipped = {"status_not_ok": _distinct_count(not_ok), "no_identity": _distinct_count(no_ident)}
    return CompactPool(spec, manifests, unit_names, ident_names, unit_identity, candidates, skipped)


def _distinct_count(arrays: list[pa.Array]) -> int:
    arrays = [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays]
    return int(pc.count_distinct(pa.concat_arrays(arrays)).as_py()) if arrays else 0
