"""Both detectors on the real photos, primary-face selection, the file backend, the cache."""

import numpy as np
import pytest
from skimage import data

from mfrkit.errors import LandmarkError, ManifestError
from mfrkit.landmarks import (
    Landmarks,
    create_backend,
    detect_primary,
    five_from_68,
    select_primary,
)
from mfrkit.landmarks.lookup import (
    cache_path,
    cached_counts,
    detect_landmarks,
    get_landmarks,
    load_landmarks,
    open_store,
)


@pytest.mark.parametrize("name", ["eileen_collins", "grace_hopper"])
def test_backends_agree_on_the_eyes(backends, photos, name):
    a = detect_primary(backends["mediapipe"], photos[name])
    b = detect_primary(backends["dlib"], photos[name])
    assert a.status == b.status == "ok"
    assert a.landmarks.points68.shape == b.landmarks.points68.shape == (68, 2)
    assert a.landmarks.mesh.shape == (478, 3)
    iod = a.landmarks.interocular
    assert np.linalg.norm(a.landmarks.eye_centres() - b.landmarks.eye_centres(), axis=1).max() < 0.10 * iod
    # 68-point layouts agree too: mouth corners and nose tip within 15% of the inter-ocular distance.
    for idx in (30, 48, 54):
        assert np.linalg.norm(a.landmarks.points68[idx] - b.landmarks.points68[idx]) < 0.15 * iod
    # Image-left eye first (ArcFace order).
    assert a.landmarks.points5[0, 0] < a.landmarks.points5[1, 0]


@pytest.mark.parametrize("backend", ["mediapipe", "dlib"])
def test_no_face_is_a_status(backends, backend):
    result = detect_primary(backends[backend], data.coffee())
    assert result.status == "no_face" and result.landmarks is None and result.n_faces == 0


