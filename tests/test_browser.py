"""End to end, as a person would: the real server, Debian's Chromium driven by Playwright, and a
fake camera fed from a clip of real face photos.

Runs inside a loopback-only network namespace (``make test`` puts the whole suite in one, see
scripts/loopback_netns.sh), so no WebRTC traffic can leave the machine. A failing test leaves a
screenshot and the server's log in its tmp folder and names them in the failure.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.stream.draw import BOX_COLOR, POINT_COLOR, UNKNOWN_COLOR
from core.stream.synthetic import face_clip, write_video, write_y4m
from tests.conftest import shared_data
from tests.e2e import (
    CHROMIUM,
    IN_LOOPBACK_NAMESPACE,
    app_server,
    camera_flags,
    color_pixels,
    launch,
    metric,
    received_frame,
    start_stream,
    wait_until,
    webrtc_component,
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (`make test` installs it with apt)"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The app's server (as ``make run`` starts it) on a free loopback port; yields (base URL, log file)."""
    with app_server(tmp_path_factory.mktemp("server")) as running:
        yield running.url, running.log


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory, face_photos) -> Path:
    """Three seconds of two real faces drifting in front of a grey wall, as Chromium's fake camera."""
    path = tmp_path_factory.mktemp("camera") / "faces.y4m"
    return write_y4m(face_clip(face_photos[:6], n_frames=90, faces_per_frame=2), path)


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright, camera_clip):
    """Chromium whose camera is the clip, with camera access granted."""
    browser = launch(playwright, *camera_flags(camera_clip))
    yield browser
    browser.close()


@pytest.fixture
def page(browser, server, request, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        page.screenshot(path=str(shot), full_page=True)
        log_tail = server[1].read_text(errors="replace")[-3000:]
        print(f"\nscreenshot: {shot}\nserver log: {server[1]}\n{log_tail}")
    page.close()


# "live" first: a fresh server's first request for a page other than the home page is the case
# where Streamlit's legacy pages/ discovery used to bypass streamlit_app.py (see scripts/serve.py).
@pytest.mark.parametrize("path,heading", [("live", "Live"), ("", "Vision Lab"), ("video", "Video"), ("photo", "Photo"), ("people", "People"), ("style", "Style transfer")])
def test_every_page_opens_through_the_app_navigation_without_an_exception(page, server, path, heading):
    page.goto(f"{server[0]}/{path}")
    page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)  # let the script run to its end
    assert page.locator('[data-testid="stException"]').count() == 0
    navigation = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert "Home" in navigation and "Live" in navigation and "streamlit app" not in navigation


def test_home_page_lists_models_and_their_sources(page, server):
    page.goto(server[0])
    page.get_by_role("heading", name="Models").wait_for(timeout=60_000)
    page.get_by_text("Every model, what it is used for", exact=False).click()
    table = page.locator('[data-testid="stDataFrame"]')
    table.wait_for(timeout=30_000)
    assert table.is_visible()
    box = table.bounding_box()
    assert box["height"] >= 36 * 10  # every row in view, not a small box that scrolls


def test_home_page_fits_a_phone_with_its_page_cards_one_under_another(browser, server):
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        phone.goto(server[0])
        phone.get_by_role("heading", name="Models").wait_for(timeout=60_000)
        links = phone.locator('[data-testid="stPageLink"]')
        links.nth(4).wait_for(timeout=30_000)
        boxes = [links.nth(i).bounding_box() for i in range(links.count())]
        assert len(boxes) == 5
        assert all(b["x"] + b["width"] <= 390 for b in boxes)
        assert [b["y"] for b in boxes] == sorted(b["y"] for b in boxes) and len({round(b["y"]) for b in boxes}) == 5
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the screen
    finally:
        phone.close()


def test_photo_page_analyses_an_uploaded_photo_and_offers_its_json(page, server):
    photo = shared_data("faces_identities_knn_examples/test/obama_and_biden.jpg")
    page.goto(f"{server[0]}/photo")
    page.get_by_role("heading", name="Photo").first.wait_for(timeout=60_000)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(photo))
    # Biden, Obama, and a woman at the bottom right edge (YuNet finds her; Haar and HOG did not)
    wait_until(lambda: metric(page, "Faces") == 3, 180, "the Photo page to report 3 faces")
    page.locator('[data-testid="stDataFrame"]').first.wait_for(state="visible", timeout=30_000)  # one row per face
    page.locator('[data-testid="stImage"] img').first.wait_for(state="visible", timeout=30_000)  # the annotated photo
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the JSON").click()
    record = json.loads(Path(download.value.path()).read_text())
    assert record["image"] == photo.name and len(record["faces"]) == 3
    assert page.locator('[data-testid="stException"]').count() == 0


def person_card(page, name: str):
    """The People page's card of ``name``: the innermost block that holds the name and its Manage toggle."""
    return (page.locator('[data-testid="stVerticalBlock"]').filter(has=page.get_by_text(name, exact=True))
            .filter(has=page.get_by_text("Manage", exact=True)).last)  # fmt: skip


def open_card(page, name: str, photos: int):
    """Wait for ``name``'s card to count ``photos`` photo(s), open its controls with Manage, and return it."""
    card = person_card(page, name)
    card.get_by_text(f"{photos} photo(s)", exact=True).wait_for(timeout=60_000)
    card.get_by_text("Manage", exact=True).click()
    card.get_by_label("Rename to").wait_for(timeout=30_000)
    return card


