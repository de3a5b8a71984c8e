"""The server process, adapted to TensorFlow models in use: Streamlit's housekeeping, thread pools.

After every script run, fragments included, Streamlit 1.x calls ``_clean_problem_modules()``,
which runs ``keras.backend.clear_session()`` (reset the default graph, clear the eager kernel
cache, ``gc.collect()``), and then, with ``runner.postScriptGC``, a full ``gc.collect(2)``. With
the models of this app loaded each of the two takes ~190 ms holding the GIL; the Live panel and
the Style page poll with fragments every second, so a running ``tf.function`` on another thread
(the frame thread, a style transfer) had its kernel cache cleared under it and hung, and the
frame thread got the GIL half the time.

:func:`keep_models_between_runs` turns both off for this process. It is idempotent and is called
at the top of ``streamlit_app.py``, the entry point of every launcher (``scripts/serve.py`` or a
bare ``streamlit run``), before the first run ends. Memory stays flat without the forced
collections: Python's own generational collector still runs, and the models are moved to the
permanent generation once loaded (``core.models.settle_after_loading``).
"""

import os

from streamlit import config
from streamlit.runtime.scriptrunner import script_runner


def _keep_modules_as_they_are() -> None:
    """Replaces Streamlit's ``_clean_problem_modules``: Keras' state is the app's, not a run's."""


def keep_models_between_runs() -> None:
    script_runner._clean_problem_modules = _keep_modules_as_they_are
    config.set_option("runner.postScriptGC", False)


def one_thread_per_model() -> None:
    """TensorFlow and the fast-style network in the server process run each op on one thread
    (unless the environment says otherwise). Their work here is per-frame, and the two cores are
    already shared by the frame thread, aiortc's video codecs and the browser: a second intra-op
    thread only added hand-offs (live e2e benchmark: TensorFlow 13.5 -> 15.7 fps processed with one;
    the Style processor 12.1, 13.4, 11.0 fps with two threads, 13.9 and 13.2 with one, p95 95 ms
    instead of 130-156). Gatys transfers run in their own process with TensorFlow's defaults
    (core/style/jobs.py). Must run before TensorFlow is imported."""
    from core.style.fast import THREADS_ENV

    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault(THREADS_ENV, "1")
