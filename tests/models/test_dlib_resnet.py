"""dlib's face-recognition ResNet: the file parser, the chip, and the ONNX conversion
checked against dlib itself on the real photos."""

from __future__ import annotations

# dlib, its models and onnxruntime are pinned dependencies: a broken install fails here, never skips.
import dlib
import face_recognition_models
import numpy as np
import onnxruntime as ort
import pytest

from mfrkit.align import (
    dlib_chip,
    dlib_chip_template,
    dlib_pyramid_down,
    transform_points,
)
from mfrkit.alignments import dlib150_crop
from mfrkit.data.sample import source_photos
from mfrkit.errors import MfrkitError
from mfrkit.landmarks.base import five_from_68
from mfrkit.models import dlib_resnet as dr


@pytest.fixture(scope="session")
def model_bytes() -> bytes:
    return dr.default_model_path().read_bytes()


@pytest.fixture(scope="session")
def onnx_path(tmp_path_factory):
    """The conversion, done once per session (about 10 s)."""
    return dr.import_dlib(tmp_path_factory.mktemp("dlib") / "dlib_resnet.onnx")


@pytest.fixture(scope="session")
def session(onnx_path):
    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def faces():
    """Per photo: image, dlib's 68- and 5-point shapes of its best face."""
    det = dlib.get_frontal_face_detector()
    sp68 = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    sp5 = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    out = {}
    for name, image in source_photos().items():
        rects, scores, _ = det.run(image, 1, 0.0)
        assert len(rects) >= 1, name
        rect = rects[int(np.argmax(scores))]
        out[name] = (image, sp68(image, rect), sp5(image, rect))
    return out


@pytest.fixture(scope="session")
def recognizer():
    return dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())


def _points(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def _run(session, chips: np.ndarray) -> np.ndarray:
    meta = session.get_modelmeta().custom_metadata_map
    mean = np.array([float(v) for v in meta["mfrkit.mean"].split(",")], np.float32)
    std = np.array([float(v) for v in meta["mfrkit.std"].split(",")], np.float32)
    x = ((np.asarray(chips, np.float32) - mean) / std).transpose(0, 3, 1, 2)
    return session.run(None, {"input": np.ascontiguousarray(x)})[0]


# --- dlib's serialization primitives -------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, value",
    [
        (b"\x01\x96", 150),
        (b"\x81\x04", -4),
        (b"\x02\x80\x12", 4736),
        (b"\x00", 0),
    ],
)
def test_integer_encoding(raw, value):
    assert dr._Reader(raw, "t").integer("x") == value


def test_float_encoding():
    # 122.782 as the file stores it: mantissa 0xf59062, exponent -17.
    assert dr._Reader(b"\x03b\x90\xf5\x81\x11", "t").real("x") == pytest.approx(122.782, abs=1e-4)
    assert dr._Reader(b"\x01\x10\x81\x04", "t").real("x") == 1.0
    assert dr._Reader(b"\x01\x00\x02\x00\x7d", "t").real("x") == np.inf  # exponent 32000
    assert np.isnan(dr._Reader(b"\x01\x00\x02\x02\x7d", "t").real("x"))


def test_tensor_versions():
    dims = b"\x01\x01\x01\x01\x01\x01\x01\x02"  # (1, 1, 1, 2)
    raw_v2 = b"\x01\x02" + dims + np.array([1.5, -2.0], "<f4").tobytes()
    v1 = b"\x01\x01" + dims + b"\x01\x03\x81\x01" + b"\x81\x01\x01\x01"  # 3 * 2^-1, -1 * 2^1
    assert dr._Reader(raw_v2, "t").tensor("x").ravel().tolist() == [1.5, -2.0]
    assert dr._Reader(v1, "t").tensor("x").ravel().tolist() == [1.5, -2.0]


def test_reader_rejects_bad_control_byte():
    with pytest.raises(dr.DlibModelError, match="control byte 0x31"):
        dr._Reader(b"1", "t").integer("x")


# --- the parser on the real file and on damaged copies --------------------------------------------


def test_parse_real_file(model_bytes):
    net = dr.parse_dlib_network(model_bytes)
    assert net.input_size == 150
    assert net.avg_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    assert len(net.convs) == 29 and len(net.affines) == 29
    assert net.convs[0].weight.shape == (32, 3, 7, 7) and net.convs[0].padding == (0, 0)
    assert net.fc.shape == (128, 256)
    assert net.distance_threshold == pytest.approx(0.6)


@pytest.mark.parametrize("keep", [0, 1, 17, 300, 5_000_000, -1])
def test_truncated_file_is_a_clear_error(model_bytes, keep):
    data = model_bytes[: keep if keep >= 0 else len(model_bytes) - 1]
    with pytest.raises(dr.DlibModelError, match="truncated"):
        dr.parse_dlib_network(data)


