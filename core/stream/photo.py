"""One still photo analysed by every available processor: the Photo page and ``python -m core analyze``.

Invariant: :func:`analysis_json` is the single definition of an analysed image's JSON record
(the CLI prints it, the Photo page offers it for download), so the two never drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.analysis.detect import DEFAULT_DETECTOR
from core.analysis.processors import build_processors
from core.faces import FrameResult
from core.stream.pipeline import FramePipeline, PipelineConfig

PHOTO_MIN_WIDTH = 720  # a smaller photo is shown enlarged to this width, so its captions can be read


def photo_pipeline(detector: str = DEFAULT_DETECTOR, options: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[FramePipeline, dict[str, str]]:
    """A pipeline for unrelated still images (no tracking) running every processor that can run
    here; returns it with {processor name: why it cannot run} for the others."""
    processors, unavailable = build_processors(options=options)
    return FramePipeline(PipelineConfig(detector=detector, processors=processors, tracking=False, numbered=True, min_width=PHOTO_MIN_WIDTH)), unavailable


def style_pipeline(style_options: Mapping[str, Any], tracking: bool) -> FramePipeline:
    """A pipeline painting each frame with the Style processor built from ``style_options`` (its
    options, see ``core.analysis.styling``), no overlays; faces are found only when its region
    needs them. Raises what building the processor raises (a bad style, no models)."""
    from core.analysis.processors import get_processor

    processor = get_processor("style", **style_options)
    detector = None if style_options.get("region", "all") == "all" else DEFAULT_DETECTOR
    return FramePipeline(PipelineConfig(detector=detector, processors=(processor,), tracking=tracking, overlays=False))


def analysis_json(image_name: str, image: np.ndarray, result: FrameResult) -> dict[str, Any]:
    """The JSON record of one analysed image (the CLI contract of ``analyze``)."""
    height, width = image.shape[:2]
    return {
        "image": image_name,
        "width": width,
        "height": height,
        "faces": [face.to_json() for face in result.faces],
        "labels": [{"label": label, "probability": round(float(p), 4)} for label, p in result.labels],
    }


def face_rows(result: FrameResult) -> list[dict[str, Any]]:
    """One row per face for a table a person reads: what each processor found, blank where nothing."""
    rows = []
    for number, face in enumerate(result.faces, start=1):
        record = face.to_json()
        rows.append(
            {
                "Face": number,  # the number drawn beside its box
                "Name": face.name or ("No match" if face.distance is not None else None),
                "Match distance": record["distance"],
                "Age": record["age"],
                "Gender": None if face.gender is None else face.gender.capitalize(),
                "Gender certainty": None if face.gender_confidence is None else f"{face.gender_confidence:.0%}",
                "Head tilt (°)": record["angle"],
                "Keypoints": None if face.keypoints is None else len(face.keypoints),
                "Position (x, y, width, height)": f"{face.box.left}, {face.box.top}, {face.box.width}, {face.box.height}",
            }
        )
    return rows


@dataclass(frozen=True)
class PhotoAnalysis:
    """What the Photo page shows: the annotated image (BGR), the result, and the stages that failed."""

    annotated: np.ndarray
    result: FrameResult
    errors: dict[str, str]


def analyze_photo(pipeline: FramePipeline, image: np.ndarray) -> PhotoAnalysis:
    """Run ``pipeline`` on one image; a failing processor is reported in ``errors``, never raised."""
    annotated, result = pipeline.annotate(image)
    return PhotoAnalysis(annotated, result, pipeline.stats.snapshot()["errors"])
