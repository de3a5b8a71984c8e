"""Widgets and resources shared by pages: the processor controls (Live, Video) and the gallery connection."""

from collections.abc import Collection

import numpy as np
import streamlit as st

from core.analysis.detect import DEFAULT_DETECTOR, DETECTOR_LABELS, DETECTORS
from core.analysis.processors import processor_specs
from core.store.gallery import Gallery, GalleryUnavailable, default_gallery_location, open_gallery

STREAM_DETECTORS = [d for d in DETECTORS if d != "cnn"]  # the CNN detector takes seconds per frame on a CPU


@st.cache_resource
def shared_gallery(location: str) -> Gallery:
    """One connection per gallery (file or URL) per process; the Gallery is thread-safe."""
    return open_gallery(location)


def app_gallery() -> Gallery:
    """The app's gallery (``$VISION_LAB_GALLERY``, else the default file), opened once."""
    return shared_gallery(default_gallery_location())


def detector_radio(label: str, key: str, disabled: bool = False) -> str:
    """The face detector for a stream (YuNet by default, Haar or dlib HOG)."""
    return st.radio(label, STREAM_DETECTORS, index=STREAM_DETECTORS.index(DEFAULT_DETECTOR), format_func=DETECTOR_LABELS.get,
                    horizontal=True, key=key, disabled=disabled)


def processor_checkboxes(key_prefix: str, checked: Collection[str] = (), notes: dict | None = None) -> list[str]:
    """One checkbox per catalogued processor, disabled with its reason when it cannot run here;
    returns the names ticked, in catalogue order. With ``notes``, each ticked name gets a slot
    right under its checkbox (an ``st.empty``), for what the page learns later (still loading)."""
    chosen = []
    for spec in processor_specs():
        reason = spec.unavailable()
        label = spec.label if reason is None else f"{spec.label} (unavailable)"
        ticked = st.checkbox(
            label,
            value=spec.name in checked and reason is None,
            key=f"{key_prefix}_{spec.name}",
            help=reason or spec.description,
            disabled=bool(reason),
        )
        if ticked:
            chosen.append(spec.name)
            if notes is not None:
                notes[spec.name] = st.empty()
    if "recognition" in chosen:
        gallery_notices()
    return chosen


WHO_LABELS = {"all": "every face", "unknown": "faces nobody enrolled (bystanders)", "named": "enrolled people only"}


def effect_controls(key_prefix: str, default: Collection[str] = ("sunglasses", "crown"), recognition: bool = True) -> dict[str, dict]:
    """The effects to draw and on whom, as ``build_processors`` options ({} when none is chosen);
    ``recognition``: whether recognition runs too (else every face counts as unknown)."""
    from core.analysis.effects import EFFECTS, WHO

    names = st.multiselect("Effects", list(EFFECTS), default=list(default), format_func=lambda n: EFFECTS[n].label,
                           key=f"{key_prefix}_effect_names")  # fmt: skip
    who = st.radio("On", WHO, format_func=WHO_LABELS.get, key=f"{key_prefix}_effect_who", horizontal=True,
                   help="Only the faces recognition names, or only those it cannot: tick Recognition too.")  # fmt: skip
    if who != "all" and not recognition:
        st.info("Recognition is not ticked: every face counts as unknown.")
    return {"effects": {"effects": tuple(names), "who": who}} if names else {}


def visitor_controls(key_prefix: str) -> dict[str, dict]:
    """The privacy switch for visitors (off by default) and their retention, as recognition's options."""
    remember = st.checkbox(
        "Remember visitors", value=False, key=f"{key_prefix}_visitors",
        help="Group the faces nobody enrolled into Visitor 1, 2, ... as they are seen (good views only), so a "
        "returning stranger is recognised and can be named on the People page. Off by default: it stores face "
        "crops and encodings of people who never enrolled.",
    )  # fmt: skip
    if not remember:
        return {}
    days = st.number_input("Forget visitors not seen for (days)", min_value=1, max_value=3650, value=30, key=f"{key_prefix}_visitor_days")
    return {"recognition": {"visitors": True, "retention_days": float(days)}}


