"""Live sources read on the server, and their annotated stream: network cameras (``rtsp://``,
``rtmp://``, ``http(s)://`` MJPEG or HLS) and video files played in a loop.

:class:`NetworkSource` reads one source with PyAV on its own daemon thread (never on an event
loop); :class:`SourceStream` runs a :class:`FramePipeline` on its newest frame on another thread
and can record the annotated frames with a :class:`Recorder`.

Invariants:
- a source keeps only its newest decoded frame (with ``time.monotonic()`` when it was decoded
  and its number): older ones are dropped unseen, so however slow the consumer, lag never
  builds up;
- a network source that fails or drops reconnects by itself, after 1, 2, 4, 8 then every
  :data:`MAX_BACKOFF_S` seconds, until :meth:`NetworkSource.stop`; only what waiting cannot cure
  (refused credentials, no video track, not a video) ends it in "failed". A file source plays at
  its own frame rate and starts again at its end;
- a URL's password never appears in a message, a log line, a status or a repr (:func:`redact`);
- :meth:`NetworkSource.status` and every reader of a stream are thread-safe.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import av
import numpy as np

from core.faces import FrameResult
from core.store.gallery import redact
from core.stream.live import METRICS_ENV, LiveFrame, MetricsLog
from core.stream.pipeline import FramePipeline, PipelineConfig, PipelineStats
from core.stream.recording import Recorder, RecordingSlot
from core.stream.video import VideoError, probe_video, upright

log = logging.getLogger(__name__)

SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")
STATES = ("connecting", "live", "reconnecting", "failed", "stopped")
MAX_BACKOFF_S = 10.0
OPEN_TIMEOUT_S = 10.0  # to connect and read the stream's header
READ_TIMEOUT_S = 5.0  # without a packet for this long, a live stream counts as dropped


class SourceError(ValueError):
    """A source that cannot even be tried (an unsupported URL, a missing file); the message says why."""


class SourceFrame(NamedTuple):
    """A decoded BGR frame, ``time.monotonic()`` when it was decoded, and its number (1, 2, ...
    since the source started, across reconnections)."""

    image: np.ndarray
    captured_at: float
    number: int


@dataclass(frozen=True)
class SourceStatus:
    """What a page says about a source. ``state`` is one of :data:`STATES`; ``message`` the
    sentence to show (while reconnecting: ``reason`` and "reconnecting in N s"); ``reason`` why
    the last try failed or the stream dropped (None before any failure); ``retry_in_s`` the
    seconds until the next try (None unless reconnecting); ``frames`` decoded so far;
    ``reconnects`` how often it came back after a drop; ``url`` without its password."""

    state: str
    message: str
    reason: str | None
    retry_in_s: float | None
    frames: int
    reconnects: int
    url: str

    def to_json(self) -> dict[str, Any]:
        retry = None if self.retry_in_s is None else round(self.retry_in_s, 1)
        return {"state": self.state, "message": self.message, "reason": self.reason, "retry_in_s": retry,
                "frames": self.frames, "reconnects": self.reconnects, "url": self.url}  # fmt: skip


class _Fatal(Exception):
    """A failure that waiting cannot cure: the source ends in "failed" with this message."""


class NetworkSource:
    """One camera URL or video file, read on a daemon thread from :meth:`start` to :meth:`stop`.

    ``location`` is a URL of :data:`SCHEMES` or a path to a video file (played in a loop at its
    own frame rate). Consumers call :meth:`latest` (never blocks) or :meth:`wait_frame`.
    """

    def __init__(self, location: str | Path, open_timeout: float = OPEN_TIMEOUT_S, read_timeout: float = READ_TIMEOUT_S) -> None:
        self._location = str(location).strip()
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        scheme = urlsplit(self._location).scheme.lower() if "://" in self._location else ""
        self.is_file = not scheme
        if scheme and scheme not in SCHEMES:
            raise SourceError(f"{self.url}: a stream URL starts with {', '.join(s + '://' for s in SCHEMES)}")
        if self.is_file and not Path(self._location).is_file():
            raise SourceError(f"{self._location}: no such video file")
        self._secret = urlsplit(self._location).password if scheme else None
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame: SourceFrame | None = None
        self._state, self._message, self._retry_at = "connecting", f"Connecting to {self.url}", None
        self._reason: str | None = None
        self._reconnects = 0
        self.fps: float | None = None  # the stream's nominal frame rate, once known

    @property
    def url(self) -> str:
        """The location as it may be shown: a URL without its password."""
        return redact(self._location) if "://" in self._location else self._location

    def __repr__(self) -> str:
        return f"NetworkSource({self.url!r}, state={self._state!r})"

    def start(self) -> NetworkSource:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"source {self.url}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop reading; the status says "stopped" at once. The thread ends within the read
        timeout (it may be inside a blocking read); ``timeout`` waits for it that long."""
        self._stop.set()
        self._set("stopped", "Stopped.")
        if self._thread is not None and timeout:
            self._thread.join(timeout)

    def latest(self) -> SourceFrame | None:
        """The newest frame (None before the first); its image is never written to again."""
        with self._lock:
            return self._frame

    def wait_frame(self, after: int, timeout: float) -> SourceFrame | None:
        """The newest frame once its number is above ``after``; None after ``timeout`` seconds or on stop."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while (self._frame is None or self._frame.number <= after) and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0 or not self._lock.wait(left):
                    return None
            return self._frame if self._frame is not None and self._frame.number > after else None

    def status(self) -> SourceStatus:
        with self._lock:
            state, message, retry_at, reason = self._state, self._message, self._retry_at, self._reason
            frames = 0 if self._frame is None else self._frame.number
            reconnects = self._reconnects
        retry_in = None
        if state == "reconnecting" and retry_at is not None:
            retry_in = max(0.0, retry_at - time.monotonic())
            message = f"{message}; reconnecting in {math.ceil(retry_in)} s" if retry_in > 0 else f"{message}; reconnecting now"
        return SourceStatus(state, message, reason, retry_in, frames, reconnects, self.url)

    # The reading thread.

    def _set(self, state: str, message: str, retry_at: float | None = None) -> None:
        message = self._scrub(message)
        with self._lock:
            if self._state == "stopped" and state != "stopped":
                return  # stop() said the last word
            changed = (state, message) != (self._state, self._message)
            self._state, self._message, self._retry_at = state, message, retry_at
            if state in ("reconnecting", "failed"):
                self._reason = message
            self._lock.notify_all()
        if changed:
            log.info("%s: %s (%s)", self.url, state, message)

    def _scrub(self, text: str) -> str:
        """``text`` with the location shown as :attr:`url` and no trace of its password."""
        text = text.replace(self._location, self.url)
        return text.replace(self._secret, "***") if self._secret else text

    def _run(self) -> None:
        failures = 0  # failed tries in a row; the back-off grows with them
        try:
            if self.is_file:
                self._probe_file()
            while not self._stop.is_set():
                before = self.status().frames
                try:
                    reason = self._read_once()
                    live = self.status().frames > before
                except (av.FFmpegError, OSError) as error:
                    live = self.status().frames > before
                    reason = self._why(error, live)
                if self._stop.is_set():
                    return
                if self.is_file:  # its end: play it again at once
                    if not live:
                        raise _Fatal(f"{self._location}: no video frame could be decoded")
                    continue
                if live:  # it had come back: the back-off starts again
                    failures = 0
                    with self._lock:
                        self._reconnects += 1
                failures += 1
                delay = min(2.0 ** (failures - 1), MAX_BACKOFF_S)
                self._set("reconnecting", reason, time.monotonic() + delay)
                self._stop.wait(delay)  # the status says "reconnecting now" during the next try
        except _Fatal as error:
            self._set("failed", str(error))
        except Exception as error:  # noqa: BLE001 - reported in the status, never lost in a thread
            # No traceback: a chained PyAV error would print the URL with its password.
            self._set("failed", f"Reading {self.url} failed: {type(error).__name__}: {error}")
            log.error("%s: the source's thread failed: %s", self.url, self.status().message)

    def _probe_file(self) -> None:
        try:
            info = probe_video(self._location)
        except VideoError as error:
            raise _Fatal(str(error)) from error
        self.fps = info.fps

    def _read_once(self) -> str | None:
        """Open the source and publish its frames until it ends: None at a file's end, else why
        the stream stopped. Raises what opening or reading raised."""
        options = {"rtsp_transport": "tcp", "fflags": "nobuffer", "analyzeduration": "2000000"} if not self.is_file else {}
        container = av.open(self._location, options=options, timeout=None if self.is_file else (self.open_timeout, self.read_timeout))
        try:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["nothing"]
                raise _Fatal(f"{self.url} has no video track (it carries {', '.join(kinds)}): check the URL or the camera's stream settings")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self.fps = self.fps or (float(rate) if rate else None)
            start, first_time = time.monotonic(), None
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return None
                try:
                    frames = packet.decode()
                except av.InvalidDataError:
                    continue  # a damaged packet: the next keyframe repairs the picture
                for frame in frames:
                    if self.is_file and frame.time is not None:  # play at the file's own pace
                        first_time = frame.time if first_time is None else first_time
                        self._stop.wait(max(0.0, start + frame.time - first_time - time.monotonic()))
                    self._publish(upright(frame))
        finally:
            container.close()
        return None if self.is_file else f"The stream {self.url} ended (the camera closed it)"

    def _publish(self, image: np.ndarray) -> None:
        with self._lock:
            number = 1 if self._frame is None else self._frame.number + 1
            self._frame = SourceFrame(image, time.monotonic(), number)
            if self._state not in ("live", "stopped"):
                self._state, self._retry_at = "live", None
                self._message = f"Live: {self.url} ({image.shape[1]}x{image.shape[0]})"
                log.info("%s: live", self.url)
            self._lock.notify_all()

    def _why(self, error: Exception, live: bool) -> str:
        """Why opening or reading failed, in the user's words; raises :class:`_Fatal` when
        waiting cannot cure it."""
        parts = urlsplit(self._location)
        host = parts.hostname or "the server"
        where = f"{host}:{parts.port}" if parts.port else host
        if self.is_file:
            raise _Fatal(f"{self._location}: cannot be read any more ({getattr(error, 'strerror', None) or error})")
        if isinstance(error, (av.HTTPUnauthorizedError, av.HTTPForbiddenError)):
            code = "401 unauthorized" if isinstance(error, av.HTTPUnauthorizedError) else "403 forbidden"
            if parts.username is None:
                raise _Fatal(f"{where} asks for a user name and password ({code}): give them in the URL,"
                             f" {parts.scheme}://user:password@{where}{parts.path}")  # fmt: skip
            raise _Fatal(f"{where} refused the user name or password ({code}): check the credentials in the URL")
        if isinstance(error, av.HTTPNotFoundError):
            return f"{where} has no stream at {parts.path or '/'} (404 not found): check the path in the URL"
        if isinstance(error, av.ProtocolNotFoundError):
            raise _Fatal(f"{parts.scheme}:// streams cannot be read by this server's FFmpeg")
        if isinstance(error, av.ConnectionRefusedError):
            return f"Nothing answers at {where} (connection refused): check the address and port, and that the camera is on"
        if isinstance(error, (av.ExitError, av.TimeoutError, TimeoutError)):
            if live:
                return f"No video from {where} for {self.read_timeout:.0f} s (the camera or the network dropped)"
            return f"No answer from {where} within {self.open_timeout:.0f} s: check the address, and that the camera is on the network"
        if isinstance(error, av.InvalidDataError) and not live:
            raise _Fatal(f"{self.url} is not a video stream this server can read (invalid data): check the URL")
        said = getattr(error, "strerror", None) or type(error).__name__
        return f"Cannot read {self.url} ({said})"


class ProcessedFrame(NamedTuple):
    """One frame through the pipeline: the annotated BGR image, its result, the source frame's
    capture time and number, and the milliseconds from capture to the annotated image."""

    annotated: np.ndarray
    result: FrameResult
    captured_at: float
    number: int
    latency_ms: float


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` (0-1) percentile of ``values`` by nearest rank (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class SourceStream:
    """A :class:`FramePipeline` run on a source's newest frame, on the stream's own daemon thread.

    The thread takes the newest frame whenever it is free (frames decoded meanwhile are dropped:
    the source keeps only the newest), annotates it, keeps it for :meth:`annotated`, hands it to
    ``on_result`` (on the same thread: keep it quick) and to the recording, if any. The UI reads
    :meth:`snapshot`, :meth:`annotated` and :meth:`latest` from any thread, as with
    :class:`~core.stream.live.LiveStream` (whose :class:`LiveFrame` and metrics log it shares).
    """

    def __init__(self, source: NetworkSource, config: PipelineConfig | None = None,
                 on_result: Callable[[ProcessedFrame], None] | None = None, window_s: float = 2.0,
                 idle_timeout_s: float | None = None) -> None:  # fmt: skip
        self.source = source
        self.pipeline = FramePipeline(config or PipelineConfig(), PipelineStats(window_s))
        self.window_s = window_s
        self.on_result = on_result
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._out: ProcessedFrame | None = None
        self._latest: LiveFrame | None = None
        self._recent: deque[tuple[float, float, tuple[str, ...]]] = deque()  # (done at, latency ms, names)
        self.recording = RecordingSlot()
        metrics_path = os.environ.get(METRICS_ENV)
        self._metrics = MetricsLog(metrics_path) if metrics_path else None
        self.idle_timeout_s = idle_timeout_s
        self._touched_at = time.monotonic()

    @property
    def stats(self) -> PipelineStats:
        return self.pipeline.stats

    def configure(self, config: PipelineConfig) -> None:
        """Apply new processor choices; takes effect from the next frame processed."""
        self.pipeline.configure(config)

    def start(self) -> SourceStream:
        self.source.start()
        if self._thread is None:
            self._thread = threading.Thread(target=self._pump, name=f"pipeline {self.source.url}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> dict[str, Any] | None:
        """Stop the source and the processing; finishes a recording (its summary, else None)."""
        self._stop.set()
        self.source.stop(timeout)
        if self._thread is not None and timeout:
            self._thread.join(timeout)
        return self.stop_recording()

    def touch(self) -> None:
        """Somebody still watches: with ``idle_timeout_s``, a stream nobody touched for that long
        stops itself (its page was closed; nothing else would ever stop its threads)."""
        self._touched_at = time.monotonic()

    def annotated(self) -> ProcessedFrame | None:
        """The newest annotated frame (None before the first)."""
        with self._lock:
            return self._out

    def latest(self) -> LiveFrame | None:
        """The newest processed raw frame and its faces (the People page enrolls from it)."""
        with self._lock:
            return self._latest

    def start_recording(self, path: str | Path, raw: bool = False) -> Recorder:
        """Record from the next processed frame on (see :class:`RecordingSlot`)."""
        return self.recording.start(path, self.source.fps, raw)

    def stop_recording(self) -> dict[str, Any] | None:
        """Finish the recording: its summary (None: none, or no frame)."""
        return self.recording.stop()

    def snapshot(self) -> dict[str, Any]:
        """The source's status and, over the last ``window_s`` seconds: fps, faces in the last
        frame, the names seen, the latency from capture to annotated frame (p50, p95 in ms), mean
        ms per stage; with frame counts and the recording's state."""
        status = self.source.status()
        stats = self.stats.snapshot()
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0][0] > self.window_s:
                self._recent.popleft()
            recent = list(self._recent)
        latencies = [latency for _, latency, _ in recent]
        p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
        return {
            **status.to_json(),
            "fps": stats["fps"],
            "faces": stats["faces"] if recent else 0,
            "names": sorted({name for _, _, names in recent for name in names}),
            "latency_ms": {"p50": None if p50 is None else round(p50, 1), "p95": None if p95 is None else round(p95, 1)},
            "stage_ms": stats["stage_ms"],
            "frames_processed": stats["frames_total"],
            "errors": stats["errors"],
            "recording": self.recording.state(),
        }

    def _pump(self) -> None:
        number = 0
        while not self._stop.is_set():
            if self.idle_timeout_s is not None and time.monotonic() - self._touched_at > self.idle_timeout_s:
                log.info("%s: nobody watched for %.0f s: stopped", self.source.url, self.idle_timeout_s)
                self.stop(timeout=None)  # a page left open nowhere: the camera is let go, a recording kept
                return
            frame = self.source.wait_frame(number, timeout=0.5)
            if frame is None:
                continue
            number = frame.number
            start = time.perf_counter()
            annotated, result = self.pipeline.annotate(frame.image)
            done = time.monotonic()
            processed = ProcessedFrame(annotated, result, frame.captured_at, frame.number, (done - frame.captured_at) * 1000)
            with self._lock:
                self._out = processed
                self._latest = LiveFrame(frame.image, result.faces, done)
                self._recent.append((done, processed.latency_ms, tuple(f.name for f in result.faces if f.name)))
                while done - self._recent[0][0] > self.window_s:
                    self._recent.popleft()
            self.recording.write(annotated, frame.image, frame.captured_at)
            if self.on_result is not None:
                self.on_result(processed)
            if self._metrics is not None:
                self._metrics.record(result, (time.perf_counter() - start) * 1000)
