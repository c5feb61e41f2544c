"""The landmark store: the error its mesh fixed point causes, its size, and the memory
its readers use against the number of images.

Run from the repository root::

    PYTHONPATH=. python benchmarks/landmark_store.py [--captures 30] [--images 13233]
        [--scale 4] [--detect 0] [--workers 2]

Sections (nothing is asserted: this is a benchmark, not a test):

1. **Error**, on real detections (mediapipe on the demo sample's re-framings of the two
   photos that ship with the dependencies, ``2 x --captures`` faces): the stored mesh
   against the detected one (px, per axis); the alignment crop from stored points
   against fresh ones; the ArcFace points taken from the stored mesh's vertices; the
   mesh renderer's mask placement (canonical vertices placed by the pose fitted to the
   stored mesh against the detected one, px) and its output pixels.
2. **Size and memory** for ``--images`` rows and ``--scale`` times as many: rows are the
   real detections, each moved by a random similarity (scale 0.8-1.25, rotation
   +-10 degrees, shift +-20 px) plus 0.25 px Gaussian noise per vertex, so that no two
   rows are alike (identical rows would flatter the compression); 3% are ``no_face``.
   Compared: mfrkit 0.1.0's single Parquet file (``list<float>``, loaded whole into a
   dict of FaceResult, as its ``load_landmarks`` did) and the store (read per chunk).
   Peak RSS is measured in a fresh process per case (``benchmarks/_rss.py``), minus a
   process that only imports the same modules.
3. **Bench memory beyond landmarks** for the same two sizes: the bench's ImageTable of
   a manifest and an Embeddings of 512-d vectors.
4. With ``--detect M``: ``mfrkit landmarks`` itself (``detect_landmarks``, mediapipe,
   ``--workers`` processes) on trees of M and ``--scale`` x M real-photo captures: peak
   RSS of the main process and of the largest worker, and images/s.

Timings and RSS taken while other work runs on the machine are noisy; rerun on an idle
machine for figures to quote.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _rss import baseline, measure  # noqa: E402

N_CHUNK = 256


# --- 1. error on real detections ------------------------------------------------------------------


def real_faces(folder: Path, captures: int):
    """(image_id, image, FaceResult) of the demo sample's captures, mediapipe."""
    from mfrkit.data.imageio import read_image
    from mfrkit.data.sample import build_sample
    from mfrkit.landmarks import create_backend, detect_primary

    records = build_sample(folder, captures=captures)
    backend = create_backend("mediapipe")
    out = []
    for r in records:
        image = read_image(folder / r["path"])
        face = detect_primary(backend, image, image_id=r["path"])
        if face.status == "ok":
            out.append((r["path"], image, face))
    return out