def test_garbage_is_a_clear_error():
    rng = np.random.default_rng(0)
    with pytest.raises(dr.DlibModelError, match="not a valid dlib network"):
        dr.parse_dlib_network(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())


def test_wrong_layer_is_named(model_bytes):
    damaged = model_bytes.replace(b"relu_", b"relx_", 1)
    with pytest.raises(dr.DlibModelError, match="relx_"):
        dr.parse_dlib_network(damaged)


def test_trailing_bytes_are_refused(model_bytes):
    with pytest.raises(dr.DlibModelError, match="unexpected bytes"):
        dr.parse_dlib_network(model_bytes + b"\x00")


def test_missing_file(tmp_path):
    with pytest.raises(dr.DlibModelError, match="no such dlib model file"):
        dr.parse_dlib_network(tmp_path / "nope.dat")


def test_module_is_eval_only(model_bytes):
    model = dr.load_dlib_resnet(model_bytes)
    assert not model.training
    with pytest.raises(MfrkitError):
        model.train()


# --- the chip -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_points", [68, 5])
@pytest.mark.parametrize("size, padding", [(150, 0.25), (48, 0.1)])
def test_chip_matches_dlib(faces, n_points, size, padding):
    # (48, 0.1) cuts Grace Hopper's face from dlib's image pyramid.
    for image, shape68, shape5 in faces.values():
        shape = shape68 if n_points == 68 else shape5
        expected = dlib.get_face_chip(image, shape, size, padding)
        got = dlib_chip(image, _points(shape), size=size, padding=padding).image
        diff = np.abs(got.astype(int) - expected.astype(int))
        assert got.shape == (size, size, 3)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_chip_matrix_maps_landmarks_onto_the_template(faces):
    image, shape68, _ = faces["grace_hopper"]
    chip = dlib_chip(image, _points(shape68))
    template, index = dlib_chip_template("ibug68")
    in_chip = transform_points(chip.matrix, _points(shape68)[index])
    expected = (0.25 + template) / 1.5 * 150
    assert np.abs(in_chip - expected).mean() < 3.0  # a fit, not an interpolation


def test_chip_face_outside_image_is_black(faces):
    image, shape68, _ = faces["grace_hopper"]
    chip = dlib_chip(image, _points(shape68) + [5000, 0])
    assert chip.image.shape == (150, 150, 3) and chip.image.max() == 0


def test_chip_bad_input():
    image = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(MfrkitError, match="68 landmarks"):
        dlib_chip(image, np.zeros((5, 2)), order="ibug68")
    with pytest.raises(MfrkitError, match="unknown dlib chip template"):
        dlib_chip(image, np.zeros((7, 2)))
    with pytest.raises(MfrkitError, match="uint8"):
        dlib_chip(image.astype(np.float32), np.zeros((68, 2)))


def test_pyramid_down_against_brute_force():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (13, 16, 3), dtype=np.uint8)
    k = np.array([1, 4, 6, 4, 1])
    kernel = np.outer(k, k)
    expected = np.zeros((5, 6, 3), np.uint8)
    for r in range(5):
        for c in range(6):
            window = image[2 * r : 2 * r + 5, 2 * c : 2 * c + 5].astype(int)
            expected[r, c] = (window * kernel[..., None]).sum((0, 1)) // 256
    np.testing.assert_array_equal(dlib_pyramid_down(image), expected)


# --- the conversion against dlib ---------------------------------------------------------------------


def test_onnx_matches_dlib_on_the_same_chip(faces, recognizer, session):
    for image, shape68, shape5 in faces.values():
        for shape in (shape68, shape5):
            chip = dlib.get_face_chip(image, shape, 150, 0.25)
            expected = np.array(recognizer.compute_face_descriptor(chip))
            got = _run(session, chip[None])[0]
            assert np.abs(got - expected).max() < 1e-3


def test_mfrkit_pipeline_matches_dlib_end_to_end(faces, recognizer, session):
    # mfrkit's chip + the ONNX graph == dlib's compute_face_descriptor(image, shape).
    for image, shape68, _ in faces.values():
        expected = np.array(recognizer.compute_face_descriptor(image, shape68))
        got = _run(session, dlib_chip(image, _points(shape68)).image[None])[0]
        assert np.abs(got - expected).max() < 1e-3


