"""Photo: one uploaded (or camera) photo analysed by every available processor."""

import hashlib
import json
from pathlib import Path

import streamlit as st

from core.analysis.detect import DEFAULT_DETECTOR, DETECTOR_LABELS, DETECTORS
from core.images import ImageError, load_image
from core.stream.photo import analysis_json, analyze_photo, face_rows, photo_pipeline
from pages._widgets import effect_controls

st.title("Photo")
st.caption("Every available processor runs on one photo: no webcam needed. The JSON is what `python -m core analyze` prints.")

source = st.radio("Photo", ["Upload a photo", "Take a photo"], horizontal=True, label_visibility="collapsed")
if source == "Upload a photo":
    photo = st.file_uploader("Photo", type=["jpg", "jpeg", "png", "webp"])
else:
    photo = st.camera_input("Take a photo")
detector = st.radio(
    "Face detector",
    DETECTORS,
    index=DETECTORS.index(DEFAULT_DETECTOR),
    format_func=DETECTOR_LABELS.get,
    horizontal=True,
)
with st.expander("Face effects and privacy blur"):
    options = effect_controls("photo", default=())
if photo is None:
    st.session_state.pop("photo_analysis", None)  # a photo given again later is analysed afresh (new people...)
    st.info("Upload a photo or take one to analyse it.")
    st.stop()

data = photo.getvalue()
try:
    image = load_image(data)
except ImageError as error:
    st.error(f"{photo.name}: {error}")
    st.stop()

# Reruns (a download click, a widget) reuse the analysis of the same photo with the same settings.
key = (hashlib.sha256(data).hexdigest(), detector, repr(options))
cached = st.session_state.get("photo_analysis")
if cached is None or cached[0] != key:
    with st.spinner("Analysing the photo..."):
        pipeline, unavailable = photo_pipeline(detector, options)
        cached = (key, analyze_photo(pipeline, image), unavailable)
    st.session_state.photo_analysis = cached
_, analysis, unavailable = cached
result = analysis.result

image_column, side_column = st.columns([3, 1])
with image_column:
    st.image(analysis.annotated, channels="BGR", caption=photo.name)
with side_column:
    st.metric("Faces", len(result.faces))
    if not result.faces:
        st.info("No face found in this photo.")
    st.download_button(
        "Download the JSON",
        data=json.dumps(analysis_json(photo.name, image, result), indent=2, ensure_ascii=False),
        file_name=f"{Path(photo.name).stem}.json",
        mime="application/json",
    )
    if result.labels:
        st.dataframe([{"label": label, "probability": round(p, 3)} for label, p in result.labels], hide_index=True)
if result.faces:
    st.dataframe(face_rows(result), hide_index=True, width="stretch")
for stage, message in analysis.errors.items():
    st.warning(f"The {stage} stage failed on this photo: {message}")
for reason in unavailable.values():
    st.caption(f"Not run: {reason}")
