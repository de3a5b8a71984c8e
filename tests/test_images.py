import io

import numpy as np
import pytest
from PIL import Image

from core.images import ImageError, load_image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_decodes_to_bgr():
    data = encode(Image.new("RGB", (8, 4), (255, 0, 0)), "PNG")
    image = load_image(data)
    assert image.shape == (4, 8, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == (0, 0, 255)


def test_exif_orientation_is_honoured():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(Image.new("RGB", (40, 20), (0, 128, 0)), "JPEG", exif=exif)
    assert load_image(data).shape[:2] == (40, 20)


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
