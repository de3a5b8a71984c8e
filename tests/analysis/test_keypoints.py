import json
import math

import cv2
import numpy as np
import pytest

from core.analysis.keypoints import (
    CROP_SIZE,
    DEFAULT_WEIGHTS,
    KAGGLE_FROM_68,
    KAGGLE_NAMES,
    MIRROR_15,
    MIRROR_68,
    KeypointModel,
    KeypointProcessor,
    Square,
    cut_crop,
    kaggle_points,
    shared_model,
    square_from_points,
)  # fmt: skip
from core.analysis.keypoints_train import (
    augment,
    evaluate_crops,
    flip_sample,
    load_npz,
    read_kaggle_csv,
    rmse_px,
    staged_frame,
)  # fmt: skip
from core.cli import main
from core.faces import Face, FrameResult
from core.stream.pipeline import FramePipeline, PipelineConfig
from tests.conftest import shared_data

COLUMNS = [f"{name}_{axis}" for name in KAGGLE_NAMES for axis in "xy"]


def needs_weights() -> None:
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip(f"no {DEFAULT_WEIGHTS.name} in {DEFAULT_WEIGHTS.parent}: run `python -m core train-keypoints`")


def write_kaggle_csv(path, rows: list[tuple[list[str], np.ndarray]]) -> None:
    lines = [",".join([*COLUMNS, "Image"])]
    for values, image in rows:
        lines.append(",".join([*values, " ".join(str(int(v)) for v in image.ravel())]))
    path.write_text("\n".join(lines) + "\n")


def test_kaggle_csv_reader_masks_missing_values(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (CROP_SIZE, CROP_SIZE))
    full = [f"{v:.2f}" for v in rng.uniform(10, 80, 30)]
    gappy = list(full)
    gappy[2] = gappy[3] = ""  # right_eye_center missing
    gappy[28] = ""  # mouth_center_bottom_lip_x missing
    write_kaggle_csv(tmp_path / "training.csv", [(full, image), (gappy, image)])

    data = read_kaggle_csv(tmp_path / "training.csv")

    assert data.images.shape == (2, CROP_SIZE, CROP_SIZE) and data.images.dtype == np.uint8
    assert np.array_equal(data.images[0], image)
    assert data.points.shape == (2, 15, 2)
    assert not np.isnan(data.points[0]).any()
    missing = np.argwhere(np.isnan(data.points[1])).tolist()
    assert missing == [[1, 0], [1, 1], [14, 0]]
    assert data.points[1, 0, 0] == pytest.approx(float(full[0]))
    # The metric (and the training loss, through the same mask) ignores the missing values.
    predicted = np.nan_to_num(data.points[1]) + 1.0
    assert rmse_px(predicted, data.points[1]) == pytest.approx(1.0)


def test_kaggle_csv_reader_rejects_other_layouts(tmp_path):
    (tmp_path / "training.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not Kaggle's training.csv layout"):
        read_kaggle_csv(tmp_path / "training.csv")
    write_kaggle_csv(tmp_path / "short.csv", [(["1"] * 30, np.zeros((10, 10)))])
    with pytest.raises(ValueError, match="short.csv:2: Image has 100 pixels"):
        read_kaggle_csv(tmp_path / "short.csv")


def test_mirror_permutations_swap_left_and_right_names():
    for mirror in (MIRROR_68, MIRROR_15):
        assert sorted(mirror) == list(range(len(mirror)))
        assert all(mirror[mirror[i]] == i for i in range(len(mirror)))
    for i, name in enumerate(KAGGLE_NAMES):
        expected = name.replace("left", "@").replace("right", "left").replace("@", "right")
        expected = {"mouth_left_corner": "mouth_right_corner", "mouth_right_corner": "mouth_left_corner"}.get(name, expected)
        assert KAGGLE_NAMES[MIRROR_15[i]] == expected
    # The 68-point mirror maps each Kaggle point's source landmarks onto its mirror twin's.
    for i, indices in enumerate(KAGGLE_FROM_68):
        assert sorted(MIRROR_68[j] for j in indices) == sorted(KAGGLE_FROM_68[MIRROR_15[i]])


def test_flip_augmentation_swaps_left_and_right_points():
    data = load_npz(shared_data("facial_keypoints/yt68_test.npz"))
    image, points = data.images[0], data.points[0]

    flipped_image, flipped = flip_sample(image, points)

    assert np.array_equal(flipped_image, image[:, ::-1])
    named, flipped_named = kaggle_points(points), kaggle_points(flipped)
    left_eye, right_eye = KAGGLE_NAMES.index("left_eye_center"), KAGGLE_NAMES.index("right_eye_center")
    # The subject's left eye stays on the image's right after the flip, at the mirrored right eye.
    assert flipped_named[left_eye, 0] > flipped_named[right_eye, 0]
    assert flipped_named[left_eye] == pytest.approx([CROP_SIZE - named[right_eye, 0], named[right_eye, 1]])
    assert np.allclose(flip_sample(*flip_sample(image, points))[1], points)


