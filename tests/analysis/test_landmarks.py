import cv2
import pytest

from core.analysis.detect import get_detector
from core.analysis.landmarks import eye_centers, eye_line_angle, face_landmarks
from core.faces import Face


def rotate(image, degrees):
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)


def test_eyes_sit_in_the_upper_half_of_the_box_named_from_the_image_point_of_view(two_face_frame):
    for box in get_detector("hog")(two_face_frame):
        face = Face(box)
        landmarks = face_landmarks(two_face_frame, face)
        assert face.landmarks is landmarks  # stored: computed once per face
        (lx, ly), (rx, ry) = eye_centers(landmarks)
        assert box.left < lx < rx < box.right
        assert box.top < ry < (box.top + box.bottom) / 2 and box.top < ly < (box.top + box.bottom) / 2
        assert abs(eye_line_angle(landmarks)) < 12


@pytest.mark.parametrize("degrees", [-20, 20])
def test_eye_line_angle_follows_a_rotated_face(two_face_frame, degrees):
    upright = two_face_frame[100:360, 20:280]
    tilted = rotate(upright, degrees)  # OpenCV: positive = counter-clockwise on screen
    (box,) = get_detector("hog")(cv2.resize(tilted, None, fx=2, fy=2))
    face = Face(box)
    angle = eye_line_angle(face_landmarks(cv2.resize(tilted, None, fx=2, fy=2), face))
    base = eye_line_angle(face_landmarks(upright, Face(get_detector("hog")(upright)[0])))
    assert angle - base == pytest.approx(-degrees, abs=6)
