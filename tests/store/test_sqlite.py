import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.faces import Box
from core.store.gallery import GalleryError, NewPhoto, default_gallery_location
from core.store.sqlite import SqliteGallery
from tests.conftest import REPO, as_a_user_who_cannot_write
from tests.store.test_gallery import photo


@pytest.fixture
def gallery(tmp_path):
    with SqliteGallery(tmp_path / "gallery.sqlite3") as g:
        yield g


def test_forget_removes_every_photo_and_encoding_from_the_file(tmp_path):
    path = tmp_path / "gallery.sqlite3"
    marker = b"THUMBNAIL-OF-CAROL-" * 4
    with SqliteGallery(path) as gallery:
        kept = photo(b"KEEP", 9)
        gallery.add_photos("Dave", [kept])
        gallery.add_photos("Carol", [photo(marker, 1), photo(marker, 2)])
        carol_encoding = gallery.encodings().matrix[1].astype("<f8").tobytes()
        assert gallery.forget("carol") == 2
        assert [p.name for p in gallery.people()] == ["Dave"]
        with pytest.raises(GalleryError):
            gallery.photos("Carol")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM photos").fetchone() == (1,)
        assert db.execute("SELECT COUNT(*) FROM people").fetchone() == (1,)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert marker not in raw and carol_encoding not in raw  # secure_delete: the bytes are gone
    assert kept.thumbnail_jpeg in raw


ENROLL_FOREVER = """
import sys
import numpy as np
from core.faces import Box
from core.store.gallery import NewPhoto
from core.store.sqlite import SqliteGallery
gallery = SqliteGallery(sys.argv[1])
rng = np.random.default_rng(0)
i = 0
while True:
    photos = [NewPhoto(f"{k}.jpg", Box(0, 9, 9, 0), rng.bytes(300_000), rng.normal(size=128), "dlib") for k in range(4)]
    gallery.add_photos(f"Person {i}", photos)
    i += 1
"""


