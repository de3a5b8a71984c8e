"""Face effects: each drawn where its face's points say, privacy blur strong and contained."""

from __future__ import annotations

import numpy as np
import pytest

from core.analysis import effects
from core.analysis.effects import EFFECTS, EffectsProcessor, anchor_from, render, sure
from core.faces import Anchor, Box, Face, FrameResult
from core.images import load_image
from tests.conftest import shared_data

FUN = [name for name, effect in EFFECTS.items() if effect.kind == "fun" and name != "swap"]
PRIVACY = [name for name, effect in EFFECTS.items() if effect.kind == "privacy"]


def textured_frame(seed: int = 0) -> np.ndarray:
    """A 640x480 frame with fine texture everywhere, so any drawn or smoothed pixel shows."""
    rng = np.random.default_rng(seed)
    return rng.integers(60, 200, (480, 640, 3), dtype=np.uint8)


def face_with(anchor: Anchor, *names: str) -> Face:
    half = 1.6 * anchor.iod
    box = Box(int(anchor.y - half), int(anchor.x + half), int(anchor.y + 2 * half), int(anchor.x - half))
    return Face(box, anchor=anchor, effects=names)


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.any(before != after, axis=2)


def inside(polygon: np.ndarray, shape: tuple[int, ...], margin: float = 2.0) -> np.ndarray:
    """Pixels within ``margin`` px of ``polygon`` (a convex quadrilateral)."""
    import cv2

    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return cv2.dilate(mask, np.ones((2 * int(margin) + 1,) * 2, np.uint8)) > 0


ANCHORS = [Anchor(320, 260, 60, 0.0), Anchor(300, 270, 45, np.radians(25)), Anchor(340, 250, 80, np.radians(-35)),
           Anchor(320, 260, 30, np.radians(90))]  # fmt: skip


@pytest.mark.parametrize("anchor", ANCHORS, ids=["upright", "roll+25", "roll-35 large", "roll 90 small"])
@pytest.mark.parametrize("name", FUN)
def test_each_effect_draws_only_inside_its_region_of_the_face(name, anchor):
    frame = textured_frame()
    face = face_with(anchor, name)
    canvas = frame.copy()
    render(canvas, frame, [face])
    moved = changed(frame, canvas)
    assert moved.sum() > 0.02 * anchor.iod**2  # it drew something
    region = EFFECTS[name].region(face, frame.shape)
    assert not (moved & ~inside(region, frame.shape)).any()


@pytest.mark.parametrize("anchor", ANCHORS[:3], ids=["upright", "roll+25", "roll-35 large"])
def test_sunglasses_sit_on_the_eyes_however_the_head_is_rolled(anchor):
    frame = textured_frame()
    canvas = frame.copy()
    render(canvas, frame, [face_with(anchor, "sunglasses")])
    ys, xs = np.nonzero(changed(frame, canvas))
    centroid = np.array([xs.mean(), ys.mean()])
    assert np.hypot(*(centroid - [anchor.x, anchor.y])) <= 0.1 * anchor.iod  # the eye midpoint
    eye_left, eye_right = anchor.to_image(np.array([(-0.5, 0.0), (0.5, 0.0)]))
    for eye in (eye_left, eye_right):  # each eye covered by a dark lens
        assert canvas[int(eye[1]), int(eye[0])].max() < 60


def test_the_frame_given_to_render_is_left_as_it_was():
    frame = textured_frame()
    copy = frame.copy()
    canvas = frame.copy()
    render(canvas, frame, [face_with(ANCHORS[0], *EFFECTS)])
    np.testing.assert_array_equal(frame, copy)


@pytest.mark.parametrize("name", PRIVACY)
def test_privacy_effects_change_the_faces_only_and_need_no_points(name):
    frame = textured_frame()
    faces = [Face(Box(100, 260, 260, 100), effects=(name,)), Face(Box(200, 560, 330, 430), effects=(name,))]  # no anchor
    canvas = frame.copy()
    render(canvas, frame, faces)
    moved = changed(frame, canvas)
    covered = np.zeros(frame.shape[:2], bool)
    for face in faces:
        (x0, y0), (x1, y1) = effects.privacy_rect(face, frame.shape)
        covered[y0:y1, x0:x1] = True
        assert moved[face.box.top : face.box.bottom, face.box.left : face.box.right].mean() > 0.9
    assert not (moved & ~covered).any()


