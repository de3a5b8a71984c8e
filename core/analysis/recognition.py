"""Face encodings, enrollment into the gallery, matching against it, and the live
"recognition" processor.

Two encoders (:data:`ENCODERS`): SFace (OpenCV Zoo, :mod:`core.analysis.sface`), used whenever its models
are installed, and dlib's 128-d ResNet (as ``face_recognition``), the fallback, or chosen with
``VISION_LAB_ENCODER=dlib``. ``bench/recognition.py`` measures both on the same protocol.

Invariants:
- :func:`enroll` is the one enrollment path (People page, CLI, live snapshot): it validates the
  name before reading any photo, refuses a photo already stored for anybody, and writes the
  accepted photos in one gallery transaction, or nothing at all.
- :class:`Matcher` names a face only when it is both close to a person (within that person's
  threshold, never above the tolerance) and clearly closer to that person than to anybody else
  (:data:`MARGIN`); otherwise the face is "Unknown" (``name = None`` with its ``distance`` set).
- The live processor encodes a tracked face once its track is confirmed (seen in
  :data:`CONFIRM_FRAMES` frames) and then every :data:`REENCODE_INTERVAL_S`, at most
  :data:`MAX_ENCODINGS_PER_FRAME` faces per frame, new tracks first; between encodings a track
  keeps its last name and distance.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from core.analysis import sface
from core.analysis.landmarks import dlib_shape
from core.analysis.processors import ProcessorSpec, register
from core.faces import Box, Face, FrameResult, Processor
from core.images import ImageError, check_image, load_image, resize_by
from core.store.gallery import (
    Encodings,
    Gallery,
    GalleryError,
    PERSON,
    VISITOR,
    GalleryUnavailable,
    NeighbourIndex,
    NewPhoto,
    ScanIndex,
    open_gallery,
    validate_name,
)


@dataclass(frozen=True)
class EncoderSpec:
    """A face encoder and its default tolerance: the largest distance at which anybody is named,
    chosen on the benchmark's enrollment photos only, leave-one-out (``bench/recognition.py``).
    SFace: midway between the largest distance of a photo to its own person (0.725) and the
    smallest to somebody else (0.777). dlib: the best point of a grid of tolerances and margins
    (its photos of different people come closer than some of the same person: no gap to halve).

    ``duplicate_distance``: a photo this close to a stored one is the same photo (see
    :func:`enroll`). Measured on the 400 LFW photos of ``faces_identities``: SFace gives 0 for the
    same file, 0.046 (median; at most 0.175) for a photo saved again as a JPEG of quality 95, and
    0.306 for the nearest two different photos of one person. dlib enrolls on 10 random jitters:
    up to 0.127 for the same file, 0.164 for the nearest two photos of one person."""

    name: str
    label: str
    tolerance: float
    tolerance_setting: str  # the gallery setting holding the People page's tolerance for it
    duplicate_distance: float


ENCODERS = {
    "sface": EncoderSpec("sface", "SFace (OpenCV Zoo)", 0.75, "tolerance.sface", 0.1),
    "dlib": EncoderSpec("dlib", "dlib ResNet (face_recognition)", 0.55, "tolerance", 0.14),
}
ENCODER_ENV = "VISION_LAB_ENCODER"
MARGIN = 0.9  # a name is given only when d(nearest person) <= MARGIN * d(second nearest person)
SPREAD_FACTOR: float | None = None  # per-person thresholds (see Matcher): measured, not chosen
MIN_THRESHOLD = 0.4  # per-person thresholds never go below this (near-identical webcam snapshots)
ENROLL_JITTERS = 10  # dlib: enrollment encodes each photo on 10 jittered copies and averages them
MIN_FACE_PX = 40
SUBJECT_RATIO = 1.6  # a face this many times wider than every other one is the photo's subject
THUMBNAIL_PX = 160
REENCODE_INTERVAL_S = 2.0
MAX_ENCODINGS_PER_FRAME = 1
CONFIRM_FRAMES = 2  # a new track is encoded from its 2nd frame: one-frame false detections cost nothing
GALLERY_CHECK_INTERVAL_S = 0.5
TRACK_FORGET_S = 10.0

_encoder_lock = threading.Lock()


def active_encoder() -> str:
    """The encoder in use: ``$VISION_LAB_ENCODER`` when set, else SFace if installed, else dlib."""
    chosen = os.environ.get(ENCODER_ENV, "").strip().lower()
    if chosen:
        if chosen not in ENCODERS:
            raise ValueError(f"{ENCODER_ENV}={chosen!r}: choose one of {', '.join(ENCODERS)}")
        return chosen
    return "sface" if sface.unavailable() is None else "dlib"


def default_tolerance(encoder: str | None = None) -> float:
    return ENCODERS[encoder or active_encoder()].tolerance


@lru_cache(maxsize=None)
def _dlib_encoder():
    import dlib
    import face_recognition_models

    return dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())


def load_encoder(encoder: str) -> None:
    """Load ``encoder``'s networks now (the live processor does it before the first frame)."""
    _ = sface.shared_encoder() if encoder == "sface" else _dlib_encoder()


