"""A stream's recording slot: at most one recording, the annotated frames or the camera's own."""

import av
import numpy as np

from core.stream.recording import RecordingSlot


def mean_of_frames(path) -> float:
    with av.open(str(path)) as container:
        return float(np.mean([frame.to_ndarray(format="bgr24").mean() for frame in container.decode(video=0)]))


def test_a_slot_records_the_annotated_or_the_raw_frames_and_one_recording_at_a_time(tmp_path):
    slot = RecordingSlot()
    annotated, raw = np.full((120, 160, 3), 230, np.uint8), np.full((120, 160, 3), 20, np.uint8)
    slot.write(annotated, raw, 0.0)  # nothing recording: nothing happens
    assert slot.state() is None and slot.stop() is None

    slot.start(tmp_path / "drawn.mp4")
    for i in range(10):
        slot.write(annotated, raw, i / 10)
    assert slot.state() == {"frames": 10, "full": None}
    slot.start(tmp_path / "raw.mp4", raw=True)  # finishes the first one
    for i in range(5):
        slot.write(annotated, raw, i / 10)
    summary = slot.stop()

    assert summary["frames"] == 5 and slot.state() is None
    assert mean_of_frames(tmp_path / "drawn.mp4") > 200 and mean_of_frames(tmp_path / "raw.mp4") < 50
