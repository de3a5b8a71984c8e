import numpy as np
import pytest

from core.analysis.detect import DETECTORS, get_detector
from core.images import load_image
from tests.conftest import paste


@pytest.mark.parametrize("name", ["haar", "hog"])
def test_finds_the_one_face_of_real_photos(name, face_photos):
    detector = get_detector(name)
    found = [len(detector(load_image(p))) for p in face_photos[:10]]
    assert found.count(1) >= 9, found


@pytest.mark.parametrize("name", ["haar", "hog"])
def test_two_faces_are_found_left_to_right_inside_the_frame(name, two_face_frame):
    boxes = get_detector(name)(two_face_frame)
    assert len(boxes) == 2
    assert boxes[0].left < boxes[1].left
    for box, (x0, x1) in zip(boxes, [(40, 260), (360, 580)]):
        assert 0 <= box.top < box.bottom <= 480 and 0 <= box.left < box.right <= 640
        centre = (box.left + box.right) / 2
        assert x0 < centre < x1


def test_boxes_of_a_large_frame_are_mapped_back_to_its_coordinates(face_photos):
    big = np.full((1440, 1920, 3), 110, np.uint8)
    paste(big, face_photos[0], 900, 500, 600)
    (box,) = get_detector("haar")(big)
    assert 900 <= box.left and box.right <= 1500 and 500 <= box.top and box.bottom <= 1100
    assert box.width > 250  # the face fills most of the 600 px photo


def test_blank_frame_has_no_face():
    assert get_detector("haar")(np.zeros((480, 640, 3), np.uint8)) == []


def test_detectors_are_shared_and_unknown_names_are_refused():
    assert get_detector("haar") is get_detector("haar")
    assert set(DETECTORS) == {"haar", "hog", "cnn"}
    with pytest.raises(ValueError, match="unknown detector"):
        get_detector("yolo")
