"""Visitors: faces that recognition cannot name, grouped into people as they are seen.

Off unless asked for (the Live and Video pages' "Remember visitors", ``annotate-video
--visitors``). Used by :class:`core.analysis.recognition.RecognitionProcessor`, which feeds it
each encoding of a tracked face.

Invariants:
- Only good views count (:func:`view_quality`): a face at least :data:`MIN_VIEW_PX` wide, sharp
  (variance of the Laplacian), frontal (the nose between the eyes, from the landmarks). A track
  becomes or returns as a visitor only after :data:`VIEWS_NEEDED` good views, so one bad frame
  never creates a visitor.
- The decision is made on the mean of those views: nearest visitor within the tolerance -> a visit
  of that visitor; close to an enrolled person (within ``PERSON_GUARD`` x tolerance) -> nothing (a
  poor view of somebody known); else a new "Visitor N". Each track is decided once.
- A visitor keeps their best views (``MAX_VISITOR_PHOTOS``), first and last seen and visits; a
  sighting more than :data:`VISIT_GAP_S` after the last one is a new visit.
- :meth:`VisitorBook.regroup` merges visitors the online decisions split: average-linkage
  clustering of their encodings, cut at the tolerance (run every :data:`REGROUP_EVERY_S` and at
  the end of a video).
- Visitors last seen more than ``retention_days`` ago are forgotten, as completely as a person.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from core.faces import Face
from core.store.gallery import PERSON, VISITOR, Gallery, NewPhoto

MIN_VIEW_PX = 70  # measured: faces of 60-64 px (cut at a photo's edge) made 2 false visitors (bench/visitors.py)
MIN_SHARPNESS = 40.0  # variance of the Laplacian of the face at 112 px; a blurred face is ~10
VIEWS_NEEDED = 3
SAMPLE_EVERY_FRAMES = 2  # a track still collecting views is encoded every 2nd frame
PERSON_GUARD = 1.0  # measured: 1.1 turned 9 of 30 strangers away (bench/visitors.py)
VISIT_GAP_S = 300.0
REGROUP_EVERY_S = 60.0
THUMBNAIL_PX = 160


def sharpness(frame_bgr: np.ndarray, face: Face) -> float:
    box = face.box.clip(frame_bgr.shape[1], frame_bgr.shape[0])
    crop = frame_bgr[box.top : box.bottom, box.left : box.right]
    if crop.size == 0:
        return 0.0
    gray = cv2.cvtColor(cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def view_quality(frame_bgr: np.ndarray, face: Face) -> float | None:
    """A good view's quality (larger is better: sharpness x size), or None for a view that must
    not count: too small, blurred, or turned towards profile."""
    from core.analysis.effects import face_anchor, sure

    if face.box.width < MIN_VIEW_PX or not sure(face_anchor(frame_bgr, face)):
        return None
    sharp = sharpness(frame_bgr, face)
    if sharp < MIN_SHARPNESS:
        return None
    return float(np.log1p(sharp) * np.sqrt(face.box.width))


def thumbnail(frame_bgr: np.ndarray, face: Face) -> bytes:
    box = face.box.scaled(1.2).clip(frame_bgr.shape[1], frame_bgr.shape[0])
    crop = frame_bgr[box.top : box.bottom, box.left : box.right]
    scale = THUMBNAIL_PX / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


@dataclass
class _Evidence:
    """What one track has shown so far."""

    views: list[NewPhoto] = field(default_factory=list)
    label: str | None = None  # the visitor it was decided to be
    decided: bool = False
    frames: int = 0  # frames since its last encoding


class VisitorBook:
    """Turns unknown tracks into visitors in ``gallery`` (opened for writing); thread-safe."""

    def __init__(self, gallery: Gallery, encoder: str, tolerance: float, retention_days: float = 30.0) -> None:
        self.gallery = gallery
        self.encoder = encoder
        self.tolerance = tolerance
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._tracks: dict[int, _Evidence] = {}
        self._regrouped_at = time.monotonic()
        self.created = 0
        self.merges: list[tuple[str, str]] = []  # (kept, merged into it), in order

    def collecting(self, track_id: int) -> bool:
        """Whether the track still needs views (and should be encoded more often)."""
        with self._lock:
            evidence = self._tracks.get(track_id)
            if evidence is None or not evidence.decided:
                evidence = self._tracks.setdefault(track_id, _Evidence())
                evidence.frames += 1
                return evidence.frames >= SAMPLE_EVERY_FRAMES
            return False

    def label(self, track_id: int | None) -> str | None:
        with self._lock:
            evidence = self._tracks.get(track_id)
            return None if evidence is None else evidence.label

    def observe(self, frame_bgr: np.ndarray, face: Face, matched: str | None, matched_kind: str | None) -> str | None:
        """One encoding of a tracked face (``matched``: who the matcher named, of ``matched_kind``);
        the visitor label to show, if any."""
        if face.track_id is None or face.encoding is None:
            return None
        with self._lock:
            evidence = self._tracks.setdefault(face.track_id, _Evidence())
            evidence.frames = 0
            if matched_kind == PERSON:
                evidence.decided = True  # somebody enrolled: never a visitor
            if evidence.decided:
                return evidence.label
            quality = view_quality(frame_bgr, face)
            if quality is not None:
                evidence.views.append(NewPhoto(f"track {face.track_id}", face.box, thumbnail(frame_bgr, face),
                                               np.asarray(face.encoding, np.float64), self.encoder, quality))  # fmt: skip
            if len(evidence.views) < VIEWS_NEEDED:
                return None
            evidence.decided = True
            evidence.label = self._decide(evidence.views)
            return evidence.label

    def _decide(self, views: list[NewPhoto]) -> str | None:
        mean = np.mean([v.encoding for v in views], axis=0)
        now = time.time()
        best = sorted(views, key=lambda v: -v.quality)[:3]
        near = self.gallery.index(self.encoder).nearest_people(mean, 1)
        if near:
            name, distance = near[0]
            person = self.gallery.person(name)
            if person is not None and person.kind == VISITOR and distance <= self.tolerance:
                self.gallery.record_visit(name, now, new_visit=now - (person.last_seen or 0) > VISIT_GAP_S, photos=best)
                return name
            if person is not None and person.kind == PERSON and distance <= self.tolerance * PERSON_GUARD:
                return None  # a poor view of somebody enrolled
        self.created += 1
        return self.gallery.add_visitor(best, now).name

    def forget_tracks(self, alive: set[int]) -> None:
        with self._lock:
            self._tracks = {tid: e for tid, e in self._tracks.items() if tid in alive}

    def maintain(self, force: bool = False) -> int:
        """Regroup (at most every REGROUP_EVERY_S unless ``force``) and apply the retention; merges made."""
        if not force and time.monotonic() - self._regrouped_at < REGROUP_EVERY_S:
            return 0
        self._regrouped_at = time.monotonic()
        if self.retention_days > 0:
            self.gallery.forget_visitors(self.retention_days)
        merges = regroup(self.gallery, self.encoder, self.tolerance)
        self.merges += merges
        return len(merges)


def regroup(gallery: Gallery, encoder: str, tolerance: float) -> list[tuple[str, str]]:
    """Merge visitors whose encodings lie within ``tolerance`` on average (average linkage over
    every pair of their photos), each group into its first-numbered visitor; the merges made,
    (kept, merged)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    visitors = [v.name for v in gallery.visitors()]
    if len(visitors) < 2:
        return []
    index = gallery.index(encoder)
    encodings = {name: index.encodings_of(name) for name in visitors}
    names = [name for name in visitors if len(encodings[name])]
    if len(names) < 2:
        return []
    condensed = [
        float(np.linalg.norm(encodings[a][:, None] - encodings[b][None], axis=2).mean())
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    groups = fcluster(linkage(np.array(condensed), method="average"), t=tolerance, criterion="distance")
    merges = []
    for group in set(groups):
        members = sorted((n for n, g in zip(names, groups) if g == group), key=lambda n: int(n.split()[-1]) if n.split()[-1].isdigit() else 0)
        for other in members[1:]:
            gallery.merge_visitors(members[0], other)
            merges.append((members[0], other))
    return merges
