import numpy as np
import pytest

from core.analysis.detect import DEFAULT_DETECTOR, DETECTORS, get_detector
from core.analysis.landmarks import eye_centers, yunet_row
from core.images import load_image
from tests.conftest import paste


@pytest.mark.parametrize("name", ["yunet", "haar", "hog"])
def test_finds_the_one_face_of_real_photos(name, face_photos):
    detector = get_detector(name)
    found = [len(detector(load_image(p))) for p in face_photos[:10]]
    assert found.count(1) >= 9, found


@pytest.mark.parametrize("name", ["yunet", "haar", "hog"])
def test_two_faces_are_found_left_to_right_inside_the_frame(name, two_face_frame):
    boxes = get_detector(name)(two_face_frame)
    assert len(boxes) == 2
    assert boxes[0].left < boxes[1].left
    for box, (x0, x1) in zip(boxes, [(40, 260), (360, 580)]):
        assert 0 <= box.top < box.bottom <= 480 and 0 <= box.left < box.right <= 640
        centre = (box.left + box.right) / 2
        assert x0 < centre < x1


@pytest.mark.parametrize("name", ["yunet", "haar"])
def test_boxes_of_a_large_frame_are_mapped_back_to_its_coordinates(face_photos, name):
    big = np.full((1440, 1920, 3), 110, np.uint8)
    paste(big, face_photos[0], 900, 500, 600)
    (face,) = get_detector(name).faces(big)
    box = face.box
    assert 900 <= box.left and box.right <= 1500 and 500 <= box.top and box.bottom <= 1100
    assert box.width > 150  # an LFW face is about a third of its photo: ~200 px here, ~35 px if left unmapped
    assert face.detector == name


def test_yunet_gives_five_landmarks_in_frame_pixels_on_the_image_point_of_view(two_face_frame):
    faces = get_detector("yunet").faces(two_face_frame)
    for face in faces:
        (left_x, left_y), (right_x, right_y) = eye_centers(face.landmarks)
        (nose_x, nose_y), mouth = face.landmarks["nose_tip"][0], face.landmarks["mouth_corners"]
        box = face.box
        assert box.left < left_x < nose_x < right_x < box.right  # the image's left eye first
        assert box.top < left_y < nose_y < mouth[0][1] < box.bottom and mouth[0][0] < mouth[1][0]
        row = yunet_row(face)  # what SFace's alignment takes: the same points, in YuNet's order
        assert row.shape == (15,) and tuple(row[4:6]) == pytest.approx(face.landmarks["left_eye"][0])


def test_a_still_photo_finds_the_small_faces_a_stream_size_misses(face_photos):
    """Streams run YuNet at 320 px for speed; stills at full size, so a group photo's small faces count."""
    group = np.full((1200, 1600, 3), 110, np.uint8)
    for i, photo in enumerate(face_photos[:8]):
        paste(group, photo, 100 + 180 * i, 500, 60)  # faces ~30 px wide in a 1600 px photo
    stream, still = get_detector("yunet"), get_detector("yunet", still=True)
    assert stream.max_side < still.max_side
    assert len(still(group)) >= 7 > len(stream(group))


@pytest.mark.parametrize("name", ["yunet", "haar"])
def test_blank_frame_has_no_face(name):
    assert get_detector(name)(np.zeros((480, 640, 3), np.uint8)) == []


def test_detectors_are_shared_and_unknown_names_are_refused():
    assert get_detector("haar") is get_detector("haar")
    assert set(DETECTORS) == {"yunet", "haar", "hog", "cnn"} and DEFAULT_DETECTOR == "yunet"
    with pytest.raises(ValueError, match="unknown detector"):
        get_detector("yolo")


def test_the_small_faces_of_a_large_group_photo_are_found_in_tiles(face_photos):
    """A 4000x3000 photo: a big face found on the whole photo, 40-px faces in its tiles, none twice."""
    group = np.full((3000, 4000, 3), 110, np.uint8)
    squares = [(200, 200, 900)]  # (x, y, side): a face ~300 px wide, bigger than a tile's overlap
    squares += [(1300 + 200 * (i % 6), 1400 + 900 * (i // 6), 120) for i in range(12)]  # faces ~40 px wide
    for photo, (x, y, side) in zip(face_photos, squares):
        paste(group, photo, x, y, side)
    faces = get_detector("yunet", still=True).faces(group)

    def inside(face, square):
        x, y, side = square
        return x <= (face.box.left + face.box.right) / 2 <= x + side and y <= (face.box.top + face.box.bottom) / 2 <= y + side

    assert all(any(inside(f, square) for f in faces) for square in squares), [f.box for f in faces]
    assert all(a.box.iou(b.box) < 0.3 for i, a in enumerate(faces) for b in faces[i + 1 :])  # merged across tiles
    assert len(get_detector("yunet", still=False).faces(group)) < 6  # the stream size misses the small ones


@pytest.mark.parametrize("still", [False, True])
@pytest.mark.parametrize("name", DETECTORS)
def test_every_detector_finds_nothing_in_tiny_or_thin_frames_and_does_not_raise(name, still):
    detector = get_detector(name, still=still)
    for height, width in [(1, 1), (2, 2), (8, 8), (1, 3000), (3000, 1), (16, 3000)]:  # dlib raised, OpenCV asserted
        assert detector.faces(np.zeros((height, width, 3), np.uint8)) == []
