"""Recordings of a live stream (a webcam or a server-side source) into MP4, as the Video page writes them.

:class:`Recorder` writes one file; :class:`RecordingSlot` is a stream's at-most-one recording,
started and stopped by the UI and fed by the stream's processing thread.
"""

from __future__ import annotations

import logging
import secrets
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from core.stream.video import MAX_BYTES, MAX_SECONDS, VIDEO_CODEC, open_mp4_video

log = logging.getLogger(__name__)


class Recorder:
    """Writes BGR frames into an MP4 (H.264, ``yuv420p``, as the Video page writes), each at its
    capture time, so the recording plays at the pace the frames came.

    Invariants: the file appears at ``path`` only when :meth:`stop` has finished it (until then it
    is written beside, under a hidden name); frames keep the first frame's size (even sides; a
    later frame of another size is scaled to it); the recording stops itself, keeping what it has,
    at the Video page's limits (:data:`~core.stream.video.MAX_SECONDS`, ``MAX_BYTES``). Thread-safe.
    """

    def __init__(self, path: str | Path, fps: float | None = None, max_seconds: float = MAX_SECONDS,
                 max_bytes: int = MAX_BYTES) -> None:  # fmt: skip
        self.path = Path(path)
        self.fps = fps or 30.0
        self.max_seconds, self.max_bytes = max_seconds, max_bytes
        self.frames = 0
        self.bytes = 0  # of the encoded frames so far
        self._frame_bytes = 0  # of the last one: about what the next one adds
        self.full: str | None = None  # why the recording stopped by itself
        self._partial = self.path.with_name(f".{self.path.stem}-{secrets.token_hex(6)}.partial.mp4")
        self._lock = threading.Lock()
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._first: float | None = None
        self._last_pts = -1
        self._stopped = False

    @property
    def recording(self) -> bool:
        with self._lock:
            return not self._stopped and self.full is None

    def write(self, image: np.ndarray, captured_at: float) -> bool:
        """Add a frame taken at ``captured_at`` (``time.monotonic()``); False once stopped or full."""
        with self._lock:
            if self._stopped or self.full is not None:
                return False
            if self._container is None:
                self._open(image)
                self._first = captured_at
            seconds = captured_at - self._first
            if seconds > self.max_seconds:
                self.full = f"the recording reached the {self.max_seconds / 60:g} minute limit"
                return False
            if self.bytes + self._frame_bytes > 0.98 * self.max_bytes:  # the index written at the end needs the rest
                self.full = f"the recording reached the {self.max_bytes / 2**20:.0f} MB limit"
                return False
            stream = self._stream
            if image.shape[1] != stream.width or image.shape[0] != stream.height:
                image = cv2.resize(image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2], (stream.width, stream.height))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24").reformat(format="yuv420p")
            self._last_pts = frame.pts = max(round(seconds * 1000), self._last_pts + 1)
            frame.time_base = stream.codec_context.time_base
            try:
                packets = stream.encode(frame)
                self._container.mux(packets)
            except (av.FFmpegError, OSError) as error:  # a full disk: the frames so far are kept
                self.full = f"the recording could not go on ({getattr(error, 'strerror', None) or error})"
                log.warning("recording %s: %s", self.path, self.full)
                return False
            self._frame_bytes = sum(packet.size for packet in packets)
            self.bytes += self._frame_bytes
            self.frames += 1
            return True

    def stop(self) -> dict[str, Any] | None:
        """Finish the file at ``path``: a summary, or None (and no file) when no frame was written."""
        with self._lock:
            if self._stopped:
                return None
            self._stopped = True
            if self._container is None:
                return None
            try:
                self._container.mux(self._stream.encode(None))
                self._container.close()
                self._partial.replace(self.path)
            finally:
                self._partial.unlink(missing_ok=True)
            return {"path": str(self.path), "frames": self.frames, "seconds": round(self._last_pts / 1000, 3),
                    "width": self._stream.width, "height": self._stream.height, "video_codec": VIDEO_CODEC,
                    "bytes": self.path.stat().st_size, "stopped_by_limit": self.full}  # fmt: skip

    def _open(self, image: np.ndarray) -> None:
        height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        self._container, self._stream = open_mp4_video(self._partial, width, height, Fraction(round(self.fps * 1000), 1000),
                                                       Fraction(1, 1000), low_latency=True)  # fmt: skip


class RecordingSlot:
    """A stream's recording, at most one at a time; thread-safe. The UI calls :meth:`start` and
    :meth:`stop`; the processing thread hands every processed frame to :meth:`write`, which
    records the annotated frame, or the camera's own with ``raw``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recorder: Recorder | None = None
        self._raw = False

    def start(self, path: str | Path, fps: float | None = None, raw: bool = False) -> Recorder:
        """Record from the next frame on into ``path``; a recording already running is finished first."""
        self.stop()
        recorder = Recorder(path, fps)
        with self._lock:
            self._recorder, self._raw = recorder, raw
        return recorder

    def stop(self) -> dict[str, Any] | None:
        """Finish the recording: its :meth:`Recorder.stop` summary (None: none, or no frame)."""
        with self._lock:
            recorder, self._recorder = self._recorder, None
        return recorder.stop() if recorder is not None else None

    def write(self, annotated: np.ndarray, raw: np.ndarray, captured_at: float) -> None:
        with self._lock:
            recorder, use_raw = self._recorder, self._raw
        if recorder is not None:
            recorder.write(raw if use_raw else annotated, captured_at)

    def state(self) -> dict[str, Any] | None:
        """The running recording's frames so far and why it stopped by itself (None: none)."""
        with self._lock:
            recorder = self._recorder
        return None if recorder is None else {"frames": recorder.frames, "full": recorder.full}
