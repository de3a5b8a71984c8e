import cv2
import numpy as np
import pytest

from core.analysis.age_gender import (
    AGE_CHIP,
    AgeGenderModel,
    AgeGenderProcessor,
    Estimate,
    TrackSmoother,
    face_chip,
)
from core.analysis.detect import get_detector
from core.analysis.landmarks import shape_5
from core.analysis.processors import processor_specs
from core.faces import Box, Face
from core.stream.pipeline import FramePipeline, PipelineConfig
from tests.conftest import paste


@pytest.fixture(scope="module")
def model() -> AgeGenderModel:
    return AgeGenderModel()


def centred(photo) -> tuple[np.ndarray, Box]:
    """A 400x400 canvas with ``photo`` (200 px) in the middle, and its largest HOG face box."""
    canvas = np.full((400, 400, 3), 110, np.uint8)
    paste(canvas, photo, 100, 100, 200)
    return canvas, max(get_detector("hog")(canvas), key=lambda box: box.area)


def rotate(canvas: np.ndarray, box: Box, degrees: float) -> tuple[np.ndarray, Box]:
    """``canvas`` turned about its centre (OpenCV: positive = counter-clockwise on screen) and the
    face box moved with it, axis-aligned and of the same size, as a detector would report it."""
    matrix = cv2.getRotationMatrix2D((200, 200), degrees, 1.0)
    x, y = matrix @ np.array([(box.left + box.right) / 2, (box.top + box.bottom) / 2, 1.0])
    half_w, half_h = box.width / 2, box.height / 2
    moved = Box(round(y - half_h), round(x + half_w), round(y + half_h), round(x - half_w))
    return cv2.warpAffine(canvas, matrix, (400, 400), borderMode=cv2.BORDER_REPLICATE), moved


@pytest.mark.parametrize("degrees", [30, -30])
def test_a_face_rotated_30_degrees_reads_as_the_upright_one(model, face_photos, degrees):
    for photo in face_photos[:8]:
        canvas, box = centred(photo)
        upright = model.estimate(canvas, [Face(box)])[0]
        image, moved = rotate(canvas, box, degrees)
        tilted = model.estimate(image, [Face(moved)])[0]
        assert (tilted.male_probability >= 0.5) == (upright.male_probability >= 0.5), photo
        assert abs(tilted.age - upright.age) <= 5, photo
        assert tilted.angle - upright.angle == pytest.approx(-degrees, abs=8), photo


def test_the_chip_is_de_rotated(face_photos):
    canvas, box = centred(face_photos[5])
    upright = Face(box)
    reference = face_chip(canvas, upright, AGE_CHIP)
    image, moved = rotate(canvas, box, 30)
    face = Face(moved)
    straight = face_chip(image, face, AGE_CHIP)
    tilted = face_chip(image, face, AGE_CHIP, upright=False)

    def difference(chip):
        return float(np.mean(np.abs(chip.astype(float) - reference.astype(float))))

    assert straight.shape == (AGE_CHIP, AGE_CHIP, 3)
    assert difference(straight) < difference(tilted) / 2


def test_a_yunet_chip_is_where_dlib_puts_the_face(face_photos):
    """The chip from YuNet's landmarks is closer to dlib's own chip of the face (HOG box, five-point
    shape: what the networks were trained on) than the same YuNet chip turned by 10 degrees or
    with a face 13 % smaller (padding 0.3): the template puts YuNet's points where dlib's chips have them."""
    import dlib

    def difference(chip, reference):
        return float(np.mean(np.abs(chip[4:-4, 4:-4].astype(float) - reference[4:-4, 4:-4].astype(float))))

    rows = []
    for photo in face_photos[:12]:
        canvas, box = centred(photo)
        reference = dlib.extract_image_chip(canvas, dlib.get_face_chip_details(shape_5(canvas, Face(box)), AGE_CHIP, 0.2))
        face = max(get_detector("yunet").faces(canvas), key=lambda f: f.box.area)
        chips = [face_chip(canvas, face, AGE_CHIP, view=view)[:, :, ::-1] for view in ((0.2, 0.0), (0.2, 10.0), (0.3, 0.0))]
        rows.append([difference(chip, reference) for chip in chips])
    ours, turned, scaled = np.median(rows, axis=0)
    assert ours < turned and ours < scaled, rows


