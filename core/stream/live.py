"""The bridge between a WebRTC stream's frames (PyAV) and a :class:`FramePipeline`.

One :class:`LiveStream` per browser session. ``video_frame_callback`` runs on
streamlit-webrtc's worker thread; the UI thread talks to it only through
:meth:`LiveStream.configure` (a lock inside the pipeline) and :attr:`LiveStream.stats`
(thread-safe), never through Streamlit's session state. :meth:`LiveStream.latest` hands the UI
the last raw frame and its faces (the People page enrolls "the face seen now" from it).
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

import av
import numpy as np

from core.faces import Face
from core.stream.pipeline import FramePipeline, PipelineConfig, PipelineStats


class LiveFrame(NamedTuple):
    """A raw (unannotated) BGR frame of the stream, its faces, and ``time.monotonic()`` when seen."""

    image: np.ndarray
    faces: list[Face]
    seen_at: float


class LiveStream:
    def __init__(self, config: PipelineConfig | None = None) -> None:
        self.pipeline = FramePipeline(config or PipelineConfig())
        self._latest_lock = threading.Lock()
        self._latest: LiveFrame | None = None

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
        image = frame.to_ndarray(format="bgr24")
        annotated, result = self.pipeline.annotate(image)
        with self._latest_lock:
            self._latest = LiveFrame(image, result.faces, time.monotonic())
        out = av.VideoFrame.from_ndarray(annotated, format="bgr24")
        out.pts = frame.pts
        out.time_base = frame.time_base
        return out
