"""The benchmark users feel: the Live page on the real server, with Chromium on the same machine.

    .venv/bin/python bench/live_e2e.py [--processors keypoints,recognition,age_gender] [--seconds 20]

Starts the app's server (``scripts/serve.py``, as ``make run`` does), enrolls 10 LFW people in
a fresh gallery, feeds Chromium's fake camera a 640x480 clip of group photos (scenes of 3, 4, 5
and 6 faces: the enrolled people among strangers), opens the Live page, ticks the processors,
presses START and, after a warm-up, measures for ``--seconds``. Prints one JSON object:

- ``server_fps``: frames the server's pipeline processed per second (median of the one-second
  lines the stream writes to ``VISION_LAB_LIVE_METRICS``), and the mean over the whole window;
- ``frame_ms_p50`` / ``frame_ms_p95`` over every processed frame (the whole frame callback: PyAV
  conversions, pipeline, drawing), ``stage_ms`` per stage, and ``busy_fraction``, the share of
  the time the frame thread spent in the callback (below 1: it waited for frames);
- ``browser_fps``: frames the page's <video> presented per second (re-sent frames included);
- ``rss_mb`` of the server: idle after start, when the measurement starts, at its end;
- ``target_fps`` and ``target_met``.

Runs itself inside a loopback-only network namespace (scripts/loopback_netns.sh) when it is not
in one: WebRTC between the browser and the server never leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import core  # noqa: E402,F401  (import-order guard before anything heavy)
from bench.common import SHARED_DATA, shared_data_or_skip  # noqa: E402
from core.stream.live import METRICS_ENV  # noqa: E402
from core.stream.synthetic import group_clip, write_y4m  # noqa: E402
from tests.e2e import (  # noqa: E402
    CHROMIUM,
    IN_LOOPBACK_NAMESPACE,
    REPO,
    app_server,
    camera_flags,
    launch,
    rss_mb,
    start_stream,
    wait_until,
)

FACES = SHARED_DATA / "faces_identities"
TARGET_FPS = 15.0
LABELS = {"keypoints": "Facial keypoints (our CNN)", "recognition": "Recognition (names)", "age_gender": "Age & gender",
          "objects": "Objects (ImageNet)", "effects": "Face effects and privacy blur",  # effects: sunglasses and crown
          "style": "Style (paint the video)"}
STYLE_SIZES = [160, 240, 320, 480, 640]  # the Live page's choices, 320 its default
ENROLLED = 10  # the first 10 LFW people are enrolled from their photo 1; the clip shows photos 2-4 of all 40


def enroll_people(gallery: Path) -> None:
    for person in sorted(p for p in FACES.iterdir() if p.is_dir())[:ENROLLED]:
        subprocess.run([sys.executable, "-m", "core", "enroll", "--gallery", str(gallery), "--name", person.name.replace("_", " "), "--largest-face",
                        str(person / "1.jpg")], cwd=REPO, check=True, capture_output=True)


def browser_frames(page) -> int:
    """Frames the page's processed <video> has presented so far."""
    video = page.frame_locator('iframe[title*="webrtc"]').locator("video").first
    return int(video.evaluate("v => v.getVideoPlaybackQuality().totalVideoFrames"))


def choose_style(page, size: int, region: str) -> None:
    """Set the Style processor's processing size (keyboard on the slider) and region (its radio)."""
    from core.style.fast import REGIONS

    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text(REGIONS[region], exact=True).click(timeout=60_000)
    page.wait_for_timeout(1000)
    steps = STYLE_SIZES.index(size) - STYLE_SIZES.index(320)
    if steps:
        sidebar.locator('input[type="range"]').last.focus()  # the size slider's range input
    for _ in range(abs(steps)):
        page.keyboard.press("ArrowRight" if steps > 0 else "ArrowLeft")
        page.wait_for_timeout(300)
    page.get_by_text("Processing size").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)