def test_augmentation_moves_points_with_the_image():
    rng = np.random.default_rng(0)
    spots = np.array([[30.0, 25.0], [70.0, 40.0], [48.0, 75.0]], np.float32)
    images = np.zeros((len(spots), CROP_SIZE, CROP_SIZE), np.uint8)
    for i, (x, y) in enumerate(spots):  # one bright spot per image; its label is its position
        cv2.circle(images[i], (int(x), int(y)), 3, 255, -1)
    # All 15 points on the spot (flips keep them there); labels are pixel-edge based: centre + 0.5.
    points = np.repeat(spots[:, None] + 0.5, 15, axis=1)
    for _ in range(5):
        moved_images, moved_points = augment(images, points, rng)
        for image, (x, y) in zip(moved_images, moved_points[:, 0]):
            weights = np.clip(image.astype(np.float32) - np.median(image) - 30, 0, None)
            ys, xs = np.indices(image.shape)
            centre = (np.sum(xs * weights) / weights.sum() + 0.5, np.sum(ys * weights) / weights.sum() + 0.5)
            assert math.dist(centre, (x, y)) < 0.5
    still_images, still_points = augment(images, points, rng, strength=0.0, flip=False)
    assert np.allclose(still_points, points, atol=1e-4), "strength 0: photometric changes only"
    assert still_images.shape == images.shape



def test_crop_geometry_round_trips_frame_points():
    gray = np.zeros((120, 160), np.uint8)
    gray[40, 90] = 255
    square = Square(60, 10, 64)
    crop = cut_crop(gray, square)
    assert crop.shape == (CROP_SIZE, CROP_SIZE)
    peak = np.unravel_index(np.argmax(crop), crop.shape)[::-1]
    assert math.dist(square.to_frame(np.array(peak, np.float32)), (90, 40)) < 1.0
    points = np.array([[10.0, 20.0], [50.0, 60.0]])
    assert np.allclose(square.to_crop(square.to_frame(points)), points)
    around = square_from_points(points)
    assert around.side == round(1.3 * 40) and (around.left, around.top) == (4, 14)


def test_model_scores_the_held_out_crops_well():
    needs_weights()
    test = load_npz(shared_data("facial_keypoints/yt68_test.npz")).subset(np.arange(64))
    report = evaluate_crops(shared_model(), test)
    assert report["n"] == 64
    # Far better than the training mean shape (6.8 px on this file).
    assert report["rmse_px"] < 3.0


def test_named_points_lie_inside_each_face_on_real_photos(two_face_frame):
    needs_weights()
    pipeline = FramePipeline(PipelineConfig(detector="haar", processors=(KeypointProcessor(),), tracking=False))
    result = pipeline.process(two_face_frame)
    assert len(result.faces) == 2 and not pipeline.stats.snapshot()["errors"]
    for face in result.faces:
        assert list(face.keypoints) == list(KAGGLE_NAMES)
        top, right, bottom, left = face.box
        for x, y in face.keypoints.values():
            assert left <= x <= right and top <= y <= bottom + 0.15 * face.box.height
        k = face.keypoints
        assert k["left_eye_center"][0] > k["right_eye_center"][0]  # the subject's left is the image's right
        assert k["left_eye_outer_corner"][0] > k["left_eye_inner_corner"][0] > k["right_eye_inner_corner"][0]
        eyes_y = (k["left_eye_center"][1] + k["right_eye_center"][1]) / 2
        assert eyes_y < k["nose_tip"][1] < k["mouth_center_top_lip"][1] < k["mouth_center_bottom_lip"][1]
        assert face.to_json()["keypoints"]["nose_tip"] == [round(v, 1) for v in k["nose_tip"]]


def test_detector_path_finds_the_true_points_of_a_staged_crop():
    needs_weights()
    test = load_npz(shared_data("facial_keypoints/yt68_test.npz"))
    processor = KeypointProcessor()
    errors = []
    for i in range(30):  # these tight, blurry crops are a hard case for Haar: about half are found
        frame, truth, square = staged_frame(test.images[i], test.points[i], upscale=2.5)
        result = FramePipeline(PipelineConfig(detector="haar", processors=(processor,), tracking=False)).process(frame)
        if len(result.faces) != 1:
            continue
        found = np.array(list(result.faces[0].keypoints.values()))
        errors.append(square.to_crop(found) - kaggle_points(test.points[i]))
    assert len(errors) >= 6
    assert float(np.sqrt(np.mean(np.square(errors)))) < 3.0  # 96x96 pixels; the mean shape scores 6.8


