"""Guards for the three traps of this stack (see ../shared/DESIGN.md, "Traps")."""

import ast
import subprocess
import sys
from importlib.metadata import version

import cv2

from tests.conftest import REPO


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_importing_core_first_keeps_tensorflow_then_webrtc_alive():
    done = run_python("import core, tensorflow, streamlit_webrtc, pylibsrtp; pylibsrtp.Policy(); print('alive')")
    assert done.returncode == 0 and "alive" in done.stdout, done.stderr[-2000:]


def first_import(path) -> str:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            return node.names[0].name
        if isinstance(node, ast.ImportFrom):
            return node.module
    return ""


def test_entry_points_import_webrtc_or_core_before_anything_else():
    assert first_import(REPO / "streamlit_app.py") == "streamlit_webrtc"
    assert first_import(REPO / "tests" / "conftest.py") == "streamlit_webrtc"
    for page in (REPO / "pages").glob("*.py"):
        # pages run after streamlit_app.py; they must not import TensorFlow at top level themselves
        assert "tensorflow" not in page.read_text(), f"{page.name} imports TensorFlow directly"


def test_opencv_has_haar_cascades():
    assert int(cv2.__version__.split(".")[0]) < 5
    assert not cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml").empty()


def test_face_recognition_really_imports():
    # with setuptools >= 82 this import prints a message and quit()s with status 0
    assert int(version("setuptools").split(".")[0]) < 82
    done = run_python("import face_recognition; print('encodings', len(face_recognition.face_encodings.__doc__) > 0)")
    assert done.returncode == 0 and "encodings True" in done.stdout, done.stdout + done.stderr