def test_blurred_and_pixelated_faces_no_longer_match_their_own_encoding(face_photos):
    """Irreversible enough: SFace's distance from a covered face to the same face uncovered is above
    the tolerance at which it names anybody, even told where the face was."""
    from core.analysis import recognition

    if recognition.active_encoder() != "sface":
        pytest.skip("SFace is not installed")
    tolerance = recognition.default_tolerance("sface")
    distances = {name: [] for name in PRIVACY}
    for photo in face_photos[:12]:
        image = load_image(photo)
        (face,) = recognition.find_faces(image)[:1]
        own = recognition.encode_face(image, face, "sface")
        for name in PRIVACY:
            covered = image.copy()
            render(covered, image, [Face(face.box, effects=(name,))])
            attacked = Face(face.box, detector=face.detector, landmarks=face.landmarks)  # the original points
            distances[name].append(float(np.linalg.norm(recognition.encode_face(covered, attacked, "sface") - own)))
    for name, values in distances.items():
        assert min(values) > tolerance, (name, values)


def test_swap_puts_each_face_of_a_pair_on_the_other(two_face_frame):
    from core.analysis.detect import get_detector

    faces = get_detector("yunet").faces(two_face_frame)
    assert len(faces) == 2
    for face in faces:
        face.anchor, face.effects = effects.face_anchor(two_face_frame, face), ("swap",)
    canvas = two_face_frame.copy()
    render(canvas, two_face_frame, faces)

    def patch(image, face):
        a = face.anchor
        x0, y0 = np.round(a.to_image(np.array([(-0.6, -0.3)]))[0]).astype(int)
        x1, y1 = np.round(a.to_image(np.array([(0.6, 1.2)]))[0]).astype(int)
        return image[y0:y1, x0:x1].astype(float).mean(axis=2)

    def similarity(p, q):
        h, w = min(p.shape[0], q.shape[0]), min(p.shape[1], q.shape[1])
        p, q = p[:h, :w] - p[:h, :w].mean(), q[:h, :w] - q[:h, :w].mean()
        return float((p * q).sum() / np.sqrt((p * p).sum() * (q * q).sum()))

    left, right = faces
    assert similarity(patch(canvas, left), patch(two_face_frame, right)) > similarity(patch(canvas, left), patch(two_face_frame, left))
    assert similarity(patch(canvas, right), patch(two_face_frame, left)) > similarity(patch(canvas, right), patch(two_face_frame, right))


def test_a_face_alone_keeps_its_own_face_under_swap():
    frame = textured_frame()
    canvas = frame.copy()
    render(canvas, frame, [face_with(ANCHORS[0], "swap")])
    np.testing.assert_array_equal(canvas, frame)


# --- the processor ---------------------------------------------------------------------------------------------------


def named_faces() -> list[Face]:
    eyes = [((150, 200), (210, 200)), ((400, 210), (460, 205))]
    faces = []
    for (left, right), name in zip(eyes, ("Ada", None)):
        marks = {"left_eye": [left], "right_eye": [right], "nose_tip": [((left[0] + right[0]) / 2, left[1] + 38)],
                 "mouth_corners": [(left[0] + 5, left[1] + 70), (right[0] - 5, right[1] + 70)]}  # fmt: skip
        faces.append(Face(Box(left[1] - 60, right[0] + 40, left[1] + 110, left[0] - 40), detector="yunet", landmarks=marks, name=name))
    return faces


@pytest.mark.parametrize("who,expected", [("all", [True, True]), ("unknown", [False, True]), ("named", [True, False])])
def test_who_chooses_the_faces_that_get_the_effects(who, expected):
    result = FrameResult(faces=named_faces())
    EffectsProcessor(("blur", "crown"), who).process(textured_frame(), result)
    assert [face.effects == ("blur", "crown") for face in result.faces] == expected
    assert [face.anchor is not None for face in result.faces] == expected  # both faces' points are sure


