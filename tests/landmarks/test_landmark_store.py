"""The landmark store: mesh fixed point, rows round trip, lazy reads, commits, 0.1.0 caches."""

import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mfrkit.landmarks import FaceResult, Landmarks
from mfrkit.landmarks import store as store_mod
from mfrkit.landmarks.mesh_codec import MAX_EXTENT, MAX_MESH_ERROR, MESH_STEP, decode_meshes, encode_meshes
from mfrkit.landmarks.store import LandmarkStore, encode_results, write_shard


def _mesh(rng, origin=(100.0, 80.0, -30.0), extent=150.0):
    return (np.asarray(origin) + rng.uniform(0, extent, (478, 3))).astype(np.float32)


def _face(rng, *, mesh=True, p68=True, score=0.9, **kw):
    m = _mesh(rng, **kw)
    return FaceResult(
        status="ok",
        n_faces=2,
        landmarks=Landmarks(
            points5=m[:5, :2].copy(),
            points68=m[5:73, :2].copy() if p68 else None,
            bbox=np.concatenate([m[:, :2].min(0), m[:, :2].max(0)]),
            score=score,
            backend="mediapipe",
            mesh=m if mesh else None,
        ),
    )


# --- the mesh's fixed point ------------------------------------------------------------------------


def test_fixed_point_is_the_rounded_32nd_of_a_pixel():
    rng = np.random.default_rng(0)
    meshes = np.stack([_mesh(rng, origin=(o, -o, 0.5 * o), extent=e) for o, e in [(0, 100), (5000, 900), (15000.25, 2000)]])
    origin, planes, fits = encode_meshes(meshes)
    assert fits.all() and planes.shape == (3, 2868) and planes.dtype == np.uint8
    np.testing.assert_array_equal(origin, meshes.min(axis=1))
    # Oracle: the integers by brute force, then the byte planes laid out by hand.
    q = np.rint((meshes.astype(np.float64) - origin[:, None, :]) * 32).astype(np.uint16)
    for i in range(3):
        axis_major = np.concatenate([q[i, :, a] for a in range(3)])
        np.testing.assert_array_equal(planes[i], np.concatenate([axis_major >> 8, axis_major & 255]).astype(np.uint8))
    decoded = decode_meshes(origin, planes)
    np.testing.assert_allclose(decoded, origin[:, None, :] + q / 32.0, rtol=0, atol=2e-3)
    err = np.abs(decoded.astype(np.float64) - meshes)
    assert err.max() <= MAX_MESH_ERROR + 2e-3  # float32 spacing at 15,000 px is 1e-3
    assert err[0].max() <= MAX_MESH_ERROR + 1e-5 and err[0].max() > 0.9 * MAX_MESH_ERROR  # the bound is tight


def test_fixed_point_refuses_what_it_cannot_hold():
    rng = np.random.default_rng(1)
    big = _mesh(rng)
    big[1, 0] = big[:, 0].min() + MAX_EXTENT + 0.1  # one step too far along x
    nan = _mesh(rng)
    nan[3, 1] = np.nan
    edge = _mesh(rng)
    edge[0] = edge.min(0)
    edge[1] = edge.min(0) + MAX_EXTENT  # exactly the largest offset: fits
    _, planes, fits = encode_meshes(np.stack([big, nan, edge]))
    assert fits.tolist() == [False, False, True] and not planes[:2].any()
    assert MESH_STEP == 1 / 32 and MAX_MESH_ERROR == 1 / 64


# --- rows ------------------------------------------------------------------------------------------


def _write(folder, groups, backend="mediapipe", key="{}"):
    """A store with one shard per group of (image_id, FaceResult)."""
    store = LandmarkStore(folder, backend)
    store.create(key)
    for number, rows in enumerate(groups):
        ids = [i for i, _ in rows]
        write_shard(folder, number, encode_results(ids, [f"sha-{i}" for i in ids], [r for _, r in rows]), key)
    store.commit()
    return store