def test_tracked_faces_are_smoothed_and_still_images_are_not(two_face_frame):
    needs_weights()
    frame = two_face_frame
    face_box = FramePipeline(PipelineConfig(detector="haar", tracking=False)).process(frame).faces[0].box
    jitter = np.random.default_rng(0).integers(-6, 7, (12, 4))
    processor = KeypointProcessor()
    ticks = iter(np.arange(100) / 30)
    processor.clock = lambda: float(next(ticks))

    def nose_positions(track_id):
        positions = []
        for d in jitter:
            face = Face(type(face_box)(*(int(v) for v in np.array(face_box) + d)), track_id=track_id)
            processor.process(frame, FrameResult(faces=[face]))
            positions.append(face.keypoints["nose_tip"])
        return np.array(positions)

    still, tracked = nose_positions(None), nose_positions(10_001)
    # The face does not move: tracked points wander less than independent still-image estimates.
    assert np.ptp(tracked, axis=0).max() <= np.ptp(still, axis=0).max()
    assert np.linalg.norm(tracked.mean(0) - still.mean(0)) < 3.0


def test_train_and_eval_commands_write_weights_metrics_and_curve(tmp_path, capsys):
    data_dir = shared_data("facial_keypoints")
    out = tmp_path / "kp.keras"
    assert main(["train-keypoints", "--data", str(data_dir), "--out", str(out), "--epochs", "1", "--limit", "96",
                 "--no-flip", "--augment-strength", "0.5"]) == 0  # fmt: skip
    meta = json.loads(capsys.readouterr().out)
    assert meta["epochs_run"] == 1 and meta["points"] == 68 and meta["train"] + meta["validation"] == 96
    assert meta["settings"]["flip"] is False and meta["settings"]["augment_strength"] == 0.5
    # Trained without flips, the model is not flip-averaged: the mirror would undo what it learnt.
    assert KeypointModel(out).average_flips is False
    assert out.is_file() and out.with_name("kp_curve.png").is_file()
    assert set(json.loads(out.with_suffix(".json").read_text())["box_to_square"]) == {"yunet", "haar", "hog"}
    assert out.stat().st_size < 20e6


def test_train_command_rejects_an_absurd_augmentation_strength(capsys):
    assert main(["train-keypoints", "--augment-strength", "5", "--epochs", "1"]) == 2
    assert "--augment-strength must lie between 0 and 2" in capsys.readouterr().err


def test_eval_command_rejects_a_missing_folder(capsys):
    assert main(["eval-keypoints", "--data", "/nonexistent/keypoints"]) == 2
    assert "data folder /nonexistent/keypoints does not exist" in capsys.readouterr().err


def test_past_its_budget_a_face_s_points_follow_it_without_the_cnn(two_face_frame):
    """With one CNN face per frame and two faces, each face is predicted every other frame; in
    between its points move with its landmarks (here: the whole frame shifted by 12 px)."""
    needs_weights()
    processor = KeypointProcessor(faces_per_frame=1)
    ticks = iter(np.arange(100) / 30)
    processor.clock = lambda: float(next(ticks))
    calls = []
    model_predict = processor.model.predict_crops
    processor.model.predict_crops = lambda crops, flip=False: calls.append(len(crops)) or model_predict(crops, flip)
    pipeline = FramePipeline(PipelineConfig(detector="yunet", processors=(processor,)))
    try:
        pipeline.process(two_face_frame)  # tracks start; their faces show from the second frame
        first = pipeline.process(two_face_frame)
        shifted = np.roll(two_face_frame, 12, axis=1)
        second = pipeline.process(shifted)
    finally:
        processor.model.predict_crops = model_predict
    assert calls == [2, 2, 1]  # new tracks: both (and their refinement); then one face of the two
    moves = []
    for before, after in zip(first.faces, second.faces):
        assert after.track_id == before.track_id
        moves.append((np.array(list(after.keypoints.values())) - np.array(list(before.keypoints.values()))).mean(axis=0))
    # Both move right alike (the One-Euro filter damps both the same way): the predicted one and the carried one.
    predicted, carried = moves
    assert predicted[0] > 2 and carried[0] > 2 and np.allclose(predicted, carried, atol=1.0), moves


def test_the_real_photo_correction_moves_points_in_the_face_s_own_frame():
    """An offset of (0.1, 0) eye distances moves a point along the eye line, whatever the face's
    roll and size; to_face_frame reads it back."""
    from core.analysis.keypoints import corrected, to_face_frame

    upright = np.zeros((15, 2))
    upright[0], upright[1] = (60.0, 50.0), (40.0, 50.0)  # left eye (image right), right eye: 20 px apart
    upright[2:] = np.random.default_rng(0).uniform(30, 70, (13, 2))
    offsets = np.zeros((15, 2))
    offsets[10] = (0.1, 0.2)  # the nose: 0.1 towards the image's right, 0.2 down
    moved = corrected(upright, offsets)
    assert moved[10] - upright[10] == pytest.approx((2.0, 4.0))
    turned = upright @ np.array([[0.0, 1.0], [-1.0, 0.0]]) * 2  # a quarter turn, twice the size
    moved_turned = corrected(turned, offsets)
    assert np.linalg.norm(moved_turned[10] - turned[10]) == pytest.approx(2 * np.hypot(2.0, 4.0))
    np.testing.assert_allclose(to_face_frame(moved_turned, turned) - to_face_frame(turned, turned), offsets, atol=1e-9)
    assert corrected(upright, None) is upright
