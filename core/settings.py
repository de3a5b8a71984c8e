"""Settings read from the environment or from Streamlit's secrets, validated in one place.

ICE servers (STUN/TURN) for WebRTC, in order of precedence:
1. ``VISION_LAB_ICE_SERVERS``: a JSON list such as
   ``[{"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"}]``;
2. ``ice_servers`` in ``.streamlit/secrets.toml`` (same structure, as TOML);
3. none: right for a browser on the same machine or LAN, where host candidates connect directly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

ICE_ENV = "VISION_LAB_ICE_SERVERS"


class SettingsError(ValueError):
    """A setting that is present but malformed; the message names it and the expected form."""


def _validate_ice_servers(value: Any, origin: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise SettingsError(f"{origin} must be a list of ICE servers, each like {{\"urls\": [\"stun:host:3478\"]}}")
    servers = []
    for server in value:
        if not isinstance(server, Mapping) or "urls" not in server:
            raise SettingsError(f"{origin}: every ICE server needs a \"urls\" entry, got {server!r}")
        urls = server["urls"]
        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls or not all(isinstance(u, str) and u.split(":", 1)[0] in {"stun", "stuns", "turn", "turns"} for u in urls):
            raise SettingsError(f"{origin}: ICE server urls must start with stun:, stuns:, turn: or turns:, got {urls!r}")
        servers.append({**dict(server), "urls": urls})
    return servers


def ice_servers(secrets: Mapping[str, Any] | None = None, environ: Mapping[str, str] = os.environ) -> list[dict[str, Any]]:
    """The configured ICE servers (see the module docstring); ``[]`` when none is configured."""
    raw = environ.get(ICE_ENV, "").strip()
    if raw:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            raise SettingsError(f"{ICE_ENV} is not valid JSON ({error})") from error
        return _validate_ice_servers(value, ICE_ENV)
    if secrets is not None and "ice_servers" in secrets:
        value = [dict(s) if isinstance(s, Mapping) else s for s in secrets["ice_servers"]]
        return _validate_ice_servers(value, "ice_servers in .streamlit/secrets.toml")
    return []


def rtc_configuration(secrets: Mapping[str, Any] | None = None, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The ``rtc_configuration`` for ``webrtc_streamer``; always explicit, so no public STUN is added."""
    return {"iceServers": ice_servers(secrets, environ)}
