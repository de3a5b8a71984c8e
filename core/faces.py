"""The records a frame is analysed into, and the :class:`Processor` interface that fills them.

Detection creates one :class:`Face` per face with only its ``box``; each processor then
enriches the same record (insightface's ``FaceAnalysis`` pattern). Fields a processor has not
filled stay ``None``, so a record is always safe to draw or serialise. A processor knows only
these records, never who calls it (a pipeline, a video job, a photo).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class Box(NamedTuple):
    """A face box in pixels, in ``face_recognition``'s order: (top, right, bottom, left).

    Invariant: ``left < right`` and ``top < bottom``; coordinates may lie outside the frame
    only when a detector reports so, :meth:`clip` brings them inside.
    """

    top: int
    right: int
    bottom: int
    left: int

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        return cls(int(round(y)), int(round(x + w)), int(round(y + h)), int(round(x)))

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    def scaled(self, factor: float) -> Box:
        return Box(*(int(round(v * factor)) for v in self))

    def clip(self, frame_width: int, frame_height: int) -> Box:
        return Box(
            max(0, self.top),
            min(frame_width, self.right),
            min(frame_height, self.bottom),
            max(0, self.left),
        )

    def iou(self, other: Box) -> float:
        """Intersection over union, 0 when the boxes do not overlap."""
        inter = Box(
            max(self.top, other.top),
            min(self.right, other.right),
            min(self.bottom, other.bottom),
            max(self.left, other.left),
        )
        if inter.width <= 0 or inter.height <= 0:
            return 0.0
        union = self.area + other.area - inter.area
        return inter.area / union if union else 0.0


class Anchor(NamedTuple):
    """A face's own frame, for drawing on it: origin midway between the eyes, ``u`` along the eye
    line towards the eye on the image's right, ``v`` perpendicular towards the mouth, one unit the
    distance between the eyes (``iod``, pixels). Point (u, v) of the face is at
    ``(x, y) + iod * (u * (cos a, sin a) + v * (-sin a, cos a))`` with ``a = angle`` (radians, the
    roll). ``nose`` and ``mouth`` are where this face's nose tip and mouth centre lie, in (u, v)."""

    x: float
    y: float
    iod: float
    angle: float
    nose: tuple[float, float] = (0.0, 0.62)
    mouth: tuple[float, float] = (0.0, 1.15)

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        """(n, 2) face points (u, v) -> (n, 2) image pixels (x, y)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        return np.array([self.x, self.y]) + self.iod * (uv[:, :1] * [c, s] + uv[:, 1:] * [-s, c])

    def to_face(self, xy: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_image`."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        d = (np.asarray(xy, np.float64).reshape(-1, 2) - [self.x, self.y]) / self.iod
        return np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c], axis=1)


Landmarks = dict[str, list[tuple[float, float]]]
"""Named facial points in frame pixels, (x, y), the image's point of view (``left_eye`` is on the
image's left). Always ``left_eye``, ``right_eye`` and ``nose_tip``; YuNet gives one point for each
(the eye centres) and ``mouth_corners``; dlib's five-point predictor two eye corners per eye."""


@dataclass
class Face:
    """One face in one frame; ``box`` is always set, every other field is filled by a processor."""

    box: Box
    detector: str | None = None  # the detector that found it (its box geometry differs by detector)
    track_id: int | None = None
    landmarks: Landmarks | None = None
    keypoints: dict[str, tuple[float, float]] | None = None
    encoding: np.ndarray | None = None
    name: str | None = None
    distance: float | None = None
    visitor: bool = False  # ``name`` is a visitor's label ("Visitor 7"), not an enrolled person's
    age: float | None = None
    gender: str | None = None
    gender_confidence: float | None = None
    angle: float | None = None
    anchor: Anchor | None = None  # set by the effects processor when the face's points are sure
    effects: tuple[str, ...] = ()  # the effects to draw on this face (core.analysis.effects)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready data (the CLI contract); the encoding is left out, it is not for people."""
        return {
            "box": list(self.box),
            "track_id": self.track_id,
            "keypoints": (
                {k: [round(float(x), 1), round(float(y), 1)] for k, (x, y) in self.keypoints.items()}
                if self.keypoints is not None
                else None
            ),
            "name": self.name,
            "visitor": self.visitor,
            "distance": None if self.distance is None else round(float(self.distance), 4),
            "age": None if self.age is None else round(float(self.age), 1),
            "gender": self.gender,
            "gender_confidence": (
                None if self.gender_confidence is None else round(float(self.gender_confidence), 3)
            ),
            "angle": None if self.angle is None else round(float(self.angle), 1),
            "effects": list(self.effects),
        }


@dataclass
class FrameResult:
    """Everything the pipeline learnt about one frame.

    ``timings_ms`` maps a stage name ("detect", a processor's name, "draw") to its cost on this
    frame; ``labels`` holds frame-level (label, probability) pairs such as ImageNet classes.
    """

    faces: list[Face] = field(default_factory=list)
    labels: list[tuple[str, float]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    image: np.ndarray | None = None  # the frame as a processor repainted it (style), drawn instead of the camera's


class Processor(ABC):
    """A pipeline stage that enriches ``result`` (its faces or its frame labels) in place.

    ``process`` is called from the frame thread; an instance may be shared by several
    pipelines, so any state it keeps must be guarded by a lock or keyed by pipeline.
    """

    name: str
    label: str
    needs_faces: bool = True

    @abstractmethod
    def process(self, frame_bgr: np.ndarray, result: FrameResult) -> None: ...
