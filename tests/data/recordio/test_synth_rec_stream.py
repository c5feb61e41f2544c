"""synth --format rec on the streamed driver: a source whose identities are split is
regrouped in bounded memory (external sort) exactly as in memory."""

from __future__ import annotations

from mfrkit.data.imageio import encode_image
from mfrkit.data.manifest import read_manifest
from mfrkit.data.registry import resolve_source
from mfrkit.maskgen.synth_job import SynthConfig, synthesize

from tests.support import recordio_reference as ref
from .test_synth_rec import folder_bytes


def test_split_identities_are_regrouped_alike_streamed_and_in_memory(tmp_path, aligned_crops):
    folder = tmp_path / "interleaved"
    # labels 0, 1, 0, 1, ...: every identity split into runs of one
    ref.write_dataset(folder, [(i % 2, encode_image(img, ".jpg")) for i, (_, img) in enumerate(aligned_crops)], label_vector=True)
    streamed = synthesize(str(folder), tmp_path / "streamed", SynthConfig(types="surgical"))  # the scan's file, read by row group
    in_memory = synthesize(resolve_source(str(folder)), tmp_path / "memory", SynthConfig(types="surgical"))
    assert streamed.outputs == in_memory.outputs == len(aligned_crops)
    assert folder_bytes(tmp_path / "streamed") == folder_bytes(tmp_path / "memory")
    got = ref.read_dataset(tmp_path / "streamed")
    assert [label for label, _, _ in got["images"].values()] == [0] * 6 + [1] * 6
    table = read_manifest(tmp_path / "streamed").table
    # each identity's images in their source order: records 1, 3, 5, ... then 2, 4, 6, ...
    assert list(table["source_id"]) == [f"train.rec#{k}" for k in [*range(1, 13, 2), *range(2, 13, 2)]]
