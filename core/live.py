"""The bridge between a WebRTC stream's frames (PyAV) and a :class:`FramePipeline`.

One :class:`LiveStream` per browser session. ``video_frame_callback`` runs on
streamlit-webrtc's worker thread; the UI thread talks to it only through
:meth:`LiveStream.configure` (a lock inside the pipeline) and :attr:`LiveStream.stats`
(thread-safe), never through Streamlit's session state.
"""

from __future__ import annotations

import av

from core.pipeline import FramePipeline, PipelineConfig, PipelineStats


class LiveStream:
    def __init__(self, config: PipelineConfig | None = None) -> None:
        self.pipeline = FramePipeline(config or PipelineConfig())

    @property
    def stats(self) -> PipelineStats:
        return self.pipeline.stats

    def configure(self, config: PipelineConfig) -> None:
        """Apply new processor choices; takes effect from the next frame."""
        self.pipeline.configure(config)

    def video_frame_callback(self, frame: av.VideoFrame) -> av.VideoFrame:
        """Annotate one frame; keeps the frame's timing so the browser plays it smoothly."""
        image = frame.to_ndarray(format="bgr24")
        annotated, _ = self.pipeline.annotate(image)
        out = av.VideoFrame.from_ndarray(annotated, format="bgr24")
        out.pts = frame.pts
        out.time_base = frame.time_base
        return out
