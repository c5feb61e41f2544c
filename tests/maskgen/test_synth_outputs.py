"""Issue 12's synth behaviours: the default output folder and its registration, proper
coverage by default, occlusion masks equal to the renderer's, and the NIST grid (every
cell, its parameters in the manifest, byte-identical across worker counts)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mfrkit.cli import app
from mfrkit.data.manifest import read_manifest
from mfrkit.data.registry import add_dataset, get_dataset, resolve_source
from mfrkit.data.sample import build_sample
from mfrkit.jobs import ExecutorSpec, JobError
from mfrkit.maskgen import PartialConfig, SynthConfig, create_renderer, make_partial, synthesize
from mfrkit.landmarks.template import template_landmarks
from mfrkit.maskgen.occlusion import decode_occlusion, encode_occlusion, occlusion_rel
from mfrkit.maskgen.styles import grid_cells
from mfrkit.maskgen.synth_job import SynthJob
from mfrkit.rng import item_rng


@pytest.fixture
def lfw(tmp_path):
    """A small dataset folder registered as ``lfw`` (aligned jobs: nothing to detect)."""
    root = tmp_path / "lfw"
    build_sample(root, captures=2, seed=0)
    add_dataset("lfw", root, layout="imagefolder")
    return root


def _hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.suffix in (".jpg", ".png")
            and p.name != "contact_sheet.png"}


def test_without_out_the_output_goes_to_mfrkit_home_and_is_registered(lfw, mfrkit_home):
    before = sorted((p.relative_to(lfw).as_posix(), p.read_bytes()) for p in lfw.rglob("*") if p.is_file())
    summary = synthesize("lfw", None, SynthConfig(types="surgical", aligned=True, limit=2))
    expected = mfrkit_home / "datasets" / "lfw-surgical"
    assert summary.out == expected and summary.registered == "lfw-surgical"
    assert (expected / "manifest.parquet").is_file()
    # Registering the made folder keeps it (the registry once took its own manifest for a stale scan).
    assert len(list(expected.rglob("*.jpg"))) == 2
    assert sorted((p.relative_to(lfw).as_posix(), p.read_bytes()) for p in lfw.rglob("*") if p.is_file()) == before  # the source is untouched
    made = resolve_source("lfw-surgical")
    assert made.meta["kind"] == "synth" and made.name == "lfw-surgical"
    assert len(made.ok()) == 2 and set(made.ok()["mask_type"]) == {"surgical"}
    assert get_dataset("lfw-surgical").root == str(expected.resolve())
    # Rerun: the same folder, resumed, registration unchanged.
    again = synthesize("lfw", None, SynthConfig(types="surgical", aligned=True, limit=2))
    assert again.out == expected and again.resumed == 2 and again.processed == 0


def test_default_names_for_paths_random_lists_grids_and_partial(lfw, mfrkit_home):
    assert synthesize(str(lfw), None, SynthConfig(aligned=True, limit=1)).registered == "lfw-masked"
    assert synthesize("lfw", None, SynthConfig(types="cloth,n95", aligned=True, limit=1)).registered == "lfw-cloth-n95"
    part = make_partial("lfw", None, PartialConfig(aligned=True, regions="nose", factors="0.3", limit=1))
    assert part.registered == "lfw-partial" and part.out == mfrkit_home / "datasets" / "lfw-partial"
    # An explicit --out is neither renamed nor registered.
    explicit = synthesize("lfw", mfrkit_home.parent / "mine", SynthConfig(aligned=True, limit=1))
    assert explicit.registered is None and explicit.out == mfrkit_home.parent / "mine"


def test_a_name_taken_by_a_users_dataset_is_refused_before_any_work(lfw, tmp_path, mfrkit_home):
    theirs = tmp_path / "theirs"
    build_sample(theirs, captures=1, seed=1)
    add_dataset("lfw-surgical", theirs, layout="imagefolder")
    with pytest.raises(JobError, match="registered to .*theirs.*mfrkit did not make"):
        synthesize("lfw", None, SynthConfig(types="surgical", aligned=True, limit=1))
    assert not (mfrkit_home / "datasets" / "lfw-surgical").exists()
    assert get_dataset("lfw-surgical").root == str(theirs.resolve())


def test_the_command_as_written_runs_without_out(lfw, mfrkit_home):
    result = CliRunner().invoke(app, ["synth", "--src", "lfw", "--mask", "surgical", "--aligned", "arcface112", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "registered as dataset 'lfw-surgical'" in result.output and "lfw-surgical" in result.output


def test_coverage_is_proper_unless_asked(lfw):
    assert SynthConfig().coverage == "proper"
    summary = synthesize("lfw", None, SynthConfig(aligned=True, seed=4))
    table = read_manifest(summary.manifest).ok()
    assert len(table) == 4 and set(table["coverage"]) == {"proper"}
    mixed = synthesize("lfw", lfw.parent / "mixed", SynthConfig(aligned=True, seed=4, coverage="random"))
    assert len(read_manifest(mixed.manifest).ok()) == 4  # random stays available


def test_occlusion_pngs_equal_the_renderers_mask(lfw, tmp_path):
    config = SynthConfig(types="surgical,cloth", aligned=True, seed=7, save_occlusion=True)
    summary = synthesize("lfw", tmp_path / "occ", config)
    table = read_manifest(summary.manifest).ok()
    assert len(table) == 4 and table["occlusion_path"].notna().all()
    renderer = create_renderer("mesh")
    job_spec = config.spec()
    source = resolve_source("lfw")
    for row in table.to_dict("records"):
        assert row["occlusion_path"] == occlusion_rel(row["path"])
        saved = decode_occlusion((summary.out / row["occlusion_path"]).read_bytes())
        # The renderer is a pure function of the image and the parameters: render again.
        from mfrkit.data.imageio import read_image

        image = read_image(source.abspath(source.table.set_index("image_id").loc[row["source_id"], "path"]))
        params = renderer.sample(item_rng(config.seed, row["source_id"], "mask"), template_landmarks("arcface112", image.shape[1], image.shape[0]), job_spec)
        expected = renderer.apply(image, params).occlusion
        assert saved.shape == expected.shape and saved.dtype == bool
        np.testing.assert_array_equal(saved, expected)
        assert 0.05 < saved.mean() < 0.6
    assert decode_occlusion(encode_occlusion(saved)).tolist() == saved.tolist()


def test_the_nist_grid_writes_every_cell_with_its_parameters(lfw, tmp_path):
    config = SynthConfig(types="grid:nist", aligned=True, seed=2, save_occlusion=True, limit=2)
    one = synthesize("lfw", tmp_path / "grid1", config)
    table = read_manifest(one.manifest).ok()
    cells = grid_cells("nist")
    assert len(table) == 2 * len(cells)
    for source_id, group in table.groupby("source_id"):
        assert sorted(group["grid_cell"]) == sorted(c.name for c in cells)
        for row in group.to_dict("records"):
            cell = {c.name: c for c in cells}[row["grid_cell"]]
            assert row["grid"] == "nist" and row["coverage"] == "proper"
            assert (row["mask_shape"], row["nose_coverage"], row["mask_color"]) == (cell.params["mask_shape"], cell.params["nose_coverage"], cell.params["mask_color"])
            params = json.loads(row["mask_params"])
            assert (params["outline"], params["nose"]) == (row["mask_shape"], row["nose_coverage"])
            assert row["path"].endswith(f"_{cell.name}.jpg")
    # Byte-identical whatever the worker count.
    two = synthesize("lfw", tmp_path / "grid2", config, executor=ExecutorSpec(workers=2))
    assert _hashes(one.out) == _hashes(two.out) and len(_hashes(one.out)) == 4 * len(cells)


def test_a_grid_refuses_options_it_fixes(lfw):
    with pytest.raises(JobError, match="fixes each cell"):
        SynthJob("lfw", None, SynthConfig(types="grid:nist", colors="black", aligned=True))
    with pytest.raises(Exception, match="nist"):
        SynthConfig(types="grid:unknown").spec()


def test_a_masked_copy_inherits_its_sources_landmarks(sample_manifest, tmp_path):
    from mfrkit.landmarks.lookup import detect_landmarks, open_store

    summary = synthesize(sample_manifest, tmp_path / "masked", SynthConfig(types="surgical,n95", seed=1, mix=True))
    made = read_manifest(summary.manifest)
    assert made.meta["landmarks"]["inherited"] is True
    source_faces = open_store(sample_manifest, "mediapipe").get(list(sample_manifest.table["image_id"]), mesh=False)
    store = open_store(made, "mediapipe")
    assert "inherited_from" in json.loads(store.options_key())
    ok = made.ok()
    assert set(ok["variant"]) == {"masked", "unmasked"}
    inherited = store.get(list(ok["image_id"]), mesh=False)
    assert set(inherited) == set(ok["image_id"])
    for row in ok.to_dict("records"):
        mine, theirs = inherited[row["image_id"]], source_faces[row["source_id"]]
        np.testing.assert_array_equal(mine.landmarks.points5, theirs.landmarks.points5)
        np.testing.assert_array_equal(mine.landmarks.points68, theirs.landmarks.points68)
        assert mine.n_faces == theirs.n_faces and mine.landmarks.mesh is None
    # The bench's path (reuse whatever is cached): nothing to detect, the inherited rows serve.
    assert detect_landmarks(made, "mediapipe").detected == 0
    # Detection asked for explicitly (mfrkit landmarks): on the masked pixels, replacing them.
    redetected = detect_landmarks(made, "mediapipe", backend_options={})
    assert redetected.detected == len(ok)
    assert "inherited_from" not in store.options_key()
    fresh = open_store(made, "mediapipe").get(list(ok["image_id"]), mesh=False)
    masked_ids = list(ok.loc[ok["variant"] == "masked", "image_id"])
    moved = [np.abs(fresh[i].landmarks.points5 - inherited[i].landmarks.points5).max() for i in masked_ids if fresh[i].status == "ok"]
    assert moved and max(moved) > 0  # the masked pixels give (slightly) different landmarks


def test_the_bench_uses_inherited_landmarks_unless_asked_to_redetect(sample_manifest, tmp_path):
    """A masked copy is benched on the landmarks it was drawn from; --redetect detects
    them on the masked pixels instead (what a deployed system would do)."""
    from tests.support.tiny_onnx import ARCFACE_META, make_model

    from mfrkit.bench.benchmark import BenchConfig, run_benchmark
    from mfrkit.landmarks.lookup import open_store
    from mfrkit.protocols.workflow import make_protocol_folder

    summary = synthesize(sample_manifest, tmp_path / "masked", SynthConfig(types="surgical", seed=2))
    made = read_manifest(summary.manifest)
    store = open_store(made, "mediapipe")
    proto = tmp_path / "proto"
    make_protocol_folder(proto, sample_manifest.path, summary.manifest, spec="umr-mp", n_folds=1, allow_fewer=True)
    model = make_model(tmp_path / "m.onnx", size=112, meta={**ARCFACE_META, "mfrkit.input_size": "112", "mfrkit.align": "arcface112"})
    cfg = dict(models=[str(model)], protocols=[str(proto)], out=tmp_path / "runs", n_boot=0, cache_dir=None, plots=False, report=False, executor=ExecutorSpec(workers=0))
    run_benchmark(BenchConfig(**cfg))
    assert "inherited_from" in json.loads(store.options_key())  # used as they were
    run_benchmark(BenchConfig(**cfg, redetect=True))
    assert "inherited_from" not in store.options_key()  # detected on the masked pixels


def test_contact_sheet_labels_tell_grid_cells_apart():
    """Every cell of a grid:nist run was labelled 'surgical proper' or 'kn95 proper': the
    shape and nose level it differs by were not shown; nor were colour and texture."""
    from mfrkit.maskgen.synth_job import sheet_label

    nan = float("nan")
    row = {"mask_type": "surgical", "mask_shape": "wide", "nose_coverage": "medium", "coverage": "proper", "mask_color": "red", "mask_texture": "nonwoven"}
    assert sheet_label(row) == "surgical wide nose:medium | red/nonwoven | proper"
    assert sheet_label({**row, "mask_type": "kn95", "mask_shape": "round", "nose_coverage": "high"}) == "kn95 round nose:high | red/nonwoven | proper"
    # the default run: type, look, coverage
    assert sheet_label({"mask_type": "cloth", "mask_shape": "natural", "nose_coverage": None, "coverage": "proper", "mask_color": "navy",
                        "mask_texture": "floral"}) == "cloth | navy/floral | proper"
    # --mix keeps unmasked rows (NaN in the mask columns)
    assert sheet_label({"mask_type": nan, "mask_shape": nan, "nose_coverage": nan, "coverage": nan, "variant": "unmasked"}) == "unmasked"
    # a long label is drawn smaller rather than into the next tile; a long id loses its start
    import cv2

    from mfrkit.maskgen.contact_sheet import fit_text, label_scale

    for text in ("cloth proper", "surgical wide nose:medium | light_blue/nonwoven | nose_exposed"):
        fitted, scale = fit_text(text, 250)
        assert cv2.getTextSize(fitted, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= 250 and scale <= 0.38
    assert label_scale("cloth proper", 154) == 0.38
    long_id = "some/very/deeply/nested/folder/of/an/identity/with/a/long/name/Aaron_Eckhart_0001_grid-wide-high-light_blue.jpg"
    fitted, _ = fit_text(long_id, 250, 0.33)
    assert fitted.startswith("...") and fitted.endswith("light_blue.jpg")


def test_the_contact_sheet_shows_each_output_beside_its_source(lfw, tmp_path):
    from mfrkit.data.imageio import read_image

    summary = synthesize("lfw", tmp_path / "sheet", SynthConfig(types="surgical", aligned="arcface112", seed=1))
    sheet = read_image(summary.contact_sheet)
    table = read_manifest(summary.manifest).ok()
    assert len(table) == 4
    # 4 pairs in a row: source and output side by side (128 px each, 6 px apart), a label band under them.
    assert sheet.shape[1] == 4 * (2 * 128 + 6) and sheet.shape[0] == 128 + 30
    for k in range(4):
        x = k * (2 * 128 + 6)
        left, right = sheet[:128, x : x + 128].astype(int), sheet[:128, x + 128 : x + 256].astype(int)
        # the two halves hold the same photo, masked on the right: equal above the mask, different below
        assert np.abs(left[:40] - right[:40]).mean() < 3 and np.abs(left[80:] - right[80:]).mean() > 5
        assert (sheet[128:, x : x + 256] < 128).any()  # a label was written
