"""Video files annotated frame by frame (PyAV), for the Video page and ``python -m core annotate-video``.

Invariants:
- :func:`annotate_video` either writes the whole annotated video to ``dst`` or leaves no file
  there: it writes a temporary file beside ``dst`` and renames it only when every frame is done.
- The output is an MP4 a browser plays: H.264 (``libx264``; MPEG-4 part 2 where the bundled
  FFmpeg lacks it), ``yuv420p``, even dimensions (an odd last row/column is dropped), the input's
  frame timestamps, and the input's first audio stream (copied when MP4 can hold its codec,
  otherwise re-encoded to AAC).
- Bad input (not a video, no video stream, damaged, too large or too long) raises
  :class:`VideoError` with a sentence a person can act on; cancelling raises :class:`VideoCancelled`.
  :func:`probe_video` makes the same checks in a moment (header, first frame, and the index of
  the frames without decoding them), so an upload is judged before anything is annotated.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import cv2
import numpy as np

from core.stream.pipeline import FramePipeline

MAX_BYTES = 500 * 2**20
MAX_SECONDS = 10 * 60
MIN_FPS, MAX_FPS = 0.5, 480  # outside this, a frame rate comes from a damaged header
VIDEO_SUFFIXES = ("mp4", "mov", "m4v", "mkv", "webm", "avi", "mpeg", "mpg", "ts", "3gp")
COPIED_AUDIO_CODECS = {"aac", "mp3", "mp3float"}  # MP4 holds these and every browser plays them
VIDEO_CODEC = "libx264" if "libx264" in av.codecs_available else "mpeg4"

PREVIEW_EVERY_S = 0.5  # how often a job keeps its latest annotated frame
PREVIEW_SIDE = 320  # the preview's longer side, in pixels

Progress = Callable[[int, int], None]


class VideoError(ValueError):
    """An input that cannot be annotated; the message says why."""


class VideoCancelled(Exception):
    """The caller's cancel check said stop; no output was written."""


def _open_input(src: Path, label: str, max_bytes: int, max_seconds: float) -> av.container.InputContainer:
    """Open ``src`` after checking its size, that it holds a video stream, and its duration."""
    if not src.is_file():
        raise VideoError(f"{label}: no such file")
    size = src.stat().st_size
    if size > max_bytes:
        raise VideoError(f"{label}: {size / 2**20:.0f} MB is larger than the {max_bytes / 2**20:.0f} MB limit")
    try:
        container = av.open(str(src))
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise VideoError(
            f"{label}: not a readable video ({_ffmpeg_says(error)}): damaged, truncated (an interrupted upload or"
            " copy?) or not a video at all"
        ) from error
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        container.close()  # FFmpeg reads a still image as a one-frame video
        raise VideoError(f"{label}: this is a still image, not a video (use the Photo page or `analyze`)")
    if not container.streams.video:
        container.close()
        raise VideoError(f"{label}: the file has no video stream")
    rate = _frame_rate(container.streams.video[0])
    if not MIN_FPS <= rate <= MAX_FPS:
        container.close()
        raise VideoError(
            f"{label}: the file's timing is damaged (its header gives {float(rate):.3g} frames per second);"
            " re-encode it with a video editor or ffmpeg first"
        )
    seconds = _duration_s(container)
    if seconds is not None and seconds > max_seconds:
        container.close()
        raise VideoError(f"{label}: {seconds:.0f} s is longer than the {max_seconds:.0f} s limit; trim it first")
    return container


def _ffmpeg_says(error: Exception) -> str:
    """FFmpeg's reason alone: without its error number and the server-side path it names."""
    return getattr(error, "strerror", None) or type(error).__name__


