"""Style transfer: a photo repainted in a painting's style (Gatys et al.), run in the background."""

import cv2
import numpy as np
import streamlit as st

from core.analysis.styling import paint_regions
from core.images import ImageError, load_image
from core.stream.photo import style_pipeline
from core.style import fast, jobs
from core.style import gatys as core_style
from pages._widgets import style_controls

st.title("Style transfer")
st.caption(
    "An image is optimised so that a VGG network sees the content of the photo and the textures "
    "(Gram matrices) of the painting. Runs on this machine; 100 iterations at 256 px take one to three minutes on a small CPU."
)

UPLOAD = "Upload your own…"


def pick_image(column, kind: str, label: str):
    """A BGR image chosen from the examples or uploaded in ``column``; None until there is one."""
    examples = core_style.example_images(kind)
    with column:
        choice = st.selectbox(label, [*examples, UPLOAD], key=f"style_{kind}_choice")
        if choice == UPLOAD:
            upload = st.file_uploader(f"{label} image", type=["jpg", "jpeg", "png", "webp"], key=f"style_{kind}_file")
            if upload is None:
                return None
            source = upload.getvalue()
        else:
            source = examples[choice]
        try:
            image = load_image(source)
        except ImageError as error:
            st.error(f"{label}: {error}")
            return None
        st.image(image, channels="BGR", width=320)
        return image


jobs.warm_up()  # the worker process imports TensorFlow while the user picks images

content_column, style_column = st.columns(2)
content = pick_image(content_column, "content", "Content photo")
style = pick_image(style_column, "style", "Style painting")
if not core_style.example_images("content"):
    st.info(f"No example images here ({core_style.EXAMPLES_DIR} is absent): upload a photo and a painting.")

usable = [name for name in core_style.BACKBONES if core_style.backbone_unavailable(name) is None]
with st.form("style_settings", border=True):
    left, middle, right = st.columns(3)
    weights = [10.0**e for e in range(-6, 7)]
    style_weight = left.select_slider("Style weight", weights, value=core_style.StyleSettings.style_weight,
                                      format_func=lambda v: f"{v:g}")
    content_weight = left.select_slider("Content weight", weights, value=core_style.StyleSettings.content_weight,
                                        format_func=lambda v: f"{v:g}")
    tv_weight = left.select_slider("Smoothness (total-variation) weight", [0.0, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0],
                                   value=core_style.StyleSettings.tv_weight)
    size = middle.slider("Size (longer side, px)", 64, 768, core_style.StyleSettings.size, step=32)
    iterations = middle.slider("Iterations", 5, 500, core_style.StyleSettings.iterations, step=5)
    preserve_colors = middle.checkbox("Keep the photo's colours", value=False)
    init = right.radio("Start from", core_style.INITS, horizontal=True, format_func=lambda v: f"{v} image" if v == "content" else v)
    optimizer = right.radio("Optimizer", core_style.OPTIMIZERS, horizontal=True,
                            format_func=lambda v: {"lbfgs": "L-BFGS", "adam": "Adam"}[v])
    backbone = right.selectbox("Network", usable, index=usable.index(core_style.default_backbone()) if usable else None)
    submitted = st.form_submit_button("Run", type="primary", disabled=not usable)

for name in core_style.BACKBONES:
    reason = core_style.backbone_unavailable(name)
    if reason:
        st.caption(f"{name} unavailable: {reason}")
if usable:
    st.caption(f"Network used by default: **{core_style.default_backbone()}**. Computing on: {core_style.compute_device()}.")

if submitted:
    previous = st.session_state.get("style_job")
    if previous is not None and not previous.snapshot().finished:
        st.warning("Your previous run is still going: cancel it first.")
    elif content is None or style is None:
        st.warning("Choose or upload both a content photo and a style painting first.")
    else:
        settings = core_style.StyleSettings(
            size=size, iterations=iterations, style_weight=style_weight, content_weight=content_weight,
            tv_weight=tv_weight, init=init, optimizer=optimizer, backbone=backbone, preserve_colors=preserve_colors,
        )
        st.session_state["style_job"] = jobs.StyleJob(content, style, settings)

