"""mfrkit never deletes or overwrites files it did not write (the hostile-user findings):
foreign output folders are refused, links out of an output folder are never written
through, a folder in use by another job is refused, and the demo keeps its hands off
whatever it did not make."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import pytest

from mfrkit.data.imageio import encode_image
from mfrkit.jobs import FolderInUseError, JobError, OutputFolder, OutputFolderError, read_marker
from mfrkit.maskgen import PartialConfig, SynthConfig, make_partial, synthesize


def _tree(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _user_folder(path, n=5):
    path.mkdir(parents=True)
    for i in range(n):
        (path / f"note_{i}.txt").write_text(f"my notes {i}")
    (path / "manifest.parquet").write_bytes(b"my own manifest, not mfrkit's")
    return _tree(path)


@pytest.mark.parametrize("job", ["synth", "partial"])
def test_a_foreign_non_empty_out_is_refused_and_left_untouched(job, sample_manifest, tmp_path):
    out = tmp_path / "mine"
    before = _user_folder(out)
    with pytest.raises(OutputFolderError, match="not made by mfrkit"):
        if job == "synth":
            synthesize(sample_manifest, out, SynthConfig(aligned=True, limit=2))
        else:
            make_partial(sample_manifest, out, PartialConfig(aligned=True, regions="nose", factors="0.3", limit=2))
    assert _tree(out) == before


def test_out_that_holds_the_source_is_refused(sample_manifest):
    with pytest.raises(JobError, match="holds the source dataset"):
        synthesize(sample_manifest, sample_manifest.root.parent, SynthConfig(aligned=True, limit=1))


def test_a_link_inside_out_is_never_written_through(sample_manifest, tmp_path):
    out = tmp_path / "out"
    synthesize(sample_manifest, out, SynthConfig(aligned=True, limit=1))
    source_before = _tree(sample_manifest.root)
    # An identity folder of the output replaced by a link into the source dataset.
    identity = sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))[0]
    for f in identity.iterdir():
        f.unlink()
    identity.rmdir()
    identity.symlink_to(sample_manifest.root / identity.name, target_is_directory=True)
    with pytest.raises(OutputFolderError, match="symbolic link"):
        synthesize(sample_manifest, out, SynthConfig(aligned=True))  # a larger run: new outputs in that folder
    assert _tree(sample_manifest.root) == source_before


def test_out_itself_a_link_is_refused(sample_manifest, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    with pytest.raises(OutputFolderError, match="symbolic link"):
        synthesize(sample_manifest, tmp_path / "link", SynthConfig(aligned=True, limit=1))


def test_a_folder_in_use_by_another_job_is_refused(sample_manifest, tmp_path):
    out = tmp_path / "busy"
    holder = OutputFolder(out, kind="synth", fingerprint="another").claim()
    try:
        with pytest.raises(FolderInUseError, match=f"in use by PID {os.getpid()}"):
            synthesize(sample_manifest, out, SynthConfig(aligned=True, types="gas", limit=2))
    finally:
        holder.release()
    assert not (out / "manifest.parquet").exists()


def test_the_lock_is_held_across_processes_and_freed_when_the_holder_dies(tmp_path):
    out = tmp_path / "locked"
    code = textwrap.dedent(f"""
        import sys, time
        from mfrkit.jobs import OutputFolder
        OutputFolder({str(out)!r}, kind="synth", fingerprint="x").claim()
        print("held", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUseError, match=f"in use by PID {proc.pid} \\(synth"):
            OutputFolder(out, kind="synth", fingerprint="x").claim()
    finally:
        proc.kill()
        proc.wait()
    OutputFolder(out, kind="synth", fingerprint="x").claim().release()  # SIGKILL freed it


def test_another_job_in_our_own_folder_needs_replace_which_removes_only_its_files(sample_manifest, tmp_path):
    out = tmp_path / "own"
    first = synthesize(sample_manifest, out, SynthConfig(aligned=True, types="surgical", limit=2))
    (out / "README.txt").write_text("the user's note, added later")
    with pytest.raises(OutputFolderError, match="other options"):
        synthesize(sample_manifest, out, SynthConfig(aligned=True, types="gas", limit=2))
    second = synthesize(sample_manifest, out, SynthConfig(aligned=True, types="gas", limit=2, image_format="png"), replace=True)
    assert (out / "README.txt").read_text() == "the user's note, added later"
    old_files = {str(p) for p in first.manifest.parent.glob("**/*.jpg")}
    assert not old_files  # the jpgs of the first job are gone, the new ones are png
    assert second.outputs == 2 and read_marker(out).kind == "synth"


def _bin(tmp_path, name, seed):
    import pickle

    import numpy as np

    rng = np.random.default_rng(seed)
    blobs = [encode_image(rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8), ".png") for _ in range(4)]
    path = tmp_path / name
    path.write_bytes(pickle.dumps((blobs, [True, False]), protocol=4))
    return path


