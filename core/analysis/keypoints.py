"""Our facial keypoint CNN: the model, its crop geometry, batched prediction and the live processor.

Crop invariant (what the CNN was trained on, see ``weights/MODEL_CARD.md``): a square of side
``CROP_MARGIN`` x max(width, height) of the 68-landmark bounding box, centred on that box, cut out
of the grayscale frame (outside the frame: 0) and resized to ``CROP_SIZE`` x ``CROP_SIZE``. A point
at crop coordinate ``p`` lies at ``left + p * side / CROP_SIZE`` in the frame. Coordinates are
pixel-edge based (the crop spans [0, 96], pixel i covers [i, i + 1]), as the data's conversion
``(original - left) * 96 / side`` makes them: mirroring maps x to ``CROP_SIZE - x``.

A detector's box is not that square: :data:`BOX_TO_SQUARE` (fitted on the training crops by
``python -m core train-keypoints``) maps a detector box to it, and the points predicted from that
first crop give the exact square for a second pass (still images) or for the next frame of a track.

The model predicts 68 points (iBUG 300-W order) when trained on the 68-landmark data, or the 15
Kaggle points when trained on Kaggle's ``training.csv``; the 15 Kaggle points are always available
by name (:data:`KAGGLE_NAMES`), derived from the 68 as the data's README defines them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.analysis.detect import DEFAULT_DETECTOR
from core.analysis.landmarks import anchor_points, follow
from core.analysis.processors import ProcessorSpec, register
from core.faces import Box, Face, FrameResult, Processor
from core.models import WEIGHTS_DIR

DEFAULT_WEIGHTS = WEIGHTS_DIR / "keypoints.keras"
CROP_SIZE = 96
CROP_MARGIN = 1.3

KAGGLE_NAMES: tuple[str, ...] = (
    "left_eye_center", "right_eye_center", "left_eye_inner_corner", "left_eye_outer_corner",
    "right_eye_inner_corner", "right_eye_outer_corner", "left_eyebrow_inner_end", "left_eyebrow_outer_end",
    "right_eyebrow_inner_end", "right_eyebrow_outer_end", "nose_tip", "mouth_left_corner",
    "mouth_right_corner", "mouth_center_top_lip", "mouth_center_bottom_lip",
)  # fmt: skip
# Each Kaggle point as the mean of these iBUG 68 indices ("left" = the subject's left).
KAGGLE_FROM_68: tuple[tuple[int, ...], ...] = (
    tuple(range(42, 48)), tuple(range(36, 42)), (42,), (45,), (39,), (36,), (22,), (26,), (21,), (17,),
    (30,), (54,), (48,), (51,), (57,),
)  # fmt: skip

# Horizontal mirror: point i of the flipped face is point MIRROR[i] of the original.
MIRROR_68: tuple[int, ...] = (
    tuple(range(16, -1, -1))                       # jaw 0..16
    + (26, 25, 24, 23, 22, 21, 20, 19, 18, 17)     # eyebrows
    + (27, 28, 29, 30, 35, 34, 33, 32, 31)         # nose
    + (45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40)  # eyes
    + (54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55)  # outer lip
    + (64, 63, 62, 61, 60, 67, 66, 65)             # inner lip
)  # fmt: skip
MIRROR_15: tuple[int, ...] = (1, 0, 4, 5, 2, 3, 8, 9, 6, 7, 10, 12, 11, 13, 14)

# Detector box -> training square: centre = box centre + (dx, dy) * box side, side = scale * box side.
# Fitted by ``calibrate_box_to_square`` and stored in the weights' JSON; these are the fallbacks.
BOX_TO_SQUARE: dict[str, dict[str, float]] = {
    "yunet": {"dx": 0.0, "dy": 0.11, "scale": 1.26},
    "haar": {"dx": 0.0, "dy": 0.05, "scale": 1.15},
    "hog": {"dx": 0.0, "dy": -0.05, "scale": 1.45},
}


def mirror_permutation(n_points: int) -> tuple[int, ...]:
    """The left/right swap for a model of ``n_points`` (68: iBUG order, 15: Kaggle order)."""
    if n_points == 68:
        return MIRROR_68
    if n_points == 15:
        return MIRROR_15
    raise ValueError(f"no mirror permutation for {n_points} points (68 or 15)")


def kaggle_points(points: np.ndarray) -> np.ndarray:
    """(..., 15, 2) Kaggle points from (..., 68, 2) iBUG points, or unchanged when already 15."""
    if points.shape[-2] == 15:
        return points
    return np.stack([points[..., list(idx), :].mean(axis=-2) for idx in KAGGLE_FROM_68], axis=-2)


# ---------------------------------------------------------------- model


def build_model(n_points: int = 68, width: int = 32) -> Any:
    """VGG-style CNN: 96x96x1 standardised crop -> 2 * ``n_points`` normalised coordinates.

    A 5x5 stride-2 stem, then four blocks of 3x3 conv + batch norm + ReLU (one conv at 48x48,
    two at each coarser scale) with max-pooling (48 -> 24 -> 12 -> 6 -> 3), and a small dense head with dropout. Outputs are
    ``(p - CROP_SIZE / 2) / (CROP_SIZE / 2)`` in x, y order (:func:`to_pixels` inverts it).
    """
    import keras
    from keras import layers

    def conv(x, filters, kernel=3, strides=1):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inputs = keras.Input((CROP_SIZE, CROP_SIZE, 1), name="crop")
    x = conv(inputs, width, 5, 2)  # 48
    for filters, convs in ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)):
        for _ in range(convs):
            x = conv(x, filters)
        x = layers.MaxPooling2D()(x)  # 24, 12, 6, 3
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(256, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(2 * n_points, name="points")(x)
    return keras.Model(inputs, outputs, name=f"keypoints{n_points}")


def standardize(crops: np.ndarray) -> np.ndarray:
    """(N, 96, 96) uint8/float crops -> (N, 96, 96, 1) float32 with zero mean, unit variance each."""
    x = crops.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return ((x - mean) / np.maximum(std, 8.0))[..., None]


def to_normalized(points: np.ndarray) -> np.ndarray:
    """(N, P, 2) crop pixels -> (N, 2P) model targets."""
    half = CROP_SIZE / 2
    return ((points - half) / half).reshape(len(points), -1).astype(np.float32)


def to_pixels(outputs: np.ndarray) -> np.ndarray:
    """(N, 2P) model outputs -> (N, P, 2) crop pixels."""
    half = CROP_SIZE / 2
    return np.asarray(outputs, np.float32).reshape(len(outputs), -1, 2) * half + half


class KeypointModel:
    """A loaded keypoint CNN with one compiled, fixed-signature forward function; thread-safe.

    ``predict_crops`` takes any number of 96x96 grayscale crops and runs them in one batch (the
    forward function's signature leaves the batch size free: it is traced once); with ``flip`` each
    crop is also run mirrored and the two predictions are averaged. ``average_flips`` says whether
    that helps this model: only when its last training stage used flips (a model fine-tuned
    without them has learnt the data's own left/right labelling habits, which a mirror undoes).
    """

    def __init__(self, path: Path = DEFAULT_WEIGHTS) -> None:
        import keras
        import tensorflow as tf

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no keypoint weights {self.path.name} in {self.path.parent}: "
                                    "train them with `python -m core train-keypoints`")
        self.model = keras.models.load_model(self.path, compile=False)
        self.n_points = int(self.model.output_shape[-1]) // 2
        self.mirror = np.array(mirror_permutation(self.n_points))
        meta_path = self.path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        self.box_to_square: dict[str, dict[str, float]] = {**BOX_TO_SQUARE, **meta.get("box_to_square", {})}
        self.average_flips = bool(meta.get("settings", {}).get("flip", True))
        correction = meta.get("real_photo_correction")
        self.correction = None if correction is None else np.array(correction["offsets"], np.float64)
        self._lock = threading.Lock()
        spec = tf.TensorSpec((None, CROP_SIZE, CROP_SIZE, 1), tf.float32)
        self._forward = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])

    def predict_crops(self, crops: np.ndarray, flip: bool = False) -> np.ndarray:
        """(N, 96, 96) grayscale crops -> (N, P, 2) points in crop pixels."""
        n = len(crops)
        if n == 0:
            return np.zeros((0, self.n_points, 2), np.float32)
        batch = np.concatenate([crops, crops[:, :, ::-1]]) if flip else np.asarray(crops)
        with self._lock:
            out = self._forward(standardize(batch)).numpy()
        points = to_pixels(out)
        if not flip:
            return points
        mirrored = points[n:, self.mirror]
        mirrored[..., 0] = CROP_SIZE - mirrored[..., 0]
        return (points[:n] + mirrored) / 2


def face_frame(points15: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(origin, axes) of a face's own frame from its 15 points: the midpoint of the eye centres, and
    rows along the eye line (towards the image's right) and across it, each one eye distance long."""
    left, right = points15[KAGGLE_NAMES.index("left_eye_center")], points15[KAGGLE_NAMES.index("right_eye_center")]
    along = left - right  # the subject's left eye is on the image's right
    return (left + right) / 2, np.array([along, [-along[1], along[0]]])


def to_face_frame(points15: np.ndarray, frame_of: np.ndarray) -> np.ndarray:
    """``points15`` in the face frame of ``frame_of`` (eye-distance units)."""
    origin, axes = face_frame(frame_of)
    return (points15 - origin) @ np.linalg.inv(axes)


def corrected(points15: np.ndarray, correction: np.ndarray | None) -> np.ndarray:
    """``points15`` moved by ``correction`` (15 offsets in the face frame of the points themselves)."""
    if correction is None:
        return points15
    _, axes = face_frame(points15)
    return points15 + correction @ axes


# ---------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Square:
    """An integer square region of a frame: top-left corner and side, in pixels."""

    left: int
    top: int
    side: int

    @classmethod
    def around(cls, cx: float, cy: float, side: float) -> Square:
        side = max(8, int(round(side)))
        return cls(int(round(cx - side / 2)), int(round(cy - side / 2)), side)

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Crop pixels -> frame pixels."""
        return points * (self.side / CROP_SIZE) + np.array([self.left, self.top], np.float32)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Frame pixels -> crop pixels."""
        return (points - np.array([self.left, self.top], np.float32)) * (CROP_SIZE / self.side)


def square_from_points(points: np.ndarray) -> Square:
    """The training square of 68 (or 15) points in frame pixels."""
    low, high = points.min(axis=0), points.max(axis=0)
    centre = (low + high) / 2
    return Square.around(float(centre[0]), float(centre[1]), CROP_MARGIN * float(max(high - low)))


def square_from_box(box: Box, calibration: dict[str, float]) -> Square:
    """The training square expected around a detector box (see :data:`BOX_TO_SQUARE`)."""
    side = (box.width + box.height) / 2
    cx = (box.left + box.right) / 2 + calibration["dx"] * side
    cy = (box.top + box.bottom) / 2 + calibration["dy"] * side
    return Square.around(cx, cy, calibration["scale"] * side)


def cut_crop(gray: np.ndarray, square: Square) -> np.ndarray:
    """The 96x96 crop of ``square`` (zeros outside the frame), box filter when shrinking."""
    height, width = gray.shape
    l, t, s = square.left, square.top, square.side
    region = np.zeros((s, s), np.uint8)
    x0, y0, x1, y1 = max(l, 0), max(t, 0), min(l + s, width), min(t + s, height)
    if x1 > x0 and y1 > y0:
        region[y0 - t : y1 - t, x0 - l : x1 - l] = gray[y0:y1, x0:x1]
    interpolation = cv2.INTER_AREA if s > CROP_SIZE else cv2.INTER_LINEAR
    return cv2.resize(region, (CROP_SIZE, CROP_SIZE), interpolation=interpolation)


def to_gray(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def predict_points(
    model: KeypointModel, gray: np.ndarray, squares: list[Square], flip: bool = False
) -> list[np.ndarray]:
    """Points (P, 2) in frame pixels for each square of ``gray``, in one batch."""
    if not squares:
        return []
    crops = np.stack([cut_crop(gray, sq) for sq in squares])
    points = model.predict_crops(crops, flip=flip)
    return [sq.to_frame(p) for sq, p in zip(squares, points)]


def detect_points(
    model: KeypointModel, gray: np.ndarray, boxes: list[Box], detector: str = DEFAULT_DETECTOR, refine: bool = True,
    flip: bool = False,
) -> list[np.ndarray]:
    """Points for each detector box: a first pass on the calibrated square, then (``refine``) a
    second pass on the training square of the first pass's points."""
    calibration = model.box_to_square[detector]
    points = predict_points(model, gray, [square_from_box(b, calibration) for b in boxes], flip)
    if refine:
        points = predict_points(model, gray, [square_from_points(p) for p in points], flip)
    return points


@lru_cache(maxsize=None)
def shared_model(path: str = str(DEFAULT_WEIGHTS)) -> KeypointModel:
    """The process-wide model for ``path``, loaded on first use (callers load it outside frame loops)."""
    return KeypointModel(Path(path))


# ---------------------------------------------------------------- smoothing and the processor


class OneEuroFilter:
    """One-Euro filter (Casiez et al. 2012) of a point set: smooth when still, responsive when moving.

    The speed that sets the cut-off is the mean speed of the points, in face sizes per second,
    so every point of a face is smoothed alike and the filter does not depend on the face's size.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 2.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None
        self.speed = 0.0
        self.t: float | None = None

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, points: np.ndarray, t: float, scale: float) -> np.ndarray:
        if self.value is None or self.t is None or t <= self.t:
            self.value, self.t, self.speed = points.copy(), t, 0.0
            return points
        dt = t - self.t
        raw_speed = float(np.linalg.norm(points - self.value, axis=-1).mean()) / max(scale, 1.0) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.speed = a_d * raw_speed + (1 - a_d) * self.speed
        a = self._alpha(self.min_cutoff + self.beta * self.speed, dt)
        self.value = a * points + (1 - a) * self.value
        self.t = t
        return self.value


class KeypointProcessor(Processor):
    """Puts the 15 named Kaggle points (frame pixels) on every face.

    Still images (``track_id`` None): calibrated detector square, then a refinement pass on the
    points' own square, with test-time flip averaging when the model gains from it.

    Tracked faces: the CNN runs on every new track (detector square and refinement), and on known
    ones up to ``faces_per_frame`` faces per frame in all, those whose points are the oldest first
    (one pass on the square of the track's previous points, when it still agrees with the box). The
    others' points follow their face from the last frame: the similarity that moves the face's
    anchor points (the detector's five landmarks, else its box corners) from then to now. A One-Euro
    filter per track smooths both; tracks not seen for ``forget_s`` seconds are dropped. With up to
    ``faces_per_frame`` faces every point is predicted on every frame; with six, every other frame.
    """

    name = "keypoints"
    label = "Facial keypoints (our CNN)"

    def __init__(
        self, weights: str = str(DEFAULT_WEIGHTS), detector: str = DEFAULT_DETECTOR, forget_s: float = 2.0,
        faces_per_frame: int = 3,
    ) -> None:  # fmt: skip
        self.clock: Callable[[], float] = time.monotonic  # seconds; tests substitute a steady frame clock
        self.model = shared_model(weights)
        self.detector = detector  # whose box calibration serves faces that do not say their detector
        self.forget_s = forget_s
        self.faces_per_frame = faces_per_frame
        self._lock = threading.Lock()
        self._tracks: dict[int, _Track] = {}

    def _start_square(self, face: Face, track: _Track | None) -> tuple[Square, bool]:
        """The crop square for ``face`` and whether it came from the track's previous points."""
        calibrations = self.model.box_to_square
        from_box = square_from_box(face.box, calibrations.get(face.detector or "", calibrations[self.detector]))
        if track is not None:
            from_track = square_from_points(track.points)
            drift = np.hypot(from_track.left - from_box.left, from_track.top - from_box.top)
            if drift < 0.25 * from_box.side and 0.75 < from_track.side / from_box.side < 1.33:
                return from_track, True
        return from_box, False

    def _predict(self, gray: np.ndarray, faces: list[Face], tracks: list[_Track | None], flip: bool) -> list[np.ndarray]:
        starts = [self._start_square(face, track) for face, track in zip(faces, tracks)]
        points = predict_points(self.model, gray, [sq for sq, _ in starts], flip=flip)
        refine = [i for i, (_, from_track) in enumerate(starts) if not from_track]
        if refine:
            again = predict_points(self.model, gray, [square_from_points(points[i]) for i in refine], flip=flip)
            for i, p in zip(refine, again):
                points[i] = p
        return points

    def process(self, frame_bgr: np.ndarray, result: FrameResult) -> None:
        gray = to_gray(frame_bgr)
        now = self.clock()
        with self._lock:
            tracks = {f.track_id: self._tracks.get(f.track_id) for f in result.faces if f.track_id is not None}
        stills = [f for f in result.faces if f.track_id is None]
        tracked = [f for f in result.faces if f.track_id is not None]
        new = [f for f in tracked if tracks[f.track_id] is None]  # always predicted: they have no points yet
        known = sorted((f for f in tracked if tracks[f.track_id] is not None), key=lambda f: tracks[f.track_id].predicted_at)
        run = stills + new + known[: max(0, self.faces_per_frame - len(new))]
        flip = self.model.average_flips and not tracked
        predicted = dict(zip(map(id, run), self._predict(gray, run, [tracks.get(f.track_id) for f in run], flip)))
        with self._lock:
            for face in result.faces:
                track = tracks.get(face.track_id)
                if id(face) in predicted:
                    p = predicted[id(face)]
                else:  # carried from the last frame, as the face moved
                    p = follow(track.points, track.anchors, anchor_points(face))
                if face.track_id is not None:
                    filt = track.filter if track is not None else OneEuroFilter()
                    p = filt(p, now, square_from_points(p).side)
                    predicted_at = now if id(face) in predicted else track.predicted_at
                    self._tracks[face.track_id] = _Track(filt, p, anchor_points(face), now, predicted_at)
                points15 = corrected(kaggle_points(p), self.model.correction)
                face.keypoints = {name: (float(x), float(y)) for name, (x, y) in zip(KAGGLE_NAMES, points15)}
            self._tracks = {k: v for k, v in self._tracks.items() if now - v.seen_at <= self.forget_s}


@dataclass
class _Track:
    filter: OneEuroFilter
    points: np.ndarray  # the track's points on the frame it was last seen (smoothed)
    anchors: np.ndarray  # the face's anchor points on that frame (see core.analysis.landmarks.anchor_points)
    seen_at: float
    predicted_at: float  # when the CNN last ran on it (points carried since then)


def _unavailable() -> str | None:
    if not DEFAULT_WEIGHTS.is_file():
        return f"no {DEFAULT_WEIGHTS.name} in {DEFAULT_WEIGHTS.parent}: run `python -m core train-keypoints`"
    return None


register(ProcessorSpec(
    name="keypoints",
    label=KeypointProcessor.label,
    description="15 facial keypoints (eyes, eyebrows, nose, mouth) from our own CNN, smoothed per face",
    build=KeypointProcessor,
    unavailable=_unavailable,
))  # fmt: skip
