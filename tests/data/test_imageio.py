
import io

import numpy as np
import pytest
from PIL import Image

from mfrkit.data.imageio import (
    decode_image,
    encode_image,
    image_size,
    read_image,
    write_image,
)
from mfrkit.errors import (
    CorruptImageError,
    ImageTooLargeError,
    MissingImageError,
    UnsupportedImageError,
)


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(img, tmp_path / "rot.jpg", exif=exif, quality=100)
    out = read_image(path)
    assert out.shape == (40, 20, 3)  # displayed upright: portrait
    assert out[5, 10, 0] > 200 and out[35, 10, 0] < 60  # red now on top


def test_header_size_matches_the_decoded_array(tmp_path):
    img = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6
    for kwargs, name in (({"exif": exif}, "rot.jpg"), ({}, "plain.jpg")):
        path = _save(img, tmp_path / name, **kwargs)
        h, w = read_image(path).shape[:2]
        assert image_size(path.read_bytes()) == (w, h)
    assert image_size((tmp_path / "rot.jpg").read_bytes()) == (20, 40)  # turned upright, as read_image does
    with pytest.raises(ImageTooLargeError):
        image_size((tmp_path / "plain.jpg").read_bytes(), max_pixels=100)
    with pytest.raises(CorruptImageError):
        image_size(b"not an image at all")


@pytest.mark.parametrize(
    "make, rgb",
    [
        (lambda: Image.fromarray(np.full((8, 8), 77, np.uint8), "L"), (77, 77, 77)),
        # 30% opaque grey over white: 77 * 77/255 + 255 * (1 - 77/255)
        (lambda: Image.fromarray(np.full((8, 8, 4), 77, np.uint8), "RGBA"), (201, 201, 201)),
        (lambda: Image.fromarray(np.full((8, 8), 3, np.uint8), "L").convert("P"), (3, 3, 3)),
        (lambda: Image.new("CMYK", (8, 8), (0, 255, 255, 0)), (255, 0, 0)),  # no cyan, full magenta and yellow: red
    ],
    ids=["gray", "rgba", "palette", "cmyk"],
)
def test_modes_become_rgb_uint8(tmp_path, make, rgb):
    img = make()
    path = tmp_path / ("x.jpg" if img.mode == "CMYK" else "x.png")
    img.save(path)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
    assert np.abs(out.reshape(-1, 3).astype(int) - rgb).max() <= 3  # the CMYK one went through JPEG


def test_rgba_transparent_pixels_become_white(tmp_path):
    arr = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    Image.fromarray(arr, "RGBA").save(tmp_path / "t.png")
    assert (read_image(tmp_path / "t.png") == 255).all()


def test_sixteen_bit_is_rescaled(tmp_path):
    arr = np.array([[0, 65535]], dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    img.save(tmp_path / "d.png")
    out = read_image(tmp_path / "d.png")
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 255


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageTooLargeError) as err:
        read_image(tmp_path / "big.png", max_pixels=5000)
    assert err.value.reason == "too_large"


def test_truncated_and_garbage_files_are_corrupt(tmp_path, photos):
    data = encode_image(photos["grace_hopper"], ".jpg")
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    for name in ("trunc.jpg", "junk.jpg"):
        with pytest.raises(CorruptImageError):
            read_image(tmp_path / name)


def test_any_decoder_failure_is_corrupt(tmp_path, monkeypatch, photos):
    # Pillow's parsers raise struct.error, IndexError, ... on some malformed files.
    import struct

    from mfrkit.data import imageio
    from mfrkit.data.scan import probe_image

    path = tmp_path / "x.png"
    write_image(path, photos["grace_hopper"][:16, :16])

    def broken(*args, **kwargs):
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(imageio.ImageOps, "exif_transpose", broken)
    with pytest.raises(CorruptImageError, match="struct.error|error"):
        read_image(path)
    assert probe_image(str(path))["status"] == "corrupt"
    monkeypatch.setattr(imageio.Image, "open", broken)
    with pytest.raises(CorruptImageError):
        image_size(path.read_bytes())


def test_missing_file(tmp_path):
    with pytest.raises(MissingImageError):
        read_image(tmp_path / "nope.jpg")


def test_write_is_atomic_and_round_trips(tmp_path, photos):
    img = photos["eileen_collins"][:64, :64]
    data = write_image(tmp_path / "a.png", img)
    assert (read_image(tmp_path / "a.png") == img).all()
    assert decode_image(data).shape == img.shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no temporary left behind


