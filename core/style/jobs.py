"""Style transfers for the page, run in a worker process: one at a time per server, the rest queued.

Why a process and not a thread: a Gatys run keeps TensorFlow busy for a minute or more. In the
server's process it would fight the live streams for the GIL and the cores, share their thread
settings (the server runs TensorFlow on one intra-op thread, the right choice for small per-frame
batches, the wrong one for VGG convolutions), and could only be cancelled between evaluations.
In its own process it has the cores' full thread pools, Streamlit's per-run housekeeping never
touches it, and Cancel takes effect at the next loss evaluation; a crash fails that job with a
message, and the next job starts a fresh worker.

Invariants:
- one worker process per server process, started on the first job (or by :func:`warm_up`) and
  kept for the next ones (TensorFlow and the network load once);
- jobs run in the order they were created; a job cancelled while queued never starts;
- a :class:`StyleJob`'s state only moves forward: queued -> running -> done | cancelled | failed.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.style.gatys import Losses, StyleResult, StyleSettings

# Thread settings a server may give its own TensorFlow (see streamlit_app.py); the worker uses the defaults.
_SERVER_THREAD_SETTINGS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent view of a :class:`StyleJob` for one redraw of the page."""

    state: str  # "queued", "running", "done", "cancelled" or "failed"
    iterations: int
    history: list[Losses]
    preview_bgr: np.ndarray | None
    result: StyleResult | None
    error: str | None

    @property
    def iteration(self) -> int:
        return self.history[-1].iteration if self.history else 0

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "failed")


class StyleJob:
    """One style transfer, queued behind the other jobs of this server and run by the worker.

    The page keeps the job in its session and polls :meth:`snapshot`; :meth:`cancel` stops it at
    its next loss evaluation (or before it starts, if still queued).
    """

    def __init__(self, content_bgr: np.ndarray, style_bgr: np.ndarray, settings: StyleSettings,
                 preview_every: int = 5) -> None:  # fmt: skip
        self.settings = settings.checked()
        self.preview_every = preview_every
        self.inputs = (content_bgr, style_bgr)
        self.cancel_requested = threading.Event()
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._state, self._history, self._preview = "queued", [], None
        self._result: StyleResult | None = None
        self._error: str | None = None
        _dispatcher().submit(self)

    def cancel(self) -> None:
        self.cancel_requested.set()
        _dispatcher().cancel(self)

    def wait(self, timeout: float | None = None) -> JobSnapshot:
        self._finished.wait(timeout)
        return self.snapshot()

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(self._state, self.settings.iterations, list(self._history), self._preview,
                               self._result, self._error)  # fmt: skip

    # --- called by the dispatcher thread ---

    def _started(self) -> None:
        with self._lock:
            self._state = "running"

    def _step(self, losses: Losses, preview_bgr: np.ndarray | None) -> None:
        with self._lock:
            self._history.append(losses)
            if preview_bgr is not None:
                self._preview = preview_bgr

    def _end(self, state: str, result: StyleResult | None = None, error: str | None = None) -> None:
        with self._lock:
            self._state, self._result, self._error = state, result, error
            if result is not None:
                self._history, self._preview = list(result.history), result.image_bgr
        self._finished.set()


def another_run_active() -> bool:
    """Whether some style transfer (of any session) is running on this server now."""
    return _dispatcher().busy()


def warm_up() -> None:
    """Start the worker now (TensorFlow takes seconds to import), so a first Run starts sooner."""
    _dispatcher().worker()


# --- the worker process ---------------------------------------------------------------------------


def _serve(requests: Any, replies: Any, cancel: Any) -> None:
    """The worker's loop: run each request, reply with its steps, then its result or its error."""
    for name in _SERVER_THREAD_SETTINGS:  # before TensorFlow is imported: VGG wants every core
        os.environ.pop(name, None)
    import core  # noqa: F401  (import-order guard)
    from core.style.gatys import StyleTransferError, WeightsUnavailable, stylize

    while True:
        request = requests.get()
        if request is None:
            return
        content_bgr, style_bgr, settings, preview_every = request
        try:
            def on_step(step, every=preview_every):
                preview = step.image_bgr if step.losses.iteration % every == 0 else None
                replies.put(("step", step.losses, preview))

            result = stylize(content_bgr, style_bgr, settings, on_step, cancel)
            replies.put(("end", result, None))
        except (StyleTransferError, WeightsUnavailable) as error:  # the user's to act on: their own words
            replies.put(("end", None, str(error)))
        except Exception as error:  # noqa: BLE001 - reported on the page as one line
            replies.put(("end", None, f"{type(error).__name__}: {error}"))


class _Worker:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited threads or TF state
        self.requests, self.replies, self.cancel = context.Queue(), context.Queue(), context.Event()
        self.process = context.Process(target=_serve, args=(self.requests, self.replies, self.cancel),
                                       name="vision-lab-style", daemon=True)  # fmt: skip
        self.process.start()


class _Dispatcher:
    """Feeds the worker one job at a time, from a thread of the server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[StyleJob] = deque()
        self._wake = threading.Condition(self._lock)
        self._running: StyleJob | None = None
        self._worker: _Worker | None = None
        threading.Thread(target=self._loop, name="style-dispatcher", daemon=True).start()

    def worker(self) -> _Worker:
        with self._lock:
            if self._worker is None or not self._worker.process.is_alive():
                self._worker = _Worker()
            return self._worker

    def submit(self, job: StyleJob) -> None:
        with self._wake:
            self._pending.append(job)
            self._wake.notify()

    def cancel(self, job: StyleJob) -> None:
        with self._lock:
            if job in self._pending:
                self._pending.remove(job)
                job._end("cancelled")
            elif job is self._running and self._worker is not None:
                self._worker.cancel.set()

    def busy(self) -> bool:
        with self._lock:
            return self._running is not None

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                job = self._running = self._pending.popleft()
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._running = None

    def _run(self, job: StyleJob) -> None:
        worker = self.worker()
        worker.cancel.clear()
        if job.cancel_requested.is_set():
            job._end("cancelled")
            return
        job._started()
        worker.requests.put((*job.inputs, job.settings, job.preview_every))
        while True:
            try:
                kind, *payload = worker.replies.get(timeout=0.5)
            except queue.Empty:
                if not worker.process.is_alive():
                    job._end("failed", error=f"the style-transfer process stopped (exit code {worker.process.exitcode}); "
                                             "Run again to start a new one")  # fmt: skip
                    return
                continue
            if kind == "step":
                job._step(*payload)
                continue
            result, error = payload
            if error is not None:
                job._end("failed", error=error)
            else:
                job._end("cancelled" if result.cancelled else "done", result=result)
            return


_dispatcher_lock = threading.Lock()
_the_dispatcher: _Dispatcher | None = None


def _dispatcher() -> _Dispatcher:
    global _the_dispatcher
    with _dispatcher_lock:
        if _the_dispatcher is None:
            _the_dispatcher = _Dispatcher()
        return _the_dispatcher