job = st.session_state.get("style_job")
if (job is None or job.snapshot().finished) and jobs.another_run_active():
    st.caption("Another session is running a style transfer on this server: a new run will queue behind it.")


@st.fragment(run_every=0.75 if job is not None and not job.snapshot().finished else None)
def show_job() -> None:
    snapshot = job.snapshot()
    if snapshot.state == "queued":
        st.info("Another style transfer is running on this server: yours is queued and starts when it ends.")
    latest = snapshot.history[-1] if snapshot.history else None
    fraction = snapshot.iteration / snapshot.iterations
    text = f"{snapshot.state}: iteration {snapshot.iteration} / {snapshot.iterations}"
    st.progress(min(fraction, 1.0), text=text + (f", loss {latest.total:.4g}" if latest else ""))
    if not snapshot.finished:
        st.button("Cancel", on_click=job.cancel)
    if snapshot.error:
        st.error(snapshot.error)
    image_column, chart_column = st.columns(2)
    if snapshot.preview_bgr is not None:
        caption = "Result" if snapshot.result is not None else f"Preview (iteration {snapshot.iteration})"
        image_column.image(snapshot.preview_bgr, channels="BGR", caption=caption, width="stretch")
    if len(snapshot.history) > 1:
        settings = job.settings
        chart_column.line_chart(
            {
                "total": [h.total for h in snapshot.history],
                "content × weight": [h.content * settings.content_weight for h in snapshot.history],
                "style × weight": [h.style * settings.style_weight for h in snapshot.history],
                "smoothness × weight": [h.tv * settings.tv_weight for h in snapshot.history],
            },
            x_label="iteration",
            y_label="loss",
        )
    if snapshot.result is not None:
        result = snapshot.result
        st.caption(f"{result.iterations} iterations in {result.seconds:.1f} s on {result.device} "
                   f"with {result.settings.backbone} ({result.seconds / max(result.iterations, 1):.2f} s per iteration).")
        region = st.radio("Paint", ["all", "background", "faces"], horizontal=True, key="gatys_region",
                          format_func=fast.REGIONS.get)  # fmt: skip
        final = result.image_bgr
        if region != "all":
            final, found = paint_regions(cv2.resize(job.inputs[0], final.shape[1::-1], interpolation=cv2.INTER_AREA), final, region)
            image_column.image(final, channels="BGR", caption=f"By region: {found} face(s)", width="stretch")
        png = cv2.imencode(".png", final)[1].tobytes()
        st.download_button("Download PNG", png, file_name="stylized.png", mime="image/png")
    if snapshot.finished and st.session_state.get("style_job_drawn_running"):
        st.session_state["style_job_drawn_running"] = False
        st.rerun()  # the whole page, so the fragment stops polling
    st.session_state["style_job_drawn_running"] = not snapshot.finished


if job is not None:
    show_job()


@st.cache_data(max_entries=4, show_spinner="Painting...")
def fast_painting(content_bgr: np.ndarray, options: dict) -> tuple[np.ndarray, int]:
    """The content photo painted by the Style processor with ``options`` (the Live page's, by
    region too), and the faces found; made once per photo and choice, not on every rerun."""
    painted, result = style_pipeline(options, tracking=False).annotate(content_bgr)
    return painted, len(result.faces)


st.subheader("Fast styles: a second, in 26 styles or any painting")
st.caption("Feed-forward networks (the Live page's Style processor) instead of the optimisation above: "
           "the content photo painted at once; faces can be kept natural or painted alone.")
if content is not None and fast.unavailable() is None:
    choice = style_controls("style_page")
    if choice:
        painted, found = fast_painting(content, choice["style"])
        region = choice["style"]["region"]
        st.image(painted, channels="BGR", caption=fast.REGIONS[region] + (f" ({found} face(s))" if region != "all" else ""))
        st.download_button("Download the fast PNG", cv2.imencode(".png", painted)[1].tobytes(), file_name="fast-style.png",
                           mime="image/png")  # fmt: skip
elif fast.unavailable():
    st.caption(f"Fast styles unavailable: {fast.unavailable()}")
