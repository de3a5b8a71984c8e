"""Video files annotated end to end: clips of real face photos written by the test with PyAV."""

from __future__ import annotations

import gc
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from core.faces import FrameResult, Processor
from core.stream.pipeline import FramePipeline, PipelineConfig
from core.stream.synthetic import face_clip, write_video
from core.stream.video import VideoCancelled, VideoError, VideoJob, VideoWorkspace, annotate_video
from tests.conftest import REPO

FPS = 15
FRAMES = 45  # three seconds
SIZE = (320, 240)


class BoxRecorder(Processor):
    """Names every face and remembers the boxes of each frame, in order."""

    name = "recorder"
    label = "Recorder"
    needs_faces = False  # called on every frame, so its list lines up with the frames

    def __init__(self) -> None:
        self.boxes: list[list] = []

    def process(self, frame_bgr: np.ndarray, result: FrameResult) -> None:
        self.boxes.append([face.box for face in result.faces])
        for face in result.faces:
            face.name = "Tester"


@pytest.fixture(scope="module")
def frames(face_photos) -> list[np.ndarray]:
    return list(face_clip(face_photos[:3], FRAMES, size=SIZE, face_side=160))


@pytest.fixture(scope="module")
def videos(tmp_path_factory, frames) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {
        "silent": write_video(frames, folder / "silent.mp4", fps=FPS),
        "aac": write_video(frames, folder / "aac.mp4", fps=FPS, audio_codec="aac"),
        "flac": write_video(frames, folder / "flac.mkv", fps=FPS, audio_codec="flac"),
    }


def decode(path: Path) -> tuple[list[np.ndarray], float | None]:
    """The video's frames (BGR) and its audio's duration in seconds (None without audio)."""
    with av.open(str(path)) as container:
        images = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return images, None
        samples = sum(frame.samples for frame in container.decode(audio=0))
        return images, samples / container.streams.audio[0].sample_rate


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".mp4" and "partial" in p.name)


@pytest.mark.parametrize("kind,audio", [("silent", None), ("aac", "copied"), ("flac", "aac")])
def test_every_frame_is_annotated_at_the_same_size_and_the_audio_is_kept(tmp_path, videos, frames, kind, audio):
    recorder = BoxRecorder()
    pipeline = FramePipeline(PipelineConfig(detector="haar", processors=(recorder,)))
    out = tmp_path / "out.mp4"
    summary = annotate_video(videos[kind], out, pipeline)

    images, audio_seconds = decode(out)
    assert len(images) == FRAMES == summary["frames"]
    assert images[0].shape == frames[0].shape and (summary["width"], summary["height"]) == SIZE
    assert summary["fps"] == FPS and summary["audio"] == audio
    if audio is None:
        assert audio_seconds is None
    else:
        assert audio_seconds == pytest.approx(FRAMES / FPS, abs=0.1)
    assert summary["faces_seen"] >= 1 and summary["names_seen"] == ["Tester"] and summary["errors"] == {}
    assert sum(1 for boxes in recorder.boxes if boxes) >= 0.8 * FRAMES  # Haar found the face in most frames

    # Where a box was drawn the output has the box colour; far from any face it matches the input.
    for index in (5, 25, 40):
        if not recorder.boxes[index]:
            continue
        top, right, bottom, left = recorder.boxes[index][0]
        drawn = images[index][top, left + 5 : right - 5].astype(int)
        original = frames[index][top, left + 5 : right - 5].astype(int)
        assert np.abs(drawn - original).mean() > 40 and (drawn - original)[:, 1].mean() > 40  # green line
        corner = (slice(0, 20), slice(0, 20))
        assert np.abs(images[index][corner].astype(int) - frames[index][corner]).mean() < 6
    assert leftovers(tmp_path) == []


def test_progress_rises_to_the_total_and_cancel_leaves_no_file(tmp_path, videos):
    calls: list[tuple[int, int]] = []
    annotate_video(videos["flac"], tmp_path / "out.mp4", FramePipeline(PipelineConfig()), progress=lambda d, t: calls.append((d, t)))
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1] == (FRAMES, FRAMES)
    assert all(d <= t for d, t in calls)

    out = tmp_path / "cancelled.mp4"
    seen: list[int] = []
    with pytest.raises(VideoCancelled):
        annotate_video(
            videos["aac"], out, FramePipeline(PipelineConfig()),
            progress=lambda d, t: seen.append(d), cancelled=lambda: len(seen) >= 10,
        )
    assert seen[-1] == 10 and not out.exists() and leftovers(tmp_path) == []


def test_a_phone_video_is_turned_upright_by_its_rotation_metadata(tmp_path, frames):
    # Stored sideways (turned clockwise) with metadata saying: show it turned back counterclockwise.
    sideways = [np.ascontiguousarray(np.rot90(frame, -1)) for frame in frames[:15]]
    source = write_video(sideways, tmp_path / "phone.mp4", fps=FPS, rotation=90)
    summary = annotate_video(source, tmp_path / "out.mp4", FramePipeline(PipelineConfig()))
    images, _ = decode(tmp_path / "out.mp4")
    assert images[0].shape == frames[0].shape and summary["faces_seen"] >= 1
    assert np.abs(images[0][:20, :20].astype(int) - frames[0][:20, :20]).mean() < 6


def test_odd_dimensions_lose_their_last_row_and_column(tmp_path, frames):
    odd = [np.ascontiguousarray(frame[:201, :301]) for frame in frames[:5]]
    source = write_video(odd, tmp_path / "odd.avi", fps=FPS, video_codec="rawvideo", pix_fmt="bgr24")
    summary = annotate_video(source, tmp_path / "out.mp4", FramePipeline(PipelineConfig(detector=None)))
    images, _ = decode(tmp_path / "out.mp4")
    assert (summary["width"], summary["height"]) == (300, 200) and images[0].shape == (200, 300, 3)


