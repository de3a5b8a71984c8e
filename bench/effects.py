"""Cost of each face effect at 640x480, per face, and how strongly blur hides a face; one JSON object.

    .venv/bin/python bench/effects.py [--frames 60]

A part in a plain process (the second table: the live e2e benchmark, ``bench/live_e2e.py
--processors keypoints,recognition,age_gender,effects``, is the headline). Frames are scenes of
3-6 LFW faces at 640x480 (``group_clip``); each effect is rendered on every face YuNet finds
there, with the anchors the effects processor sets. Reported per effect: milliseconds per face
(median over the frames of render time / faces), against the target of 3 ms. ``processor_ms``:
the effects processor itself per frame (choosing faces, anchors from YuNet's landmarks).

Privacy: for the first 40 LFW people, SFace's distance from each blurred or pixelated face (encoded
at the original face's landmarks, the strongest attacker) to the same face unblurred, against the
tolerance at which SFace names anybody: every distance must lie above it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import core  # noqa: E402,F401  (import-order guard before anything heavy)
from bench.common import SHARED_DATA, shared_data_or_skip  # noqa: E402
from core.analysis import recognition  # noqa: E402
from core.analysis.detect import get_detector  # noqa: E402
from core.analysis.effects import EFFECTS, EffectsProcessor, render  # noqa: E402
from core.faces import Face, FrameResult  # noqa: E402
from core.images import load_image  # noqa: E402
from core.stream.synthetic import group_clip  # noqa: E402

FACES = SHARED_DATA / "faces_identities"
TARGET_MS_PER_FACE = 3.0


def effect_costs(frames: int) -> dict:
    photos = sorted(FACES.glob("*/2.jpg"))
    detector = get_detector("yunet")
    scenes = []
    for frame in group_clip(photos, n_frames=frames):
        faces = detector.faces(frame)
        if faces:
            scenes.append((frame, faces))
    costs, processor_ms = {}, []
    for name in EFFECTS:
        processor = EffectsProcessor((name,))
        per_face = []
        for frame, found in scenes:
            faces = [Face(f.box, detector=f.detector, landmarks=f.landmarks) for f in found]
            start = time.perf_counter()
            processor.process(frame, FrameResult(faces=faces))
            processor_ms.append((time.perf_counter() - start) * 1000)
            canvas = frame.copy()
            start = time.perf_counter()
            render(canvas, frame, faces)
            per_face.append((time.perf_counter() - start) * 1000 / len(faces))
        costs[name] = round(statistics.median(per_face), 3)
    return {
        "ms_per_face": costs,
        "worst_ms_per_face": max(costs.values()),
        "processor_ms_per_frame": round(statistics.median(processor_ms), 3),
        "faces_per_frame": round(statistics.mean(len(f) for _, f in scenes), 1),
        "frames": len(scenes),
    }


def privacy_distances() -> dict:
    if recognition.active_encoder() != "sface":
        return {"skipped": "SFace is not installed"}
    tolerance = recognition.default_tolerance("sface")
    distances: dict[str, list[float]] = {name: [] for name, e in EFFECTS.items() if e.kind == "privacy"}
    for photo in sorted(FACES.glob("*/1.jpg")):
        image = load_image(photo)
        faces = recognition.find_faces(image)
        if not faces:
            continue
        face = faces[recognition.main_face([f.box for f in faces], image.shape)]
        own = recognition.encode_face(image, face, "sface")
        for name in distances:
            covered = image.copy()
            render(covered, image, [Face(face.box, effects=(name,))])
            attacked = Face(face.box, detector=face.detector, landmarks=face.landmarks)
            distances[name].append(float(((recognition.encode_face(covered, attacked, "sface") - own) ** 2).sum() ** 0.5))
    return {
        "tolerance": tolerance,
        "faces": len(next(iter(distances.values()))),
        **{name: {"min_distance": round(min(d), 3), "median_distance": round(statistics.median(d), 3),
                  "all_above_tolerance": min(d) > tolerance} for name, d in distances.items()},
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    if not shared_data_or_skip(FACES):
        return 0
    costs = effect_costs(args.frames)
    print(json.dumps({
        "benchmark": "effects", "frame": "640x480, scenes of 3-6 LFW faces", **costs,
        "target_ms_per_face": TARGET_MS_PER_FACE, "target_met": costs["worst_ms_per_face"] <= TARGET_MS_PER_FACE,
        "privacy": privacy_distances(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
