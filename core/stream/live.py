"""The bridge between a WebRTC stream's frames (PyAV) and a :class:`FramePipeline`.

One :class:`LiveStream` per browser session. ``video_frame_callback`` runs on
streamlit-webrtc's worker thread; the UI thread talks to it only through
:meth:`LiveStream.configure` (a lock inside the pipeline) and :attr:`LiveStream.stats`
(thread-safe), never through Streamlit's session state. :meth:`LiveStream.latest` hands the UI
the last raw frame and its faces (the People page enrolls "the face seen now" from it).
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


class LiveFrame(NamedTuple):
    """A raw (unannotated) BGR frame of the stream, its faces, and ``time.monotonic()`` when seen."""

    image: np.ndarray
    faces: list[Face]
    seen_at: float


METRICS_ENV = "VISION_LAB_LIVE_METRICS"


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
        self._latest_lock = threading.Lock()
        self._latest: LiveFrame | None = None
        metrics_path = os.environ.get(METRICS_ENV)
        self._metrics = MetricsLog(metrics_path) if metrics_path else None

    @property
    def stats(self) -> PipelineStats:
        return self.pipeline.stats

    def configure(self, config: PipelineConfig) -> None:
        """Apply new processor choices; takes effect from the next frame."""
        self.pipeline.configure(config)

    def latest(self) -> LiveFrame | None:
        """The last frame processed, or None before the first one; its image is never written to
        again, so it is safe to read from any thread."""
        with self._latest_lock:
            return self._latest

    def video_frame_callback(self, frame: av.VideoFrame) -> av.VideoFrame:
        """Annotate one frame; keeps the frame's timing so the browser plays it smoothly."""
        start = time.perf_counter()
        image = frame.to_ndarray(format="bgr24")
        annotated, result = self.pipeline.annotate(image)
        with self._latest_lock:
            self._latest = LiveFrame(image, result.faces, time.monotonic())
        out = av.VideoFrame.from_ndarray(annotated, format="bgr24")
        out.pts = frame.pts
        out.time_base = frame.time_base
        if self._metrics is not None:
            self._metrics.record(result, (time.perf_counter() - start) * 1000)
        return out
