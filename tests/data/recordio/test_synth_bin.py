"""synth --src lfw.bin: a masked verification .bin (probe side masked, reference untouched)."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from PIL import Image

from mfrkit.data.imageio import encode_image, read_image
from mfrkit.data.manifest import read_manifest
from mfrkit.data.registry import resolve_source
from mfrkit.maskgen.synth_job import SynthConfig, synthesize


def load_bin_like_insightface(path):
    """insightface's verification.load_bin: pickle.load(f, encoding='bytes'), then imdecode each."""
    with open(path, "rb") as f:
        bins, issame = pickle.load(f, encoding="bytes")
    return bins, issame, [np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), np.int16) for b in bins]


@pytest.fixture
def lfw_bin(tmp_path, aligned_crops):
    bins = [encode_image(img, ".jpg") for _, img in aligned_crops]  # 12 images: 6 pairs
    issame = [True, False, True, False, True, True]
    path = tmp_path / "verification" / "lfw.bin"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps((bins, issame), protocol=4))
    return path


def test_masked_bin_keeps_the_reference_side(lfw_bin, tmp_path):
    source = resolve_source(str(lfw_bin))
    assert len(source) == 12 and list(source.table["side"][:2]) == ["reference", "probe"]
    assert read_image(source.abspath("lfw.bin#3")).shape == (112, 112, 3)  # read in place, nothing extracted
    out = tmp_path / "masked"
    summary = synthesize(str(lfw_bin), out, SynthConfig(types="surgical"))
    assert summary.outputs == 12 and not summary.failures
    src_bins, src_same, src_px = load_bin_like_insightface(lfw_bin)
    bins, issame, px = load_bin_like_insightface(out / "lfw.bin")
    assert issame == src_same and len(bins) == len(src_bins)
    for i in range(len(bins)):
        if i % 2 == 0:
            assert bins[i] == src_bins[i]  # the reference image, byte for byte
        else:
            diff = np.abs(px[i] - src_px[i]).sum(axis=2)
            assert diff[75:].mean() > 5 * diff[:40].mean() + 20  # masked lower face
    t = read_manifest(out).table.set_index("path")
    assert t.loc["lfw.bin#1", "variant"] == "masked" and t.loc["lfw.bin#0", "variant"] == "unmasked"
    assert t.loc["lfw.bin#1", "source_id"] == "lfw.bin#1"
    assert read_image(out / "lfw.bin#1").shape == (112, 112, 3)


def test_masked_bin_imports_as_a_protocol(lfw_bin, tmp_path):
    from mfrkit.protocols import import_insightface_bin

    synthesize(str(lfw_bin), tmp_path / "masked", SynthConfig(types="surgical"))
    protocol, _ = import_insightface_bin(tmp_path / "masked" / "lfw.bin", tmp_path / "images", variant="masked", n_folds=2)
    assert len(protocol.pairs) == 6 and list(protocol.pairs["label"]) == [1, 0, 1, 0, 1, 1]


def test_bin_output_refusals(lfw_bin, tmp_path):
    from mfrkit.errors import JobError

    with pytest.raises(JobError, match="one probe image per pair"):
        synthesize(str(lfw_bin), tmp_path / "a", SynthConfig(types="all"))
    with pytest.raises(JobError, match="identity"):
        synthesize(str(lfw_bin), tmp_path / "b", SynthConfig(image_format="rec"))


def test_bins_become_protocols_in_place(lfw_bin, tmp_path):
    from mfrkit.protocols import load_protocol
    from mfrkit.protocols.workflow import import_protocol_folder

    plain, _ = import_protocol_folder(lfw_bin, tmp_path / "p-lfw", "insightface-bin", n_folds=2)
    assert plain.info["spec"] == "umr-ump" and len(plain.pairs) == 6
    synthesize(str(lfw_bin), tmp_path / "masked", SynthConfig(types="surgical"))
    masked, _ = import_protocol_folder(tmp_path / "masked" / "lfw.bin", tmp_path / "p-mlfw", "insightface-bin", n_folds=2)
    assert masked.info["spec"] == "umr-mp"  # the masked copy's manifest: reference unmasked, probe masked
    loaded = load_protocol(tmp_path / "p-mlfw")
    assert list(loaded.pairs["right_id"])[:2] == ["lfw.bin#1", "lfw.bin#3"]
    assert read_image(loaded.abspath("probe", "lfw.bin#1")).shape == (112, 112, 3)
    assert not (tmp_path / "images").exists()


def test_recordio_scan_offers_the_bins_beside_it(rec_source, lfw_bin):
    import shutil

    from mfrkit.data.scan import scan_dataset

    shutil.copy(lfw_bin, rec_source / "lfw.bin")
    manifest, report = scan_dataset(rec_source)
    assert manifest.meta["recordio"]["verification_bins"] == ["lfw.bin"]
    assert any("mfrkit protocol import" in w and "lfw.bin" in w for w in report.warnings)
