"""Guards for the traps of this stack (see ../shared/DESIGN.md, "Traps")."""

import ast
import json
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
        # pages run after streamlit_app.py; they must not import TensorFlow or Keras themselves
        imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(page.read_text()))
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(page.read_text()))
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"tensorflow", "keras"}, f"{page.name} imports TensorFlow directly"


def test_opencv_has_haar_cascades():
    assert int(cv2.__version__.split(".")[0]) < 5
    assert not cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml").empty()


def test_face_recognition_really_imports():
    # with setuptools >= 82 this import prints a message and quit()s with status 0
    assert int(version("setuptools").split(".")[0]) < 82
    done = run_python("import face_recognition; print('encodings', len(face_recognition.face_encodings.__doc__) > 0)")
    assert done.returncode == 0 and "encodings True" in done.stdout, done.stdout + done.stderr


HOUSEKEEPING_PROBE = """
import streamlit_webrtc, gc, json, threading, time
import keras
from streamlit.testing.v1 import AppTest
from core.analysis.processors import build_processors

processors, _ = build_processors(["keypoints"])  # a tf.function the frame thread calls, as on the Live page
model = processors[0].model
crops = __import__("numpy").full((4, 96, 96), 128, "uint8")
model.predict_crops(crops)
calls = {"clear_session": 0, "gc.collect(2)": 0}
clear_session, collect = keras.backend.clear_session, gc.collect
def counted_clear_session(*a, **k):
    calls["clear_session"] += 1
    return clear_session(*a, **k)
def counted_collect(generation=2):
    calls["gc.collect(2)"] += generation == 2
    return collect(generation)
keras.backend.clear_session, gc.collect = counted_clear_session, counted_collect
done, stop = [0], threading.Event()
def frames():
    while not stop.is_set():
        model.predict_crops(crops)
        done[0] += 1
worker = threading.Thread(target=frames, daemon=True)
worker.start()
time.sleep(2.0)
alone = done[0] / 2.0
app = AppTest.from_file("streamlit_app.py", default_timeout=60)
start, before = time.monotonic(), done[0]
for _ in range(12):  # the Home page rerun every 0.25 s, as the Live panel's fragment reruns
    app.run()
    time.sleep(0.25)
during = (done[0] - before) / (time.monotonic() - start)
stop.set()
worker.join(30)
print(json.dumps({**calls, "alone_per_s": alone, "during_per_s": during, "finished": not worker.is_alive(),
                  "exception": [e.value for e in app.exception]}))
"""


def test_streamlit_housekeeping_leaves_tensorflow_alone():
    """Streamlit resets Keras (clear_session: kernel cache cleared, full GC) and runs gc.collect(2)
    after every script run. The app turns both off (pages/_runtime.py), so a tf.function on another
    thread keeps its pace and finishes while the app's pages rerun. Without the guard here: 12 calls
    of each, and the loop ran at about half its pace."""
    done = run_python(HOUSEKEEPING_PROBE)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exception"] == [] and report["finished"], report
    assert report["clear_session"] == 0 and report["gc.collect(2)"] == 0, report
    assert report["during_per_s"] > 0.75 * report["alone_per_s"], report