def error_section(faces, folder: Path) -> None:
    from mfrkit.alignments import get_alignment
    from mfrkit.landmarks.mediapipe_mesh import five_from_mesh
    from mfrkit.landmarks.mesh_codec import MAX_MESH_ERROR, decode_meshes, encode_meshes
    from mfrkit.landmarks.store import LandmarkStore, encode_results, write_shard
    from mfrkit.maskgen.fit import fit_mesh, landmark_model
    from mfrkit.maskgen.renderers import create_renderer
    from mfrkit.rng import item_rng

    meshes = np.stack([f.landmarks.mesh for _, _, f in faces])
    origin, planes, fits = encode_meshes(meshes)
    decoded = decode_meshes(origin, planes)
    err = np.abs(decoded.astype(np.float64) - meshes)
    extent = meshes.max(1) - meshes.min(1)
    print(f"\n1. Error on {len(faces)} real mediapipe detections (faces {extent[:, 0].min():.0f}-{extent[:, 0].max():.0f} px wide; all fit: {bool(fits.all())})")
    print(f"   stored mesh vs detected, max |error| px:  x {err[..., 0].max():.4f}  y {err[..., 1].max():.4f}  z {err[..., 2].max():.4f}"
          f"  (mean {err.mean():.4f}; bound {MAX_MESH_ERROR} = 1/64 per coordinate)")  # fmt: skip

    # Through the store: points must come back bit-identical, the mesh as decoded above.
    store = LandmarkStore(folder / "landmarks.bench", "mediapipe")
    store.create("{}")
    ids = [i for i, _, _ in faces]
    write_shard(store.folder, 0, encode_results(ids, [None] * len(ids), [f for _, _, f in faces]), "{}")
    store.commit()
    back = store.get(ids)
    same_points = all(
        np.array_equal(back[i].landmarks.points5, f.landmarks.points5) and np.array_equal(back[i].landmarks.points68, f.landmarks.points68)
        and np.array_equal(back[i].landmarks.bbox, f.landmarks.bbox) for i, _, f in faces
    )  # fmt: skip
    mesh_same = max(float(np.abs(back[i].landmarks.mesh - decoded[k]).max()) for k, (i, _, _) in enumerate(faces))
    print(f"   store round trip: points5/points68/bbox bit-identical: {same_points}; mesh = decoded fixed point (max diff {mesh_same:.2g} px)")

    crop = get_alignment("arcface112").crop
    crop_diff = max(int(np.abs(crop(img, back[i].landmarks, (112, 112)).astype(int) - crop(img, f.landmarks, (112, 112)).astype(int)).max()) for i, img, f in faces)
    five = max(float(np.abs(five_from_mesh(decoded[k]) - five_from_mesh(meshes[k])).max()) for k in range(len(faces)))
    print(f"   alignment (arcface112 crop from stored vs detected points): max pixel difference {crop_diff} (0 = identical crops)")
    print(f"   ArcFace 5 points taken from the stored mesh's vertices instead: max |error| {five:.4f} px")

    renderer = create_renderer("mesh")
    canon = landmark_model("mesh").points
    place, pix_max, pix_frac, occ = 0.0, 0, 0.0, 0
    for k, (image_id, img, f) in enumerate(faces):
        a_fit, b_fit = fit_mesh(meshes[k]), fit_mesh(decoded[k])
        canon3 = np.column_stack([canon, np.zeros(len(canon))]) if canon.shape[1] == 2 else canon
        xa, _ = a_fit.place(canon3)
        xb, _ = b_fit.place(canon3)
        place = max(place, float(np.linalg.norm(xa - xb, axis=1).max()))
        params = renderer.sample(item_rng(0, image_id), f.landmarks)
        ra = renderer.apply(img, params)
        rb = renderer.apply(img, dataclasses.replace(params, landmarks=back[image_id].landmarks))
        diff = np.abs(ra.image.astype(int) - rb.image.astype(int))
        pix_max = max(pix_max, int(diff.max()))
        pix_frac = max(pix_frac, float((diff.max(2) > 0).mean()))
        occ = max(occ, int((ra.occlusion != rb.occlusion).sum()))
    print(f"   mesh renderer: mask placement (canonical vertices through the fitted pose) max shift {place:.4f} px")
    print(f"   mesh renderer output, stored vs detected mesh: max pixel difference {pix_max} levels on at most {100 * pix_frac:.2f}% of the pixels; "
          f"occlusion masks differ on at most {occ} px")  # fmt: skip


# --- 2. size and memory -----------------------------------------------------------------------------


def synthetic_rows(faces, n: int, seed: int = 0):
    """n (image_id, FaceResult) rows from the real detections, each moved (see the docstring)."""
    from mfrkit.landmarks import FaceResult
    from mfrkit.landmarks.mediapipe_mesh import landmarks_from_mesh

    rng = np.random.default_rng(seed)
    base = [f.landmarks.mesh.astype(np.float64) for _, _, f in faces]
    for k in range(n):
        image_id = f"id{k // 20:05d}/img_{k:07d}.jpg"
        if rng.random() < 0.03:
            yield image_id, FaceResult(status="no_face")
            continue
        m = base[k % len(base)]
        c = m.mean(0)
        s, a = rng.uniform(0.8, 1.25), np.radians(rng.uniform(-10, 10))
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        xy = (m[:, :2] - c[:2]) @ rot.T * s + c[:2] + rng.uniform(-20, 20, 2)
        z = (m[:, 2] - c[2]) * s + c[2]
        mesh = (np.column_stack([xy, z]) + rng.normal(0, 0.25, m.shape)).astype(np.float32)
        yield image_id, FaceResult(status="ok", landmarks=landmarks_from_mesh(mesh), n_faces=1)


