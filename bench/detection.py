"""Benchmark of the face detectors on scenes with known faces; prints one JSON object.

    .venv/bin/python bench/detection.py [--frames 100] [--cnn]

The scenes: each of the 4 style-transfer photos of ``../shared/data`` (streets, a bridge, a tower:
no faces of their own) as a 640x480 background, with 4 LFW photos pasted at random places, their
sides drawn from 60, 100, 160 and 260 px (an LFW photo's face is about a third of its side: faces
of ~20 to ~90 px). Photos 5-10 of the 40 people, so no scene repeats a photo the tests use.

Scoring: a pasted photo's face is *found* when a box's centre lies in the photo's central half and
the box is 15-80 % of the photo's side. A box whose centre lies on the background, outside every
pasted photo, is a *false box*. Boxes elsewhere inside a pasted photo are not counted either way
(LFW's news photos often hold a second, partial face). Reported per detector: recall overall and
per photo side, false boxes per frame, ms per 640x480 frame (median). Detectors: YuNet at the
stream size (320 px, what the Live page runs) and at the still size (1280 px), Haar, dlib HOG,
and with ``--cnn`` dlib's CNN (seconds per frame).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import core  # noqa: E402,F401  (import-order guard before anything heavy)
from bench.common import SHARED_DATA, shared_data_or_skip  # noqa: E402
from core.analysis.detect import get_detector  # noqa: E402
from core.images import load_image  # noqa: E402

FACES = SHARED_DATA / "faces_identities"
BACKGROUNDS = SHARED_DATA / "style_transfer" / "content"
SIDES = (60, 100, 160, 260)
PER_FRAME = 4


def scenes(n_frames: int, seed: int = 0) -> list[tuple[np.ndarray, list[tuple[int, int, int]]]]:
    """(frame, [(x, y, side) of each pasted photo]) for ``n_frames`` frames, reproducible."""
    rng = np.random.default_rng(seed)
    backgrounds = [cv2.resize(load_image(p), (640, 480), interpolation=cv2.INTER_AREA) for p in sorted(BACKGROUNDS.glob("*.jpg"))]
    photos = [p for n in range(5, 11) for p in sorted(FACES.glob(f"*/{n}.jpg"))]
    out = []
    for i in range(n_frames):
        frame = backgrounds[i % len(backgrounds)].copy()
        placed: list[tuple[int, int, int]] = []
        while len(placed) < PER_FRAME:
            side = int(rng.choice(SIDES))
            x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
            if any(x < px + ps and px < x + side and y < py + ps and py < y + side for px, py, ps in placed):
                continue
            photo = load_image(photos[int(rng.integers(len(photos)))])
            frame[y : y + side, x : x + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
            placed.append((x, y, side))
        out.append((frame, placed))
    return out


def score(detect, frames: list[tuple[np.ndarray, list[tuple[int, int, int]]]]) -> dict:
    found = {side: [0, 0] for side in SIDES}
    false_boxes, times = 0, []
    for frame, placed in frames:
        start = time.perf_counter()
        boxes = detect(frame)
        times.append((time.perf_counter() - start) * 1000)
        centres = [((b.left + b.right) / 2, (b.top + b.bottom) / 2, b.width) for b in boxes]
        for x, y, side in placed:
            hit = any(x + side / 4 <= cx <= x + 3 * side / 4 and y + side / 4 <= cy <= y + 3 * side / 4
                      and 0.15 * side <= w <= 0.8 * side for cx, cy, w in centres)  # fmt: skip
            found[side][0] += hit
            found[side][1] += 1
        false_boxes += sum(not any(x <= cx <= x + s and y <= cy <= y + s for x, y, s in placed) for cx, cy, _ in centres)
    total = sum(n for _, n in found.values())
    return {
        "recall": round(sum(h for h, _ in found.values()) / total, 3),
        "recall_by_photo_side": {str(side): round(h / max(n, 1), 3) for side, (h, n) in found.items()},
        "false_boxes_per_frame": round(false_boxes / len(frames), 3),
        "ms_per_frame_p50": round(float(np.median(times)), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--cnn", action="store_true", help="also dlib's CNN detector (seconds per frame)")
    args = parser.parse_args()
    if not (shared_data_or_skip(FACES) and shared_data_or_skip(BACKGROUNDS)):
        return 0
    frames = scenes(args.frames)
    detectors = {
        "yunet (stream, 320 px)": get_detector("yunet"),
        "yunet (still, 1280 px)": get_detector("yunet", still=True),
        "haar": get_detector("haar"),
        "hog": get_detector("hog"),
        **({"cnn": get_detector("cnn")} if args.cnn else {}),
    }
    for detect in detectors.values():
        detect(frames[0][0])  # load and warm up
    report = {
        "benchmark": "detection",
        "frames": args.frames,
        "faces": args.frames * PER_FRAME,
        "frame_size": [640, 480],
        "detectors": {name: score(detect, frames) for name, detect in detectors.items()},
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