def test_unsure_points_hide_the_fun_effects_but_never_the_blur():
    result = FrameResult(faces=named_faces())
    profile = result.faces[0].landmarks
    profile["nose_tip"] = [(profile["right_eye"][0][0] + 25, profile["nose_tip"][0][1])]  # the nose beyond the eye: profile
    EffectsProcessor(("sunglasses", "blur")).process(textured_frame(), result)
    assert result.faces[0].anchor is None and result.faces[1].anchor is not None
    frame = textured_frame()
    canvas = frame.copy()
    render(canvas, frame, result.faces)
    top, right, bottom, left = result.faces[0].box
    assert changed(frame, canvas)[top:bottom, left:right].mean() > 0.9  # blurred all the same


def test_anchors_follow_the_points_and_reject_what_is_not_a_face():
    anchor = anchor_from(np.array([100.0, 100.0]), np.array([100.0, 160.0]), np.array([70.0, 130.0]), np.array([30.0, 130.0]))
    assert anchor.iod == pytest.approx(60) and np.degrees(anchor.angle) == pytest.approx(90)  # a face lying on its side
    np.testing.assert_allclose(anchor.to_image(np.array([(0.5, 0.0)])), [[100.0, 160.0]])
    np.testing.assert_allclose(anchor.to_face(anchor.to_image(np.array([(0.3, 1.2)]))), [[0.3, 1.2]])
    assert sure(anchor)
    assert not sure(anchor._replace(iod=8))  # too small
    assert not sure(anchor._replace(mouth=(0.0, 0.2)))  # a mouth between the eyes
    assert not sure(anchor._replace(nose=(0.7, 0.6)))  # profile


def test_tracked_anchors_from_detector_landmarks_are_smoothed():
    rng = np.random.default_rng(1)
    processor = EffectsProcessor(("crown",))
    clock = iter(np.arange(0, 10, 1 / 30))
    processor.clock = lambda: next(clock)
    raw, smoothed = [], []
    for _ in range(60):
        faces = named_faces()[:1]
        for points in faces[0].landmarks.values():
            points[:] = [(x + rng.normal(0, 2), y + rng.normal(0, 2)) for x, y in points]
        faces[0].track_id = 7
        raw.append(effects.face_anchor(textured_frame(), faces[0]).x)
        processor.process(textured_frame(), FrameResult(faces=faces))
        smoothed.append(faces[0].anchor.x)
    assert np.std(smoothed[10:]) < 0.6 * np.std(raw[10:])


def test_effects_are_off_unless_asked_for():
    from core.analysis.processors import build_processors, processor_specs

    assert "effects" in [spec.name for spec in processor_specs()]
    everything, _ = build_processors()
    assert "effects" not in [p.name for p in everything]
    configured, _ = build_processors(options={"effects": {"effects": ("crown",), "who": "all"}})
    assert configured[-1].name == "effects"  # last: it reads the others' points and names
    with pytest.raises(ValueError, match="unknown effect"):
        EffectsProcessor(("halo",))


def test_real_photo_through_the_pipeline_gets_its_crown_above_the_eyes():
    from core.stream.photo import photo_pipeline

    image = load_image(shared_data("faces_identities_knn_examples/test/obama1.jpg"))
    pipeline, _ = photo_pipeline(options={"effects": {"effects": ("crown",), "who": "all"}})
    annotated, result = pipeline.annotate(image)
    (face,) = result.faces
    assert face.effects == ("crown",) and face.anchor is not None
    gold = np.all(np.abs(annotated.astype(int) - (30, 190, 250)) < 20, axis=2)
    ys, xs = np.nonzero(gold)
    assert len(ys) > 50 and ys.mean() < face.anchor.y - face.anchor.iod  # above the eyes
    assert face.box.left - face.anchor.iod < xs.mean() < face.box.right + face.anchor.iod
