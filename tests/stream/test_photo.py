"""One photo analysed by every available processor (the Photo page's logic, shared with analyze)."""

from __future__ import annotations

import numpy as np
import pytest

from core.analysis import processors
from core.analysis.processors import ProcessorSpec, build_processors
from core.faces import FrameResult, Processor
from core.images import load_image
from core.stream.photo import analysis_json, analyze_photo, face_rows, photo_pipeline
from core.stream.pipeline import FramePipeline, PipelineConfig
from tests.conftest import shared_data


class Namer(Processor):
    name = "namer"
    label = "Namer"

    def __init__(self, given: str = "Somebody") -> None:
        self.given = given

    def process(self, frame_bgr, result: FrameResult) -> None:
        for face in result.faces:
            face.name, face.distance, face.age = self.given, 0.25, 40.0
            face.keypoints = {"nose_tip": ((face.box.left + face.box.right) / 2, (face.box.top + face.box.bottom) / 2)}
        result.labels.append(("suit", 0.61234))


class Broken(Processor):
    name = "broken"
    label = "Broken"

    def process(self, frame_bgr, result: FrameResult) -> None:
        raise RuntimeError("model file damaged")


@pytest.fixture
def catalogue(monkeypatch):
    """A catalogue of test processors: namer, broken (fails on every photo), missing (unavailable)."""
    monkeypatch.setattr(processors, "_specs", {})
    monkeypatch.setattr(processors, "_instances", {})
    monkeypatch.setattr(processors, "PROCESSOR_MODULES", ())
    processors.register(ProcessorSpec("namer", "Namer", "names every face", Namer))
    processors.register(ProcessorSpec("broken", "Broken", "always fails", lambda: Broken()))
    processors.register(ProcessorSpec("missing", "Missing", "never here", Namer, unavailable=lambda: "no weights in weights/"))


@pytest.fixture(scope="module")
def two_people():
    return load_image(shared_data("faces_identities_knn_examples/test/obama_and_biden.jpg"))


def test_build_processors_gives_each_its_own_options_and_says_why_others_are_missing(catalogue):
    built, missing = build_processors()
    assert [p.name for p in built] == ["namer", "broken"]
    assert missing == {"missing": "Missing is unavailable: no weights in weights/"}

    built, missing = build_processors(["nope", "namer"], {"namer": {"given": "Ada"}, "broken": {"unused": 1}})
    assert [p.given for p in built] == ["Ada"]
    assert list(missing) == ["nope"] and "unknown processor 'nope'" in missing["nope"]


def test_a_photo_is_analysed_by_every_available_processor_and_a_failing_one_is_reported(catalogue, two_people):
    pipeline, unavailable = photo_pipeline("haar")
    assert list(unavailable) == ["missing"] and pipeline.config.tracking is False

    analysis = analyze_photo(pipeline, two_people)
    assert len(analysis.result.faces) == 2
    assert analysis.errors == {"broken": "RuntimeError: model file damaged"}
    assert analysis.annotated.shape == two_people.shape and not np.array_equal(analysis.annotated, two_people)

    record = analysis_json("obama_and_biden.jpg", two_people, analysis.result)
    assert (record["image"], record["width"], record["height"]) == ("obama_and_biden.jpg", 2000, 1428)
    assert [face["name"] for face in record["faces"]] == ["Somebody", "Somebody"]
    assert all(face["track_id"] is None for face in record["faces"])
    assert record["labels"] == [{"label": "suit", "probability": 0.6123}]

    rows = face_rows(analysis.result)
    assert [row["Face"] for row in rows] == [1, 2]
    assert rows[0]["Name"] == "Somebody" and rows[0]["Keypoints"] == 1 and rows[0]["Age"] == 40.0
    top, right, bottom, left = analysis.result.faces[0].box
    assert rows[0]["Position (x, y, width, height)"] == f"{left}, {top}, {right - left}, {bottom - top}"


def test_table_rows_leave_blank_what_no_processor_found_and_say_no_match_for_unmatched_faces(two_people):
    analysis = analyze_photo(FramePipeline(PipelineConfig(detector="haar", tracking=False)), two_people)
    rows = face_rows(analysis.result)
    assert len(rows) == 2 and rows[0]["Name"] is None and rows[0]["Keypoints"] is None and rows[0]["Age"] is None
    analysis.result.faces[0].distance = 0.7  # recognition ran but matched nobody
    assert face_rows(analysis.result)[0]["Name"] == "No match"
