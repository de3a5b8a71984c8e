import streamlit_webrtc  # noqa: F401, I001  (must precede TensorFlow: see core/__init__.py)

import itertools
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
FACES_DIR = SHARED_DATA / "faces_identities"


def shared_data(relative: str) -> Path:
    """A path under ../shared/data; skips the calling test, saying why, when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data folder must sit beside the repository")
    return path


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A private PostgreSQL 16 with pgvector (the pgserver wheel), for the whole test session:
    the shared gallery's tests run against a real server, not a mock."""
    try:
        import pgserver
    except ImportError:
        pytest.skip("pgserver is not installed: scripts/install.sh --test installs it (requirements-test.txt)")
    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="delete")
    yield server
    server.cleanup()


_DATABASES = itertools.count()


def fresh_database(server) -> str:
    """The URL of a new, empty database on ``server`` (one per test: no test sees another's people)."""
    import psycopg

    name = f"gallery_{os.getpid()}_{next(_DATABASES)}"
    with psycopg.connect(server.get_uri(), autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return server.get_uri(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def gallery_location(request, tmp_path) -> str:
    """A fresh, empty gallery's location, once per store: a SQLite file, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "gallery.sqlite3")
    return fresh_database(request.getfixturevalue("postgres_server"))


@pytest.fixture(scope="session")
def face_photos() -> list[Path]:
    """The first photo of each of the 40 LFW people (150x150, one frontal face each)."""
    return sorted(shared_data("faces_identities").glob("*/1.jpg"))


def paste(frame: np.ndarray, photo: Path, x: int, y: int, side: int) -> None:
    """Put ``photo`` resized to ``side`` pixels into ``frame`` with its top-left corner at (x, y)."""
    from core.images import load_image

    frame[y : y + side, x : x + side] = cv2.resize(load_image(photo), (side, side), interpolation=cv2.INTER_AREA)


@pytest.fixture
def two_face_frame(face_photos: list[Path]) -> np.ndarray:
    """A 640x480 frame with two known faces, at x in [40, 260) and [360, 580)."""
    frame = np.full((480, 640, 3), 110, np.uint8)
    paste(frame, face_photos[0], 40, 120, 220)
    paste(frame, face_photos[1], 360, 120, 220)
    return frame


@pytest.fixture
def unwritable_folder():
    """A folder holding a gallery of one person (Ada, tolerance 0.5) that neither the folder nor the
    file let anybody but root write (in /tmp: another user must reach it)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="vision-lab-readonly-"))
    from core.faces import Box
    from core.store.gallery import NewPhoto, open_gallery

    with open_gallery(folder / "gallery.sqlite3") as gallery:
        gallery.add_photos("Ada", [NewPhoto("ada.jpg", Box(10, 60, 60, 10), b"jpeg", np.ones(128), "sface")])
        gallery.set_setting("tolerance", "0.5")
    (folder / "gallery.sqlite3").chmod(0o444)
    folder.chmod(0o555)  # not even -shm can be created beside it
    yield folder
    folder.chmod(0o755)
    shutil.rmtree(folder)


def as_a_user_who_cannot_write(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -c code`` (or ``python -m core`` when ``code`` is "cli") as a user for whom
    0444 files are read-only: this one when not root, else nobody (root writes anything)."""
    command = [sys.executable, *(["-m", "core", *args] if code == "cli" else ["-c", code])]
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": "/tmp"}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report on the test item, so fixtures can react to a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
