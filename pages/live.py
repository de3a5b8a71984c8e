"""Live: the browser webcam streamed through the frame pipeline and back, annotated."""

import time

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from core.analysis.processors import build_processors
from core.settings import SettingsError, rtc_configuration
from core.stream.live import LiveStream
from core.stream.pipeline import PipelineConfig
from pages._widgets import detector_radio, extra_options, processor_checkboxes

CONNECT_TIMEOUT_S = 15
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

with st.sidebar:
    st.subheader("Processors")
    detect = st.checkbox("Face detection", value=True, help="Boxes around faces; the other face processors build on it.")
    detector = detector_radio("Detector", key="live_detector", disabled=not detect)
    chosen = processor_checkboxes("live")
    options = extra_options("live", chosen)
    overlays = "style" not in chosen or st.checkbox("Draw boxes and captions on the painting", value=True, key="live_overlays")

with st.spinner("Loading the models..."):
    processors, unavailable = build_processors(chosen, options)  # built once per process, never in the frame thread
for reason in unavailable.values():
    st.sidebar.error(reason)
live.configure(PipelineConfig(detector=detector if detect else None, processors=processors, overlays=overlays))

try:
    secrets = st.secrets if st.secrets.load_if_toml_exists() else None
    rtc = rtc_configuration(secrets)
except SettingsError as error:
    st.error(f"WebRTC settings: {error}")
    st.stop()

video_column, panel_column = st.columns([3, 1])
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
    )


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
    if status.state == "ended":
        st.info("The video stream ended. Press START to stream again.")
        return  # no stale numbers
    if status.state == "silent" and state.playing:
        st.warning(f"The video stream stopped: no frame has arrived for {status.seconds:.0f} s (the camera was "
                   "closed or the connection was lost). Press STOP, then START to restart it.")
        return
    if not state.playing:
        return
    stats = live.stats.snapshot()
    st.metric("Frames per second", f"{stats['fps']:.1f}", help="Frames processed on the server per second")
    st.metric("Faces in view", stats["faces"])
    st.metric("ms per frame", "-" if stats["frame_ms"] is None else f"{stats['frame_ms']:.0f}")
    if stats["stage_ms"]:
        st.caption(" · ".join(f"{stage} {ms:.1f} ms" for stage, ms in stats["stage_ms"].items()))
    for stage, message in stats["errors"].items():
        st.warning(f"The {stage} stage failed and is skipped: {message}")


with panel_column:
    live_panel()
