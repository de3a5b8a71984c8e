"""The reliability probe's table as tests: each hostile input of issue 13 through the command line,
the way a careful user tries it. Each row failed before its fix; the README's "What we promise"
table states the same promises.

Commands run in this process (``core.cli.main``), except where another user is needed."""

from __future__ import annotations

import json
import sqlite3
import struct
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli import main
from core.images import ImageError, load_image
from core.store.gallery import open_gallery
from core.stream.synthetic import face_clip, write_video
from tests.conftest import as_a_user_who_cannot_write, shared_data
from tests.store.test_sqlite import files_beside, forgettable_bytes


def cli(capsys, *args: str) -> tuple[int, list[dict], str]:
    """Exit status, the JSON lines of stdout, and stderr of ``python -m core ARGS``."""
    status = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines()], err


def one_line_error(err: str) -> str:
    """stderr must be one readable line: no traceback, no doubled prefix, no Python object."""
    assert err.count("\n") == 1 and err.startswith("error: ") and "error: error:" not in err, err
    assert "Traceback" not in err and " at 0x" not in err, err
    return err


@pytest.fixture(scope="module")
def face() -> Path:
    """A real photo of one face (LFW, 150x150)."""
    return shared_data("faces_identities/George_W_Bush/1.jpg")


def save(path: Path, pixels: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(pixels, mode).save(path)
    return path


# --- 1. tiny and thin images -------------------------------------------------------------------------------------------


def test_tiny_and_thin_images_are_refused_one_by_one_and_the_good_photo_beside_them_is_enrolled(capsys, tmp_path, face):
    bad = [save(tmp_path / f"{w}x{h}.png", np.full((h, w, 3), 128, np.uint8)) for w, h in ((1, 1), (2, 2), (1, 3000), (3000, 1))]
    gallery = tmp_path / "gallery.sqlite3"
    status, lines, err = cli(capsys, "enroll", *bad, face, "--name", "George", "--gallery", gallery)
    assert status == 0, err  # was: a dlib RuntimeError aborted the batch
    assert [line["accepted"] for line in lines] == [False, False, False, False, True]
    assert all("too small" in line["reason"] for line in lines[:4])
    thin = save(tmp_path / "thin.png", np.full((40, 3000, 3), 128, np.uint8))
    status, lines, err = cli(capsys, "analyze", bad[2], thin, face)
    assert status == 1 and len(lines[2]["faces"]) == 1, err  # was: a traceback
    assert "too small" in lines[0]["error"] and "too narrow" in lines[1]["error"]


# --- 2. 16-bit grayscale ------------------------------------------------------------------------------------------------


def test_a_16_bit_grayscale_png_keeps_its_face(capsys, tmp_path, face):
    gray = np.asarray(Image.open(face).convert("L"), np.uint16) * 257
    path = tmp_path / "gray16.png"
    Image.fromarray(gray).save(path)
    assert Image.open(path).mode == "I;16"
    status, lines, err = cli(capsys, "analyze", path)
    assert status == 0, err
    assert len(lines[0]["faces"]) == 1  # was: 99.6 % of the pixels decoded as white, no face


# --- 3-5, 8. names and deletion -------------------------------------------------------------------------------------------


def test_accented_names_fold_case_and_forget_normalises_as_enroll_does(capsys, tmp_path, face):
    gallery = tmp_path / "gallery.sqlite3"
    assert cli(capsys, "enroll", face, "--name", "José Ñúñez", "--gallery", gallery)[0] == 0
    another = face.with_name("2.jpg")  # the same photo twice would be refused as a duplicate
    assert cli(capsys, "enroll", another, "--name", "JOSÉ ÑÚÑEZ", "--gallery", gallery)[0] == 0
    status, lines, _ = cli(capsys, "people", "--gallery", gallery)
    assert lines[0]["people"] == [{"name": "José Ñúñez", "photos": 2}]  # 3: was two people
    status, lines, err = cli(capsys, "forget", "--name", unicodedata.normalize("NFD", "josé ñúñez"), "--gallery", gallery)
    assert status == 0 and lines[0]["photos_deleted"] == 2, err  # 4: was "nobody called ..."


def test_forget_leaves_nothing_on_disk_while_the_people_page_holds_a_connection(capsys, tmp_path, face):
    path = tmp_path / "gallery.sqlite3"
    assert cli(capsys, "enroll", face, "--name", "Carol Secret", "--gallery", path)[0] == 0
    with open_gallery(path) as page:  # the People page's cached connection, open throughout
        secrets = forgettable_bytes(page, "Carol Secret")
        assert cli(capsys, "forget", "--name", "carol secret", "--gallery", path)[0] == 0
        raw = files_beside(path)
        assert [secret[:40] for secret in secrets if secret in raw] == []  # 5: the -wal file held them all
        assert page.people() == []


def test_an_enrollment_that_refuses_every_photo_creates_nothing(capsys, tmp_path):
    gallery = tmp_path / "new" / "gallery.sqlite3"
    blank = save(tmp_path / "blank.png", np.full((200, 200, 3), 200, np.uint8))
    status, lines, _ = cli(capsys, "enroll", blank, "--name", "Nobody", "--gallery", gallery)
    assert status == 1 and lines[0]["accepted"] is False
    assert not (tmp_path / "new").exists()  # 8: the folders and an empty gallery were created
    status, _, err = cli(capsys, "people", "--gallery", gallery)
    assert status == 2 and "no gallery" in one_line_error(err)


# --- 6-7. other files as galleries --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["people"], ["forget", "--name", "Ann"], ["enroll", "IMAGE", "--name", "Ann"], ["recognize", "IMAGE"]])
def test_another_applications_sqlite_file_is_refused_untouched(capsys, tmp_path, face, command):
    path = tmp_path / "contacts.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, full_name TEXT, phone TEXT)")
    before = path.read_bytes()
    status, lines, err = cli(capsys, *[face if arg == "IMAGE" else arg for arg in command], "--gallery", path)
    assert status == 2 and lines == [] and "not a Vision Lab gallery" in one_line_error(err)  # 6: tables were added
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["contacts.sqlite3"]


