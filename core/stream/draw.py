"""Overlays: draw a :class:`FrameResult` onto a copy of the frame (the input is never modified).

Captions in ASCII are drawn with OpenCV's Hershey font (fast); any other text (a name such as
"José" or "Пётр") is drawn with a TrueType font through Pillow, since Hershey fonts have no glyphs
beyond ASCII. Which scripts show depends on the font found: DejaVu (Debian's fonts-dejavu-core)
covers Latin, Greek, Cyrillic, Arabic and Hebrew; CJK needs fonts-noto-cjk.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.analysis import effects
from core.faces import Face, FrameResult

BOX_COLOR = (80, 220, 100)  # BGR
UNKNOWN_COLOR = (60, 60, 230)
POINT_COLOR = (255, 200, 0)
TEXT_COLOR = (255, 255, 255)
DARK_TEXT_COLOR = (20, 20, 20)
OUTLINE_COLOR = (40, 40, 40)
FONT = cv2.FONT_HERSHEY_SIMPLEX
# TrueType fonts with wide coverage, first found wins; Pillow's built-in font (Latin) otherwise.
UNICODE_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


GENDER_SIGNS = {"male": "\u2642", "female": "\u2640"}


def face_caption(face: Face) -> str:
    """The text under a face box, for people to read: the name ("No match" when recognition ran
    and nobody is near enough; a visitor's label), then the gender sign and the age, e.g.
    "Ada Lovelace · \u2640 ~36". Distances stay in the table and the JSON."""
    parts: list[str] = []
    if face.name is not None or face.distance is not None:
        parts.append(face.name or "No match")
    if face.gender is not None or face.age is not None:
        sign = GENDER_SIGNS.get(face.gender or "", "")
        age = "" if face.age is None else f"~{face.age:.0f}"
        parts.append(f"{sign} {age}".strip())
    return " \u00b7 ".join(parts)


@lru_cache(maxsize=8)
def unicode_font(pixel_height: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font ``pixel_height`` pixels high, loaded once per size."""
    for path in UNICODE_FONTS:
        if Path(path).is_file():
            return ImageFont.truetype(path, pixel_height)
    return ImageFont.load_default(pixel_height)


def _text_color(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    """White on a dark fill, near-black on a light one (the green box colour), for contrast."""
    blue, green, red = fill
    return TEXT_COLOR if 0.114 * blue + 0.587 * green + 0.299 * red < 150 else DARK_TEXT_COLOR


def _text_size(text: str, scale: float) -> tuple[int, int, int]:
    """(width, height, baseline) of ``text`` drawn at ``scale``."""
    if text.isascii():
        (w, h), baseline = cv2.getTextSize(text, FONT, scale, _stroke(scale))
        return w, h, baseline
    _, _, w, h = unicode_font(max(8, round(30 * scale))).getbbox(text)
    return w, h, 0


def _stroke(scale: float) -> int:
    return max(1, round(scale * 1.6))


def _label(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], scale: float) -> None:
    """Filled label whose top-left corner is (x, y), kept inside the image; a label wider than
    the image is drawn smaller, never clipped."""
    w, h, baseline = _text_size(text, scale)
    if w + 4 > image.shape[1]:
        scale *= (image.shape[1] - 4) / (w + 4)
        w, h, baseline = _text_size(text, scale)
    x = int(np.clip(x, 0, max(0, image.shape[1] - w - 4)))
    y = int(np.clip(y, 0, max(0, image.shape[0] - h - baseline - 4)))
    cv2.rectangle(image, (x, y), (x + w + 4, y + h + baseline + 4), color, cv2.FILLED)
    ink = _text_color(color)
    if text.isascii():
        cv2.putText(image, text, (x + 2, y + h + 2), FONT, scale, ink, _stroke(scale), cv2.LINE_AA)
        return
    patch = image[y : y + h + 4, x : x + w + 4]
    canvas = Image.fromarray(np.ascontiguousarray(patch[:, :, ::-1]))
    ImageDraw.Draw(canvas).text((2, 2), text, font=unicode_font(max(8, round(30 * scale))), fill=ink[::-1])
    patch[:] = np.asarray(canvas)[:, :, ::-1]


def draw_result(frame_bgr: np.ndarray, result: FrameResult, overlays: bool = True, numbered: bool = False,
                min_width: int = 0) -> np.ndarray:  # fmt: skip
    """A copy of ``frame_bgr`` (of ``result.image`` when a processor repainted the frame) with the
    faces' effects, then, with ``overlays``, boxes, keypoints, captions and frame labels drawn;
    ``numbered``: each face's number (1, 2, ... in ``result.faces`` order) above its box.
    ``min_width``: a narrower frame is enlarged to that width first (boxes and points with it), so
    the captions of a small photo stay legible. Lines, dots and text scale with the image."""
    base = frame_bgr if result.image is None else result.image
    image = base.copy()
    effects.render(image, base, result.faces)
    if not overlays:
        return image
    zoom = max(1.0, min_width / image.shape[1])
    if zoom > 1:
        image = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    side = min(image.shape[:2])
    scale = max(0.4, side / 900)
    thickness = max(1, round(side / 300))
    radius = max(2, round(side / 160))
    for number, face in enumerate(result.faces, start=1):
        top, right, bottom, left = (round(v * zoom) for v in face.box)
        color = UNKNOWN_COLOR if face.distance is not None and face.name is None else BOX_COLOR
        cv2.rectangle(image, (left, top), (right, bottom), color, thickness)
        if numbered:
            _label(image, str(number), left, max(0, top - int(30 * scale) - 6), color, scale)
        for x, y in ({} if effects.hidden(face) else face.keypoints or {}).values():
            center = (int(round(x * zoom)), int(round(y * zoom)))
            cv2.circle(image, center, radius + 1, OUTLINE_COLOR, cv2.FILLED, cv2.LINE_AA)  # seen on light skin too
            cv2.circle(image, center, radius, POINT_COLOR, cv2.FILLED, cv2.LINE_AA)
        caption = face_caption(face)
        if caption:
            _label(image, caption, left, bottom + 2, color, scale)
    for i, (label, probability) in enumerate(result.labels):
        _label(image, f"{label} {probability:.0%}", 4, 4 + i * int(30 * scale + 8), (40, 40, 40), scale)
    return image
