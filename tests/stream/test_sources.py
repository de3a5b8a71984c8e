"""Live sources with real streams on loopback: an RTSP camera (tests/stream/rtsp_relay.py fed by
Debian's ffmpeg) read, unplugged and plugged back, wrong URLs explained without their password,
looped files, recordings, and the ``watch`` command."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest

from core.store.gallery import redact
from core.stream.pipeline import PipelineConfig
from core.stream.recording import Recorder
from core.stream.sources import NetworkSource, SourceError, SourceStream
from core.stream.synthetic import face_clip, write_video
from tests.e2e import free_port, wait_until
from tests.stream.rtsp_relay import FFMPEG, camera
from tests.test_cli import run_cli

needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is absent: scripts/install.sh --test installs Debian's ffmpeg")


@pytest.fixture(scope="module")
def clip(tmp_path_factory, face_photos) -> Path:
    """3 s at 30 fps, 640x480: one LFW face drifting (a new person each second)."""
    return write_video(list(face_clip(face_photos[:3], 90)), tmp_path_factory.mktemp("clip") / "faces.mp4")


def frames_in(path: Path) -> tuple[int, int, int, str]:
    """(frames decoded, width, height, codec) of a video file, read back with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, stream.width, stream.height, stream.codec_context.name


@needs_ffmpeg
def test_an_rtsp_camera_is_read_newest_frame_first_and_its_faces_found(clip):
    with camera(clip, free_port()) as cam:
        stream = SourceStream(NetworkSource(cam.url), PipelineConfig(detector="yunet")).start()
        try:
            wait_until(lambda: stream.annotated() is not None and stream.snapshot()["faces"] >= 1, 20, "a face in the camera's frames")
            time.sleep(2)
            snapshot, out = stream.snapshot(), stream.annotated()
        finally:
            stream.stop()
    assert snapshot["state"] == "live" and snapshot["url"] == cam.url, snapshot
    assert out.annotated.shape == (480, 640, 3) and out.result.faces
    assert 5 <= snapshot["fps"] <= 35, snapshot  # up to the camera's 30 fps (yunet is quick; fewer on a busy machine)
    assert snapshot["latency_ms"]["p95"] < 1000, snapshot  # no lag builds up (bench/rtsp_latency.py measures the 300 ms target)
    assert stream.source.status().state == "stopped"


@needs_ffmpeg
def test_the_source_keeps_only_the_newest_frame_so_a_slow_consumer_never_lags(clip):
    with camera(clip, free_port()) as cam:
        source = NetworkSource(cam.url).start()
        try:
            first = wait_until(lambda: source.wait_frame(0, 1.0), 20, "a first frame")
            time.sleep(1.5)  # a consumer busy for 1.5 s
            newest = source.latest()
        finally:
            source.stop(6)
    assert newest.number - first.number >= 30  # 45 frames went by meanwhile; none queued up
    assert time.monotonic() - newest.captured_at < 0.5 + 0.1  # what it gets is fresh, not 1.5 s old


@needs_ffmpeg
def test_a_camera_unplugged_and_plugged_back_is_reconnected_within_10_s(clip):
    port = free_port()
    with camera(clip, port) as cam:
        source = NetworkSource(cam.url).start()
        states: list[str] = []
        try:
            wait_until(lambda: source.status().state == "live", 20, "the stream to go live")
            cam.stop()  # unplugged
            status = wait_until(lambda: (s := source.status()).state == "reconnecting" and s.retry_in_s and s, 10, "reconnecting")
            before = source.latest().number
            cam.start()  # plugged back
            plugged = time.monotonic()

            def back() -> bool:
                states.append(source.status().state)
                frame = source.latest()
                return frame.number > before and states[-1] == "live"

            wait_until(back, 15, "the picture to come back")
            took = time.monotonic() - plugged
        finally:
            source.stop(6)
    assert "reconnecting in" in status.message and status.reason in status.message
    assert took < 10, f"reconnected after {took:.1f} s"
    assert source.status().reconnects == 1


@needs_ffmpeg
def test_a_stalled_network_is_noticed_and_the_stream_resumed(clip):
    """The connection stays open but nothing comes (a cable pulled, a frozen camera): after the
    read timeout the source says so and tries again; when the camera answers, the picture is back."""
    with camera(clip, free_port()) as cam:
        source = NetworkSource(cam.url, read_timeout=2.0).start()
        try:
            wait_until(lambda: source.status().state == "live", 20, "the stream to go live")
            for process in cam.processes:
                process.send_signal(signal.SIGSTOP)
            status = wait_until(lambda: (s := source.status()).state == "reconnecting" and s, 10, "the stall to be noticed")
            before = source.latest().number
            for process in cam.processes:
                process.send_signal(signal.SIGCONT)
            wait_until(lambda: source.status().state == "live" and source.latest().number > before, 20, "the picture to come back")
        finally:
            source.stop(6)
    assert "No video from 127.0.0.1" in status.message and "for 2 s" in status.message


