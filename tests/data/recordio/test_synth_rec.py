"""synth / partial --format rec, read back with the independent reference reader."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from mfrkit.jobs import ExecutorSpec
from mfrkit.data.manifest import read_manifest
from mfrkit.maskgen.partial_job import PartialConfig, make_partial
from mfrkit.maskgen.synth_job import SynthConfig, synthesize

from tests.support import recordio_reference as ref


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def folder_bytes(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name in ("train.rec", "train.idx", "property")}


def test_masked_recordio_is_read_by_an_independent_reader(rec_source, tmp_path):
    out = tmp_path / "masked"
    summary = synthesize(str(rec_source), out, SynthConfig(types="surgical"))
    src, got = ref.read_dataset(rec_source), ref.read_dataset(out)
    assert summary.outputs == len(src["images"]) == len(got["images"]) and not summary.failures
    assert [v[0] for v in got["images"].values()] == [v[0] for v in src["images"].values()]  # labels preserved
    assert got["property"] == src["property"] and got["ranges"] == src["ranges"]
    assert got["header0"][0] == 2 and got["header0"][1] == src["header0"][1]
    assert list(got["idx"])[-1 - len(got["ranges"])] == 0  # record 0 after the images, as face2rec2 writes it
    for key, (label, img, header) in got["images"].items():
        assert header[2] == key  # the header's id is its key
        before, after = pixels(src["images"][key][1]), pixels(img)
        diff = np.abs(after - before).sum(axis=2)
        # the mask on the lower face; the eyes only see JPEG re-encoding noise
        assert diff[:40].mean() < 8 and diff[75:].mean() > 5 * diff[:40].mean() + 20
    manifest = read_manifest(out)
    ok = manifest.table[manifest.table["status"] == "ok"]
    assert list(ok["path"]) == [f"train.rec#{k}" for k in got["images"]]
    assert list(ok["sha256"]) == [hashlib.sha256(v[1]).hexdigest() for v in got["images"].values()]
    assert (ok["landmark_backend"] == "template").all() and manifest.meta["recordio"]["num_classes"] == 2
    assert not (out / ".parts").exists() and not list(out.glob("*.jpg"))


def test_byte_identical_whatever_the_workers(rec_source, tmp_path):
    a = synthesize(str(rec_source), tmp_path / "a", SynthConfig(types="surgical,cloth"))
    b = synthesize(str(rec_source), tmp_path / "b", SynthConfig(types="surgical,cloth"), executor=ExecutorSpec(workers=2))
    assert a.outputs == b.outputs and folder_bytes(tmp_path / "a") == folder_bytes(tmp_path / "b")


def test_rerun_with_a_larger_limit_gives_the_same_file(rec_source, tmp_path):
    synthesize(str(rec_source), tmp_path / "grow", SynthConfig(types="surgical", limit=5))
    assert len(ref.read_dataset(tmp_path / "grow")["images"]) == 5
    grown = synthesize(str(rec_source), tmp_path / "grow", SynthConfig(types="surgical"))
    assert grown.resumed == 5
    synthesize(str(rec_source), tmp_path / "once", SynthConfig(types="surgical"))
    assert folder_bytes(tmp_path / "grow") == folder_bytes(tmp_path / "once")


def test_a_folder_source_gets_labels_in_identity_order(tmp_path, aligned_crops):
    from mfrkit.data.imageio import write_image

    root = tmp_path / "photos"
    for i, (label, img) in enumerate(aligned_crops):
        write_image(root / ["zed", "amy"][label] / f"{i:03d}.jpg", img)
    out = tmp_path / "rec"
    synthesize(str(root), out, SynthConfig(types="surgical", aligned=True, image_format="rec"))
    got = ref.read_dataset(out)
    assert [label for label, _, _ in got["images"].values()] == [0] * 6 + [1] * 6  # amy = 0, zed = 1 (sorted), grouped
    table = read_manifest(out).table
    assert dict(zip(table["identity"], table["label"])) == {"amy": 0, "zed": 1}


def test_refusals(rec_source, tmp_path):
    from mfrkit.errors import JobError

    with pytest.raises(JobError, match="save-occlusion"):
        synthesize(str(rec_source), tmp_path / "x", SynthConfig(save_occlusion=True))
    with pytest.raises(JobError, match="give the .bin"):
        synthesize(str(rec_source), tmp_path / "y", SynthConfig(image_format="bin"))


def test_partial_crops_as_recordio(rec_source, tmp_path):
    out = tmp_path / "partial"
    summary = make_partial(str(rec_source), out, PartialConfig(regions="nose,mouth", factors="0.3", template="arcface112"))
    got = ref.read_dataset(out)
    assert summary.outputs == len(got["images"]) == 2 * 12
    assert [label for label, _, _ in got["images"].values()] == [0] * 12 + [1] * 12
    assert got["property"] == (2, 112, 112)
