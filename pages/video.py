"""Video: annotate an uploaded video file with the chosen processors, then play and download it.

The upload is checked at once and kept in the session's workspace, so it outlives a visit to
another page and can be annotated again with other processors."""

from pathlib import Path

import streamlit as st

from core.analysis.processors import build_processors
from core.store.gallery import default_gallery_location, shown
from core.stream.pipeline import FramePipeline, PipelineConfig
from core.stream.video import MAX_BYTES, MAX_SECONDS, VIDEO_SUFFIXES, VideoWorkspace, progress_text
from pages._widgets import detector_radio, extra_options, processor_checkboxes

# The server refuses uploads above server.maxUploadSize (200 MB unless configured) whatever a widget says.
max_upload_mb = min(MAX_BYTES // 2**20, st.get_option("server.maxUploadSize"))

st.title("Video")
st.caption(
    f"Upload a video (at most {max_upload_mb} MB and {MAX_SECONDS // 60} minutes): every frame is annotated "
    "with the processors you choose, the sound is kept, and the result plays here and can be downloaded."
)

# One workspace per browser session: its temporary folder goes when the session's state does.
if "video_workspace" not in st.session_state:
    st.session_state.video_workspace = VideoWorkspace()
workspace: VideoWorkspace = st.session_state.video_workspace
running = workspace.job is not None and workspace.job.state()["status"] == "running"
# A new key gives an empty uploader: "Remove this video" empties it as well.
uploader_key = f"video_upload_{st.session_state.setdefault('video_uploads_removed', 0)}"


def remove_video() -> None:
    """Forget the kept video, and empty the uploader that may still show it."""
    workspace.remove()
    st.session_state.video_uploads_removed += 1


def uploader_changed() -> None:
    """The uploader's own ✕ removes the kept video too."""
    if st.session_state[uploader_key] is None:
        workspace.remove()


# The upload and its result first, the processors beside them; on a phone the columns stack.
main_column, controls_column = st.columns([5, 2])
with controls_column:
    st.subheader("Processors")
    detector = detector_radio("Face detector", key="video_detector")
    chosen = processor_checkboxes("video", checked={"recognition"})
    options = extra_options("video", chosen, effects=("blur",))
    overlays = "style" not in chosen or st.checkbox("Draw boxes and captions on the painting", value=True, key="video_overlays")
    if "recognition" in chosen:
        st.caption(f"Names come from the gallery of the People page: `{shown(default_gallery_location())}`")

with main_column:
    uploaded = st.file_uploader("Video file", type=list(VIDEO_SUFFIXES), max_upload_size=max_upload_mb, disabled=running,
                                key=uploader_key, on_change=uploader_changed)  # fmt: skip
    if uploaded is not None and (workspace.upload is None or workspace.upload.file_id != uploaded.file_id):
        with st.spinner(f"Checking {uploaded.name}..."):
            workspace.keep(uploaded.file_id, uploaded.name, uploaded)
    kept = workspace.upload
    if kept is not None:
        if kept.info is None:
            st.error(kept.error)
        else:
            st.info(kept.info.summary())
        if uploaded is None:
            st.caption("Kept from before: annotate it again, or upload another video to replace it.")

    usable = kept is not None and kept.info is not None
    with st.container(horizontal=True):
        annotate = st.button("Annotate again" if workspace.job is not None else "Annotate", type="primary", disabled=not usable or running)
        if kept is not None:
            st.button("Remove this video", on_click=remove_video, disabled=running)
    if annotate:
        with st.spinner("Loading the models..."):
            processors, unavailable = build_processors(chosen, options)
        if unavailable:
            st.error(" ".join(unavailable.values()))
        else:
            workspace.start(FramePipeline(PipelineConfig(detector=detector, processors=processors, tracking=True, overlays=overlays)))
            st.rerun()


@st.fragment(run_every=0.5 if running else None)
def job_panel() -> None:
    """Polls the background job: progress, the frame being annotated and Cancel while it runs, then the result."""
    job = workspace.job
    if job is None:
        return
    state = job.state()
    if state["status"] == "running":
        total = max(state["total_frames"], 1)
        st.progress(min(state["done_frames"] / total, 1.0), text=progress_text(state))
        if state["preview"] is not None:
            st.image(state["preview"], caption="The frame being annotated")
        if st.button("Cancel"):
            job.cancel()
        return
    if running:  # it finished while this fragment polled: rerun the page once to stop polling
        st.rerun()
    if state["status"] == "cancelled":
        st.info("Cancelled: nothing was written.")
    elif state["status"] == "failed":
        st.error(state["error"])
    else:
        result = state["result"]
        names = ", ".join(result["names_seen"]) or "nobody from the gallery"
        st.success(
            f"{result['frames']} frames ({result['seconds']:.1f} s at {result['fps']:g} fps), "
            f"faces seen: {result['faces_seen']}; recognised: {names}; sound: {result['audio'] or 'none'}."
        )
        for stage, message in result["errors"].items():
            st.warning(f"The {stage} stage failed on some frames and was skipped there: {message}")
        output = Path(result["output"])
        st.video(str(output))
        st.download_button(
            "Download the annotated video",
            data=output.read_bytes(),
            file_name=f"{Path(job.name).stem}-annotated.mp4",
            mime="video/mp4",
        )


with main_column:
    job_panel()
