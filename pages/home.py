"""Home: what the app does and the state of every model."""

import streamlit as st

from core.models import model_status

st.title("Vision Lab")
st.markdown(
    "Real-time computer vision in the browser, computed on this machine: your webcam annotated "
    "with faces, facial keypoints, names, age and gender; people enrolled from photos; neural "
    "style transfer; annotated video files. Every feature is also a command: `python -m core --help`."
)
st.page_link("pages/live.py", label="Live webcam")

st.subheader("Models")
st.caption("Whether each model can be used now, and where its weights come from.")
st.dataframe(
    [
        {
            "Model": s.name,
            "Used for": s.used_for,
            "Status": "available" if s.available else "unavailable",
            "Weights": s.source,
            "Details": s.detail,
        }
        for s in model_status()
    ],
    hide_index=True,
    width="stretch",
)