def test_two_faces_larger_wins(backends, photos):
    import cv2

    big = cv2.resize(photos["eileen_collins"], (716, 716), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(photos["grace_hopper"], (190, 223), interpolation=cv2.INTER_AREA)
    canvas = np.full((720, 1300, 3), 90, np.uint8)
    canvas[:716, :716] = big  # the larger face, further from the centre
    canvas[250:473, 760:950] = small  # nearer the centre, under half the area
    result = detect_primary(backends["dlib"], canvas)
    assert result.status == "ok" and result.n_faces == 2
    assert result.landmarks.points5[0, 0] < 716


def test_two_comparable_faces_nearest_centre_wins_and_small_faces_are_found(photos):
    import cv2

    canvas = np.full((600, 1024, 3), 90, np.uint8)
    canvas[:512, :512] = photos["eileen_collins"]
    canvas[150:384, 560:760] = cv2.resize(photos["grace_hopper"], (200, 234), interpolation=cv2.INTER_AREA)
    quick, thorough = create_backend("mediapipe"), create_backend("mediapipe", thorough=True)
    result = detect_primary(thorough, canvas)
    assert result.status == "ok" and result.n_faces == 2
    assert result.landmarks.points5[0, 0] > 512  # both faces are large: the one nearer the centre
    # A face too small for the short-range detector alone is found by the fallback.
    lone = np.full((900, 1500, 3), 90, np.uint8)
    lone[150:384, 560:760] = canvas[150:384, 560:760]
    assert quick._meshes(quick._mesh, lone) == []  # the face mesh's own detector misses it
    assert detect_primary(quick, lone).status == "ok"


def _face(x0, y0, size):
    box = np.array([x0, y0, x0 + size, y0 + size], np.float32)
    return Landmarks(points5=np.zeros((5, 2), np.float32), points68=None, bbox=box)


def test_select_primary_rule():
    shape = (200, 200)
    big_corner, big_centre, small_centre = _face(0, 0, 60), _face(75, 75, 50), _face(90, 90, 20)
    assert select_primary([big_corner, small_centre], shape) is big_corner  # small one is under half the area
    assert select_primary([big_corner, big_centre, small_centre], shape) is big_centre
    assert select_primary([], shape) is None


def test_five_from_68_uses_eye_means_nose_and_mouth_corners():
    p68 = np.arange(136, dtype=np.float32).reshape(68, 2)
    p5 = five_from_68(p68)
    np.testing.assert_allclose(p5[0], p68[36:42].mean(0))
    np.testing.assert_allclose(p5[3], p68[48])


def test_file_backend(tmp_path):
    pts5 = " ".join(str(v) for v in range(10))
    pts68 = ",".join(str(v) for v in range(136))
    f = tmp_path / "lm.txt"
    f.write_text(f"key x1 y1 ...\n# comment\nAnn/Ann_0001.jpg {pts5}\nBob_0002.jpg,{pts68}\n")
    backend = create_backend("file", path=str(f))
    img = np.zeros((10, 10, 3), np.uint8)
    (ann,) = backend.detect(img, image_id="Ann/Ann_0001.jpg")
    assert ann.points68 is None and ann.points5[1].tolist() == [2, 3]
    (bob,) = backend.detect(img, image_id="Bob/Bob_0002.jpg")  # matched by file name
    assert bob.points68.shape == (68, 2)
    assert backend.detect(img, image_id="Carl/Carl_0001.jpg") == []


@pytest.mark.parametrize(
    "text, match",
    [("a 1 2 3\n", "10 or 136"), ("a " + "1 " * 10 + "\na " + "1 " * 10 + "\n", "twice"), ("a " + "1 " * 10 + "\nb 1 x" + " 1" * 8, "non-numeric"), ("", "no landmarks")],
)
def test_file_backend_errors(tmp_path, text, match):
    f = tmp_path / "lm.txt"
    f.write_text(text)
    with pytest.raises(LandmarkError, match=match):
        create_backend("file", path=str(f))


def test_file_backend_refuses_a_binary_file(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 not text")
    with pytest.raises(LandmarkError, match="UTF-8"):
        create_backend("file", path=str(tmp_path / "photo.jpg"))


def test_cache_detects_once_and_resumes(sample_manifest, tmp_path):
    import shutil

    from mfrkit.data.manifest import read_manifest, write_manifest

    root = tmp_path / "copy"
    shutil.copytree(sample_manifest.root, root, ignore=shutil.ignore_patterns("landmarks.*"))
    manifest = read_manifest(root)
    (root / manifest.table["path"][1]).write_bytes(b"broken now")  # the manifest still says ok
    with pytest.raises(ManifestError, match="mfrkit landmarks"):
        load_landmarks(manifest, "mediapipe")
    first = detect_landmarks(manifest, "mediapipe", chunk_size=2)
    assert first.detected == len(manifest) and first.counts == {"ok": len(manifest) - 1, "corrupt": 1}
    store = open_store(manifest, "mediapipe")
    assert first.path == cache_path(manifest, "mediapipe") == store.folder
    assert store.shard_numbers() == [0, 1, 2] and store.pending() == []  # one shard per chunk, all committed
    written = store.index_path.stat().st_mtime_ns
    before = {k: v for k, v in load_landmarks(manifest, "mediapipe").items()}
    again = detect_landmarks(manifest, "mediapipe")
    assert again.detected == 0 and again.reused == len(manifest) and again.counts == first.counts
    assert store.index_path.stat().st_mtime_ns == written  # nothing new: not rewritten
    # An interrupted run leaves shards the index does not list yet; the next run keeps them
    # and does only the rest.
    store.index_path.unlink()
    (store.folder / "shard-000002.parquet").unlink()
    assert store.pending() == [0, 1]
    resumed = detect_landmarks(manifest, "mediapipe")
    assert resumed.detected == len(manifest) - 4 and resumed.counts == first.counts
    result = load_landmarks(manifest, "mediapipe")
    assert set(result) == set(manifest.table["image_id"]) and len(result) == len(manifest)
    for image_id, face in before.items():
        assert result[image_id].status == face.status
        if face.landmarks is not None:
            np.testing.assert_array_equal(result[image_id].landmarks.points68, face.landmarks.points68)
            np.testing.assert_array_equal(result[image_id].landmarks.mesh, face.landmarks.mesh)
    # A changed image (new sha256) is detected again; its new row wins.
    manifest.table.loc[0, "sha256"] = "0" * 64
    write_manifest(manifest)
    assert detect_landmarks(manifest, "mediapipe").detected == 1
    assert open_store(manifest, "mediapipe").index_table().to_pandas().set_index("image_id").loc[manifest.table["image_id"][0], "sha256"] == "0" * 64


def test_cache_mesh_is_within_a_64th_of_a_pixel_and_points_exact(sample_manifest, backends, tmp_path):
    import shutil

    from mfrkit.data.imageio import read_image
    from mfrkit.data.manifest import read_manifest
    from mfrkit.landmarks.mesh_codec import MAX_MESH_ERROR

    root = tmp_path / "copy"
    shutil.copytree(sample_manifest.root, root, ignore=shutil.ignore_patterns("landmarks.*"))
    manifest = read_manifest(root)
    cached = get_landmarks(manifest, "mediapipe")
    points_only = get_landmarks(manifest, "mediapipe", mesh=False)
    for image_id, rel in zip(manifest.table["image_id"], manifest.table["path"]):
        fresh = detect_primary(backends["mediapipe"], read_image(root / rel), image_id=image_id).landmarks
        lm = cached[image_id].landmarks
        for name in ("points5", "points68", "bbox"):
            np.testing.assert_array_equal(getattr(lm, name), getattr(fresh, name))
        assert np.abs(lm.mesh - fresh.mesh).max() <= MAX_MESH_ERROR + 1e-4
        assert points_only[image_id].landmarks.mesh is None
        np.testing.assert_array_equal(points_only[image_id].landmarks.points5, fresh.points5)


def test_cache_is_independent_of_workers(sample_manifest, tmp_path):
    import shutil

    from mfrkit.data.manifest import read_manifest

    results = []
    for workers in (1, 2):
        root = tmp_path / f"w{workers}"
        shutil.copytree(sample_manifest.root, root, ignore=shutil.ignore_patterns("landmarks.*"))
        results.append(get_landmarks(read_manifest(root), "dlib", workers=workers))
    one, two = results
    assert one.keys() == two.keys()
    for key in one:
        np.testing.assert_array_equal(one[key].landmarks.points68, two[key].landmarks.points68)


def test_cache_keeps_rows_outside_a_subset_and_skips_idle_work(sample_manifest, tmp_path):
    import shutil

    from mfrkit.data.manifest import Manifest, read_manifest

    root = tmp_path / "copy"
    shutil.copytree(sample_manifest.root, root, ignore=shutil.ignore_patterns("landmarks.*"))
    full = read_manifest(root)
    detect_landmarks(full, "dlib")
    subset = Manifest(full.table.iloc[:2].reset_index(drop=True), full.meta, full.path)
    summary = detect_landmarks(subset, "dlib")
    assert summary.detected == 0 and sum(summary.counts.values()) == 2
    assert set(load_landmarks(full, "dlib")) == set(full.table["image_id"])  # nothing was dropped
    assert cached_counts(subset) == {"dlib": {"ok": 2}} and cached_counts(full) == {"dlib": {"ok": len(full)}}


def test_cache_of_the_file_backend_follows_the_file(sample_manifest, tmp_path):
    import shutil

    from mfrkit.data.manifest import read_manifest

    root = tmp_path / "copy"
    shutil.copytree(sample_manifest.root, root, ignore=shutil.ignore_patterns("landmarks.*"))
    manifest = read_manifest(root)

    def landmark_file(name, offset):
        lines = [f"{i} " + " ".join(str(offset + v) for v in range(10)) for i in manifest.table["image_id"]]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        return {"path": str(tmp_path / name)}

    first = landmark_file("a.txt", 0)
    assert detect_landmarks(manifest, "file", backend_options=first).detected == len(manifest)
    assert detect_landmarks(manifest, "file", backend_options=landmark_file("copy.txt", 0)).detected == 0  # same content
    corrected = landmark_file("a.txt", 100)  # the same file, edited
    assert detect_landmarks(manifest, "file", backend_options=corrected).detected == len(manifest)
    image_id = manifest.table["image_id"][0]
    assert load_landmarks(manifest, "file")[image_id].landmarks.points5[0].tolist() == [100, 101]
    # A reader that does not know the options (bench, training) takes what is cached;
    # with nothing left to do the backend is not even created (it would need its file).
    assert detect_landmarks(manifest, "file").detected == 0
    # Shards an interrupted run with other options left are not taken for this run's.
    from mfrkit.landmarks import FaceResult
    from mfrkit.landmarks.store import encode_results, write_shard

    store = open_store(manifest, "file")
    stale = write_shard(store.folder, 99, encode_results([image_id], [None], [FaceResult("no_face")]), '{"path": "another file"}')
    assert store.pending() == [99]
    assert detect_landmarks(manifest, "file").detected == 0 and not stale.exists()
    assert load_landmarks(manifest, "file")[image_id].status == "ok"


def _copy(sample_manifest, tmp_path):
    import shutil

    from mfrkit.data.manifest import read_manifest

    root = tmp_path / "copy"
    shutil.copytree(sample_manifest.root, root, ignore=shutil.ignore_patterns("landmarks.*"))
    return read_manifest(root)


def test_one_detection_per_store_at_a_time(sample_manifest, tmp_path):
    from mfrkit.jobs import FolderInUseError, FolderLock
    from mfrkit.jobs.output import LOCK, MARKER, read_marker

    manifest = _copy(sample_manifest, tmp_path)
    folder = cache_path(manifest, "dlib")
    with FolderLock(folder / LOCK, what=f"output folder {folder}", purpose="landmarks"):
        with pytest.raises(FolderInUseError, match="in use by PID"):
            detect_landmarks(manifest, "dlib")
    assert detect_landmarks(manifest, "dlib").detected == len(manifest)
    marker = read_marker(folder)
    assert marker.kind == "landmarks" and marker.state == "finished" and (folder / MARKER).is_file()
    # Nothing to do: the folder is not even claimed (a reader never waits for the lock).
    with FolderLock(folder / LOCK, what=str(folder)):
        assert detect_landmarks(manifest, "dlib").detected == 0


def test_a_chunk_that_fails_as_a_whole_is_reported_and_retried(sample_manifest, tmp_path, monkeypatch):
    from mfrkit.errors import LandmarkError
    from mfrkit.landmarks.base import BACKENDS

    manifest = _copy(sample_manifest, tmp_path)
    victim = manifest.table["image_id"][3]

    class Exploding:
        name, has_68, has_mesh = "explode", False, False

        def __init__(self, fail=True):
            self.fail = fail

        def detect(self, image, *, image_id=None):
            if self.fail and image_id == victim:
                raise RuntimeError("the detector crashed")
            return [Landmarks(points5=np.ones((5, 2), np.float32), points68=None, bbox=np.array([0, 0, 9, 9], np.float32))]

    monkeypatch.setitem(BACKENDS._entries, "explode", Exploding)
    with pytest.raises(LandmarkError, match=r"2 image\(s\) in 1 chunk.*the detector crashed.*rerun"):
        detect_landmarks(manifest, "explode", chunk_size=2)
    assert cached_counts(manifest) == {"explode": {"ok": len(manifest) - 2}}  # the other chunks are kept
    again = detect_landmarks(manifest, "explode", backend_options={"fail": False}, chunk_size=2)
    assert again.detected == len(manifest) and again.counts == {"ok": len(manifest)}  # other options: all again
    assert load_landmarks(manifest, "explode")[victim].landmarks.points5.sum() == 10


def _store_bytes(folder):
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def test_detection_gives_the_same_store_whatever_the_executor(sample_manifest, tmp_path):
    ray = pytest.importorskip("ray")
    from mfrkit.data.manifest import read_manifest
    from mfrkit.jobs import ExecutorSpec

    stores = {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        for name, spec in [("inline", ExecutorSpec()), ("local2", ExecutorSpec("local", workers=2)), ("ray", ExecutorSpec("ray", workers=2))]:
            manifest = _copy(sample_manifest, tmp_path / name)
            detect_landmarks(manifest, "dlib", chunk_size=2, executor=spec)
            stores[name] = _store_bytes(cache_path(manifest, "dlib"))
    finally:
        ray.shutdown()
    assert len(stores["inline"]) == 4  # three shards and the index
    assert stores["inline"] == stores["local2"] == stores["ray"]  # byte-identical files
    manifest = read_manifest(tmp_path / "ray" / "copy")
    assert cached_counts(manifest) == {"dlib": {"ok": len(manifest)}}


def test_cache_progress_counts_images_not_shards(sample_manifest, tmp_path, monkeypatch):
    """The detection's bar counts images (shards of 2 here), resumed shards included."""
    import contextlib
    import shutil

    from mfrkit.data.manifest import read_manifest
    from mfrkit.jobs import engine

    bars = []

    @contextlib.contextmanager
    def bar(total, description, *, enabled=True, completed=0):
        seen = []
        bars.append((total, seen))
        yield lambda n=1, status=None: seen.append(n)

    monkeypatch.setattr(engine, "progress_bar", bar)
    root = tmp_path / "copy"
    shutil.copytree(sample_manifest.root, root, ignore=shutil.ignore_patterns("landmarks.*"))
    manifest = read_manifest(root)
    detect_landmarks(manifest, "dlib", chunk_size=2, progress=True)
    (total, seen), = bars
    assert total == len(manifest) == sum(seen) and len(manifest) > 2 and max(seen) == 2
    store = open_store(manifest, "dlib")
    store.index_path.unlink()
    (store.folder / "shard-000001.parquet").unlink()  # an interrupted run: shard 0 done, 1 to do
    bars.clear()
    detect_landmarks(manifest, "dlib", chunk_size=2, progress=True)
    (total, seen), = bars
    assert total == sum(seen) and total < len(manifest)
