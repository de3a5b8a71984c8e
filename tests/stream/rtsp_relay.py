"""A real RTSP camera on loopback, for the network-source tests and ``bench/rtsp_latency.py``.

FFmpeg cannot serve RTSP to players by itself: its ``-rtsp_flags listen`` is the *receiving*
side (it accepts one ANNOUNCE/RECORD publisher). So a camera is two processes, as with a
mediamtx relay: this module run as a script (``python -m tests.stream.rtsp_relay --port P``) is
a minimal RTSP relay (TCP-interleaved RTP only, optional Basic authentication), and Debian's
``ffmpeg`` publishes a looped clip into it with ``-c copy``. Players DESCRIBE/SETUP/PLAY as
from any camera: a path nobody publishes is 404, wrong credentials 401, and when the publisher
goes away its players are disconnected (a camera unplugged).

Invariants: it binds 127.0.0.1 only; :class:`Camera` stops both processes on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
FFMPEG = shutil.which("ffmpeg")
MAX_BACKLOG = 8 * 2**20  # a player this far behind is dropped rather than buffered without end


@dataclass
class _Stream:
    sdp: bytes
    publisher: asyncio.StreamWriter
    channels: dict[str, int] = field(default_factory=dict)  # track control -> the publisher's RTP channel
    players: dict[asyncio.StreamWriter, dict[int, int]] = field(default_factory=dict)  # publisher channel -> player channel


class Relay:
    def __init__(self, user: str | None, password: str | None) -> None:
        self.credentials = base64.b64encode(f"{user}:{password}".encode()).decode() if user else None
        self.streams: dict[str, _Stream] = {}
        self.sessions = itertools.count(10_000_001)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pending: dict[int, int] = {}  # a player's SETUP before PLAY: publisher channel -> its channel
        published: str | None = None
        try:
            while True:
                first = await reader.readexactly(1)
                if first == b"$":
                    header = await reader.readexactly(3)
                    data = await reader.readexactly(int.from_bytes(header[1:], "big"))
                    if published is not None:
                        self._forward(self.streams[published], header[0], first + header + data)
                    continue  # a player's RTCP reports are dropped
                head = first + await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, url, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                path = urlsplit(url).path.rstrip("/")
                reply = self._answer(method, path, headers, body, writer, pending)
                if method == "ANNOUNCE" and reply.startswith("200"):
                    published = path
                writer.write(f"RTSP/1.0 {reply}".replace("CSEQ", headers.get("cseq", "0")).encode())
                await writer.drain()
                if method == "TEARDOWN":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            if published is not None and self.streams.get(published, None) is not None and self.streams[published].publisher is writer:
                for player in self.streams.pop(published).players:
                    player.close()  # the camera went away: its players see the connection end
            for stream in self.streams.values():
                stream.players.pop(writer, None)
            writer.close()

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter,
                pending: dict[int, int]) -> str:  # fmt: skip
        """The status line and headers of the reply (CSEQ stands for the request's CSeq)."""
        ok = "200 OK\r\nCSeq: CSEQ\r\n"
        if method == "OPTIONS":
            return ok + "Public: OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, TEARDOWN, GET_PARAMETER\r\n\r\n"
        if self.credentials and headers.get("authorization") != f"Basic {self.credentials}":
            return '401 Unauthorized\r\nCSeq: CSEQ\r\nWWW-Authenticate: Basic realm="camera"\r\n\r\n'
        session = f"Session: {next(self.sessions)};timeout=60\r\n"
        if method == "ANNOUNCE":
            self.streams[path] = _Stream(body, writer)
            return ok + "\r\n"
        base, _, control = path.rpartition("/")
        stream = self.streams.get(path) or self.streams.get(base)
        if stream is None:
            return "404 Not Found\r\nCSeq: CSEQ\r\n\r\n"
        if method == "DESCRIBE":
            return ok + f"Content-Base: rtsp://{headers.get('host', '127.0.0.1')}{path}/\r\nContent-Type: application/sdp\r\n" \
                        f"Content-Length: {len(stream.sdp)}\r\n\r\n" + stream.sdp.decode("latin-1")  # fmt: skip
        if method == "SETUP":
            transport = headers.get("transport", "")
            if "interleaved=" not in transport:
                return "461 Unsupported Transport\r\nCSeq: CSEQ\r\n\r\n"  # UDP: this relay speaks TCP only
            channel = int(transport.split("interleaved=")[1].split("-")[0])
            if "mode=record" in transport.lower():
                stream.channels[control] = channel
            else:
                pending[stream.channels.get(control, 0)] = channel
            return ok + session + f"Transport: {transport}\r\n\r\n"
        if method == "PLAY":
            stream.players[writer] = dict(pending)
        return ok + session + "\r\n"  # RECORD, PLAY, GET_PARAMETER, TEARDOWN

    def _forward(self, stream: _Stream, channel: int, frame: bytes) -> None:
        for player, channels in list(stream.players.items()):
            own = channels.get(channel - channel % 2)
            if own is None:
                continue
            if player.transport.get_write_buffer_size() > MAX_BACKLOG:
                stream.players.pop(player).close()
                continue
            player.write(bytes([36, own + channel % 2]) + frame[2:])


async def _serve(port: int, user: str | None, password: str | None) -> None:
    relay = Relay(user, password)
    server = await asyncio.start_server(relay.handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def _describe(port: int, authorization: str | None) -> str | None:
    """The status code the relay answers a DESCRIBE of /cam with (None: nothing listens)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) != 0:
            return None
        auth = f"Authorization: Basic {authorization}\r\n" if authorization else ""
        probe.sendall(f"DESCRIBE rtsp://127.0.0.1:{port}/cam RTSP/1.0\r\nCSeq: 1\r\n{auth}\r\n".encode())
        return probe.recv(64).decode("latin-1").split(" ")[1]


class Camera:
    """A looped ``clip`` served at ``rtsp://[user:password@]127.0.0.1:port/cam`` (relay + ffmpeg).
    :meth:`stop` unplugs it (both processes end), :meth:`start` plugs it back on the same port."""

    def __init__(self, clip: Path, port: int, user: str | None = None, password: str | None = None) -> None:
        self.clip, self.port, self.user, self.password = clip, port, user, password
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        auth = f"{self.user}:{self.password}@" if self.user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}/cam"

    def start(self) -> Camera:
        if FFMPEG is None:
            raise RuntimeError("ffmpeg is not installed (scripts/install.sh --test installs Debian's ffmpeg)")
        auth = ["--user", self.user, "--password", self.password or ""] if self.user else []
        relay = subprocess.Popen([sys.executable, "-m", "tests.stream.rtsp_relay", "--port", str(self.port), *auth], cwd=REPO)
        self.processes = [relay]
        authorization = base64.b64encode(f"{self.user}:{self.password}".encode()).decode() if self.user else None
        self._wait(lambda: _describe(self.port, authorization) is not None, "listen")
        self.processes.append(subprocess.Popen(
            [FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(self.clip),
             "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", self.url],
            stdin=subprocess.DEVNULL))  # fmt: skip
        self._wait(lambda: _describe(self.port, authorization) == "200", "get the clip from ffmpeg")
        return self

    def _wait(self, condition, what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline or any(process.poll() is not None for process in self.processes):
                self.stop()
                raise RuntimeError(f"the RTSP camera on port {self.port} did not {what} within {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.kill()
            process.wait()
        self.processes = []


@contextmanager
def camera(clip: Path, port: int, user: str | None = None, password: str | None = None) -> Iterator[Camera]:
    served = Camera(clip, port, user, password).start()
    try:
        yield served
    finally:
        served.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="a minimal RTSP relay on 127.0.0.1 (TCP-interleaved RTP)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.user, args.password))


if __name__ == "__main__":
    main()
