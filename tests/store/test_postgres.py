"""What only the shared store promises: several servers on one PostgreSQL database, the HNSW
index, a lost database, a schema that is not ours, and credentials never shown."""

import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from core.analysis import recognition
from core.analysis.recognition import RecognitionProcessor
from core.faces import Box, Face, FrameResult
from core.store.gallery import GalleryError, GalleryUnavailable, NewPhoto, open_gallery, shown
from core.store.postgres import SCHEMA_NAME, nearest_photos_sql, vector_text
from tests.conftest import REPO, fresh_database

psycopg = pytest.importorskip("psycopg", reason="psycopg is in requirements.txt: scripts/install.sh installs it")

OTHER_SERVER = """
import sys, time
import numpy as np
from core.faces import Box
from core.store.gallery import NewPhoto, open_gallery
url, name, value, start = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
gallery = open_gallery(url)
gallery.version()  # connected before the start
while time.time() < start:
    time.sleep(0.001)
gallery.add_photos(name, [NewPhoto(name + ".jpg", Box(0, 9, 9, 0), b"jpeg", np.full(128, value), sys.argv[5])])
print(time.time(), flush=True)
"""


def other_server(url: str, name: str, value: float, start: float) -> subprocess.Popen:
    """Another app server's process, enrolling ``name`` (encoding: 128 times ``value``) at ``start``."""
    return subprocess.Popen([sys.executable, "-c", OTHER_SERVER, url, name, str(value), str(start), recognition.active_encoder()],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)  # fmt: skip


def face(track_id: int) -> FrameResult:
    return FrameResult(faces=[Face(Box(0, 10, 10, 0), track_id=track_id)])


def test_an_enrollment_on_another_server_names_the_face_here_within_a_second(postgres_server, monkeypatch):
    url = fresh_database(postgres_server)
    with open_gallery(url) as gallery:  # somebody else, so the gallery exists
        gallery.add_photos("Ann", [NewPhoto("a.jpg", Box(0, 9, 9, 0), b"j", np.full(128, 0.5), recognition.active_encoder())])
    monkeypatch.setattr(recognition, "encode_face", lambda frame, f, encoder=None: setattr(f, "encoding", np.full(128, 0.0)) or f.encoding)
    processor = RecognitionProcessor(gallery=url)  # this server's live stream
    for _ in range(3):
        processor.process(None, result := face(1))
    assert result.faces[0].name is None and result.faces[0].distance is not None  # a stranger for now
    writer = other_server(url, "Zoe", 0.001, time.time() + 1.0)
    named_at, deadline = None, time.time() + 10
    while named_at is None and time.time() < deadline:
        result = face(1)
        processor.process(None, result)  # the track's encoding is matched again when the gallery changes
        if result.faces[0].name == "Zoe":
            named_at = time.time()
        time.sleep(1 / 30)
    committed_at = float(writer.communicate(timeout=30)[0].strip())
    assert named_at is not None and named_at - committed_at < 1.0


def test_two_servers_enrolling_the_same_new_name_at_once_give_one_person(postgres_server):
    url = fresh_database(postgres_server)
    with open_gallery(url) as gallery:
        gallery.set_setting("note", "exists")  # the schema exists: the race is on the person, not on the tables
        for round_ in range(4):
            start = time.time() + 1.5
            writers = [other_server(url, f"Nova {round_}", value, start) for value in (0.1, 0.2)]
            for writer in writers:
                assert writer.wait(timeout=60) == 0
        people = gallery.people()
    assert [(p.name, p.photos) for p in people] == [(f"Nova {r}", 2) for r in range(4)]


def test_servers_creating_the_gallery_at_once_do_not_race(postgres_server):
    url = fresh_database(postgres_server)
    start = time.time() + 1.5
    writers = [other_server(url, name, 0.1, start) for name in ("Ada", "Bob", "Cy")]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0]
    with open_gallery(url) as gallery:
        assert [p.name for p in gallery.people()] == ["Ada", "Bob", "Cy"]


