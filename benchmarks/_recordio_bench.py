"""RecordIO parts of the benchmarks (``synth.py --rec``): a synthetic 112x112 RecordIO,
the scan's records/s, the whole-process ``synth --format rec`` rate, and what the
container output's finish costs per image against packing image files.

Not a test: prints figures only. Imported by ``benchmarks/synth.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

#: insightface's sets, images: CASIA-WebFace (faces_webface_112x112) and MS1MV2 (faces_emore).
PROJECTIONS = (("CASIA-WebFace", 494_414), ("MS1MV2", 5_822_653))


def aligned_faces() -> list[np.ndarray]:
    """The shipped photos aligned to ArcFace's 112x112 template (mediapipe, once)."""
    from mfrkit.align import align_face
    from mfrkit.data.sample import source_photos
    from mfrkit.landmarks import create_backend, detect_primary

    backend = create_backend("mediapipe")
    try:
        faces = []
        for img in source_photos().values():
            face = detect_primary(backend, img)
            faces.append(align_face(img, face.landmarks.points5, size=112).image)
        return faces
    finally:
        backend.close()


def _crops(n: int, per_identity: int, seed: int):
    """``n`` (label, JPEG bytes) of 112x112 crops (q95), ``per_identity`` per label: the
    aligned photos with a small random shift, rotation, brightness and mirror each, so
    every one is a distinct JPEG of face-crop size. The same for the same arguments."""
    import cv2

    from mfrkit.data.imageio import encode_image

    faces = aligned_faces()
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = faces[(i // per_identity) % len(faces)]
        m = cv2.getRotationMatrix2D((56, 56), rng.uniform(-4, 4), rng.uniform(0.97, 1.03))
        m[:, 2] += rng.uniform(-2, 2, 2)
        img = cv2.warpAffine(base, m, (112, 112), borderMode=cv2.BORDER_REFLECT)
        img = np.clip(img.astype(np.float32) * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)
        yield i // per_identity, encode_image(np.ascontiguousarray(img[:, ::-1] if rng.random() < 0.5 else img), ".jpg")


def build_rec(root: Path, n: int, per_identity: int = 20, seed: int = 0) -> Path:
    """A RecordIO folder of ``n`` crops of :func:`_crops`. Reused when it exists."""
    from mfrkit.data import recordio as rio

    if (root / "train.rec").is_file() and (root / ".n").is_file() and (root / ".n").read_text() == str(n):
        return root
    shutil.rmtree(root, ignore_errors=True)
    rio.write_insightface(root, _crops(n, per_identity, seed))
    (root / ".n").write_text(str(n))
    return root


def build_folder(root: Path, n: int, per_identity: int = 20, seed: int = 0) -> Path:
    """The same crops as :func:`build_rec` as JPEG files, one folder per identity
    (``<label>/<i>.jpg``), as an aligned set kept as images is. Reused when it exists.
    The ``.n`` stamp lives beside the folder (a file inside would be scanned)."""
    stamp = root.with_name(root.name + ".n")
    if root.is_dir() and stamp.is_file() and stamp.read_text() == str(n):
        return root
    shutil.rmtree(root, ignore_errors=True)
    for i, (label, data) in enumerate(_crops(n, per_identity, seed)):
        path = root / f"{label:05d}" / f"{i:07d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    stamp.write_text(str(n))
    return root


def scan_rate(rec: Path, verify: bool = False) -> dict:
    """Records/s of a scan in this process, one worker (wall and CPU)."""
    from mfrkit.data.scan import scan_dataset

    t0, c0 = time.perf_counter(), time.process_time()
    manifest, _ = scan_dataset(rec, verify=verify)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"n": len(manifest), "wall": wall, "cpu": cpu}


def finish_costs(n: int, size: int = 6000) -> dict:
    """Per image, the container output's two designs at the finish (seconds per image):

    * ``parts``: workers appended images to one part file each; the finish reads each
      with one pread and copies it into train.rec (what mfrkit does);
    * ``files``: workers wrote each image as a file (atomic write); the finish reads the
      files back into train.rec and deletes them.

    Measured on ``n`` random ``size``-byte images (an MS1M record is ~6-8 KB).
    """
    from mfrkit.atomic import atomic_write_bytes
    from mfrkit.data import recordio as rio
    from mfrkit.maskgen.container_output import PartSink, RecordsOut

    blobs = [np.random.default_rng(i).integers(0, 256, size, dtype=np.uint8).tobytes() for i in range(min(n, 512))]
    out = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("MFRKIT_BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        # parts: the worker side (append) and the finish (pread + write)
        t0 = time.perf_counter()
        sink = PartSink(tmp / "parts" / ".parts")
        rows = []
        for i in range(n):
            where = sink.add(blobs[i % len(blobs)])
            rows.append({"identity": str(i // 20), "width": 112, "height": 112, "bytes": size, **where})
        sink.flush()
        t1 = time.perf_counter()
        writer = RecordsOut(tmp / "parts", {str(i // 20): i // 20 for i in range(n)}, n // 20 + 1)
        for r in rows:
            writer.add(r)
        writer.close()
        t2 = time.perf_counter()
        out["parts"] = {"worker": (t1 - t0) / n, "finish": (t2 - t1) / n}
        # files: one atomic file per image, then read back, packed and deleted
        t0 = time.perf_counter()
        folder = tmp / "files"
        for i in range(n):
            atomic_write_bytes(folder / f"{i // 1000:04d}" / f"{i:08d}.jpg", blobs[i % len(blobs)])
        t1 = time.perf_counter()
        with rio.InsightfaceWriter(tmp / "files-rec") as w:
            for i in range(n):
                p = folder / f"{i // 1000:04d}" / f"{i:08d}.jpg"
                w.add(i // 20, p.read_bytes())
                p.unlink()
        t2 = time.perf_counter()
        out["files"] = {"worker": (t1 - t0) / n, "finish": (t2 - t1) / n}
    return out


def _print_run(what: str, r: dict, n: int, masktheface_ms: float) -> float:
    """One whole-process line: wall and CPU seconds, masked images per second per core
    (wall, one process) and per CPU second, and the ratio to MaskTheFace's per-image
    time; returns the wall rate."""
    rate_wall, rate_cpu, ms = n / r["wall"], n / r["cpu"], 1000 * r["wall"] / n
    print(f"whole process ({what}; scan + template landmarks + render + write + card, start-up included): "
          f"{r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU = {rate_wall:.0f} masked img/s per core ({rate_cpu:.0f} per CPU second); "
          f"{ms:.2f} ms/img vs MaskTheFace's recorded {masktheface_ms:.0f} ms/img: {masktheface_ms / ms:.1f}x ({r['summary']})")
    return rate_wall


def report(n: int, workdir: Path, run_synth, masktheface_ms: float) -> None:
    """Build (or reuse) the RecordIO, then print the scan rate, the whole-process synth
    rate per core with the MaskTheFace ratio and the 16-core projections, and the
    finish's cost per image of parts against files."""
    t = time.perf_counter()
    rec = build_rec(workdir / f"rec-{n}", n)
    print(f"RecordIO: {n} synthetic 112x112 JPEG records ({(rec / 'train.rec').stat().st_size / n / 1024:.1f} KiB each) "
          f"in {rec} (built in {time.perf_counter() - t:.0f} s, reused next time)")
    big = build_rec(workdir / "rec-scan-20000", 20000) if n < 20000 else rec
    scan_rate(big)  # warm: imports, page cache
    s, v = scan_rate(big), scan_rate(big, verify=True)
    print(f"scan of {s['n']} records, 1 process (framing, header, SHA-256 and JPEG header of every record; no pixel decode): "
          f"{s['n'] / s['wall']:,.0f} records/s wall, {s['n'] / s['cpu']:,.0f} per CPU second; MS1MV2 {PROJECTIONS[1][1] * s['cpu'] / s['n'] / 60:.1f} "
          f"CPU min; with --verify (every image decoded) {v['n'] / v['wall']:,.0f} records/s")
    r = run_synth(rec, workdir / f"rec-{n}-masked", 1, "--mask", "surgical", "--format", "rec")
    _print_run(f"mfrkit synth --src <rec> --mask surgical --format rec -j 1, {n} records", r, n, masktheface_ms)
    # The same at four times the records: the difference is what each further image
    # costs once start-up, the card and the contact sheet are paid (they do not grow
    # with the dataset), the rate a long run (MS1MV2: 5.8M images) goes at.
    big_rec = build_rec(workdir / f"rec-{4 * n}", 4 * n)
    r4 = run_synth(big_rec, workdir / f"rec-{4 * n}-masked", 1, "--mask", "surgical", "--format", "rec")
    _print_run(f"the same, {4 * n} records", r4, 4 * n, masktheface_ms)
    extra_wall, extra_cpu = r4["wall"] - r["wall"], r4["cpu"] - r["cpu"]
    rate_wall = 3 * n / extra_wall
    print(f"  steady state (the {3 * n} records more, one process): {1000 * extra_wall / (3 * n):.2f} ms/img wall = {rate_wall:.0f} masked "
          f"img/s per core ({3 * n / extra_cpu:.0f} per CPU second); fixed cost (start-up, card, contact sheet) "
          f"{r['wall'] - n * extra_wall / (3 * n):.1f} s")
    folder = build_folder(workdir / f"crops-{n}", n)
    f = run_synth(folder, workdir / f"crops-{n}-masked", 1, "--mask", "surgical", "--aligned", "arcface112")
    _print_run(f"mfrkit synth --src <folder of {n} 112x112 JPEGs> --aligned arcface112 --mask surgical -j 1", f, n, masktheface_ms)
    for name, images in PROJECTIONS:
        print(f"  projection, {name} ({images:,} images) on 16 cores at the steady rate: {images / (16 * rate_wall) / 60:.1f} min")
    costs = finish_costs(min(n, 20000))
    for design, c in costs.items():
        total = c["worker"] + c["finish"]
        print(f"  container finish, {design}: worker {1e6 * c['worker']:.0f} us/img + finish {1e6 * c['finish']:.0f} us/img; "
              f"MS1MV2's finish alone {PROJECTIONS[1][1] * c['finish'] / 60:.1f} min (one process), all in {PROJECTIONS[1][1] * total / 60:.1f} min")
