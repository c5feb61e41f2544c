"""The landmark store: landmarks of a dataset in shards, read lazily per chunk.

One store per dataset and backend, a folder beside the manifest
(``landmarks.<backend>/``)::

    store.json            format, version, backend, the backend options key
    index.parquet         image_id -> shard, row (+ sha256, status); sorted by image_id
    shard-000000.parquet  landmark rows, as detection wrote them (one chunk each)
    shard-000001.parquet  ...

**Shards** hold one row per image: ``image_id``, ``sha256`` (of the image the landmarks
came from), ``status`` (``ok``, ``no_face`` or the image's failure reason), ``n_faces``,
``score`` (float32), then fixed-size float32 arrays ``bbox`` (4), ``points5`` (10, ArcFace
order) and ``points68`` (136, iBUG order), all NaN where absent (no face; no 68 points
from a 5-point landmark file), in pixels of the original image and stored exactly. The
dense mesh is stored apart from the points: ``mesh_origin`` (3 float32) and ``mesh_q``
(2868 bytes: 478 x 3 coordinates in 1/32 px fixed point, see
:mod:`mfrkit.landmarks.mesh_codec`; within 1/64 px of the detected mesh), or ``mesh_f32``
(1434 float32) for a face too large for the fixed point; both null without a mesh.
Columns are stored apart in Parquet, so a reader of the points never reads a mesh byte.
Shards are written in row groups of :data:`ROW_GROUP` rows, the unit a reader reads.

**The index** is sorted by ``image_id`` in row groups of :data:`INDEX_GROUP` ids, and its
metadata lists each row group's first id, so finding a few ids reads one or two index
row groups; the reader never holds the whole index or the whole store.

**Writing** is atomic per shard (temporary name, then rename), so an interrupted
detection keeps every shard it finished. Shards the index does not list yet are
*pending*; :meth:`LandmarkStore.commit` folds them into the index (a later shard wins
for an image found in two), writes the index atomically and deletes shards no image
uses any more. Readers see the committed index only. One process writes a store at a
time.
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..atomic import atomic_path, atomic_write_text
from ..data.image_record import STATUS_OK
from ..errors import LandmarkError, MfrkitError
from ..userfiles import read_user_bytes
from .base import FaceResult, Landmarks
from .mesh_codec import decode_meshes, encode_meshes, encoded_width

FORMAT = "mfrkit-landmarks"
VERSION = 1
STORE_FILE = "store.json"
INDEX_FILE = "index.parquet"
#: Rows per Parquet row group in a shard: what one read brings in.
ROW_GROUP = 256
#: Ids per row group of the index.
INDEX_GROUP = 16384
#: Vertices of a stored mesh (mediapipe's refined face mesh).
MESH_POINTS = 478
#: Parquet metadata key under which a shard records the backend options it was made with.
OPTIONS_META = b"mfrkit_backend_options"
_FIRST_IDS_META = b"mfrkit_first_ids"
_SHARD = re.compile(r"^shard-(\d+)\.parquet$")

_MESH_BYTES = encoded_width(MESH_POINTS)

# Fixed-size lists are never null: pyarrow 20 writes null fixed-size lists to Parquet but
# cannot read them back (apache/arrow#35692). Absent points are NaN instead.
SHARD_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        ("sha256", pa.string()),
        ("status", pa.string()),
        ("n_faces", pa.int32()),
        ("score", pa.float32()),
        pa.field("bbox", pa.list_(pa.float32(), 4), nullable=False),
        pa.field("points5", pa.list_(pa.float32(), 10), nullable=False),
        pa.field("points68", pa.list_(pa.float32(), 136), nullable=False),
        pa.field("mesh_origin", pa.list_(pa.float32(), 3), nullable=False),
        ("mesh_q", pa.binary(_MESH_BYTES)),
        ("mesh_f32", pa.list_(pa.float32())),
    ]
)
INDEX_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        ("sha256", pa.string()),
        ("status", pa.string()),
        ("shard", pa.int32()),
        ("row", pa.int32()),
    ]
)
#: Columns a reader of the points reads; a reader of the mesh adds :data:`MESH_COLUMNS`.
POINT_COLUMNS = ("image_id", "status", "n_faces", "score", "bbox", "points5", "points68")
MESH_COLUMNS = ("mesh_origin", "mesh_q", "mesh_f32")


# --- rows <-> Arrow ------------------------------------------------------------------------------


def _fixed_list(values: np.ndarray, valid: np.ndarray, width: int) -> pa.Array:
    """A non-null fixed-size list column, NaN in the rows that are not ``valid``."""
    filled = np.where(valid[:, None], np.asarray(values, np.float32).reshape(len(valid), width), np.float32(np.nan))
    return pa.FixedSizeListArray.from_arrays(pa.array(filled.reshape(-1)), width)


def encode_results(image_ids: Sequence[str], sha256s: Sequence[str | None], results: Sequence[FaceResult]) -> pa.Table:
    """Landmark rows of some images as a shard table (:data:`SHARD_SCHEMA`).

    Parameters
    ----------
    image_ids, sha256s : sequences of n str (sha256 may be None)
    results : sequence of n FaceResult
        A mesh, where present, must have shape (478, 3).
    """
    n = len(results)
    if not len(image_ids) == len(sha256s) == n:
        raise ValueError("image_ids, sha256s and results must have the same length")
    bbox = np.zeros((n, 4), np.float32)
    p5 = np.zeros((n, 10), np.float32)
    p68 = np.zeros((n, 136), np.float32)
    has_lm = np.zeros(n, bool)
    has_68 = np.zeros(n, bool)
    has_mesh = np.zeros(n, bool)
    meshes: dict[int, np.ndarray] = {}  # only the rows that have one: points-only rows cost no mesh buffer
    score = np.full(n, np.nan, np.float32)
    for i, r in enumerate(results):
        lm = r.landmarks
        if lm is None:
            continue
        has_lm[i] = True
        bbox[i] = np.asarray(lm.bbox, np.float32).reshape(4)
        p5[i] = np.asarray(lm.points5, np.float32).reshape(10)
        score[i] = lm.score
        if lm.points68 is not None:
            has_68[i] = True
            p68[i] = np.asarray(lm.points68, np.float32).reshape(136)
        if lm.mesh is not None:
            mesh = np.asarray(lm.mesh, np.float32)
            if mesh.shape != (MESH_POINTS, 3):
                raise LandmarkError(f"the landmark store holds meshes of shape ({MESH_POINTS}, 3); {image_ids[i]} has {mesh.shape}")
            has_mesh[i] = True
            meshes[i] = mesh
    origin = np.zeros((n, 3), np.float32)
    planes = np.zeros((n, _MESH_BYTES), np.uint8)
    fits = np.zeros(n, bool)
    if meshes:
        rows = np.fromiter(meshes, np.int64, len(meshes))
        origin[rows], planes[rows], fits[rows] = encode_meshes(np.stack([meshes[i] for i in rows]))
    quantised = has_mesh & fits
    raw = has_mesh & ~fits
    q_valid = pa.array(quantised).buffers()[1] if n else None
    mesh_q = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(_MESH_BYTES), n, [q_valid, pa.py_buffer(np.ascontiguousarray(planes).tobytes())], null_count=int(n - quantised.sum())
    )
    columns = [
        pa.array([str(i) for i in image_ids], pa.string()),
        pa.array([None if s is None else str(s) for s in sha256s], pa.string()),
        pa.array([str(r.status) for r in results], pa.string()),
        pa.array([int(r.n_faces or 0) for r in results], pa.int32()),
        pa.array(score, pa.float32(), mask=~has_lm),
        _fixed_list(bbox, has_lm, 4),
        _fixed_list(p5, has_lm, 10),
        _fixed_list(p68, has_68, 136),
        _fixed_list(origin, quantised, 3),
        mesh_q,
        pa.array([meshes[i].reshape(-1) if raw[i] else None for i in range(n)], pa.list_(pa.float32())),
    ]
    return pa.Table.from_arrays(columns, schema=SHARD_SCHEMA)


def _fixed_values(column: pa.ChunkedArray | pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(values of shape (n, width) float32, present of shape (n,)) of a fixed-size list
    column; a row is absent when all its values are NaN."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    values = np.asarray(arr.values.slice(arr.offset * width, n * width).to_numpy(zero_copy_only=False), np.float32).reshape(n, width)
    return values, ~np.isnan(values).all(axis=1) if width else np.zeros(n, bool)


def _list_values(column: pa.ChunkedArray | pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(values of shape (n, width) float32, valid of shape (n,)) of a list column whose
    valid rows hold ``width`` values."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), bool)
    out = np.zeros((len(arr), width), np.float32)
    if valid.any():
        out[valid] = np.asarray(arr.filter(pa.array(valid)).flatten().to_numpy(zero_copy_only=False), np.float32).reshape(-1, width)
    return out, valid


def _fixed_binary(column: pa.ChunkedArray | pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(bytes of shape (n, width) uint8, valid of shape (n,)) of a fixed-size binary column."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), bool)
    data = arr.buffers()[1]
    if data is None or n == 0:
        return np.zeros((n, width), np.uint8), valid
    flat = np.frombuffer(data, np.uint8, count=n * width, offset=arr.offset * width)
    return flat.reshape(n, width), valid


class _Block:
    """One read of a shard (a row group's rows), decoded into arrays."""

    def __init__(self, table: pa.Table, backend: str) -> None:
        self.backend = backend
        n = table.num_rows
        self.ids = table["image_id"].to_pylist()
        self.status = table["status"].to_pylist()
        self.n_faces = np.asarray(table["n_faces"].fill_null(0).to_numpy(), np.int64)
        self.score = np.asarray(table["score"].to_numpy(zero_copy_only=False), np.float64)
        self.bbox, _ = _fixed_values(table["bbox"], 4)
        self.p5, self.has_lm = _fixed_values(table["points5"], 10)
        self.p68, self.has_68 = _fixed_values(table["points68"], 136)
        self.mesh = None
        if "mesh_q" in table.column_names:
            origin, _ = _fixed_values(table["mesh_origin"], 3)
            planes, quantised = _fixed_binary(table["mesh_q"], _MESH_BYTES)
            raw, self.has_raw = _list_values(table["mesh_f32"], 3 * MESH_POINTS)
            self.mesh = np.zeros((n, MESH_POINTS, 3), np.float32)
            if quantised.any():
                self.mesh[quantised] = decode_meshes(origin[quantised], planes[quantised])
            self.mesh[self.has_raw] = raw[self.has_raw].reshape(-1, MESH_POINTS, 3)
            self.has_mesh = quantised | self.has_raw

    def result(self, i: int) -> FaceResult:
        """The FaceResult of row ``i`` (arrays are copies: they do not pin the block)."""
        status = str(self.status[i])
        if status != STATUS_OK or not self.has_lm[i]:
            return FaceResult(status=status, n_faces=int(self.n_faces[i]))
        lm = Landmarks(
            points5=self.p5[i].reshape(5, 2).copy(),
            points68=self.p68[i].reshape(68, 2).copy() if self.has_68[i] else None,
            bbox=self.bbox[i].copy(),
            score=float(self.score[i]),
            backend=self.backend,
            mesh=self.mesh[i].copy() if self.mesh is not None and self.has_mesh[i] else None,
        )
        return FaceResult(status=status, landmarks=lm, n_faces=int(self.n_faces[i]))


# --- files ----------------------------------------------------------------------------------------


def read_row_groups(path: Path, groups: Sequence[int], columns: Sequence[str]) -> pa.Table:
    """Read some row groups of a Parquet file: every read of shard data goes through here
    (tests count the rows it returns)."""
    return pq.ParquetFile(path).read_row_groups(list(groups), columns=list(columns))


def shard_name(number: int) -> str:
    """File name of shard ``number``."""
    return f"shard-{number:06d}.parquet"


def write_shard(folder: str | Path, number: int, table: pa.Table, options_key: str) -> Path:
    """Write ``table`` (:data:`SHARD_SCHEMA`) as shard ``number`` of the store in
    ``folder``, atomically; it stays pending until the store's next commit.

    A pure file operation, safe in a worker process.
    """
    path = Path(folder) / shard_name(number)
    table = table.replace_schema_metadata({OPTIONS_META: options_key.encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP, compression="zstd")
    return path


def shard_options(path: Path) -> str | None:
    """The options key a shard was written with (None when unreadable)."""
    try:
        raw = (pq.read_schema(path).metadata or {}).get(OPTIONS_META)
    except (OSError, pa.ArrowException):
        return None
    return raw.decode() if raw is not None else None


class _Index:
    """The committed index, read one row group at a time."""

    def __init__(self, path: Path, cache_groups: int = 4) -> None:
        self.path = path
        file = pq.ParquetFile(path)
        meta = file.schema_arrow.metadata or {}
        self.first_ids: list[str] = json.loads(meta.get(_FIRST_IDS_META, b"[]"))
        self.num_rows = file.metadata.num_rows
        self.num_groups = file.metadata.num_row_groups
        self._file = file
        self._groups: OrderedDict = OrderedDict()
        self._cache_groups = cache_groups

    def group(self, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(sorted ids as an object array, shard, row, sha256, status) of index row group ``g``."""
        hit = self._groups.get(g)
        if hit is not None:
            self._groups.move_to_end(g)
            return hit
        t = self._file.read_row_group(g, columns=["image_id", "sha256", "status", "shard", "row"])
        hit = (
            np.asarray(t["image_id"].to_pylist(), dtype=object),
            t["shard"].to_numpy().astype(np.int64),
            t["row"].to_numpy().astype(np.int64),
            np.asarray(t["sha256"].to_pylist(), dtype=object),
            np.asarray(t["status"].to_pylist(), dtype=object),
        )
        self._groups[g] = hit
        while len(self._groups) > self._cache_groups:
            self._groups.popitem(last=False)
        return hit

    def locate(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(shard, row) of each id; shard -1 where the index has no such id."""
        found = self.find(ids)
        return found[0], found[1]

    def find(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(shard, row, sha256, status) of each id; shard -1 (and None) where the index
        has no such id."""
        shard = np.full(len(ids), -1, np.int64)
        row = np.zeros(len(ids), np.int64)
        sha = np.full(len(ids), None, dtype=object)
        status = np.full(len(ids), None, dtype=object)
        by_group: dict[int, list[int]] = {}
        for k, image_id in enumerate(ids):
            g = bisect.bisect_right(self.first_ids, image_id) - 1
            if g >= 0:
                by_group.setdefault(g, []).append(k)
        for g, ks in sorted(by_group.items()):
            gids, gshard, grow, gsha, gstatus = self.group(g)
            wanted = np.asarray([ids[k] for k in ks], dtype=object)
            pos = np.searchsorted(gids, wanted)
            pos_c = np.minimum(pos, len(gids) - 1)
            hit = (pos < len(gids)) & (gids[pos_c] == wanted)
            ks_arr = np.asarray(ks)[hit]
            at = pos_c[hit]
            shard[ks_arr], row[ks_arr], sha[ks_arr], status[ks_arr] = gshard[at], grow[at], gsha[at], gstatus[at]
        return shard, row, sha, status

    def iter_ids(self) -> Iterator[list[str]]:
        for g in range(self.num_groups):
            yield self._file.read_row_group(g, columns=["image_id"])["image_id"].to_pylist()


# --- the store ------------------------------------------------------------------------------------


class LandmarkStore:
    """The landmarks of one dataset by one backend (see the module docstring).

    Parameters
    ----------
    folder : path
        The store's folder (``landmarks.<backend>`` beside the manifest).
    backend : str
        The backend's name, recorded in every :class:`Landmarks` read back.
    cache_blocks : int
        Decoded row groups kept for repeated reads (each at most :data:`ROW_GROUP` rows).

    A store pickles as its folder and backend: a worker process reopens it and reads
    only what its own chunk needs.
    """

    def __init__(self, folder: str | Path, backend: str, *, cache_blocks: int = 8) -> None:
        self.folder = Path(folder)
        self.backend = backend
        self._cache_blocks = cache_blocks
        self._reset_caches()

    def __getstate__(self) -> dict:
        return {"folder": str(self.folder), "backend": self.backend, "cache_blocks": self._cache_blocks}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["folder"], state["backend"], cache_blocks=state["cache_blocks"])

    def __repr__(self) -> str:
        return f"LandmarkStore({str(self.folder)!r}, {self.backend!r})"

    def _reset_caches(self) -> None:
        self._index: _Index | None = None
        self._index_checked = False
        self._blocks: OrderedDict = OrderedDict()
        self._group_starts: OrderedDict = OrderedDict()

    # --- state ----------------------------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        return self.folder / INDEX_FILE

    def exists(self) -> bool:
        """True once the store was created (it may still hold no rows)."""
        return (self.folder / STORE_FILE).is_file()

    def options_key(self) -> str | None:
        """The backend options key the store was made with; None before it exists."""
        try:
            info = json.loads(read_user_bytes(self.folder / STORE_FILE, "json"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, MfrkitError) as exc:
            raise LandmarkError(f"{self.folder / STORE_FILE} is unreadable ({exc}); delete {self.folder} to detect again") from None
        if info.get("format") != FORMAT or int(info.get("version", 0)) > VERSION:
            raise LandmarkError(f"{self.folder} is not a landmark store this mfrkit version reads (format {info.get('format')!r}, version {info.get('version')})")
        return str(info["options"])

    def create(self, options_key: str) -> None:
        """Make the folder and record the options (an existing store is kept as it is)."""
        if self.exists():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        info = {"format": FORMAT, "version": VERSION, "backend": self.backend, "options": options_key}
        atomic_write_text(self.folder / STORE_FILE, json.dumps(info, indent=1) + "\n")

    def reset(self, options_key: str) -> None:
        """Forget every row (the backend options changed) and start over with ``options_key``."""
        info = {"format": FORMAT, "version": VERSION, "backend": self.backend, "options": options_key}
        self.folder.mkdir(parents=True, exist_ok=True)
        # The new options first: shards left behind by a crash below carry the old ones
        # and are discarded by the next commit.
        atomic_write_text(self.folder / STORE_FILE, json.dumps(info, indent=1) + "\n")
        self.index_path.unlink(missing_ok=True)
        for number in self.shard_numbers():
            (self.folder / shard_name(number)).unlink(missing_ok=True)
        self._reset_caches()

    def shard_numbers(self) -> list[int]:
        """Numbers of the shard files in the folder, sorted."""
        if not self.folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := _SHARD.match(p.name)))

    def next_shard(self) -> int:
        """The number the next shard written gets."""
        numbers = self.shard_numbers()
        return numbers[-1] + 1 if numbers else 0

    def _committed_shards(self) -> set[int]:
        if not self.index_path.exists():
            return set()
        shards = pq.read_table(self.index_path, columns=["shard"])["shard"]
        return set(pc.unique(shards).to_pylist())

    def pending(self) -> list[int]:
        """Shards written but not committed yet (an interrupted detection's work)."""
        committed = self._committed_shards()
        return [n for n in self.shard_numbers() if n not in committed]

    def commit(self, *, options_key: str | None = None) -> bool:
        """Fold pending shards into the index; False when there was nothing to fold.

        Pending shards made with other backend options than the store's (or
        ``options_key``, for a store being built) are deleted. For an image in several
        shards the highest-numbered (latest) row wins. Shards no image uses any more
        are deleted after the index is written. The old index and the new shards' rows
        are merged in bounded memory (:class:`~mfrkit.external_sort.ExternalSort`), and
        the index written a row group at a time.
        """
        from ..external_sort import ExternalSort
        from ..parquet_out import ParquetOut

        key = options_key if options_key is not None else self.options_key()
        fresh = []
        for number in self.pending():
            path = self.folder / shard_name(number)
            if key is None or shard_options(path) != key:
                path.unlink(missing_ok=True)
                continue
            fresh.append(number)
        if not fresh:
            return False
        with ExternalSort(INDEX_SCHEMA, [("image_id", "ascending"), ("shard", "descending"), ("row", "descending")]) as rows:
            if self.index_path.exists():
                old = pq.ParquetFile(self.index_path)
                for g in range(old.num_row_groups):
                    rows.add(old.read_row_group(g).replace_schema_metadata(None))
            for number in fresh:
                t = pq.read_table(self.folder / shard_name(number), columns=["image_id", "sha256", "status"])
                t = t.append_column("shard", pa.array(np.full(t.num_rows, number, np.int32)))
                rows.add(t.append_column("row", pa.array(np.arange(t.num_rows, dtype=np.int32))))
            live = self._write_index(rows.sorted(INDEX_GROUP), ParquetOut(self.index_path, INDEX_SCHEMA, row_group_size=INDEX_GROUP, compression="zstd"))
        for number in self.shard_numbers():
            if number not in live:
                (self.folder / shard_name(number)).unlink(missing_ok=True)
        self._reset_caches()
        return True

    @staticmethod
    def _write_index(tables: Iterator[pa.Table], out) -> set[int]:
        """Write the index from rows sorted by id (latest first): the first row of each
        id, in row groups of exactly :data:`INDEX_GROUP` ids (the last one fewer), each
        group's first id in the metadata. Returns the shards the index uses."""
        firsts: list[str] = []
        live: set[int] = set()
        held: list[pa.Table] = []
        n_held = 0
        last = None

        def emit(table: pa.Table) -> None:
            firsts.append(table["image_id"][0].as_py())
            out.write(table)

        try:
            for table in tables:
                ids = table["image_id"]
                first = np.ones(table.num_rows, bool)
                if table.num_rows > 1:
                    first[1:] = np.asarray(pc.not_equal(ids.slice(1), ids.slice(0, table.num_rows - 1)).to_numpy(zero_copy_only=False), bool)
                if last is not None and ids[0].as_py() == last:
                    first[0] = False
                last = ids[table.num_rows - 1].as_py()
                kept = table.filter(pa.array(first))
                live.update(pc.unique(kept["shard"]).to_pylist())
                held.append(kept)
                n_held += kept.num_rows
                while n_held >= INDEX_GROUP:
                    block = pa.concat_tables(held)
                    emit(block.slice(0, INDEX_GROUP))
                    rest = block.slice(INDEX_GROUP)
                    held, n_held = ([rest] if rest.num_rows else []), rest.num_rows
            if n_held:
                emit(pa.concat_tables(held))
        except BaseException:
            out.abort()
            raise
        out.close({_FIRST_IDS_META: json.dumps(firsts).encode()})
        return live

    def delete(self) -> None:
        """Remove the store's folder."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self._reset_caches()

    # --- reading --------------------------------------------------------------------------------

    def _open_index(self) -> _Index | None:
        if not self._index_checked:
            self._index = _Index(self.index_path) if self.index_path.exists() else None
            self._index_checked = True
        return self._index

    def __len__(self) -> int:
        index = self._open_index()
        return 0 if index is None else index.num_rows

    def index_table(self, columns: Sequence[str] = ("image_id", "sha256", "status")) -> pa.Table:
        """The committed index's ``columns`` (one small row per image; no landmarks)."""
        if not self.index_path.exists():
            return INDEX_SCHEMA.empty_table().select(list(columns))
        return pq.read_table(self.index_path, columns=list(columns))

    def ids(self) -> Iterator[str]:
        """Every image id in the store, sorted, one index row group at a time."""
        index = self._open_index()
        if index is not None:
            for group in index.iter_ids():
                yield from group

    def locate(self, image_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(shard, row) of each id, shard -1 where the store has none."""
        index = self._open_index()
        if index is None:
            return np.full(len(image_ids), -1, np.int64), np.zeros(len(image_ids), np.int64)
        return index.locate([str(i) for i in image_ids])

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and bool(self.locate([image_id])[0][0] >= 0)

    def _starts(self, number: int) -> np.ndarray:
        """First row of each row group of shard ``number`` (and the row count last)."""
        hit = self._group_starts.get(number)
        if hit is None:
            meta = pq.read_metadata(self.folder / shard_name(number))
            sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
            hit = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            self._group_starts[number] = hit
            while len(self._group_starts) > 1024:
                self._group_starts.popitem(last=False)
        return hit

    def _block(self, number: int, group: int, mesh: bool) -> _Block:
        key = (number, group, mesh)
        hit = self._blocks.get(key)
        if hit is not None:
            self._blocks.move_to_end(key)
            return hit
        columns = POINT_COLUMNS + (MESH_COLUMNS if mesh else ())
        hit = _Block(read_row_groups(self.folder / shard_name(number), [group], columns), self.backend)
        self._blocks[key] = hit
        while len(self._blocks) > self._cache_blocks:
            self._blocks.popitem(last=False)
        return hit

    def get(self, image_ids: Iterable[str], *, mesh: bool = True) -> dict[str, FaceResult]:
        """Landmarks of ``image_ids`` only, reading just the row groups that hold them.

        Parameters
        ----------
        image_ids : iterable of str
        mesh : bool
            Read and return the dense mesh too (False: points only, no mesh column is read).

        Returns
        -------
        dict image_id -> FaceResult, in the order asked, for the ids the store holds
        (an id it does not hold is left out).
        """
        ids = list(dict.fromkeys(str(i) for i in image_ids))
        try:
            return self._get(ids, mesh)
        except FileNotFoundError:
            # Another process committed meanwhile (shards were replaced): reopen once.
            self._reset_caches()
            return self._get(ids, mesh)

    def _get(self, ids: list[str], mesh: bool) -> dict[str, FaceResult]:
        shard, row = self.locate(ids)
        found: dict[str, FaceResult] = {}
        wanted: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for k in np.flatnonzero(shard >= 0):
            number, r = int(shard[k]), int(row[k])
            starts = self._starts(number)
            group = int(np.searchsorted(starts, r, side="right") - 1)
            wanted.setdefault((number, group), []).append((int(k), r - int(starts[group])))
        results: dict[int, FaceResult] = {}
        for (number, group), rows in sorted(wanted.items()):
            block = self._block(number, group, mesh)
            for k, local in rows:
                if block.ids[local] != ids[k]:
                    raise LandmarkError(f"the landmark index of {self.folder} is out of date (row of {ids[k]!r}); delete {self.index_path} to rebuild it")
                results[k] = block.result(local)
        for k in sorted(results):
            found[ids[k]] = results[k]
        return found

    def iter_chunks(self, image_ids: Iterable[str] | None = None, *, mesh: bool = True, size: int = 1024) -> Iterator[dict[str, FaceResult]]:
        """The landmarks of ``image_ids`` (default: every image in the store), ``size``
        images at a time, each chunk a :meth:`get` (at most ``size`` results held)."""
        if size < 1:
            raise ValueError("size must be >= 1")
        source = self.ids() if image_ids is None else iter(image_ids)
        batch: list[str] = []
        for image_id in source:
            batch.append(image_id)
            if len(batch) == size:
                yield self.get(batch, mesh=mesh)
                batch = []
        if batch:
            yield self.get(batch, mesh=mesh)

    def lookup(self, image_ids: Sequence[str]) -> tuple[list, list]:
        """(sha256, status) the committed index holds for each id (None where it holds
        none), reading only the index row groups those ids fall in."""
        index = self._open_index()
        if index is None:
            return [None] * len(image_ids), [None] * len(image_ids)
        _, _, sha, status = index.find([str(i) for i in image_ids])
        return sha.tolist(), status.tolist()

    def counts(self, image_ids: Iterable[str] | None = None, *, batch: int = 8192) -> dict[str, int]:
        """Images per status, of ``image_ids`` (default: all; each id counted once per
        batch of ``batch``: give distinct ids), from the index alone, a batch at a time."""
        if not self.index_path.exists():
            return {}
        counts: dict[str, int] = {}

        def add(statuses) -> None:
            for st in statuses:
                if st is not None:
                    counts[str(st)] = counts.get(str(st), 0) + 1

        if image_ids is None:
            file = pq.ParquetFile(self.index_path)
            for g in range(file.num_row_groups):
                add(file.read_row_group(g, columns=["status"])["status"].to_pylist())
        else:
            it = iter(image_ids)
            while chunk := list(dict.fromkeys(str(i) for i in itertools.islice(it, batch))):
                add(self.lookup(chunk)[1])
        return dict(sorted(counts.items()))
