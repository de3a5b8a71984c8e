"""People: the gallery that recognition names faces from (enroll, choose faces, rename, delete, tolerance)."""

import time
from typing import NamedTuple

import numpy as np
import streamlit as st

from core.analysis.recognition import (
    ENCODERS,
    Enrollment,
    PhotoSource,
    Snapshot,
    active_encoder,
    draw_choices,
    enroll,
    gallery_tolerance,
    pair_report,
    photos_needing_reencoding,
    reencode_gallery,
    set_gallery_tolerance,
)
from core.faces import Box
from core.images import load_image
from core.store.gallery import GalleryError, GalleryUnavailable, Person, Photo
from pages._widgets import app_gallery

CARDS_PER_ROW = 3


class Choice(NamedTuple):
    """A photo showing several faces, waiting for the user to pick the one to enroll (or to skip it)."""

    id: int
    person: str
    source: str
    data: PhotoSource  # what is enrolled: the upload's bytes, or a live Snapshot
    image: np.ndarray  # what is shown (BGR)
    boxes: list[Box]


def run_enrollment(name: str, photos: list[tuple[str, PhotoSource]], place: str, face_indices: dict[int, int] | None = None) -> bool:
    """Enroll, keep what became of each photo to be said at ``place`` after the rerun that follows,
    and queue the photos showing several faces for a choice; whether anything was saved or queued."""
    try:
        with st.spinner("Finding and encoding the faces..."):
            enrollment = enroll(gallery, name, photos, face_indices)
    except GalleryError as error:
        st.session_state.enroll_outcome = (place, f"Nothing was saved: {error}")
        return False
    for (_, data), photo in zip(photos, enrollment.photos):
        if photo.needs_choice:
            st.session_state.choice_serial = serial = st.session_state.get("choice_serial", 0) + 1
            image = data.image if isinstance(data, Snapshot) else load_image(data)
            st.session_state.pending_choices.append(Choice(serial, enrollment.name, photo.source, data, image, photo.boxes))
    st.session_state.enroll_outcome = (place, enrollment)
    return enrollment.written or any(photo.needs_choice for photo in enrollment.photos)


def show_outcome(place: str) -> None:
    """What the last enrollment started at ``place`` did: each photo's face crop, accepted or why not."""
    if st.session_state.get("enroll_outcome", ("",))[0] != place:
        return
    outcome: Enrollment | str = st.session_state.pop("enroll_outcome")[1]
    if isinstance(outcome, str):
        st.error(outcome)
        return
    for photo in outcome.photos:
        left, right = st.columns([1, 4])
        if photo.thumbnail_jpeg:
            left.image(photo.thumbnail_jpeg, width=96)
        if photo.accepted:
            right.text(f"{photo.source}: accepted")
        else:
            right.text(photo.source)
            right.warning(photo.reason)
    choosing = any(photo.needs_choice for photo in outcome.photos)
    if outcome.written:
        st.success(f"{outcome.accepted} photo(s) saved for {outcome.name}.")
        st.toast(f"Saved: {outcome.name}")
    elif not choosing:
        st.error("Nothing was saved: no photo was usable.")
    if choosing:
        st.info("Some photos show several faces: pick the face to enroll just below.")


def face_chooser(choice: Choice) -> None:
    """The faces of one photo, numbered, the picked one highlighted; Enroll or Skip takes it away."""
    with st.container(border=True):
        st.text(f"{choice.source} for {choice.person}: which face is theirs?")
        picked = st.radio("Face", list(range(len(choice.boxes))), format_func=lambda i: f"face {i + 1}", horizontal=True,
                          key=f"pick_{choice.id}")  # fmt: skip
        st.image(draw_choices(choice.image, choice.boxes, picked), channels="BGR", width=480)
        with st.container(horizontal=True):
            enrolling = st.button("Enroll this face", key=f"choose_{choice.id}", type="primary")
            skipping = st.button("Skip this photo", key=f"skip_{choice.id}")
        if enrolling or skipping:
            st.session_state.pending_choices = [other for other in st.session_state.pending_choices if other.id != choice.id]
            if enrolling:
                run_enrollment(choice.person, [(choice.source, choice.data)], "upload", {0: picked})
            st.rerun()  # the outcome is said there, and this chooser is gone


def live_snapshot(image: np.ndarray, seen_at: float, keep: bool) -> tuple[float, Snapshot]:
    """The Live frame previewed here, with its faces found once (per frame, by when it was seen) so
    that the preview and its enrollment agree; ``keep``: the one previewed before, though a newer
    frame came (the user enrolls the frame they saw)."""
    shown = st.session_state.get("live_snapshot")
    if shown is None or (not keep and shown[0] != seen_at):
        shown = st.session_state.live_snapshot = (seen_at, Snapshot.of(image))
    return shown


def change(action, *args, done: str, open_after: str | None = None) -> None:
    """Run a gallery change, then rerun saying what happened, with ``open_after``'s card open
    (on a refusal, the card the change came from); another page may have changed or deleted
    the person meanwhile."""
    try:
        action(*args)
        st.session_state.people_outcome = (True, done)
    except GalleryError as error:
        st.session_state.people_outcome = (False, f"Nothing changed: {error}")
        open_after = st.session_state.get("people_open")
    st.session_state.people_open = open_after
    st.session_state.people_edition = st.session_state.get("people_edition", 0) + 1
    st.rerun()