def _chunks(rows, size):
    chunk = []
    for r in rows:
        chunk.append(r)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_v010(path: Path, rows) -> None:
    """The rows as mfrkit 0.1.0's cache file (list<float> columns, one file, snappy)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("image_id", pa.string()), ("sha256", pa.string()), ("status", pa.string()), ("n_faces", pa.int32()), ("score", pa.float32()),
                        ("bbox", pa.list_(pa.float32())), ("points5", pa.list_(pa.float32())), ("points68", pa.list_(pa.float32())),
                        ("mesh", pa.list_(pa.float32()))])  # fmt: skip
    with pq.ParquetWriter(path, schema) as writer:
        for chunk in _chunks(rows, 4096):
            def col(get):
                return pa.array([None if r.landmarks is None else np.asarray(get(r.landmarks), np.float32).ravel() for _, r in chunk], pa.list_(pa.float32()))

            writer.write_table(pa.table({
                "image_id": [i for i, _ in chunk], "sha256": ["0" * 64] * len(chunk), "status": [r.status for _, r in chunk],
                "n_faces": pa.array([r.n_faces for _, r in chunk], pa.int32()), "score": pa.array([None if r.landmarks is None else r.landmarks.score for _, r in chunk], pa.float32()),
                "bbox": col(lambda lm: lm.bbox), "points5": col(lambda lm: lm.points5), "points68": col(lambda lm: lm.points68), "mesh": col(lambda lm: lm.mesh),
            }, schema=schema))  # fmt: skip


def write_store(folder: Path, rows) -> None:
    from mfrkit.landmarks.store import LandmarkStore, encode_results, write_shard

    store = LandmarkStore(folder, "mediapipe")
    store.create("{}")
    for number, chunk in enumerate(_chunks(rows, N_CHUNK)):
        write_shard(folder, number, encode_results([i for i, _ in chunk], ["0" * 64] * len(chunk), [r for _, r in chunk]), "{}")
    store.commit()


def load_v010(path: str) -> int:
    """0.1.0's load_landmarks: the whole file into a dict of FaceResult."""
    import pyarrow.parquet as pq

    from mfrkit.landmarks import FaceResult, Landmarks

    def arr(v, shape):
        return None if v is None else np.asarray(v, dtype=np.float32).reshape(shape)

    frame = pq.read_table(path).to_pandas()
    out = {}
    for r in frame.to_dict("records"):
        if r["status"] != "ok":
            out[r["image_id"]] = FaceResult(status=r["status"], n_faces=int(r["n_faces"] or 0))
            continue
        lm = Landmarks(points5=arr(r["points5"], (5, 2)), points68=arr(r["points68"], (68, 2)), bbox=arr(r["bbox"], (4,)), score=float(r["score"]),
                       backend="mediapipe", mesh=arr(r["mesh"], (-1, 3)))  # fmt: skip
        out[r["image_id"]] = FaceResult(status="ok", landmarks=lm, n_faces=int(r["n_faces"]))
    return len(out)


def read_store(folder: str, mesh: bool) -> tuple[int, float]:
    """Every row through the store's chunked reader (what a job's workers do in turn)."""
    from mfrkit.landmarks.store import LandmarkStore

    start = time.perf_counter()
    n = sum(len(chunk) for chunk in LandmarkStore(folder, "mediapipe").iter_chunks(mesh=mesh, size=N_CHUNK))
    return n, n / (time.perf_counter() - start)


def bench_keys(folder: str) -> int:
    """The bench's landmark use: points of every image, LOOKUP_BLOCK at a time, reduced
    to the embedding cache's item keys (as ``embed_images`` does)."""
    from mfrkit.bench.embed.pipeline import LOOKUP_BLOCK
    from mfrkit.bench.embed.embedding_cache import item_key
    from mfrkit.landmarks.store import LandmarkStore

    store = LandmarkStore(folder, "mediapipe")
    keys = []
    ids = list(store.ids())
    for s in range(0, len(ids), LOOKUP_BLOCK):
        found = store.get(ids[s : s + LOOKUP_BLOCK], mesh=False)
        keys += [item_key("0" * 64, f.landmarks) if f.landmarks is not None else None for f in found.values()]
    return len(keys)


def size_mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def memory_section(faces, folder: Path, sizes: list[int]) -> None:
    base = baseline("mfrkit.landmarks.lookup", "pandas", "pyarrow.parquet")
    bench_base = baseline("mfrkit.landmarks.lookup", "mfrkit.bench.embed.pipeline", "pandas", "pyarrow.parquet")
    print(f"\n2. Size on disk and peak RSS above a process that only imports the modules ({base:.0f} MiB)")
    header = f"   {'rows':>8} {'0.1.0 file':>11} {'store':>8} {'per row':>8} | {'0.1.0 load all':>15} {'store: all chunks':>18} {'points only':>12} {'bench keys':>11} {'read rows/s':>12}"
    print(header)
    results = {}
    for n in sizes:
        old, new = folder / f"v010-{n}.parquet", folder / f"store-{n}"
        write_v010(old, synthetic_rows(faces, n))
        write_store(new, synthetic_rows(faces, n))
        load = measure(load_v010, str(old))
        full = measure(read_store, str(new), True)
        pts = measure(read_store, str(new), False)
        keys = measure(bench_keys, str(new))
        results[n] = (load.self_mib - base, full.self_mib - base, pts.self_mib - base, keys.self_mib - bench_base)
        print(f"   {n:>8} {size_mib(old):>9.1f}MB {size_mib(new):>6.1f}MB {size_mib(new) * 2**20 / n / 1024:>6.2f}kB | "
              f"{load.self_mib - base:>13.0f}MB {full.self_mib - base:>16.0f}MB {pts.self_mib - base:>10.0f}MB {keys.self_mib - bench_base:>9.0f}MB "
              f"{full.result[1]:>11.0f}")  # fmt: skip
    if len(sizes) == 2:
        a, b = (results[s] for s in sizes)
        print(f"   x{sizes[1] / sizes[0]:.0f} rows -> RSS above imports x{b[0] / max(a[0], 1):.2f} (0.1.0), x{b[1] / max(a[1], 1):.2f} (store, all chunks), "
              f"x{b[2] / max(a[2], 1):.2f} (points only), x{b[3] / max(a[3], 1):.2f} (bench keys: grow with the keys and ids it keeps)")  # fmt: skip