def test_failed_write_keeps_the_old_file(tmp_path, photos):
    write_image(tmp_path / "a.png", photos["eileen_collins"][:8, :8])
    before = (tmp_path / "a.png").read_bytes()
    with pytest.raises(UnsupportedImageError):
        write_image(tmp_path / "a.png", np.zeros((8, 8), np.float32))  # wrong dtype: refused
    assert (tmp_path / "a.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_encoding_is_deterministic(photos):
    img = photos["grace_hopper"][:100, :100]
    assert encode_image(img, ".jpg", quality=90) == encode_image(img, ".jpg", quality=90)


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os

    from mfrkit.atomic import atomic_write_text

    atomic_write_text(tmp_path / "a.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("mode, progressive", [("RGB", False), ("RGB", True), ("L", False), ("CMYK", True)])
def test_fast_jpeg_header_size_agrees_with_pillow(mode, progressive):
    import io

    from mfrkit.data.imageio import _jpeg_size

    rng = np.random.default_rng(0)
    for h, w in ((1, 1), (17, 300), (112, 96), (250, 250)):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(mode).save(buf, "JPEG", progressive=progressive)
        assert _jpeg_size(buf.getvalue()) == (w, h) == image_size(buf.getvalue())
    assert _jpeg_size(b"\xff\xd8\xff\xe0\x00\x10garbage") is None  # odd: Pillow decides


# --- the OpenCV fast path for plain JPEGs -----------------------------------------------------------


def _pillow_pixels(data: bytes):
    """What Pillow alone makes of ``data`` (None when it refuses)."""
    from mfrkit.data.imageio import MAX_PIXELS, _open
    from mfrkit.errors import ImageError

    try:
        return _open(io.BytesIO(data), MAX_PIXELS)
    except ImageError:
        return None


def _real_jpegs() -> list[bytes]:
    from skimage import data as skdata

    photo = skdata.astronaut()
    out = []
    for size, quality in ((112, 95), (250, 90), (97, 75)):
        img = Image.fromarray(photo).resize((size, size))
        for mode in ("RGB", "L"):
            buf = io.BytesIO()
            img.convert(mode).save(buf, format="JPEG", quality=quality)
            out.append(buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(photo).resize((120, 100)).save(buf, format="JPEG", progressive=True)
    out.append(buf.getvalue())
    return out


def test_plain_jpegs_take_the_fast_path_with_pillows_pixels():
    from mfrkit.data.imageio import _plain_jpeg_size

    jpegs = _real_jpegs()
    taken = [_plain_jpeg_size(d) is not None for d in jpegs]
    # Colour baseline JPEGs go fast; greyscale (one component) and progressive do not.
    assert taken == [True, False, True, False, True, False, False]
    for d in jpegs:
        assert np.array_equal(decode_image(d), _pillow_pixels(d))


def test_corrupt_jpegs_decode_as_pillow_decides():
    # Bit flips, random runs and truncations (with and without a new EOI): whatever
    # the fast path lets through must be what Pillow makes of it, and what Pillow
    # refuses must be refused (OpenCV alone accepts some of these).
    rng = np.random.default_rng(7)
    tried = refused = 0
    for data in _real_jpegs()[:3:2]:
        n = len(data)
        for trial in range(150):
            b = bytearray(data)
            if trial % 3 == 0:
                for _ in range(int(rng.integers(1, 6))):
                    i = int(rng.integers(2, n))
                    b[i] ^= 1 << int(rng.integers(0, 8))
            elif trial % 3 == 1:
                i = int(rng.integers(n // 3, n - 20))
                b[i : i + 12] = rng.integers(0, 256, 12, dtype=np.uint8).tobytes()
            else:
                b = b[: int(rng.integers(n // 4, n - 2))] + (b"\xff\xd9" if trial % 2 else b"")
            expected = _pillow_pixels(bytes(b))
            tried += 1
            if expected is None:
                refused += 1
                with pytest.raises(CorruptImageError):
                    decode_image(bytes(b))
            else:
                assert np.array_equal(decode_image(bytes(b)), expected)
    assert tried == 300 and refused > 20  # the corpus does hold files Pillow refuses


def test_jpeg_encoding_writes_pillows_bytes():
    # The OpenCV encoder stands in for Pillow's: same bytes, so outputs did not change.
    from skimage import data as skdata

    photo = skdata.astronaut()
    for (h, w), quality in (((112, 112), 95), ((97, 113), 75), ((250, 250), 95), ((3, 40), 50)):
        img = np.ascontiguousarray(np.asarray(Image.fromarray(photo).resize((w, h))))
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        assert encode_image(img, ".jpg", quality=quality) == buf.getvalue()
    # A view that is not contiguous (every other column) encodes as its copy does.
    view = photo[:100, ::2]
    assert encode_image(view) == encode_image(np.ascontiguousarray(view))
