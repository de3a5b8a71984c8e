"""The "style" processor: the frame repainted by a feed-forward style, whole or by face region.

One of the 26 built-in styles, a blend of them (``"3:0.7,12:0.3"``) or any painting (an image
file, through Magenta's arbitrary-style networks), computed at a processing size the user picks
and brought back to the frame's size (:mod:`core.style.fast`). By region: the faces' ovals come
from their keypoints or landmarks in each face's own frame, smoothed per track by a One-Euro
filter so the mask follows the face without flicker; the background, the faces, or both in two
styles. The repainted frame goes to ``FrameResult.image``; boxes, points, captions and effects
are drawn on it (or left off with ``PipelineConfig.overlays``). Frames the stream cannot keep up
with are dropped by the live stream, which re-sends the newest painted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from core.analysis.effects import MIN_IOD_PX, AnchorSmoother, face_anchor
from core.analysis.processors import ProcessorSpec, register
from core.faces import FrameResult, Processor
from core.images import load_image
from core.style import fast


class _Painter:
    """One style: built-in weights or a painting's vector; ``__call__`` repaints an image."""

    def __init__(self, style: str | None, painting: str | None, size: int) -> None:
        if (style is None) == (painting is None):
            raise fast.FastStyleError("give a built-in style or a painting, not both")
        self.size = size
        self.weights = None if style is None else fast.style_weights(style)
        self.vector = None if painting is None else fast.painting_vector(load_image(painting))

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        if self.weights is not None:
            return fast.stylize(image_bgr, self.weights, self.size)
        return fast.stylize_painting(image_bgr, self.vector, self.size)


class StyleProcessor(Processor):
    """Repaints every frame (``needs_faces`` is False: the background is painted without faces)."""

    name = "style"
    label = "Style (paint the video)"
    needs_faces = False

    def __init__(self, style: str | None = str(fast.DEFAULT_STYLE), painting: str | None = None, size: int = 320, region: str = "all",
                 face_style: str | None = None, face_painting: str | None = None) -> None:  # fmt: skip
        if region not in fast.REGIONS:
            raise fast.FastStyleError(f"region must be one of {', '.join(fast.REGIONS)}, not {region!r}")
        if not 64 <= size <= 1280:
            raise fast.FastStyleError(f"the processing size must lie between 64 and 1280 pixels, not {size}")
        self.region, self.size = region, size
        self.painter = _Painter(None if painting else style, painting, size)
        self.face_painter = _Painter(None if face_painting else face_style, face_painting, size) if region == "split" else None
        self.clock: Callable[[], float] = time.monotonic
        self._smoother = AnchorSmoother()
        self.painter(np.zeros((64, 64, 3), np.uint8))  # load the networks now, not in the first frame

    def process(self, frame_bgr: np.ndarray, result: FrameResult) -> None:
        now = self.clock()
        anchors = []
        if self.region != "all":
            anchors = [self._smoother(face, face_anchor(frame_bgr, face), now) for face in result.faces]
            anchors = [a for a in anchors if a.iod >= MIN_IOD_PX]
            self._smoother.forget_older(now)
        if self.region == "faces" and not anchors:
            return  # nothing to paint: the frame stays as the camera gave it
        styled = self.painter(frame_bgr)
        faces_styled = self.face_painter(frame_bgr) if self.face_painter is not None and anchors else None
        result.image = fast.by_region(frame_bgr, styled, anchors, self.region, faces_styled)


def paint_regions(natural_bgr: np.ndarray, painted_bgr: np.ndarray, region: str) -> tuple[np.ndarray, int]:
    """A still's painting (a Gatys result, a fast style) kept only where ``region`` says: the faces
    YuNet finds in ``natural_bgr`` stay natural ("background") or alone are painted ("faces").
    Returns the image and the number of faces found; ``painted_bgr`` is resized to the photo."""
    from core.analysis.detect import DEFAULT_DETECTOR, get_detector

    faces = get_detector(DEFAULT_DETECTOR, still=True).faces(natural_bgr)
    anchors = [a for a in (face_anchor(natural_bgr, f) for f in faces) if a.iod >= MIN_IOD_PX]
    return fast.by_region(natural_bgr, fast.to_shape(painted_bgr, natural_bgr.shape), anchors, region), len(anchors)


register(ProcessorSpec(
    name="style",
    label=StyleProcessor.label,
    description="The video painted live in one of 26 styles, a blend of two, or any painting; the whole "
                "picture, the background only, the faces only, or faces and background in two styles",
    build=StyleProcessor,
    unavailable=fast.unavailable,
    by_default=False,
))  # fmt: skip
