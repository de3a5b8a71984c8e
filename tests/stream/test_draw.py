import numpy as np
import pytest

from core.faces import Box, Face, FrameResult
from core.stream.draw import draw_result, face_caption


def caption_pixels(name: str) -> np.ndarray:
    """The area under a face box once a face called ``name`` is drawn on a grey frame."""
    frame = np.full((240, 320, 3), 90, np.uint8)
    face = Face(Box(top=40, right=180, bottom=140, left=80), name=name, distance=0.31)
    annotated = draw_result(frame, FrameResult(faces=[face]))
    assert np.array_equal(frame, np.full_like(frame, 90)), "the input frame must stay untouched"
    return annotated[142:200, 70:320]


def test_the_caption_names_the_face_with_its_distance():
    assert face_caption(Face(Box(0, 10, 10, 0), name="Ada", distance=0.312)) == "Ada (0.31)"
    assert face_caption(Face(Box(0, 10, 10, 0), distance=0.7)) == "Unknown (0.70)"


@pytest.mark.parametrize("first, second", [("Пётр", "Иван"), ("José", "Josë"), ("Ñandú", "Nandu")])
def test_names_beyond_ascii_are_drawn_with_their_own_glyphs(first, second):
    a, b = caption_pixels(first), caption_pixels(second)
    assert (a > 200).all(axis=2).sum() > 20, "the caption text is drawn in white"
    assert not np.array_equal(a, b), f"{first!r} and {second!r} must not render alike (OpenCV draws both as '?')"


def test_ascii_and_unicode_captions_stay_inside_a_small_frame():
    frame = np.zeros((60, 80, 3), np.uint8)
    face = Face(Box(top=5, right=75, bottom=55, left=5), name="Zoë Ångström", distance=0.2)
    assert draw_result(frame, FrameResult(faces=[face])).shape == frame.shape
