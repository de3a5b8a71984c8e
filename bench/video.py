"""Benchmark of video-file annotation (decode, pipeline, H.264 encode, audio copy); prints one JSON object.

    .venv/bin/python bench/video.py [--seconds 10] [--scenario boxes ...] [--page]

The clip: 640x480 at 30 fps, two real faces drifting, an AAC tone, written by the benchmark.
For each scenario (processors on a tracked pipeline with the default detector, YuNet): frames
annotated per second of wall time and the real-time factor (video seconds per wall second; >= 1
keeps up with playback). Target on the 2-core development machine: "boxes" at real time or faster.

``--page``: the same clip annotated as people do it, with every face processor: by the command
(``python -m core annotate-video``, wall time of the whole command) and on the Video page of the
real server in Chromium (from the Annotate click to the result on the page, models loaded by the
click as the command loads them), and their ratio (target: the page within 1.5x of the command).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import core  # noqa: E402,F401  (import-order guard before anything heavy)
from bench.common import SHARED_DATA, shared_data_or_skip  # noqa: E402
from core.analysis.detect import DEFAULT_DETECTOR  # noqa: E402
from core.analysis.processors import build_processors  # noqa: E402
from core.stream.pipeline import FramePipeline, PipelineConfig  # noqa: E402
from core.stream.synthetic import face_clip, write_video  # noqa: E402
from core.stream.video import VIDEO_CODEC, annotate_video  # noqa: E402
from tests.e2e import CHROMIUM, REPO, app_server, launch  # noqa: E402

FACES = SHARED_DATA / "faces_identities"
FPS = 30
# name -> (detector, processors)
FACE_PROCESSORS = ("keypoints", "recognition", "age_gender")
SCENARIOS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "copy-only": (None, ()),
    "boxes": (DEFAULT_DETECTOR, ()),
    "recognition": (DEFAULT_DETECTOR, ("recognition",)),
    "all": (DEFAULT_DETECTOR, FACE_PROCESSORS),
}
TARGET_REALTIME = {"boxes": 1.0}
TARGET_PAGE_RATIO = 1.5
LABELS = {"keypoints": "Facial keypoints (our CNN)", "recognition": "Recognition (names)", "age_gender": "Age & gender"}


def run(detector: str | None, names: tuple[str, ...], clip: Path, folder: Path) -> dict:
    processors, missing = build_processors(names, {"recognition": {"gallery": str(folder / "empty-gallery.sqlite3")}})
    if missing:
        return {"skipped": "; ".join(missing.values())}
    pipeline = FramePipeline(PipelineConfig(detector=detector, processors=processors, tracking=True))
    start = time.perf_counter()
    summary = annotate_video(clip, folder / "out.mp4", pipeline)
    elapsed = time.perf_counter() - start
    return {
        "frames_per_second": round(summary["frames"] / elapsed, 1),
        "realtime_factor": round(summary["seconds"] / elapsed, 2),
        "faces_seen": summary["faces_seen"],
        "stage_ms": pipeline.stats.snapshot()["stage_ms"],
        "errors": summary["errors"],
    }


def command_and_page(clip: Path, folder: Path) -> dict:
    """Seconds to annotate ``clip`` with every face processor by the command and on the Video page."""
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "VISION_LAB_GALLERY": str(folder / "gallery.sqlite3")}  # the server's (app_server): none yet
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", "annotate-video", str(clip), str(folder / "cli.mp4"),
                    "--processors", ",".join(FACE_PROCESSORS)], cwd=REPO, env=env, check=True, capture_output=True)  # fmt: skip
    command_s = time.perf_counter() - start
    with app_server(folder) as server, sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{server.url}/video")
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(clip))
        sidebar = page.locator('[data-testid="stSidebar"]')
        for name in FACE_PROCESSORS:
            box = sidebar.get_by_role("checkbox", name=LABELS[name])
            if not box.is_checked():
                sidebar.get_by_text(LABELS[name], exact=True).click()
                page.wait_for_timeout(500)
        page.get_by_role("button", name="Annotate").click(timeout=60_000)
        start = time.perf_counter()
        page.get_by_text(re.compile(r"\d+ frames \(")).wait_for(timeout=600_000)
        page_s = time.perf_counter() - start
        browser.close()
    return {"command_s": round(command_s, 1), "page_s": round(page_s, 1), "page_over_command": round(page_s / command_s, 2),
            "target": TARGET_PAGE_RATIO, "target_met": page_s / command_s <= TARGET_PAGE_RATIO}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--page", action="store_true", help="also time the command against the Video page (Chromium)")
    args = parser.parse_args()
    if not shared_data_or_skip(FACES):
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        folder = Path(tmp)
        frames = list(face_clip(sorted(FACES.glob("*/1.jpg"))[:6], args.seconds * FPS, faces_per_frame=2))
        clip = write_video(frames, folder / "clip.mp4", fps=FPS, audio_codec="aac")
        results = {name: run(*SCENARIOS[name], clip, folder) for name in args.scenario or SCENARIOS}
        page = command_and_page(clip, folder) if args.page and CHROMIUM.exists() else None
    report = {
        "benchmark": "video",
        "frame_size": [640, 480],
        "seconds": args.seconds,
        "video_codec": VIDEO_CODEC,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "scenarios": results,
        **({"command_and_page": page} if page else {}),
        "targets_met": {
            name: results[name].get("realtime_factor", 0) >= factor for name, factor in TARGET_REALTIME.items() if name in results
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