def test_people_page_enrolls_uploaded_photos_renames_and_deletes_the_person(page, server):
    photos = [shared_data(f"faces_identities/Ariel_Sharon/{n}.jpg") for n in (1, 2)]
    page.goto(f"{server[0]}/people")
    page.get_by_role("heading", name="People").first.wait_for(timeout=60_000)
    page.get_by_label("Name", exact=True).first.fill("Ariel Sharon")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([str(p) for p in photos])
    for photo in photos:  # uploaded: Save clicked before that saves the name alone
        page.get_by_text(photo.name, exact=True).wait_for(timeout=30_000)
    page.get_by_role("button", name="Save").click()
    page.get_by_text("2 photo(s) saved for Ariel Sharon.").wait_for(timeout=120_000)
    page.locator('[data-testid="stImage"] img').nth(1).wait_for(state="visible", timeout=30_000)  # the two face crops
    search = page.get_by_label("Search people")
    search.fill("nobody like this")
    search.press("Enter")
    page.get_by_text("No one matches", exact=False).wait_for(timeout=30_000)
    search.fill("ARIEL")  # any part of the name, in any case
    search.press("Enter")
    card = open_card(page, "Ariel Sharon", 2)
    assert card.locator('[data-testid="stImage"] img').count() == 3  # the avatar and the two photos
    rename = card.get_by_label("Rename to")
    rename.fill("Ariel S")  # nothing is renamed until the button is pressed
    card.get_by_role("button", name="Rename").click(timeout=30_000)
    page.get_by_text("Renamed Ariel Sharon to Ariel S.").first.wait_for(timeout=30_000)
    person_card(page, "Ariel S").get_by_label("Rename to").wait_for(timeout=30_000)  # its card stays open
    confirm = page.get_by_role("checkbox", name="Yes, delete every photo and encoding of this person")
    delete = page.get_by_role("button", name="Delete person")
    page.get_by_text("Yes, delete every photo and encoding of this person").click()
    wait_until(lambda: confirm.is_checked() and delete.is_enabled(), 30, "the confirmation to enable Delete")
    delete.click()
    wait_until(lambda: person_card(page, "Ariel S").count() == 0, 30, "the person to disappear")
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_save_without_a_name_keeps_the_photos_and_a_saved_form_is_cleared(page, server):
    from core.store.gallery import open_gallery

    photo = shared_data("faces_identities/Hugo_Chavez/1.jpg")
    try:
        page.goto(f"{server[0]}/people")
        page.get_by_role("heading", name="People").first.wait_for(timeout=60_000)
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([str(photo)])
        chips = page.locator('[data-testid="stFileChipName"]')
        wait_until(lambda: chips.count() == 1, 30, "the photo to be attached")
        page.get_by_role("button", name="Save").click()
        page.get_by_text("type the person's name first (your photos are kept)", exact=False).wait_for(timeout=60_000)
        assert chips.count() == 1 and chips.first.inner_text() == photo.name  # still attached: nothing to upload again
        page.get_by_label("Name", exact=True).first.fill("Hugo Chavez")
        page.get_by_role("button", name="Save").click()
        page.get_by_text("1 photo(s) saved for Hugo Chavez.").wait_for(timeout=120_000)  # shown under a fresh form
        assert page.get_by_label("Name", exact=True).first.input_value() == "" and chips.count() == 0
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        with open_gallery(server[1].parent / "gallery.sqlite3") as gallery:
            if gallery.person("Hugo Chavez"):
                gallery.forget("Hugo Chavez")  # no test relies on another's people


def test_two_people_pages_at_once_enroll_one_person_and_never_undo_each_other(browser, server):
    from core.store.gallery import open_gallery

    pages = [browser.new_page(viewport={"width": 1280, "height": 900}) for _ in range(2)]
    try:
        for number, tab in enumerate(pages, 1):
            tab.goto(f"{server[0]}/people")
            tab.get_by_role("heading", name="People").first.wait_for(timeout=60_000)
            tab.get_by_label("Name", exact=True).first.fill("Gerhard Schroeder" if number == 1 else "GERHARD SCHROEDER")
            tab.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
                str(shared_data(f"faces_identities/Gerhard_Schroeder/{number}.jpg")))
            tab.get_by_text(f"{number}.jpg", exact=True).wait_for(timeout=30_000)  # uploaded: Save would miss it before
        for tab in pages:  # both at once
            tab.get_by_role("button", name="Save").click()
        for tab in pages:
            tab.get_by_text(re.compile(r"1 photo\(s\) saved for G")).wait_for(timeout=120_000)
        with open_gallery(server[1].parent / "gallery.sqlite3", readonly=True) as gallery:
            stored = [(p.name, p.photos) for p in gallery.people() if "schroeder" in p.name.lower()]
        assert len(stored) == 1 and stored[0][1] == 2  # one person; the save that committed first named them
        name = stored[0][0]
        assert name in ("Gerhard Schroeder", "GERHARD SCHROEDER")
        first, second = pages
        first.reload()
        second.reload()
        open_card(first, name, 2)
        open_card(second, name, 2)
        rename = first.get_by_label("Rename to")
        rename.fill("Gerhard S")
        first.get_by_role("button", name="Rename").click(timeout=30_000)
        person_card(first, "Gerhard S").get_by_text("2 photo(s)", exact=True).wait_for(timeout=30_000)
        second.get_by_text("Yes, delete every photo and encoding of this person").click()  # a rerun of the stale page
        person_card(second, "Gerhard S").get_by_text("2 photo(s)", exact=True).wait_for(timeout=30_000)
        with open_gallery(server[1].parent / "gallery.sqlite3", readonly=True) as gallery:
            assert gallery.person("Gerhard S") is not None and gallery.person("Gerhard Schroeder") is None
        for tab in pages:
            assert tab.locator('[data-testid="stException"]').count() == 0
    finally:
        for tab in pages:
            tab.close()


