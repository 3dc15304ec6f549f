"""Fixtures for the hub tests: real hub processes, a real Redis, and a raw wire client.

The hub runs as a subprocess (``python -m tether serve --port 0``), exactly as users start it;
the tests wait for its ``listening on`` line. Clients are ``WireClient``: a deliberately small
Socket.IO client over anyio + wsproto that sends and receives exact frames, so the tests check
the wire format itself and run on asyncio and trio alike (python-socketio's client is
asyncio-only and reorders handler calls).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import anyio
import anyio.abc
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from integration.support import WAYS

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
START_TIMEOUT = 15.0

__all__ = [
    "Address",
    "HubProcess",
    "RedisServer",
    "WireClient",
    "connected",
    "hub_env",
    "unique",
]


# ------------------------------------------------------------------------------- processes


def hub_env() -> dict[str, str]:
    """The hub subprocess imports tether from this checkout, installed or not."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("TETHER_HUB_TOKEN", None)
    return env


@dataclass
class HubProcess:
    """A ``tether serve`` subprocess; ``start`` returns once it printed ``listening on``."""

    args: tuple[str, ...]
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    host: str = ""
    port: int = 0

    @classmethod
    def start(cls, *args: str, tmp: Path) -> HubProcess:
        stderr_path = tmp / f"hub-{uuid.uuid4().hex[:8]}.log"
        with stderr_path.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tether", "serve", "--port", "0", *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=hub_env(),
                cwd=ROOT,
            )
        hub = cls(args, proc, stderr_path)
        assert proc.stdout is not None
        line = _readline(proc.stdout, START_TIMEOUT)
        match = re.fullmatch(r"listening on http://([^:]+|\[.*\]):(\d+)\n", line)
        if match is None:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            raise AssertionError(f"hub did not start: {line!r}\n{hub.log()}")
        hub.host, hub.port = match[1], int(match[2])
        return hub

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the hub and wait; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"hub ignored signal {sig}\n{self.log()}") from None
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return self.proc.returncode

    def kill(self) -> None:
        """Die hard (SIGKILL): no clean-up at all, like a crashed machine."""
        self.stop(signal.SIGKILL)


def _readline(stream: IO[bytes], timeout: float) -> str:
    """One line from a pipe, or ``""`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not buffer.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                break
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                break
            buffer += chunk
    return buffer.decode(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    """A throw-away ``redis-server`` (no persistence) in a temporary directory."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, tmp: Path) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
        for _ in range(5):  # the free port may be taken between probe and bind: retry
            port = free_port()
            proc = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(tmp),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and proc.poll() is None:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn,
                ):
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return cls(proc, port)
                time.sleep(0.05)
            proc.kill()
            proc.wait()
        pytest.fail("could not start redis-server")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def hub_tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tether-hub-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def redis_server(hub_tmp: Path) -> Iterator[RedisServer]:
    """One real Redis for every hub test that needs one; each test uses its own prefix."""
    server = RedisServer.start(hub_tmp)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hub(hub_tmp: Path) -> Iterator[HubProcess]:
    """One plain hub shared by the session; tests use unique channel names."""
    process = HubProcess.start("--log-level", "debug", "--max-channel-name", "64", tmp=hub_tmp)
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="session")
def token_hub(hub_tmp: Path) -> Iterator[HubProcess]:
    process = HubProcess.start("--token", "s3cr3t-t0ken", "--log-level", "debug", tmp=hub_tmp)
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(params=list(WAYS))
def way(request: pytest.FixtureRequest) -> str:
    """How the tether clients connect (integration/support.py's ``WAYS``): the scenarios that
    move channel state over the wire, or restore it after a reconnect, run on each."""
    name: str = request.param
    return name


