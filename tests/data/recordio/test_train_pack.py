"""Training and packing read RecordIO records in place (no extraction, no detection)."""

from __future__ import annotations

import numpy as np

from mfrkit.data.imageio import decode_image
from mfrkit.data.registry import resolve_source
from mfrkit.jobs import ExecutorSpec
from mfrkit.packs import open_pack
from mfrkit.packs.write import PackConfig, write_pack

from tests.support import recordio_reference as ref


def test_pack_from_recordio_uses_the_template(rec_source, tmp_path):
    summary = write_pack(str(rec_source), tmp_path / "pack", PackConfig(align="arcface112", shard_size=5))
    assert summary.counts == {"ok": 12}
    pack = open_pack(tmp_path / "pack")
    source = ref.read_dataset(rec_source)["images"]
    manifest = resolve_source(str(rec_source))
    assert not list(rec_source.glob("landmarks.*")) and not list((manifest.path.parent).glob("landmarks.*"))  # nothing detected
    first = decode_image(source[1][1]).astype(np.int16)
    got = pack.crop(pack.row("train.rec#1"), "arcface112").astype(np.int16)
    assert np.abs(got - first).mean() < 2  # the template warp of an aligned crop is (nearly) the crop itself


def test_train_on_recordio(rec_source, tmp_path):
    from mfrkit.models.train import TrainConfig, train

    cfg = TrainConfig(batch_size=6, lr=0.02, workers=0, log_every=1, checkpoint_every=2, epochs=1)
    result = train("cosface", str(rec_source), tmp_path / "run", options={"backbone": "iresnet18", "width": 4, "embedding_dim": 16},
                   config=cfg, max_steps=2)
    assert (tmp_path / "run" / "checkpoint.pt").is_file() and result is not None
    assert not list(rec_source.parent.glob("**/landmarks.*"))


def test_pack_format_rec_writes_insightface_recordio(tmp_path, aligned_crops):
    from mfrkit.data.imageio import write_image

    root = tmp_path / "photos"
    for i, (label, img) in enumerate(aligned_crops):
        write_image(root / ["zed", "amy"][label] / f"{i:03d}.png", img)
    a = write_pack(str(root), tmp_path / "a", PackConfig(align="none", output_format="rec", shard_size=5))
    write_pack(str(root), tmp_path / "b", PackConfig(align="none", output_format="rec", shard_size=7), executor=ExecutorSpec(workers=2))
    got = ref.read_dataset(tmp_path / "a" / "recordio" / "none")
    assert a.counts == {"ok": 12} and len(got["images"]) == 12 and got["property"] == (2, 112, 112)
    assert [label for label, _, _ in got["images"].values()] == [0] * 6 + [1] * 6  # amy, zed: grouped, sorted
    first = decode_image(got["images"][1][1]).astype(np.int16)
    assert np.abs(first - aligned_crops[6][1].astype(np.int16)).mean() < 6  # amy's first photo (JPEG q95 chroma noise)
    for name in ("train.rec", "train.idx", "property"):  # same bytes whatever the shards and workers
        assert (tmp_path / "a" / "recordio" / "none" / name).read_bytes() == (tmp_path / "b" / "recordio" / "none" / name).read_bytes()