def test_people_page_encodes_again_the_photos_of_another_encoder(page, server):
    from core.analysis import recognition
    from core.images import load_image
    from core.store.gallery import NewPhoto, open_gallery

    if recognition.active_encoder() != "sface":
        pytest.skip("SFace is not installed: dlib is the only encoder")
    image = load_image(shared_data("faces_identities/Tony_Blair/1.jpg"))
    face = recognition.find_faces(image)[0]
    box = face.box
    dlib_encoding = recognition.encode_face(image, face, "dlib")
    with open_gallery(server[1].parent / "gallery.sqlite3") as gallery:  # as a gallery enrolled before SFace
        gallery.add_photos("Tony Blair", [NewPhoto("1.jpg", box, recognition.face_thumbnail(image, box), dlib_encoding, "dlib")])
    page.goto(f"{server[0]}/live")
    page.locator('[data-testid="stMain"]').get_by_text("Recognition (names)").click(timeout=60_000)
    page.get_by_text(re.compile(r"1 enrolled photo\(s\) were encoded by another face encoder")).wait_for(timeout=60_000)
    page.goto(f"{server[0]}/people")
    page.get_by_text(re.compile(r"1 photo\(s\) were encoded by another face encoder")).wait_for(timeout=60_000)
    page.get_by_role("button", name="Encode them again").click()
    page.get_by_text("1 photo(s) encoded again.").wait_for(timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    with open_gallery(server[1].parent / "gallery.sqlite3") as gallery:
        assert gallery.encoder_counts().get("dlib", 0) == 0 and gallery.encodings("sface").names.count("Tony Blair") == 1


def test_photo_page_explains_a_file_that_is_not_a_photo(page, server):
    page.goto(f"{server[0]}/photo")
    page.get_by_role("heading", name="Photo").first.wait_for(timeout=60_000)
    broken = {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff not really a jpeg"}
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(broken)
    page.get_by_text(re.compile("broken.jpg: not a readable image")).wait_for(timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0 and metric(page, "Faces") is None


def png(pixels, mode: str | None = None) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


def hostile_uploads() -> list[dict]:
    """The reliability probe's upload rows 1 and 2: a 2x2 image, a 1x3000 strip, and a 16-bit
    grayscale PNG of a face (Pillow's own conversion turns it white)."""
    import numpy as np
    from PIL import Image

    face = np.asarray(Image.open(shared_data("faces_identities/Colin_Powell/1.jpg")).convert("L"), np.uint16) * 257
    files = {"tiny.png": png(np.zeros((2, 2, 3), np.uint8)), "strip.png": png(np.zeros((1, 3000, 3), np.uint8)),
             "gray16.png": png(face)}  # fmt: skip
    return [{"name": name, "mimeType": "image/png", "buffer": data} for name, data in files.items()]


def test_people_page_refuses_tiny_uploads_one_by_one_and_enrolls_a_16_bit_grayscale_photo(page, server):
    from core.store.gallery import open_gallery

    page.goto(f"{server[0]}/people")
    page.get_by_role("heading", name="People").first.wait_for(timeout=60_000)
    page.get_by_label("Name", exact=True).first.fill("Colin Powell")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(hostile_uploads())
    for upload in hostile_uploads():  # uploaded: Save clicked before that saves the name alone
        page.get_by_text(upload["name"], exact=True).wait_for(timeout=30_000)
    page.get_by_role("button", name="Save").click()
    page.get_by_text("1 photo(s) saved for Colin Powell.").wait_for(timeout=120_000)
    page.get_by_text("gray16.png: accepted").wait_for(timeout=30_000)
    assert page.get_by_text(re.compile(r"image of 2x2 pixels is too small")).count() == 1
    assert page.get_by_text(re.compile(r"image of 3000x1 pixels is too small")).count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0
    with open_gallery(server[1].parent / "gallery.sqlite3", readonly=True) as gallery:
        assert [photo.source for photo in gallery.photos("Colin Powell")] == ["gray16.png"]


def test_photo_page_explains_a_tiny_upload_and_finds_the_face_of_a_16_bit_grayscale_one(page, server):
    tiny, _, gray16 = hostile_uploads()
    page.goto(f"{server[0]}/photo")
    page.get_by_role("heading", name="Photo").first.wait_for(timeout=60_000)
    uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    uploader.set_input_files(tiny)
    page.get_by_text(re.compile("tiny.png: image of 2x2 pixels is too small")).wait_for(timeout=60_000)
    uploader.set_input_files(gray16)
    wait_until(lambda: metric(page, "Faces") == 1, 120, "the Photo page to find the face of the 16-bit photo")
    assert page.locator('[data-testid="stException"]').count() == 0


def test_pages_say_when_there_is_no_face_and_when_nobody_is_enrolled(page, server):
    import numpy as np

    from core.store.gallery import open_gallery

    with open_gallery(server[1].parent / "gallery.sqlite3") as gallery:  # no test relies on another's people
        for person in gallery.people():
            gallery.forget(person.name)
    page.goto(f"{server[0]}/photo")
    page.get_by_role("heading", name="Photo").first.wait_for(timeout=60_000)
    blank = {"name": "wall.png", "mimeType": "image/png", "buffer": png(np.full((200, 300, 3), 180, np.uint8))}
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(blank)
    page.get_by_text("No face found in this photo.").wait_for(timeout=60_000)
    page.goto(f"{server[0]}/live")
    page.locator('[data-testid="stMain"]').get_by_text("Recognition (names)", exact=True).click(timeout=60_000)
    page.get_by_text("Nobody is enrolled yet: every face shows 'No match'.").wait_for(timeout=60_000)
    page.get_by_role("link", name="Enroll people on the People page").click()
    page.get_by_role("heading", name="People").first.wait_for(timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_photo_page_analyses_a_photo_taken_with_the_camera(page, server):
    page.goto(f"{server[0]}/photo")
    page.get_by_text("Take a photo").click(timeout=60_000)
    camera = page.locator('[data-testid="stCameraInput"] video').first
    wait_until(lambda: camera.count() and camera.evaluate("v => v.readyState >= 2 && v.currentTime > 0.5"), 30,
               "the camera to show its picture")  # a photo taken before that is black
    page.get_by_role("button", name="Take Photo").click(timeout=30_000)  # the fake camera shows two faces
    wait_until(lambda: (metric(page, "Faces") or 0) >= 1, 120, "the Photo page to find a face in the camera's photo")
    assert page.locator('[data-testid="stException"]').count() == 0


def test_people_page_lets_the_user_pick_one_face_of_a_group_photo(page, server):
    from core.store.gallery import open_gallery

    group = shared_data("faces_identities_knn_examples/test/obama_and_biden.jpg")  # Biden left, Obama right
    biden = shared_data("faces_identities_knn_examples/train/biden/biden.jpg")
    enroll = page.get_by_role("button", name="Enroll this face")
    idle = page.locator('[data-testid="stStatusWidget"]')

    def save(name: str, *photos) -> None:
        page.get_by_label("Name", exact=True).first.fill(name)
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([str(p) for p in photos])
        wait_until(lambda: page.locator('[data-testid="stFileChipName"]').count() == len(photos), 30, "the photos to be attached")
        page.get_by_role("button", name="Save").click()
        page.get_by_text(re.compile(r"\d faces found: pick the one to enroll")).wait_for(timeout=120_000)

    def pick_face_2() -> None:
        page.get_by_text("face 2", exact=True).click()
        choice = page.get_by_role("radio", name="face 2")
        # one chooser (a rerun briefly keeps the replaced one beside it), face 2 picked, its badge redrawn
        wait_until(lambda: choice.evaluate_all("radios => radios.length === 1 && radios[0].checked") and idle.count() == 0,
                   30, "face 2 to be chosen")  # fmt: skip
        enroll.click()

    try:
        page.goto(f"{server[0]}/people")
        page.get_by_role("heading", name="People").first.wait_for(timeout=60_000)
        save("Barack Obama", group)
        pick_face_2()
        page.get_by_text("1 photo(s) saved for Barack Obama.").wait_for(timeout=120_000)
        wait_until(lambda: enroll.count() == 0 and idle.count() == 0, 30, "the chooser to go once used")
        page.wait_for_timeout(1000)
        assert enroll.count() == 0  # gone for good, not between two runs
        person_card(page, "Barack Obama").get_by_text("1 photo(s)", exact=True).wait_for(timeout=30_000)
        # The same photo for somebody else, with one of his own: his goes through, and Obama's face is refused.
        save("Joe Biden", group, biden)
        page.get_by_text("1 photo(s) saved for Joe Biden.").wait_for(timeout=30_000)
        pick_face_2()
        page.get_by_text("This photo is already enrolled for Barack Obama.").wait_for(timeout=120_000)
        wait_until(lambda: enroll.count() == 0 and idle.count() == 0, 30, "the chooser to go once used")
        assert page.locator('[data-testid="stException"]').count() == 0
        with open_gallery(server[1].parent / "gallery.sqlite3") as gallery:  # the server's own gallery
            (photo,) = gallery.photos("Barack Obama")
            assert [p.source for p in gallery.photos("Joe Biden")] == ["biden.jpg"]
        assert photo.box.left > 1000  # the second face from the left of the 2000-px photo, not Biden's
    finally:
        with open_gallery(server[1].parent / "gallery.sqlite3") as gallery:
            for name in ("Barack Obama", "Joe Biden"):
                if gallery.person(name):
                    gallery.forget(name)  # no test relies on another's people


def test_video_page_annotates_an_uploaded_video_then_plays_it(page, server, tmp_path, face_photos):
    """Checked on upload, annotated, played and downloaded; still there after a visit to Home,
    annotated again with another processor, then removed."""
    frames = list(face_clip(face_photos[:2], 30, size=(320, 240), face_side=160))
    clip = write_video(frames, tmp_path / "clip.mp4", fps=15, audio_codec="aac")
    page.goto(f"{server[0]}/video")
    page.get_by_role("heading", name="Video").first.wait_for(timeout=60_000)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(clip))
    summary = page.get_by_text("clip.mp4: 2.0 s, 320x240, 15 fps, with sound", exact=True)
    summary.wait_for(timeout=30_000)  # before anything is annotated
    page.get_by_role("button", name="Annotate", exact=True).click(timeout=30_000)
    result = page.get_by_text(re.compile(r"30 frames .* faces seen: 1;"))
    result.wait_for(timeout=180_000)
    video = page.locator('[data-testid="stVideo"]').first

    def playable() -> bool:
        return video.evaluate("v => v.readyState >= 1 && v.videoWidth === 320 && v.duration > 1.5")

    wait_until(playable, 30, "the annotated video to load in the browser")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the annotated video").click()
    assert download.value.suggested_filename == "clip-annotated.mp4"
    assert Path(download.value.path()).stat().st_size > 10_000
    first_run = video.get_attribute("src")

    go(page, "Home", heading="Vision Lab")
    go(page, "Video")
    summary.wait_for(timeout=30_000)  # the upload is kept, and so is its result
    result.wait_for(timeout=30_000)
    assert page.get_by_text(re.compile("^Kept from before")).count() == 1
    page.get_by_text("Age & gender", exact=True).click()
    page.get_by_role("button", name="Annotate again").click(timeout=30_000)
    wait_until(lambda: video.count() == 1 and video.get_attribute("src") != first_run, 180, "the second run's video")
    result.wait_for(timeout=30_000)
    page.get_by_role("button", name="Download the annotated video").wait_for(timeout=30_000)

    page.get_by_role("button", name="Remove this video").click()
    summary.wait_for(state="detached", timeout=30_000)
    assert video.count() == 0 and result.count() == 0
    assert page.get_by_role("button", name="Annotate", exact=True).is_disabled()
    assert page.locator('[data-testid="stException"]').count() == 0


def test_video_page_explains_videos_cut_short_during_upload(page, server, tmp_path, face_photos):
    from core.stream.pipeline import FramePipeline, PipelineConfig
    from core.stream.video import annotate_video

    frames = list(face_clip(face_photos[:2], 45, size=(320, 240), face_side=160))
    plain = write_video(frames, tmp_path / "plain.mp4", fps=15)  # its index (moov) comes last
    indexed_first = tmp_path / "faststart.mp4"  # the app's own output: index first, so the frames just stop
    annotate_video(plain, indexed_first, FramePipeline(PipelineConfig(detector="haar", processors=[])))
    page.goto(f"{server[0]}/video")
    page.get_by_role("heading", name="Video").first.wait_for(timeout=60_000)
    uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    cases = [
        ("plain.mp4", plain.read_bytes()[: plain.stat().st_size * 6 // 10], "not a readable video.*truncated"),
        ("faststart.mp4", indexed_first.read_bytes()[: indexed_first.stat().st_size * 6 // 10], "of the 45 frames .* truncated"),
        ("My notes.mp4", b"shopping list: milk, eggs\n" * 100, "not a readable video"),
    ]
    for name, data, words in cases:  # each is explained on upload, before any Annotate
        uploader.set_input_files({"name": name, "mimeType": "video/mp4", "buffer": data})
        error = page.locator('[data-testid="stAlert"]').filter(has_text=re.compile(f"^{re.escape(name)}: .*{words}"))
        error.wait_for(timeout=30_000)
        text = error.inner_text()
        assert "/tmp" not in text and "Errno" not in text and "upload.mp4" not in text, text
        assert page.get_by_role("button", name="Annotate", exact=True).is_disabled()
        assert page.get_by_role("button", name="Download the annotated video").count() == 0
    page.locator('[data-testid="stFileChipDeleteBtn"]').first.click()  # the uploader's own ✕ forgets it too
    error.wait_for(state="detached", timeout=30_000)
    assert page.get_by_role("button", name="Remove this video").count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0


def test_video_page_shows_progress_and_cancels(page, server, tmp_path, face_photos):
    frames = list(face_clip(face_photos[:2], 600, size=(320, 240), face_side=160))  # 40 s: long enough to cancel
    clip = write_video(frames, tmp_path / "long.mp4", fps=15)
    page.goto(f"{server[0]}/video")
    page.get_by_role("heading", name="Video").first.wait_for(timeout=60_000)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(clip))
    page.get_by_text("long.mp4: 40.0 s, 320x240, 15 fps, no sound", exact=True).wait_for(timeout=30_000)
    page.get_by_role("button", name="Annotate", exact=True).click(timeout=30_000)
    eta = re.compile(r"Annotating: [1-9]\d* / 600 frames · \d+ s elapsed · about (\d+ s|\d+ min \d\d s) left")
    page.get_by_text(eta).wait_for(timeout=60_000)  # the progress bar moves, with the time left
    preview = page.locator('[data-testid="stImage"] img').first  # the frame being annotated
    wait_until(lambda: preview.count() == 1 and preview.evaluate("i => i.complete && i.naturalWidth === 320"), 30,
               "the preview of the frame being annotated")  # fmt: skip
    first_preview = preview.get_attribute("src")
    wait_until(lambda: preview.get_attribute("src") != first_preview, 30, "the preview to follow the run")
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Cancelled: nothing was written.").wait_for(timeout=30_000)
    assert page.locator('[data-testid="stVideo"]').count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0


needs_webrtc = pytest.mark.skipif(not IN_LOOPBACK_NAMESPACE, reason="WebRTC runs only in a loopback-only network namespace: use `make test`")


def overlay_pixels(page, samples: int = 4) -> dict[str, int]:
    """Pixels of each overlay colour in the video the browser receives (the most over a few frames)."""
    counts: dict[str, int] = {}
    for _ in range(samples):
        frame = received_frame(page)
        for name, color in (("box", BOX_COLOR), ("points", POINT_COLOR), ("unknown", UNKNOWN_COLOR)):
            counts[name] = max(counts.get(name, 0), color_pixels(frame, color))
        page.wait_for_timeout(300)
    return counts


def tick(page, label: str, stage: str) -> None:
    """Tick a processor while streaming, and wait until the panel reports its stage on frames."""
    page.locator('[data-testid="stMain"]').get_by_text(label, exact=True).click(timeout=60_000)
    page.get_by_text(re.compile(rf"{stage} \d+\.\d ms")).wait_for(timeout=120_000)  # its models may load first
    page.wait_for_timeout(1000)


@needs_webrtc
def test_live_page_streams_the_camera_annotated(page, server):
    page.goto(f"{server[0]}/live")
    start_stream(page)
    wait_until(lambda: (metric(page, "Faces in view") or 0) >= 1, 30, "the live panel to report a face")
    wait_until(lambda: (metric(page, "Frames per second") or 0) > 0, 30, "the live panel to report fps > 0")
    detection = page.locator('[data-testid="stMain"]').get_by_text("Face detection", exact=True)
    detection.click()  # switched off while streaming: the next frames carry no face
    wait_until(lambda: metric(page, "Faces in view") == 0, 30, "faces to drop to 0 with detection off")
    detection.click()
    wait_until(lambda: (metric(page, "Faces in view") or 0) >= 1, 30, "faces to come back with detection on")
    page.get_by_text("Record", exact=True).click()  # the webcam's annotated stream, recorded
    page.get_by_text("Recording...").wait_for(timeout=30_000)
    page.wait_for_timeout(3000)
    page.get_by_text("Record", exact=True).click()
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile(r"Download the recording")).click(timeout=30_000)
    import av

    with av.open(download.value.path()) as recording:
        frames = [frame.to_ndarray(format="bgr24") for frame in recording.decode(video=0)]
    assert len(frames) > 30 and max(color_pixels(frame, BOX_COLOR) for frame in frames) > 300  # boxes drawn
    assert page.locator('[data-testid="stException"]').count() == 0


# Keeps every camera stream the page opens, so a test can stop it as an unplugged camera would.
KEEP_CAMERA_STREAMS = """
const open = navigator.mediaDevices && navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
if (open) navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = await open(constraints);
    (window.cameraStreams = window.cameraStreams || []).push(stream);
    return stream;
};
"""


@needs_webrtc
def test_a_stream_whose_camera_stops_says_so_and_restarts_with_one_button(page, server):
    page.add_init_script(KEEP_CAMERA_STREAMS)
    page.goto(f"{server[0]}/live")
    start_stream(page)
    wait_until(lambda: (metric(page, "Frames per second") or 0) > 0, 60, "the live panel to report fps > 0")
    webrtc_component(page).locator("video").first.evaluate(
        "() => window.cameraStreams.forEach(s => s.getTracks().forEach(t => t.stop()))")  # the camera is unplugged
    restart = page.get_by_role("button", name="Restart the stream")
    restart.wait_for(timeout=30_000)
    assert page.get_by_text(re.compile("The video stream (ended|stopped)")).count() == 1
    assert metric(page, "Frames per second") is None  # no stale numbers
    restart.click()
    try:
        wait_until(lambda: (metric(page, "Frames per second") or 0) > 0, 45, "the restarted stream to be processed again")
    except AssertionError:
        # Known flake, seen only late in the full suite: the component sometimes ignores the first
        # Restart (root cause not found); a person presses it again, and so does the test, once.
        restart.click(timeout=10_000)
        wait_until(lambda: (metric(page, "Frames per second") or 0) > 0, 90, "the stream restarted by a second press")
    assert restart.count() == 0
    webrtc_component(page).get_by_role("button", name=re.compile("stop", re.I)).wait_for(timeout=10_000)  # STOP is the user's again
    assert page.locator('[data-testid="stException"]').count() == 0


@needs_webrtc
def test_every_ticked_processor_shows_in_the_video_the_browser_receives(page, server):
    """Pixel checks on the received video, not the panel: boxes, then age & gender captions (filled
    labels in the box colour), keypoint dots, recognition's red "Unknown" boxes and labels (the one
    person enrolled is not in the clip), each appearing in the frames once ticked, while streaming."""
    from core.analysis.recognition import enroll
    from core.store.gallery import open_gallery

    with open_gallery(server[1].parent / "gallery.sqlite3") as gallery:
        photo = shared_data("faces_identities/George_W_Bush/1.jpg")
        assert enroll(gallery, "George W Bush", [(photo.name, photo)]).written
    page.goto(f"{server[0]}/live")
    start_stream(page)
    wait_until(lambda: (metric(page, "Faces in view") or 0) >= 1, 60, "the live panel to report a face")
    boxes = overlay_pixels(page)
    assert boxes["box"] > 300 and boxes["points"] < 30, boxes  # (some photos hold red: a flag, a tie)
    tick(page, "Age & gender", "age_gender")
    captions = overlay_pixels(page)
    assert captions["box"] > 1.5 * boxes["box"], (boxes, captions)  # a filled label under each box
    tick(page, "Facial keypoints (our CNN)", "keypoints")
    points = overlay_pixels(page)
    assert points["points"] > 100, (boxes, points)
    tick(page, "Recognition (names)", "recognition")
    names = overlay_pixels(page)
    assert names["unknown"] > boxes["unknown"] + 2000 and names["points"] > 100, (boxes, names)  # red "Unknown" boxes, labels
    assert page.get_by_text("failed and is skipped").count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0


@needs_webrtc
def test_effects_ticked_while_streaming_follow_the_faces_and_blur_hides_them(page, server):
    """The crown's gold appears in the received video once Effects is ticked (sunglasses and crown
    by default), and goes when the choice changes to blur, while streaming."""
    from core.analysis.effects import draw_crown  # noqa: F401  (the crown's gold: (30, 190, 250) BGR)

    gold = (30, 190, 250)
    page.goto(f"{server[0]}/live")
    start_stream(page)
    wait_until(lambda: (metric(page, "Faces in view") or 0) >= 1, 60, "the live panel to report a face")
    before = max(color_pixels(received_frame(page), gold, 25) for _ in range(3))
    tick(page, "Face effects and privacy blur", "effects")
    wait_until(lambda: color_pixels(received_frame(page), gold, 25) > before + 300, 30, "the crown in the received video")
    choices = page.locator('[data-testid="stMain"] [data-testid="stMultiSelect"] input')
    for _ in range(2):  # Backspace removes the last chosen effect: crown, then sunglasses
        choices.click()
        page.keyboard.press("Backspace")
        page.wait_for_timeout(1500)  # the rerun
    choices.click()
    page.keyboard.type("Blur")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    wait_until(lambda: color_pixels(received_frame(page), gold, 25) <= before + 100, 30, "the crown to go")
    page.get_by_text(re.compile(r"effects \d+\.\d ms")).wait_for(timeout=30_000)  # blur is drawn instead
    assert page.locator('[data-testid="stException"]').count() == 0


@needs_webrtc
def test_style_ticked_while_streaming_paints_the_video_the_browser_receives(page, server):
    """The fake camera's wall is flat grey; painted in the default style it is neither flat nor grey."""
    import numpy as np

    def wall(frame: np.ndarray) -> tuple[float, float]:
        patch = frame[8:72, 8:120].astype(float)  # the top-left corner: wall, never a face
        return float(np.abs(patch - patch.mean(axis=2, keepdims=True)).mean()), float(patch.std())  # colourfulness, texture

    page.goto(f"{server[0]}/live")
    start_stream(page)
    colour, texture = wall(received_frame(page))
    assert colour < 6 and texture < 8, (colour, texture)  # grey and flat, as the camera gives it
    tick(page, "Style (paint the video)", "style")
    wait_until(lambda: wall(received_frame(page))[0] > colour + 8, 30, "the painted wall in the received video")
    assert (metric(page, "Frames per second") or 0) > 0
    assert page.locator('[data-testid="stException"]').count() == 0


@needs_webrtc
def test_a_painting_the_user_uploads_becomes_the_live_style(page, server):
    import numpy as np

    painting = np.zeros((200, 200, 3), np.uint8)
    painting[:, ::10] = (0, 60, 255)  # thin stripes on black: the painted video turns dark, the camera's wall is mid-grey
    page.goto(f"{server[0]}/live")
    controls = page.locator('[data-testid="stMain"]')  # the Live page's controls sit beside the video
    controls.get_by_text("Style (paint the video)", exact=True).click(timeout=60_000)
    controls.get_by_text("A painting", exact=True).click(timeout=60_000)
    # The painting list (the examples, then Upload...). The Style model loads in the background and
    # the page reruns when it is ready, which closes an open list: open it until it stays open.
    paintings = controls.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text("Painting", exact=True))
    upload = page.get_by_role("option", name="Upload...")

    def list_open() -> bool:
        if upload.count() == 0 and page.get_by_text("Loading the model").count() == 0:
            paintings.click(timeout=30_000)
            page.wait_for_timeout(500)
        return upload.count() > 0

    wait_until(list_open, 90, "the painting list to open")
    upload.click(timeout=30_000)
    controls.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        {"name": "stripes.png", "mimeType": "image/png", "buffer": png(painting)})
    start_stream(page)

    wait_until(lambda: received_frame(page).mean() < 60, 60, "the uploaded painting's darkness in the received video")
    page.get_by_text(re.compile(r"style \d+\.\d ms")).wait_for(timeout=30_000)  # the panel refreshes: wait, not count
    assert page.locator('[data-testid="stException"]').count() == 0


@needs_webrtc
def test_the_face_seen_on_the_live_page_is_enrolled_from_the_people_page(page, server):
    page.goto(f"{server[0]}/live")
    start_stream(page)
    wait_until(lambda: (metric(page, "Faces in view") or 0) >= 1, 90, "the live panel to report a face")
    page.locator('[data-testid="stSidebarNav"]').get_by_text("People").click()
    from core.store.gallery import open_gallery

    try:
        caption = page.get_by_text("Last frame of the Live page", exact=False)
        caption.wait_for(timeout=60_000)
        shown = int(re.search(r"(\d+) face\(s\)", caption.inner_text()).group(1))
        page.locator('[data-testid="stForm"]').filter(has_text="Enroll the face in this frame").get_by_label("Name", exact=True).fill("Camera Person")
        page.get_by_role("button", name="Enroll the face in this frame").click()
        saved = page.get_by_text("1 photo(s) saved for Camera Person.")
        pick = page.get_by_role("button", name="Enroll this face")
        wait_until(lambda: saved.count() or pick.count(), 120, "the snapshot to be enrolled or a face to be asked for")
        if shown == 1:  # the faces the preview counted are the faces enrolment found
            assert saved.count() and not pick.count()
        else:  # the clip shows two faces: pick the first
            page.get_by_text(f"{shown} faces found: pick the one to enroll").wait_for(timeout=30_000)
            pick.first.click()
            saved.wait_for(timeout=60_000)
        person_card(page, "Camera Person").get_by_text("1 photo(s)", exact=True).wait_for(timeout=30_000)
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        with open_gallery(server[1].parent / "gallery.sqlite3") as gallery:
            if gallery.person("Camera Person"):
                gallery.forget("Camera Person")  # no test relies on another's people


@pytest.mark.parametrize("flags,shown", [
    (("--use-fake-device-for-media-stream", "--deny-permission-prompts"), "NotAllowedError"),
    (("--deny-permission-prompts",), "NotFoundError"),
], ids=["camera-denied", "no-camera"])
def test_a_denied_or_missing_camera_is_explained_not_a_crash(playwright, server, flags, shown):
    browser = launch(playwright, *flags)
    try:
        page = browser.new_page()
        page.goto(f"{server[0]}/live")
        component = webrtc_component(page)
        component.get_by_role("button", name=re.compile("start", re.I)).click(timeout=60_000)
        component.get_by_text(shown).wait_for(timeout=30_000)  # the browser's reason, in plain words
        page.get_by_text("The camera does not start?").click()
        page.get_by_text(re.compile(f"{shown} /")).wait_for(timeout=10_000)  # and what to do about it
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        browser.close()


def test_style_transfer_page_runs_shows_progress_and_offers_the_result(page, server):
    shared_data("style_transfer")  # the page's examples
    page.goto(f"{server[0]}/style")
    page.get_by_role("heading", name="Style transfer").first.wait_for(timeout=60_000)
    for label in ("Size (longer side, px)", "Iterations"):  # the smallest run: 64 px, 5 iterations
        page.get_by_role("slider", name=re.compile(rf"^{re.escape(label)}")).press("Home")  # not the fast styles' "Processing size"
    page.get_by_role("button", name="Run").click()
    page.get_by_text(re.compile(r"iteration \d+ / 5")).first.wait_for(timeout=120_000)  # the progress bar
    page.get_by_role("button", name="Download PNG").wait_for(timeout=300_000)
    page.locator('[data-testid="stImage"] img').last.wait_for(state="visible", timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0


@needs_webrtc
def test_visitors_remembered_while_streaming_are_named_from_the_people_page(page, server):
    """With "Remember visitors" ticked, the strangers of the camera become visitors in the server's
    gallery while streaming; the People page lists them and names one in one step."""
    from core.store.gallery import open_gallery

    path = server[1].parent / "gallery.sqlite3"
    page.goto(f"{server[0]}/live")
    start_stream(page)
    wait_until(lambda: (metric(page, "Faces in view") or 0) >= 1, 60, "the live panel to report a face")
    tick(page, "Recognition (names)", "recognition")
    page.locator('[data-testid="stMain"]').get_by_text("Remember visitors", exact=True).click()

    def visitors() -> list:
        if not path.exists():
            return []
        with open_gallery(path, readonly=True) as gallery:
            return gallery.visitors()

    wait_until(visitors, 90, "a visitor to be remembered from the camera")
    first = visitors()[0]
    page.locator('[data-testid="stSidebarNav"]').get_by_text("People").click()
    section = page.locator('[data-testid="stExpander"]').filter(has_text=f"{first.name} · ").first
    section.get_by_text(f"{first.name} · ", exact=False).click(timeout=60_000)
    section.get_by_placeholder("Who is this?").fill("Grace Hopper")
    page.keyboard.press("Enter")
    section.get_by_role("button", name="Name this visitor").click(timeout=30_000)
    person_card(page, "Grace Hopper").wait_for(timeout=60_000)
    with open_gallery(path) as gallery:
        assert "Grace Hopper" in [p.name for p in gallery.people()]
        gallery.forget("Grace Hopper")  # no test relies on another's people
        gallery.forget_visitors(0)
    assert page.locator('[data-testid="stException"]').count() == 0


def shoot(page, name: str, settle_ms: int = 1500) -> None:
    """With ``VISION_LAB_SCREENSHOTS=folder`` (``make screenshots`` sets docs/), save the page as
    name.png there, once it has settled for ``settle_ms``."""
    folder = os.environ.get("VISION_LAB_SCREENSHOTS")
    if folder:
        page.wait_for_timeout(settle_ms)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def go(page, title: str, heading: str | None = None) -> None:
    """Open a page through the sidebar's navigation, as a newcomer does, and wait for its heading (else its title)."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=heading or title).first.wait_for(timeout=60_000)


@needs_webrtc
def test_a_newcomer_walks_home_people_live_photo_video_style_and_each_page_answers(playwright, server, tmp_path, face_photos):
    """The first walk the Home page suggests, in one browser session: enroll two people of the
    camera clip, see them named on Live (green boxes, not 'No match' red), in a Photo and in a
    Video, then repaint a photo; each step's feedback is asserted. The camera shows the two and a
    stranger, each leaving before the next steps in (a face never replaces another in place)."""
    from core.store.gallery import open_gallery

    people = [photo.parent.name.replace("_", " ") for photo in face_photos[:2]]
    camera = write_y4m(face_clip(face_photos[:3], n_frames=90, faces_per_frame=2, gap_frames=12), tmp_path / "walk.y4m")
    browser = launch(playwright, *camera_flags(camera))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(server[0])
        page.get_by_text("A first walk:").wait_for(timeout=60_000)
        shoot(page, "home")
        page.get_by_role("link", name="Open People").click()
        page.get_by_role("heading", name="People").first.wait_for(timeout=60_000)
        for person, first in zip(people, face_photos[:2]):
            photos = [first.with_name(f"{n}.jpg") for n in (2, 3)]
            page.get_by_label("Name", exact=True).first.fill(person)
            page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files([str(p) for p in photos])
            for photo in photos:
                page.get_by_text(photo.name, exact=True).first.wait_for(timeout=30_000)
            page.get_by_role("button", name="Save").click()
            page.get_by_text(f"2 photo(s) saved for {person}.").first.wait_for(timeout=120_000)
            assert page.get_by_label("Name", exact=True).first.input_value() == ""  # the form is cleared for the next one
        for person in people:
            person_card(page, person).get_by_text("2 photo(s)", exact=True).wait_for(timeout=30_000)
        shoot(page, "people")

        go(page, "Live")
        start_stream(page)
        wait_until(lambda: (metric(page, "Faces in view") or 0) >= 1, 90, "the live panel to report a face")
        tick(page, "Recognition (names)", "recognition")
        assert page.get_by_text("Nobody is enrolled yet").count() == 0
        wait_until(lambda: color_pixels(received_frame(page), BOX_COLOR) > 300, 60, "a named (green) face in the received video")
        shoot(page, "live", settle_ms=0)  # now, while a named face is in view

        go(page, "Photo")
        photo = face_photos[0].with_name("4.jpg")
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(photo))
        wait_until(lambda: metric(page, "Faces") == 1, 180, "the Photo page to report the face")
        with page.expect_download() as download:
            page.get_by_role("button", name="Download the JSON").click()
        assert [face["name"] for face in json.loads(Path(download.value.path()).read_text())["faces"]] == [people[0]]
        shoot(page, "photo")

        go(page, "Video")
        frames = list(face_clip([face_photos[1].with_name("5.jpg")], 30, size=(320, 240), face_side=160))
        clip = write_video(frames, tmp_path / "visit.mp4", fps=15, audio_codec="aac")
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(clip))
        page.get_by_role("button", name="Annotate").click(timeout=30_000)
        page.get_by_text(re.compile(rf"recognised: {people[1]}")).wait_for(timeout=180_000)
        page.get_by_role("button", name="Download the annotated video").wait_for(timeout=30_000)
        shoot(page, "video")

        go(page, "Style transfer")
        for label in ("Size (longer side, px)", "Iterations"):  # the smallest run
            page.get_by_role("slider", name=re.compile(rf"^{re.escape(label)}")).press("Home")
        page.get_by_role("button", name="Run").click()
        page.get_by_text(re.compile(r"iteration \d+ / \d+")).first.wait_for(timeout=120_000)  # progress that means something
        page.get_by_role("button", name="Download PNG").wait_for(timeout=300_000)
        shoot(page, "style")
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        browser.close()
        with open_gallery(server[1].parent / "gallery.sqlite3") as gallery:
            for person in people:
                if person in {p.name for p in gallery.people()}:
                    gallery.forget(person)


@needs_webrtc
def test_a_network_camera_is_annotated_live_reconnected_when_unplugged_and_recorded(page, server, tmp_path, face_photos):
    """Issue 19's promise: paste an RTSP URL and see it annotated; unplug the camera and the page
    says it is reconnecting, then the picture comes back; Record, and the recording downloads and
    plays. The URL's password is never shown."""
    import av

    from tests.e2e import free_port
    from tests.stream.rtsp_relay import FFMPEG, camera

    if FFMPEG is None:
        pytest.skip("ffmpeg is absent: scripts/install.sh --test installs Debian's ffmpeg")
    clip = write_video(list(face_clip(face_photos[:3], 90)), tmp_path / "camera.mp4")
    with camera(clip, free_port(), user="cam", password="s3cret-pw") as cam:
        page.goto(f"{server[0]}/live")
        page.get_by_text("Network camera (URL)", exact=True).click(timeout=60_000)
        page.get_by_label("Stream URL", exact=True).fill(cam.url)
        page.get_by_role("button", name="Connect").click()
        page.get_by_text(re.compile(r"rtsp://cam@127\.0\.0\.1:\d+/cam: ")).first.wait_for(timeout=30_000)
        start_stream(page)
        wait_until(lambda: color_pixels(received_frame(page), BOX_COLOR) > 300, 60, "boxed faces in the received video")
        wait_until(lambda: (metric(page, "Frames per second") or 0) > 0, 30, "the panel's numbers")

        page.get_by_text("Record", exact=True).click()
        page.get_by_text("Recording...").wait_for(timeout=30_000)
        page.wait_for_timeout(3000)

        cam.stop()  # unplugged
        page.get_by_text(re.compile(r"reconnecting (in \d+ s|now)")).first.wait_for(timeout=30_000)
        assert metric(page, "Frames per second") is None  # no stale numbers
        cam.start()  # plugged back
        wait_until(lambda: (metric(page, "Frames per second") or 0) > 0, 30, "the picture to come back")

        page.get_by_text("Record", exact=True).click()
        with page.expect_download() as download:
            page.get_by_role("button", name=re.compile(r"Download the recording")).click(timeout=30_000)
        with av.open(download.value.path()) as recording:
            assert sum(1 for _ in recording.decode(video=0)) > 30
        assert "s3cret-pw" not in page.content() and "s3cret-pw" not in server[1].read_text(errors="replace")
        assert page.locator('[data-testid="stException"]').count() == 0
