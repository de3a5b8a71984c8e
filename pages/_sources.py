"""The Live page's sources read on the server (a network camera, a looped video file): where it is,
its annotated stream sent to the browser over WebRTC, its status; and Record, for every source.

The stream (a :class:`~core.stream.sources.SourceStream`) lives in the session's state and runs
on its own threads; the WebRTC track only ever takes its newest annotated frame, so a slow
pipeline or a dropped camera never stalls what the browser receives.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import av
import numpy as np
import streamlit as st
from streamlit_webrtc import WebRtcMode, create_video_source_track, webrtc_streamer

from core.stream.pipeline import PipelineConfig
from core.stream.recording import RecordingSlot
from core.stream.sources import NetworkSource, SourceError, SourceStream
from core.stream.video import VIDEO_SUFFIXES
from pages._widgets import saved_upload

SOURCES = {"webcam": "Webcam", "url": "Network camera (URL)", "file": "Video file, looped"}
IDLE_S = 60  # a source neither sent to a browser nor shown on a page for this long stops (its tab was closed)
SEND_FPS = 25  # frames a second sent to the browser (the newest annotated frame each time)
WAITING = np.full((360, 640, 3), 60, np.uint8)  # sent until the first annotated frame
STATE_BOXES = {"live": st.success, "connecting": st.info, "reconnecting": st.warning, "failed": st.error, "stopped": st.info}


def source_location(kind: str) -> str | None:
    """The camera URL or the looped file the person chose (None until chosen)."""
    if kind == "file":
        upload = st.file_uploader("Video file, played in a loop", type=list(VIDEO_SUFFIXES), key="live_source_file")
        return None if upload is None else saved_upload(upload.getvalue(), upload.name)
    with st.form("live_source_url_form", border=False):
        st.text_input("Stream URL", key="live_source_url", placeholder="rtsp://user:password@192.168.1.20:554/stream1",
                      help="rtsp://, rtmp:// or http(s):// (MJPEG, HLS). Once connected the box is emptied: the "
                      "password is never shown again, nor written to a log.")  # fmt: skip
        st.form_submit_button("Connect", type="primary", on_click=connect)
    return st.session_state.get("live_source_connected") or None


def connect() -> None:
    """Take the URL typed and empty its box (so its password leaves the page); an empty box changes nothing."""
    url = st.session_state.live_source_url.strip()
    if url:
        st.session_state.live_source_connected, st.session_state.live_source_url = url, ""


def stop_served_stream() -> None:
    """Stop the session's server-side stream, if any (its recording is finished and kept)."""
    stream: SourceStream | None = st.session_state.pop("live_served", None)
    st.session_state.pop("live_served_location", None)
    if stream is not None:
        keep_recording(stream.stop(timeout=None))


def served_stream(location: str, config: PipelineConfig) -> SourceStream | None:
    """The session's stream of ``location``, started on first use (another location's is stopped),
    configured with ``config``; None, with the reason on the page, when it cannot be tried."""
    current: SourceStream | None = st.session_state.get("live_served")
    stopped = current is not None and current.source.status().state == "stopped"  # left unwatched, it stopped itself
    if st.session_state.get("live_served_location") != location or stopped:
        stop_served_stream()
        try:
            source = NetworkSource(location)
        except SourceError as error:
            st.error(str(error))
            return None
        st.session_state.live_served = SourceStream(source, config, idle_timeout_s=IDLE_S).start()
        st.session_state.live_served_location = location
    stream: SourceStream = st.session_state.live_served
    stream.configure(config)
    stream.touch()
    return stream


def show_served_stream(stream: SourceStream, rtc: dict, column) -> None:
    """The annotated stream in the browser (press START; RECVONLY), its status and numbers, and Record."""

    converted: dict[int, av.VideoFrame] = {}  # the frame last sent, by its number: converted once, sent until a newer one

    def newest_frame(pts: int, time_base) -> av.VideoFrame:
        stream.touch()  # the browser still receives it
        out = stream.annotated()
        number = 0 if out is None else out.number
        if number not in converted:
            converted.clear()
            converted[number] = av.VideoFrame.from_ndarray(WAITING if out is None else out.annotated, format="bgr24")
        return converted[number]

    track = create_video_source_track(newest_frame, key=f"live_served_{stream.source.url}", fps=SEND_FPS)
    with column:
        webrtc_streamer(key="live_served_view", mode=WebRtcMode.RECVONLY, source_video_track=track, rtc_configuration=rtc,
                        media_stream_constraints={"video": True, "audio": False})  # fmt: skip
        served_panel(stream)
        recording_controls(stream.recording, stream.source.fps)


@st.fragment(run_every=1.0)
def served_panel(stream: SourceStream) -> None:
    """The source's state in words ("reconnecting in 4 s") and, while live, its numbers."""
    stream.touch()  # the page is still open
    snapshot = stream.snapshot()
    STATE_BOXES[snapshot["state"]](f"{snapshot['url']}: {snapshot['message']}")
    if snapshot["state"] != "live":
        return  # no stale numbers
    fps, faces, latency = st.columns(3)
    fps.metric("Frames per second", f"{snapshot['fps']:.1f}", help="Frames of the source processed per second")
    faces.metric("Faces in view", snapshot["faces"])
    p95 = snapshot["latency_ms"]["p95"]
    latency.metric("Delay (ms, p95)", "-" if p95 is None else f"{p95:.0f}", help="From the frame's arrival on the server to its annotated copy")
    if snapshot["names"]:
        st.caption("Seen: " + ", ".join(snapshot["names"]))
    for stage, message in snapshot["errors"].items():
        st.warning(f"The {stage} stage failed and is skipped: {message}")


def recording_controls(slot: RecordingSlot, fps: float | None = None) -> None:
    """Record: a stream's annotated frames (or the camera's own) into an MP4, downloaded when
    switched off. ``slot`` is the stream's recording (the webcam's or a server-side source's)."""
    raw = st.checkbox("Record the camera's own frames (no drawings)", key="live_record_raw")
    recording = st.toggle("Record", key="live_record", help="An MP4 (H.264), at most as long and large as the Video page allows.")
    if recording and st.session_state.get("live_recording_of") is not slot:
        folder = Path(tempfile.mkdtemp(prefix="vision-lab-recording-"))
        slot.start(folder / time.strftime("recording-%Y%m%d-%H%M%S.mp4"), fps, raw=raw)
        st.session_state.live_recording_of = slot
    elif not recording and st.session_state.pop("live_recording_of", None) is slot:
        keep_recording(slot.stop())
    if recording:
        st.caption("Recording... switch Record off to download it.")
    done = st.session_state.get("live_recording")
    if done is not None and not recording:
        path = Path(done["path"])
        note = f" (stopped: {done['stopped_by_limit']})" if done["stopped_by_limit"] else ""
        st.download_button(f"Download the recording ({done['seconds']:.0f} s{note})", data=path.read_bytes(),
                           file_name=path.name, mime="video/mp4")  # fmt: skip


def keep_recording(summary: dict | None) -> None:
    """Remember a finished recording for its download (None: nothing was recorded)."""
    if summary is not None:
        st.session_state.live_recording = summary
