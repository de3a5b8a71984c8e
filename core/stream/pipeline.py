"""FramePipeline: detect faces once per frame, let each chosen processor enrich them, draw.

Invariants:
- :meth:`FramePipeline.annotate` never raises because of a processor: a failing stage is
  skipped for that frame, the frame still comes back (annotated by the stages that worked),
  and the error is recorded once per distinct message in :class:`PipelineStats`.
- The configuration can be swapped from another thread at any time (:meth:`configure`); a
  frame is processed entirely with the configuration it started with.
- In a stream (``tracking``) faces carry a ``track_id`` stable across frames while the face stays
  in view, so costly processors can cache per track instead of recomputing every frame; a face
  appears in results (processed, drawn, counted) only once its track is confirmed (its second
  frame), so a false box seen in one frame never shows (:class:`FaceTracker`).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.analysis.detect import DEFAULT_DETECTOR, get_detector
from core.faces import Box, Face, FrameResult, Processor
from core.stream.draw import draw_result

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    """What a pipeline runs: a detector name (``None``: no face detection) and processors in order.

    ``tracking`` links faces across frames (a stream); off for unrelated still images, whose
    faces then have ``track_id = None``. ``overlays`` off draws no boxes, points or captions (the
    faces' effects and a repainted frame still show).
    """

    detector: str | None = DEFAULT_DETECTOR
    processors: tuple[Processor, ...] = ()
    tracking: bool = True
    overlays: bool = True  # boxes, keypoints and captions drawn (off: the picture alone, e.g. styled)
    numbered: bool = False  # each face's number drawn on its box (a photo's table rows, 1, 2, ...)
    min_width: int = 0  # a narrower frame is drawn enlarged to this width (a small photo's captions stay legible)


_track_ids = itertools.count(1)  # shared by every tracker: ids are unique across streams


@dataclass
class _Track:
    box: Box
    hits: int = 1  # frames it was matched in
    age: int = 1  # frames since it started
    missed: int = 0  # frames in a row without a match


class FaceTracker:
    """Greedy matching of this frame's boxes to the tracks of earlier frames.

    A box inherits a track's id when it overlaps the track's last box by at least ``min_iou``, or,
    failing that, when its centre lies within ``max_shift`` box sides of it (a face that moved
    fast, or came back after a short miss); the best pairs are taken first. Other boxes start new
    tracks, with ids unique across all trackers of the process (so a processor shared by several
    streams can key its per-face cache by ``track_id``).

    A track is *confirmed* once it has been matched in ``confirm_hits`` of its first
    ``confirm_window`` frames; a tentative track that misses out is dropped, so a one-frame false
    box never becomes a track. Confirmed tracks survive ``max_missed`` frames without a match.
    :meth:`update` marks each face ``confirmed``; only confirmed faces are drawn and counted.
    """

    def __init__(self, min_iou: float = 0.3, max_shift: float = 0.5, max_missed: int = 10,
                 confirm_hits: int = 2, confirm_window: int = 3) -> None:  # fmt: skip
        self.min_iou = min_iou
        self.max_shift = max_shift
        self.max_missed = max_missed
        self.confirm_hits = confirm_hits
        self.confirm_window = confirm_window
        self._tracks: dict[int, _Track] = {}

    def _affinity(self, box: Box, track: _Track) -> float:
        """IoU when the boxes overlap enough; else a value below ``min_iou`` that falls with the
        distance of the centres (0 beyond ``max_shift`` sides): overlap is always preferred."""
        iou = box.iou(track.box)
        if iou >= self.min_iou:
            return iou
        side = (track.box.width + track.box.height) / 2
        shift = np.hypot((box.left + box.right - track.box.left - track.box.right) / 2,
                         (box.top + box.bottom - track.box.top - track.box.bottom) / 2) / max(side, 1.0)  # fmt: skip
        ratio = box.width / max(track.box.width, 1)
        if shift > self.max_shift or not 0.67 < ratio < 1.5:
            return 0.0
        return self.min_iou * (1.0 - shift / self.max_shift) * 0.99

    def update(self, faces: list[Face]) -> list[Face]:
        pairs = sorted(
            ((self._affinity(face.box, track), i, track_id) for i, face in enumerate(faces) for track_id, track in self._tracks.items()),
            reverse=True,
        )
        assigned: dict[int, int] = {}
        used: set[int] = set()
        for affinity, i, track_id in pairs:
            if affinity <= 0:
                break
            if i not in assigned and track_id not in used:
                assigned[i] = track_id
                used.add(track_id)
        tracks: dict[int, _Track] = {}
        confirmed: list[Face] = []
        for track_id, track in self._tracks.items():
            if track_id in used:
                continue
            track.missed += 1
            track.age += 1
            tentative = track.hits < self.confirm_hits
            if (not tentative and track.missed <= self.max_missed) or (tentative and track.age < self.confirm_window):
                tracks[track_id] = track
        for i, face in enumerate(faces):
            if i in assigned:
                track = self._tracks[assigned[i]]
                track.box, track.hits, track.age, track.missed = face.box, track.hits + 1, track.age + 1, 0
            else:
                assigned[i] = next(_track_ids)
                track = _Track(face.box)
            face.track_id = assigned[i]
            tracks[face.track_id] = track
            if track.hits >= self.confirm_hits:
                confirmed.append(face)
        self._tracks = tracks
        return confirmed


class PipelineStats:
    """Thread-safe rolling statistics: written by the frame thread, read by the UI's live panel."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._frames: deque[tuple[float, float, int, dict[str, float]]] = deque()
        self._errors: dict[str, str] = {}
        self.frames_total = 0

    def record(self, result: FrameResult, total_ms: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._frames.append((now, total_ms, len(result.faces), dict(result.timings_ms)))
            while self._frames and now - self._frames[0][0] > self.window_s:
                self._frames.popleft()
            self.frames_total += 1

    def record_error(self, stage: str, error: BaseException) -> bool:
        """Remember ``error`` of ``stage``; True when this message is new (so it is logged once)."""
        message = f"{type(error).__name__}: {error}"
        with self._lock:
            if self._errors.get(stage) == message:
                return False
            self._errors[stage] = message
            return True

    def snapshot(self) -> dict[str, Any]:
        """fps over the window, faces in the last frame, mean ms per stage, errors by stage."""
        with self._lock:
            frames = list(self._frames)
            errors = dict(self._errors)
            total = self.frames_total
        now = time.monotonic()
        recent = [f for f in frames if now - f[0] <= self.window_s]
        fps = 0.0
        if len(recent) >= 2:
            span = recent[-1][0] - recent[0][0]
            fps = (len(recent) - 1) / span if span > 0 else 0.0
        stages: dict[str, list[float]] = {}
        for _, _, _, timings in recent:
            for stage, ms in timings.items():
                stages.setdefault(stage, []).append(ms)
        return {
            "fps": round(fps, 1),
            "faces": recent[-1][2] if recent else 0,
            "frame_ms": round(float(np.mean([f[1] for f in recent])), 1) if recent else None,
            "stage_ms": {stage: round(float(np.mean(v)), 1) for stage, v in stages.items()},
            "frames_total": total,
            "errors": errors,
        }


@dataclass
class FramePipeline:
    """Runs a :class:`PipelineConfig` on frames; one instance per stream (it keeps the tracker)."""

    config: PipelineConfig = field(default_factory=PipelineConfig)
    stats: PipelineStats = field(default_factory=PipelineStats)

    def __post_init__(self) -> None:
        self._config_lock = threading.Lock()
        self._tracker = FaceTracker()

    def configure(self, config: PipelineConfig) -> None:
        """Swap the configuration; safe to call from any thread while frames are processed."""
        with self._config_lock:
            self.config = config

    def process(self, frame_bgr: np.ndarray) -> FrameResult:
        """Detect, track and enrich faces; a failing stage is recorded and skipped."""
        with self._config_lock:
            config = self.config
        return self._process(frame_bgr, config)

    def _process(self, frame_bgr: np.ndarray, config: PipelineConfig) -> FrameResult:
        result = FrameResult()
        if config.detector is not None:
            detect = lambda: get_detector(config.detector, still=not config.tracking).faces(frame_bgr)  # noqa: E731
            result.faces = self._run_stage("detect", result, detect, timed=True) or []
            if config.tracking:
                result.faces = self._tracker.update(result.faces)
        for processor in config.processors:
            if processor.needs_faces and not result.faces:
                continue
            self._run_stage(processor.name, result, lambda p=processor: p.process(frame_bgr, result), timed=True)
        return result

    def annotate(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, FrameResult]:
        """Process ``frame_bgr`` and return a drawn copy with the result; records stats."""
        start = time.perf_counter()
        with self._config_lock:
            config = self.config
        result = self._process(frame_bgr, config)
        out = self._run_stage("draw", result, lambda: draw_result(frame_bgr, result, config.overlays, config.numbered, config.min_width), timed=True)
        if out is None:
            out = frame_bgr
        self.stats.record(result, (time.perf_counter() - start) * 1000)
        return out, result

    def _run_stage(self, stage: str, result: FrameResult, call, timed: bool = False):
        start = time.perf_counter()
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - a stage must never kill the stream
            if self.stats.record_error(stage, error):
                log.exception("stage %r failed; the frame passes through without it", stage)
            return None
        finally:
            if timed:
                result.timings_ms[stage] = result.timings_ms.get(stage, 0.0) + (time.perf_counter() - start) * 1000

