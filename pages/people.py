"""People: the gallery that recognition names faces from (enroll, choose faces, rename, delete, tolerance)."""

import time

import numpy as np
import streamlit as st

from core.analysis.recognition import (
    ENCODERS,
    Enrollment,
    active_encoder,
    draw_choices,
    enroll,
    gallery_tolerance,
    pair_report,
    photos_needing_reencoding,
    reencode_gallery,
    set_gallery_tolerance,
)
from core.images import load_image
from core.store.gallery import GalleryError, GalleryUnavailable
from pages._widgets import app_gallery


def show_outcomes(enrollment: Enrollment, sources: dict[str, object]) -> None:
    """Each photo's face crop or the reason it was refused; several faces become a pending choice."""
    for photo in enrollment.photos:
        left, right = st.columns([1, 4])
        if photo.accepted:
            left.image(photo.thumbnail_jpeg, width=96)
            right.text(f"{photo.source}: accepted")
        else:
            right.text(photo.source)
            right.warning(photo.reason)
            if photo.needs_choice:
                st.session_state.pending_choices.append((enrollment.name, photo.source, sources[photo.source], photo.boxes))
    if enrollment.written:
        st.success(f"{enrollment.accepted} photo(s) saved for {enrollment.name}.")
    elif not any(photo.needs_choice for photo in enrollment.photos):
        st.error("Nothing was saved: no photo was usable.")
    if any(photo.needs_choice for photo in enrollment.photos):
        st.info("Some photos show several faces: pick the face to enroll under 'Photos with several faces' below.")


def run_enrollment(name: str, photos: list[tuple[str, object]], face_indices: dict[int, int] | None = None, later: bool = False) -> bool:
    """Enroll; whether anything was saved or is waiting for a face choice. Each photo's outcome is
    shown now, or, ``later``, after the rerun that follows a save (the form is cleared by then)."""
    try:
        with st.spinner("Finding and encoding the faces..."):
            enrollment = enroll(gallery, name, photos, face_indices)
    except GalleryError as error:
        st.error(f"Nothing was saved: {error}")
        return False
    kept = enrollment.written or any(photo.needs_choice for photo in enrollment.photos)
    if later and kept:
        st.session_state.enroll_outcome = (enrollment, dict(photos))
    else:
        show_outcomes(enrollment, dict(photos))
    return kept


st.title("People")
st.caption("The people that recognition (Live, Video, Photo pages and `python -m core recognize`) can name.")
gallery = app_gallery()
try:
    gallery.version()
except GalleryUnavailable as error:
    st.error(f"Gallery unavailable: {error}. Nothing can be enrolled or changed until it is back; "
             "the Live and Video pages keep running with the names they already know, and the app reconnects by itself.")
    st.button("Try again")
    st.stop()
st.session_state.setdefault("pending_choices", [])
encoder = ENCODERS[active_encoder()]

with st.sidebar:
    st.subheader("Match tolerance")
    tolerance = st.slider(
        "Tolerance",
        0.3,
        0.95,
        value=gallery_tolerance(gallery, encoder.name),
        step=0.01,
        help=f"Default {encoder.tolerance} for the {encoder.label} encoder. The largest face distance at which "
        "a name is given.",
    )
    st.caption(
        "Lower: stricter, fewer strangers given a name, more 'No match'. Higher: more faces named, more "
        "mistakes. A face nearly as close to a second person also stays 'No match'. Three or more varied "
        "photos per person help more than any setting."
    )
    if tolerance != gallery_tolerance(gallery, encoder.name):
        set_gallery_tolerance(gallery, tolerance, encoder.name)
    st.caption(f"Face encoder: {encoder.label}.")

others = photos_needing_reencoding(gallery)
if others:
    st.warning(f"{others} photo(s) were encoded by another face encoder than {encoder.label}: recognition "
               "does not use them until they are encoded again (from their stored face crops).")
    if st.button("Encode them again"):
        with st.spinner("Encoding..."):
            outcome = reencode_gallery(gallery, encoder.name)
        st.success(f"{len(outcome['reencoded'])} photo(s) encoded again."
                   + (f" {len(outcome['failed'])} crop(s) show no face: remove and re-upload those." if outcome["failed"] else ""))

st.subheader("Add photos")
# A saved form is replaced by an empty one (new keys); a refused one keeps its name and photos to correct.
form = st.session_state.setdefault("enroll_form", 0)
with st.form(f"enroll_{form}"):
    name = st.text_input("Name", max_chars=100, key=f"enroll_name_{form}",
                         help="A new name creates the person; an existing name adds photos to them.")  # fmt: skip
    uploads = st.file_uploader("Photos of this person", type=["jpg", "jpeg", "png", "webp"], accept_multiple_files=True,
                               key=f"enroll_photos_{form}")  # fmt: skip
    submitted = st.form_submit_button("Save")
