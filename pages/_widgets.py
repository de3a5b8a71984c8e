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
