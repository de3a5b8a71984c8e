"""Vision Lab's logic: importable and testable without Streamlit.

Import-order guard: TensorFlow loads its own BoringSSL symbols globally, and if it is imported
before ``pylibsrtp`` (pulled in by aiortc / streamlit-webrtc), the process segfaults in
``srtp_init()``. Importing ``pylibsrtp`` here, before any module of ``core`` can import
TensorFlow, makes every entry point that imports ``core`` safe. It is a small cffi binding with
no Streamlit dependency; where it is not installed there is no WebRTC and nothing to guard.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:
    import pylibsrtp  # noqa: F401  (must precede TensorFlow, see above)
except ImportError:  # pragma: no cover - WebRTC not installed
    pass
