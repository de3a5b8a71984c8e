"""Reading user images safely: one function for uploads and command-line paths.

Invariant: :func:`load_image` either returns an upright BGR uint8 array or raises
:class:`ImageError` with a sentence a person can act on; it never returns a partial image.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # 40 megapixels: any real camera photo; far below a decompression bomb
MAX_BYTES = 50 * 1024 * 1024


class ImageError(ValueError):
    """An input that is not a usable image; the message says why."""


def load_image(source: str | Path | bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
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
            if width * height > max_pixels:
                raise ImageError(
                    f"image of {width}x{height} pixels is too large (limit {max_pixels / 1e6:.0f} megapixels)"
                )
            image.load()
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ImageError(f"not a readable image ({error})") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"the image file is damaged or truncated ({error})") from error
    return np.ascontiguousarray(np.asarray(upright)[:, :, ::-1])
