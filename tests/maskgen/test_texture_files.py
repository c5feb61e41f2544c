"""``--texture PATH``: an image file (or a folder of them) tiled over the mask, as
MaskTheFace's ``--pattern`` does; bad paths refused before any work."""

from __future__ import annotations

import numpy as np
import pytest

from mfrkit.alignments import align_crop
from mfrkit.data.imageio import read_image, write_image
from mfrkit.data.manifest import read_manifest
from mfrkit.landmarks.template import template_landmarks
from mfrkit.maskgen import StyleSpec, SynthConfig, create_renderer, synthesize
from mfrkit.maskgen.texture_files import TextureFileError

RED, BLUE = (230, 20, 20), (20, 20, 230)


def _checker(path, a=RED, b=BLUE, cell: int = 16):
    """A two-colour checkerboard: its colours cannot come from any procedural texture."""
    yy, xx = np.mgrid[0:64, 0:64]
    board = ((yy // cell + xx // cell) % 2).astype(bool)
    image = np.where(board[..., None], np.array(b, np.uint8), np.array(a, np.uint8)).astype(np.uint8)
    write_image(path, image)
    return path


def _crop(photos, faces_of, name="eileen_collins"):
    return align_crop("arcface112", photos[name], faces_of[name])


def _masked_pixels(out, image):
    return out.image[out.occlusion].astype(int), image[out.occlusion].astype(int)


def test_a_texture_file_prints_its_own_colours_on_the_mask(tmp_path, photos, faces_of):
    image = _crop(photos, faces_of)
    landmarks = template_landmarks("arcface112", 112, 112)
    spec = StyleSpec.parse("cloth", "random", str(_checker(tmp_path / "board.png")), "proper")
    renderer = create_renderer("mesh")
    params = renderer.sample(np.random.default_rng(3), landmarks, spec)
    assert params.record()["mask_texture"] == "file:board.png"
    out = renderer.apply(image, params)
    masked, _ = _masked_pixels(out, image)
    reddish = (masked[:, 0] > masked[:, 2] + 40).mean()
    bluish = (masked[:, 2] > masked[:, 0] + 40).mean()
    assert reddish > 0.2 and bluish > 0.2, (reddish, bluish)  # both squares of the board show, lit
    plain = renderer.apply(image, renderer.sample(np.random.default_rng(3), landmarks, StyleSpec.parse("cloth", "white", "plain", "proper")))
    assert not np.array_equal(plain.image, out.image)
    # pure: the same parameters give the same pixels
    np.testing.assert_array_equal(renderer.apply(image.copy(), params).image, out.image)


def test_a_folder_stands_for_its_image_files(tmp_path):
    folder = tmp_path / "patterns"
    _checker(folder / "b.png")
    _checker(folder / "a.jpg", a=(20, 200, 20))
    (folder / "notes.txt").write_text("not an image")
    spec = StyleSpec.parse("cloth", "random", f"{folder},plain", "proper")
    assert spec.textures == (str((folder / "a.jpg").resolve()), str((folder / "b.png").resolve()), "plain")


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.png", "no such file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "holds no image files"),
    (lambda p: (p / "bad.png").write_bytes(b"\x89PNG not really") and p / "bad.png", "bad.png"),
])
def test_bad_texture_paths_are_one_line_errors(tmp_path, make, message):
    with pytest.raises(TextureFileError, match=message) as err:
        StyleSpec.parse("cloth", "random", str(make(tmp_path)), "proper")
    assert "\n" not in str(err.value)


def test_synth_with_a_texture_file_end_to_end(tmp_path, photos, faces_of):
    src = tmp_path / "src"
    for name in photos:
        write_image(src / name / f"{name}.png", _crop(photos, faces_of, name))
    board = _checker(tmp_path / "board.png")
    summary = synthesize(str(src), tmp_path / "out", SynthConfig(types="cloth", textures=str(board), aligned="arcface112", seed=1))
    ok = read_manifest(summary.manifest).ok()
    assert len(ok) == len(photos) and set(ok["mask_texture"]) == {"file:board.png"}
    for row in ok.to_dict("records"):
        masked = read_image(summary.out / row["path"]).astype(int)
        lower = masked[70:100, 30:82]  # the mouth and chin of an ArcFace crop
        assert ((lower[..., 0] > lower[..., 2] + 40).mean() > 0.1) and ((lower[..., 2] > lower[..., 0] + 40).mean() > 0.1)
    card = (summary.out / "DATA_CARD.md").read_text()
    assert "file:board.png" in card and "drawing version 3" in card  # the card says which texture and which drawing
