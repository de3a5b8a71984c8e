"""Home: what each page does, a first step, and whether every model can be used."""

import pandas as pd
import streamlit as st

from core.models import model_status

# (page file, title, what it does); the order is the suggested first walk through the app.
PAGES = [
    ("pages/people.py", "People", "Enroll people from a few photos each, so the other pages can name them. Start here."),
    ("pages/live.py", "Live", "Your webcam annotated as you move: faces, keypoints, names, age and gender, effects, styles."),
    ("pages/photo.py", "Photo", "One photo, uploaded or taken with the camera: every face numbered, a table and the JSON."),
    ("pages/video.py", "Video", "A video file annotated frame by frame, the sound kept, ready to download."),
    ("pages/style.py", "Style transfer", "A photo repainted in the style of a painting (Gatys et al.), with a live preview."),
]
STATUS_COLORS = {"ready": "#1e8e3e", "unavailable": "#d93025"}
CARDS_PER_ROW = 3  # Streamlit stacks columns one under another on a phone

st.title("Vision Lab")
st.markdown(
    "Real-time computer vision in the browser, computed on this machine. "
    "**A first walk:** enroll two people on **People**, then see them named on **Live**, in a **Photo** "
    "or in a **Video**, and repaint a photo on **Style transfer**. Every feature is also a command: "
    "`python -m core --help`."
)

for start in range(0, len(PAGES), CARDS_PER_ROW):
    columns = st.columns(CARDS_PER_ROW)
    for column, (path, title, does) in zip(columns, PAGES[start : start + CARDS_PER_ROW]):
        with column.container(border=True):
            st.markdown(f"**{title}**")
            st.caption(does)
            st.page_link(path, label=f"Open {title}")

st.subheader("Models")
statuses = sorted(model_status(), key=lambda s: s.available)  # the unavailable ones first
missing = [s for s in statuses if not s.available]
if missing:
    st.warning(f"{len(statuses) - len(missing)} of {len(statuses)} models are ready. "
               f"{len(missing)} cannot be used yet:")  # fmt: skip
    for s in missing:
        st.markdown(f"- :orange[**{s.name}**] ({s.used_for}): {s.detail}")
else:
    st.success(f"All {len(statuses)} models are ready.")
with st.expander("Every model, what it is used for and where its weights come from"):
    table = pd.DataFrame(
        [
            {"Status": "ready" if s.available else "unavailable", "Model": s.name, "Used for": s.used_for,
             "Weights": s.source, "Details": s.detail}  # fmt: skip
            for s in statuses
        ]
    )
    st.dataframe(
        table.style.map(lambda status: f"color: {STATUS_COLORS[status]}; font-weight: bold", subset=["Status"]),
        hide_index=True,
        width="stretch",
        height=36 * (len(statuses) + 1) + 3,  # every row in view: the table never scrolls inside itself
        column_config={
            "Status": st.column_config.TextColumn(width="small"),
            "Model": st.column_config.TextColumn(width="medium"),
            "Used for": st.column_config.TextColumn(width="medium"),
        },
    )