def test_yunet_landmarks_are_used_without_dlib(model, two_face_frame, monkeypatch):
    faces = get_detector("yunet").faces(two_face_frame)
    assert len(faces) == 2 and all("mouth_corners" in face.landmarks for face in faces)

    def no_dlib(*args):
        raise AssertionError("dlib's predictor ran on a face that already had landmarks")

    monkeypatch.setattr("core.analysis.landmarks.shape_5", no_dlib)
    estimates = model.estimate(two_face_frame, faces)
    assert all(0 < e.age < 100 and abs(e.angle) < 10 for e in estimates)


def test_smoother_averages_readings_per_track_and_forgets_old_tracks():
    smoother = TrackSmoother(window=4)
    assert smoother.update(1, Estimate(30.0, 1.0, 5.0))[:3] == (30.0, 1.0, 5.0)
    assert smoother.update(1, Estimate(40.0, 0.0, -5.0))[:3] == (35.0, 0.5, -5.0)  # the angle is the last one
    assert smoother.update(2, Estimate(60.0, 0.2, 0.0))[:2] == (60.0, pytest.approx(0.2))
    for _ in range(20):  # a long run of one reading converges to it, without flicker
        reading = smoother.update(1, Estimate(50.0, 0.0, 0.0))
    assert reading.age == pytest.approx(50.0, abs=0.1) and reading.male_probability == pytest.approx(0.0, abs=0.01)
    assert smoother.current(1).readings == 22
    forgetful = TrackSmoother(forget_after_s=0.0)
    forgetful.update(7, Estimate(30.0, 1.0, 0.0))
    assert forgetful.current(7) is None


class CountingModel:
    """Wraps the real model, counting the faces it is asked to read."""

    def __init__(self, model: AgeGenderModel) -> None:
        self.model = model
        self.reads: list[int] = []

    def estimate(self, frame_bgr, faces, **options):
        self.reads.append(len(faces))
        return self.model.estimate(frame_bgr, faces, **options)


def test_processor_fills_every_face_reads_new_tracks_first_within_its_budget(model, two_face_frame):
    processor = AgeGenderProcessor(settle=2, settle_s=0.0, refresh_s=0.0, reads_per_frame=1, model=CountingModel(model))
    pipeline = FramePipeline(PipelineConfig(detector="hog", processors=(processor,)))
    pipeline.process(two_face_frame)  # tracks start; their faces show from the second frame
    results = [pipeline.process(two_face_frame) for _ in range(5)]
    assert processor.model.reads == [1, 1, 1, 1, 1]  # never more than the budget
    assert [face.age is not None for face in results[0].faces] == [True, False]  # the left face first
    for result in results[1:]:  # from the second frame every face has a reading
        assert len(result.faces) == 2 and not pipeline.stats.snapshot()["errors"]
        for face in result.faces:
            record = face.to_json()
            assert record["gender"] in {"male", "female"} and 0.5 <= record["gender_confidence"] <= 1
            assert 0 < record["age"] < 100 and abs(record["angle"]) < 20
    # the stream's labels do not flicker: the same face keeps its reading
    assert [f.age for f in results[-1].faces] == pytest.approx([f.age for f in results[1].faces], abs=0.5)


def test_tracks_are_read_again_only_once_due(model, two_face_frame):
    processor = AgeGenderProcessor(settle=2, settle_s=0.0, refresh_s=60.0, reads_per_frame=2, model=CountingModel(model))
    pipeline = FramePipeline(PipelineConfig(detector="hog", processors=(processor,)))
    pipeline.process(two_face_frame)  # tracks start; their faces show from the second frame
    results = [pipeline.process(two_face_frame) for _ in range(4)]
    assert processor.model.reads == [2, 2]  # two readings each (settle), then nothing before refresh_s
    assert all(face.age is not None and face.angle is not None for face in results[-1].faces)


def test_still_images_are_read_afresh_every_time(model, two_face_frame):
    processor = AgeGenderProcessor(settle=2, model=CountingModel(model))
    pipeline = FramePipeline(PipelineConfig(detector="hog", processors=(processor,), tracking=False))
    first, second = pipeline.process(two_face_frame), pipeline.process(two_face_frame)
    assert processor.model.reads == [2, 2]
    assert [f.age for f in first.faces] == [f.age for f in second.faces]
    assert all(f.track_id is None for f in first.faces)


def test_the_age_gender_processor_is_in_the_catalogue():
    assert "age_gender" in [spec.name for spec in processor_specs()]
