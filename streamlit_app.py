"""Vision Lab: the Streamlit entry point (``streamlit run streamlit_app.py``).

The first import must stay ``streamlit_webrtc``: TensorFlow imported before it segfaults the
server (see core/__init__.py); the pages import TensorFlow-backed modules later.
"""

import streamlit_webrtc  # noqa: F401, I001  (must precede anything that imports TensorFlow)
import streamlit as st

from pages._runtime import keep_models_between_runs, one_thread_per_model

keep_models_between_runs()  # before this run ends: Streamlit's housekeeping must not reset Keras (see there)
one_thread_per_model()  # before any page imports TensorFlow

st.set_page_config(page_title="Vision Lab", page_icon="👁️", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", default=True),
        st.Page("pages/live.py", title="Live"),
        st.Page("pages/people.py", title="People"),
        st.Page("pages/video.py", title="Video"),
        st.Page("pages/photo.py", title="Photo"),
        st.Page("pages/style.py", title="Style transfer"),
    ]
)
st.sidebar.caption("Vision Lab · faces, keypoints, recognition, style transfer. Everything runs on this machine.")
navigation.run()
