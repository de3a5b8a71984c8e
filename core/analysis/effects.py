"""Face effects anchored on each face's points, and privacy blur: the "effects" processor.

Two kinds of effect (:data:`EFFECTS`, listed by ``python -m core effects``):
- **fun** effects (sunglasses, moustache, crown, dog, clown nose, big eyes, mesh, swap) are drawn
  by this module's own vector code in each face's own frame (:class:`core.faces.Anchor`: origin
  between the eyes, one unit the distance between them), so they follow position, scale and roll.
  They are left out of a face whose points are unsure: too small, turned towards profile, or a
  mouth where no mouth can be (:func:`sure`).
- **privacy** effects (blur, pixelate) cover the whole face box, whatever its points, and are
  strong enough that SFace no longer matches the face (``bench/effects.py``, the tests).

:class:`EffectsProcessor` decides which effects each face gets (``who``: every face, only those
recognition could not name, or only named ones) and sets its anchor, smoothed per track by a
One-Euro filter; :func:`render`, called by the draw stage before boxes and captions, draws them.

Invariants: an effect changes pixels only inside its :meth:`Effect.region` of each face it is on;
a privacy effect never skips a face it was chosen for; :func:`render` reads the unmodified frame
for everything it copies (swap), so the order of faces does not matter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from core.analysis.keypoints import OneEuroFilter
from core.analysis.landmarks import eye_centers, face_landmarks
from core.analysis.processors import ProcessorSpec, register
from core.faces import Anchor, Face, FrameResult, Processor

WHO = ("all", "unknown", "named")
MIN_IOD_PX = 12.0  # eyes closer than this: too small to place anything on
MAX_NOSE_OFFSET = 0.45  # |u| of the nose tip beyond this: the face is turned towards profile
MOUTH_RANGE = (0.6, 1.9)  # v of the mouth outside this: the points are not a face's
PRIVACY_MARGIN = 0.12  # privacy effects cover the box grown by this much on each side
FORGET_S = 2.0

Color = tuple[int, int, int]  # BGR


@dataclass(frozen=True)
class Effect:
    """One effect: ``draw(canvas, frame, face, faces)`` paints ``face`` on ``canvas`` (``frame`` is
    the untouched original, ``faces`` every face of the frame); ``extent`` (u0, v0, u1, v1) bounds
    a fun effect's drawing in the face's frame."""

    name: str
    label: str
    kind: str  # "fun" or "privacy"
    draw: Callable[[np.ndarray, np.ndarray, Face, Sequence[Face]], None]
    extent: tuple[float, float, float, float] = (-1.5, -2.3, 1.5, 2.0)

    def region(self, face: Face, frame_shape: tuple[int, ...]) -> np.ndarray:
        """The polygon (n, 2 image pixels) outside which this effect leaves ``face``'s
        surroundings untouched."""
        if self.kind == "privacy":
            (x0, y0), (x1, y1) = privacy_rect(face, frame_shape)
            return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], np.float64)
        u0, v0, u1, v1 = self.extent
        return face.anchor.to_image(np.array([(u0, v0), (u1, v0), (u1, v1), (u0, v1)]))


# --- anchoring -------------------------------------------------------------------------------------


def face_anchor(frame_bgr: np.ndarray, face: Face) -> Anchor:
    """The face's own frame from its keypoints (our CNN) when it has them, else its detector's
    landmarks (YuNet's five, or dlib's five found now)."""
    if face.keypoints is not None:
        k = face.keypoints  # Kaggle names: "left" is the subject's left, the image's right
        eyes = np.array([k["right_eye_center"], k["left_eye_center"]])
        nose = np.array(k["nose_tip"])
        mouth = np.mean([k["mouth_left_corner"], k["mouth_right_corner"], k["mouth_center_top_lip"],
                         k["mouth_center_bottom_lip"]], axis=0)  # fmt: skip
    else:
        marks = face_landmarks(frame_bgr, face)
        eyes = np.array(eye_centers(marks))
        nose = np.array(marks["nose_tip"][0])
        mouth = np.mean(marks["mouth_corners"], axis=0) if "mouth_corners" in marks else None
    return anchor_from(eyes[0], eyes[1], nose, mouth)


def anchor_from(eye_left: np.ndarray, eye_right: np.ndarray, nose: np.ndarray, mouth: np.ndarray | None) -> Anchor:
    """The anchor of a face whose eye centres (the image's left one first), nose tip and mouth
    centre (None: unknown, the average face's is used) are these pixels."""
    middle = (np.asarray(eye_left) + np.asarray(eye_right)) / 2
    dx, dy = np.asarray(eye_right) - np.asarray(eye_left)
    base = Anchor(float(middle[0]), float(middle[1]), float(np.hypot(dx, dy)), float(np.arctan2(dy, dx)))
    if base.iod < 1e-6:
        return base
    nose_uv = tuple(base.to_face(nose)[0].tolist())
    mouth_uv = base.mouth if mouth is None else tuple(base.to_face(mouth)[0].tolist())
    return base._replace(nose=nose_uv, mouth=mouth_uv)


def sure(anchor: Anchor) -> bool:
    """Whether the points are good enough to place a fun effect on: large enough, not turned
    towards profile, a mouth below the eyes where a mouth can be."""
    return (
        anchor.iod >= MIN_IOD_PX
        and abs(anchor.nose[0]) <= MAX_NOSE_OFFSET
        and MOUTH_RANGE[0] <= anchor.mouth[1] <= MOUTH_RANGE[1]
    )


# --- drawing primitives (face coordinates in, pixels out) --------------------------------------


def ellipse(cu: float, cv: float, ru: float, rv: float, n: int = 32) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cu + ru * np.cos(t), cv + rv * np.sin(t)], axis=1)


