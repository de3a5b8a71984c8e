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
from core.stream import video
from core.stream.video import (
    VideoCancelled,
    VideoError,
    VideoInfo,
    VideoJob,
    VideoWorkspace,
    annotate_video,
    probe_video,
    progress_text,
)
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


@pytest.fixture(scope="module")
def broken(tmp_path_factory, videos, frames) -> dict[str, Path]:
    """Files that are not a usable video: random bytes, a truncated one, one with sound only."""
    folder = tmp_path_factory.mktemp("broken")
    garbage = folder / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    truncated = folder / "truncated.mkv"
    truncated.write_bytes(videos["flac"].read_bytes()[: videos["flac"].stat().st_size // 2])
    audio_only = folder / "tone.m4a"
    with av.open(str(audio_only), "w") as out:
        stream = out.add_stream("aac", rate=44_100)
        stream.layout = "mono"
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        chunk.sample_rate = 44_100
        out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    return {"garbage": garbage, "truncated": truncated, "audio_only": audio_only}


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


def test_bad_inputs_are_refused_with_a_reason_and_leave_nothing(tmp_path, videos, broken, frames):
    raw_stream = write_video(frames, tmp_path / "raw.h264", fps=FPS)
    cases = [
        (broken["garbage"], {}, "not a readable video"),
        (broken["truncated"], {}, "truncated"),
        (broken["audio_only"], {}, "no video stream"),
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


def test_a_probe_summarises_a_video_in_a_moment_without_annotating_it(tmp_path, videos, frames):
    info = probe_video(videos["aac"], name="Holiday at sea.mp4")
    assert info == VideoInfo("Holiday at sea.mp4", 3.0, FRAMES, FPS, *SIZE, audio="aac")
    assert info.summary() == "Holiday at sea.mp4: 3.0 s, 320x240, 15 fps, with sound"
    assert probe_video(videos["silent"]).summary() == "silent.mp4: 3.0 s, 320x240, 15 fps, no sound"
    sideways = [np.ascontiguousarray(np.rot90(frame, -1)) for frame in frames[:15]]
    phone = probe_video(write_video(sideways, tmp_path / "phone.mp4", fps=FPS, rotation=90))
    assert (phone.width, phone.height, phone.frames, phone.seconds) == (*SIZE, 15, 1.0)  # as shown: upright
    raw = probe_video(write_video(frames, tmp_path / "raw.h264", fps=FPS))  # no count nor duration in its header
    assert raw.frames == FRAMES and raw.seconds == pytest.approx(FRAMES / raw.fps)


def test_a_probe_refuses_what_annotating_would_in_the_users_words(tmp_path, videos, broken):
    index_first = tmp_path / "app-output.mp4"  # the index comes first, so a cut file just stops early
    annotate_video(videos["silent"], index_first, FramePipeline(PipelineConfig(detector=None)))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(index_first.read_bytes()[: index_first.stat().st_size * 6 // 10])
    text = tmp_path / "notes.mp4"
    text.write_text("these are my holiday notes, not a video\n" * 50)
    cases = [
        (broken["garbage"], "not a readable video"),
        (text, "not a readable video"),
        (broken["truncated"], "the video stops after .* s of the 3.0 s its header announces; the file is truncated"),
        (cut, f"only \\d+ of the {FRAMES} frames its header counts could be read: the file is damaged or truncated"),
        (broken["audio_only"], "the file has no video stream"),
    ]
    for source, reason in cases:
        with pytest.raises(VideoError, match=f"^My clip.mp4: {reason}") as refused:
            probe_video(source, name="My clip.mp4")
        message = str(refused.value)
        assert str(tmp_path) not in message and "Errno" not in message and "<_io" not in message, message
        assert source.name not in message, message  # the user's name for it, never the server's copy


class SlowPainter(FramePipeline):
    """Takes 30 ms a frame and paints it: blue 200, green the frame's index (BGR)."""

    def annotate(self, frame_bgr: np.ndarray):
        index = self.stats.frames_total
        painted, result = super().annotate(frame_bgr)
        time.sleep(0.03)
        painted[:] = (200, index, 0)
        return painted, result


def test_a_job_says_how_long_is_left_and_keeps_its_latest_frame_small(tmp_path, videos, monkeypatch):
    monkeypatch.setattr(video, "PREVIEW_SIDE", 160)
    job = VideoJob(videos["silent"], tmp_path / "out.mp4", SlowPainter(PipelineConfig(detector=None)))
    assert job.state()["elapsed_s"] == 0 and job.state()["remaining_s"] is None and job.state()["preview"] is None
    job.start()
    deadline = time.monotonic() + 30
    while job.state()["done_frames"] < 20:
        assert job.state()["status"] == "running" and time.monotonic() < deadline, job.state()
        time.sleep(0.01)
    state = job.state()
    done, total = state["done_frames"], state["total_frames"]
    assert total == FRAMES and state["status"] == "running"
    assert state["elapsed_s"] >= done * 0.03
    assert state["remaining_s"] == pytest.approx((total - done) * 0.03, rel=0.5)  # at the pace so far
    preview = state["preview"]
    assert preview.shape == (120, 160, 3)  # 320x240 shrunk to at most 160 px
    assert (preview[..., 2] == 200).all() and (preview[..., 0] == 0).all()  # RGB
    shown = int(preview[0, 0, 1])  # the index of the frame it shows: a recent one
    assert done - PREVIEW_LAG <= shown < done, (shown, done)
    assert "Annotating: " in progress_text(state) and " left" in progress_text(state)

    final = wait_for(job)
    assert final["status"] == "done" and final["remaining_s"] is None
    assert final["preview"] is not preview and (preview[..., 1] == shown).all()  # replaced, never changed in place
    time.sleep(0.1)
    assert job.state()["elapsed_s"] == final["elapsed_s"] >= FRAMES * 0.03  # the clock stops with the job


PREVIEW_LAG = round(video.PREVIEW_EVERY_S / 0.03) + 3  # frames a preview may be behind, at 30 ms a frame


def test_progress_in_words_gives_frames_time_taken_and_time_left():
    state = {"done_frames": 15, "total_frames": 45, "elapsed_s": 1.2, "remaining_s": 2.4}
    assert progress_text(state) == "Annotating: 15 / 45 frames · 1 s elapsed · about 2 s left"
    assert progress_text({**state, "elapsed_s": 125, "remaining_s": 0.2}).endswith("2 min 05 s elapsed · about 1 s left")
    assert progress_text({**state, "remaining_s": None}).endswith("estimating the time left")


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


def test_a_workspace_keeps_the_upload_for_runs_again_until_replaced_or_removed(videos, broken):
    workspace = VideoWorkspace()
    kept = workspace.keep("id-1", "holiday.MP4", io.BytesIO(videos["aac"].read_bytes()))
    assert kept.info.summary().startswith("holiday.MP4: 3.0 s") and kept.error is None
    assert kept.path.parent == workspace.folder and kept.path.read_bytes() == videos["aac"].read_bytes()
    first = workspace.start(FramePipeline(PipelineConfig()))
    second = workspace.start(FramePipeline(PipelineConfig(detector=None)))  # annotated again, not uploaded again
    assert wait_for(first)["status"] in {"cancelled", "done"} and not first.dst.parent.exists()
    state = wait_for(second)
    assert state["status"] == "done" and second.src == kept.path and second.name == "holiday.MP4"
    assert Path(state["result"]["output"]).is_file() and workspace.upload is kept

    bad = workspace.keep("id-2", "broken video.mkv", io.BytesIO(broken["truncated"].read_bytes()))  # replaces it
    assert bad.info is None and bad.error.startswith("broken video.mkv: ") and "truncated" in bad.error
    assert workspace.job is None and list(workspace.folder.iterdir()) == []  # nothing of the old one is kept
    with pytest.raises(VideoError, match="no usable video"):
        workspace.start(FramePipeline(PipelineConfig()))

    workspace.keep("id-3", "other.mkv", io.BytesIO(videos["flac"].read_bytes()))
    running = workspace.start(FramePipeline(PipelineConfig()))
    workspace.remove()
    assert workspace.upload is None and workspace.job is None and list(workspace.folder.iterdir()) == []
    assert wait_for(running)["status"] in {"cancelled", "done"}

    workspace.keep("id-4", "again.mp4", io.BytesIO(videos["aac"].read_bytes()))
    third = workspace.start(FramePipeline(PipelineConfig()))
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