def test_arcface5_chip_stays_close_to_dlib(faces, recognizer, session):
    # ArcFace-order 5 points (what every mfrkit backend has) on dlib's mean face.
    image, shape68, _ = faces["grace_hopper"]
    expected = np.array(recognizer.compute_face_descriptor(image, shape68))
    chip = dlib_chip(image, five_from_68(_points(shape68)), order="arcface5").image
    got = _run(session, chip[None])[0]
    assert np.linalg.norm(got - expected) < 0.2  # dlib's same-person threshold is 0.6


def test_identities_are_separated(faces, session):
    chips = np.stack([dlib_chip(img, _points(s68)).image for img, s68, _ in faces.values()])
    a, b = _run(session, chips)
    assert np.linalg.norm(a - b) > 0.6


def test_batch_size_independence(faces, session):
    chips = [dlib_chip(img, _points(s)).image for img, s68, s5 in faces.values() for s in (s68, s5)]
    batch = np.stack(chips)
    together = _run(session, batch)
    alone = np.concatenate([_run(session, c[None]) for c in batch])
    assert batch.shape[0] == 4
    assert np.abs(together - alone).max() < 1e-5


def test_metadata(session, onnx_path):
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["mfrkit.family"] == "dlib_resnet"
    assert meta["mfrkit.input_size"] == "150,150"
    assert meta["mfrkit.color"] == "RGB"
    assert meta["mfrkit.align"] == "dlib150"
    assert meta["mfrkit.embedding_dim"] == "128"
    assert meta["mfrkit.mean"] == "122.782,117.001,104.298"
    assert meta["mfrkit.std"] == "256,256,256"
    assert len(meta["mfrkit.source_sha256"]) == 64
    (inp,) = session.get_inputs()
    assert inp.name == "input" and inp.shape[1:] == [3, 150, 150] and isinstance(inp.shape[0], str)
    assert session.get_outputs()[0].name == "embedding"


def test_cli_import_dlib(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from mfrkit.cli import app

    calls = []

    def fake(out, model, progress=None):
        calls.append((out, model))
        return out

    monkeypatch.setattr(dr, "import_dlib", fake)
    result = CliRunner().invoke(app, ["models", "import-dlib", "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path / "m.onnx", None)]
    assert "m.onnx" in result.output


def test_import_dlib_progress_counts_its_steps(tmp_path, monkeypatch):
    """The progress bar counts every step of the conversion (read, parse, build, the
    export's steps), ends full, and says what comes next."""
    import contextlib

    from mfrkit.models import export

    bars = []

    @contextlib.contextmanager
    def bar(total, description):
        seen = []
        bars.append((total, description, seen))
        yield lambda n=1, status=None: seen.append((n, status))

    monkeypatch.setattr(export.torch.onnx, "export", _fail_export)  # the steps up to the export, no 10 s export
    with pytest.raises(MfrkitError, match="export failed"):
        dr.import_dlib(tmp_path / "m.onnx", progress=bar)
    (total, description, seen), = bars
    assert total == 3 + export.export_steps((1, 4)) == 8 and "import-dlib" in description
    assert [s for _, s in seen] == ["parsing the dlib network", "building the torch network",
                                    "exporting to ONNX (torch.export)"]
    assert not (tmp_path / "m.onnx").exists()


def _fail_export(*args, **kwargs):
    raise RuntimeError("no export in this test")


def test_write_onnx_steps_match_export_steps(tmp_path):
    """write_onnx calls its step once per counted step, the last one 'done'."""
    from torch import nn

    from mfrkit.model_input import ModelInput
    from mfrkit.models import export

    class Tiny(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    steps = []
    prep = ModelInput.from_metadata({"mfrkit.input_size": "8", "mfrkit.color": "RGB", "mfrkit.mean": "127.5",
                                     "mfrkit.std": "127.5", "mfrkit.align": "none"})
    export.write_onnx(Tiny(), tmp_path / "t.onnx", prep, {"family": "tiny"}, check_batches=(1, 3), step=steps.append)
    assert len(steps) == export.export_steps((1, 3)) and steps[-1] == "done"


def test_dlib150_crop_uses_68_points_when_present(faces):
    from mfrkit.landmarks.base import Landmarks

    image, shape68, _ = faces["grace_hopper"]
    p68 = _points(shape68).astype(np.float32)
    full = Landmarks(points5=five_from_68(p68), points68=p68, bbox=np.zeros(4, np.float32))
    five_only = Landmarks(points5=five_from_68(p68), points68=None, bbox=np.zeros(4, np.float32))
    np.testing.assert_array_equal(dlib150_crop(image, full), dlib.get_face_chip(image, shape68, 150, 0.25))
    np.testing.assert_array_equal(
        dlib150_crop(image, five_only), dlib_chip(image, five_from_68(p68), order="arcface5").image
    )
