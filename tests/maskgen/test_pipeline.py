"""The synth and partial jobs end to end: determinism across workers, resume, failures,
multi-face images, aligned inputs, the outputs' manifest, card, failures and sheet."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pandas as pd
import pytest
from skimage import data

from mfrkit.align import align_face
from mfrkit.data.imageio import encode_image, read_image
from mfrkit.data.manifest import read_manifest, write_manifest
from mfrkit.data.sample import build_sample
from mfrkit.data.scan import scan_dataset
from mfrkit.maskgen import PartialConfig, SynthConfig, make_partial, synthesize
from mfrkit.maskgen.partial import GREY, partial_box
from mfrkit.jobs import ExecutorSpec, JobError
from mfrkit.maskgen.synth_job import SynthJob


def _files(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in (".jpg", ".png")}


def _scan(root, name):
    manifest, _ = scan_dataset(root, layout="imagefolder", name=name)
    manifest.meta["root"] = "."
    write_manifest(manifest, root / "manifest.parquet")
    return read_manifest(root)


@pytest.fixture(scope="module")
def source(tmp_path_factory, photos, crops):
    """4 LFW-style captures, plus a corrupt file, a photo without a face and one with two."""
    root = tmp_path_factory.mktemp("src")
    build_sample(root, captures=2, seed=0)
    odd = root / "odd"
    odd.mkdir()
    (odd / "corrupt.jpg").write_bytes(encode_image(photos["grace_hopper"], ".jpg")[:3000])
    (odd / "coffee.jpg").write_bytes(encode_image(cv2.resize(data.coffee(), (250, 250)), ".jpg"))
    pair = np.hstack([crops["eileen_collins"], crops["grace_hopper"]])
    (odd / "pair.jpg").write_bytes(encode_image(pair, ".jpg"))
    return _scan(root, "src")


@pytest.fixture(scope="module")
def synth_one(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    summary = synthesize(source, out, SynthConfig(seed=3))
    return out, summary


def test_outputs_manifest_and_failures(synth_one, source):
    out, summary = synth_one
    m = read_manifest(out)
    assert m.meta["root"] == "." and m.meta["kind"] == "synth"
    assert m.meta["source"]["fingerprint"] == source.fingerprint()
    t = m.table.set_index("source_id")
    assert summary.outputs == 5 and summary.failures == {"corrupt": 1, "no_face": 1}
    assert t.loc["odd/coffee.jpg", "status"] == "no_face" and t.loc["odd/corrupt.jpg", "status"] == "corrupt"
    ok = m.ok()
    assert (ok["variant"] == "masked").all() and ok["quality_ok"].all()
    for _, row in ok.iterrows():
        img = read_image(out / row["path"])
        assert (img.shape[1], img.shape[0]) == (row["width"], row["height"])
        assert hashlib.sha256((out / row["path"]).read_bytes()).hexdigest() == row["sha256"]
        params = json.loads(row["mask_params"])
        assert params["mask_type"] == row["mask_type"] and params["coverage"] == row["coverage"]
    # The two-face photo: the primary face is masked and the count recorded.
    assert t.loc["odd/pair.jpg", "n_faces"] == 2 and t.loc["odd/pair.jpg", "status"] == "ok"
    failures = pd.read_csv(out / "failures.csv")
    assert set(failures["source_id"]) == {"odd/coffee.jpg", "odd/corrupt.jpg"}
    card = (out / "DATA_CARD.md").read_text()
    assert "no_face: 1" in card and "corrupt: 1" in card and "quality" in card
    sheet = read_image(out / "contact_sheet.png")
    assert sheet.shape[0] > 100 and not (out / ".journal").exists()


def test_same_seed_same_bytes_with_two_workers(synth_one, source, tmp_path):
    out, _ = synth_one
    synthesize(source, tmp_path / "two", SynthConfig(seed=3), executor=ExecutorSpec(workers=2))
    assert _files(tmp_path / "two") == _files(out)
    a, b = read_manifest(out).table, read_manifest(tmp_path / "two").table
    assert read_manifest(out).fingerprint() == read_manifest(tmp_path / "two").fingerprint()
    pd.testing.assert_frame_equal(a.drop(columns=["job_item"]), b.drop(columns=["job_item"]))


def test_resume_after_an_interruption(synth_one, source, tmp_path, monkeypatch):
    out, _ = synth_one
    target = tmp_path / "resumed"
    calls = {"n": 0}
    real = SynthJob.run_item

    def flaky(self, item, state):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, item, state)

    monkeypatch.setattr(SynthJob, "chunk_size", 1)
    monkeypatch.setattr(SynthJob, "run_item", flaky)
    with pytest.raises(KeyboardInterrupt):
        synthesize(source, target, SynthConfig(seed=3))
    assert not (target / "manifest.parquet").exists() and (target / ".journal").exists()
    assert not [p for p in target.rglob("*") if ".tmp" in p.name]  # nothing half-written
    monkeypatch.setattr(SynthJob, "run_item", real)
    summary = synthesize(source, target, SynthConfig(seed=3))
    assert summary.resumed == 3 and summary.processed == 3
    assert _files(target) == _files(out)
    assert read_manifest(target).fingerprint() == read_manifest(out).fingerprint()
    # A finished job run again does nothing; other options are refused.
    again = synthesize(source, target, SynthConfig(seed=3))
    assert again.processed == 0 and again.outputs == summary.outputs
    with pytest.raises(JobError, match="other options"):
        synthesize(source, target, SynthConfig(seed=4))


def test_all_types_mix_and_copying_faceless_images(source, tmp_path):
    out = tmp_path / "all"
    summary = synthesize(source, out, SynthConfig(types="all", mix=True, renderer="template", limit=2))
    t = read_manifest(out).ok()
    assert summary.outputs == 2 * 6
    masked = t[t["variant"] == "masked"]
    for _, row in masked.iterrows():
        assert row["path"].endswith(f"_{row['mask_type']}.jpg")
    assert sorted(masked["mask_type"].unique()) == ["cloth", "gas", "kn95", "n95", "surgical"]
    unmasked = t[t["variant"] == "unmasked"]
    for _, row in unmasked.iterrows():
        assert (out / row["path"]).read_bytes() == (source.root / row["source_id"]).read_bytes()
    copied = synthesize(source, tmp_path / "copy", SynthConfig(on_no_face="copy"))
    t = read_manifest(tmp_path / "copy").table.set_index("source_id")
    assert t.loc["odd/coffee.jpg", "status"] == "ok" and t.loc["odd/coffee.jpg", "variant"] == "unmasked"
    assert t.loc["odd/coffee.jpg", "fallback"] == "no_face" and copied.failures["no_face"] == 1


def test_aligned_inputs_use_the_template_landmarks(faces, tmp_path):
    root = tmp_path / "aligned"
    for name, (image, landmarks, _) in faces.items():
        crop = align_face(image, landmarks.points5, size=112).image
        (root / name).mkdir(parents=True)
        (root / name / "0001.png").write_bytes(encode_image(crop, ".png"))
    src = _scan(root, "aligned")
    for renderer in ("mesh", "template"):
        out = tmp_path / renderer
        summary = synthesize(src, out, SynthConfig(aligned="arcface112", renderer=renderer, coverage="proper"))
        t = read_manifest(out).table
        assert summary.outputs == 2 and (t["landmark_backend"] == "template").all() and t["quality_ok"].all()
        for p in t["path"]:
            img = read_image(out / p)
            assert img.shape == (112, 112, 3)
            # The mask sits on the lower face: the top third is untouched.
            src_img = read_image(root / p)
            assert np.array_equal(img[:40], src_img[:40]) and not np.array_equal(img[70:], src_img[70:])
    assert not list(root.glob("landmarks.*"))  # nothing was detected


def test_partial_job(source, tmp_path):
    out = tmp_path / "partial"
    config = PartialConfig(regions="nose,leye", factors="0.1,0.5", placement="both")
    summary = make_partial(source, out, config)
    t = read_manifest(out).table
    ok = t[t["status"] == "ok"]
    assert summary.outputs == len(ok) == 5 * 2 * 2 * 2
    assert summary.failures == {"corrupt": 1, "no_face": 1}
    assert set(ok["region"]) == {"nose", "leye"} and set(ok["factor"]) == {0.1, 0.5} and set(ok["centered"]) == {True, False}
    row = ok[(ok["region"] == "nose") & (ok["factor"] == 0.1) & (~ok["centered"].astype(bool))].iloc[0]
    assert row["path"] == f"nose/factor_0.1/{row['source_id'][:-4]}.png"
    img = read_image(out / row["path"])
    assert img.shape == (160, 160, 3)
    x1, y1, x2, y2 = partial_box("nose", 0.1)
    outside = np.ones((160, 160), bool)
    outside[y1 : y2 + 1, x1 : x2 + 1] = False
    assert (img[outside] == GREY).all() and (img[~outside] != GREY).any()


def test_landmarks_from_a_file(synth_one, source, tmp_path):
    from mfrkit.landmarks.lookup import load_landmarks

    cached = load_landmarks(source, "mediapipe")  # made by the first job
    lines = [f"{image_id} " + " ".join(f"{v:.2f}" for v in face.landmarks.points68.ravel())
             for image_id, face in cached.items() if face.status == "ok" and not image_id.startswith("odd/")]
    path = tmp_path / "marks.txt"
    path.write_text("\n".join(lines) + "\n")
    summary = synthesize(source, tmp_path / "filed", SynthConfig(renderer="template", landmarks="file", landmark_file=str(path)))
    t = read_manifest(tmp_path / "filed").ok()
    assert summary.outputs == 4 and (t["landmark_backend"] == "file").all() and t["quality_ok"].all()
    with pytest.raises(JobError, match="dense mesh"):
        synthesize(source, tmp_path / "nope", SynthConfig(renderer="mesh", landmarks="file", landmark_file=str(path)))


def test_a_job_that_stopped_before_its_first_item_leaves_out_free(source, tmp_path):
    from mfrkit.errors import LandmarkError

    out = tmp_path / "claimed"
    with pytest.raises(JobError, match="--landmark-file"):
        synthesize(source, out, SynthConfig(renderer="template", landmarks="file"))
    assert not out.exists()  # refused before the folder was claimed
    with pytest.raises(LandmarkError, match="no such landmark file|not found"):
        make_partial(source, out, PartialConfig(landmarks="file", landmark_file=str(tmp_path / "missing.txt"), limit=1))
    # Nothing was made under those options, so corrected ones may take the folder over.
    summary = make_partial(source, out, PartialConfig(regions="nose", factors="0.3", landmarks="dlib", limit=1))
    assert summary.outputs == 1


def test_outputs_that_would_share_a_file_are_refused_before_any_work(tmp_path):
    root = tmp_path / "src"
    crop = np.full((112, 112, 3), 120, np.uint8)
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(encode_image(crop, ".jpg"))
    (root / "a" / "x.png").write_bytes(encode_image(crop, ".png"))
    src = _scan(root, "collide")
    out = tmp_path / "out"
    # Partial crops are always PNG: a/x.jpg and a/x.png would land on the same file.
    with pytest.raises(JobError, match="would both be written"):
        make_partial(src, out, PartialConfig(aligned=True, regions="nose", factors="0.3"))
    with pytest.raises(JobError, match="--format"):
        synthesize(src, out, SynthConfig(aligned=True, image_format="png"))
    assert not out.exists()
    # Without --format each keeps its extension, and a no-face copy may share its masked image's path.
    assert synthesize(src, out, SynthConfig(aligned=True, on_no_face="copy")).outputs == 2


def test_out_inside_the_source_folder_is_refused(source):
    before = _files(source.root)
    for out in (source.root, source.root / "masked"):
        with pytest.raises(JobError, match="inside the source dataset folder"):
            synthesize(source, out, SynthConfig())
        with pytest.raises(JobError, match="inside the source dataset folder"):
            make_partial(source, out, PartialConfig())
    assert _files(source.root) == before and not (source.root / "masked").exists()
