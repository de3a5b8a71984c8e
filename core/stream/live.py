"""The bridge between a WebRTC stream's frames (PyAV) and a :class:`FramePipeline`.

One :class:`LiveStream` per browser session. ``video_frame_callback`` runs on
streamlit-webrtc's worker thread; the UI thread talks to the stream only through
:meth:`LiveStream.configure` (a lock inside the pipeline), :attr:`LiveStream.stats` and
:meth:`LiveStream.status` (thread-safe), never through Streamlit's session state.
:meth:`LiveStream.latest` hands the UI the last raw frame and its faces (the People page enrolls
"the face seen now" from it).

Invariants:
- the callback never waits for the pipeline, whatever a frame costs: it hands the frame to the
  stream's own processing thread (the newest frame wins, older unprocessed ones are dropped) and
  returns at once the newest annotated frame, with the incoming frame's timing. So the stream
  never stalls and streamlit-webrtc never drops it for a slow frame; the browser sees the
  annotated frames at the rate they are made, re-sent in between;
- if no annotated frame is newer than :data:`STALE_S` (models still loading, processing stuck),
  the camera's own frames go back instead, so the video never freezes;
- :meth:`status` says when the stream ended (``on_ended``, wired to streamlit-webrtc's
  ``on_video_ended``) or when no frame has arrived for :data:`SILENT_S` while it should play.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import NamedTuple

import av
import numpy as np

from core.faces import Face, FrameResult
from core.stream.pipeline import FramePipeline, PipelineConfig, PipelineStats
from core.stream.recording import RecordingSlot

METRICS_ENV = "VISION_LAB_LIVE_METRICS"
STALE_S = 2.0  # an annotated frame older than this is not shown: the camera's own frame goes back
SILENT_S = 3.0  # no frame from the browser for this long: the connection is probably gone


class LiveFrame(NamedTuple):
    """A raw (unannotated) BGR frame of the stream, its faces, and ``time.monotonic()`` when seen."""

    image: np.ndarray
    faces: list[Face]
    seen_at: float


class StreamStatus(NamedTuple):
    """What the page says about the stream: ``state`` is "idle" (no frame yet), "live", "silent"
    (frames stopped arriving) or "ended"; ``seconds`` since the last frame (None before one)."""

    state: str
    seconds: float | None


class MetricsLog:
    """Appends one JSON line per second of a stream's processing to a file (JSON Lines): the
    frames processed so far, each frame's total ms since the last line, the mean ms per stage and
    the faces of the last frame. Set ``VISION_LAB_LIVE_METRICS=path`` to have every live stream of
    the server write it (``bench/live_e2e.py`` reads it: server-side figures, not the browser's)."""

    def __init__(self, path: str, interval_s: float = 1.0) -> None:
        self.path = path
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._frame_ms: list[float] = []
        self._stages: dict[str, list[float]] = {}
        self._frames = 0
        self._last_write = time.monotonic()

    def record(self, result: FrameResult, total_ms: float) -> None:
        with self._lock:
            self._frames += 1
            self._frame_ms.append(round(total_ms, 2))
            for stage, ms in result.timings_ms.items():
                self._stages.setdefault(stage, []).append(ms)
            now = time.monotonic()
            if now - self._last_write < self.interval_s:
                return
            line = {
                "t": round(now, 3),
                "frames_total": self._frames,
                "frame_ms": self._frame_ms,
                "stage_ms": {stage: round(sum(v) / len(v), 2) for stage, v in self._stages.items()},
                "faces": len(result.faces),
            }
            self._frame_ms, self._stages, self._last_write = [], {}, now
        with open(self.path, "a") as out:
            out.write(json.dumps(line) + "\n")


class LiveStream:
    def __init__(self, config: PipelineConfig | None = None) -> None:
        self.pipeline = FramePipeline(config or PipelineConfig())
        self._wake = threading.Condition()
        self._pending: av.VideoFrame | None = None  # the newest frame not yet processed
        self._out: tuple[av.VideoFrame, float] | None = None  # the newest annotated frame, when it was made
        self._latest: LiveFrame | None = None
        self._received_at: float | None = None
        self._ended = False
        self._worker: threading.Thread | None = None
        self._busy = False  # the processing thread is working on a frame
        metrics_path = os.environ.get(METRICS_ENV)
        self._metrics = MetricsLog(metrics_path) if metrics_path else None
        self.recording = RecordingSlot()  # fed by the processing thread, started and stopped by the page

    @property
    def stats(self) -> PipelineStats:
        return self.pipeline.stats

    def configure(self, config: PipelineConfig) -> None:
        """Apply new processor choices; takes effect from the next frame processed."""
        self.pipeline.configure(config)

    def latest(self) -> LiveFrame | None:
        """The last frame processed, or None before the first one; its image is never written to
        again, so it is safe to read from any thread."""
        with self._wake:
            return self._latest

    def status(self) -> StreamStatus:
        with self._wake:
            received_at, ended = self._received_at, self._ended
        seconds = None if received_at is None else time.monotonic() - received_at
        if ended:
            return StreamStatus("ended", seconds)
        if seconds is None:
            return StreamStatus("idle", None)
        return StreamStatus("silent" if seconds > SILENT_S else "live", seconds)

    def video_frame_callback(self, frame: av.VideoFrame) -> av.VideoFrame:
        """Hand ``frame`` to the processing thread; return the newest annotated frame (see the
        module's invariants), with ``frame``'s timing so the browser plays it smoothly."""
        now = time.monotonic()
        with self._wake:
            self._pending, self._received_at, self._ended = frame, now, False
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._process_frames, name="live-pipeline", daemon=True)
                self._worker.start()
            self._wake.notify_all()
            out = self._out
        if out is None or now - out[1] > STALE_S:
            return frame
        annotated = out[0]
        annotated.pts, annotated.time_base = frame.pts, frame.time_base
        return annotated

    def on_ended(self) -> None:
        """The browser's track ended (STOP, the tab closed, the connection lost)."""
        with self._wake:
            self._ended, self._out = True, None
            self._wake.notify_all()

    def wait_processed(self, timeout: float = 30.0) -> bool:
        """Block until the frames handed so far are processed (tests, snapshots); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._pending is not None or self._busy:
                if not self._wake.wait(max(0.0, deadline - time.monotonic())):
                    return False
        return True

    def _process_frames(self) -> None:
        while True:
            with self._wake:
                while self._pending is None:
                    if self._ended:
                        return
                    self._wake.wait(timeout=SILENT_S)
                    if self._pending is None and self._received_at is not None and time.monotonic() - self._received_at > 60:
                        return  # nobody streams any more; the next frame starts a new thread
                frame, self._pending, self._busy = self._pending, None, True
            start = time.perf_counter()
            image = frame.to_ndarray(format="bgr24")
            annotated, result = self.pipeline.annotate(image)
            out = av.VideoFrame.from_ndarray(annotated, format="bgr24")
            self.recording.write(annotated, image, time.monotonic())
            with self._wake:
                self._latest = LiveFrame(image, result.faces, time.monotonic())
                self._out = (out, time.monotonic())
                self._busy = False
                self._wake.notify_all()
            if self._metrics is not None:
                self._metrics.record(result, (time.perf_counter() - start) * 1000)
