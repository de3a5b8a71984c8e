"""Our 15 facial keypoints on real photos, against dlib's 68-point predictor; prints one JSON object.

    .venv/bin/python bench/keypoints_real.py [--detector yunet] [--limit N]

The held-out crops of ``eval-keypoints`` are frames of the training people, cut the way the
training crops were; this benchmark scores the points as the app finds them on photos nobody
trained on: the 400 LFW news photos of ``../shared/data/faces_identities`` (enlarged twice, as a
webcam or a phone shows a face) and face_recognition's example photos, several with two people.

Reference: dlib's 68-point shape predictor on dlib HOG's own boxes (upsampled once), turned into
the 15 Kaggle points as the training data was (``core.analysis.keypoints.kaggle_points``). Ours:
the Photo page's path (the detector at its still size, the keypoint processor with its
refinement pass, the real-photo correction of the weights), the face whose points' centre is
nearest dlib's. The correction was fitted on other photos (UTKFace, ``calibrate-keypoints``). NME: the mean distance of the 15
points to dlib's, divided by the distance between dlib's two eye centres; reported as the mean
over faces (target <= 0.08), the median, per point, and faces matched.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import core  # noqa: E402,F401  (import-order guard before anything heavy)
from bench.common import SHARED_DATA, shared_data_or_skip  # noqa: E402
from core.analysis.detect import DEFAULT_DETECTOR  # noqa: E402
from core.analysis.keypoints import KAGGLE_NAMES, KeypointProcessor  # noqa: E402
from core.analysis.keypoints_train import dlib_kaggle_points  # noqa: E402
from core.images import load_image  # noqa: E402
from core.stream.pipeline import FramePipeline, PipelineConfig  # noqa: E402

LFW = SHARED_DATA / "faces_identities"
KNN = SHARED_DATA / "faces_identities_knn_examples"
TARGET_NME = 0.08


def photos(limit: int | None) -> list[tuple[str, np.ndarray]]:
    found = [(str(p.relative_to(SHARED_DATA)), cv2.resize(load_image(p), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))
             for p in sorted(LFW.glob("*/*.jpg"))]  # fmt: skip
    found += [(str(p.relative_to(SHARED_DATA)), load_image(p)) for p in sorted(KNN.rglob("*.jpg"))]
    return found[:: max(1, len(found) // limit)] if limit else found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", default=DEFAULT_DETECTOR)
    parser.add_argument("--limit", type=int, help="about N photos, spread over the set (quick check)")
    args = parser.parse_args()
    if not shared_data_or_skip(LFW):
        return 0
    pipeline = FramePipeline(PipelineConfig(detector=args.detector, processors=(KeypointProcessor(detector=args.detector),),
                                            tracking=False))  # fmt: skip
    errors, unmatched, names = [], 0, list(KAGGLE_NAMES)
    for _, image in photos(args.limit):
        ours = [f for f in pipeline.process(image).faces if f.keypoints]
        for reference in dlib_kaggle_points(image):
            eyes = np.linalg.norm(reference[names.index("left_eye_center")] - reference[names.index("right_eye_center")])
            centre = reference.mean(axis=0)
            near = [f for f in ours if np.hypot(*(np.mean(list(f.keypoints.values()), axis=0) - centre)) < eyes]
            if not near:
                unmatched += 1
                continue
            face = min(near, key=lambda f: np.hypot(*(np.mean(list(f.keypoints.values()), axis=0) - centre)))
            points = np.array([face.keypoints[n] for n in names])
            errors.append(np.linalg.norm(points - reference, axis=1) / eyes)
    per_face = np.array(errors).mean(axis=1)
    report = {
        "benchmark": "keypoints_real",
        "detector": args.detector,
        "reference": "dlib 68-point predictor on dlib HOG boxes -> 15 Kaggle points",
        "faces_scored": len(errors),
        "faces_without_ours": unmatched,
        "nme_mean": round(float(per_face.mean()), 4),
        "nme_median": round(float(np.median(per_face)), 4),
        "nme_p90": round(float(np.percentile(per_face, 90)), 4),
        "nme_per_point": {n: round(float(v), 4) for n, v in zip(names, np.array(errors).mean(axis=0))},
        "target": TARGET_NME,
        "target_met": float(per_face.mean()) <= TARGET_NME,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
