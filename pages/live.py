"""Live: the browser webcam (or a network camera, or a looped video file, read on the server) streamed
through the frame pipeline and back, annotated."""

import time

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from core.analysis.processors import ready_processors
from core.settings import SettingsError, rtc_configuration
from core.stream.live import LiveStream
from core.stream.pipeline import PipelineConfig
from pages._sources import SOURCES, recording_controls, served_stream, show_served_stream, source_location, stop_served_stream
from pages._widgets import detector_radio, extra_options, processor_checkboxes

CONNECT_TIMEOUT_S = 15
STOP_S = 2  # how long Restart asks the component to stop before it asks it to start
RESTART_S = 10  # how long Restart keeps asking the component to start
TRANSLATIONS = {
    "device_access_denied": "Camera access was denied. Allow the camera for this site (icon in the address bar), then press START again",
    "device_not_available": "No usable camera: plug one in or close the app that holds it, then press START again",
    "media_api_not_available": "This browser cannot open the camera on this page: use http://localhost or HTTPS",
}

st.title("Live")

# One stream object per browser session; the frame thread only ever sees this object.
if "live_stream" not in st.session_state:
    st.session_state.live_stream = LiveStream()
live: LiveStream = st.session_state.live_stream

ready_processors()  # warm the usual models in the background as the page opens, before anything is ticked

# The video first and the controls beside it; on a phone the columns stack: video, then controls.
video_column, controls_column = st.columns([5, 2])
source_kind = video_column.radio("Source", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="live_source")
with controls_column:
    st.subheader("Processors")
    detect = st.checkbox("Face detection", value=True, help="Boxes around faces; the other face processors build on it.")
    detector = detector_radio("Detector", key="live_detector", disabled=not detect)
    notes: dict = {}
    chosen = processor_checkboxes("live", notes=notes)
    options = extra_options("live", chosen)
    overlays = "style" not in chosen or st.checkbox("Draw boxes and captions on the painting", value=True, key="live_overlays")

# Built once per process, on a background thread, never in the frame thread: a model that takes
# seconds to load says so under its checkbox, and the stream runs without it meanwhile.
processors, unavailable, loading = ready_processors(chosen, options)
for name, reason in unavailable.items():
    notes[name].error(reason)
for name in loading:
    notes[name].caption(":orange[Loading the model... the stream goes on without it meanwhile.]")
config = PipelineConfig(detector=detector if detect else None, processors=processors, overlays=overlays)
live.configure(config)


@st.fragment(run_every=0.5 if loading else None)
def wait_for_models() -> None:
    """Reruns the page once the models still loading are ready, so the stream starts using them."""
    if loading and not ready_processors(chosen, options)[2]:
        st.rerun()


wait_for_models()

try:
    secrets = st.secrets if st.secrets.load_if_toml_exists() else None
    rtc = rtc_configuration(secrets)
except SettingsError as error:
    st.error(f"WebRTC settings: {error}")
    st.stop()

# A network camera or a looped file is read on the server and streamed to the browser; the webcam
# goes both ways. Only one runs per session: choosing the webcam stops a server-side source.
if source_kind != "webcam":
    with video_column:
        location = source_location(source_kind)
    stream = served_stream(location, config) if location else None
    if stream is not None:
        show_served_stream(stream, rtc, video_column)
    st.stop()
stop_served_stream()

# Restart (after a stream that ended or went silent) is STOP, then START, driven from here through
# the component's desired playing state. The component's own report can lag (a camera that stops
# leaves it "playing"), so each step also ends on a clock: "stop" once stopped or after STOP_S,
# "start" once frames reach the server again or after RESTART_S (a camera that fails to open is
# not retried forever). Then START and STOP are the user's again.
RESTART_STATES = {"stop": False, "start": True}


def next_restart_step(step: str | None, running: bool) -> str | None:
    """The restart's step after ``step``, given whether the component says it runs."""
    since = time.monotonic() - st.session_state.get("live_restart_at", 0.0)
    if step == "stop" and (not running or since > STOP_S):
        return "start"
    if step == "start" and (live.status().state == "live" or since > RESTART_S):
        return None
    return step


def advance_restart(step: str | None, running: bool) -> None:
    """Moves the restart on a step when it is due, rerunning the page to tell the component."""
    following = next_restart_step(step, running)
    if following != step:
        st.session_state.live_restart, st.session_state.live_restart_at = following, time.monotonic()
        st.rerun(scope="app")


restart = st.session_state.get("live_restart")
with video_column:
    context = webrtc_streamer(
        key="live",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration=rtc,
        media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
        video_frame_callback=live.video_frame_callback,
        on_video_ended=live.on_ended,
        async_processing=True,
        translations=TRANSLATIONS,
        desired_playing_state=RESTART_STATES.get(restart),
    )
advance_restart(restart, context.state.playing or context.state.signalling)


@st.fragment(run_every=0.5 if restart else None)
def restart_clock() -> None:
    """Polls a restart in progress: its steps also end on a clock, not only on the component's report."""
    advance_restart(restart, context.state.playing or context.state.signalling)


restart_clock()


with video_column.expander("The camera does not start?"):
    st.markdown(
        "- **NotAllowedError / Permission denied**: the browser blocked the camera. Allow it for this "
        "site (camera icon in the address bar), then press START again.\n"
        "- **NotFoundError / Requested device not found**: no camera is connected or enabled. Plug one "
        "in, or use the Photo and Video pages instead.\n"
        "- **NotReadableError**: another application is using the camera. Close it and press START again.\n"
        "- **Connection is taking longer than expected**: the browser cannot reach this server's media "
        "port. On another machine than the server, configure a TURN server (README, 'Remote use')."
    )


@st.fragment(run_every=1.0 if context.state.signalling or context.state.playing else None)
def live_panel() -> None:
    """Polls the stream's thread-safe statistics once a second while it runs."""
    state = context.state
    if state.signalling and not state.playing:
        started = st.session_state.setdefault("live_connecting_since", time.monotonic())
        if time.monotonic() - started > CONNECT_TIMEOUT_S:
            st.warning(
                "The video connection could not be established. If the browser runs on another "
                "machine than the server, a TURN server is needed: see 'Remote use' in the README."
            )
        else:
            st.info("Connecting to the camera stream...")
    else:
        st.session_state.pop("live_connecting_since", None)
    status = live.status()
    if status.state in ("ended", "silent") and (state.playing or status.state == "ended"):
        if status.state == "ended":
            st.info("The video stream ended.")
        else:
            st.warning(f"The video stream stopped: no frame has arrived for {status.seconds:.0f} s (the camera was "
                       "closed or the connection was lost).")  # fmt: skip
        if st.button("Restart the stream", type="primary"):
            st.session_state.live_restart, st.session_state.live_restart_at = "stop", time.monotonic()
            st.rerun(scope="app")
        return  # no stale numbers
    if not state.playing:
        return
    stats = live.stats.snapshot()
    fps, faces, frame_ms = st.columns(3)
    fps.metric("Frames per second", f"{stats['fps']:.1f}", help="Frames processed on the server per second")
    faces.metric("Faces in view", stats["faces"])
    frame_ms.metric("ms per frame", "-" if stats["frame_ms"] is None else f"{stats['frame_ms']:.0f}")
    if stats["stage_ms"]:
        st.caption(" · ".join(f"{stage} {ms:.1f} ms" for stage, ms in stats["stage_ms"].items()))
    for stage, message in stats["errors"].items():
        st.warning(f"The {stage} stage failed and is skipped: {message}")


with video_column:
    live_panel()
    recording_controls(live.recording)