def test_rows_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    big = _face(rng, extent=MAX_EXTENT + 100)  # kept in float32
    assert not encode_meshes(big.landmarks.mesh[None])[2][0]
    rows = [
        ("a", _face(rng)),
        ("b", FaceResult(status="no_face")),
        ("c", _face(rng, mesh=False, p68=False, score=float("nan"))),
        ("d", FaceResult(status="corrupt")),
        ("e", big),
    ]
    store = _write(tmp_path / "s", [rows])
    got = store.get(["e", "a", "b", "c", "d", "zz"])
    assert list(got) == ["e", "a", "b", "c", "d"]  # the order asked; unknown ids left out
    assert got["b"].status == "no_face" and got["b"].landmarks is None and got["d"].status == "corrupt"
    for k in "ace":
        want, have = dict(rows)[k], got[k]
        assert have.status == "ok" and have.n_faces == 2 and have.landmarks.backend == "mediapipe"
        for name in ("points5", "bbox"):
            np.testing.assert_array_equal(getattr(have.landmarks, name), getattr(want.landmarks, name))
            assert getattr(have.landmarks, name).dtype == np.float32
    np.testing.assert_array_equal(got["a"].landmarks.points68, dict(rows)["a"].landmarks.points68)
    assert got["c"].landmarks.points68 is None and got["c"].landmarks.mesh is None and np.isnan(got["c"].landmarks.score)
    assert np.abs(got["a"].landmarks.mesh - dict(rows)["a"].landmarks.mesh).max() <= MAX_MESH_ERROR + 1e-4
    np.testing.assert_array_equal(got["e"].landmarks.mesh, big.landmarks.mesh)  # exact
    assert store.get(["a"], mesh=False)["a"].landmarks.mesh is None
    assert store.counts() == {"corrupt": 1, "no_face": 1, "ok": 3} and store.counts(["a", "b", "x"]) == {"no_face": 1, "ok": 1}
    assert len(store) == 5 and list(store.ids()) == ["a", "b", "c", "d", "e"] and "c" in store and "x" not in store
    # A store pickles as its folder: a worker reopens it.
    assert pickle.loads(pickle.dumps(store)).get(["a"])["a"].landmarks.points5.tolist() == got["a"].landmarks.points5.tolist()


def test_a_mesh_of_another_size_is_refused():
    from mfrkit.errors import LandmarkError

    bad = FaceResult("ok", Landmarks(np.zeros((5, 2)), None, np.zeros(4), mesh=np.zeros((468, 3))), 1)
    with pytest.raises(LandmarkError, match="478"):
        encode_results(["x"], [None], [bad])


# --- lazy reads --------------------------------------------------------------------------------------


@pytest.fixture
def counted(monkeypatch):
    """Every shard read, as (file name, rows, columns)."""
    reads = []
    original = store_mod.read_row_groups

    def counting(path, groups, columns):
        table = original(path, groups, columns)
        reads.append((path.name, table.num_rows, tuple(columns)))
        return table

    monkeypatch.setattr(store_mod, "read_row_groups", counting)
    return reads


def test_the_reader_reads_only_the_row_groups_it_needs(tmp_path, counted, monkeypatch):
    rng = np.random.default_rng(3)
    monkeypatch.setattr(store_mod, "INDEX_GROUP", 16)  # several index row groups
    # 10 shards of 20 rows, then one large shard of 600 rows (row groups of 256).
    groups = [[(f"img{s:02d}_{r:02d}", _face(rng)) for r in range(20)] for s in range(10)]
    groups.append([(f"zbig_{r:03d}", _face(rng) if r % 3 else FaceResult("no_face")) for r in range(600)])
    store = _write(tmp_path / "s", groups)
    total = 800
    assert len(store) == total and pq.ParquetFile(store.index_path).metadata.num_row_groups == total // 16
    index_reads = []
    group = store_mod._Index.group

    def counting_group(self, g):
        if g not in self._groups:
            index_reads.append(g)
        return group(self, g)

    monkeypatch.setattr(store_mod._Index, "group", counting_group)
    got = store.get(["img03_07", "img03_11"])
    assert set(got) == {"img03_07", "img03_11"}
    assert counted == [("shard-000003.parquet", 20, store_mod.POINT_COLUMNS + store_mod.MESH_COLUMNS)]
    assert len(index_reads) == 1  # both ids in one index row group of 16
    counted.clear()
    got = store.get(["zbig_301"], mesh=False)
    assert got["zbig_301"].landmarks.mesh is None
    assert counted == [("shard-000010.parquet", 256, store_mod.POINT_COLUMNS)]  # one row group, no mesh column
    # Iterating reads each row group once and holds one chunk at a time.
    fresh = LandmarkStore(store.folder, "mediapipe")
    counted.clear()
    sizes = [len(chunk) for chunk in fresh.iter_chunks(size=50)]
    assert sum(sizes) == total and max(sizes) == 50
    assert max(rows for _, rows, _ in counted) == 256 and sum(rows for _, rows, _ in counted) == total
    # The lazy mapping of get_landmarks / load_landmarks reads the same way.
    from mfrkit.landmarks.lookup import LandmarkMap

    counted.clear()
    view = LandmarkMap(LandmarkStore(store.folder, "mediapipe"), mesh=False)
    assert view["img07_01"].status == "ok" and view.get("nope") is None and len(view) == total
    assert sum(rows for _, rows, _ in counted) == 20


def test_commit_keeps_the_latest_row_and_drops_dead_shards(tmp_path):
    rng = np.random.default_rng(4)
    old_a, new_a = _face(rng), _face(rng)
    store = _write(tmp_path / "s", [[("a", old_a), ("b", FaceResult("no_face"))], [("c", _face(rng))]])
    assert store.shard_numbers() == [0, 1] and store.pending() == []
    assert store.commit() is False  # nothing pending: the index is not rewritten
    write_shard(store.folder, 2, encode_results(["a"], ["sha-new"], [new_a]), "{}")
    write_shard(store.folder, 3, encode_results(["c"], [None], [FaceResult("no_face")]), "{}")
    assert store.pending() == [2, 3] and store.get(["a"])["a"].landmarks.points5.tolist() == old_a.landmarks.points5.tolist()
    assert store.commit() is True
    np.testing.assert_array_equal(store.get(["a"])["a"].landmarks.points5, new_a.landmarks.points5)
    assert store.get(["c"])["c"].status == "no_face"
    assert store.shard_numbers() == [0, 2, 3]  # shard 1 held only c's old row
    index = store.index_table().to_pylist()
    assert [r["image_id"] for r in index] == ["a", "b", "c"] and index[0]["sha256"] == "sha-new"


