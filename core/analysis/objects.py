"""ImageNet labels for the whole frame: top-5 (label, probability) from a ``keras.applications``
classifier, MobileNetV2 by default (fast), VGG16 selectable as in the seed prototype.

Weights come from Keras' own cache (``~/.keras/models``, or ``$KERAS_HOME/models``), where
``weights="imagenet"`` downloads them once; the class names come from the
``imagenet_class_index.json`` that Keras' ``decode_predictions`` downloads beside them. Offline
with either file missing, :func:`unavailable` names the file and the folder to put it in.

Preprocessing (:func:`resized_rgb`, :func:`network_input`) and decoding (:func:`class_names`,
:func:`top_k`) are plain functions, so they can be checked against any ImageNet classifier
with the same class order (the tests use a TFLite MobileNetV2).

The default backbone can be changed with ``VISION_LAB_OBJECTS_MODEL=vgg16``.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.analysis.processors import ProcessorSpec, register
from core.faces import FrameResult, Processor
from core.models import keras_cache_file

CLASS_INDEX_FILE = "imagenet_class_index.json"
MODEL_ENV = "VISION_LAB_OBJECTS_MODEL"


@dataclass(frozen=True)
class Backbone:
    """A ``keras.applications`` ImageNet classifier: its constructor, weights file and input."""

    name: str
    application: str  # attribute of keras.applications
    weights_file: str  # what weights="imagenet" downloads into Keras' cache
    size: int
    mode: str  # "tf": RGB scaled to [-1, 1]; "caffe": BGR minus the ImageNet means
    every: int  # classify at most every this many frames of one scene (measured here: ~40 ms / ~1 s)


BACKBONES = {
    "mobilenet_v2": Backbone("mobilenet_v2", "MobileNetV2", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5", 224, "tf", 5),
    "vgg16": Backbone("vgg16", "VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels.h5", 224, "caffe", 30),
}
CAFFE_MEANS_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def default_backbone() -> str:
    return os.environ.get(MODEL_ENV, "mobilenet_v2").strip().lower() or "mobilenet_v2"


def unavailable(backbone: str | None = None) -> str | None:
    """Why the classifier cannot run here (file checks only), or None."""
    name = backbone or default_backbone()
    if name not in BACKBONES:
        return f"{MODEL_ENV}={name!r} is not a known classifier; use one of {', '.join(BACKBONES)}"
    missing = [f for f in (BACKBONES[name].weights_file, CLASS_INDEX_FILE) if not keras_cache_file(f).exists()]
    if not missing:
        return None
    return (
        f"{' and '.join(missing)} not in {keras_cache_file(missing[0]).parent}; Keras downloads "
        "them on first use with internet, or put the files there by hand"
    )


def class_names(path: Path) -> list[str]:
    """The 1000 ImageNet class names in output order, from Keras' ``imagenet_class_index.json``
    (``{"0": ["n01440764", "tench"], ...}``), with underscores shown as spaces."""
    index = json.loads(Path(path).read_text())
    if sorted(map(int, index)) != list(range(len(index))):
        raise ValueError(f"{path} is not a class index: its keys are not 0..{len(index) - 1}")
    return [index[str(i)][1].replace("_", " ") for i in range(len(index))]


def resized_rgb(frame_bgr: np.ndarray, size: int) -> np.ndarray:
    """The whole frame as a ``size`` x ``size`` uint8 RGB image (bilinear, aspect not kept, as
    Keras' ``load_img(target_size=...)`` does)."""
    interpolation = cv2.INTER_AREA if min(frame_bgr.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.cvtColor(cv2.resize(frame_bgr, (size, size), interpolation=interpolation), cv2.COLOR_BGR2RGB)


def network_input(rgb: np.ndarray, mode: str) -> np.ndarray:
    """``[1, H, W, 3]`` float32 input of a Keras ImageNet model, as its ``preprocess_input``:
    ``"tf"`` maps bytes to [-1, 1]; ``"caffe"`` turns RGB into BGR minus the ImageNet means."""
    x = rgb.astype(np.float32)
    if mode == "tf":
        x = x / 127.5 - 1.0
    elif mode == "caffe":
        x = x[..., ::-1] - CAFFE_MEANS_BGR
    else:
        raise ValueError(f"unknown preprocessing mode {mode!r}")
    return np.ascontiguousarray(x[None])


def top_k(probabilities: np.ndarray, names: list[str], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable (name, probability) pairs, most probable first."""
    probabilities = np.asarray(probabilities, np.float64).reshape(-1)
    if len(probabilities) != len(names):
        raise ValueError(f"{len(probabilities)} probabilities for {len(names)} class names")
    best = np.argsort(-probabilities, kind="stable")[:k]
    return [(names[i], float(probabilities[i])) for i in best]


def build_model(backbone: str, weights: str | None = "imagenet"):
    """The Keras classifier (``weights=None``: random weights, for structure checks).

    ``"imagenet"`` loads the file ``weights="imagenet"`` downloads, from the Keras cache path that
    :func:`unavailable` checked, so nothing is fetched here and a missing file fails by its name.
    """
    import keras

    spec = BACKBONES[backbone]
    if weights == "imagenet":
        weights = str(keras_cache_file(spec.weights_file))
    return getattr(keras.applications, spec.application)(weights=weights, input_shape=(spec.size, spec.size, 3))


class ImageNetClassifier:
    """A built classifier and its compiled forward pass; thread-safe."""

    def __init__(self, backbone: str, weights: str | None = "imagenet", names: list[str] | None = None) -> None:
        import tensorflow as tf

        self.spec = BACKBONES[backbone]
        self.model = build_model(backbone, weights)
        self.names = names if names is not None else class_names(keras_cache_file(CLASS_INDEX_FILE))
        self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def probabilities(self, frame_bgr: np.ndarray) -> np.ndarray:
        x = network_input(resized_rgb(frame_bgr, self.spec.size), self.spec.mode)
        return np.asarray(self._forward(x))[0]

    def top_k(self, frame_bgr: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        return top_k(self.probabilities(frame_bgr), self.names, k)


def thumbnail(frame_bgr: np.ndarray) -> np.ndarray:
    """A 32x24 grey thumbnail: frames whose thumbnails are close show the same scene."""
    return cv2.resize(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY), (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)


class ObjectsProcessor(Processor):
    """Puts the top-5 ImageNet labels into ``result.labels``.

    The classifier costs tens of milliseconds (MobileNetV2) to a second (VGG16), so labels are
    reused for at most ``every - 1`` (default: the backbone's ``every``) following frames that show nearly the same scene (mean grey difference of the thumbnails
    under ``same_scene``). The cache holds a few recent scenes, so streams sharing this
    processor keep their own labels, and an unrelated still image is always classified afresh.
    """

    name = "objects"
    label = "Objects (ImageNet)"
    needs_faces = False

    def __init__(self, backbone: str | None = None, every: int | None = None, same_scene: float = 12.0, k: int = 5,
                 classifier: ImageNetClassifier | None = None) -> None:
        self.classifier = classifier or ImageNetClassifier(backbone or default_backbone())
        self.every = every or self.classifier.spec.every
        self.same_scene = same_scene
        self.k = k
        self._lock = threading.Lock()
        self._recent: list[tuple[np.ndarray, list[tuple[str, float]], int]] = []  # (thumbnail, labels, reuses)

    def process(self, frame_bgr: np.ndarray, result: FrameResult) -> None:
        thumb = thumbnail(frame_bgr)
        with self._lock:
            for i, (seen, labels, reuses) in enumerate(self._recent):
                if reuses < self.every - 1 and float(np.mean(np.abs(seen - thumb))) < self.same_scene:
                    self._recent[i] = (thumb, labels, reuses + 1)
                    result.labels.extend(labels)
                    return
        labels = self.classifier.top_k(frame_bgr, self.k)
        with self._lock:
            self._recent = [(thumb, labels, 0)] + [
                entry for entry in self._recent if float(np.mean(np.abs(entry[0] - thumb))) >= self.same_scene
            ][:7]
        result.labels.extend(labels)


register(
    ProcessorSpec(
        name=ObjectsProcessor.name,
        label=ObjectsProcessor.label,
        description="Top-5 ImageNet labels of the whole frame (MobileNetV2; VGG16 with "
        f"{MODEL_ENV}=vgg16), refreshed every few frames.",
        build=ObjectsProcessor,
        unavailable=unavailable,
    )
)