@lru_cache(maxsize=None)
def _fallback_detector():
    """dlib HOG upsampled once on photos of at most 1024 px, for the rare photo YuNet finds nothing in."""
    from core.analysis.detect import DlibHogDetector

    return DlibHogDetector(max_side=1024, upsample=1)


def encode_face(frame_bgr: np.ndarray, face: Face, encoder: str | None = None, enrolling: bool = False) -> np.ndarray:
    """The 128-d encoding of ``face`` by ``encoder`` (the active one when None), stored in
    ``face.encoding``. ``enrolling``: dlib averages :data:`ENROLL_JITTERS` jittered copies."""
    if (encoder or active_encoder()) == "sface":
        encoding = sface.shared_encoder().encode(frame_bgr, face)
    else:
        shape = dlib_shape(frame_bgr, face)
        rgb = np.ascontiguousarray(frame_bgr[:, :, ::-1])
        with _encoder_lock:
            encoding = np.array(_dlib_encoder().compute_face_descriptor(rgb, shape, ENROLL_JITTERS if enrolling else 0))
    face.encoding = encoding
    return encoding


def find_faces(image_bgr: np.ndarray) -> list[Face]:
    """Faces of a still photo, left to right: the default detector at its still size (YuNet, with
    its landmarks), dlib HOG when it finds none. Enrollment, recognition of photos and re-encoding
    all find faces this way, so a photo's encoding does not depend on the path it took."""
    from core.analysis.detect import DEFAULT_DETECTOR, get_detector

    return get_detector(DEFAULT_DETECTOR, still=True).faces(image_bgr) or _fallback_detector().faces(image_bgr)


# --- matching ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    name: str | None  # None: unknown
    distance: float | None  # to the nearest person; None when the gallery is empty


class Matcher:
    """Nearest person of a gallery's :class:`NeighbourIndex`, under a threshold and a margin.

    A face is named when it lies within the nearest person's threshold and
    ``distance <= margin * distance to the second nearest person``. The threshold is
    ``tolerance``; with a ``spread_factor``, a person's threshold is that factor times the mean
    distance between their own encodings (how much their photos vary), kept within
    [``MIN_THRESHOLD``, ``tolerance``] (a person with one encoding keeps ``tolerance``).
    The search is the store's: a scan in memory (SQLite, :class:`Encodings`) or an HNSW index
    in the database (PostgreSQL).
    """

    def __init__(
        self,
        index: NeighbourIndex | Encodings,
        tolerance: float,
        margin: float = MARGIN,
        spread_factor: float | None = SPREAD_FACTOR,
    ) -> None:
        self.index = ScanIndex(index) if isinstance(index, Encodings) else index
        self.tolerance = tolerance
        self.margin = margin
        self.spread_factor = spread_factor
        self.version = self.index.version
        self._thresholds: dict[str, float] = {}

    def threshold(self, name: str) -> float:
        """``name``'s threshold (computed once per matcher, from their encodings when spread_factor is set)."""
        if name not in self._thresholds:
            own = self.index.encodings_of(name) if self.spread_factor is not None else ()
            if len(own) < 2:
                self._thresholds[name] = self.tolerance
            else:
                pairwise = np.linalg.norm(own[:, None] - own[None], axis=2)[np.triu_indices(len(own), 1)]
                low = min(MIN_THRESHOLD, self.tolerance)
                self._thresholds[name] = float(np.clip(self.spread_factor * pairwise.mean(), low, self.tolerance))
        return self._thresholds[name]

    def match(self, encoding: np.ndarray) -> Match:
        near = self.index.nearest_people(encoding, 2)
        if not near:
            return Match(None, None)
        name, nearest = near[0]
        second = near[1][1] if len(near) > 1 else np.inf
        known = nearest <= self.threshold(name) and nearest <= self.margin * second
        return Match(name if known else None, nearest)