def unique(name: str = "ch") -> str:
    """A channel name no other test uses (the hubs are shared)."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


# ----------------------------------------------------------------------------- wire client


@dataclass
class Packet:
    """One decoded Socket.IO packet (binary attachments already put back in place)."""

    type: int
    data: Any
    ack: int | None = None


def _deconstruct(value: Any, out: list[bytes]) -> Any:
    if isinstance(value, bytes):
        out.append(value)
        return {"_placeholder": True, "num": len(out) - 1}
    if isinstance(value, list):
        return [_deconstruct(item, out) for item in value]
    if isinstance(value, dict):
        return {key: _deconstruct(item, out) for key, item in value.items()}
    return value


def _reconstruct(value: Any, attachments: list[bytes]) -> Any:
    if isinstance(value, dict):
        if value.get("_placeholder") is True and isinstance(value.get("num"), int):
            return attachments[value["num"]]
        return {key: _reconstruct(item, attachments) for key, item in value.items()}
    if isinstance(value, list):
        return [_reconstruct(item, attachments) for item in value]
    return value


@dataclass
class WireClient:
    """A minimal Socket.IO v5 client on one WebSocket, for namespace "/" only.

    Incoming events are queued in arrival order; ``frames`` keeps every raw Engine.IO text
    frame received, for byte-exact assertions. The hub's stream position (``pos``, in
    every channel message, member event and broadcast) is taken out of each event's
    payload into ``positions`` (one per event, ``None`` when absent), so the tests of the
    wire format before continuity compare payloads as they were; ``keep_positions``
    leaves them in.
    """

    stream: anyio.abc.ByteStream
    ws: WSConnection
    sid: str | None = None
    frames: list[str] = field(default_factory=list)
    events: deque[tuple[str, list[Any]]] = field(default_factory=deque)
    acks: dict[int, list[Any]] = field(default_factory=dict)
    _incoming: deque[str | bytes] = field(default_factory=deque)
    _text: list[str] = field(default_factory=list)
    _binary: list[bytes] = field(default_factory=list)
    _pending: tuple[Packet, int, list[bytes]] | None = None
    _next_ack: int = 0
    closed: bool = False
    close_code: int | None = None
    keep_positions: bool = False
    positions: list[str | None] = field(default_factory=list)

    @classmethod
    async def open(cls, host: str, port: int, query: str = "") -> WireClient:
        stream = await anyio.connect_tcp(host, port)
        ws = WSConnection(ConnectionType.CLIENT)
        client = cls(stream, ws)
        target = "/socket.io/?EIO=4&transport=websocket" + (f"&{query}" if query else "")
        await client._send_raw(ws.send(Request(host=f"{host}:{port}", target=target)))
        accepted = False
        while not accepted:
            for event in await client._read_events():
                if isinstance(event, AcceptConnection):
                    accepted = True
                elif isinstance(event, RejectConnection):
                    raise AssertionError(f"handshake rejected: {event.status_code}")
                else:  # frames that came in the same TCP read as the 101 response
                    await client._on_ws_event(event)
        return client

    # -- raw I/O

    async def _send_raw(self, data: bytes) -> None:
        await self.stream.send(data)

    async def _read_events(self) -> list[Any]:
        try:
            data = await self.stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            data = b""
        if not data:
            self.closed = True
            raise ConnectionError("connection closed by the hub")
        self.ws.receive_data(data)
        return list(self.ws.events())

    async def _message(self) -> str | bytes:
        """The next whole WebSocket message; answers WebSocket pings and close."""
        while not self._incoming:
            if self.closed:
                raise ConnectionError(f"WebSocket closed by the hub ({self.close_code})")
            for event in await self._read_events():
                await self._on_ws_event(event)
        return self._incoming.popleft()

    async def _on_ws_event(self, event: Any) -> None:
        if isinstance(event, TextMessage):
            self._text.append(event.data)
            if event.message_finished:
                self._incoming.append("".join(self._text))
                self._text.clear()
        elif isinstance(event, BytesMessage):
            self._binary.append(bytes(event.data))
            if event.message_finished:
                self._incoming.append(b"".join(self._binary))
                self._binary.clear()
        elif isinstance(event, Ping):
            await self._send_raw(self.ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            # Frames before the close are still delivered; then reads fail.
            self.close_code = event.code
            with contextlib.suppress(Exception):
                await self._send_raw(self.ws.send(event.response()))
            self.closed = True

    async def send_frame(self, frame: str | bytes) -> None:
        """Send one raw Engine.IO frame (text, or binary attachment)."""
        event = TextMessage(data=frame) if isinstance(frame, str) else BytesMessage(data=frame)
        await self._send_raw(self.ws.send(event))

    async def _packet(self) -> Packet:
        """The next Socket.IO packet; engine.io pings are answered on the way."""
        while True:
            frame = await self._message()
            if isinstance(frame, bytes):
                assert self._pending is not None, "binary frame without a binary packet"
                packet, count, attachments = self._pending
                attachments.append(frame)
                if len(attachments) == count:
                    self._pending = None
                    packet.data = _reconstruct(packet.data, attachments)
                    packet.type -= 3  # BINARY_EVENT/BINARY_ACK → EVENT/ACK
                    return packet
                continue
            self.frames.append(frame)
            if frame == "2":
                if not self.closed:  # frames read after the close are still delivered
                    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                        await self.send_frame("3")
                continue
            if frame.startswith("0"):
                continue  # engine.io open packet
            assert frame.startswith("4"), f"unexpected engine.io frame {frame!r}"
            packet, count = _parse(frame[1:])
            if count:
                self._pending = (packet, count, [])
                continue
            return packet

    async def _pump(self) -> None:
        """Read one packet and file it as an event or an ack."""
        packet = await self._packet()
        if packet.type == 2:
            args = packet.data[1:]
            position = None
            if len(args) == 1 and isinstance(args[0], dict) and "pos" in args[0]:
                position = args[0]["pos"] if self.keep_positions else args[0].pop("pos")
                assert isinstance(position, str), f"a position is a string: {position!r}"
            if packet.data[0] == "hub:resume" and not self.keep_positions:
                return  # the hub's answer to a tether CONNECT, for continuity tests only
            self.positions.append(position)
            self.events.append((packet.data[0], args))
        elif packet.type == 3:
            assert packet.ack is not None
            self.acks[packet.ack] = packet.data
        else:
            raise AssertionError(f"unexpected packet {packet}")

    # -- Socket.IO

    async def connect(self, auth: dict[str, Any] | None = None) -> Packet:
        """Send CONNECT; return the CONNECT or CONNECT_ERROR reply."""
        await self.send_frame("40" + ("" if auth is None else json.dumps(auth)))
        packet = await self._packet()
        if packet.type == 0:
            self.sid = packet.data["sid"]
        return packet

    async def emit(self, event: str, *args: Any, ack: bool = False) -> int | None:
        ack_id = None
        if ack:
            ack_id = self._next_ack
            self._next_ack += 1
        attachments: list[bytes] = []
        data = _deconstruct([event, *args], attachments)
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        ack_text = "" if ack_id is None else str(ack_id)
        if attachments:
            await self.send_frame(f"45{len(attachments)}-{ack_text}{body}")
            for attachment in attachments:
                await self.send_frame(attachment)
        else:
            await self.send_frame(f"42{ack_text}{body}")
        return ack_id

    async def call(self, event: str, *args: Any, timeout: float = 5.0) -> list[Any]:
        """Emit with an ack and return the ack's values."""
        ack_id = await self.emit(event, *args, ack=True)
        assert ack_id is not None
        with anyio.fail_after(timeout):
            while ack_id not in self.acks:
                await self._pump()
        return self.acks.pop(ack_id)

    async def next_event(self, timeout: float = 5.0) -> tuple[str, list[Any]]:
        with anyio.fail_after(timeout):
            while not self.events:
                await self._pump()
        return self.events.popleft()

    async def expect(self, name: str, payload: Any, timeout: float = 5.0) -> None:
        """The next event must be ``name`` with the single argument ``payload``."""
        got = await self.next_event(timeout)
        assert got == (name, [payload]), f"expected {name} {payload!r}, got {got!r}"

    async def expect_silence(self, within: float = 0.3) -> None:
        """No event arrives within ``within`` seconds."""
        with anyio.move_on_after(within):
            while not self.events:
                await self._pump()
        assert not self.events, f"unexpected events: {list(self.events)}"

    async def until_closed(self, timeout: float = 5.0) -> list[tuple[str, list[Any]]]:
        """Read until the hub closes the connection; return the events received meanwhile."""
        with anyio.fail_after(timeout):
            try:
                while True:
                    await self._pump()
            except ConnectionError:
                pass
        events = list(self.events)
        self.events.clear()
        return events

    async def sync(self) -> None:
        """Round trip to the hub: everything it sent before is now queued locally."""
        result = await self.call("members", {"channel": "__sync__"})
        assert result == [[]]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if not self.closed:
                await self.send_frame("41")
                await self._send_raw(self.ws.send(CloseConnection(code=1000)))
        await self.stream.aclose()


def _parse(text: str) -> tuple[Packet, int]:
    """Decode a Socket.IO packet (without the engine.io ``4``); returns it and its
    attachment count."""
    match = re.match(r"(\d)(?:(\d+)-)?(?:(/[^,]*),)?(\d+)?", text)
    assert match is not None, text
    packet_type = int(match[1])
    count = int(match[2] or 0)
    assert match[3] in (None, "/"), f"unexpected namespace in {text!r}"
    ack = None if match[4] is None else int(match[4])
    rest = text[match.end() :]
    data = json.loads(rest) if rest else None
    return Packet(packet_type, data, ack), count


class Address(Protocol):
    """Where a hub listens: a ``HubProcess``, or anything else with ``host`` and ``port``."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


@contextlib.asynccontextmanager
async def connected(hub: Address, auth: dict[str, Any] | None = None) -> AsyncIterator[WireClient]:
    """A WireClient connected to ``hub`` on "/" (CONNECT accepted)."""
    client = await WireClient.open(hub.host, hub.port)
    try:
        reply = await client.connect(auth)
        assert reply.type == 0, f"connect refused: {client.frames[-1]}"
        yield client
    finally:
        with anyio.CancelScope(shield=True):
            await client.close()
