import logging
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from core.faces import Box, Face, FrameResult, Processor
from core.stream.live import LiveStream
from core.stream.pipeline import FaceTracker, FramePipeline, PipelineConfig


class Exploding(Processor):
    name = "exploding"
    label = "Always fails"

    def __init__(self) -> None:
        self.calls = 0

    def process(self, frame_bgr, result):
        self.calls += 1
        raise RuntimeError("boom")


class Naming(Processor):
    name = "naming"
    label = "Names every face"

    def process(self, frame_bgr, result):
        for i, face in enumerate(result.faces):
            face.name = f"person {i}"


class FrameLabel(Processor):
    name = "frame_label"
    label = "A frame-level label"
    needs_faces = False

    def process(self, frame_bgr, result):
        result.labels.append(("grey wall", 0.9))


def test_detects_tracks_and_draws_two_real_faces(two_face_frame):
    pipeline = FramePipeline(PipelineConfig(detector="haar"))
    unconfirmed, first_frame = pipeline.annotate(two_face_frame)
    assert first_frame.faces == [] and np.array_equal(unconfirmed, two_face_frame)  # not shown before its second frame
    annotated, result = pipeline.annotate(two_face_frame)
    assert len(result.faces) == 2
    first, second = (f.track_id for f in result.faces)
    assert first is not None and second is not None and first != second
    _, again = pipeline.annotate(two_face_frame)
    assert [f.track_id for f in again.faces] == [first, second]  # same faces, same tracks
    other = FramePipeline(PipelineConfig(detector="haar"))
    other.annotate(two_face_frame)
    _, other_stream = other.annotate(two_face_frame)
    assert not {f.track_id for f in other_stream.faces} & {first, second}  # ids unique across streams
    assert annotated.shape == two_face_frame.shape and annotated.dtype == np.uint8
    assert not np.array_equal(annotated, two_face_frame)  # boxes were drawn
    assert np.array_equal(two_face_frame, two_face_frame.copy())  # and the input is untouched
    assert set(result.timings_ms) == {"detect", "draw"}


def test_a_failing_processor_lets_the_frame_through_and_is_reported_once(two_face_frame, caplog):
    exploding = Exploding()
    pipeline = FramePipeline(PipelineConfig(detector="haar", processors=(exploding, Naming())))
    reference, _ = FramePipeline(PipelineConfig(detector="haar", processors=(Naming(),), tracking=False)).annotate(two_face_frame)
    with caplog.at_level(logging.ERROR, logger="core.stream.pipeline"):
        for _ in range(4):  # the faces show from their second frame on
            annotated, result = pipeline.annotate(two_face_frame)
    assert exploding.calls == 3
    assert [f.name for f in result.faces] == ["person 0", "person 1"]  # later processors still ran
    assert np.array_equal(annotated, reference)
    errors = pipeline.stats.snapshot()["errors"]
    assert errors == {"exploding": "RuntimeError: boom"}
    assert sum("exploding" in r.getMessage() for r in caplog.records) == 1


def test_a_failing_detector_leaves_the_frame_unannotated(two_face_frame, monkeypatch):
    def broken(name, still=False):
        raise OSError("cascade file gone")

    monkeypatch.setattr("core.stream.pipeline.get_detector", broken)
    pipeline = FramePipeline(PipelineConfig(detector="haar", processors=(Naming(),)))
    annotated, result = pipeline.annotate(two_face_frame)
    assert result.faces == []
    assert np.array_equal(annotated, two_face_frame)
    assert "detect" in pipeline.stats.snapshot()["errors"]


def test_face_processors_are_skipped_without_faces_frame_processors_are_not():
    exploding = Exploding()
    pipeline = FramePipeline(PipelineConfig(detector="haar", processors=(exploding, FrameLabel())))
    _, result = pipeline.annotate(np.zeros((480, 640, 3), np.uint8))
    assert exploding.calls == 0
    assert result.labels == [("grey wall", 0.9)]


def test_configuration_switches_between_frames_from_another_thread(two_face_frame):
    pipeline = FramePipeline(PipelineConfig(detector="haar"))
    stop = threading.Event()
    counts: list[int] = []

    def frames():
        while not stop.is_set():
            counts.append(len(pipeline.annotate(two_face_frame)[1].faces))

    worker = threading.Thread(target=frames)
    worker.start()
    try:
        for detector in ["hog", None, "haar", None]:
            pipeline.configure(PipelineConfig(detector=detector))
            time.sleep(0.2)
    finally:
        pipeline.configure(PipelineConfig(detector=None))
        stop.set()
        worker.join(timeout=30)
    assert not pipeline.stats.snapshot()["errors"]
    assert set(counts) == {0, 2}  # both configurations took effect, no frame saw a half-made one
    assert len(pipeline.annotate(two_face_frame)[1].faces) == 0


def test_stats_report_fps_faces_and_stage_times(two_face_frame):
    pipeline = FramePipeline(PipelineConfig(detector="haar"))
    for _ in range(5):
        pipeline.annotate(two_face_frame)
    stats = pipeline.stats.snapshot()
    assert stats["fps"] > 0 and stats["faces"] == 2 and stats["frames_total"] == 5
    assert stats["frame_ms"] > 0 and set(stats["stage_ms"]) == {"detect", "draw"}


