import io

import numpy as np
import pytest
from PIL import Image

from core.images import MIN_SIDE, ImageError, check_image, load_image, resize_by


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_decodes_to_bgr():
    data = encode(Image.new("RGB", (64, 32), (255, 0, 0)), "PNG")
    image = load_image(data)
    assert image.shape == (32, 64, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == (0, 0, 255)


def test_exif_orientation_is_honoured():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(Image.new("RGB", (80, 40), (0, 128, 0)), "JPEG", exif=exif)
    assert load_image(data).shape[:2] == (80, 40)


@pytest.mark.parametrize("data,message", [
    (b"this is not an image at all", "not a readable image"),
    (b"", "not a readable image"),
])
def test_non_images_are_refused(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_jpeg_is_refused():
    rng = np.random.default_rng(0)
    data = encode(Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encode(Image.new("L", (12_000, 12_000)), "PNG")  # 144 megapixels in a small file
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageError, match="too large"):
        load_image(bomb)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")


@pytest.mark.parametrize("size,words", [((1, 1), "too small"), ((2, 2), "too small"), ((31, 400), "too small"),
                                        ((1, 3000), "too small"), ((40, 1000), "too narrow"), ((1000, 40), "too narrow")])
def test_images_too_small_or_too_narrow_for_any_detector_are_refused(size, words):
    with pytest.raises(ImageError, match=words):
        load_image(encode(Image.new("RGB", size), "PNG"))
    with pytest.raises(ImageError, match=words):  # arrays (a live snapshot) pass the same gate
        check_image(np.zeros((size[1], size[0], 3), np.uint8))
    assert load_image(encode(Image.new("RGB", (MIN_SIDE, 16 * MIN_SIDE)), "PNG")).shape == (16 * MIN_SIDE, MIN_SIDE, 3)


def gradient_16bit() -> np.ndarray:
    return np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)


@pytest.mark.parametrize("image", [
    Image.fromarray(gradient_16bit()),                                      # I;16: 16-bit grayscale PNG
    Image.fromarray(gradient_16bit().astype(np.int32), "I"),                 # 32-bit integer holding 16-bit data
    Image.fromarray((gradient_16bit() / 65535).astype(np.float32), "F"),  # floating point in 0-1
], ids=["I;16", "I", "F"])
def test_deep_grayscale_is_scaled_to_8_bits_not_clipped(image):
    fmt = "PNG" if image.mode != "F" else "TIFF"
    decoded = load_image(encode(image, fmt))
    expected = np.rint(gradient_16bit() / 257.0)
    assert np.abs(decoded[:, :, 1].astype(float) - expected).max() <= 1  # Pillow's convert("RGB") gives 255 almost everywhere
    assert (decoded == 255).mean() < 0.01


def test_resize_by_never_gives_an_empty_image():
    strip = np.zeros((2, 3000, 3), np.uint8)
    assert resize_by(strip, 0.1).shape == (1, 300, 3)
    assert resize_by(strip, 1.0) is strip
    assert resize_by(np.zeros((20, 10, 3), np.uint8), 2.0).shape == (40, 20, 3)
