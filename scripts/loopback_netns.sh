#!/usr/bin/env bash
# Run a command inside a new network namespace that has only loopback, so nothing it does can
# leave this machine (the WebRTC browser test needs this: see tests/test_browser.py).
# 127.0.0.2 is added because aioice skips exactly 127.0.0.1 when it gathers ICE candidates.
# Without the rights to create a namespace, the command runs as it is, with a warning.
set -euo pipefail
if [ "${VISION_LAB_NETNS:-}" != "1" ] && unshare -n true 2>/dev/null; then
  exec unshare -n -- env VISION_LAB_NETNS=1 bash -c \
    'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$@"' bash "$@"
fi
[ "${VISION_LAB_NETNS:-}" = "1" ] || echo "warning: cannot create a network namespace (not root?); running without one" >&2
exec "$@"
