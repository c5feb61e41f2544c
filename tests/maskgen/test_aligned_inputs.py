"""Aligned crops as first-class inputs: ``synth --aligned TEMPLATE`` for every crop
template, ``--landmarks template`` by default there, ``--redetect`` (mediapipe on the
crop), and a layout that says its images are aligned."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mfrkit.alignments import align_crop, crop_template
from mfrkit.data.imageio import read_image, write_image
from mfrkit.data.manifest import read_manifest
from mfrkit.jobs import JobError
from mfrkit.maskgen import SynthConfig, check_coverage, synthesize
from mfrkit.maskgen.dataset_job import ALIGNED_META, job_backend


def _crops(root, photos, faces_of, template: str, copies: int = 2):
    """A folder of ``template`` crops of the real photos (identity folders)."""
    for name, photo in photos.items():
        crop = align_crop(template, photo, faces_of[name])
        for k in range(copies):
            write_image(root / name / f"{name}_{k:04d}.png", np.ascontiguousarray(np.roll(crop, k, axis=1)) if k else crop)
    return root


@pytest.mark.parametrize("template", ["arcface112x96", "mfr2", "arcface160p30"])
def test_every_template_masks_its_crops_without_detecting(tmp_path, photos, faces_of, template):
    src = _crops(tmp_path / "src", photos, faces_of, template)
    summary = synthesize(str(src), tmp_path / "out", SynthConfig(types="surgical", aligned=template, seed=3))
    made = read_manifest(summary.manifest)
    ok = made.ok()
    assert len(ok) == 4 and set(ok["landmark_backend"]) == {"template"}
    assert made.meta[ALIGNED_META] == template and made.meta["params"]["aligned_template"] == template
    assert not (src / "landmarks.mediapipe").exists() and not any(tmp_path.rglob("landmarks.*"))  # nothing detected or stored
    h, w = crop_template(template).crop_size
    for row in ok.to_dict("records"):
        image = read_image(summary.out / row["path"])
        assert image.shape[:2] == (h, w)
        assert json.loads(row["mask_params"])["visible"] and bool(row["quality_ok"])


def test_redetect_runs_the_mesh_on_each_crop(tmp_path, photos, faces_of):
    src = _crops(tmp_path / "src", photos, faces_of, "arcface112", copies=1)
    summary = synthesize(str(src), tmp_path / "out", SynthConfig(types="kn95", aligned="arcface112", redetect=True, seed=1))
    ok = read_manifest(summary.manifest).ok()
    assert len(ok) == 2 and set(ok["landmark_backend"]) == {"mediapipe"}
    stores = list((tmp_path / "src").parent.rglob("landmarks.mediapipe"))
    assert stores, "detected landmarks are cached beside the source's manifest"


def test_options_that_cannot_work_are_refused_before_any_work(tmp_path):
    with pytest.raises(JobError, match="--landmarks template needs aligned inputs"):
        job_backend(None, "template", None, "mesh")
    with pytest.raises(JobError, match="--redetect"):
        job_backend(None, None, None, "mesh", redetect=True)
    with pytest.raises(JobError, match="cannot be combined"):
        job_backend("arcface112", "dlib", None, "template", redetect=True)
    with pytest.raises(Exception, match="arcface112x96"):
        job_backend("arcface113x7", None, None, "mesh")
    assert job_backend(True, None, None, "mesh").template == "arcface112"  # the flag's old meaning
    assert job_backend("mfr2", None, None, "mesh").options == {"template": "mfr2"}


def test_a_masked_copy_of_aligned_crops_is_aligned_too(tmp_path, photos, faces_of):
    """The manifest says which template its images follow, so a later job on it (a
    second mask type over the masked copy, a RecordIO layout of ArcFace crops) needs no
    --aligned and detects nothing."""
    src = _crops(tmp_path / "src", photos, faces_of, "arcface112", copies=1)
    first = synthesize(str(src), tmp_path / "one", SynthConfig(types="surgical", aligned="arcface112", seed=0))
    again = synthesize(first.manifest, tmp_path / "two", SynthConfig(types="cloth", seed=0, limit=1))
    ok = read_manifest(again.manifest).ok()
    assert set(ok["landmark_backend"]) == {"template"} and len(ok) == 1
    image = read_image(again.out / ok["path"].iat[0])
    from mfrkit.landmarks.template import template_landmarks

    occlusion = np.abs(image.astype(int) - read_image(first.out / ok["source_id"].iat[0]).astype(int)).sum(-1) > 0
    assert check_coverage(occlusion, template_landmarks("arcface112", 112, 112), "proper").ok
