"""The end-to-end harness shared by the browser tests and ``bench/live_e2e.py``: the app's real
server (as ``make run`` starts it) and Debian's Chromium driven by Playwright, with a fake camera.

WebRTC between the two works only inside a loopback-only network namespace
(scripts/loopback_netns.sh, which ``make test`` and the benchmark use), and only with the flags of
:data:`BASE_FLAGS`; the server is told to use no ICE server at all.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
IN_LOOPBACK_NAMESPACE = os.environ.get("VISION_LAB_NETNS") == "1"
BASE_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def camera_flags(clip: Path) -> list[str]:
    """Chromium flags for a granted camera that plays ``clip`` (a .y4m file) in a loop."""
    return ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}"]


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


@dataclass
class Server:
    url: str
    log: Path
    process: subprocess.Popen

    @property
    def gallery(self) -> Path:
        return self.log.parent / "gallery.sqlite3"


@contextmanager
def app_server(folder: Path, env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """The app's server on a free loopback port, its log and gallery in ``folder`` (never the
    user's own gallery), no ICE servers; stopped on exit."""
    port = free_port()
    log = folder / "streamlit.log"
    full_env = {**os.environ, "VISION_LAB_ICE_SERVERS": "[]", "PYTHONUNBUFFERED": "1",
                "VISION_LAB_GALLERY": str(folder / "gallery.sqlite3"), **(env or {})}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "scripts/serve.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port)],
            cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", log, process)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2).read() == b"ok"
        except OSError:
            return False

    try:
        wait_until(healthy, 90, "the Streamlit server to answer")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def launch(playwright, *flags: str):
    """Debian's Chromium, headless, with the flags WebRTC on loopback needs and ``flags``."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[*BASE_FLAGS, *flags])


def metric(page, label: str) -> float | None:
    """The number shown by the ``st.metric`` called ``label``, or None while it is absent."""
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    if box.count() == 0:
        return None
    match = re.search(r"-?\d+(\.\d+)?", box.first.locator('[data-testid="stMetricValue"]').inner_text())
    return float(match.group()) if match else None


def webrtc_component(page):
    """The streamlit-webrtc component's frame (START / STOP and the returned <video>)."""
    return page.frame_locator('iframe[title*="webrtc"]')


def start_stream(page) -> None:
    """Press START and wait until the processed video plays in the page."""
    component = webrtc_component(page)
    component.get_by_role("button", name=re.compile("start", re.I)).click(timeout=60_000)
    video = component.locator("video").first

    def playing() -> bool:
        return video.count() > 0 and video.evaluate("v => v.videoWidth > 0 && v.currentTime > 1 && !v.paused")

    wait_until(playing, 90, "the processed video to play in the browser")


def received_frame(page) -> np.ndarray:
    """The frame the page's processed <video> shows now, as a BGR image (what the user sees)."""
    video = webrtc_component(page).locator("video").first
    data_url = video.evaluate(
        "v => { const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;"
        " c.getContext('2d').drawImage(v, 0, 0); return c.toDataURL('image/png'); }"
    )
    return cv2.imdecode(np.frombuffer(base64.b64decode(data_url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


def color_pixels(image: np.ndarray, bgr: tuple[int, int, int], tolerance: int = 40) -> int:
    """How many pixels of ``image`` are within ``tolerance`` (per channel) of the colour ``bgr``:
    overlays survive the video codec's rounding, not exactly."""
    return int((np.abs(image.astype(int) - np.array(bgr)) <= tolerance).all(axis=2).sum())


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