if submitted:
    saved = False
    if not name.strip():
        st.error("Nothing was saved: type the person's name first (your photos are kept).")
    elif uploads:
        saved = run_enrollment(name, [(f.name, f.getvalue()) for f in uploads], later=True)
    else:
        try:
            gallery.add_person(name)
            saved = True
        except GalleryError as error:
            st.error(f"Nothing was saved: {error}")
    if saved:
        st.session_state.enroll_form = form + 1  # the next run shows an empty form
        st.toast(f"Saved: {name.strip()}")
        st.rerun()
elif "enroll_outcome" in st.session_state:
    show_outcomes(*st.session_state.pop("enroll_outcome"))

st.subheader("Enroll the face on the Live page")
live = st.session_state.get("live_stream")
latest = live.latest() if live is not None else None
if latest is None:
    st.info("Start the camera on the Live page: the face it shows can then be enrolled here under a name.")
else:
    age_s = time.monotonic() - latest.seen_at
    when = "now" if age_s < 2 else f"{age_s:.0f} s ago (the camera stops when you leave the Live page)"
    st.image(draw_choices(latest.image, [f.box for f in latest.faces]), channels="BGR", width=480,
             caption=f"Last frame of the Live page, {when}: {len(latest.faces)} face(s)")
    with st.form("enroll_live"):
        live_name = st.text_input("Name", max_chars=100, key="live_name")
        if st.form_submit_button("Enroll the face in this frame"):
            run_enrollment(live_name, [("live snapshot", live.latest().image)])

if st.session_state.pending_choices:
    st.subheader("Photos with several faces: pick one")
    for number, (person, source, data, boxes) in enumerate(list(st.session_state.pending_choices)):
        st.text(f"{source} for {person}")
        picked = st.radio("Face", list(range(len(boxes))), format_func=lambda i: f"face {i + 1}", horizontal=True, key=f"pick_{number}")
        image = data if not isinstance(data, bytes) else load_image(data)
        st.image(draw_choices(image, boxes), channels="BGR", width=480)
        if st.button("Enroll this face", key=f"choose_{number}"):
            st.session_state.pending_choices.pop(number)
            run_enrollment(person, [(source, data)], {0: picked})
            break  # the list changed: the other choices show again on the next run
        if st.button("Skip this photo", key=f"skip_{number}"):
            st.session_state.pending_choices.pop(number)
            st.rerun()

st.subheader("Gallery")
people = gallery.people()
if not people:
    st.info("Nobody yet: add a person with a few photos above.")
outcome = st.session_state.pop("people_outcome", None)  # what the last change did, said after its rerun
if outcome is not None:
    (st.success if outcome[0] else st.error)(outcome[1])
    if outcome[0]:
        st.toast(outcome[1])
edition = st.session_state.get("people_edition", 0)  # new after every change: boxes show what is stored


def change(action, *args, done: str, open_after: str | None = None) -> None:
    """Run a gallery change, then rerun saying what happened, with ``open_after``'s section open
    (on a refusal, the section the change came from); another page may have changed or deleted
    the person meanwhile."""
    try:
        action(*args)
        st.session_state.people_outcome = (True, done)
    except GalleryError as error:
        st.session_state.people_outcome = (False, f"Nothing changed: {error}")
        open_after = st.session_state.get("people_open")
    st.session_state.people_open = open_after
    st.session_state.people_edition = edition + 1
    st.rerun()


for person in people:
    opened = st.session_state.get("people_open") == person.name
    with st.expander(f"{person.name} · {person.photos} photo(s)", expanded=opened):
        try:
            photos = gallery.photos(person.name)
        except GalleryError:
            continue  # deleted by another page since people() was read
        columns = st.columns(6)
        for i, photo in enumerate(photos):
            with columns[i % 6]:
                st.image(photo.thumbnail_jpeg, width=96)
                st.text(photo.source[:40])
                if st.button("Remove", key=f"remove_{photo.id}"):
                    st.session_state.people_open = person.name
                    change(gallery.delete_photo, photo.id, done=f"Removed a photo of {person.name}.", open_after=person.name)
        # Keyed by the name and the edition: a box shows the stored name again after any change,
        # a refused rename included, and after another page renamed the person.
        name_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
        new_name = name_column.text_input("Rename to", value=person.name, max_chars=100, key=f"rename_{person.id}_{person.name}_{edition}")
        # Never disabled: a box's new text reaches the server with the click itself (on blur), not before.
        if button_column.button("Rename", key=f"rename_do_{person.id}"):
            st.session_state.people_open = person.name
            if new_name.strip() == person.name:
                st.info("Type the new name in the box first.")
            else:
                change(gallery.rename, person.name, new_name, done=f"Renamed {person.name} to {new_name.strip()}.", open_after=new_name.strip())
        confirm = st.checkbox("Yes, delete every photo and encoding of this person", key=f"confirm_{person.id}")
        if st.button("Delete person", key=f"delete_{person.id}", disabled=not confirm, type="primary"):
            change(gallery.forget, person.name, done=f"Deleted {person.name} with every photo and encoding.")
