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


def test_the_caption_reads_as_words_name_gender_and_age():
    assert face_caption(Face(Box(0, 10, 10, 0), name="Ada", distance=0.312)) == "Ada"
    assert face_caption(Face(Box(0, 10, 10, 0), distance=0.7)) == "No match"  # recognition ran, nobody near
    assert face_caption(Face(Box(0, 10, 10, 0), name="Tony Blair", distance=0.3, age=54.6, gender="male")) == "Tony Blair \u00b7 \u2642 ~55"
    assert face_caption(Face(Box(0, 10, 10, 0), age=30.2, gender="female")) == "\u2640 ~30"
    assert face_caption(Face(Box(0, 10, 10, 0))) == ""  # detection only: no caption


@pytest.mark.parametrize("first, second", [("Пётр", "Иван"), ("José", "Josë"), ("Ñandú", "Nandu")])
def test_names_beyond_ascii_are_drawn_with_their_own_glyphs(first, second):
    a, b = caption_pixels(first), caption_pixels(second)
    assert (a > 200).all(axis=2).sum() > 20, "the caption text is drawn in white"
    assert not np.array_equal(a, b), f"{first!r} and {second!r} must not render alike (OpenCV draws both as '?')"


def test_ascii_and_unicode_captions_stay_inside_a_small_frame():
    frame = np.zeros((60, 80, 3), np.uint8)
    face = Face(Box(top=5, right=75, bottom=55, left=5), name="Zoë Ångström", distance=0.2)
    assert draw_result(frame, FrameResult(faces=[face])).shape == frame.shape


def test_numbered_faces_carry_their_number_above_the_box():
    frame = np.full((240, 320, 3), 90, np.uint8)
    faces = [Face(Box(top=80, right=140, bottom=180, left=40)), Face(Box(top=80, right=300, bottom=180, left=200))]
    plain = draw_result(frame, FrameResult(faces=faces))
    numbered = draw_result(frame, FrameResult(faces=faces), numbered=True)
    above = (slice(40, 78), slice(40, 300))
    assert np.array_equal(plain[above], frame[above]) and not np.array_equal(numbered[above], frame[above])
    assert np.array_equal(numbered[90:170], plain[90:170])  # the faces themselves are drawn alike