def fill(canvas: np.ndarray, anchor: Anchor, uv: np.ndarray, color: Color, alpha: float = 1.0) -> None:
    """Fill the polygon ``uv`` (face coordinates); ``alpha`` < 1 blends it over the picture."""
    points = np.round(anchor.to_image(uv)).astype(np.int32)
    if alpha >= 1.0:
        cv2.fillPoly(canvas, [points], color, cv2.LINE_AA)
        return
    x0, y0 = np.maximum(points.min(axis=0), 0)
    x1, y1 = np.minimum(points.max(axis=0) + 1, [canvas.shape[1], canvas.shape[0]])
    if x1 <= x0 or y1 <= y0:
        return
    roi = canvas[y0:y1, x0:x1]
    painted = roi.copy()
    cv2.fillPoly(painted, [points - [x0, y0]], color, cv2.LINE_AA)
    cv2.addWeighted(painted, alpha, roi, 1 - alpha, 0, dst=roi)


def line(canvas: np.ndarray, anchor: Anchor, uv: np.ndarray, color: Color, width: float, closed: bool = False) -> None:
    """A polyline through ``uv``; ``width`` in face units."""
    points = np.round(anchor.to_image(uv)).astype(np.int32)
    cv2.polylines(canvas, [points], closed, color, max(1, round(width * anchor.iod)), cv2.LINE_AA)


# --- the fun effects ------------------------------------------------------------------------------


def draw_sunglasses(canvas: np.ndarray, frame: np.ndarray, face: Face, faces: Sequence[Face]) -> None:
    a = face.anchor
    for side in (-1, 1):
        lens = ellipse(side * 0.5, 0.03, 0.37, 0.27)
        fill(canvas, a, lens, (25, 25, 25), alpha=0.88)
        line(canvas, a, lens, (10, 10, 10), 0.05, closed=True)
        line(canvas, a, np.array([(side * 0.87, 0.0), (side * 1.08, -0.02)]), (10, 10, 10), 0.05)
    line(canvas, a, np.array([(-0.14, -0.02), (0.0, -0.07), (0.14, -0.02)]), (10, 10, 10), 0.05)


def draw_moustache(canvas: np.ndarray, frame: np.ndarray, face: Face, faces: Sequence[Face]) -> None:
    a = face.anchor
    cu = (a.nose[0] + a.mouth[0]) / 2
    cv = a.nose[1] + 0.55 * (a.mouth[1] - a.nose[1])
    half = np.array([(0.0, -0.06), (0.12, -0.1), (0.3, -0.08), (0.45, -0.02), (0.56, -0.1), (0.52, 0.02),
                     (0.38, 0.08), (0.18, 0.06), (0.0, 0.04)])  # fmt: skip
    shape = np.concatenate([half, half[::-1] * [-1, 1]]) + [cu, cv]
    fill(canvas, a, shape, (25, 45, 80))


def draw_crown(canvas: np.ndarray, frame: np.ndarray, face: Face, faces: Sequence[Face]) -> None:
    a = face.anchor
    base, top = -1.25, -2.05
    spikes = [(-0.95, base), (-0.95, top + 0.25), (-0.55, base - 0.35), (-0.3, top), (0.0, base - 0.4), (0.3, top),
              (0.55, base - 0.35), (0.95, top + 0.25), (0.95, base)]  # fmt: skip
    fill(canvas, a, np.array(spikes), (30, 190, 250))
    fill(canvas, a, np.array([(-1.0, base - 0.2), (1.0, base - 0.2), (1.0, base + 0.08), (-1.0, base + 0.08)]), (20, 150, 220))
    for u, color in ((-0.5, (60, 40, 220)), (0.0, (200, 80, 30)), (0.5, (60, 40, 220))):
        fill(canvas, a, ellipse(u, base - 0.06, 0.09, 0.09, 16), color)


