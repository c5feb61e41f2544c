"""Training and packing read RecordIO records in place (no extraction, no detection)."""

from __future__ import annotations

import numpy as np

from mfrkit.data.imageio import decode_image
from mfrkit.data.registry import resolve_source
from mfrkit.packs import open_pack
from mfrkit.packs.write import PackConfig, write_pack

from . import reference as ref


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