@needs_ffmpeg
def test_wrong_urls_and_refused_credentials_are_explained_without_the_password(clip, caplog):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    closed = NetworkSource(f"rtsp://admin:secret@127.0.0.1:{free_port()}/cam").start()
    with camera(clip, port, user="admin", password="hunter2") as cam:
        wrong_password = NetworkSource(f"rtsp://admin:secret@127.0.0.1:{port}/cam").start()
        wrong_path = NetworkSource(f"rtsp://admin:hunter2@127.0.0.1:{port}/nothing-here").start()
        anonymous = NetworkSource(f"rtsp://127.0.0.1:{port}/cam").start()
        sources = [closed, wrong_password, wrong_path, anonymous]
        try:
            wait_until(lambda: all(s.status().state in ("reconnecting", "failed") for s in sources), 15, "four failures")
            statuses = [s.status() for s in sources]
        finally:
            for source in sources:
                source.stop(6)
        assert cam.url.startswith("rtsp://admin:hunter2@")
    refused, unauthorized, missing, asked = statuses
    assert asked.state == "failed" and "asks for a user name and password" in asked.message
    assert refused.state == "reconnecting" and "connection refused" in refused.message and "127.0.0.1:" in refused.message
    assert unauthorized.state == "failed" and "refused the user name or password" in unauthorized.message  # waiting cannot cure it
    assert missing.state == "reconnecting" and "404 not found" in missing.message and "/nothing-here" in missing.message
    shown = " ".join([*(json.dumps(s.to_json()) for s in statuses), *(repr(s) for s in sources), caplog.text])
    assert "secret" not in shown and "hunter2" not in shown
    assert refused.url.startswith("rtsp://admin@127.0.0.1:")


def test_redact_drops_passwords_from_any_url():
    assert redact("rtsp://admin:secret@10.1.2.3:554/Streaming/101") == "rtsp://admin@10.1.2.3:554/Streaming/101"
    assert redact("http://cam.local/video.mjpg?user=a&pwd=secret") == "http://cam.local/video.mjpg?user=a&pwd=***"
    assert redact("rtsp://10.1.2.3/live") == "rtsp://10.1.2.3/live"
    with pytest.raises(SourceError, match="starts with rtsp://"):
        NetworkSource("ftp://admin:secret@host/cam")