def draw_dog(canvas: np.ndarray, frame: np.ndarray, face: Face, faces: Sequence[Face]) -> None:
    a = face.anchor
    for side in (-1, 1):
        ear = np.array([(side * 0.45, -1.25), (side * 0.85, -1.75), (side * 1.25, -1.55), (side * 1.3, -0.85),
                        (side * 1.05, -0.55), (side * 0.8, -1.0)])  # fmt: skip
        fill(canvas, a, ear, (40, 75, 130))
        inner = (ear - [side * 0.95, -1.2]) * 0.55 + [side * 0.95, -1.2]
        fill(canvas, a, inner, (150, 140, 220))
    nu, nv = a.nose
    fill(canvas, a, ellipse(nu, nv - 0.02, 0.2, 0.14), (20, 20, 20))
    fill(canvas, a, ellipse(nu - 0.06, nv - 0.07, 0.05, 0.03, 12), (200, 200, 200))
    mu, mv = a.mouth
    fill(canvas, a, ellipse(mu, mv + 0.22, 0.14, 0.2), (120, 110, 235))


def draw_clown_nose(canvas: np.ndarray, frame: np.ndarray, face: Face, faces: Sequence[Face]) -> None:
    a = face.anchor
    nu, nv = a.nose
    fill(canvas, a, ellipse(nu, nv, 0.24, 0.24), (30, 30, 215))
    fill(canvas, a, ellipse(nu - 0.08, nv - 0.08, 0.06, 0.05, 12), (210, 210, 255))


def draw_big_eyes(canvas: np.ndarray, frame: np.ndarray, face: Face, faces: Sequence[Face]) -> None:
    a = face.anchor
    for side in (-1, 1):
        fill(canvas, a, ellipse(side * 0.5, 0.0, 0.36, 0.33), (250, 250, 250))
        line(canvas, a, ellipse(side * 0.5, 0.0, 0.36, 0.33), (20, 20, 20), 0.04, closed=True)
        fill(canvas, a, ellipse(side * 0.5, 0.04, 0.17, 0.17), (20, 20, 20))
        fill(canvas, a, ellipse(side * 0.5 - 0.05, -0.03, 0.05, 0.05, 12), (255, 255, 255))


MESH_LINES = (  # Kaggle point names; "left" is the subject's left
    ("right_eye_outer_corner", "right_eye_center", "right_eye_inner_corner"),
    ("left_eye_inner_corner", "left_eye_center", "left_eye_outer_corner"),
    ("right_eyebrow_outer_end", "right_eyebrow_inner_end", "left_eyebrow_inner_end", "left_eyebrow_outer_end"),
    ("right_eyebrow_inner_end", "nose_tip", "left_eyebrow_inner_end"),
    ("right_eye_inner_corner", "nose_tip", "left_eye_inner_corner"),
    ("mouth_right_corner", "mouth_center_top_lip", "mouth_left_corner", "mouth_center_bottom_lip", "mouth_right_corner"),
    ("mouth_right_corner", "nose_tip", "mouth_left_corner"),
    ("right_eye_outer_corner", "mouth_right_corner"),
    ("left_eye_outer_corner", "mouth_left_corner"),
)


def draw_mesh(canvas: np.ndarray, frame: np.ndarray, face: Face, faces: Sequence[Face]) -> None:
    """Lines between the face's keypoints; from the anchor's five points without keypoints."""
    a = face.anchor
    if face.keypoints is not None:
        chains = [a.to_face(np.array([face.keypoints[name] for name in chain])) for chain in MESH_LINES]
    else:
        (nu, nv), (mu, mv) = a.nose, a.mouth
        eyes, corners = [(-0.5, 0.0), (0.5, 0.0)], [(mu - 0.4, mv), (mu + 0.4, mv)]
        chains = [np.array([eyes[0], eyes[1], (nu, nv), eyes[0]]), np.array([corners[0], (nu, nv), corners[1], corners[0]]),
                  np.array([eyes[0], corners[0]]), np.array([eyes[1], corners[1]])]  # fmt: skip
    for chain in chains:
        line(canvas, a, np.clip(chain, [-1.4, -1.0], [1.4, 1.9]), (120, 255, 200), 0.03)


