"""Feed-forward styles: the ONNX models load and paint, blends sum to one, region masks sit on faces."""

from __future__ import annotations

import numpy as np
import pytest

from core.faces import Anchor, Box, Face, FrameResult
from core.style import fast

pytestmark = pytest.mark.skipif(fast.unavailable() is not None, reason=f"fast styles unavailable: {fast.unavailable()}")


def photo(height: int = 240, width: int = 320) -> np.ndarray:
    """A smooth gradient with a few shapes: something to paint."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 128)], axis=2).astype(np.uint8)
    image[60:120, 80:200] = (30, 160, 220)
    return image


def test_the_26_style_network_paints_at_the_processing_size_and_returns_the_input_size():
    image = photo(241, 323)  # odd sizes: the network wants multiples of 4
    painted = fast.stylize(image, fast.style_weights(fast.DEFAULT_STYLE), size=160)
    assert painted.shape == image.shape and painted.dtype == np.uint8
    assert np.abs(painted.astype(int) - image).mean() > 10  # it is not the photo
    other = fast.stylize(image, fast.style_weights(3), size=160)
    assert np.abs(other.astype(int) - painted).mean() > 10  # styles differ


@pytest.mark.parametrize("spec,expected", [(7, {7: 1.0}), ({3: 3.0, 12: 1.0}, {3: 0.75, 12: 0.25}), ("3:0.7,12:0.3", {3: 0.7, 12: 0.3}),
                                           ("5", {5: 1.0})])  # fmt: skip
def test_style_weights_always_sum_to_one(spec, expected):
    weights = fast.style_weights(spec)
    assert weights.shape == (fast.NUM_STYLES,) and weights.sum() == pytest.approx(1.0)
    assert {i: round(float(w), 6) for i, w in enumerate(weights) if w} == pytest.approx(expected)


@pytest.mark.parametrize("spec,words", [(26, "does not exist"), ({2: -1.0}, "at least 0"), ({2: float("nan")}, "finite"),
                                        ({2: 0.0}, "add up to 0"), ("three", "a style is a number")])  # fmt: skip
def test_bad_style_weights_are_refused(spec, words):
    with pytest.raises(fast.FastStyleError, match=words):
        fast.style_weights(spec)


def test_any_painting_becomes_a_style():
    painting = np.zeros((300, 200, 3), np.uint8)
    painting[::8] = (40, 200, 250)  # yellow stripes on black
    vector = fast.painting_vector(painting)
    assert vector.shape == (1, 1, 1, 100)
    image = photo()
    painted = fast.stylize_painting(image, vector, size=384)
    assert painted.shape == image.shape and np.abs(painted.astype(int) - image).mean() > 10


ANCHORS = [Anchor(100, 100, 40, 0.0), Anchor(240, 130, 30, np.radians(30))]


def test_the_region_mask_covers_each_faces_oval_and_fades_away_from_it():
    mask = fast.region_mask((240, 320, 3), ANCHORS)
    assert mask.shape == (240, 320) and mask.dtype == np.float32
    for anchor in ANCHORS:
        for u, v in [(0.0, 0.42), (-0.5, 0.0), (0.5, 0.0), (0.0, 1.2)]:  # the oval's centre, the eyes, the chin
            x, y = np.round(anchor.to_image(np.array([(u, v)]))[0]).astype(int)
            assert mask[y, x] > 0.9, (anchor, u, v)
        x, y = np.round(anchor.to_image(np.array([(0.0, 3.5)]))[0]).astype(int)  # far below the chin
        if 0 <= y < 240 and 0 <= x < 320:
            assert mask[y, x] < 0.05
    assert mask[230, 10] < 0.01 and 0.0 <= mask.min() and mask.max() <= 1.0
    edge = mask[(mask > 0.1) & (mask < 0.9)]
    assert edge.size > 100  # a soft edge, not a hard cut


def test_the_mask_turns_with_a_rolled_face():
    rolled = Anchor(160, 100, 40, np.radians(90))  # a face lying on its side: its chin points left
    mask = fast.region_mask((240, 320, 3), [rolled])
    chin_x, chin_y = np.round(rolled.to_image(np.array([(0.0, 1.2)]))[0]).astype(int)
    assert chin_x < 160 and mask[chin_y, chin_x] > 0.9
    assert mask[100, 160 + 70] < 0.05  # as far the other way: beyond the forehead


@pytest.mark.parametrize("region", ["background", "faces", "split"])
def test_each_region_mode_mixes_natural_and_painted_pixels_by_the_mask(region):
    natural, painted, faces_painted = (np.full((60, 80, 3), v, np.uint8) for v in (10, 200, 100))
    mask = np.zeros((60, 80), np.float32)
    mask[20:40, 30:50] = 1.0
    out = fast.composite(natural, painted, mask, faces_painted, region)
    inside, outside = out[30, 40], out[5, 5]
    expected = {"background": (10, 200), "faces": (200, 10), "split": (100, 200)}[region]
    assert (inside[0], outside[0]) == expected
    assert fast.composite(natural, painted, mask, region="all") is painted
    with pytest.raises(fast.FastStyleError):
        fast.composite(natural, painted, mask, region="sideways")


def test_the_style_processor_paints_the_frame_and_leaves_it_alone_without_faces_in_faces_mode():
    from core.analysis.styling import StyleProcessor

    frame = photo()
    whole = FrameResult()
    StyleProcessor(size=160).process(frame, whole)
    assert whole.image is not None and whole.image.shape == frame.shape
    nobody = FrameResult()
    StyleProcessor(size=160, region="faces").process(frame, nobody)
    assert nobody.image is None  # no face: nothing to paint
    marks = {"left_eye": [(90.0, 100.0)], "right_eye": [(130.0, 100.0)], "nose_tip": [(110.0, 125.0)],
             "mouth_corners": [(95.0, 145.0), (125.0, 145.0)]}  # fmt: skip
    face = Face(Box(70, 150, 170, 70), detector="yunet", landmarks=marks)
    background = FrameResult(faces=[face])
    StyleProcessor(size=160, region="background").process(frame, background)
    np.testing.assert_array_equal(background.image[110:120, 105:115], frame[110:120, 105:115])  # the face stays natural
    assert np.abs(background.image[200:230, 250:300].astype(int) - frame[200:230, 250:300]).mean() > 10  # the rest is painted
    with pytest.raises(fast.FastStyleError):
        StyleProcessor(region="split", face_style=None)


def test_a_live_stream_slower_than_the_camera_resends_the_last_painted_frame(two_face_frame):
    """Frame dropping: while the style network works, the camera's newer frames are not queued; the
    browser gets the newest painted frame again (never the camera's once one is painted)."""
    import time

    from core.analysis.styling import StyleProcessor
    from core.stream.live import LiveStream
    from core.stream.pipeline import PipelineConfig
    from tests.stream.test_pipeline import av_frame

    live = LiveStream(PipelineConfig(detector=None, processors=(StyleProcessor(size=320),), overlays=False))
    live.video_frame_callback(av_frame(two_face_frame, 0))
    assert live.wait_processed(30)
    sent = []
    for i in range(1, 21):  # faster than the network paints 640x480 frames here
        sent.append(live.video_frame_callback(av_frame(two_face_frame, 3000 * i)).to_ndarray(format="bgr24"))
        time.sleep(1 / 60)
    assert all(np.abs(image.astype(int) - two_face_frame).mean() > 10 for image in sent)  # painted, every one
    assert live.wait_processed(30) and live.stats.frames_total < 21  # all done, yet fewer: frames were dropped, not queued