def person_card(person: Person) -> None:
    """A person's card: their first face crop, name and number of photos; Manage opens the rest."""
    try:
        photos = gallery.photos(person.name)
    except GalleryError:
        return  # deleted by another page since people() was read
    with st.container(border=True):
        avatar, about = st.columns([1, 2], vertical_alignment="center")
        if photos:
            avatar.image(photos[0].thumbnail_jpeg, width=72)
        about.markdown(f"**{person.name}**")  # names hold no markdown characters (validate_name)
        about.caption(f"{len(photos)} photo(s)")
        edition = st.session_state.get("people_edition", 0)  # new after every change: the open card is the changed one
        if st.toggle("Manage", value=st.session_state.get("people_open") == person.name, key=f"manage_{person.id}_{edition}"):
            manage(person, photos, edition)


def manage(person: Person, photos: list[Photo], edition: int) -> None:
    """A person's photos (each with Remove), Rename with its button, and Delete after a confirmation."""
    columns = st.columns(2)  # a card is a third of the page wide
    for i, photo in enumerate(photos):
        with columns[i % 2]:
            st.image(photo.thumbnail_jpeg, width="stretch")
            st.caption(photo.source[:40])
            if st.button("Remove", key=f"remove_{photo.id}"):
                change(gallery.delete_photo, photo.id, done=f"Removed a photo of {person.name}.", open_after=person.name)
    # Keyed by the name and the edition: a box shows the stored name again after any change,
    # a refused rename included, and after another page renamed the person.
    new_name = st.text_input("Rename to", value=person.name, max_chars=100, key=f"rename_{person.id}_{person.name}_{edition}")
    # Never disabled: a box's new text reaches the server with the click itself (on blur), not before.
    if st.button("Rename", key=f"rename_do_{person.id}"):
        st.session_state.people_open = person.name
        if new_name.strip() == person.name:
            st.info("Type the new name in the box first.")
        else:
            change(gallery.rename, person.name, new_name, done=f"Renamed {person.name} to {new_name.strip()}.", open_after=new_name.strip())
    confirm = st.checkbox("Yes, delete every photo and encoding of this person", key=f"confirm_{person.id}")
    if st.button("Delete person", key=f"delete_{person.id}", disabled=not confirm, type="primary"):
        change(gallery.forget, person.name, done=f"Deleted {person.name} with every photo and encoding.")


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
    if not name.strip():
        st.error("Nothing was saved: type the person's name first (your photos are kept).")
    elif uploads:
        if run_enrollment(name, [(f.name, f.getvalue()) for f in uploads], "upload"):
            st.session_state.enroll_form = form + 1  # the next run shows an empty form
        st.rerun()
    else:
        try:
            person = gallery.add_person(name)
        except GalleryError as error:
            st.error(f"Nothing was saved: {error}")
        else:
            st.session_state.enroll_form = form + 1
            st.session_state.people_outcome = (True, f"Saved {person.name}, with no photo yet: add some to have them recognised.")
            st.session_state.people_open = person.name
            st.rerun()
show_outcome("upload")
if st.session_state.pending_choices:
    st.subheader("Photos with several faces: pick one")
    for choice in list(st.session_state.pending_choices):
        face_chooser(choice)

st.subheader("Enroll the face on the Live page")
live = st.session_state.get("live_stream")
latest = live.latest() if live is not None else None
if latest is None:
    st.info("Start the camera on the Live page: the face it shows can then be enrolled here under a name.")
else:
    preview = st.empty()  # filled once the form says whether the frame shown before is being enrolled
    with st.form("enroll_live"):
        live_name = st.text_input("Name", max_chars=100, key="live_name")
        enroll_live = st.form_submit_button("Enroll the face in this frame")
    seen_at, snapshot = live_snapshot(latest.image, latest.seen_at, keep=enroll_live)
    age_s = time.monotonic() - seen_at
    when = "now" if age_s < 2 else f"{age_s:.0f} s ago (the camera stops when you leave the Live page)"
    preview.image(draw_choices(snapshot.image, [face.box for face in snapshot.faces]), channels="BGR", width=480,
                  caption=f"Last frame of the Live page, {when}: {len(snapshot.faces)} face(s)")  # fmt: skip
    if enroll_live:
        run_enrollment(live_name, [("live snapshot", snapshot)], "live")
        st.rerun()
    show_outcome("live")

st.subheader("Gallery")
people = gallery.people()
outcome = st.session_state.pop("people_outcome", None)  # what the last change did, said after its rerun
if outcome is not None:
    (st.success if outcome[0] else st.error)(outcome[1])
    if outcome[0]:
        st.toast(outcome[1])
if not people:
    st.info("Nobody yet: add a person with a few photos above.")
else:
    query = st.text_input("Search people", key="people_search", placeholder="Part of a name").strip().casefold()
    found = [person for person in people if query in person.name.casefold()]
    if not found:
        st.info("No one matches: clear the search to see everybody.")
    for row in range(0, len(found), CARDS_PER_ROW):
        for column, person in zip(st.columns(CARDS_PER_ROW), found[row : row + CARDS_PER_ROW]):
            with column:
                person_card(person)
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