SWAP_MASK = ellipse(0.0, 0.35, 1.0, 1.3, 40)  # forehead to chin, in face units


def draw_swap(canvas: np.ndarray, frame: np.ndarray, face: Face, faces: Sequence[Face]) -> None:
    """This face's region replaced by its partner's (faces paired left to right: 1st with 2nd,
    3rd with 4th), warped from the partner's frame into this face's, colours matched, edges
    feathered. A face without a partner keeps its own."""
    anchored = sorted((f for f in faces if f.anchor is not None and "swap" in f.effects), key=lambda f: f.anchor.x)
    index = next((i for i, f in enumerate(anchored) if f is face), None)
    if index is None or (index ^ 1) >= len(anchored):
        return
    partner = anchored[index ^ 1].anchor
    here = face.anchor
    corners = np.round(here.to_image(SWAP_MASK)).astype(np.int32)
    x0, y0 = np.maximum(corners.min(axis=0), 0)
    x1, y1 = np.minimum(corners.max(axis=0) + 1, [canvas.shape[1], canvas.shape[0]])
    if x1 - x0 < 4 or y1 - y0 < 4:
        return
    reference = np.array([(-0.5, 0.0), (0.5, 0.0), (0.0, 1.0)])
    warp = cv2.getAffineTransform(np.float32(here.to_image(reference) - [x0, y0]), np.float32(partner.to_image(reference)))
    pasted = cv2.warpAffine(frame, warp, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(mask, [corners - [x0, y0]], 1.0, cv2.LINE_AA)
    feather = max(3, round(0.15 * here.iod)) | 1
    mask = cv2.GaussianBlur(mask, (feather, feather), 0)
    inside = mask > 0.5
    if not inside.any():
        return
    roi = canvas[y0:y1, x0:x1].astype(np.float32)
    pasted = pasted.astype(np.float32)
    pasted += roi[inside].mean(axis=0) - pasted[inside].mean(axis=0)  # the skin tone of the face it lands on
    blended = mask[..., None] * np.clip(pasted, 0, 255) + (1 - mask[..., None]) * roi
    canvas[y0:y1, x0:x1] = np.round(blended).astype(np.uint8)


# --- the privacy effects --------------------------------------------------------------------------


def privacy_rect(face: Face, frame_shape: tuple[int, ...]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The face box grown by :data:`PRIVACY_MARGIN` on each side, clipped to the frame."""
    top, right, bottom, left = face.box
    mx, my = round(PRIVACY_MARGIN * (right - left)), round(PRIVACY_MARGIN * (bottom - top))
    height, width = frame_shape[:2]
    return (max(0, left - mx), max(0, top - my)), (min(width, right + mx), min(height, bottom + my))


def _coarse(canvas: np.ndarray, face: Face, cells: int, enlarge: int) -> None:
    """The face's rectangle shrunk to ``cells`` across (area averaging), then enlarged back."""
    (x0, y0), (x1, y1) = privacy_rect(face, canvas.shape)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    roi = canvas[y0:y1, x0:x1]
    across = (cells, max(1, round(cells * (y1 - y0) / (x1 - x0))))
    small = cv2.resize(roi, across, interpolation=cv2.INTER_AREA)
    roi[:] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=enlarge)


def draw_blur(canvas: np.ndarray, frame: np.ndarray, face: Face, faces: Sequence[Face]) -> None:
    _coarse(canvas, face, 4, cv2.INTER_CUBIC)  # as smooth as a blur of a third of the face, and as final


def draw_pixelate(canvas: np.ndarray, frame: np.ndarray, face: Face, faces: Sequence[Face]) -> None:
    _coarse(canvas, face, 7, cv2.INTER_NEAREST)


EFFECTS: dict[str, Effect] = {effect.name: effect for effect in (
    Effect("sunglasses", "Sunglasses", "fun", draw_sunglasses, (-1.15, -0.4, 1.15, 0.4)),
    Effect("moustache", "Moustache", "fun", draw_moustache, (-0.65, 0.35, 0.65, 1.2)),
    Effect("crown", "Crown", "fun", draw_crown, (-1.1, -2.15, 1.1, -1.05)),
    Effect("dog", "Dog ears and nose", "fun", draw_dog, (-1.4, -1.85, 1.4, 1.65)),
    Effect("clown_nose", "Clown nose", "fun", draw_clown_nose, (-0.5, 0.1, 0.5, 1.05)),
    Effect("big_eyes", "Big cartoon eyes", "fun", draw_big_eyes, (-0.95, -0.4, 0.95, 0.4)),
    Effect("mesh", "Face mesh", "fun", draw_mesh, (-1.45, -1.05, 1.45, 1.95)),
    Effect("swap", "Face swap (faces in pairs)", "fun", draw_swap, (-1.05, -0.98, 1.05, 1.68)),
    Effect("blur", "Blur (privacy)", "privacy", draw_blur),
    Effect("pixelate", "Pixelate (privacy)", "privacy", draw_pixelate),
)}  # fmt: skip
ORDER = ("swap", "blur", "pixelate")  # drawn first, in this order (they copy pixels); the others after


def hidden(face: Face) -> bool:
    """Whether a privacy effect covers ``face`` (its keypoints are then not drawn either)."""
    return any(EFFECTS[name].kind == "privacy" for name in face.effects)


def render(canvas: np.ndarray, frame_bgr: np.ndarray, faces: Sequence[Face]) -> None:
    """Draw every face's ``effects`` on ``canvas`` (a copy of ``frame_bgr``, which stays as it is).
    Fun effects need the face's anchor; privacy effects never do."""
    names = {name for face in faces for name in face.effects}
    for name in sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
        effect = EFFECTS[name]
        for face in faces:
            if name in face.effects and (effect.kind == "privacy" or face.anchor is not None):
                effect.draw(canvas, frame_bgr, face, faces)


# --- the processor --------------------------------------------------------------------------------


def parse_effects(text: str) -> tuple[str, ...]:
    """``"sunglasses, crown"`` -> ("sunglasses", "crown"); ValueError naming the unknown ones."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in EFFECTS]
    if unknown:
        raise ValueError(f"unknown effect(s) {', '.join(unknown)}; choose from {', '.join(EFFECTS)}")
    return names


@dataclass
class _Track:
    filter: OneEuroFilter
    seen_at: float


class AnchorSmoother:
    """Per-track One-Euro smoothing of the anchors made from detector landmarks (keypoints come
    smoothed by their own processor; stills are not smoothed). Thread-safe."""

    def __init__(self, forget_s: float = FORGET_S) -> None:
        self.forget_s = forget_s
        self._lock = threading.Lock()
        self._tracks: dict[int, _Track] = {}

    def __call__(self, face: Face, anchor: Anchor, now: float) -> Anchor:
        if face.track_id is None or face.keypoints is not None:
            return anchor
        points = anchor.to_image(np.array([(-0.5, 0.0), (0.5, 0.0), anchor.nose, anchor.mouth]))
        with self._lock:
            track = self._tracks.setdefault(face.track_id, _Track(OneEuroFilter(), now))
            track.seen_at = now
            points = track.filter(points, now, anchor.iod)
        return anchor_from(points[0], points[1], points[2], points[3])

    def forget_older(self, now: float) -> None:
        with self._lock:
            self._tracks = {k: v for k, v in self._tracks.items() if now - v.seen_at <= self.forget_s}


class EffectsProcessor(Processor):
    """Chooses each face's effects (``who``: "all", "unknown" — no name from recognition, or a visitor's, so every
    face when recognition does not run — or "named") and sets its anchor when its points are sure.
    Runs after the other processors (last in the catalogue): it reads their keypoints and names.
    Anchors from detector landmarks are smoothed per track (keypoints come smoothed already)."""

    name = "effects"
    label = "Face effects and privacy blur"

    def __init__(self, effects: tuple[str, ...] = ("sunglasses",), who: str = "all") -> None:
        parse_effects(",".join(effects))
        if who not in WHO:
            raise ValueError(f"who must be one of {', '.join(WHO)}, not {who!r}")
        self.effects, self.who = tuple(effects), who
        self.clock: Callable[[], float] = time.monotonic
        self._smoother = AnchorSmoother()

    def chosen(self, face: Face) -> bool:
        return self.who == "all" or (self.who == "named") == (face.name is not None and not face.visitor)

    def process(self, frame_bgr: np.ndarray, result: FrameResult) -> None:
        now = self.clock()
        needs_anchor = any(EFFECTS[name].kind == "fun" for name in self.effects)
        for face in result.faces:
            if not self.chosen(face):
                continue
            face.effects = self.effects
            if needs_anchor:
                anchor = self._smoother(face, face_anchor(frame_bgr, face), now)
                face.anchor = anchor if sure(anchor) else None
        self._smoother.forget_older(now)


register(ProcessorSpec(
    name="effects",
    label=EffectsProcessor.label,
    description="Sunglasses, crown, dog... on each face, or blur the faces (every face, only unknown ones, "
                "or only named ones); drawn on the video, following each head",
    build=EffectsProcessor,
    by_default=False,
))  # fmt: skip