def measure(processors: list[str], detector: str | None, seconds: float, warmup: float, folder: Path,
            style: tuple[int, str] = (320, "all")) -> dict:  # fmt: skip
    from playwright.sync_api import sync_playwright

    photos = [p for n in (2, 3, 4) for p in sorted(FACES.glob(f"*/{n}.jpg"))]
    clip = write_y4m(group_clip(photos, n_frames=240), folder / "groups.y4m")  # 8 s, looped by Chromium
    metrics = folder / "metrics.jsonl"
    enroll_people(folder / "gallery.sqlite3")
    with app_server(folder, env={METRICS_ENV: str(metrics)}) as server, sync_playwright() as playwright:
        rss_idle = rss_mb(server.process.pid)
        browser = launch(playwright, *camera_flags(clip))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{server.url}/live")
        sidebar = page.locator('[data-testid="stSidebar"]')
        if detector:
            sidebar.get_by_text(detector, exact=False).first.click(timeout=60_000)
        for name in processors:
            sidebar.get_by_text(LABELS[name], exact=True).click(timeout=60_000)
            page.wait_for_timeout(500)
        if "style" in processors:
            choose_style(page, *style)
        wait_until(lambda: page.get_by_text("Loading the models").count() == 0, 120, "the models to load")
        start_stream(page)
        time.sleep(warmup)
        rss_start, frames0, t0 = rss_mb(server.process.pid), browser_frames(page), time.monotonic()
        lines_before = len(metrics.read_text().splitlines()) if metrics.exists() else 0
        time.sleep(seconds)
        rss_end, frames1, t1 = rss_mb(server.process.pid), browser_frames(page), time.monotonic()
        lines = [json.loads(line) for line in metrics.read_text().splitlines()[lines_before:]]
        browser.close()
    if len(lines) < 2:
        raise SystemExit(f"the server wrote {len(lines)} metrics lines in {seconds} s: the stream did not run")
    per_second = [(b["frames_total"] - a["frames_total"]) / (b["t"] - a["t"]) for a, b in zip(lines, lines[1:])]
    frame_ms = sorted(ms for line in lines for ms in line["frame_ms"])
    stages = sorted({stage for line in lines for stage in line["stage_ms"]})
    mean_fps = (lines[-1]["frames_total"] - lines[0]["frames_total"]) / (lines[-1]["t"] - lines[0]["t"])
    return {
        "server_fps": round(statistics.median(per_second), 1),
        "server_fps_mean": round(mean_fps, 1),
        "frame_ms_p50": round(frame_ms[len(frame_ms) // 2], 1),
        "frame_ms_p95": round(frame_ms[int(len(frame_ms) * 0.95)], 1),
        "stage_ms": {s: round(statistics.mean(line["stage_ms"][s] for line in lines if s in line["stage_ms"]), 1) for s in stages},
        "busy_fraction": round(sum(ms for line in lines[1:] for ms in line["frame_ms"]) / 1000 / (lines[-1]["t"] - lines[0]["t"]), 2),
        "faces_median": statistics.median(line["faces"] for line in lines),
        "browser_fps": round((frames1 - frames0) / (t1 - t0), 1),
        "rss_mb": {"idle": round(rss_idle), "start": round(rss_start), "end": round(rss_end)},
        "seconds_measured": round(lines[-1]["t"] - lines[0]["t"], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processors", default="keypoints,recognition,age_gender", help="comma-separated (see LABELS)")
    parser.add_argument("--detector", help="the detector radio's label to click (default: the page's default)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--style-size", type=int, default=320, choices=STYLE_SIZES, help="with style: its processing size")
    parser.add_argument("--style-region", default="all", help="with style: all, background, faces or split")
    args = parser.parse_args()
    if not shared_data_or_skip(FACES):
        return 0
    if not CHROMIUM.exists():
        print(json.dumps({"skipped": f"{CHROMIUM} is absent: `make test` installs Debian's chromium"}))
        return 0
    if not IN_LOOPBACK_NAMESPACE:  # WebRTC on this machine runs in a loopback-only namespace
        return subprocess.call([str(REPO / "scripts" / "loopback_netns.sh"), sys.executable, *sys.argv])
    processors = [p for p in args.processors.split(",") if p]
    with tempfile.TemporaryDirectory(prefix="live-e2e-") as folder:
        result = measure(processors, args.detector, args.seconds, args.warmup, Path(folder), (args.style_size, args.style_region))
    print(json.dumps({
        "benchmark": "live_e2e", "processors": processors, "detector": args.detector or "default",
        **({"style": {"size": args.style_size, "region": args.style_region}} if "style" in processors else {}),
        "clip": "640x480, scenes of 3-6 LFW faces, 10 people enrolled", **result,
        "target_fps": TARGET_FPS, "target_met": result["server_fps"] >= TARGET_FPS,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
