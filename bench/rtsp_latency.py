"""Latency of an RTSP camera's annotated stream: from a frame's capture to its annotated image.

    .venv/bin/python bench/rtsp_latency.py [--processors keypoints,recognition,age_gender] [--seconds 60] [--cameras 1]

Serves a 640x480 clip of group photos (scenes of 3, 4, 5 and 6 LFW faces, the live e2e
benchmark's clip; 10 of the people enrolled in a fresh gallery) as a real RTSP camera on
loopback (tests/stream/rtsp_relay.py, fed by Debian's ffmpeg at the clip's 30 fps), reads it with
:class:`core.stream.sources.SourceStream` as the Live page would, and after ``--warmup`` seconds
measures for ``--seconds``. With ``--cameras N`` it reads N streams at once (N connections to the
camera, each with its own pipeline, the processors shared as on the Live page): how many a
2-core server holds. Prints one JSON object:

- ``latency_ms`` p50 / p95 / max over every processed frame (of every camera): from the moment the source decoded
  the frame (``captured_at``) to the moment its annotated image was ready;
- ``per_minute``: the same p50 / p95 and the fps for each minute, and ``growth_ms_per_minute``,
  the slope of a line fitted to every frame's latency against time (lag building up shows here);
- ``fps`` processed per camera (``fps_per_camera`` with several), ``frames_dropped_share`` (frames the camera sent that were never processed:
  the newest frame always wins), ``stage_ms`` per stage, ``rss_mb`` at start and end;
- ``target_met``: p95 <= 300 ms and growth below 10 ms per minute.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import core  # noqa: E402,F401  (import-order guard before anything heavy)
from bench.common import shared_data_or_skip  # noqa: E402
from bench.live_e2e import ENROLLED, FACES, enroll_people  # noqa: E402
from core.stream.sources import percentile  # noqa: E402

TARGET_P95_MS = 300.0
TARGET_GROWTH_MS_PER_MINUTE = 10.0


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


def latency_figures(values: list[float]) -> dict[str, float | None]:
    p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
    return {"p50": p50 and round(p50, 1), "p95": p95 and round(p95, 1), "max": round(max(values), 1) if values else None}


def measure(processors: list[str], seconds: float, warmup: float, folder: Path, cameras: int = 1) -> dict:
    from core.analysis.processors import build_processors
    from core.stream.pipeline import PipelineConfig
    from core.stream.sources import NetworkSource, ProcessedFrame, SourceStream
    from core.stream.synthetic import group_clip, write_video
    from tests.e2e import free_port
    from tests.stream.rtsp_relay import camera

    photos = [p for n in (2, 3, 4) for p in sorted(FACES.glob(f"*/{n}.jpg"))]
    clip = write_video(list(group_clip(photos, n_frames=240)), folder / "groups.mp4")  # 8 s, looped by ffmpeg
    gallery = folder / "gallery.sqlite3"
    enroll_people(gallery)
    built, unavailable = build_processors(processors, {"recognition": {"gallery": str(gallery)}})
    if unavailable:
        raise SystemExit("; ".join(unavailable.values()))
    samples: list[tuple[float, float]] = []  # (done at, latency ms) of every camera, measured frames only
    processed = [0] * cameras
    measuring = {"from": float("inf")}

    def collector(index: int):
        def collect(frame: ProcessedFrame) -> None:  # list.append is atomic: the streams' threads share it
            if frame.captured_at >= measuring["from"]:
                samples.append((time.monotonic(), frame.latency_ms))
                processed[index] += 1

        return collect

    with camera(clip, free_port()) as cam:
        streams = [SourceStream(NetworkSource(cam.url), PipelineConfig(processors=built), collector(i), window_s=seconds).start()
                   for i in range(cameras)]  # fmt: skip
        try:
            time.sleep(warmup)
            measuring["from"] = start = time.monotonic()
            received0, rss_start = [s.source.status().frames for s in streams], rss_mb()
            time.sleep(seconds)
            end, received1, rss_end = time.monotonic(), [s.source.status().frames for s in streams], rss_mb()
            snapshot = streams[0].snapshot()
        finally:
            for stream in streams:
                stream.stop()
    if min(processed) < 2:
        raise SystemExit(f"{min(processed)} frames processed in {seconds} s: a stream did not run ({snapshot['message']})")
    received = sum(received1) - sum(received0)
    latencies = [latency for _, latency in samples]
    minutes = []
    for minute in range(int(-(-seconds // 60))):
        inside = [latency for at, latency in samples if start + 60 * minute <= at < min(end, start + 60 * (minute + 1))]
        span = min(60.0, end - start - 60 * minute)
        minutes.append({"minute": minute + 1, **latency_figures(inside), "fps": round(len(inside) / span / cameras, 1)})
    slope = statistics.linear_regression([at - start for at, _ in samples], latencies).slope * 60
    figures = latency_figures(latencies)
    return {
        "latency_ms": figures,
        "per_minute": minutes,
        "growth_ms_per_minute": round(slope, 2),
        "fps": round(len(samples) / (end - start) / cameras, 1),
        **({"fps_per_camera": [round(n / (end - start), 1) for n in processed]} if cameras > 1 else {}),
        "camera_fps": round(received / (end - start) / cameras, 1),
        "frames_dropped_share": round(1 - len(samples) / max(received, 1), 2),
        "stage_ms": snapshot["stage_ms"],
        "errors": snapshot["errors"],
        "rss_mb": {"start": round(rss_start), "end": round(rss_end)},
        "seconds_measured": round(end - start, 1),
        "target_met": figures["p95"] <= TARGET_P95_MS and slope < TARGET_GROWTH_MS_PER_MINUTE,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processors", default="keypoints,recognition,age_gender", help="comma-separated, from the catalogue")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--cameras", type=int, default=1, help="streams read and annotated at once (default 1)")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring (models warming up)")
    args = parser.parse_args()
    if not shared_data_or_skip(FACES):
        return 0
    from tests.stream.rtsp_relay import FFMPEG

    if FFMPEG is None:
        print(json.dumps({"skipped": "ffmpeg is absent: scripts/install.sh --test installs Debian's ffmpeg"}))
        return 0
    processors = [p for p in args.processors.split(",") if p]
    with tempfile.TemporaryDirectory(prefix="rtsp-latency-") as folder:
        result = measure(processors, args.seconds, args.warmup, Path(folder), max(1, args.cameras))
    print(json.dumps({
        "benchmark": "rtsp_latency", "processors": processors, "cameras": max(1, args.cameras),
        "clip": f"640x480 at 30 fps over RTSP (TCP, loopback), scenes of 3-6 LFW faces, {ENROLLED} people enrolled",
        **result, "target_p95_ms": TARGET_P95_MS, "target_growth_ms_per_minute": TARGET_GROWTH_MS_PER_MINUTE,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with the ffmpeg camera)",
        "date": time.strftime("%Y-%m-%d"),
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
