"""Image reading: every mode becomes RGB in [0, 1]; EXIF orientation; clear errors; atomic saving."""

import numpy as np
import pytest
from PIL import Image

from nst_jax.files import image
from nst_jax.base.errors import NSTError


def test_modes_convert_to_rgb(tmp_path):
    rgb = (np.random.default_rng(0).random((6, 5, 3)) * 255).astype(np.uint8)
    cases = {
        "gray.png": Image.fromarray(rgb[..., 0], "L"),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "rgba.png": Image.fromarray(np.dstack([rgb, np.full((6, 5), 255, np.uint8)]), "RGBA"),
    }
    for name, im in cases.items():
        im.save(tmp_path / name)
        arr = image.load_image(tmp_path / name)
        assert arr.shape == (6, 5, 3) and arr.dtype == np.float32, name
        assert 0.0 <= arr.min() and arr.max() <= 1.0, name
    gray = image.load_image(tmp_path / "gray.png")
    np.testing.assert_allclose(gray[..., 0], rgb[..., 0] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


def test_rgba_composited_on_white(tmp_path):
    a = np.zeros((2, 2, 4), np.uint8)
    a[0, 0] = (255, 0, 0, 255)   # opaque red
    a[0, 1] = (0, 0, 255, 0)     # fully transparent blue → white
    a[1, 0] = (0, 0, 0, 128)     # half-transparent black → mid grey
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    arr = image.load_image(tmp_path / "a.png")
    np.testing.assert_allclose(arr[0, 0], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(arr[0, 1], [1, 1, 1], atol=1e-6)
    assert abs(arr[1, 0, 0] - 127 / 255) < 2 / 255


def test_sixteen_bit_keeps_range(tmp_path):
    a = np.array([[0, 1000, 65535]], np.uint16)
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    arr = image.load_image(tmp_path / "deep.png")
    np.testing.assert_allclose(arr[0, :, 0], a[0] / 65535.0, rtol=1e-5, atol=1e-7)


def test_exif_orientation_applied(tmp_path):
    a = np.zeros((2, 4, 3), np.uint8)
    a[0, 0] = 255
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    im.save(tmp_path / "o.jpg", exif=exif, quality=100)
    arr = image.load_image(tmp_path / "o.jpg")
    assert arr.shape == (4, 2, 3)


def test_errors(tmp_path):
    with pytest.raises(NSTError, match="not found"):
        image.load_image(tmp_path / "missing.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(NSTError, match="not an image file"):
        image.load_image(tmp_path / "text.png")
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(NSTError, match="cut.png"):
        image.load_image(tmp_path / "cut.png")
    with pytest.raises(NSTError, match="not a regular file"):
        image.load_image(tmp_path)


def test_png_bytes_decode_as_the_file_does_and_only_at_the_size_asked(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(good)
    assert np.array_equal(image.decode_png(good.read_bytes(), good, 4), image.load_image(good))
    with pytest.raises(NSTError, match="4×4, not 8 px on its longest side"):
        image.decode_png(good.read_bytes(), good, 8)
    with pytest.raises(NSTError, match="kept.png: not an image file"):
        image.decode_png(b"not an image", "kept.png")
    data = good.read_bytes()
    header_only = data[:data.index(b"IDAT") + 8]   # the size is read from the header, before any pixel is decoded
    with pytest.raises(NSTError, match="not 8 px on its longest side"):
        image.decode_png(header_only, good, 8)
    with pytest.raises(NSTError, match="unreadable"):
        image.decode_png(header_only, good, 4)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "other.bmp")
    with pytest.raises(NSTError, match="not an image file"):   # a PNG only: what nst_jax writes
        image.decode_png((tmp_path / "other.bmp").read_bytes(), "kept.png")


def test_resize_and_save_roundtrip(tmp_path):
    x = np.random.default_rng(1).random((20, 30, 3)).astype(np.float32)
    y = image.resize(x, image.fit_size(x.shape[:2], 15))
    assert y.shape == (10, 15, 3) and 0 <= y.min() and y.max() <= 1
    image.save_image(tmp_path / "r.png", x, {"nst_jax": "{\"a\": 1}"})
    back = image.load_image(tmp_path / "r.png")
    assert np.abs(back - x).max() <= 0.5 / 255 + 1e-6
    assert Image.open(tmp_path / "r.png").text["nst_jax"] == "{\"a\": 1}"
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_png_bytes_are_the_image_and_the_same_for_the_same_image(tmp_path):
    import io
    from PIL import Image
    img = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    data = image.png_bytes(img)
    assert data == image.png_bytes(img.copy()) and data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), image.to_uint8(img))
    fast = image.png_bytes(img, compress_level=1)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(fast))), image.to_uint8(img))
