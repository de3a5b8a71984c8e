"""Training and evaluation of the keypoint CNN (``python -m core train-keypoints`` / ``eval-keypoints``).

Data: a folder holding ``yt68_training.npz`` / ``yt68_test.npz`` (96x96 crops with 68 landmarks),
or Kaggle's ``training.csv`` (30 coordinate columns + ``Image``, missing points as empty cells,
masked out of the loss). Labels are (N, P, 2) crop pixels with NaN where missing.

Augmentation keeps labels right: one affine warp per sample (rotation, scale, shift, optional
horizontal flip with the left/right point permutation) applied to the image and to its points,
then brightness/contrast. Training: Adam with a warm-up + cosine learning rate, L1 loss on
normalised coordinates, early stopping on a validation split grouped by person (the best
weights are kept). Writes ``<out>.keras``, ``<out>.json`` (metrics, crop calibration, history)
and ``<out>_curve.png`` (learning curve).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.analysis.keypoints import (
    CROP_SIZE,
    KAGGLE_NAMES,
    KeypointModel,
    Square,
    build_model,
    detect_points,
    kaggle_points,
    mirror_permutation,
    square_from_points,
    standardize,
    to_face_frame,
    to_normalized,
    to_pixels,
)  # fmt: skip

TRAIN_FILE = "yt68_training.npz"
TEST_FILE = "yt68_test.npz"
KAGGLE_FILE = "training.csv"


@dataclass
class KeypointData:
    """Crops (N, 96, 96) uint8, points (N, P, 2) float32 crop pixels (NaN = missing), groups (N,)."""

    images: np.ndarray
    points: np.ndarray
    groups: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> KeypointData:
        return KeypointData(self.images[index], self.points[index], self.groups[index])


def load_npz(path: Path) -> KeypointData:
    """A yt68 file: its 68 landmarks, grouped by person (the file name without the frame number)."""
    with np.load(path) as data:
        groups = np.array([str(f).rsplit("_", 1)[0] for f in data["filenames"]])
        return KeypointData(data["images"], data["keypoints68"].astype(np.float32), groups)


def read_kaggle_csv(path: Path) -> KeypointData:
    """Kaggle's ``training.csv``: 15 named points (x, y columns) and ``Image`` (9216 pixels).

    Empty cells become NaN (masked out of the loss). Raises ValueError naming the first bad row.
    """
    columns = [f"{name}_{axis}" for name in KAGGLE_NAMES for axis in "xy"]
    images, points = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in [*columns, "Image"] if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not Kaggle's training.csv layout, missing columns {missing[:3]}")
        for row_number, row in enumerate(reader, start=2):
            pixels = np.array(row["Image"].split(), np.float32)
            if pixels.size != CROP_SIZE * CROP_SIZE:
                raise ValueError(f"{path}:{row_number}: Image has {pixels.size} pixels, expected {CROP_SIZE ** 2}")
            images.append(np.clip(pixels, 0, 255).astype(np.uint8).reshape(CROP_SIZE, CROP_SIZE))
            points.append([float(row[c]) if row[c].strip() else np.nan for c in columns])
    if not images:
        raise ValueError(f"{path}: no rows")
    return KeypointData(np.stack(images), np.array(points, np.float32).reshape(-1, 15, 2), np.arange(len(images)).astype(str))


def load_training_data(data_dir: Path) -> KeypointData:
    """The training set in ``data_dir``: yt68_training.npz if present, else Kaggle's training.csv."""
    if (data_dir / TRAIN_FILE).is_file():
        return load_npz(data_dir / TRAIN_FILE)
    if (data_dir / KAGGLE_FILE).is_file():
        return read_kaggle_csv(data_dir / KAGGLE_FILE)
    raise FileNotFoundError(f"{data_dir} holds neither {TRAIN_FILE} nor {KAGGLE_FILE}")


def split_by_group(data: KeypointData, fraction: float, seed: int = 0) -> tuple[KeypointData, KeypointData]:
    """(train, validation): whole groups (people) go to validation until ``fraction`` of samples."""
    rng = np.random.default_rng(seed)
    groups = np.unique(data.groups)
    rng.shuffle(groups)
    chosen, count = set(), 0
    for group in groups:
        if count >= fraction * len(data):
            break
        chosen.add(group)
        count += int(np.sum(data.groups == group))
    is_val = np.isin(data.groups, list(chosen))
    return data.subset(np.flatnonzero(~is_val)), data.subset(np.flatnonzero(is_val))


