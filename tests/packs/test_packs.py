"""Packs: crops identical to the bench's, an index that keeps the manifest, resumable
shards, refused foreign folders, and training that reads the same tensors from a pack
as from the photos."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from mfrkit.crops import CropRequest, make_crop
from mfrkit.data.manifest import Manifest, make_table, write_manifest
from mfrkit.errors import MfrkitError
from mfrkit.jobs import ExecutorSpec
from mfrkit.landmarks.lookup import get_landmarks
from mfrkit.packs import Pack, PackError, open_pack, serves
from mfrkit.packs.write import PackConfig, write_pack


@pytest.fixture()
def mixed_manifest(sample_manifest, tmp_path):
    """The demo sample plus, per photo, a 'masked' copy whose occluder hides the whole face
    from the detector (so it borrows its source's landmarks), one missing file and one
    corrupt row."""
    from mfrkit.data.imageio import read_image, write_image

    get_landmarks(sample_manifest, "mediapipe")
    root = tmp_path / "mix"
    rows = []
    for r in sample_manifest.table.to_dict("records"):
        src = sample_manifest.abspath(r["path"])
        rel = f"orig/{r['path']}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / rel)
        rows.append({**{k: r[k] for k in ("identity", "width", "height", "sha256")}, "image_id": rel, "path": rel, "variant": "unmasked", "status": "ok"})
        img = read_image(src).copy()
        img[40:] = 128  # nothing left to detect
        mrel = f"masked/{r['path']}"
        write_image(root / mrel, img)
        rows.append({"image_id": mrel, "path": mrel, "identity": r["identity"], "variant": "masked", "source_id": rel, "status": "ok",
                     "width": r["width"], "height": r["height"]})
    rows.append({"image_id": "gone.jpg", "path": "gone.jpg", "identity": "x", "variant": "unmasked", "status": "ok", "width": 250, "height": 250})
    rows.append({"image_id": "bad.jpg", "path": "bad.jpg", "identity": "x", "variant": "unmasked", "status": "corrupt"})
    manifest = Manifest(make_table(rows), meta={"name": "mix", "root": "."})
    write_manifest(manifest, root / "manifest.parquet")
    return manifest


def test_pack_crops_are_the_bench_crops_and_the_index_keeps_the_manifest(mixed_manifest, tmp_path):
    summary = write_pack(mixed_manifest, tmp_path / "pack", PackConfig(align="arcface112,dlib150", shard_size=5))
    pack = open_pack(tmp_path / "pack")
    assert summary.n_images == len(pack) == len(mixed_manifest) == 14
    assert summary.counts == {"ok": 12, "no_landmarks": 1, "corrupt": 1}
    assert summary.landmarks_from == {"own": 6, "source": 6}
    index = pack.index
    assert list(index["image_id"]) == list(mixed_manifest.table["image_id"])
    assert {"identity", "variant", "source_id", "pack_row", "crop_status", "landmarks_from"} <= set(index.columns)
    faces = get_landmarks(mixed_manifest, "mediapipe")
    for row in range(12):
        rec = index.iloc[row]
        lm_id = rec["image_id"] if rec["landmarks_from"] == "own" else rec["source_id"]
        for align, size in (("arcface112", (112, 112)), ("dlib150", (150, 150))):
            expected, status = make_crop(CropRequest(str(mixed_manifest.abspath(rec["path"])), faces[lm_id].landmarks), align, size)
            assert status == "ok" and np.array_equal(pack.crop(row, align), expected), (row, align)
    # A failed row holds zeros and says why.
    gone = int(index.index[index["image_id"] == "gone.jpg"][0])
    assert index.loc[gone, "crop_status"] == "no_landmarks" and not pack.crop(gone, "arcface112").any()
    # Ready crops (alignment none) need no landmarks: that row fails on the missing file.
    plain = write_pack(mixed_manifest, tmp_path / "plain", PackConfig(align="none", none_size=64))
    assert plain.counts == {"ok": 12, "missing": 1, "corrupt": 1} and open_pack(tmp_path / "plain").crop(0, "none").shape == (64, 64, 3)
    # The same ArcFace template at another size is served by resizing; another padding is not.
    assert pack.crop(0, "arcface64", (64, 64)).shape == (64, 64, 3)
    with pytest.raises(PackError, match="pack again with --align arcface112,dlib150,arcface160p30"):
        pack.crop(0, "arcface160p30")
    assert serves("arcface112", "arcface56") and not serves("arcface112", "arcface112p30") and not serves("dlib150", "arcface112")


def test_a_pack_resumes_shard_by_shard_and_refuses_other_folders(mixed_manifest, tmp_path):
    out = tmp_path / "pack"
    write_pack(mixed_manifest, out, PackConfig(shard_size=10))
    shard = out / "crops" / "arcface112" / "shard-00001.npy"
    before = shard.read_bytes()
    shard.unlink()
    again = write_pack(mixed_manifest, out, PackConfig(shard_size=10))
    assert (again.shards_written, again.shards_reused) == (1, 1) and shard.read_bytes() == before
    with pytest.raises(MfrkitError, match="other options"):
        write_pack(mixed_manifest, out, PackConfig(shard_size=7))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(MfrkitError, match="not a pack"):
        write_pack(mixed_manifest, tmp_path / "mine", PackConfig())
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(MfrkitError, match="unknown alignment"):
        write_pack(mixed_manifest, tmp_path / "p2", PackConfig(align="arcface112,nope"))


def test_an_unfinished_pack_is_not_read(mixed_manifest, tmp_path):
    write_pack(mixed_manifest, tmp_path / "pack", PackConfig())
    meta = tmp_path / "pack" / "pack.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "complete": False}))
    with pytest.raises(PackError, match="unfinished"):
        Pack(tmp_path / "pack")
    with pytest.raises(PackError, match="not a pack"):
        Pack(tmp_path)


def test_training_reads_the_same_tensors_from_a_pack_as_from_the_photos(mixed_manifest, tmp_path):
    import torch

    from mfrkit.model_input import ARCFACE_112_INPUT
    from mfrkit.models.dataset import PairedFaceDataset

    write_pack(mixed_manifest, tmp_path / "pack", PackConfig())
    pack = open_pack(tmp_path / "pack")
    from_photos = PairedFaceDataset(mixed_manifest, ARCFACE_112_INPUT, landmarks=get_landmarks(mixed_manifest, "mediapipe"))
    from_pack = PairedFaceDataset(pack.manifest, ARCFACE_112_INPUT, pack=pack)
    assert len(from_pack) == len(from_photos) == 12 and from_pack.classes == from_photos.classes
    assert from_pack.dropped == {"no_crop": 1} and from_photos.dropped == {"no_landmarks": 1}
    for i in range(len(from_pack)):
        a, b = from_pack[i], from_photos[i]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pack_cli_writes_and_reports(mixed_manifest, tmp_path):
    from mfrkit.cli import app

    result = CliRunner().invoke(app, ["pack", "--src", str(mixed_manifest.path), "--align", "arcface112", "-o", str(tmp_path / "p"), "--shard-size", "8"])
    assert result.exit_code == 0, result.output
    assert "14 images" in result.output and "12 ok" in result.output and "2 shard(s) written" in result.output


def test_the_bench_reads_a_pack_and_scores_exactly_as_from_the_photos(sample_manifest, tmp_path):
    from mfrkit.bench.benchmark import BenchConfig, run_benchmark
    from mfrkit.models.export import export_family
    from mfrkit.protocols.workflow import make_protocol_folder

    get_landmarks(sample_manifest, "mediapipe")
    make_protocol_folder(tmp_path / "proto", sample_manifest.path, spec="umr-ump", n_folds=1, allow_fewer=True)
    export_family("cosface", tmp_path / "models" / "tiny.onnx", options={"backbone": "iresnet18", "width": 4, "embedding_dim": 8})
    write_pack(sample_manifest, tmp_path / "pack", PackConfig(align="arcface112"))
    logs = []
    common = dict(models=[str(tmp_path / "models")], protocols=[str(tmp_path / "proto")], n_boot=0, plots=False, report=False,
                  cache_dir=None, executor=ExecutorSpec(workers=0))
    plain = run_benchmark(BenchConfig(out=tmp_path / "a", **common))
    packed = run_benchmark(BenchConfig(out=tmp_path / "b", packs=[str(tmp_path / "pack")], **common), log=logs.append)
    assert any("6 of 6 crops read from packs" in m for m in logs)
    a, b = plain.leaderboard.iloc[0], packed.leaderboard.iloc[0]
    assert a["auc"] == b["auc"] and a["eer"] == b["eer"]
