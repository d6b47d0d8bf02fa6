"""Bad and odd image inputs: a clear ImageError, or correct RGB handling."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from seedtok.api import encode_images
from seedtok.image import ImageError, load_image, preprocess


def _png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_truncated_png_is_a_clear_error(tmp_path):
    data = _png_bytes(Image.new("RGB", (64, 64), (200, 10, 10)).resize((64, 64)))
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = _png_bytes(noisy)
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png: cannot decode"):
        load_image(path)


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageError, match="not a recognised image format"):
        load_image(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError):
        load_image(tmp_path)


def test_one_pixel_image_is_valid():
    x = preprocess(Image.new("RGB", (1, 1), (255, 0, 0)), 64)
    assert x.shape == (1, 3, 64, 64)
    torch.testing.assert_close(x[0, :, 0, 0], x[0, :, 63, 63])


def test_sixteen_bit_png_is_rescaled_not_clipped(tmp_path):
    arr = np.full((8, 8), 32768, dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode.startswith("I")
    img = load_image(path)
    assert img.mode == "RGB" and abs(img.getpixel((0, 0))[0] - 128) <= 1


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    img = load_image(path)
    r, g, b = img.getpixel((8, 8))
    assert img.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_palette_with_transparency_composited_on_white():
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    pal.putpixel((0, 0), 1)
    img = load_image(_png_bytes(pal, transparency=0))
    assert img.mode == "RGB"
    assert img.getpixel((1, 1)) == (255, 255, 255)  # transparent red -> white background
    assert img.getpixel((0, 0)) == (0, 0, 255)


def test_rgba_and_la_alpha_composited():
    rgba = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    la = Image.new("LA", (2, 2), (0, 255))
    assert load_image(la).getpixel((0, 0)) == (0, 0, 0)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (20, 10), (0, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert load_image(buf.getvalue()).size == (10, 20)


def test_huge_image_refused_before_decoding(monkeypatch):
    import seedtok.image as im

    monkeypatch.setattr(im, "MAX_PIXELS", 100)
    with pytest.raises(ImageError, match="exceeds the limit"):
        load_image(_png_bytes(Image.new("RGB", (20, 20))))


def test_arrays_of_several_dtypes():
    assert load_image(np.zeros((4, 4), np.uint8)).mode == "RGB"
    assert load_image(np.ones((4, 4, 3), np.float32)).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ImageError, match="non-finite"):
        load_image(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ImageError, match="expected"):
        load_image(np.zeros((4, 4, 5), np.uint8))


def test_encode_images_keeps_going_past_a_bad_one(tmp_path, tiny_model):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    res = encode_images(tiny_model, [Image.new("RGB", (9, 9)), bad, Image.new("L", (70, 30))], names=["a", "b", "c"])
    assert [r.error is None for r in res] == [True, False, True]
    assert len(res[0].ids) == 32 and len(res[2].ids) == 32 and "b: not a recognised" in res[1].error
