"""Face detectors behind one interface: ``detector(frame_bgr) -> list[Box]``.

- ``haar``: OpenCV's frontal-face Haar cascade; fast (a few ms per 640x480 frame here), the live default.
- ``hog``: dlib's HOG + linear SVM detector; slower, fewer false positives, better on turned faces.
- ``cnn``: dlib's MMOD CNN detector; the most robust, seconds per frame on a CPU (not for live use).

Each detector works on a copy of the frame shrunk so that its longer side is at most
``max_side`` pixels and maps the boxes back to the frame's coordinates. Instances are shared
across threads (:func:`get_detector` caches one per configuration); the underlying OpenCV and
dlib objects are not documented as thread-safe, so each call holds the instance's lock.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from functools import lru_cache

import cv2
import numpy as np

from core.faces import Box

DETECTORS = ("haar", "hog", "cnn")


class Detector(ABC):
    """Finds faces in a BGR uint8 frame; returns boxes sorted left to right, clipped to the frame."""

    name: str

    def __init__(self, max_side: int) -> None:
        self.max_side = max_side
        self._lock = threading.Lock()

    def __call__(self, frame_bgr: np.ndarray) -> list[Box]:
        height, width = frame_bgr.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = frame_bgr
        if scale < 1.0:
            small = cv2.resize(frame_bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        with self._lock:
            boxes = self._detect(small)
        boxes = [b.scaled(1.0 / scale).clip(width, height) for b in boxes]
        return sorted((b for b in boxes if b.area > 0), key=lambda b: b.left)

    @abstractmethod
    def _detect(self, frame_bgr: np.ndarray) -> list[Box]:
        """Boxes in the coordinates of ``frame_bgr`` (already shrunk)."""


class HaarDetector(Detector):
    name = "haar"

    def __init__(self, max_side: int = 640, scale_factor: float = 1.2, min_neighbors: int = 5) -> None:
        super().__init__(max_side)
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV could not load its Haar cascade from {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def _detect(self, frame_bgr: np.ndarray) -> list[Box]:
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        gray = cv2.equalizeHist(gray)
        min_side = max(24, min(gray.shape) // 12)
        found = self._cascade.detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
        )
        return [Box.from_xywh(*xywh) for xywh in found]


class DlibHogDetector(Detector):
    name = "hog"

    def __init__(self, max_side: int = 640, upsample: int = 0) -> None:
        super().__init__(max_side)
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample

    def _detect(self, frame_bgr: np.ndarray) -> list[Box]:
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        return [Box(r.top(), r.right(), r.bottom(), r.left()) for r in self._detector(rgb, self.upsample)]


class DlibCnnDetector(Detector):
    name = "cnn"

    def __init__(self, max_side: int = 800, upsample: int = 0) -> None:
        super().__init__(max_side)
        import dlib
        import face_recognition_models

        self._detector = dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location())
        self.upsample = upsample

    def _detect(self, frame_bgr: np.ndarray) -> list[Box]:
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        found = self._detector(rgb, self.upsample)
        return [Box(d.rect.top(), d.rect.right(), d.rect.bottom(), d.rect.left()) for d in found]


_CLASSES: dict[str, type[Detector]] = {"haar": HaarDetector, "hog": DlibHogDetector, "cnn": DlibCnnDetector}


@lru_cache(maxsize=None)
def get_detector(name: str) -> Detector:
    """The shared detector called ``name`` (one of :data:`DETECTORS`), built on first use."""
    if name not in _CLASSES:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return _CLASSES[name]()