def test_a_read_only_gallery_can_be_listed_and_used(unwritable_folder, face):
    gallery = str(unwritable_folder / "gallery.sqlite3")
    listed = as_a_user_who_cannot_write("cli", "people", "--gallery", gallery)
    assert listed.returncode == 0, listed.stderr  # 7: "attempt to write a readonly database"
    assert json.loads(listed.stdout)["people"] == [{"name": "Ada", "photos": 1}]
    named = as_a_user_who_cannot_write("cli", "recognize", str(face), "--gallery", gallery)
    assert named.returncode == 0, named.stderr
    assert len(json.loads(named.stdout)["faces"]) == 1


# --- 9-10, 14. videos ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory, face_photos) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    return write_video(list(face_clip(face_photos[:2], 20, size=(160, 120), face_side=80)), folder / "clip.mp4", fps=10)


def test_a_still_image_renamed_mp4_is_not_annotated(capsys, tmp_path, face):
    fake = tmp_path / "holiday.mp4"
    fake.write_bytes(face.read_bytes())
    status, _, err = cli(capsys, "annotate-video", fake, tmp_path / "out.mp4", "--processors", "")
    assert status == 2 and "still image" in one_line_error(err)  # 9: a one-frame "video", exit 0
    assert not (tmp_path / "out.mp4").exists()


def test_an_mp4_whose_timescale_is_zero_is_refused(capsys, tmp_path, clip):
    data = bytearray(clip.read_bytes())
    mdhd = data.find(b"mdhd")
    timescale = mdhd + 4 + 4 + (16 if data[mdhd + 4] == 1 else 8)
    assert struct.unpack(">I", data[timescale : timescale + 4])[0] > 0
    data[timescale : timescale + 4] = bytes(4)
    broken = tmp_path / "timescale0.mp4"
    broken.write_bytes(data)
    status, lines, err = cli(capsys, "annotate-video", broken, tmp_path / "out.mp4", "--processors", "")
    assert status == 2 and lines == [] and "timing is damaged" in one_line_error(err)  # 10: fps 0.002, 19 of 20 frames lost


def test_annotated_videos_get_the_same_permissions_as_other_outputs(capsys, tmp_path, clip):
    status, lines, err = cli(capsys, "annotate-video", clip, tmp_path / "out.mp4", "--processors", "")
    assert status == 0, err
    png = tmp_path / "other.png"
    png.write_bytes(b"")
    assert (tmp_path / "out.mp4").stat().st_mode & 0o777 == png.stat().st_mode & 0o777  # 14: was 0600


# --- 11-14. style transfer -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag,value", [("--style-weight", "nan"), ("--tv-weight", "inf"), ("--content-weight=-inf", None)])
def test_stylize_refuses_weights_that_are_not_finite(capsys, tmp_path, face, flag, value):
    status, lines, err = cli(capsys, "stylize", face, face, tmp_path / "out.png", flag, *([value] if value else []))
    assert status == 2 and lines == [] and "finite" in one_line_error(err)  # 11: ran, printed bare NaN
    assert not (tmp_path / "out.png").exists()


def test_stylize_refuses_a_thin_strip_and_its_own_input_and_a_missing_folder_before_any_work(capsys, tmp_path, face):
    strip = save(tmp_path / "strip.png", np.full((1, 3000, 3), 90, np.uint8))
    status, _, err = cli(capsys, "stylize", strip, face, tmp_path / "out.png")
    assert status == 2 and "too small" in one_line_error(err)  # 12: stylized with NaN losses, exit 0
    content = tmp_path / "content.png"
    content.write_bytes(face.read_bytes())
    status, _, err = cli(capsys, "stylize", content, face, content)
    assert status == 2 and "overwrite" in one_line_error(err)  # 13: the input was overwritten
    assert content.read_bytes() == face.read_bytes()
    status, _, err = cli(capsys, "stylize", content, face, tmp_path / "missing" / "out.png")
    assert status == 2 and "no such folder" in one_line_error(err)  # 14: found only after the whole run
    assert "iteration" not in err


def test_messages_name_no_python_object(capsys, tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image, only text")
    status, lines, _ = cli(capsys, "analyze", junk)
    assert status == 1 and "not a readable image" in lines[0]["error"]
    assert "<_io" not in lines[0]["error"] and " at 0x" not in lines[0]["error"]  # 14: "<_io.BytesIO object at 0x...>"
    with pytest.raises(ImageError) as raised:
        load_image(b"x")
    assert " at 0x" not in str(raised.value)
