"""Benchmark of video-file annotation (decode, pipeline, H.264 encode, audio copy); prints one JSON object.

    .venv/bin/python bench/video.py [--seconds 10] [--scenario haar ...]

The clip: 640x480 at 30 fps, two real faces drifting, an AAC tone, written by the benchmark.
For each scenario (processors on a tracked Haar pipeline): frames annotated per second of wall
time and the real-time factor (video seconds per wall second; >= 1 keeps up with playback).
Target on the 2-core development machine: "haar" (boxes only) at real time or faster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import core  # noqa: E402,F401  (import-order guard before anything heavy)
from bench.common import SHARED_DATA, shared_data_or_skip  # noqa: E402
from core.analysis.processors import build_processors  # noqa: E402
from core.stream.pipeline import FramePipeline, PipelineConfig  # noqa: E402
from core.stream.synthetic import face_clip, write_video  # noqa: E402
from core.stream.video import VIDEO_CODEC, annotate_video  # noqa: E402

FACES = SHARED_DATA / "faces_identities"
FPS = 30
# name -> (detector, processors)
SCENARIOS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "copy-only": (None, ()),
    "haar": ("haar", ()),
    "recognition": ("haar", ("recognition",)),
    "all": ("haar", ("keypoints", "recognition", "age_gender")),
}
TARGET_REALTIME = {"haar": 1.0}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    args = parser.parse_args()
    if not shared_data_or_skip(FACES):
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        folder = Path(tmp)
        frames = list(face_clip(sorted(FACES.glob("*/1.jpg"))[:6], args.seconds * FPS, faces_per_frame=2))
        clip = write_video(frames, folder / "clip.mp4", fps=FPS, audio_codec="aac")
        results = {name: run(*SCENARIOS[name], clip, folder) for name in args.scenario or SCENARIOS}
    report = {
        "benchmark": "video",
        "frame_size": [640, 480],
        "seconds": args.seconds,
        "video_codec": VIDEO_CODEC,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "scenarios": results,
        "targets_met": {
            name: results[name].get("realtime_factor", 0) >= factor for name, factor in TARGET_REALTIME.items() if name in results
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