def test_bin_import_refuses_an_existing_dataset_folder(sample_manifest, tmp_path):
    from mfrkit.protocols import import_insightface_bin

    dataset = tmp_path / "dataset"
    import shutil

    shutil.copytree(sample_manifest.root, dataset)
    before = _tree(dataset)
    with pytest.raises(OutputFolderError, match="not made by mfrkit"):
        import_insightface_bin(_bin(tmp_path, "x.bin", 0), dataset, n_folds=1)
    assert _tree(dataset) == before
    # Its own extraction is reused; another .bin's is refused.
    import_insightface_bin(_bin(tmp_path, "x.bin", 0), tmp_path / "images", n_folds=1)
    import_insightface_bin(_bin(tmp_path, "x.bin", 0), tmp_path / "images", n_folds=1)
    with pytest.raises(OutputFolderError, match="other options or inputs"):
        import_insightface_bin(_bin(tmp_path, "y.bin", 1), tmp_path / "images", n_folds=1)


def test_demo_refuses_a_foreign_out_and_deletes_nothing(tmp_path, mfrkit_home):
    from mfrkit.demo import run_demo

    out = tmp_path / "demo"
    masked = out / "sample-masked"
    before = _user_folder(masked, n=30)
    with pytest.raises(OutputFolderError, match="not made by mfrkit"):
        run_demo(out, captures=1, full=False)
    assert _tree(masked) == before and not (out / "sample").exists()


def test_demo_never_deletes_a_user_folder_inside_its_own(tmp_path, mfrkit_home):
    from mfrkit.demo import run_demo

    out = tmp_path / "demo"
    run_demo(out, captures=1, full=False)
    masked = out / "sample-masked"
    before = _user_folder(masked, n=30)  # the user's files where the demo's masked copy goes
    with pytest.raises(OutputFolderError, match="not made by mfrkit"):
        run_demo(out, captures=1, full=True)
    assert _tree(masked) == before


def test_demo_refuses_to_mix_user_images_into_its_sample(tmp_path, mfrkit_home):
    from mfrkit.demo import run_demo

    out = tmp_path / "demo"
    run_demo(out, captures=1, full=False)
    stranger = out / "sample" / "someone" / "someone_0001.jpg"
    stranger.parent.mkdir()
    stranger.write_bytes(encode_image(__import__("numpy").full((50, 50, 3), 90, "uint8")))
    with pytest.raises(Exception, match="did not write"):
        run_demo(out, captures=1, full=False)
    assert stranger.exists()


def test_demo_does_not_repoint_a_users_dataset_named_demo(tmp_path, mfrkit_home):
    from mfrkit.data.registry import add_dataset, get_dataset
    from mfrkit.demo import run_demo

    theirs = tmp_path / "their-demo-dataset"
    (theirs / "a").mkdir(parents=True)
    (theirs / "a" / "a_0001.jpg").write_bytes(encode_image(__import__("numpy").full((50, 50, 3), 90, "uint8")))
    add_dataset("demo", theirs, layout="imagefolder")
    with pytest.raises(Exception, match="datasets remove demo"):
        run_demo(tmp_path / "demo", captures=1, full=False)
    assert get_dataset("demo").root == str(theirs.resolve())


def test_demo_rerun_with_another_seed_remakes_its_own_outputs(tmp_path, mfrkit_home):
    from mfrkit.data.manifest import read_manifest
    from mfrkit.demo import run_demo

    out = tmp_path / "demo"
    run_demo(out, seed=0, captures=1, full=False)
    (out / "notes.txt").write_text("mine")
    run_demo(out, seed=1, captures=1, full=False)
    assert read_manifest(out / "sample").meta["seed"] == 1
    assert (out / "notes.txt").read_text() == "mine"


def test_the_embedding_cache_is_locked_while_a_bench_writes_it(tmp_path):
    from tests.support.tiny_onnx import ARCFACE_META, make_model

    from mfrkit.bench.embed.pipeline import ImageRef, embed_images
    from mfrkit.bench.embed.embedding_cache import EmbeddingCache, preprocessing_key
    from mfrkit.onnx_model import OnnxModel
    from mfrkit.jobs import FolderLock

    model = OnnxModel(make_model(tmp_path / "m.onnx", meta={**ARCFACE_META, "mfrkit.align": "none"}))
    img = tmp_path / "a.png"
    img.write_bytes(encode_image(__import__("numpy").full((20, 20, 3), 90, "uint8"), ".png"))
    refs = [ImageRef("a", str(img))]
    cache = EmbeddingCache(tmp_path / "cache", model.sha256, preprocessing_key(model.spec.preprocessing(), tta=None, landmark_backend=None))
    with FolderLock(cache.dir / ".lock", what="x", purpose="bench of another"):
        with pytest.raises(FolderInUseError, match=r"embedding cache .* in use by PID \d+ \(bench of another"):
            embed_images(model, refs, cache_dir=tmp_path / "cache")
    assert embed_images(model, refs, cache_dir=tmp_path / "cache").computed == 1  # free again