# ---------------------------------------------------------------- augmentation


def flip_sample(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror a crop and its points: x -> W - x (pixel-edge coordinates), left/right points swapped."""
    flipped = points[list(mirror_permutation(len(points)))].copy()
    flipped[:, 0] = CROP_SIZE - flipped[:, 0]
    return image[:, ::-1].copy(), flipped


def augment(
    images: np.ndarray, points: np.ndarray, rng: np.random.Generator, strength: float = 1.0, flip: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """A randomly transformed copy of a batch; the points follow the image exactly (NaN stays NaN).

    ``strength`` scales the geometric ranges (rotation +-15 deg, scale x e^(+-0.1), shift +-6 %
    at 1.0); the photometric changes and the flip do not depend on it.
    """
    rotate_deg, scale, shift = 15.0 * strength, 0.1 * strength, 0.06 * strength
    out_images = np.empty_like(images)
    out_points = np.empty_like(points)
    centre = (CROP_SIZE - 1) / 2
    for i in range(len(images)):
        image, pts = images[i], points[i]
        if flip and rng.random() < 0.5:
            image, pts = flip_sample(image, pts)
        angle = rng.uniform(-rotate_deg, rotate_deg)
        factor = math.exp(rng.uniform(-scale, scale))
        matrix = cv2.getRotationMatrix2D((centre, centre), angle, factor)
        matrix[:, 2] += rng.uniform(-shift, shift, 2) * CROP_SIZE
        out_images[i] = cv2.warpAffine(image, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out_points[i] = (pts - 0.5) @ matrix[:, :2].T + matrix[:, 2] + 0.5  # OpenCV warps pixel centres
    gain = rng.uniform(0.6, 1.4, (len(images), 1, 1))
    bias = rng.uniform(-40, 40, (len(images), 1, 1))
    gamma = np.exp(rng.uniform(-0.4, 0.4, (len(images), 1, 1)))
    x = 255.0 * (out_images / 255.0) ** gamma
    x = (x - 128) * gain + 128 + bias
    noisy = rng.random(len(images)) < 0.3
    x[noisy] += rng.normal(0, 6, x[noisy].shape)
    return np.clip(x, 0, 255).astype(np.uint8), out_points


# ---------------------------------------------------------------- metrics


def rmse_px(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Kaggle's metric: root mean square over every present coordinate, in crop pixels."""
    mask = ~np.isnan(truth)
    return float(np.sqrt(np.mean((predicted[mask] - truth[mask]) ** 2)))


def evaluate_crops(model: KeypointModel, data: KeypointData, flip: bool = True, batch: int = 64) -> dict[str, Any]:
    """RMSE on the dataset's own crops, on the 15 Kaggle points (and all points when 68)."""
    predicted = np.concatenate([model.predict_crops(data.images[i : i + batch], flip=flip)
                                for i in range(0, len(data), batch)])  # fmt: skip
    report = {"rmse_px": round(rmse_px(kaggle_points(predicted), kaggle_points(data.points)), 3), "n": len(data)}
    if predicted.shape[1] == 68 and data.points.shape[1] == 68:
        report["rmse68_px"] = round(rmse_px(predicted, data.points), 3)
    return report


def staged_frame(crop: np.ndarray, points: np.ndarray, upscale: float, frame_size: tuple[int, int] = (640, 480),
                 ) -> tuple[np.ndarray, np.ndarray, Square]:  # fmt: skip
    """A BGR frame with ``crop`` enlarged by ``upscale`` in the middle of a grey background, the
    points in frame pixels, and the square the crop occupies (so the detector path can be run and
    scored on real photos whose truth is known)."""
    width, height = frame_size
    side = int(round(CROP_SIZE * upscale))
    square = Square((width - side) // 2, (height - side) // 2, side)
    frame = np.full((height, width), 110, np.uint8)
    frame[square.top : square.top + side, square.left : square.left + side] = cv2.resize(
        crop, (side, side), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), square.to_frame(points), square


def calibrate_box_to_square(data: KeypointData, detector: str, upscale: float = 2.5, limit: int = 600) -> dict[str, float]:
    """Median (dx, dy, scale) from the detector's box to the training square, over staged crops."""
    from core.analysis.detect import get_detector

    detect = get_detector(detector)
    rows = []
    for i in range(min(limit, len(data))):
        frame, points, _ = staged_frame(data.images[i], data.points[i], upscale)
        truth = square_from_points(points)
        boxes = detect(frame)
        if len(boxes) != 1:
            continue
        b = boxes[0]
        side = (b.width + b.height) / 2
        rows.append(((truth.left + truth.side / 2 - (b.left + b.right) / 2) / side,
                     (truth.top + truth.side / 2 - (b.top + b.bottom) / 2) / side, truth.side / side))  # fmt: skip
    if len(rows) < 20:
        raise RuntimeError(f"the {detector} detector found a single face in only {len(rows)} staged crops")
    dx, dy, scale = np.median(np.array(rows), axis=0)
    return {"dx": round(float(dx), 4), "dy": round(float(dy), 4), "scale": round(float(scale), 4), "fitted_on": len(rows)}


def evaluate_detector_path(model: KeypointModel, data: KeypointData, detector: str = "haar", upscale: float = 2.5,
                           refine: bool = True, flip: bool = True) -> dict[str, Any]:  # fmt: skip
    """RMSE (in 96-crop pixels) of the points found through the real detector on staged frames:
    detect, calibrated square, crop, CNN, (refine), back to the frame; faces the detector misses
    are counted, not scored."""
    from core.analysis.detect import get_detector

    detect = get_detector(detector)
    errors, missed = [], 0
    for i in range(len(data)):
        frame, points, square = staged_frame(data.images[i], data.points[i], upscale)
        boxes = detect(frame)
        if not boxes:
            missed += 1
            continue
        centre = points.mean(axis=0)
        box = min(boxes, key=lambda b: np.hypot((b.left + b.right) / 2 - centre[0], (b.top + b.bottom) / 2 - centre[1]))
        found = detect_points(model, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), [box], detector, refine, flip)[0]
        errors.append(kaggle_points(square.to_crop(found)) - kaggle_points(data.points[i]))
    err = np.array(errors)
    return {"detector": detector, "rmse_px": round(float(np.sqrt(np.nanmean(err ** 2))), 3) if len(err) else None,
            "n": len(errors), "missed": missed, "refine": refine, "flip": flip}  # fmt: skip


# ---------------------------------------------------------------- training


def _save_curve(history: list[dict[str, float]], path: Path, size: tuple[int, int] = (640, 400)) -> None:
    """Learning curve (log scale): training L1 and validation RMSE, pixels per epoch, drawn with OpenCV."""
    width, height = size
    margin = 50
    image = np.full((height, width, 3), 255, np.uint8)
    series = {"train L1 px (augmented)": ([h["train_loss_px"] for h in history], (200, 120, 0)),
              "validation RMSE px": ([h["val_rmse_px"] for h in history], (0, 0, 220))}  # fmt: skip
    values = np.log10(np.clip([v for vs, _ in series.values() for v in vs], 1e-3, None))
    low, high = math.floor(values.min() * 2) / 2, math.ceil(values.max() * 2) / 2 + 1e-6
    n = max(2, len(history))

    def xy(i: int, v: float) -> tuple[int, int]:
        y = (math.log10(max(v, 1e-3)) - low) / (high - low)
        return int(margin + i / (n - 1) * (width - 2 * margin)), int(height - margin - y * (height - 2 * margin))

    cv2.rectangle(image, (margin, margin), (width - margin, height - margin), (0, 0, 0), 1)
    for tick in np.arange(low, high, 0.5):
        _, y = xy(0, 10**tick)
        cv2.putText(image, f"{10 ** tick:.2g}", (2, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.line(image, (margin, y), (width - margin, y), (220, 220, 220), 1)
    for k, (label, (vs, color)) in enumerate(series.items()):
        cv2.polylines(image, [np.array([xy(i, v) for i, v in enumerate(vs)], np.int32)], False, color, 2, cv2.LINE_AA)
        cv2.putText(image, label, (margin + 10, margin + 20 + 18 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    cv2.putText(image, f"epoch (1..{len(history)})", (width // 2 - 40, height - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    cv2.imwrite(str(path), image)


def train(
    data_dir: Path, out: Path, epochs: int = 60, batch_size: int = 32, learning_rate: float = 2e-3,
    patience: int = 12, val_fraction: float = 0.1, width: int = 32, limit: int | None = None, seed: int = 0,
    calibrate: bool = True, init: Path | None = None, augment_strength: float = 1.0, flip: bool = True,
) -> dict[str, Any]:
    """Train (from the weights of ``init`` when given: fine-tuning), keep the best validation
    epoch, write ``out`` (.keras), its .json and _curve.png."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    data = load_training_data(data_dir)
    if limit:
        data = data.subset(np.arange(min(limit, len(data))))
    train_set, val_set = split_by_group(data, val_fraction, seed)
    n_points = data.points.shape[1]
    model = build_model(n_points, width)
    if init is not None:
        model.set_weights(keras.models.load_model(init, compile=False).get_weights())
    steps = max(1, len(train_set) // batch_size)
    warmup = min(3 * steps, epochs * steps // 10 + 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate / 10, decay_steps=max(1, epochs * steps - warmup), alpha=0.01,
        warmup_target=learning_rate, warmup_steps=warmup)  # fmt: skip
    optimizer = keras.optimizers.Adam(schedule)
    half = CROP_SIZE / 2

    @tf.function(jit_compile=True)
    def train_step(x: tf.Tensor, y: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            predicted = model(x, training=True)
            loss = tf.reduce_sum(mask * tf.abs(predicted - y)) / tf.maximum(tf.reduce_sum(mask), 1.0)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    forward = tf.function(lambda x: model(x, training=False))

    def val_rmse() -> float:
        out_px = np.concatenate([to_pixels(forward(standardize(val_set.images[i : i + 128])).numpy())
                                 for i in range(0, len(val_set), 128)])  # fmt: skip
        return rmse_px(kaggle_points(out_px), kaggle_points(val_set.points))

    out.parent.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, float]] = []
    best, best_weights, since_best = math.inf, model.get_weights(), 0
    start = time.monotonic()
    print(f"training on {len(train_set)}, validating on {len(val_set)} ({n_points} points)", file=sys.stderr, flush=True)
    for epoch in range(1, epochs + 1):
        t0 = time.monotonic()
        order = rng.permutation(len(train_set))
        images, points = augment(train_set.images[order], train_set.points[order], rng, augment_strength, flip)
        mask = (~np.isnan(points)).reshape(len(points), -1).astype(np.float32)
        targets = np.nan_to_num(to_normalized(np.nan_to_num(points)))
        x_all = standardize(images)
        losses = [float(train_step(x_all[i : i + batch_size], targets[i : i + batch_size], mask[i : i + batch_size]))
                  for i in range(0, steps * batch_size, batch_size)]  # fmt: skip
        score = val_rmse()
        history.append({"epoch": epoch, "train_loss_px": round(float(np.mean(losses)) * half, 4),
                        "val_rmse_px": round(score, 4), "seconds": round(time.monotonic() - t0, 1)})  # fmt: skip
        print(json.dumps(history[-1]), file=sys.stderr, flush=True)
        if score < best:
            best, best_weights, since_best = score, model.get_weights(), 0
            _save_model(best_weights, n_points, width, out)
        else:
            since_best += 1
            if since_best >= patience:
                print(f"early stop: no improvement for {patience} epochs", file=sys.stderr, flush=True)
                break
    minutes = (time.monotonic() - start) / 60
    _save_model(best_weights, n_points, width, out)
    meta: dict[str, Any] = {
        "weights": out.name, "points": n_points, "width": width, "params": int(model.count_params()),
        "data": str(data_dir), "train": len(train_set), "validation": len(val_set),
        "best_val_rmse_px": round(best, 4), "epochs_run": len(history), "training_minutes": round(minutes, 1),
        "settings": {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                     "patience": patience, "seed": seed, "init": None if init is None else str(init),
                     "augment_strength": augment_strength, "flip": flip},
        "history": history,
    }  # fmt: skip
    if calibrate and n_points == 68:
        meta["box_to_square"] = {d: calibrate_box_to_square(train_set, d) for d in ("yunet", "haar", "hog")}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    _save_curve(history, out.with_name(out.stem + "_curve.png"))
    return meta


def _save_model(weights: list[np.ndarray], n_points: int, width: int, out: Path) -> None:
    """Save an uncompiled copy (no optimizer state: the file stays small)."""
    model = build_model(n_points, width)
    model.set_weights(weights)
    tmp = out.with_name(out.stem + ".tmp.keras")
    model.save(tmp)
    tmp.replace(out)


def evaluate(data_dir: Path, weights: Path, detector_path: bool = True, flip: bool | None = None) -> dict[str, Any]:
    """``eval-keypoints``: RMSE on the held-out crops, and through the real detector path; test-time
    flip averaging as the app does it for this model (``flip`` None) or as asked."""
    test_path = data_dir / TEST_FILE
    if not test_path.is_file():
        raise FileNotFoundError(f"{data_dir} holds no {TEST_FILE}")
    model = KeypointModel(weights)
    flip = model.average_flips if flip is None else flip
    test = load_npz(test_path)
    report = {**evaluate_crops(model, test, flip=flip), "flip": flip, "weights": str(weights)}
    if detector_path:
        report["detector_path"] = evaluate_detector_path(model, test, "haar", flip=flip)
    return report


# ---------------------------------------------------------------- real photos


def dlib_kaggle_points(image_bgr: np.ndarray) -> list[np.ndarray]:
    """The 15 Kaggle points of every face dlib HOG finds (upsampled once, photos up to 1600 px),
    from dlib's 68-point shape predictor: the reference for keypoints on real photos."""
    import dlib

    hog, predictor = _dlib_68()
    rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    shapes = [predictor(rgb, dlib.rectangle(b.left, b.top, b.right, b.bottom)) for b in hog(image_bgr)]
    return [kaggle_points(np.array([(p.x, p.y) for p in shape.parts()], np.float64)) for shape in shapes]


@functools.lru_cache(maxsize=1)
def _dlib_68():
    import dlib
    import face_recognition_models

    from core.analysis.detect import DlibHogDetector

    return DlibHogDetector(max_side=1600, upsample=1), dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())


def paired_points(model: KeypointModel, image_bgr: np.ndarray, detector: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ours, dlib's) 15 points of each face both find in a still photo: ours as the Photo page
    finds them (the detector at its still size, calibrated square, refinement) before any
    real-photo correction, paired with dlib's face whose centre is nearest (within an eye distance)."""
    from core.analysis.detect import get_detector

    faces = get_detector(detector, still=True).faces(image_bgr)
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    ours = [kaggle_points(p) for p in detect_points(model, gray, [f.box for f in faces], detector, True, model.average_flips)]
    pairs = []
    for reference in dlib_kaggle_points(image_bgr):
        eyes = np.linalg.norm(reference[0] - reference[1])
        near = [p for p in ours if np.linalg.norm(p.mean(axis=0) - reference.mean(axis=0)) < eyes]
        if near:
            pairs.append((min(near, key=lambda p: np.linalg.norm(p.mean(axis=0) - reference.mean(axis=0))), reference))
    return pairs


def fit_real_photo_correction(weights: Path, photos: list[Path], detector: str, pad: int = 0) -> dict[str, Any]:
    """Where dlib's 68-point predictor puts the 15 points on real photos, relative to ours: the mean
    offset of each point in the face's own frame (eye-distance units, along and across the eye
    line of our points). Stored in the weights' JSON as ``real_photo_correction``, the app adds it
    to its points (``core.analysis.keypoints.corrected``). ``pad`` pixels of replicated border give
    tight face crops the context a detector needs."""
    from core.images import load_image

    model = KeypointModel(weights)
    offsets = []
    for path in photos:
        image = load_image(path)
        if pad:
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        for ours, reference in paired_points(model, image, detector):
            offsets.append(to_face_frame(reference, ours) - to_face_frame(ours, ours))
    if len(offsets) < 50:
        raise ValueError(f"only {len(offsets)} faces found by both detectors in {len(photos)} photos: need 50")
    return {"offsets": np.round(np.mean(offsets, axis=0), 4).tolist(), "faces": len(offsets), "photos": len(photos),
            "detector": detector, "reference": "dlib 68-point shape predictor on dlib HOG boxes"}  # fmt: skip


def calibrate(weights: Path, photos: list[Path], detector: str, pad: int = 0) -> dict[str, Any]:
    """``calibrate-keypoints``: fit the real-photo correction and write it into the weights' JSON."""
    correction = fit_real_photo_correction(weights, photos, detector, pad)
    meta_path = weights.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta["real_photo_correction"] = correction
    meta_path.write_text(json.dumps(meta, indent=1))
    return {key: value for key, value in correction.items() if key != "offsets"} | {"written": str(meta_path)}