@needs_ffmpeg
def test_a_stream_with_no_video_track_says_so(tmp_path):
    sound = tmp_path / "sound.m4a"
    subprocess.run([FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=3", "-c:a", "aac", str(sound)], check=True)
    with camera(sound, free_port()) as cam:
        source = NetworkSource(cam.url).start()
        try:
            status = wait_until(lambda: (s := source.status()).state == "failed" and s, 15, "the source to fail")
        finally:
            source.stop(6)
    assert "has no video track" in status.message and "audio" in status.message


def test_a_file_that_is_not_a_video_fails_with_the_video_pages_reason(tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("these are not frames\n" * 50)
    source = NetworkSource(notes).start()
    try:
        status = wait_until(lambda: (s := source.status()).state == "failed" and s, 10, "the source to fail")
    finally:
        source.stop(2)
    assert "notes.mp4" in status.message and "not a readable video" in status.message
    with pytest.raises(SourceError, match="no such video file"):
        NetworkSource(tmp_path / "absent.mp4")


def test_a_looped_file_plays_at_its_own_pace_and_starts_again(tmp_path, face_photos):
    one_second = write_video(list(face_clip(face_photos[:1], 30)), tmp_path / "one.mp4")  # 30 frames at 30 fps
    source = NetworkSource(one_second).start()
    try:
        first = wait_until(lambda: source.wait_frame(0, 1.0), 10, "a first frame")
        time.sleep(2.5)
        last = source.latest()
    finally:
        source.stop(2)
    assert source.fps == pytest.approx(30)
    played = last.number - first.number
    assert 55 <= played <= 85  # 2.5 s at 30 fps: paced (not as fast as it decodes) and looped past its 30 frames
    assert (last.captured_at - first.captured_at) == pytest.approx(played / 30, abs=0.15)


def test_a_stream_nobody_watches_stops_itself_and_one_watched_goes_on(tmp_path, face_photos):
    clip = write_video(list(face_clip(face_photos[:1], 30, size=(320, 240), face_side=160)), tmp_path / "one.mp4")
    watched = SourceStream(NetworkSource(clip), idle_timeout_s=1.0).start()
    left = SourceStream(NetworkSource(clip), idle_timeout_s=1.0).start()  # its page was closed
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            watched.touch()  # the page or the browser still takes its frames
            time.sleep(0.2)
        assert left.source.status().state == "stopped"
        assert watched.source.status().state != "stopped"
        before = watched.snapshot()["frames_processed"]
        time.sleep(0.5)
        assert watched.snapshot()["frames_processed"] > before  # still processing
    finally:
        watched.stop(2)
        left.stop(2)


def test_the_recorder_writes_a_playable_mp4_of_every_frame_at_its_time(tmp_path):
    target = tmp_path / "recording.mp4"
    recorder = Recorder(target, fps=30)
    frames = [np.full((481, 641, 3), value, np.uint8) for value in range(0, 225, 5)]  # 45 frames, odd size
    for i, frame in enumerate(frames):
        assert recorder.write(frame, 100.0 + i / 30)
        assert not target.exists()  # only a finished file is ever at the target
    assert recorder.write(np.zeros((240, 320, 3), np.uint8), 100.0 + 45 / 30)  # another size: scaled
    summary = recorder.stop()
    assert summary["frames"] == 46 and (summary["width"], summary["height"]) == (640, 480)
    assert frames_in(target) == (46, 640, 480, "h264")
    with av.open(str(target)) as container:
        assert container.duration / av.time_base == pytest.approx(46 / 30, abs=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recording.mp4"]  # no partial file left
    assert not recorder.write(frames[0], 200.0) and recorder.stop() is None


def test_the_recorder_stops_itself_at_its_limits_and_an_empty_one_leaves_no_file(tmp_path):
    short = Recorder(tmp_path / "short.mp4", fps=10, max_seconds=1.0)
    written = sum(short.write(np.zeros((120, 160, 3), np.uint8), i / 10) for i in range(30))
    assert written == 11 and "minute limit" in short.full  # 0.0 .. 1.0 s
    assert short.stop()["frames"] == 11 and frames_in(tmp_path / "short.mp4")[0] == 11
    small = Recorder(tmp_path / "small.mp4", fps=10, max_bytes=400_000)
    noise = np.random.default_rng(0)
    while small.write(noise.integers(0, 255, (240, 320, 3), np.uint8), small.frames / 10):
        pass
    summary = small.stop()
    assert "MB limit" in small.full and summary["frames"] >= 2 and summary["bytes"] <= 400_000
    assert frames_in(tmp_path / "small.mp4")[0] == summary["frames"]
    assert Recorder(tmp_path / "empty.mp4").stop() is None and not (tmp_path / "empty.mp4").exists()


@needs_ffmpeg
def test_a_recording_of_the_camera_plays_back_with_the_frames_recorded(clip, tmp_path):
    with camera(clip, free_port()) as cam:
        stream = SourceStream(NetworkSource(cam.url), PipelineConfig(detector="haar")).start()
        try:
            wait_until(lambda: stream.annotated() is not None, 20, "a first annotated frame")
            stream.start_recording(tmp_path / "camera.mp4")
            time.sleep(2)
            summary = stream.stop_recording()
        finally:
            stream.stop()
    assert summary["frames"] >= 30 and summary["seconds"] == pytest.approx(2, abs=0.5)
    assert frames_in(tmp_path / "camera.mp4") == (summary["frames"], 640, 480, "h264")


@needs_ffmpeg
def test_watch_prints_a_json_line_per_second_and_records(clip, tmp_path):
    target = tmp_path / "watched.mp4"
    with camera(clip, free_port(), user="viewer", password="secret") as cam:
        done = run_cli("watch", cam.url, "--processors", "", "--detector", "haar", "--seconds", "3", "--record", str(target))
    assert done.returncode == 0, done.stderr
    *seconds, summary = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(seconds) == 3 and all(set(line) >= {"t", "state", "fps", "faces", "names", "latency_ms"} for line in seconds)
    assert seconds[-1]["state"] == "live" and seconds[-1]["fps"] > 3 and seconds[-1]["faces"] >= 1, seconds
    assert seconds[-1]["latency_ms"]["p95"] < 1000, seconds
    assert summary["summary"] is True and summary["faces_seen"] >= 1 and summary["url"] == "rtsp://viewer@" + cam.url.split("@")[1]
    assert frames_in(target) == (summary["recording"]["frames"], 640, 480, "h264") and summary["recording"]["frames"] > 5
    assert "secret" not in done.stdout + done.stderr


def test_watch_a_wrong_url_is_a_json_error_without_the_password():
    done = run_cli("watch", f"rtsp://admin:secret@127.0.0.1:{free_port()}/cam", "--processors", "", "--seconds", "5")
    assert done.returncode == 1
    (line,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert "connection refused" in line["error"] and line["url"].startswith("rtsp://admin@127.0.0.1:")
    assert "secret" not in done.stdout + done.stderr
    bad = run_cli("watch", "ftp://host/cam")
    assert bad.returncode == 2 and "starts with rtsp://" in bad.stderr
