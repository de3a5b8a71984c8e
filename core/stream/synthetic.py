"""Synthetic clips made of real face photos: the shared source of frames for the browser test
(a ``.y4m`` fed to Chromium's fake camera) and the benchmarks.

Invariant: frames are deterministic for given arguments, and every face stays entirely inside
the frame, so "faces in the clip" is known exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import cv2
import numpy as np

from core.images import load_image


def face_clip(
    photos: Sequence[Path],
    n_frames: int,
    size: tuple[int, int] = (640, 480),
    faces_per_frame: int = 1,
    face_side: int = 200,
    gap_frames: int = 0,
) -> Iterator[np.ndarray]:
    """``n_frames`` BGR frames of ``size`` (width, height), each showing ``faces_per_frame`` photos
    side by side on a grey background, drifting slowly as a person in front of a webcam does.
    The photos rotate through ``photos`` once per second of a 30 fps clip; with ``gap_frames``,
    the last frames of each second show the wall alone, as when one person leaves before the next
    steps in (without a gap, one face replaces another in place, which no camera sees)."""
    width, height = size
    if faces_per_frame * face_side > width or face_side > height:
        raise ValueError(f"{faces_per_frame} faces of {face_side} px do not fit in {width}x{height}")
    tiles = [cv2.resize(load_image(p), (face_side, face_side), interpolation=cv2.INTER_AREA) for p in photos]
    slot = width // faces_per_frame
    for i in range(n_frames):
        frame = np.full((height, width, 3), 110, np.uint8)
        if i % 30 >= 30 - gap_frames:
            yield frame
            continue
        dx = int(round((slot - face_side) / 2 * np.sin(i / 25)))
        dy = int(round((height - face_side) / 2 * np.sin(i / 40)))
        for k in range(faces_per_frame):
            tile = tiles[(i // 30 + k) % len(tiles)]
            x = k * slot + (slot - face_side) // 2 + dx
            y = (height - face_side) // 2 + dy
            frame[y : y + face_side, x : x + face_side] = tile
        yield frame


def appearance_clip(photo: Path, n_frames: int, start: int = 0, blur_sigma: float = 0.0, side: int = 200) -> list[np.ndarray]:
    """One person passing the camera: ``n_frames`` 640x480 BGR frames of ``photo`` at ``side`` px
    (blurred by ``blur_sigma`` when > 0), drifting on a grey wall; ``start`` offsets the drift.
    Several of them with empty frames between make a clip where each passage is a new track."""
    tile = cv2.resize(load_image(photo), (side, side), interpolation=cv2.INTER_CUBIC)
    if blur_sigma > 0:
        tile = cv2.GaussianBlur(tile, (0, 0), blur_sigma)
    frames = []
    for i in range(n_frames):
        frame = np.full((480, 640, 3), 110, np.uint8)
        x = 220 + int(60 * np.sin((start + i) / 9))
        y = 140 + int(30 * np.sin((start + i) / 13))
        frame[y : y + side, x : x + side] = tile
        frames.append(frame)
    return frames


def group_clip(
    photos: Sequence[Path],
    n_frames: int,
    size: tuple[int, int] = (640, 480),
    group_sizes: Sequence[int] = (3, 4, 5, 6),
    scene_frames: int = 60,
) -> Iterator[np.ndarray]:
    """``n_frames`` BGR frames of ``size`` showing groups of faces, as a webcam pointed at a few
    people: each scene of ``scene_frames`` frames (2 s at 30 fps) shows the next group size of
    ``group_sizes`` in a grid of at most 3 columns, faces of different sizes, each drifting.

    Photos are taken in turn from ``photos``, so consecutive scenes show different people; a face's
    photo stays the same for the whole scene (a person does not change within 2 s).
    """
    width, height = size
    photo_index = 0
    scene: list[tuple[np.ndarray, int, int, int, int]] = []  # each face's tile, x, y and drift range x, y
    for i in range(n_frames):
        if i % scene_frames == 0:
            count = group_sizes[(i // scene_frames) % len(group_sizes)]
            columns = min(count, 3)
            rows = -(-count // columns)
            cell_w, cell_h = width // columns, height // rows
            scene = []
            for k in range(count):
                side = int(min(cell_w, cell_h) * (0.72 + 0.08 * (k % 3)))
                tile = cv2.resize(load_image(photos[photo_index % len(photos)]), (side, side), interpolation=cv2.INTER_AREA)
                photo_index += 1
                slack_x, slack_y = (cell_w - side) // 2, (cell_h - side) // 2
                scene.append((tile, (k % columns) * cell_w + slack_x, (k // columns) * cell_h + slack_y, slack_x, slack_y))
        frame = np.full((height, width, 3), 110, np.uint8)
        for k, (tile, x, y, slack_x, slack_y) in enumerate(scene):
            side = tile.shape[0]
            x += int(round(slack_x * np.sin(i / 25 + k)))
            y += int(round(slack_y * np.sin(i / 40 + k)))
            frame[y : y + side, x : x + side] = tile
        yield frame


def write_y4m(frames: Iterator[np.ndarray], path: Path, fps: int = 30) -> Path:
    """Write BGR frames as a YUV4MPEG2 (4:2:0) file, the format Chromium's fake camera reads."""
    with open(path, "wb") as out:
        header_written = False
        for frame in frames:
            if not header_written:
                height, width = frame.shape[:2]
                out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
                header_written = True
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def write_video(
    frames: Sequence[np.ndarray],
    path: Path,
    fps: int = 30,
    audio_codec: str | None = None,
    rotation: int = 0,
    video_codec: str = "libx264",
    pix_fmt: str = "yuv420p",
) -> Path:
    """Encode BGR ``frames`` into a video file (container from the suffix) with PyAV.

    ``audio_codec`` adds a mono 440 Hz tone exactly as long as the video; ``rotation`` stores
    display-rotation metadata (degrees counterclockwise, as phones do) without turning the pixels.
    """
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        video = out.add_stream(video_codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if rotation:
            video.set_display_rotation(rotation)
        audio = None
        if audio_codec:
            audio = out.add_stream(audio_codec, rate=44_100)
            audio.layout = "mono"
        for frame in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        out.mux(video.encode(None))
        if audio is not None:
            samples = 44_100 * len(frames) // fps
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44_100)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = 44_100, start
                out.mux(audio.encode(chunk))
            out.mux(audio.encode(None))
    return path
