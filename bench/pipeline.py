"""Benchmark of the frame pipeline at 640x480 on a clip of real face photos; prints one JSON object.

    .venv/bin/python bench/pipeline.py [--frames 300] [--scenario yunet-1face ...]

A part of the product in a plain process, the second table of the README: the headline figure is
``bench/live_e2e.py`` (the real server and browser). For each scenario (a pipeline configuration
and a number of faces per frame): frames per second and p50/p95 milliseconds per frame of
``FramePipeline.annotate`` (detect, processors, draw), after a warm-up, on one thread, as the live
stream's processing thread runs it. ``groups-3proc`` is the live e2e benchmark's load: scenes of
3-6 faces with keypoints, recognition and age & gender. Targets on the 2-core development machine:
yunet-1face >= 40 fps, keypoints-1face >= 25 fps, age_gender-3faces >= 20 fps, recognition-3faces >= 15 fps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import core  # noqa: E402,F401  (import-order guard before anything heavy)
from bench.common import SHARED_DATA, shared_data_or_skip  # noqa: E402
from core.analysis.processors import get_processor  # noqa: E402
from core.stream.pipeline import FramePipeline, PipelineConfig  # noqa: E402
from core.stream.synthetic import face_clip, group_clip  # noqa: E402

FACES = SHARED_DATA / "faces_identities"
TARGETS_FPS = {"yunet-1face": 40.0, "keypoints-1face": 25.0, "age_gender-3faces": 20.0, "recognition-3faces": 15.0}
ABSENT_GALLERY = Path(__file__).resolve().parent / "no-such-gallery.sqlite3"  # the processor never creates one


def with_processors(*names: str) -> Callable[[], PipelineConfig]:
    """The default detector with catalogue processors, built only when its scenario runs.
    Recognition reads a gallery file that does not exist: the cost is the tracked encoding,
    matching a real gallery adds microseconds."""
    options = {"recognition": {"gallery": str(ABSENT_GALLERY)}}
    return lambda: PipelineConfig(processors=tuple(get_processor(n, **options.get(n, {})) for n in names))


# name -> (configuration or a function building it, faces per frame)
SCENARIOS: dict[str, tuple[PipelineConfig | Callable[[], PipelineConfig], int]] = {
    "draw-only": (PipelineConfig(detector=None), 1),
    "yunet-1face": (PipelineConfig(detector="yunet"), 1),
    "yunet-3faces": (PipelineConfig(detector="yunet"), 3),
    "haar-1face": (PipelineConfig(detector="haar"), 1),
    "haar-3faces": (PipelineConfig(detector="haar"), 3),
    "hog-1face": (PipelineConfig(detector="hog"), 1),
    "keypoints-1face": (with_processors("keypoints"), 1),
    "age_gender-3faces": (with_processors("age_gender"), 3),
    "recognition-3faces": (with_processors("recognition"), 3),
    "groups-3proc": (with_processors("keypoints", "recognition", "age_gender"), 0),  # 0: the group clip
}


def run(config: PipelineConfig | Callable[[], PipelineConfig], faces_per_frame: int, n_frames: int, warmup: int = 10) -> dict:
    if callable(config):
        config = config()
    if faces_per_frame:
        side = 200 if faces_per_frame == 1 else 640 // faces_per_frame - 10
        frames = list(face_clip(sorted(FACES.glob("*/1.jpg")), n_frames + warmup, faces_per_frame=faces_per_frame, face_side=side))
    else:  # the live e2e benchmark's clip: scenes of 3, 4, 5, 6 faces, 2 s each
        frames = list(group_clip([p for n in (2, 3, 4) for p in sorted(FACES.glob(f"*/{n}.jpg"))], n_frames + warmup))
    pipeline = FramePipeline(config)
    for frame in frames[:warmup]:
        pipeline.annotate(frame)
    times, found = [], []
    start = time.perf_counter()
    for frame in frames[warmup:]:
        t0 = time.perf_counter()
        _, result = pipeline.annotate(frame)
        times.append((time.perf_counter() - t0) * 1000)
        found.append(len(result.faces))
    elapsed = time.perf_counter() - start
    ms = np.array(times)
    return {
        "fps": round(n_frames / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "faces_per_frame": faces_per_frame or "3-6",
        "mean_faces_found": round(float(np.mean(found)), 2),
        "stage_ms": pipeline.stats.snapshot()["stage_ms"],
        "errors": pipeline.stats.snapshot()["errors"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    args = parser.parse_args()
    if not shared_data_or_skip(FACES):
        return 0
    results = {name: run(*SCENARIOS[name], args.frames) for name in args.scenario or SCENARIOS}
    report = {
        "benchmark": "pipeline",
        "frame_size": [640, 480],
        "frames": args.frames,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "scenarios": results,
        "targets_met": {name: results[name]["fps"] >= fps for name, fps in TARGETS_FPS.items() if name in results},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