def test_the_nearest_people_query_uses_the_encoders_hnsw_index(postgres_server):
    url = fresh_database(postgres_server)
    rng = np.random.default_rng(0)
    with open_gallery(url) as gallery:
        for i in range(50):
            gallery.add_photos(f"P{i}", [NewPhoto("p.jpg", Box(0, 9, 9, 0), b"j", rng.normal(size=128), "sface")])
    with psycopg.connect(url) as db:
        db.execute("SET enable_seqscan = off")  # 50 rows: the planner would scan; the index must be there and usable
        plan = "\n".join(row[0] for row in db.execute("EXPLAIN " + nearest_photos_sql("sface", 32), {"q": vector_text(np.zeros(128))}))
        indexes = [row[0] for row in db.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s", (SCHEMA_NAME,))]
    assert "photos_hnsw_sface" in plan
    assert any("hnsw (encoding vector_l2_ops) WHERE (encoder = 'dlib'::text)" in index for index in indexes)


def test_a_lost_database_keeps_the_stream_going_says_so_and_reconnects(tmp_path, monkeypatch):
    pgserver = pytest.importorskip("pgserver")
    from pgserver._commands import pg_ctl

    server = pgserver.get_server(tmp_path / "pgdata", cleanup_mode="delete")
    try:
        url = server.get_uri()
        encoder = recognition.active_encoder()
        with open_gallery(url) as gallery:
            gallery.add_photos("Ann", [NewPhoto("a.jpg", Box(0, 9, 9, 0), b"j", np.zeros(128), encoder)])
        monkeypatch.setattr(recognition, "encode_face", lambda frame, f, encoder=None: setattr(f, "encoding", np.zeros(128)) or f.encoding)
        monkeypatch.setattr(recognition, "REENCODE_INTERVAL_S", 0.0)  # every frame queries the database
        processor = RecognitionProcessor(gallery=url)
        page = open_gallery(url)
        for _ in range(3):
            processor.process(None, result := face(7))
        assert result.faces[0].name == "Ann"

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        for _ in range(5):
            processor.process(None, result := face(7))  # no exception: the stream goes on
            time.sleep(0.3)
        assert result.faces[0].name == "Ann"  # the name it knew
        assert processor.unavailable and "unavailable" in processor.unavailable
        with pytest.raises(GalleryUnavailable, match="unavailable"):
            page.people()  # what the People page shows

        server.ensure_postgres_running()
        deadline = time.time() + 10
        while time.time() < deadline:
            processor.process(None, face(7))
            try:
                page.version()
                if processor.unavailable is None:
                    break
            except GalleryUnavailable:
                pass
            time.sleep(0.2)
        assert processor.unavailable is None
        page.add_photos("Ben", [NewPhoto("b.jpg", Box(0, 9, 9, 0), b"j", np.zeros(128) + 0.001, encoder)])
        page.forget("Ann")
        time.sleep(recognition.GALLERY_CHECK_INTERVAL_S)
        processor.process(None, result := face(7))
        assert result.faces[0].name == "Ben"  # reconnected and following the gallery again
        page.close()
    finally:
        server.cleanup()


def test_a_schema_of_the_same_name_that_is_not_ours_is_left_untouched(postgres_server):
    url = fresh_database(postgres_server)
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {SCHEMA_NAME}")
        db.execute(f"CREATE TABLE {SCHEMA_NAME}.orders (id int)")
    gallery = open_gallery(url)
    with pytest.raises(GalleryError, match="not a Vision Lab gallery"):
        gallery.people()
    with pytest.raises(GalleryError, match="not a Vision Lab gallery"):
        gallery.add_photos("Ada", [NewPhoto("a.jpg", Box(0, 9, 9, 0), b"j", np.zeros(128), "sface")])
    with psycopg.connect(url) as db:
        tables = [row[0] for row in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (SCHEMA_NAME,))]
    assert tables == ["orders"]


def test_credentials_in_a_url_are_never_shown(postgres_server):
    host = postgres_server.get_uri().split("host=")[1]
    url = f"postgresql://mallory:hunter2@/no_such_db?host={host}"
    assert shown(url) == f"postgresql://mallory@/no_such_db?host={host}"
    assert "s3cret" not in shown("postgresql:///db?user=a&password=s3cret")
    gallery = open_gallery(url)
    with pytest.raises(GalleryUnavailable) as raised:
        gallery.people()
    assert "hunter2" not in str(raised.value) and "mallory@" in str(raised.value)
    assert "hunter2" not in gallery.location


def people_page(monkeypatch, location: str):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VISION_LAB_GALLERY", location)
    page = AppTest.from_file(str(REPO / "pages" / "people.py"), default_timeout=120)
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    return page


def test_the_people_page_lists_a_shared_gallery_and_says_when_it_is_unavailable(postgres_server, monkeypatch, tmp_path):
    url = fresh_database(postgres_server)
    with open_gallery(url) as gallery:
        jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 128, np.uint8))[1].tobytes()
        gallery.add_photos("Ada Lovelace", [NewPhoto("a.jpg", Box(0, 9, 9, 0), jpeg, np.zeros(128), recognition.active_encoder())])
    page = people_page(monkeypatch, url)
    assert "**Ada Lovelace**" in [markdown.value for markdown in page.markdown]  # her card
    assert "1 photo(s)" in [caption.value for caption in page.caption]
    assert any("postgresql://postgres@" in caption.value for caption in page.caption)
    gone = f"postgresql://mallory:hunter2@/vision_lab?host={tmp_path / 'no-server-here'}"
    page = people_page(monkeypatch, gone)
    assert [e.value for e in page.error] and "Gallery unavailable" in page.error[0].value
    assert "hunter2" not in page.error[0].value