@dataclass(frozen=True)
class PairReport:
    """Pair verification over a gallery's photos: every pair is "same person" when its distance is
    within the tolerance; scored against the names."""

    same: np.ndarray  # distances of the pairs of one person's photos
    different: np.ndarray  # distances of the pairs of two people's photos
    tolerance: float
    precision: float
    recall: float
    f1: float
    suspects: tuple[tuple[int, str, str, float, float], ...]  # (photo id, its person, nearer person, own d, other d)


def pair_report(encodings: Encodings, tolerance: float, people: set[str] | None = None) -> PairReport:
    """Distances of every pair of photos (of ``people`` when given: enrolled people, not visitors),
    precision, recall and F1 of "same person iff distance <= tolerance", and the photos that lie
    nearer to somebody else's photo than to any of their own person's (likely mislabelled)."""
    keep = [i for i, name in enumerate(encodings.names) if people is None or name in people]
    names = np.array([encodings.names[i] for i in keep])
    matrix = encodings.matrix[keep]
    ids = [encodings.photo_ids[i] for i in keep] if encodings.photo_ids else list(range(len(keep)))
    distances = np.linalg.norm(matrix[:, None] - matrix[None], axis=2) if len(keep) else np.zeros((0, 0))
    upper = np.triu_indices(len(keep), 1)
    same_pair = (names[:, None] == names[None])[upper]
    pair_d = distances[upper]
    predicted = pair_d <= tolerance
    true_positive = int(np.sum(predicted & same_pair))
    precision = true_positive / max(int(predicted.sum()), 1)
    recall = true_positive / max(int(same_pair.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    suspects = []
    for i in range(len(keep)):
        own = [j for j in range(len(keep)) if j != i and names[j] == names[i]]
        other = [j for j in range(len(keep)) if names[j] != names[i]]
        if own and other:
            nearest_other = min(other, key=lambda j: distances[i, j])
            own_d, other_d = float(distances[i, own].min()), float(distances[i, nearest_other])
            if other_d < own_d:
                suspects.append((ids[i], str(names[i]), str(names[nearest_other]), own_d, other_d))
    return PairReport(pair_d[same_pair], pair_d[~same_pair], tolerance, precision, recall, f1, tuple(suspects))


def gallery_tolerance(gallery: Gallery, encoder: str | None = None) -> float:
    """The tolerance saved with the gallery for ``encoder`` (People page slider), else its default."""
    spec = ENCODERS[encoder or active_encoder()]
    value = gallery.setting(spec.tolerance_setting)
    return spec.tolerance if value is None else float(value)


def set_gallery_tolerance(gallery: Gallery, tolerance: float, encoder: str | None = None) -> None:
    if not 0.2 <= tolerance <= 1.0:
        raise GalleryError("the tolerance must lie between 0.2 and 1.0")
    gallery.set_setting(ENCODERS[encoder or active_encoder()].tolerance_setting, repr(float(tolerance)))


def gallery_matcher(gallery: Gallery, encoder: str, tolerance: float | None = None) -> Matcher:
    """A matcher over the gallery's encodings by ``encoder``, at ``tolerance`` or the saved one."""
    return Matcher(gallery.index(encoder), gallery_tolerance(gallery, encoder) if tolerance is None else tolerance)


def recognize(gallery: Gallery, image_bgr: np.ndarray, tolerance: float | None = None) -> list[Face]:
    """The faces of a still photo, each with its name (None: unknown) and distance."""
    encoder = active_encoder()
    matcher = gallery_matcher(gallery, encoder, tolerance)
    faces = find_faces(image_bgr)
    for face in faces:
        match = matcher.match(encode_face(image_bgr, face, encoder))
        face.name, face.distance = match.name, match.distance
    return faces


# --- enrollment ----------------------------------------------------------------------------
CHOICE_COLOR = (80, 220, 100)  # BGR: the faces to choose from
CHOSEN_COLOR = (0, 170, 255)  # BGR, orange: the face chosen


def draw_choices(image_bgr: np.ndarray, boxes: Sequence[Box], chosen: int | None = None) -> np.ndarray:
    """A copy of the image with each box drawn and numbered from 1 (left to right) in a filled
    badge at its top-left corner, both scaled with the image; the ``chosen`` box (an index) is
    thicker and orange (face pickers)."""
    out = image_bgr.copy()
    side = max(out.shape[:2])
    thickness = max(2, round(side / 250))
    radius = max(14, round(side / 28))
    scale = radius / 22
    for index, (top, right, bottom, left) in enumerate(boxes):
        color = CHOSEN_COLOR if index == chosen else CHOICE_COLOR
        cv2.rectangle(out, (left, top), (right, bottom), color, thickness * (2 if index == chosen else 1))
        centre = (min(max(left, radius), out.shape[1] - radius), min(max(top, radius), out.shape[0] - radius))
        cv2.circle(out, centre, radius, color, -1, cv2.LINE_AA)
        cv2.circle(out, centre, radius, (255, 255, 255), max(1, thickness // 2), cv2.LINE_AA)
        label = str(index + 1)
        (width, height), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        origin = (centre[0] - width // 2, centre[1] + height // 2)
        cv2.putText(out, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return out


@dataclass
class PhotoOutcome:
    """What became of one photo: accepted (with its face crop) or rejected with a reason.

    ``boxes`` lists every face found, so a caller can offer a choice when there are several
    (then ``reason`` says so and ``needs_choice`` is True).
    """

    source: str
    accepted: bool
    reason: str | None = None
    boxes: list[Box] = field(default_factory=list)
    chosen: int | None = None
    thumbnail_jpeg: bytes | None = None
    needs_choice: bool = False

    def to_json(self) -> dict:
        return {
            "image": self.source,
            "accepted": self.accepted,
            "reason": self.reason,
            "faces": [list(b) for b in self.boxes],
            "chosen": self.chosen,
        }


@dataclass
class Enrollment:
    name: str
    photos: list[PhotoOutcome]
    written: bool  # False: nothing was stored (no accepted photo, or an invalid name)

    @property
    def accepted(self) -> int:
        return sum(p.accepted for p in self.photos)


@dataclass(frozen=True)
class Snapshot:
    """A frame with the faces :func:`find_faces` found in it, found once: a preview showing them
    and the enrollment of the frame agree (a live stream's own detector may find other faces)."""

    image: np.ndarray
    faces: tuple[Face, ...]

    @classmethod
    def of(cls, image_bgr: np.ndarray) -> Snapshot:
        return cls(image_bgr, tuple(find_faces(image_bgr)))


PhotoSource = str | Path | bytes | np.ndarray | Snapshot


def face_thumbnail(image_bgr: np.ndarray, box: Box) -> bytes:
    """A JPEG of the face with a margin of a quarter of its size, at most THUMBNAIL_PX a side."""
    height, width = image_bgr.shape[:2]
    pad = max(box.width, box.height) // 4
    crop = image_bgr[max(0, box.top - pad) : min(height, box.bottom + pad), max(0, box.left - pad) : min(width, box.right + pad)]
    crop = resize_by(crop, min(1.0, THUMBNAIL_PX / max(crop.shape[:2])))
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ImageError("could not encode the face crop as JPEG")
    return jpeg.tobytes()


def main_face(boxes: Sequence[Box], image_shape: tuple[int, ...]) -> int:
    """Index of the largest box; among equally large ones, the most central."""
    centre_y, centre_x = image_shape[0] / 2, image_shape[1] / 2

    def key(i: int) -> tuple[int, float]:
        box = boxes[i]
        return box.area, -np.hypot((box.left + box.right) / 2 - centre_x, (box.top + box.bottom) / 2 - centre_y)

    return max(range(len(boxes)), key=key)


def clear_subject(boxes: Sequence[Box]) -> bool:
    """Whether one face is plainly the photo's subject: at least :data:`SUBJECT_RATIO` times as
    wide as every other (the others are people in the background), so nobody needs to pick."""
    widths = sorted((box.width for box in boxes), reverse=True)
    return len(widths) == 1 or widths[0] >= SUBJECT_RATIO * widths[1]


def prepare_photo(
    source_name: str, data: PhotoSource, face_index: int | None = None, largest_face: bool = False
) -> tuple[PhotoOutcome, NewPhoto | None]:
    """Decode, detect, choose one face, crop and encode; never raises for a bad photo.

    ``face_index`` picks among several faces (left to right); ``largest_face`` picks the largest
    instead of asking, as happens anyway when one face is plainly the subject
    (:func:`clear_subject`). The second value is what to store, None when the photo is rejected.
    """
    try:
        pixels = data.image if isinstance(data, Snapshot) else data
        image = check_image(pixels) if isinstance(pixels, np.ndarray) else load_image(pixels)
    except ImageError as error:
        return PhotoOutcome(source_name, False, str(error)), None
    faces = [replace(face) for face in data.faces] if isinstance(data, Snapshot) else find_faces(image)
    boxes = [face.box for face in faces]
    outcome = PhotoOutcome(source_name, False, boxes=boxes)
    if not boxes:
        outcome.reason = "no face found (use a sharp, well-lit photo of a face looking at the camera)"
        return outcome, None
    if face_index is not None:
        if not 0 <= face_index < len(boxes):
            outcome.reason = f"face {face_index} does not exist: the photo shows {len(boxes)} face(s)"
            return outcome, None
        chosen = face_index
    elif largest_face or clear_subject(boxes):
        chosen = main_face(boxes, image.shape)
    else:
        outcome.reason = f"{len(boxes)} faces found: pick the one to enroll"
        outcome.needs_choice = True
        return outcome, None
    box = boxes[chosen]
    outcome.chosen = chosen
    if min(box.width, box.height) < MIN_FACE_PX:
        outcome.reason = f"the face is too small ({box.width}x{box.height} px; at least {MIN_FACE_PX} px needed)"
        return outcome, None
    encoder = active_encoder()
    encoding = encode_face(image, faces[chosen], encoder, enrolling=True)
    outcome.accepted = True
    outcome.thumbnail_jpeg = face_thumbnail(image, box)
    return outcome, NewPhoto(source_name, box, outcome.thumbnail_jpeg, encoding, encoder)


def enroll(
    gallery: Gallery,
    name: str,
    photos: Sequence[tuple[str, PhotoSource]],
    face_indices: dict[int, int] | None = None,
    largest_face: bool = False,
) -> Enrollment:
    """Add the usable ``photos`` (pairs of a display name and a file, bytes or BGR array) to
    ``name`` (created when new) in one transaction; ``face_indices`` maps a photo's position to
    the face chosen in it. A photo already stored for anybody (its encoding within the
    encoder's ``duplicate_distance`` of a stored one), or twice in ``photos``, is refused saying
    whose it is. Raises :class:`GalleryError` for an invalid name, before any work."""
    name = validate_name(name)
    outcomes, accepted = [], []
    stored: NeighbourIndex | None = None  # read once, when the first photo is usable
    for position, (source_name, data) in enumerate(photos):
        outcome, new_photo = prepare_photo(source_name, data, (face_indices or {}).get(position), largest_face)
        outcomes.append(outcome)
        if new_photo is not None:
            if stored is None:
                stored = gallery.index(new_photo.encoder)
            outcome.reason = duplicate_of(new_photo, stored, accepted)
            outcome.accepted = outcome.reason is None
            if outcome.accepted:
                accepted.append(new_photo)
    if accepted:
        gallery.add_photos(name, accepted)
    return Enrollment(name, outcomes, written=bool(accepted))


def duplicate_of(photo: NewPhoto, stored: NeighbourIndex, batch: Sequence[NewPhoto]) -> str | None:
    """Why ``photo`` is a copy of one in the gallery (``stored``) or in ``batch``, or None."""
    limit = ENCODERS[photo.encoder].duplicate_distance
    for earlier in batch:
        if np.linalg.norm(earlier.encoding - photo.encoding) < limit:
            return f"This photo is already in this upload ({earlier.source})."
    nearest = stored.nearest_people(photo.encoding, 1)
    if nearest and nearest[0][1] < limit:
        return f"This photo is already enrolled for {nearest[0][0]}."
    return None


def photos_needing_reencoding(gallery: Gallery) -> int:
    """How many photos were encoded by another encoder than the active one (recognition ignores them)."""
    encoder = active_encoder()
    return sum(count for name, count in gallery.encoder_counts().items() if name != encoder)


def reencode_gallery(gallery: Gallery, encoder: str | None = None) -> dict[str, list[int]]:
    """Encode again, with ``encoder`` (the active one when None), every photo encoded by another
    one, from the face crop stored with it (the original photo is not kept). Photos whose crop
    shows no face keep their old encoding. Returns the photo ids re-encoded and failed."""
    encoder = encoder or active_encoder()
    done: dict[int, np.ndarray] = {}
    failed: list[int] = []
    for person in gallery.people():
        for photo in gallery.photos(person.name):
            if photo.encoder == encoder:
                continue
            crop = load_image(photo.thumbnail_jpeg)
            faces = find_faces(crop)
            if not faces:
                failed.append(photo.id)
                continue
            face = faces[main_face([f.box for f in faces], crop.shape)]
            done[photo.id] = encode_face(crop, face, encoder, enrolling=True)
    if done:
        gallery.replace_encodings(done, encoder)
    return {"reencoded": sorted(done), "failed": failed}


# --- the live processor ----------------------------------------------------------------------
@dataclass
class _Track:
    encoding: np.ndarray
    match: Match
    encoded_at: float
    seen_at: float


class RecognitionProcessor(Processor):
    """Names faces from the gallery; caches per track so a face is encoded once every
    :data:`REENCODE_INTERVAL_S` (still images, ``track_id is None``, are always encoded).
    With ``visitors``, the faces it cannot name are grouped into visitors as they are seen
    (:mod:`core.analysis.visitors`; such a track is encoded every few frames until decided), and
    visitors not seen for ``retention_days`` are forgotten."""

    name = "recognition"
    label = "Recognition (names)"

    def __init__(self, gallery: str | None = None, tolerance: float | None = None, visitors: bool = False,
                 retention_days: float = 30.0) -> None:  # fmt: skip
        self.tolerance = tolerance  # None: the gallery's saved tolerance
        self._gallery = open_gallery(gallery or None, readonly=True)  # an absent file reads as an empty gallery
        self._kinds: dict[str, str] = {}  # name -> person or visitor, refreshed with the matcher
        self.book = None  # visitors: unknown faces grouped as they are seen (core.analysis.visitors)
        if visitors:
            from core.analysis.visitors import VisitorBook

            writer = open_gallery(gallery or None)
            self.book = VisitorBook(writer, active_encoder(), tolerance or gallery_tolerance(writer), retention_days)
        self.unavailable: str | None = None  # why the gallery cannot be read now (names then stay as they were)
        self._lock = threading.Lock()
        self._tracks: dict[int, _Track] = {}
        self._sightings: dict[int, tuple[int, float]] = {}  # track not encoded yet -> (frames seen, last seen)
        self._matcher: Matcher | None = None
        self._checked_at = -np.inf
        self.encoder = active_encoder()
        load_encoder(self.encoder)  # now, not in the first frame

    def matcher(self) -> Matcher:
        """The matcher for the gallery's current content, rebuilt only when the gallery changed
        (checked at most every GALLERY_CHECK_INTERVAL_S)."""
        now = time.monotonic()
        with self._lock:
            if self._matcher is not None and now - self._checked_at < GALLERY_CHECK_INTERVAL_S:
                return self._matcher
            self._checked_at = now
            try:
                if self._matcher is None or self._matcher.version != self._gallery.version():
                    self._matcher = gallery_matcher(self._gallery, self.encoder, self.tolerance)
                    self._kinds = {}
                    for track in self._tracks.values():
                        track.match = self._matcher.match(track.encoding)
                self.unavailable = None
            except GalleryUnavailable as error:  # keep streaming with the names known so far
                self.unavailable = str(error)
                self._matcher = self._matcher or Matcher(Encodings((), np.zeros((0, 128)), -1), 1.0)
            return self._matcher

    def _is_visitor(self, name: str | None) -> bool:
        """Whether ``name`` is a visitor's label. Looked up once per name and gallery version: a
        PostgreSQL index is live, so it can name somebody added since the matcher was built."""
        if name is None:
            return False
        if name not in self._kinds:
            try:
                person = self._gallery.person(name)
            except GalleryUnavailable:
                return False
            self._kinds[name] = VISITOR if person is not None and person.kind == VISITOR else PERSON
        return self._kinds[name] == VISITOR

    def _match(self, matcher: Matcher, encoding: np.ndarray, previous: Match) -> Match:
        """``matcher``'s answer, or ``previous`` while the gallery cannot be reached."""
        try:
            return matcher.match(encoding)
        except GalleryUnavailable as error:
            self.unavailable = str(error)
            return previous

    def process(self, frame_bgr: np.ndarray, result: FrameResult) -> None:
        matcher = self.matcher()
        now = time.monotonic()
        with self._lock:
            for face in result.faces:
                if face.track_id is not None and face.track_id not in self._tracks:
                    seen = self._sightings.get(face.track_id, (0, now))[0] + 1
                    self._sightings[face.track_id] = (seen, now)
            new = [f for f in result.faces if self._sightings.get(f.track_id, (0, now))[0] >= CONFIRM_FRAMES]
            stale = sorted(
                (f for f in result.faces if f.track_id in self._tracks and (
                    now - self._tracks[f.track_id].encoded_at >= REENCODE_INTERVAL_S
                    or (self.book is not None and self.book.collecting(f.track_id)))),  # still gathering a visitor's views
                key=lambda f: self._tracks[f.track_id].encoded_at,
            )  # fmt: skip
        stills = [f for f in result.faces if f.track_id is None]
        tracked = (new + stale)[:MAX_ENCODINGS_PER_FRAME]
        for face in stills + tracked:
            face.encoding = encode_face(frame_bgr, face, self.encoder)
        with self._lock:
            for face in result.faces:
                if face.encoding is not None:
                    previous = self._tracks[face.track_id].match if face.track_id in self._tracks else Match(None, None)
                    match = self._match(matcher, face.encoding, previous)
                    if face.track_id is not None:
                        self._tracks[face.track_id] = _Track(face.encoding, match, now, now)
                        self._sightings.pop(face.track_id, None)
                elif face.track_id in self._tracks:
                    track = self._tracks[face.track_id]
                    track.seen_at = now
                    match = track.match
                else:
                    continue  # a new track waiting for its turn to be encoded
                face.name, face.distance = match.name, match.distance
                face.visitor = self._is_visitor(match.name)
            self._tracks = {tid: t for tid, t in self._tracks.items() if now - t.seen_at < TRACK_FORGET_S}
            self._sightings = {tid: s for tid, s in self._sightings.items() if now - s[1] < TRACK_FORGET_S}
        if self.book is not None:
            self._visitors(frame_bgr, result)

    def _visitors(self, frame_bgr: np.ndarray, result: FrameResult) -> None:
        """Feed the visitor book each tracked face encoded now; show the visitor it decided on."""
        try:
            for face in result.faces:
                if face.track_id is None or face.track_id not in self._tracks:
                    continue
                if face.encoding is not None:
                    kind = None if face.name is None else (VISITOR if face.visitor else PERSON)
                    self.book.observe(frame_bgr, face, face.name, kind)
                label = self.book.label(face.track_id)
                if label is not None and face.name in (None, label):
                    face.name, face.visitor = label, True
                    with self._lock:
                        self._tracks[face.track_id].match = Match(label, face.distance)
            self.book.forget_tracks(set(self._tracks))
            self.book.maintain()
        except GalleryUnavailable as error:
            self.unavailable = str(error)


def _unavailable() -> str | None:
    """File checks only: dlib (still-photo detection, landmarks) and the active encoder's weights."""
    from core.models import package_dir

    if importlib.util.find_spec("dlib") is None:
        return "dlib is not installed (pip install dlib-bin)"
    if active_encoder() == "sface":
        return sface.unavailable()
    folder = package_dir("face_recognition_models")
    if folder is None or not (folder / "models" / "dlib_face_recognition_resnet_model_v1.dat").exists():
        return "the face_recognition_models package (dlib's face encoder weights) is not installed"
    return None


register(
    ProcessorSpec(
        "recognition",
        RecognitionProcessor.label,
        "Names the faces enrolled on the People page; 'No match' for anybody else.",
        build=RecognitionProcessor,
        unavailable=_unavailable,
    )
)
