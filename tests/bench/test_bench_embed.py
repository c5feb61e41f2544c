"""Pipeline, alignment, extraction with failures to acquire, TTA and the embedding cache."""

from __future__ import annotations

import numpy as np
import pytest
from tests.support.tiny_onnx import ARCFACE_META, make_model

from mfrkit import model_input
from mfrkit.align import ARCFACE_112
from mfrkit import crops as P
from mfrkit.bench.embed import embedding_cache as C
from mfrkit.bench.embed.pipeline import ImageRef, embed_images, l2_normalise
from mfrkit.onnx_model import OnnxModel
from mfrkit.data.imageio import write_image
from mfrkit.errors import ModelError
from mfrkit.jobs import ExecutorSpec
from mfrkit.landmarks.base import FaceResult, Landmarks
from mfrkit.model_input import parse_model_input


def refs_of(manifest):
    t = manifest.table
    return [ImageRef(i, str(manifest.abspath(p)), s, st) for i, p, s, st in zip(t["image_id"], t["path"], t["sha256"], t["status"])]


def test_to_tensor_colour_flip_and_normalisation():
    crops = np.zeros((1, 2, 3, 3), np.uint8)
    crops[0, :, :, 0] = 255  # red
    crops[0, 0, 0] = (0, 0, 0)
    rgb = parse_model_input(ARCFACE_META)
    x = model_input.to_tensor(crops, rgb)
    assert x.shape == (1, 3, 2, 3) and x.dtype == np.float32
    assert x[0, 0, 1, 1] == pytest.approx(1.0) and x[0, 2, 1, 1] == pytest.approx(-1.0)
    bgr = parse_model_input({**ARCFACE_META, "mfrkit.color": "BGR", "mfrkit.mean": "10,20,30", "mfrkit.std": "1,2,3"})
    y = model_input.to_tensor(crops, bgr)
    assert y[0, 2, 1, 1] == pytest.approx((255 - 30) / 3)  # red is the last channel in BGR
    assert y[0, 0, 1, 1] == pytest.approx((0 - 10) / 1)
    f = model_input.to_tensor(crops, rgb, flip=True)
    assert f[0, 0, 0, 2] == pytest.approx(-1.0) and f[0, 0, 0, 0] == pytest.approx(1.0)  # the black pixel moved right


def test_pipeline_status_ok_is_the_manifests():
    from mfrkit.data.manifest import STATUS_OK

    assert P.STATUS_OK == STATUS_OK


def test_make_crop_failures(tmp_path):
    write_image(tmp_path / "a.png", np.full((20, 30, 3), 100, np.uint8))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    crop, st = P.make_crop(P.CropRequest(str(tmp_path / "a.png")), "none", (16, 16))
    assert st == "ok" and crop.shape == (16, 16, 3)
    assert P.make_crop(P.CropRequest(str(tmp_path / "nope.png")), "none", (16, 16)) == (None, "missing")
    assert P.make_crop(P.CropRequest(str(tmp_path / "bad.jpg")), "none", (16, 16))[1] == "corrupt"
    assert P.make_crop(P.CropRequest(str(tmp_path / "a.png")), "arcface112", (16, 16))[1] == P.ALIGN_FAILED  # no landmarks
    degenerate = Landmarks(points5=np.zeros((5, 2), np.float32), points68=None, bbox=np.zeros(4, np.float32))
    assert P.make_crop(P.CropRequest(str(tmp_path / "a.png"), degenerate), "arcface112", (16, 16))[1] == P.ALIGN_FAILED


def test_arcface_alignment_puts_landmarks_on_the_template(tmp_path):
    # Dots drawn at known points of a photo-sized image land on the template after alignment.
    img = np.zeros((200, 180, 3), np.uint8)
    pts = ARCFACE_112 * 1.4 + [30, 20]
    for x, y in pts:
        img[int(round(y)) - 1 : int(round(y)) + 2, int(round(x)) - 1 : int(round(x)) + 2] = 255
    write_image(tmp_path / "face.png", img)
    lm = Landmarks(points5=pts.astype(np.float32), points68=None, bbox=np.array([0, 0, 180, 200], np.float32))
    crop, st = P.make_crop(P.CropRequest(str(tmp_path / "face.png"), lm), "arcface112", (112, 112))
    assert st == "ok"
    for x, y in ARCFACE_112:
        assert crop[int(round(y)), int(round(x))].max() > 100