def test_the_gallery_survives_a_process_killed_mid_enrollment(tmp_path):
    path = tmp_path / "gallery.sqlite3"
    SqliteGallery(path).close()
    process = subprocess.Popen([sys.executable, "-c", ENROLL_FOREVER, str(path)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        with SqliteGallery(path) as watcher:
            deadline = time.monotonic() + 60
            while len(watcher.people()) < 5 and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.05)
        assert process.poll() is None, "the enrolling process died on its own"
        time.sleep(0.137)  # somewhere inside a later enrollment
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    with SqliteGallery(path) as gallery:
        people = gallery.people()
        assert len(people) >= 5
        assert all(p.photos == 4 for p in people), [(p.name, p.photos) for p in people]
        assert gallery.encodings().matrix.shape == (4 * len(people), 128)
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_default_location_follows_the_setting_then_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("VISION_LAB_GALLERY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert Path(default_gallery_location()) == tmp_path / "data" / "vision-lab" / "gallery.sqlite3"
    monkeypatch.setenv("VISION_LAB_GALLERY", str(tmp_path / "mine.sqlite3"))
    assert Path(default_gallery_location()) == tmp_path / "mine.sqlite3"


def test_a_file_that_is_not_a_gallery_is_refused_with_a_message(tmp_path):
    path = tmp_path / "notes.sqlite3"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(GalleryError, match="not a usable gallery"):
        SqliteGallery(path)
    assert path.read_bytes().startswith(b"these are my notes")


def test_folders_are_refused_as_gallery_files(tmp_path):
    with pytest.raises(GalleryError, match="folder"):
        SqliteGallery(tmp_path)


FIRST_SCHEMA = """
CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE, created REAL NOT NULL);
CREATE TABLE photos (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT NOT NULL, box TEXT NOT NULL, thumbnail BLOB NOT NULL, encoding BLOB NOT NULL, created REAL NOT NULL);
CREATE INDEX photos_by_person ON photos(person_id);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO settings(key, value) VALUES ('version', '3');
"""  # the file format of the first release: no photos.encoder, no people.key, no application id


def old_gallery(path: Path, names: tuple[str, ...] = ("Old Friend",)) -> Path:
    with sqlite3.connect(path) as db:
        db.executescript(FIRST_SCHEMA)
        for person_id, name in enumerate(names, 1):
            db.execute("INSERT INTO people(name, created) VALUES (?, 0)", (name,))
            db.execute("INSERT INTO photos(person_id, source, box, thumbnail, encoding, created) VALUES (?, 'a.jpg', '[0,1,1,0]', x'ffd8', ?, 0)",
                       (person_id, np.arange(128, dtype="<f8").tobytes()))  # fmt: skip
    return path


def test_a_gallery_written_before_encoders_were_recorded_is_upgraded(tmp_path):
    path = old_gallery(tmp_path / "old.sqlite3")
    with SqliteGallery(path) as gallery:
        assert gallery.encoder_counts() == {"dlib": 1}
        assert gallery.encodings("dlib").names == ("Old Friend",) and gallery.encodings("sface").names == ()
        np.testing.assert_array_equal(gallery.encodings("dlib").matrix[0], np.arange(128))
        (photo,) = gallery.photos("OLD FRIEND")
        gallery.replace_encodings({photo.id: np.ones(128)}, "sface")
        assert gallery.encoder_counts() == {"sface": 1}
        with pytest.raises(GalleryError):
            gallery.replace_encodings({photo.id: np.full(128, np.nan)}, "sface")
        with pytest.raises(GalleryError):
            gallery.replace_encodings({photo.id + 1: np.ones(128)}, "sface")
    with SqliteGallery(path) as reopened:  # opening an upgraded file again changes nothing
        assert reopened.encoder_counts() == {"sface": 1}


# --- the reliability probe's gallery defects (issue 13: items 3-8) ---------------------------------------------------


def test_an_old_gallery_with_names_equal_but_for_accented_case_becomes_one_person(tmp_path):
    path = old_gallery(tmp_path / "old.sqlite3", ("José Ñúñez", "Ada", "JOSÉ ÑÚÑEZ"))
    with SqliteGallery(path) as gallery:
        assert [(p.name, p.photos) for p in gallery.people()] == [("Ada", 1), ("José Ñúñez", 2)]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x564C4142


def forgettable_bytes(gallery: SqliteGallery, name: str) -> list[bytes]:
    """What must not survive ``forget(name)``: the name, its photos' sources, crops and encodings."""
    photos = gallery.photos(name)
    encodings = gallery.encodings()
    mine = [i for i, owner in enumerate(encodings.names) if owner == name]
    return [name.encode(), *(p.source.encode() for p in photos), *(p.thumbnail_jpeg for p in photos),
            *(encodings.matrix[i].astype("<f8").tobytes() for i in mine)]  # fmt: skip


def files_beside(path: Path) -> bytes:
    """The gallery file and everything SQLite keeps beside it (-wal, -shm, -journal)."""
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


@pytest.mark.parametrize("erase", ["forget", "delete_photo", "rename"])
def test_erased_data_leaves_no_trace_while_another_connection_is_open(tmp_path, erase):
    path = tmp_path / "gallery.sqlite3"
    with SqliteGallery(path) as holder, SqliteGallery(path) as gallery:  # holder: the People page's cached connection
        gallery.add_photos("Dave Keeper", [photo(b"KEEP", 9)])
        gallery.add_photos("Carol Secret", [NewPhoto("carol-at-home.jpg", Box(1, 2, 2, 1), b"CAROL-CROP" * 20, np.full(128, 0.123), "dlib")])
        assert holder.person("Carol Secret") is not None  # the holder has read the file
        secrets = forgettable_bytes(gallery, "Carol Secret")
        assert all(secret in files_beside(path) for secret in secrets)
        if erase == "forget":
            gallery.forget("carol secret")
        elif erase == "delete_photo":
            gallery.delete_photo(gallery.photos("Carol Secret")[0].id)
            secrets = secrets[1:]  # the person stays; her photo goes
        else:
            gallery.rename("Carol Secret", "Carol Known")
            secrets = secrets[:1]
        raw = files_beside(path)  # defect 5: the -wal file still held all of them
        assert [secret for secret in secrets if secret in raw] == []
        assert b"Dave Keeper" in raw and b"KEEP" in raw
        gallery.add_photos("Eve", [photo(b"EVE", 3)])  # and it does not come back later
        assert not any(secret in files_beside(path) for secret in secrets)
        assert holder.version() == gallery.version()  # the holder still works and sees every change


def test_another_applications_sqlite_file_is_refused_untouched(tmp_path):
    path = tmp_path / "contacts.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, full_name TEXT, phone TEXT)")
        db.execute("INSERT INTO people(full_name, phone) VALUES ('Ann', '555')")
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(GalleryError, match="not a Vision Lab gallery.*untouched"):  # defect 6: tables were added
            SqliteGallery(path, readonly=readonly)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contacts.sqlite3"]
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA application_id=1234")
    with pytest.raises(GalleryError, match="another application"):
        SqliteGallery(path)


def test_a_read_only_gallery_can_be_read(unwritable_folder):
    path = unwritable_folder / "gallery.sqlite3"
    assert path.is_file()
    done = as_a_user_who_cannot_write(
        "from core.store.sqlite import SqliteGallery\n"
        f"reader = SqliteGallery({str(path)!r}, readonly=True)\n"
        "print([p.name for p in reader.people()], reader.setting('tolerance'), reader.encodings().names)\n"
    )
    assert done.returncode == 0, done.stderr  # defect 7: "attempt to write a readonly database"
    assert done.stdout.strip() == "['Ada'] 0.5 ('Ada',)"


def test_a_read_only_connection_never_writes(tmp_path):
    path = tmp_path / "gallery.sqlite3"
    with SqliteGallery(path) as gallery:
        gallery.add_photos("Ada", [photo()])
    with SqliteGallery(path, readonly=True) as reader:
        assert reader.encodings().names == ("Ada",) and reader.version() > 0
        with pytest.raises(GalleryError, match="read-only"):
            reader.forget("Ada")
        with pytest.raises(GalleryError, match="read-only"):
            reader.add_photos("Bob", [photo()])
    with SqliteGallery(path) as gallery:
        assert [p.name for p in gallery.people()] == ["Ada"]


def test_no_file_or_folder_exists_until_the_first_write(tmp_path):
    path = tmp_path / "new" / "folder" / "gallery.sqlite3"
    gallery = SqliteGallery(path)  # defect 8: opening created the folders and an empty gallery
    reader = SqliteGallery(path, readonly=True)
    assert gallery.people() == [] and gallery.version() == 0 and gallery.encodings().names == ()
    with pytest.raises(GalleryError):
        gallery.forget("Nobody")
    with pytest.raises(GalleryError):
        gallery.add_photos("../x", [photo()])
    assert not (tmp_path / "new").exists()
    gallery.add_photos("Ada", [photo()])
    assert path.is_file() and reader.encodings().names == ("Ada",)  # the reader sees the file once it exists
    gallery.close()
    reader.close()
