"""Training input speed: crops per second per core from a pack, from insightface RecordIO
and from JPEG photos.

A training sample needs its aligned crop. From photos that is: read the JPEG, decode it,
warp it onto the ArcFace template (:class:`~mfrkit.models.dataset.PairedFaceDataset`
with cached landmarks). From a pack (``mfrkit pack``) it is a copy out of a
memory-mapped shard. From insightface's RecordIO (``train.rec``, the form MS1M and
Glint360K ship in) it is a ``pread`` of the record through ``train.idx`` and a JPEG
decode of the ready-aligned 112x112 crop (no warp). This script times the paths through the training dataset itself,
in one process on one core (``torch`` and OpenCV set to one thread), so the figure is
crops per second *per core*: multiply by the DataLoader workers a machine can spare.

Also timed: the pack read followed by a resize (a pack of ``arcface112`` crops feeding
a 64-px model) and the normalisation to the float tensor the model takes.

The images are synthetic identities (``mfrkit.synthetic.identities``: 176x176
JPEG captures, like a web face dataset's crops); they are built once in ``--work``.

    python benchmarks/train_io.py [--images 800] [--work /tmp/mfrkit-train-io] [--repeats 3]

Timings taken while other jobs share the machine vary by 2-3x: rerun on an idle one.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path


def _rate(fn, n: int, repeats: int) -> float:
    best = float("inf")
    fn(min(n, 16))  # warm: page cache, lazy imports, the shards mapped
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=800, help="Training images to time (synthetic identities, 8 captures each).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/mfrkit-train-io"), help="Folder for the images and the pack (reused).")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2
    import numpy as np
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    from mfrkit.synthetic.identities import build_synthetic_identities
    from mfrkit.landmarks.lookup import get_landmarks
    from mfrkit.model_input import ARCFACE_112_INPUT, ModelInput
    from mfrkit.models.dataset import PairedFaceDataset
    from mfrkit.packs import open_pack
    from mfrkit.packs.write import PackConfig, write_pack

    n_ids = max(4, (args.images + 7) // 8 + 2)
    ids = build_synthetic_identities(args.work / "identities", n_identities=n_ids, captures=8, test_fraction=2 / n_ids, seed=0)
    manifest = ids.train
    faces = get_landmarks(manifest, "mediapipe")
    write_pack(manifest, args.work / "pack", PackConfig(align="arcface112"))
    pack = open_pack(args.work / "pack")
    n = min(args.images, len(manifest))

    # The pack's crops as insightface RecordIO (JPEG quality 95, as mxnet's pack_img), grouped by identity.
    from mfrkit.data import recordio as rio
    from mfrkit.data.imageio import encode_image
    from mfrkit.data.scan import scan_dataset

    ok = pack.manifest.table[pack.manifest.table["crop_status"] == "ok"].sort_values("identity", kind="stable")
    labels = {name: i for i, name in enumerate(sorted(ok["identity"].unique()))}
    rec_dir = args.work / "recordio"
    if not (rec_dir / "train.rec").is_file():
        rio.write_insightface(rec_dir, ((labels[i], encode_image(pack.crop(int(r), "arcface112"))) for i, r in zip(ok["identity"], ok["pack_row"])))
    rec_manifest, _ = scan_dataset(rec_dir)
    rec_manifest.meta["root"] = str(rec_dir)
    records = PairedFaceDataset(rec_manifest, ARCFACE_112_INPUT, aligned=True, with_source=False)
    rec_paths = [str(rec_manifest.abspath(p)) for p in rec_manifest.table["path"]]

    def record_crops(k):
        from mfrkit.data.imageio import read_image_bytes

        for i in range(k):
            cv2.imdecode(np.frombuffer(read_image_bytes(rec_paths[i % len(rec_paths)]), np.uint8), cv2.IMREAD_COLOR)

    photos = PairedFaceDataset(manifest, ARCFACE_112_INPUT, landmarks=faces, with_source=False)
    packed = PairedFaceDataset(pack.manifest, ARCFACE_112_INPUT, pack=pack, with_source=False)
    small = ModelInput(input_size=(64, 64), align="arcface64")
    packed64 = PairedFaceDataset(pack.manifest, small, pack=pack, with_source=False)
    def jpeg_crops(k):
        for i in range(k):
            s = photos.samples[i]
            bgr = cv2.imdecode(np.fromfile(str(manifest.abspath(s.path)), np.uint8), cv2.IMREAD_COLOR)
            photos._crop(np.ascontiguousarray(bgr[..., ::-1]), s.landmarks, ARCFACE_112_INPUT)

    def dataset(ds):
        def run(k):
            for i in range(k):
                ds[i]
        return run

    def pack_crops(k):
        for i in range(k):
            pack.crop(packed.samples[i].row, "arcface112")

    rows = [
        ("JPEG: read + decode + align (cv2)", _rate(jpeg_crops, n, args.repeats)),
        ("JPEG: training dataset item (PIL decode, align, normalise)", _rate(dataset(photos), n, args.repeats)),
        ("pack: crop copy out of the mapped shard", _rate(pack_crops, n, args.repeats)),
        ("pack: training dataset item (copy, normalise)", _rate(dataset(packed), n, args.repeats)),
        ("pack 112 -> 64 px model: item (copy, resize, normalise)", _rate(dataset(packed64), n, args.repeats)),
        ("RecordIO: record pread + decode (cv2)", _rate(record_crops, n, args.repeats)),
        ("RecordIO: training dataset item (record, PIL decode, normalise)", _rate(dataset(records), min(n, len(records)), args.repeats)),
    ]
    print(f"# training input speed, crops/s on one core ({n} images, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; torch {torch.__version__}, OpenCV {cv2.__version__})")
    print("| path | crops/s per core |")
    print("|---|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")
    jpeg, item = rows[1][1], rows[3][1]
    print(f"\nRecordIO vs JPEG, training dataset item: {rows[6][1] / jpeg:.1f}x; train.rec {(rec_dir / 'train.rec').stat().st_size / 2**20:.1f} MiB "
          f"for {len(rec_manifest)} records ({(rec_dir / 'train.rec').stat().st_size / len(rec_manifest) / 1024:.1f} KiB each)")
    print(f"pack vs JPEG, training dataset item: {item / jpeg:.1f}x; pack size {pack.info['bytes'] / 2**20:.1f} MiB "
          f"for {len(pack)} crops ({pack.info['bytes'] / len(pack) / 1024:.1f} KiB each)")


if __name__ == "__main__":
    main()