def test_padded_arcface_crop_is_the_one_training_uses(tmp_path):
    # arcface160p30 (the attention family): the bench's crop is align_face(size=160, padding=0.3),
    # the crop mfrkit.models.dataset trains on.
    from mfrkit.align import align_face
    from mfrkit.alignments import align_crop

    img = np.random.default_rng(0).integers(0, 256, (200, 180, 3), dtype=np.uint8)
    write_image(tmp_path / "face.png", img)
    pts = (ARCFACE_112 * 1.2 + [20, 30]).astype(np.float32)
    lm = Landmarks(points5=pts, points68=None, bbox=np.array([0, 0, 180, 200], np.float32))
    crop, st = P.make_crop(P.CropRequest(str(tmp_path / "face.png"), lm), "arcface160p30", (160, 160))
    assert st == "ok"
    np.testing.assert_array_equal(crop, align_face(img, pts, size=160, padding=0.3).image)
    np.testing.assert_array_equal(crop, align_crop("arcface160p30", img, lm))

def test_workers_give_the_same_crops_as_in_process(dataset):
    jobs = [P.CropRequest(str(dataset.abspath(p))) for p in dataset.table["path"]]
    jobs.insert(3, P.CropRequest("/nonexistent.png"))
    serial = list(P.iter_crops(jobs, align="none", size=(16, 16), workers=0, chunk_size=4))
    parallel = list(P.iter_crops(jobs, align="none", size=(16, 16), workers=2, chunk_size=4, prefetch=2))
    assert [s for s, _, _ in serial] == [s for s, _, _ in parallel] == list(range(0, len(jobs), 4))
    for (_, a, sa), (_, b, sb) in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
        assert sa == sb
    assert serial[0][2][3] == "missing"


def test_embed_images_fta_reasons_never_dropped(tmp_path, dataset, tiny_model):
    model = OnnxModel(tiny_model)
    refs = refs_of(dataset)
    (tmp_path / "corrupt.png").write_bytes(b"garbage")
    refs += [
        ImageRef("gone", str(tmp_path / "gone.png"), None),
        ImageRef("corrupt", str(tmp_path / "corrupt.png"), None),
        ImageRef("scanfail", str(tmp_path / "x.png"), None, status="too_large"),
    ]
    emb = embed_images(model, refs, batch_size=4)
    assert emb.ids == [r.image_id for r in refs] and emb.vectors.shape == (len(refs), 8)
    assert emb.failures() == {"gone": "missing", "corrupt": "corrupt", "scanfail": "too_large"}
    ok = emb.ok
    np.testing.assert_allclose(np.linalg.norm(emb.vectors[ok], axis=1), 1.0, atol=1e-6)
    assert (emb.vectors[~ok] == 0).all()
    assert emb.computed == ok.sum() and emb.cached == 0


def test_embeddings_independent_of_batch_size_and_workers(dataset, tiny_model):
    model = OnnxModel(tiny_model)
    refs = refs_of(dataset)
    a = embed_images(model, refs, batch_size=1)
    b = embed_images(model, refs, batch_size=5)
    c = embed_images(model, refs, batch_size=64, executor=ExecutorSpec(workers=2))
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)
    np.testing.assert_allclose(a.vectors, c.vectors, atol=1e-5)


def test_flip_tta_is_the_normalised_sum(dataset, tiny_model):
    model = OnnxModel(tiny_model)
    refs = refs_of(dataset)[:3]
    emb = embed_images(model, refs, tta="flip")
    crops = np.stack([P.make_crop(P.CropRequest(r.path), "none", (16, 16))[0] for r in refs])
    raw = model.run(model_input.to_tensor(crops, model.spec)) + model.run(model_input.to_tensor(crops, model.spec, flip=True))
    np.testing.assert_allclose(emb.vectors, l2_normalise(raw)[0], atol=1e-6)
    plain = embed_images(model, refs)
    assert not np.allclose(plain.vectors, emb.vectors, atol=1e-3)
    with pytest.raises(ModelError, match="test-time augmentation"):
        embed_images(model, refs, tta="five-crop")


def test_landmark_statuses_become_fta(tmp_path, dataset):
    model = OnnxModel(make_model(tmp_path / "al.onnx", meta={**ARCFACE_META, "mfrkit.align": "arcface112"}))
    refs = refs_of(dataset)[:3]
    pts = (ARCFACE_112 * 24 / 112).astype(np.float32)
    lm = Landmarks(points5=pts, points68=None, bbox=np.array([0, 0, 24, 24], np.float32))
    refs = [
        ImageRef(refs[0].image_id, refs[0].path, refs[0].sha256, landmarks=FaceResult("ok", lm, 1)),
        ImageRef(refs[1].image_id, refs[1].path, refs[1].sha256, landmarks=FaceResult("no_face")),
        ImageRef(refs[2].image_id, refs[2].path, refs[2].sha256, landmarks=None),
    ]
    emb = embed_images(model, refs)
    assert emb.status.tolist() == ["ok", "no_face", "no_landmarks"]