def _duration_s(container: av.container.InputContainer) -> float | None:
    stream = container.streams.video[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _frame_rate(stream: av.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(25)


def _expected_frames(container: av.container.InputContainer) -> int:
    """The container's frame count, or duration x frame rate when it does not say (0: unknown)."""
    stream = container.streams.video[0]
    if stream.frames:
        return int(stream.frames)
    seconds = _duration_s(container)
    return int(round(seconds * _frame_rate(stream))) if seconds else 0


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` found: enough for a one-line summary and a time estimate."""

    name: str
    seconds: float
    frames: int  # video frames in the file, counted from its index
    fps: float
    width: int  # as shown, after the rotation metadata
    height: int
    audio: str | None  # the first audio stream's codec; None: silent

    def summary(self) -> str:
        """One line for a person: "clip.mp4: 12.0 s, 640x480, 25 fps, with sound"."""
        sound = "with sound" if self.audio else "no sound"
        return f"{self.name}: {self.seconds:.1f} s, {self.width}x{self.height}, {round(self.fps, 2):g} fps, {sound}"


def probe_video(
    src: str | Path, name: str | None = None, max_bytes: int = MAX_BYTES, max_seconds: float = MAX_SECONDS
) -> VideoInfo:
    """Check ``src`` as :func:`annotate_video` would, in a moment: its header, its first frame
    decoded, and every frame read (not decoded) to the end, so a truncated file is caught.
    Raises :class:`VideoError` naming the file ``name`` (else by its file name)."""
    src = Path(src)
    label = name or src.name
    container = _open_input(src, label, max_bytes, max_seconds)
    try:
        stream = container.streams.video[0]
        image: np.ndarray | None = None
        frames, first_time, last_time = 0, None, None
        for packet in container.demux(stream):
            if image is None:
                decoded = packet.decode()
                image = upright(decoded[0]) if decoded else None
            if packet.size == 0:  # the demuxer's end-of-stream marker, not a frame
                continue
            frames += 1
            if packet.pts is not None:
                moment = float(packet.pts * packet.time_base)
                first_time = moment if first_time is None else min(first_time, moment)
                last_time = moment if last_time is None else max(last_time, moment)
        if image is None:
            raise VideoError(f"{label}: no video frame could be decoded")
        _check_complete(container, label, first_time, last_time, frames)
        rate = float(_frame_rate(stream))
        # What the frames span, not what the header says (raw streams' headers guess from the bit rate).
        seconds = frames / rate if first_time is None else last_time - first_time + 1 / rate
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(label, round(seconds, 3), frames, rate, image.shape[1], image.shape[0], audio)
    except av.FFmpegError as error:
        raise VideoError(f"{label}: the video is damaged or truncated ({_ffmpeg_says(error)})") from error
    finally:
        container.close()


@dataclass
class _Writer:
    """The output container and its streams, set up from the input's first video frame."""

    container: av.container.OutputContainer
    video: av.VideoStream
    audio: av.AudioStream | None
    audio_copied: bool
    resampler: av.AudioResampler | None


def open_mp4_video(path: str | Path, width: int, height: int, rate: Fraction, time_base: Fraction,
                   low_latency: bool = False) -> tuple[av.container.OutputContainer, av.VideoStream]:  # fmt: skip
    """An MP4 being written at ``path`` and its H.264 (``yuv420p``) video stream, as every
    annotated video of the app is encoded; ``low_latency``: each frame is encoded at once (a live
    recording, whose size so far is then what the file holds)."""
    container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
    video = container.add_stream(VIDEO_CODEC, rate=rate)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.codec_context.time_base = time_base
    if VIDEO_CODEC == "libx264":
        video.options = {"crf": "21", "preset": "veryfast", **({"tune": "zerolatency"} if low_latency else {})}
    else:
        video.bit_rate = 4_000_000
    return container, video


def _open_output(path: Path, video_in: av.VideoStream, audio_in: av.AudioStream | None, width: int, height: int) -> _Writer:
    container, video = open_mp4_video(path, width, height, _frame_rate(video_in), video_in.time_base or Fraction(1, 90_000))
    audio, copied, resampler = None, False, None
    if audio_in is not None:
        if audio_in.codec_context.name in COPIED_AUDIO_CODECS:
            audio, copied = container.add_stream_from_template(audio_in), True
        else:
            rate = audio_in.codec_context.sample_rate or 48_000
            layout = "mono" if audio_in.codec_context.channels == 1 else "stereo"
            audio = container.add_stream("aac", rate=rate)
            audio.layout = layout
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    return _Writer(container, video, audio, copied, resampler)


def upright(frame: av.VideoFrame) -> np.ndarray:
    """The frame as a BGR array, turned as the video's rotation metadata (phones) says to show it."""
    image = frame.to_ndarray(format="bgr24")
    quarter_turns = int(round((frame.rotation or 0) / 90)) % 4
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


def annotate_video(
    src: str | Path,
    dst: str | Path,
    pipeline: FramePipeline,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    max_bytes: int = MAX_BYTES,
    max_seconds: float = MAX_SECONDS,
    name: str | None = None,
    on_frame: Callable[[np.ndarray], None] | None = None,
) -> dict[str, Any]:
    """Annotate every frame of ``src`` with ``pipeline`` into the MP4 ``dst``; returns a summary.
    Messages call the input ``name`` (the uploaded file's own name), else by its file name.

    ``progress(done_frames, total_frames)`` is called after each frame (``total_frames`` is the
    container's count or estimate, never below ``done_frames``; the last call has them equal).
    ``cancelled()`` is checked before each frame; ``on_frame(annotated_bgr)`` gets each annotated frame.
    """
    src, dst = Path(src), Path(dst)
    label = name or src.name
    container = _open_input(src, label, max_bytes, max_seconds)
    # Created by the muxer with the usual permissions (0666 less the umask), as the PNGs are;
    # mkstemp would make it private (0600).
    partial = dst.with_name(f".{dst.stem}-{secrets.token_hex(6)}.partial.mp4")
    try:
        summary = _transcode(container, label, partial, pipeline, progress, cancelled, max_seconds, on_frame)
        partial.replace(dst)
    except av.FFmpegError as error:
        raise VideoError(f"{label}: the video is damaged or truncated ({_ffmpeg_says(error)})") from error
    finally:
        container.close()
        partial.unlink(missing_ok=True)
    return {"input": str(src), "output": str(dst), **summary}


def _transcode(
    container: av.container.InputContainer,
    label: str,
    dst: Path,
    pipeline: FramePipeline,
    progress: Progress | None,
    cancelled: Callable[[], bool] | None,
    max_seconds: float,
    on_frame: Callable[[np.ndarray], None] | None,
) -> dict[str, Any]:
    video_in = container.streams.video[0]
    rate = _frame_rate(video_in)
    audio_in = container.streams.audio[0] if container.streams.audio else None
    video_in.thread_type = "AUTO"
    expected = _expected_frames(container)
    writer: _Writer | None = None
    done, last_pts = 0, None
    first_time: float | None = None
    last_time: float | None = None
    early_audio: list[av.Packet] = []  # audio demuxed before the first video frame set the output up
    tracks: set[int] = set()
    names: set[str] = set()
    streams = [video_in] + ([audio_in] if audio_in is not None else [])
    try:
        for packet in container.demux(*streams):
            if packet.stream.type == "audio":
                if writer is None:
                    early_audio.append(packet)
                else:
                    _write_audio(writer, packet)
                continue
            for frame in packet.decode():
                if cancelled is not None and cancelled():
                    raise VideoCancelled(f"{label}: cancelled after {done} frames")
                if frame.time is not None:
                    first_time = frame.time if first_time is None else first_time
                    last_time = frame.time
                position = last_time - first_time if frame.time is not None else done / float(rate)
                if position > max_seconds:  # headers without a duration (raw streams) are checked here
                    raise VideoError(f"{label}: longer than the {max_seconds:.0f} s limit; trim it first")
                image = upright(frame)
                height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
                if writer is None:
                    if width == 0 or height == 0:
                        raise VideoError(f"{label}: the video frames are empty")
                    writer = _open_output(dst, video_in, audio_in, width, height)
                    for early in early_audio:
                        _write_audio(writer, early)
                    early_audio.clear()
                annotated, result = pipeline.annotate(image[:height, :width])
                tracks.update(face.track_id for face in result.faces if face.track_id is not None)
                names.update(face.name for face in result.faces if face.name)
                last_pts = _write_video(writer, annotated, frame, last_pts, done)
                if on_frame is not None:
                    on_frame(annotated)
                done += 1
                if progress is not None:
                    progress(done, max(expected, done))
        if writer is None:
            raise VideoError(f"{label}: no video frame could be decoded")
        _check_complete(container, label, first_time, last_time, done)
        for packet in writer.video.encode(None):
            writer.container.mux(packet)
        if writer.resampler is not None:
            _encode_audio(writer, None)
    finally:
        if writer is not None:
            writer.container.close()
    if progress is not None:
        progress(done, done)
    return {
        "frames": done,
        "seconds": round(done / float(rate), 3),
        "fps": round(float(rate), 3),
        "width": writer.video.width,
        "height": writer.video.height,
        "video_codec": VIDEO_CODEC,
        "audio": None if writer.audio is None else ("copied" if writer.audio_copied else "aac"),
        "faces_seen": len(tracks) if pipeline.config.tracking else None,  # distinct face tracks
        "names_seen": sorted(names),
        "errors": pipeline.stats.snapshot()["errors"],
    }


def _check_complete(container: av.container.InputContainer, label: str, first: float | None, last: float | None,
                    frames: int) -> None:  # fmt: skip
    """Raise :class:`VideoError` when far fewer frames are read than the header counts, or they stop
    well before the duration it announces (``first``, ``last``: the earliest and latest frame times)."""
    counted = container.streams.video[0].frames
    if counted and frames < 0.9 * counted - 1:
        raise VideoError(
            f"{label}: only {frames} of the {counted} frames its header counts could be read:"
            " the file is damaged or truncated (was the upload or copy interrupted?)"
        )
    announced = _duration_s(container)
    if announced is None or first is None or last is None:
        return
    frame_s = 1 / float(_frame_rate(container.streams.video[0]))
    decoded = last - first + frame_s
    if decoded < announced - max(1.0, 0.1 * announced):
        raise VideoError(
            f"{label}: the video stops after {decoded:.1f} s of the {announced:.1f} s its header announces;"
            " the file is truncated (was the upload or copy interrupted?)"
        )


def _write_video(writer: _Writer, image: np.ndarray, source: av.VideoFrame, last_pts: int | None, index: int) -> int:
    """Encode ``image`` at the source frame's timestamp (kept strictly increasing); returns its pts."""
    time_base = writer.video.codec_context.time_base
    pts = source.pts
    if pts is None:
        pts = int(index / (Fraction(writer.video.codec_context.framerate or 25) * time_base))
    if last_pts is not None and pts <= last_pts:
        pts = last_pts + 1
    out = av.VideoFrame.from_ndarray(image, format="bgr24")
    out.pts, out.time_base = pts, time_base
    for packet in writer.video.encode(out.reformat(format="yuv420p")):
        writer.container.mux(packet)
    return pts


def _write_audio(writer: _Writer, packet: av.Packet) -> None:
    if writer.audio_copied:
        if packet.dts is not None:
            packet.stream = writer.audio
            writer.container.mux(packet)
        return
    for frame in packet.decode():
        _encode_audio(writer, frame)


def _encode_audio(writer: _Writer, frame: av.AudioFrame | None) -> None:
    """Resample to the AAC encoder's format and encode; ``None`` flushes both."""
    for resampled in writer.resampler.resample(frame):
        resampled.pts = None  # the encoder numbers samples itself, gap-free
        for packet in writer.audio.encode(resampled):
            writer.container.mux(packet)
    if frame is None:
        for packet in writer.audio.encode(None):
            writer.container.mux(packet)


@dataclass
class VideoJob:
    """One :func:`annotate_video` run in a background thread, readable from any thread.

    The UI polls :meth:`state`; ``status`` goes from "running" to exactly one of "done"
    (``result`` set), "cancelled" (also when it fails after being cancelled: its files were
    removed under it) or "failed" (``error`` set, a sentence). The state also says how long the
    run has taken, about how long is left at its pace so far, and holds its latest annotated
    frame (``preview``: RGB, at most PREVIEW_SIDE pixels, renewed every PREVIEW_EVERY_S seconds).
    """

    src: Path
    dst: Path
    pipeline: FramePipeline
    name: str = ""  # the file's name as the user gave it, for messages ("": src's own)
    done_frames: int = 0
    total_frames: int = 0
    status: str = "running"
    result: dict[str, Any] | None = None
    error: str | None = None
    preview: np.ndarray | None = None
    _started: float | None = field(default=None, repr=False)  # time.monotonic() at start and at the end
    _ended: float | None = field(default=None, repr=False)
    _previewed: float = field(default=float("-inf"), repr=False)  # only the job's thread reads or writes it
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def start(self) -> VideoJob:
        self._started = time.monotonic()
        threading.Thread(target=self._run, name=f"annotate {self.src.name}", daemon=True).start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def state(self) -> dict[str, Any]:
        """A consistent copy of the job's fields, with ``elapsed_s`` and ``remaining_s`` (None:
        not known yet, before the first frame or when the file does not say how many it has)."""
        with self._lock:
            elapsed = 0.0 if self._started is None else (self._ended or time.monotonic()) - self._started
            done, total = self.done_frames, self.total_frames
            return {
                "status": self.status,
                "done_frames": done,
                "total_frames": total,
                "elapsed_s": elapsed,
                "remaining_s": elapsed / done * (total - done) if 0 < done < total else None,
                "preview": self.preview,
                "result": self.result,
                "error": self.error,
            }

    def _progress(self, done: int, total: int) -> None:
        with self._lock:
            self.done_frames, self.total_frames = done, total

    def _keep_preview(self, annotated_bgr: np.ndarray) -> None:
        now = time.monotonic()
        if now - self._previewed < PREVIEW_EVERY_S:
            return
        self._previewed = now
        height, width = annotated_bgr.shape[:2]
        scale = min(1.0, PREVIEW_SIDE / max(height, width))
        small = cv2.resize(annotated_bgr, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
        preview = np.ascontiguousarray(small[:, :, ::-1])  # a new array each time: readers never see it change
        with self._lock:
            self.preview = preview

    def _run(self) -> None:
        try:
            result = annotate_video(self.src, self.dst, self.pipeline, self._progress, self._cancel.is_set,
                                    name=self.name or None, on_frame=self._keep_preview)  # fmt: skip
            outcome = {"status": "done", "result": result}
        except VideoCancelled:
            outcome = {"status": "cancelled"}
        except Exception as error:  # noqa: BLE001 - reported to the page, never lost in a thread
            outcome = {"status": "cancelled"} if self._cancel.is_set() else {"status": "failed", "error": _reason(error)}
        with self._lock:
            for key, value in outcome.items():
                setattr(self, key, value)
            self._ended = time.monotonic()


def _reason(error: Exception) -> str:
    return str(error) if isinstance(error, VideoError) else f"{type(error).__name__}: {error}"


def progress_text(state: dict[str, Any]) -> str:
    """A running job's :meth:`VideoJob.state` in words: frames done, time taken, about how long is left."""
    remaining = state["remaining_s"]
    left = "estimating the time left" if remaining is None else f"about {_duration_words(max(remaining, 1))} left"
    return (
        f"Annotating: {state['done_frames']} / {state['total_frames']} frames · "
        f"{_duration_words(state['elapsed_s'])} elapsed · {left}"
    )


def _duration_words(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"


@dataclass(frozen=True)
class KeptVideo:
    """The upload a :class:`VideoWorkspace` holds, and what :func:`probe_video` found in it."""

    file_id: str  # the uploader's id of this upload: the same id is not probed twice
    name: str  # the file's name as the user gave it
    path: Path
    info: VideoInfo | None  # None: unusable, and ``error`` says why (the file is not kept then)
    error: str | None = None


class VideoWorkspace:
    """One browser session's video: a private temporary folder holding the kept upload and the
    latest run on it, so both outlive the page and the upload can be annotated again.

    :meth:`keep` replaces the upload (dropping any run on the previous one); :meth:`start`
    cancels the previous run, deletes its files and annotates the kept upload again;
    :meth:`remove` forgets both. The folder is removed, and a running job cancelled, by
    :meth:`close`, when the workspace is garbage-collected (its session's state is dropped), or
    when the process exits, whichever comes first.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="vision-lab-video-"))
        self.upload: KeptVideo | None = None
        self.job: VideoJob | None = None
        self._jobs: list[VideoJob] = []  # shared with the finalizer, which must not hold self
        self._runs = 0
        self._finalizer = weakref.finalize(self, _close_workspace, self.folder, self._jobs)

    def keep(self, file_id: str, name: str, data: BinaryIO) -> KeptVideo:
        """Save ``data`` (the file ``name``) as the workspace's video, in place of the previous one, and probe it."""
        self.remove()
        suffix = Path(name).suffix.lower()
        path = self.folder / f"upload{suffix if suffix.lstrip('.') in VIDEO_SUFFIXES else ''}"
        with open(path, "wb") as out:
            shutil.copyfileobj(data, out, length=2**20)
        try:
            self.upload = KeptVideo(file_id, name, path, probe_video(path, name))
        except VideoError as error:
            path.unlink()
            self.upload = KeptVideo(file_id, name, path, None, str(error))
        return self.upload

    def start(self, pipeline: FramePipeline) -> VideoJob:
        """Annotate the kept video with ``pipeline`` into ``annotated.mp4`` in a new run folder."""
        if self.upload is None or self.upload.info is None:
            raise VideoError("there is no usable video to annotate: upload one first")
        self._drop_run()
        self._runs += 1
        run = self.folder / f"run-{self._runs}"
        run.mkdir()
        self.job = VideoJob(self.upload.path, run / "annotated.mp4", pipeline, self.upload.name)
        self._jobs.append(self.job)
        return self.job.start()

    def remove(self) -> None:
        """Forget the kept video and its run: the run is cancelled and every file deleted."""
        self._drop_run()
        if self.upload is not None:
            self.upload.path.unlink(missing_ok=True)
        self.upload = None

    def close(self) -> None:
        self._finalizer()

    def _drop_run(self) -> None:
        for job in self._jobs:
            job.cancel()
        self._jobs.clear()
        self.job = None
        for run in self.folder.glob("run-*"):
            shutil.rmtree(run, ignore_errors=True)


def _close_workspace(folder: Path, jobs: list[VideoJob]) -> None:
    for job in jobs:
        job.cancel()
    shutil.rmtree(folder, ignore_errors=True)