# --- 3. bench memory beyond landmarks ----------------------------------------------------------------


def bench_tables(n: int, dim: int = 512) -> int:
    """The bench's per-image structures for one manifest of n images: the ImageTable and
    one model's Embeddings."""
    import pandas as pd

    from mfrkit.bench.embed.pipeline import Embeddings
    from mfrkit.bench.embed.images import ImageTable
    from mfrkit.data.manifest import Manifest

    ids = [f"id{k // 20:05d}/img_{k:07d}.jpg" for k in range(n)]
    table = pd.DataFrame({"image_id": ids, "path": ids, "identity": [i.split("/")[0] for i in ids], "variant": "unmasked",
                          "status": "ok", "sha256": [f"{k:064x}" for k in range(n)]})  # fmt: skip
    images = ImageTable()
    images.add(Manifest(table, {"root": "."}, Path(tempfile.gettempdir()) / "bench-mem" / "manifest.parquet"))
    # Filled, not zeros: untouched zero pages are not resident and would hide the cost.
    emb = Embeddings(ids=[f"m0:{i}" for i in ids], vectors=np.full((n, dim), 0.01, np.float32), status=np.full(n, "ok", dtype=object))
    return len(images.table) + len(emb.ids)


def bench_section(sizes: list[int]) -> None:
    base = baseline("mfrkit.bench.embed.pipeline", "mfrkit.bench.embed.images", "pandas")
    print("\n3. Bench per-image structures (one manifest, one 512-d model), peak RSS above imports")
    got = {n: measure(bench_tables, n).self_mib - base for n in sizes}
    for n in sizes:
        print(f"   {n:>8} images: {got[n]:.0f} MB  (embedding vectors alone {n * 512 * 4 / 2**20:.0f} MB)")


# --- 4. detection ------------------------------------------------------------------------------------


def detect_tree(root: str, workers: int) -> tuple[int, float]:
    from mfrkit.data.manifest import read_manifest
    from mfrkit.jobs import ExecutorSpec
    from mfrkit.landmarks.lookup import detect_landmarks

    manifest = read_manifest(Path(root) / "manifest.parquet")
    start = time.perf_counter()
    summary = detect_landmarks(manifest, "mediapipe", executor=ExecutorSpec(workers=workers))
    return summary.detected, summary.detected / (time.perf_counter() - start)


def detect_section(folder: Path, sizes: list[int], workers: int) -> None:
    from mfrkit.data.manifest import write_manifest
    from mfrkit.data.sample import build_sample
    from mfrkit.data.scan import scan_dataset

    print(f"\n4. detect_landmarks (mediapipe, {workers} workers) on trees of real-photo captures")
    for n in sizes:
        root = folder / f"tree-{n}"
        build_sample(root, captures=max(1, n // 2))
        manifest, _ = scan_dataset(root, layout="imagefolder", name=f"tree{n}")
        manifest.meta["root"] = "."
        write_manifest(manifest, root / "manifest.parquet")
        r = measure(detect_tree, str(root), workers)
        print(f"   {r.result[0]:>8} images: {r.result[1]:.0f} images/s; peak RSS main {r.self_mib:.0f} MB, largest worker {r.children_mib:.0f} MB; "
              f"store {size_mib(root / 'landmarks.mediapipe'):.1f} MB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=int, default=30, help="real captures per identity for the error section (2 identities)")
    parser.add_argument("--images", type=int, default=13233, help="rows of the size and memory section (LFW's 13,233 by default)")
    parser.add_argument("--scale", type=int, default=4, help="the second size is this many times --images")
    parser.add_argument("--detect", type=int, default=0, help="also run detect_landmarks on trees of this many images and --scale times as many")
    parser.add_argument("--workers", type=int, default=2, help="detection workers for --detect")
    args = parser.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        faces = real_faces(folder / "sample", args.captures)
        error_section(faces, folder)
        sizes = [args.images, args.images * args.scale]
        memory_section(faces, folder, sizes)
        bench_section(sizes)
        if args.detect:
            detect_section(folder, [args.detect, args.detect * args.scale], args.workers)


if __name__ == "__main__":
    main()