def test_tracker_keeps_ids_of_moving_faces_and_forgets_lost_ones():
    tracker = FaceTracker(min_iou=0.3, max_missed=2)
    a, b = Face(Box(100, 200, 200, 100)), Face(Box(100, 500, 200, 400))
    tracker.update([a, b])
    moved = [Face(Box(105, 505, 205, 405)), Face(Box(104, 206, 204, 106))]
    tracker.update(moved)
    assert [f.track_id for f in moved] == [b.track_id, a.track_id]
    for _ in range(3):
        tracker.update([])
    back = [Face(Box(100, 200, 200, 100))]
    tracker.update(back)
    assert back[0].track_id not in (a.track_id, b.track_id)


def test_still_images_are_not_tracked(two_face_frame):
    pipeline = FramePipeline(PipelineConfig(detector="haar", tracking=False))
    assert [f.track_id for f in pipeline.process(two_face_frame).faces] == [None, None]


def av_frame(image, pts: int) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(image, format="bgr24")
    frame.pts, frame.time_base = pts, Fraction(1, 90000)
    return frame


def test_live_stream_callback_annotates_av_frames_and_keeps_timing(two_face_frame):
    live = LiveStream()
    first = live.video_frame_callback(av_frame(two_face_frame, 3000))
    assert np.array_equal(first.to_ndarray(format="bgr24"), two_face_frame)  # nothing processed yet: the camera's frame
    assert live.wait_processed()
    live.video_frame_callback(av_frame(two_face_frame, 4500))  # the faces show from their second frame
    assert live.wait_processed() and live.stats.snapshot()["faces"] == 2
    out = live.video_frame_callback(av_frame(two_face_frame, 6000))
    assert (out.width, out.height, out.pts, out.time_base) == (640, 480, 6000, Fraction(1, 90000))
    assert not np.array_equal(out.to_ndarray(format="bgr24"), two_face_frame)  # boxes drawn
    live.configure(PipelineConfig(detector=None))
    live.video_frame_callback(av_frame(two_face_frame, 9000))
    assert live.wait_processed()
    plain = live.video_frame_callback(av_frame(two_face_frame, 12000)).to_ndarray(format="bgr24")
    assert np.array_equal(plain, two_face_frame)
    assert live.status().state == "live"
    live.on_ended()
    assert live.status().state == "ended"


class Slow(Processor):
    name = "slow"
    label = "Takes 3 s a frame"
    needs_faces = False

    def process(self, frame_bgr, result):
        time.sleep(3.0)


def test_a_slow_frame_never_holds_the_stream_back(two_face_frame):
    """The callback returns at once whatever the pipeline costs: the camera's frames go back (the
    video stays live), newer frames replace older unprocessed ones, and the stream says it is live."""
    live = LiveStream(PipelineConfig(detector="haar", processors=(Slow(),)))
    started = time.monotonic()
    for i in range(30):  # one second of video while the pipeline is busy with the first frame
        out = live.video_frame_callback(av_frame(two_face_frame, 3000 * i))
        assert out.pts == 3000 * i
        time.sleep(1 / 30)
    assert time.monotonic() - started < 2.0
    assert live.status().state == "live"
    assert live.wait_processed(10) and live.stats.frames_total == 2  # the first frame, then only the newest


def test_a_stream_whose_frames_stop_is_reported_silent(two_face_frame, monkeypatch):
    live = LiveStream(PipelineConfig(detector=None))
    assert live.status().state == "idle"
    live.video_frame_callback(av_frame(two_face_frame, 0))
    monkeypatch.setattr("core.stream.live.SILENT_S", 0.0)
    time.sleep(0.01)
    assert live.status().state == "silent"


def test_face_json_follows_the_cli_contract():
    face = Face(Box(1, 20, 30, 2), keypoints={"nose_tip": (10.04, 12.0)}, age=31.26, gender="female")
    data = face.to_json()
    assert data["box"] == [1, 20, 30, 2]
    assert data["keypoints"] == {"nose_tip": [10.0, 12.0]}
    assert data["age"] == 31.3 and data["gender"] == "female" and data["name"] is None
    assert FrameResult().faces == []


@pytest.mark.parametrize("box,other,expected", [
    (Box(0, 10, 10, 0), Box(0, 10, 10, 0), 1.0),
    (Box(0, 10, 10, 0), Box(0, 20, 10, 10), 0.0),
    (Box(0, 10, 10, 0), Box(0, 15, 10, 5), 50 / 150),
])
def test_box_iou(box, other, expected):
    assert box.iou(other) == pytest.approx(expected)


def test_a_clip_with_gaps_shows_the_wall_alone_before_the_next_face_steps_in(face_photos):
    from core.stream.synthetic import face_clip

    frames = list(face_clip(face_photos[:2], 60, size=(320, 240), face_side=160, gap_frames=10))
    walls = [i for i, frame in enumerate(frames) if (frame == 110).all()]
    assert walls == [*range(20, 30), *range(50, 60)]
    assert not (np.array_equal(frames[0], frames[31]))  # the next photo after the gap
