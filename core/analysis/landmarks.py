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


def yunet_points(landmarks: Landmarks | None) -> np.ndarray | None:
    """YuNet's five points (5, 2): left eye, right eye, nose tip, mouth corners (image's point of
    view, left first); None for landmarks of another layout (dlib's) or none."""
    if landmarks is None or "mouth_corners" not in landmarks:
        return None
    return np.array([*landmarks["left_eye"], *landmarks["right_eye"], *landmarks["nose_tip"], *landmarks["mouth_corners"]], np.float64)


def yunet_row_in_image(row: np.ndarray, x0: float, y0: float, scale: float) -> np.ndarray:
    """A YuNet row found in a view whose origin is (x0, y0) of an image scaled by ``scale``, in the
    original image's pixels (x, y, w, h, five landmarks, score)."""
    row = row.copy()
    row[[0, 4, 6, 8, 10, 12]] += x0
    row[[1, 5, 7, 9, 11, 13]] += y0
    row[:14] /= scale
    return row


def yunet_row(face: Face) -> np.ndarray | None:
    """The inverse of :func:`yunet_landmarks` (what ``cv2.FaceRecognizerSF.alignCrop`` takes), or
    None when ``face`` has no YuNet landmarks."""
    points = yunet_points(face.landmarks)
    if points is None:
        return None
    top, right, bottom, left = face.box
    return np.array([left, top, right - left, bottom - top, *points.ravel(), 1.0], np.float32)


def similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least-squares (scale, angle, translation) mapping ``source`` points onto ``target`` (Umeyama):
    ``target ~ scale * R(angle) @ source + translation``."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    a, b = source - source_mean, target - target_mean
    cross = (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum()
    dot = (a * b).sum()
    angle = np.arctan2(cross, dot)
    scale = np.hypot(cross, dot) / max((a**2).sum(), 1e-9)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return scale, angle, target_mean - scale * rotation @ source_mean


def follow(points: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``points`` moved as the reference points ``before`` moved to ``after`` (a similarity)."""
    scale, angle, translation = similarity(before, after)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ (scale * rotation).T + translation


def anchor_points(face: Face) -> np.ndarray:
    """Points that move with the face, to carry other points from frame to frame: the detector's
    landmarks when it gives them (they follow turns and tilts), else the box's corners."""
    points = yunet_points(face.landmarks)
    if points is not None:
        return points
    top, right, bottom, left = face.box
    return np.array([(left, top), (right, top), (left, bottom), (right, bottom)], np.float64)


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
