import numpy as np
import pytest

from core.faces import Box, Face, FrameResult
from core.stream.draw import BOX_COLOR, POINT_COLOR, UNKNOWN_COLOR, draw_result, face_caption


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
    assert (a < 60).all(axis=2).sum() > 20, "the caption text is drawn, dark on the light green label"
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


def ink(label: np.ndarray, fill: tuple[int, int, int]) -> np.ndarray:
    """The pixels of a label area that are neither its fill nor the grey frame: the text."""
    return (np.abs(label.astype(int) - fill).max(axis=2) > 60) & (np.abs(label.astype(int) - 90).max(axis=2) > 60)


def test_caption_text_contrasts_with_its_label_dark_on_green_white_on_red():
    frame = np.full((240, 320, 3), 90, np.uint8)
    named = Face(Box(top=40, right=180, bottom=140, left=80), name="Ada", distance=0.31)
    unknown = Face(Box(top=40, right=180, bottom=140, left=80), distance=0.9)
    green = draw_result(frame, FrameResult(faces=[named]))[142:170, 80:200]
    red = draw_result(frame, FrameResult(faces=[unknown]))[142:170, 80:200]
    assert green[ink(green, BOX_COLOR)].mean() < 80  # near-black text
    assert red[ink(red, UNKNOWN_COLOR)].mean() > 170  # white text


def test_a_caption_wider_than_the_frame_is_drawn_smaller_not_clipped():
    frame = np.full((120, 100, 3), 90, np.uint8)
    face = Face(Box(top=10, right=90, bottom=70, left=10), name="Maximilian Montgomery-Smith", distance=0.2)
    label = draw_result(frame, FrameResult(faces=[face]))[72:110]
    text_columns = np.flatnonzero(ink(label, BOX_COLOR).any(axis=0))
    assert text_columns.size and text_columns.max() < 99  # the last letter ends before the frame's edge
    assert (np.abs(label[:, -1].astype(int) - BOX_COLOR).max(axis=1) < 30).any()  # the label's own margin is there


def test_a_small_photo_is_drawn_enlarged_with_its_boxes_and_points_where_the_face_is():
    frame = np.full((150, 150, 3), 90, np.uint8)
    face = Face(Box(top=30, right=120, bottom=120, left=30), name="Ada", distance=0.2, keypoints={"nose_tip": (75.0, 75.0)})
    drawn = draw_result(frame, FrameResult(faces=[face]), min_width=600)
    assert drawn.shape == (600, 600, 3)
    assert (np.abs(drawn[120, 130:470].astype(int) - BOX_COLOR).max(axis=1) < 10).mean() > 0.9  # the top edge, x4
    assert (np.abs(drawn[300, 300].astype(int) - POINT_COLOR) < 10).all()  # the nose at (75, 75) x4
    assert draw_result(frame, FrameResult(faces=[face]), min_width=100).shape == frame.shape  # never shrunk


@pytest.mark.parametrize("side, at_least", [(300, 12), (1000, 60)])
def test_keypoint_dots_grow_with_the_image(side, at_least):
    frame = np.full((side, side, 3), 90, np.uint8)
    face = Face(Box(top=side // 4, right=3 * side // 4, bottom=3 * side // 4, left=side // 4), keypoints={"nose_tip": (side / 2, side / 2)})
    drawn = draw_result(frame, FrameResult(faces=[face]))
    dot = (np.abs(drawn.astype(int) - POINT_COLOR).max(axis=2) < 10).sum()
    assert at_least <= dot < 40 * at_least
