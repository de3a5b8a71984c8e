"""Overlays: draw a :class:`FrameResult` onto a copy of the frame (the input is never modified)."""

from __future__ import annotations

import cv2
import numpy as np

from core.faces import Face, FrameResult

BOX_COLOR = (80, 220, 100)  # BGR
UNKNOWN_COLOR = (60, 60, 230)
POINT_COLOR = (255, 200, 0)
TEXT_COLOR = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def face_caption(face: Face) -> str:
    """The text under a face box: name (or Unknown) with its distance, age and gender when known."""
    parts: list[str] = []
    if face.name is not None or face.distance is not None:
        parts.append(face.name or "Unknown")
    if face.distance is not None:
        parts.append(f"({face.distance:.2f})")
    if face.age is not None:
        parts.append(f"{face.age:.0f}")
    if face.gender is not None:
        parts.append(face.gender[0].upper())
    return " ".join(parts)


def _label(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], scale: float) -> None:
    """Filled label whose top-left corner is (x, y), kept inside the image."""
    (w, h), baseline = cv2.getTextSize(text, FONT, scale, 1)
    x = int(np.clip(x, 0, max(0, image.shape[1] - w - 4)))
    y = int(np.clip(y, 0, max(0, image.shape[0] - h - baseline - 4)))
    cv2.rectangle(image, (x, y), (x + w + 4, y + h + baseline + 4), color, cv2.FILLED)
    cv2.putText(image, text, (x + 2, y + h + 2), FONT, scale, TEXT_COLOR, 1, cv2.LINE_AA)


def draw_result(frame_bgr: np.ndarray, result: FrameResult) -> np.ndarray:
    """A copy of ``frame_bgr`` with boxes, keypoints, captions and frame labels drawn."""
    image = frame_bgr.copy()
    scale = max(0.4, min(image.shape[:2]) / 900)
    thickness = max(1, round(min(image.shape[:2]) / 300))
    for face in result.faces:
        top, right, bottom, left = face.box
        color = UNKNOWN_COLOR if face.distance is not None and face.name is None else BOX_COLOR
        cv2.rectangle(image, (left, top), (right, bottom), color, thickness)
        for x, y in (face.keypoints or {}).values():
            cv2.circle(image, (int(round(x)), int(round(y))), thickness + 1, POINT_COLOR, cv2.FILLED)
        caption = face_caption(face)
        if caption:
            _label(image, caption, left, bottom + 2, color, scale)
    for i, (label, probability) in enumerate(result.labels):
        _label(image, f"{label} {probability:.0%}", 4, 4 + i * int(30 * scale + 8), (40, 40, 40), scale)
    return image