def extra_options(key_prefix: str, chosen: list[str], effects: Collection[str] = ("sunglasses", "crown")) -> dict[str, dict]:
    """The options of the ticked processors that have choices (visitors, style, effects), shown under the
    checkboxes; a processor whose choice is not complete yet (a painting to upload, no effect
    picked) is unticked from ``chosen``."""
    options: dict[str, dict] = {}
    if "recognition" in chosen:
        options |= visitor_controls(key_prefix)
    if "style" in chosen:
        options |= style_controls(key_prefix)
    if "effects" in chosen:
        options |= effect_controls(key_prefix, default=effects, recognition="recognition" in chosen)
    for name in ("style", "effects"):
        if name in chosen and name not in options:
            chosen.remove(name)
    return options


def gallery_notices() -> None:
    """What recognition needs from the People page: somebody enrolled (else a link there), and
    photos the active face encoder can use."""
    from core.analysis.recognition import photos_needing_reencoding

    gallery = app_gallery()  # never creates the file: that takes an enrollment
    try:
        nobody = not gallery.people()
    except GalleryUnavailable as error:
        st.warning(f"Gallery unavailable: {error}. Faces keep the names already found; it reconnects by itself.")
        return
    if nobody:
        st.info("Nobody is enrolled yet: every face shows 'No match'.")
        st.page_link("pages/people.py", label="Enroll people on the People page")
        return
    others = photos_needing_reencoding(gallery)
    if others:
        st.warning(f"{others} enrolled photo(s) were encoded by another face encoder and are not recognised: "
                   "encode them again on the People page.")


@st.cache_data(show_spinner="Painting the 26 styles...")
def style_sheet(photo: str) -> np.ndarray:
    """The 26 built-in styles on one example photo, numbered, as one BGR image (made once)."""
    from core.images import load_image
    from core.style import fast

    return fast.contact_sheet(load_image(photo))


def style_controls(key_prefix: str) -> dict[str, dict]:
    """The Style processor's choices (a built-in style, a blend of two, or a painting; size;
    region), as ``build_processors`` options."""
    from core.style import fast
    from core.style.gatys import example_images

    kind = st.radio("Style", ["Built-in", "Blend of two", "A painting"], horizontal=True, key=f"{key_prefix}_painter_style_kind")
    options: dict = {}
    numbers = list(range(fast.NUM_STYLES))
    if kind == "A painting":
        paintings = example_images("style")
        choice = st.selectbox("Painting", [*paintings, "Upload..."], key=f"{key_prefix}_painter_painting")
        if choice == "Upload...":
            upload = st.file_uploader("Painting", type=["jpg", "jpeg", "png", "webp"], key=f"{key_prefix}_painter_painting_file")
            if upload is None:
                return {}
            options["painting"] = saved_upload(upload.getvalue(), upload.name)
        else:
            options["painting"] = str(paintings[choice])
    else:
        first = st.selectbox("Style number", numbers, index=fast.DEFAULT_STYLE, key=f"{key_prefix}_painter_style")
        options["style"] = str(first)
        if kind == "Blend of two":
            second = st.selectbox("Blended with", numbers, index=19, key=f"{key_prefix}_painter_style_2")
            share = st.slider("Share of the second", 0.0, 1.0, 0.5, 0.05, key=f"{key_prefix}_painter_style_share")
            options["style"] = f"{first}:{1 - share:.2f},{second}:{share:.2f}"
        photos = example_images("content")
        if photos:
            with st.expander("See the 26 styles"):
                st.image(style_sheet(str(next(iter(photos.values())))), channels="BGR")
    options["size"] = st.select_slider("Processing size (longer side, px)", [160, 240, 320, 480, 640], value=320,
                                       key=f"{key_prefix}_painter_style_size", help="Smaller: faster, bigger strokes.")  # fmt: skip
    options["region"] = st.radio("Paint", list(fast.REGIONS), format_func=fast.REGIONS.get, key=f"{key_prefix}_painter_style_region")
    if options["region"] == "split":
        options["face_style"] = str(st.selectbox("Style of the faces", numbers, index=10, key=f"{key_prefix}_painter_face_style"))
    return {"style": options}


def saved_upload(data: bytes, name: str) -> str:
    """An upload written once to the server's temporary folder (named by its content), as a path
    a processor can be built with."""
    import hashlib
    import tempfile
    from pathlib import Path

    path = Path(tempfile.gettempdir()) / "vision-lab-paintings" / f"{hashlib.sha256(data).hexdigest()[:16]}{Path(name).suffix.lower()}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return str(path)