def test_bad_inputs_are_refused_with_a_reason_and_leave_nothing(tmp_path, videos, frames):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(videos["flac"].read_bytes()[: videos["flac"].stat().st_size // 2])
    audio_only = tmp_path / "tone.m4a"
    with av.open(str(audio_only), "w") as out:
        stream = out.add_stream("aac", rate=44_100)
        stream.layout = "mono"
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        chunk.sample_rate = 44_100
        out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    raw_stream = write_video(frames, tmp_path / "raw.h264", fps=FPS)
    cases = [
        (garbage, {}, "not a readable video"),
        (truncated, {}, "truncated"),
        (audio_only, {}, "no video stream"),
        (tmp_path / "missing.mp4", {}, "no such file"),
        (videos["silent"], {"max_seconds": 2}, "longer than the 2 s limit"),
        (videos["silent"], {"max_bytes": 1000}, "larger than"),
        (raw_stream, {"max_seconds": 1}, "longer than the 1 s limit"),  # no duration in its header
    ]
    for source, limits, reason in cases:
        out = tmp_path / "out.mp4"
        with pytest.raises(VideoError, match=reason):
            annotate_video(source, out, FramePipeline(PipelineConfig()), **limits)
        assert not out.exists() and leftovers(tmp_path) == [], source.name


def wait_for(job: VideoJob, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while job.state()["status"] == "running":
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)
    return job.state()


def test_a_background_job_reports_progress_and_its_result_or_its_cancellation(tmp_path, videos):
    job = VideoJob(videos["aac"], tmp_path / "out.mp4", FramePipeline(PipelineConfig())).start()
    state = wait_for(job)
    assert state["status"] == "done" and state["error"] is None
    assert state["done_frames"] == state["total_frames"] == FRAMES == state["result"]["frames"]

    job = VideoJob(videos["aac"], tmp_path / "cancelled.mp4", FramePipeline(PipelineConfig()))
    job.cancel()
    assert wait_for(job.start())["status"] == "cancelled" and not (tmp_path / "cancelled.mp4").exists()

    job = VideoJob(tmp_path / "missing.mp4", tmp_path / "never.mp4", FramePipeline(PipelineConfig()))
    state = wait_for(job.start())
    assert state["status"] == "failed" and "no such file" in state["error"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_prints_a_json_summary_with_progress_on_stderr(tmp_path, videos):
    out = tmp_path / "out.mp4"
    done = run_cli("annotate-video", str(videos["aac"]), str(out), "--processors", "")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["output"] == str(out) and summary["frames"] == FRAMES and summary["audio"] == "copied"
    assert summary["faces_seen"] >= 1 and summary["processors"] == []
    assert f"progress: {FRAMES}/{FRAMES} frames (100%)" in done.stderr
    assert len(decode(out)[0]) == FRAMES


def test_cli_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, videos):
    out = tmp_path / "out.mp4"
    for args, reason in [
        (["--processors", "no_such_processor"], "unknown processor 'no_such_processor'"),
        (["--detector", "yolo"], "unknown detector"),
    ]:
        done = run_cli("annotate-video", str(videos["silent"]), str(out), *args)
        assert done.returncode == 2 and done.stdout == "" and reason in done.stderr
        assert done.stderr.strip().count("\n") == 0
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all")
    done = run_cli("annotate-video", str(garbage), str(out), "--processors", "")
    assert done.returncode == 2 and "not a readable video" in done.stderr
    assert not out.exists()


def test_a_workspace_keeps_only_the_latest_run_and_removes_everything_when_closed(tmp_path, videos):
    workspace = VideoWorkspace()
    first = workspace.start("holiday.MP4", io.BytesIO(videos["aac"].read_bytes()), FramePipeline(PipelineConfig()))
    assert first.src.suffix == ".mp4" and first.src.parent.parent == workspace.folder
    second = workspace.start("other.mkv", io.BytesIO(videos["flac"].read_bytes()), FramePipeline(PipelineConfig()))
    assert wait_for(first)["status"] in {"cancelled", "done"} and not first.src.parent.exists()
    state = wait_for(second)
    assert state["status"] == "done" and Path(state["result"]["output"]).is_file()

    third = workspace.start("again.mp4", io.BytesIO(videos["aac"].read_bytes()), FramePipeline(PipelineConfig()))
    folder = workspace.folder
    del workspace
    gc.collect()  # the session's state is dropped: its folder goes, its job stops
    assert not folder.exists() and wait_for(third)["status"] == "cancelled"


def test_cli_names_the_person_enrolled_in_the_gallery(tmp_path, face_photos):
    person = face_photos[0].parent  # 1.jpg is in the clip; 2.jpg to 5.jpg are enrolled
    gallery = tmp_path / "gallery.sqlite3"
    enrolled = run_cli("enroll", "--gallery", str(gallery), "--name", "Alejandro Toledo", *(str(person / f"{i}.jpg") for i in range(2, 6)))
    assert enrolled.returncode == 0, enrolled.stderr
    clip = write_video(list(face_clip([face_photos[0]], 30, size=SIZE, face_side=160)), tmp_path / "clip.mp4", fps=FPS)

    done = run_cli("annotate-video", "--gallery", str(gallery), str(clip), str(tmp_path / "out.mp4"))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["processors"] == ["recognition"] and summary["names_seen"] == ["Alejandro Toledo"]

    missing = run_cli("annotate-video", "--gallery", str(tmp_path / "none.sqlite3"), str(clip), str(tmp_path / "other.mp4"))
    assert missing.returncode == 2 and "no gallery" in missing.stderr and not (tmp_path / "other.mp4").exists()
