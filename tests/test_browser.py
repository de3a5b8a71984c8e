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
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.stream.synthetic import face_clip, write_video, write_y4m
from tests.conftest import REPO, shared_data

CHROMIUM = Path("/usr/bin/chromium")
IN_LOOPBACK_NAMESPACE = os.environ.get("VISION_LAB_NETNS") == "1"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (`make test` installs it with apt)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The app's server (as ``make run`` starts it) on a free loopback port; yields (base URL, log file)."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    gallery = log.parent / "gallery.sqlite3"  # never the user's own gallery
    env = {**os.environ, "VISION_LAB_ICE_SERVERS": "[]", "PYTHONUNBUFFERED": "1", "VISION_LAB_GALLERY": str(gallery)}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "scripts/serve.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok"
        except OSError:
            return False

    try:
        wait_until(healthy, 90, "the Streamlit server to answer")
        yield url, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory, face_photos) -> Path:
    """Three seconds of two real faces drifting in front of a grey wall, as Chromium's fake camera."""
    path = tmp_path_factory.mktemp("camera") / "faces.y4m"
    return write_y4m(face_clip(face_photos[:6], n_frames=90, faces_per_frame=2), path)


BASE_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


def launch(playwright, *flags: str):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[*BASE_FLAGS, *flags])


@pytest.fixture(scope="module")
def browser(playwright, camera_clip):
    """Chromium whose camera is the clip, with camera access granted."""
    browser = launch(
        playwright,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera_clip}",
    )
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


def metric(page, label: str) -> float | None:
    """The number shown by the ``st.metric`` called ``label``, or None while it is absent."""
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    if box.count() == 0:
        return None
    match = re.search(r"-?\d+(\.\d+)?", box.first.locator('[data-testid="stMetricValue"]').inner_text())
    return float(match.group()) if match else None


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
    table = page.locator('[data-testid="stDataFrame"]')
    table.wait_for(timeout=30_000)
    assert table.is_visible()


def test_photo_page_analyses_an_uploaded_photo_and_offers_its_json(page, server):
    photo = shared_data("faces_identities_knn_examples/test/obama_and_biden.jpg")
    page.goto(f"{server[0]}/photo")
    page.get_by_role("heading", name="Photo").first.wait_for(timeout=60_000)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(photo))
    wait_until(lambda: metric(page, "Faces") == 2, 180, "the Photo page to report 2 faces")
    page.locator('[data-testid="stDataFrame"]').first.wait_for(state="visible", timeout=30_000)  # one row per face
    page.locator('[data-testid="stImage"] img').first.wait_for(state="visible", timeout=30_000)  # the annotated photo
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the JSON").click()
    record = json.loads(Path(download.value.path()).read_text())
    assert record["image"] == photo.name and len(record["faces"]) == 2
    assert page.locator('[data-testid="stException"]').count() == 0


def test_people_page_enrolls_uploaded_photos_renames_and_deletes_the_person(page, server):
    photos = [shared_data(f"faces_identities/Ariel_Sharon/{n}.jpg") for n in (1, 2)]
    page.goto(f"{server[0]}/people")
    page.get_by_role("heading", name="People").first.wait_for(timeout=60_000)
    page.get_by_label("Name", exact=True).first.fill("Ariel Sharon")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([str(p) for p in photos])
    page.get_by_role("button", name="Save").click()
    page.get_by_text("2 photo(s) saved for Ariel Sharon.").wait_for(timeout=120_000)
    page.locator('[data-testid="stImage"] img').nth(1).wait_for(state="visible", timeout=30_000)  # the two face crops
    page.get_by_text("Ariel Sharon · 2 photo(s)").click()
    rename = page.get_by_label("Rename to")
    rename.fill("Ariel S")
    rename.press("Enter")
    page.get_by_text("Ariel S · 2 photo(s)").click(timeout=30_000)
    confirm = page.get_by_role("checkbox", name="Yes, delete every photo and encoding of this person")
    delete = page.get_by_role("button", name="Delete person")
    page.get_by_text("Yes, delete every photo and encoding of this person").click()
    wait_until(lambda: confirm.is_checked() and delete.is_enabled(), 30, "the confirmation to enable Delete")
    delete.click()
    wait_until(lambda: page.get_by_text("Ariel S · 2 photo(s)").count() == 0, 30, "the person to disappear")
    assert page.locator('[data-testid="stException"]').count() == 0


