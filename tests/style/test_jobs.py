"""The Style page's jobs: run by a worker process, one at a time, queued, cancelled, survived."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from core.style import jobs
from core.style.gatys import StyleSettings
from tests.conftest import shared_data

SMALL = StyleSettings(size=48, iterations=3, backbone="vgg16-hed")
LONG = StyleSettings(size=48, iterations=200, backbone="vgg16-hed")


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    from core.images import load_image

    folder = shared_data("style_transfer")
    return load_image(folder / "content" / "tubingen.jpg"), load_image(folder / "style" / "starry_night.jpg")


def wait_for(condition, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def test_jobs_run_one_at_a_time_in_another_process_and_report_progress(images):
    first = jobs.StyleJob(*images, LONG, preview_every=1)
    second = jobs.StyleJob(*images, SMALL)
    wait_for(lambda: first.snapshot().iteration >= 2)
    assert first.snapshot().state == "running" and first.snapshot().preview_bgr is not None
    assert second.snapshot().state == "queued" and jobs.another_run_active()
    worker = jobs._dispatcher().worker().process
    assert worker.is_alive() and worker.pid != os.getpid()  # TensorFlow runs in the worker, not here
    first.cancel()
    assert first.wait(60).state == "cancelled"
    done = second.wait(120)
    assert done.state == "done" and done.result is not None and done.iteration == 3
    assert done.result.image_bgr.shape[:2] == (36, 48)
    wait_for(lambda: not jobs.another_run_active(), 10)


def test_a_queued_job_can_be_cancelled_before_it_starts(images):
    first = jobs.StyleJob(*images, LONG)
    queued = jobs.StyleJob(*images, SMALL)
    queued.cancel()
    assert queued.wait(10).state == "cancelled" and queued.snapshot().history == []
    first.cancel()
    assert first.wait(60).finished


def test_a_crashed_worker_fails_its_job_and_the_next_job_gets_a_new_one(images):
    first = jobs.StyleJob(*images, LONG)
    wait_for(lambda: first.snapshot().iteration >= 1)
    crashed = jobs._dispatcher().worker().process
    crashed.kill()  # as the kernel's OOM killer would
    failed = first.wait(30)
    assert failed.state == "failed" and "stopped" in failed.error
    again = jobs.StyleJob(*images, SMALL).wait(120)
    assert again.state == "done" and jobs._dispatcher().worker().process.pid != crashed.pid


def test_a_job_the_settings_refuse_fails_with_the_reason_in_the_users_words(images):
    thin = np.zeros((40, 600, 3), np.uint8)  # at 48 px: 48x3
    failed = jobs.StyleJob(thin, images[1], SMALL).wait(120)
    assert failed.state == "failed" and failed.error.startswith("at 48 px the content image would be 48x3")