def test_reset_forgets_everything(tmp_path):
    store = _write(tmp_path / "s", [[("a", FaceResult("no_face"))]])
    store.reset('{"thorough": true}')
    assert len(store) == 0 and store.get(["a"]) == {} and store.shard_numbers() == [] and store.options_key() == '{"thorough": true}'


def test_an_unknown_store_format_is_refused(tmp_path):
    from mfrkit.errors import LandmarkError

    store = _write(tmp_path / "s", [[("a", FaceResult("no_face"))]])
    (store.folder / "store.json").write_text('{"format": "mfrkit-landmarks", "version": 99, "options": "{}"}')
    with pytest.raises(LandmarkError, match="version 99"):
        store.options_key()


# --- 0.1.0 caches ------------------------------------------------------------------------------------

_V010 = pa.schema(
    [
        ("image_id", pa.string()), ("sha256", pa.string()), ("status", pa.string()), ("n_faces", pa.int32()), ("score", pa.float32()),
        ("bbox", pa.list_(pa.float32())), ("points5", pa.list_(pa.float32())), ("points68", pa.list_(pa.float32())), ("mesh", pa.list_(pa.float32())),
    ]
)  # fmt: skip


def _v010_rows(rows, shas):
    """Rows as mfrkit 0.1.0 wrote them (coordinates as list<float>)."""
    flat = lambda a: None if a is None else np.asarray(a, np.float32).ravel().tolist()  # noqa: E731
    out = []
    for image_id, r in rows:
        lm = r.landmarks
        out.append({"image_id": image_id, "sha256": shas[image_id], "status": r.status, "n_faces": r.n_faces,
                    "score": None if lm is None else lm.score, "bbox": None if lm is None else flat(lm.bbox),
                    "points5": None if lm is None else flat(lm.points5), "points68": None if lm is None else flat(lm.points68),
                    "mesh": None if lm is None else flat(lm.mesh)})  # fmt: skip
    return out


def test_a_010_cache_is_converted_once(sample_manifest, tmp_path, monkeypatch):
    import shutil

    from mfrkit.data.manifest import read_manifest
    from mfrkit.landmarks import legacy
    from mfrkit.landmarks.lookup import cached_counts, detect_landmarks, load_landmarks

    rng = np.random.default_rng(5)
    root = tmp_path / "copy"
    shutil.copytree(sample_manifest.root, root, ignore=shutil.ignore_patterns("landmarks.*"))
    manifest = read_manifest(root)
    ids = list(manifest.table["image_id"])
    shas = dict(zip(ids, manifest.table["sha256"]))
    rows = [(i, _face(rng) if k != 2 else FaceResult("no_face")) for k, i in enumerate(ids)]
    meta = {b"mfrkit_backend_options": b'{"thorough": true}'}
    monkeypatch.setattr(legacy, "BATCH", 4)  # several shards
    pq.write_table(pa.Table.from_pylist(_v010_rows(rows[:5], shas), schema=_V010.with_metadata(meta)), root / "landmarks.mediapipe.parquet")
    # An interrupted 0.1.0 run left a part with a newer row for the first image.
    newer = _face(rng)
    (root / "landmarks.mediapipe.parts").mkdir()
    pq.write_table(pa.Table.from_pylist(_v010_rows([(ids[0], newer)], shas), schema=_V010.with_metadata(meta)),
                   root / "landmarks.mediapipe.parts" / "part-000000.parquet")  # fmt: skip
    assert cached_counts(manifest) == {"mediapipe": {"no_face": 1, "ok": 4}}  # converted on the way
    assert not (root / "landmarks.mediapipe.parquet").exists() and not (root / "landmarks.mediapipe.parts").exists()
    got = load_landmarks(manifest, "mediapipe")
    assert len(got) == 5 and got[ids[2]].status == "no_face"
    np.testing.assert_array_equal(got[ids[0]].landmarks.points68, newer.landmarks.points68)
    np.testing.assert_array_equal(got[ids[1]].landmarks.points5, rows[1][1].landmarks.points5)
    assert np.abs(got[ids[1]].landmarks.mesh - rows[1][1].landmarks.mesh).max() <= MAX_MESH_ERROR + 1e-4
    assert (root / "landmarks.mediapipe" / "store.json").exists()
    # The options it was made with carry over: the same options reuse it, and only the
    # image 0.1.0 had not done yet is detected.
    assert detect_landmarks(manifest, "mediapipe", backend_options={"thorough": True}).detected == len(ids) - 5
