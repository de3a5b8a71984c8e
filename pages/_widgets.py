"""Widgets and resources shared by pages: the stream sidebar (Live, Video) and the gallery connection."""

from collections.abc import Collection

import streamlit as st

from core.analysis.detect import DEFAULT_DETECTOR, DETECTOR_LABELS, DETECTORS
from core.analysis.processors import processor_specs
from core.store.sqlite import Gallery, default_gallery_path

STREAM_DETECTORS = [d for d in DETECTORS if d != "cnn"]  # the CNN detector takes seconds per frame on a CPU


@st.cache_resource
def open_gallery(path: str) -> Gallery:
    """One connection per gallery file per process; the Gallery is thread-safe."""
    return Gallery(path)


def detector_radio(label: str, key: str, disabled: bool = False) -> str:
    """The face detector for a stream (YuNet by default, Haar or dlib HOG)."""
    return st.radio(label, STREAM_DETECTORS, index=STREAM_DETECTORS.index(DEFAULT_DETECTOR), format_func=DETECTOR_LABELS.get,
                    horizontal=True, key=key, disabled=disabled)


def processor_checkboxes(key_prefix: str, checked: Collection[str] = ()) -> list[str]:
    """One checkbox per catalogued processor, disabled with its reason when it cannot run here;
    returns the names ticked, in catalogue order."""
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
    if "recognition" in chosen:
        gallery_reencoding_notice()
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


def gallery_reencoding_notice() -> None:
    """A warning when the app's gallery holds photos the active face encoder cannot use."""
    from core.analysis.recognition import photos_needing_reencoding

    path = default_gallery_path()
    if not path.is_file():  # nobody enrolled yet; never create the file from here
        return
    others = photos_needing_reencoding(open_gallery(str(path)))
    if others:
        st.warning(f"{others} enrolled photo(s) were encoded by another face encoder and are not recognised: "
                   "encode them again on the People page.")