def test_people_page_encodes_again_the_photos_of_another_encoder(page, server):
    from core.analysis import recognition
    from core.faces import Face
    from core.images import load_image
    from core.store.sqlite import Gallery, NewPhoto

    if recognition.active_encoder() != "sface":
        pytest.skip("SFace is not installed: dlib is the only encoder")
    image = load_image(shared_data("faces_identities/Tony_Blair/1.jpg"))
    box = recognition.detect_still(image)[0]
    dlib_encoding = recognition.encode_face(image, Face(box), "dlib")
    with Gallery(server[1].parent / "gallery.sqlite3") as gallery:  # as a gallery enrolled before SFace
        gallery.add_photos("Tony Blair", [NewPhoto("1.jpg", box, recognition.face_thumbnail(image, box), dlib_encoding, "dlib")])
    page.goto(f"{server[0]}/live")
    page.locator('[data-testid="stSidebar"]').get_by_text("Recognition (names)").click(timeout=60_000)
    page.get_by_text(re.compile(r"1 enrolled photo\(s\) were encoded by another face encoder")).wait_for(timeout=60_000)
    page.goto(f"{server[0]}/people")
    page.get_by_text(re.compile(r"1 photo\(s\) were encoded by another face encoder")).wait_for(timeout=60_000)
    page.get_by_role("button", name="Encode them again").click()
    page.get_by_text("1 photo(s) encoded again.").wait_for(timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    with Gallery(server[1].parent / "gallery.sqlite3") as gallery:
        assert gallery.encoder_counts().get("dlib", 0) == 0 and gallery.encodings("sface").names.count("Tony Blair") == 1


def test_photo_page_explains_a_file_that_is_not_a_photo(page, server):
    page.goto(f"{server[0]}/photo")
    page.get_by_role("heading", name="Photo").first.wait_for(timeout=60_000)
    broken = {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff not really a jpeg"}
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(broken)
    page.get_by_text(re.compile("broken.jpg: not a readable image")).wait_for(timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0 and metric(page, "Faces") is None


def test_photo_page_analyses_a_photo_taken_with_the_camera(page, server):
    page.goto(f"{server[0]}/photo")
    page.get_by_text("Take a photo").click(timeout=60_000)
    page.get_by_role("button", name="Take Photo").click(timeout=30_000)  # the fake camera shows two faces
    wait_until(lambda: (metric(page, "Faces") or 0) >= 1, 120, "the Photo page to find a face in the camera's photo")
    assert page.locator('[data-testid="stException"]').count() == 0


def test_people_page_lets_the_user_pick_one_face_of_a_group_photo(page, server):
    from core.store.sqlite import Gallery

    group = shared_data("faces_identities_knn_examples/test/obama_and_biden.jpg")  # Biden left, Obama right
    page.goto(f"{server[0]}/people")
    page.get_by_role("heading", name="People").first.wait_for(timeout=60_000)
    page.get_by_label("Name", exact=True).first.fill("Barack Obama")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(group))
    page.get_by_role("button", name="Save").click()
    page.get_by_text(re.compile(r"\d faces found: pick the one to enroll")).wait_for(timeout=120_000)
    page.get_by_text("face 2", exact=True).click()
    page.get_by_role("button", name="Enroll this face").click()
    page.get_by_text("1 photo(s) saved for Barack Obama.").wait_for(timeout=120_000)
    page.get_by_text("Barack Obama · 1 photo(s)").wait_for(timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    with Gallery(server[1].parent / "gallery.sqlite3") as gallery:  # the server's own gallery
        (photo,) = gallery.photos("Barack Obama")
    assert photo.box.left > 1000  # the second face from the left of the 2000-px photo, not Biden's


def test_video_page_annotates_an_uploaded_video_then_plays_it(page, server, tmp_path, face_photos):
    frames = list(face_clip(face_photos[:2], 30, size=(320, 240), face_side=160))
    clip = write_video(frames, tmp_path / "clip.mp4", fps=15, audio_codec="aac")
    page.goto(f"{server[0]}/video")
    page.get_by_role("heading", name="Video").first.wait_for(timeout=60_000)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(clip))
    page.get_by_role("button", name="Annotate").click(timeout=30_000)
    page.get_by_text(re.compile(r"30 frames .* faces seen: 1;")).wait_for(timeout=180_000)
    video = page.locator('[data-testid="stVideo"]').first

    def playable() -> bool:
        return video.evaluate("v => v.readyState >= 1 && v.videoWidth === 320 && v.duration > 1.5")

    wait_until(playable, 30, "the annotated video to load in the browser")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the annotated video").click()
    assert download.value.suggested_filename == "clip-annotated.mp4"
    assert Path(download.value.path()).stat().st_size > 10_000
    assert page.locator('[data-testid="stException"]').count() == 0


def test_video_page_shows_progress_and_cancels(page, server, tmp_path, face_photos):
    frames = list(face_clip(face_photos[:2], 600, size=(320, 240), face_side=160))  # 40 s: long enough to cancel
    clip = write_video(frames, tmp_path / "long.mp4", fps=15)
    page.goto(f"{server[0]}/video")
    page.get_by_role("heading", name="Video").first.wait_for(timeout=60_000)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(clip))
    page.get_by_role("button", name="Annotate").click(timeout=30_000)
    page.get_by_text(re.compile(r"Annotating: [1-9]\d* / 600 frames")).wait_for(timeout=60_000)  # the progress bar moves
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Cancelled: nothing was written.").wait_for(timeout=30_000)
    assert page.locator('[data-testid="stVideo"]').count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.mark.skipif(not IN_LOOPBACK_NAMESPACE, reason="WebRTC runs only in a loopback-only network namespace: use `make test`")
def test_live_page_streams_the_camera_annotated(page, server):
    page.goto(f"{server[0]}/live")
    component = page.frame_locator('iframe[title*="webrtc"]')
    component.get_by_role("button", name=re.compile("start", re.I)).click(timeout=60_000)
    video = component.locator("video").first

    def playing() -> bool:
        return video.count() > 0 and video.evaluate("v => v.videoWidth > 0 && v.currentTime > 1 && !v.paused")

    wait_until(playing, 60, "the processed video to play in the browser")
    wait_until(lambda: (metric(page, "Faces in view") or 0) >= 1, 30, "the live panel to report a face")
    wait_until(lambda: (metric(page, "Frames per second") or 0) > 0, 30, "the live panel to report fps > 0")
    detection = page.locator('[data-testid="stSidebar"]').get_by_text("Face detection", exact=True)
    detection.click()  # switched off while streaming: the next frames carry no face
    wait_until(lambda: metric(page, "Faces in view") == 0, 30, "faces to drop to 0 with detection off")
    detection.click()
    wait_until(lambda: (metric(page, "Faces in view") or 0) >= 1, 30, "faces to come back with detection on")
    assert page.locator('[data-testid="stException"]').count() == 0
    if os.environ.get("VISION_LAB_SCREENSHOT"):
        page.wait_for_timeout(2000)
        page.screenshot(path=os.environ["VISION_LAB_SCREENSHOT"])


@pytest.mark.skipif(not IN_LOOPBACK_NAMESPACE, reason="WebRTC runs only in a loopback-only network namespace: use `make test`")
def test_the_face_seen_on_the_live_page_is_enrolled_from_the_people_page(page, server):
    page.goto(f"{server[0]}/live")
    component = page.frame_locator('iframe[title*="webrtc"]')
    component.get_by_role("button", name=re.compile("start", re.I)).click(timeout=60_000)
    wait_until(lambda: (metric(page, "Faces in view") or 0) >= 1, 90, "the live panel to report a face")
    page.locator('[data-testid="stSidebarNav"]').get_by_text("People").click()
    page.get_by_text("Last frame of the Live page").wait_for(timeout=60_000)
    page.locator('[data-testid="stForm"]').filter(has_text="Enroll the face in this frame").get_by_label("Name", exact=True).fill("Camera Person")
    page.get_by_role("button", name="Enroll the face in this frame").click()
    saved = page.get_by_text("1 photo(s) saved for Camera Person.")
    pick = page.get_by_role("button", name="Enroll this face")
    wait_until(lambda: saved.count() or pick.count(), 120, "the snapshot to be enrolled or a face to be asked for")
    if not saved.count():  # the clip shows two faces: pick the first
        pick.first.click()
        saved.wait_for(timeout=60_000)
    page.get_by_text("Camera Person · 1 photo(s)").wait_for(timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.mark.skipif(not IN_LOOPBACK_NAMESPACE, reason="WebRTC runs only in a loopback-only network namespace: use `make test`")
def test_recognition_runs_on_the_live_stream(page, server):
    page.goto(f"{server[0]}/live")
    page.locator('[data-testid="stSidebar"]').get_by_text("Recognition (names)").click(timeout=60_000)
    component = page.frame_locator('iframe[title*="webrtc"]')
    component.get_by_role("button", name=re.compile("start", re.I)).click(timeout=60_000)
    wait_until(lambda: (metric(page, "Faces in view") or 0) >= 1, 90, "the live panel to report a face")
    page.get_by_text(re.compile(r"recognition \d+\.\d ms")).wait_for(timeout=30_000)  # the stage runs on frames
    assert page.get_by_text("failed and is skipped").count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.mark.parametrize("flags,shown", [
    (("--use-fake-device-for-media-stream", "--deny-permission-prompts"), "NotAllowedError"),
    (("--deny-permission-prompts",), "NotFoundError"),
], ids=["camera-denied", "no-camera"])
def test_a_denied_or_missing_camera_is_explained_not_a_crash(playwright, server, flags, shown):
    browser = launch(playwright, *flags)
    try:
        page = browser.new_page()
        page.goto(f"{server[0]}/live")
        component = page.frame_locator('iframe[title*="webrtc"]')
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
        page.get_by_role("slider", name=label).press("Home")
    page.get_by_role("button", name="Run").click()
    page.get_by_text(re.compile(r"iteration \d+ / 5")).first.wait_for(timeout=120_000)  # the progress bar
    page.get_by_role("button", name="Download PNG").wait_for(timeout=300_000)
    page.locator('[data-testid="stImage"] img').last.wait_for(state="visible", timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0