def test_a_landmark_lookup_is_asked_per_chunk_and_gives_the_same_embeddings(tmp_path, dataset, monkeypatch):
    from mfrkit.bench.embed import pipeline as E

    model = OnnxModel(make_model(tmp_path / "al.onnx", meta={**ARCFACE_META, "mfrkit.align": "arcface112"}))
    base = refs_of(dataset)[:6]
    pts = (ARCFACE_112 * 24 / 112).astype(np.float32)
    faces = {r.image_id: FaceResult("ok", Landmarks(points5=pts + k, points68=None, bbox=np.array([0, 0, 24, 24], np.float32)), 1) for k, r in enumerate(base)}
    faces[base[4].image_id] = FaceResult("no_face")
    given = embed_images(model, [ImageRef(r.image_id, r.path, r.sha256, landmarks=faces[r.image_id]) for r in base], batch_size=2)
    asked = []

    def lookup(refs):
        asked.append(len(refs))
        return [faces.get(r.image_id) for r in refs]

    monkeypatch.setattr(E, "LOOKUP_BLOCK", 4)
    looked_up = embed_images(model, base, batch_size=2, landmark_lookup=lookup)
    assert looked_up.status.tolist() == given.status.tolist() and looked_up.status[4] == "no_face"
    np.testing.assert_array_equal(looked_up.vectors, given.vectors)
    # Keys in blocks of 4, then crops per pipeline chunk of 2 (the 5 images to embed): never all 6 at once.
    assert asked == [4, 2, 2, 2, 1]


def test_nan_outputs_are_fta_and_all_nan_is_an_error(tmp_path):
    imgs = []
    for name, value in (("dark", 20), ("bright", 230), ("dark2", 10)):
        write_image(tmp_path / f"{name}.png", np.full((16, 16, 3), value, np.uint8))
        imgs.append(ImageRef(name, str(tmp_path / f"{name}.png")))
    partial = OnnxModel(make_model(tmp_path / "dark.onnx", nan="dark"))
    emb = embed_images(partial, imgs, batch_size=2)
    assert emb.status.tolist() == ["non_finite_embedding", "ok", "non_finite_embedding"]
    broken = OnnxModel(make_model(tmp_path / "nan.onnx", nan=True))
    with pytest.raises(ModelError, match="NaN, inf or zero embeddings for all 3"):
        embed_images(broken, imgs)


# --- cache -----------------------------------------------------------------------------------------


def test_cache_reuse_and_key(tmp_path, dataset, tiny_model):
    model = OnnxModel(tiny_model)
    refs = refs_of(dataset)
    first = embed_images(model, refs, cache_dir=tmp_path / "cache", batch_size=4)
    again = embed_images(model, refs[::-1], cache_dir=tmp_path / "cache")
    assert first.computed == len(refs) and again.cached == len(refs) and again.computed == 0
    np.testing.assert_array_equal(again.vectors[::-1], first.vectors)
    flipped = embed_images(model, refs[:2], cache_dir=tmp_path / "cache", tta="flip")
    assert flipped.cached == 0  # another preprocessing, another key
    other = OnnxModel(make_model(tmp_path / "other.onnx", seed=9))
    assert embed_images(other, refs[:2], cache_dir=tmp_path / "cache").cached == 0


def test_cache_survives_an_interrupted_part(tmp_path):
    root = tmp_path / "c"
    with C.EmbeddingCache(root, "m" * 64, "k", flush_every=2) as cache:
        cache.put(["a", "b", "c"], np.eye(3, dtype=np.float32))  # one part of 3 written
        cache.put(["d"], np.ones((1, 3), np.float32) / np.sqrt(3))  # flushed on exit
    parts = sorted(root.rglob("part-*.keys.npy"))
    assert len(parts) == 2
    second = next(p for p in parts if "d" in np.load(p).tolist())
    second.unlink()  # as if killed between the two files of the second part
    reopened = C.EmbeddingCache(root, "m" * 64, "k")
    found, vec = reopened.get(["a", "c", "d", "zzz"])
    assert found.tolist() == [True, True, False, False]
    np.testing.assert_array_equal(vec[1], [0, 0, 1])


def test_item_key_depends_on_landmarks():
    lm1 = Landmarks(points5=np.zeros((5, 2), np.float32), points68=None, bbox=np.zeros(4, np.float32))
    lm2 = Landmarks(points5=np.ones((5, 2), np.float32), points68=None, bbox=np.zeros(4, np.float32))
    assert C.item_key("abc") == "abc"
    assert C.item_key("abc", lm1) != C.item_key("abc", lm2)
    k1 = C.preprocessing_key({"a": 1}, tta=None, landmark_backend=None)
    assert k1 != C.preprocessing_key({"a": 1}, tta="flip", landmark_backend=None)