with st.expander("How well recognition tells the enrolled people apart"):
    report = pair_report(gallery.encodings(encoder.name), tolerance, {person.name for person in people})
    if not len(report.same) or not len(report.different):
        st.caption("Enroll two photos of one person and one of somebody else to see how far apart they are.")
    else:
        import altair as alt
        import pandas as pd

        pairs = pd.DataFrame({"distance": np.r_[report.same, report.different],
                              "pair": ["same person"] * len(report.same) + ["different people"] * len(report.different)})  # fmt: skip
        bars = alt.Chart(pairs).mark_bar(opacity=0.6).encode(
            alt.X("distance:Q", bin=alt.Bin(maxbins=40), title="distance between two enrolled photos"),
            alt.Y("count()", stack=None, title="pairs"), alt.Color("pair:N", title=None))
        line = alt.Chart(pd.DataFrame({"tolerance": [tolerance]})).mark_rule(color="red", strokeDash=[4, 3]).encode(x="tolerance:Q")
        st.altair_chart(bars + line, width="stretch")
        st.caption("Every pair of enrolled photos: the red line is the tolerance. Pairs of one person should lie "
                   "left of it, pairs of two people right of it.")  # fmt: skip
        scores = st.columns(3)
        scores[0].metric("Precision", f"{report.precision:.0%}", help="Of the pairs within the tolerance, the share of one person's.")
        scores[1].metric("Recall", f"{report.recall:.0%}", help="Of one person's pairs, the share within the tolerance.")
        scores[2].metric("F1", f"{report.f1:.2f}")
        for photo_id, person_name, other, own, nearer in report.suspects:
            source = next((photo.source for photo in gallery.photos(person_name) if photo.id == photo_id), f"photo {photo_id}")
            st.warning(f"A photo of {person_name} ({source}) lies nearer to {other} ({nearer:.2f}) than to "
                       f"{person_name}'s other photos ({own:.2f}): is it labelled right?")  # fmt: skip

st.subheader("Visitors")
visitors = gallery.visitors()
if not visitors:
    st.caption("No visitors. Tick Recognition, then 'Remember visitors', on the Live or Video page to group the faces "
               "nobody enrolled into visitors as they are seen.")  # fmt: skip
for visitor in visitors:
    seen = f"first seen {time.strftime('%Y-%m-%d %H:%M', time.localtime(visitor.first_seen or 0))}, last seen " \
           f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(visitor.last_seen or 0))}"  # fmt: skip
    with st.expander(f"{visitor.name} · {visitor.visits} visit(s) · {seen}"):
        try:
            crops = gallery.photos(visitor.name)
        except GalleryError:
            continue  # named, merged or forgotten by another page since visitors() was read
        columns = st.columns(6)
        for i, crop in enumerate(crops):
            columns[i % 6].image(crop.thumbnail_jpeg, width=96)
        name_column, merge_column, forget_column = st.columns(3)
        with name_column:
            given = st.text_input("Name", max_chars=100, key=f"visitor_name_{visitor.id}", placeholder="Who is this?")
            if st.button("Name this visitor", key=f"visitor_do_name_{visitor.id}", disabled=not given.strip()):
                change(gallery.name_visitor, visitor.name, given, done=f"{visitor.name} is now {given.strip()}.", open_after=given.strip())
        with merge_column:
            others = [other.name for other in visitors if other.name != visitor.name]
            if others:
                into = st.selectbox("Same person as", others, key=f"visitor_merge_into_{visitor.id}")
                if st.button("Merge", key=f"visitor_merge_{visitor.id}"):
                    change(gallery.merge_visitors, into, visitor.name, done=f"Merged {visitor.name} into {into}.")
        with forget_column:
            if st.button("Forget this visitor", key=f"visitor_forget_{visitor.id}"):
                change(gallery.forget, visitor.name, done=f"Forgot {visitor.name}.")
if visitors:
    days = st.number_input("Forget visitors not seen for (days)", min_value=0, max_value=3650, value=30, key="visitors_older_than",
                           help="0 forgets every visitor.")  # fmt: skip
    if st.button("Forget those visitors"):
        change(gallery.forget_visitors, float(days), done="Forgot the visitors not seen for that long.")
st.caption(f"Gallery: `{gallery.location}` (set VISION_LAB_GALLERY to a file or a postgresql:// URL to use another)")
