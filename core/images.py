"""Reading user images safely: one validation step for uploads, command-line paths and arrays.

Invariants:
- :func:`load_image` either returns an upright BGR uint8 array that :func:`check_image` accepts
  or raises :class:`ImageError` with a sentence a person can act on; it never returns a partial
  image, and its messages name no Python object.
- :func:`check_image` is the one gate for size and shape: every entry point (pages, CLI,
  enrollment of a live snapshot) passes its image through it, directly or via ``load_image``.
- Every bit depth becomes 8 bits by scaling, never by clipping: a 16-bit grayscale PNG keeps
  its picture (Pillow's own ``convert("RGB")`` clips it to white).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # 40 megapixels: any real camera photo; far below a decompression bomb
MAX_BYTES = 50 * 1024 * 1024
MIN_SIDE = 32  # below this no detector finds a face and no style has room to show
MAX_ASPECT = 16  # longer side / shorter side: wider than any panorama a phone takes
FORMATS = "JPEG, PNG, WebP, BMP, TIFF or GIF"


class ImageError(ValueError):
    """An input that is not a usable image; the message says why."""


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` when it is a BGR uint8 array of a usable size; else :class:`ImageError`."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError("not a colour image (expected 8-bit BGR pixels)")
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ImageError(f"image of {width}x{height} pixels is too small (at least {MIN_SIDE} pixels a side)")
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise ImageError(
            f"image of {width}x{height} pixels is too narrow (at most {MAX_ASPECT} times longer than wide); crop it"
        )
    if height * width > MAX_PIXELS:
        raise ImageError(_too_large(width, height))
    return image


def _too_large(width: int, height: int) -> str:
    return f"image of {width}x{height} pixels is too large (limit {MAX_PIXELS / 1e6:.0f} megapixels)"


def load_image(source: str | Path | bytes) -> np.ndarray:
    """Decode a JPEG/PNG/WebP/... file or bytes into an upright (EXIF-rotated) BGR array."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path}: no such file")
        if path.stat().st_size > MAX_BYTES:
            raise ImageError(f"{path.name}: file larger than {MAX_BYTES // 2**20} MB")
        data = path.read_bytes()
    else:
        data = source
        if len(data) > MAX_BYTES:
            raise ImageError(f"file larger than {MAX_BYTES // 2**20} MB")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:  # before decoding: a bomb is never unpacked
                raise ImageError(_too_large(width, height))
            image.load()
            upright = _eight_bit_rgb(ImageOps.exif_transpose(image))
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ImageError(f"not a readable image (expected {FORMATS})") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"the image file is damaged or truncated ({error})") from error
    return check_image(np.ascontiguousarray(np.asarray(upright)[:, :, ::-1]))


def _eight_bit_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB; 16-bit and 32-bit grayscale are scaled to 0-255, not clipped."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or (image.mode == "I" and values.max(initial=0) > 255):
            values = values / 257.0  # 0-65535 -> 0-255
        elif image.mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0  # floating-point images in 0-1
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    return image.convert("RGB")


def resize_by(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` scaled by ``scale`` (area averaging down, cubic up; itself at 1), never to less
    than one pixel a side."""
    if scale == 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
