"""A misbehaving Engine.IO / Socket.IO server for the client's bad-input tests.

It is a raw WebSocket server (websockets' threaded server, so it runs beside tests on asyncio or
trio alike). Every connection takes the next *mode* from a queue (``push_modes``; the default
mode when the queue is empty is ``default_mode``, ``"ok"``), or a ``mode`` query parameter
(``?mode=bad-eio``). It completes the Engine.IO handshake (open packet with the configured
``ping_interval``/``ping_timeout``, in ms), pings every ``ping_interval`` (except in ``no-ping``
and ``silent`` modes), records everything the client sends, and misbehaves as the mode says:

==========================  ====================================================================
mode                        what the server does
==========================  ====================================================================
``ok``                      answers CONNECT ``40{"sid":...}``, echoes ``42[...]`` events back,
                            acknowledges ``42N[...]`` with ``43N[...]`` (same args)
``reject``                  refuses the WebSocket upgrade with HTTP 400
``reject-echo``             refuses it with HTTP 400 and a body that echoes the request line and
                            headers (a server that puts the client's tokens into its error)
``silent``                  accepts the WebSocket, never sends the open packet
``no-connect-reply``        open packet, then never answers the namespace CONNECT
``connect-error``           answers CONNECT with ``44{"message":"refused","data":{...}}``
``connect-error-string``    answers CONNECT with ``44"Unable to connect"`` (python-socketio's form)
``early-events``            sends ``42["early",1]``, ``42["early",2]`` and only then ``40{...}``
``disconnect-with-payload`` ``40{...}`` then ``41{"message":"refused"}`` (always_connect style)
``bad-eio``                 after ``40{...}``: ``9foo`` (unknown Engine.IO packet type)
``bad-sio-type``            after ``40{...}``: ``4zzz`` (unknown Socket.IO packet type)
``bad-sio-payload``         after ``40{...}``: ``42{}`` (EVENT whose payload is not an array)
``bad-sio-ackid``           after ``40{...}``: ``42abc["x"]`` (invalid ack id / JSON)
``unexpected-binary``       after ``40{...}``: a binary frame no attachment header announced
``oversized``               after ``40{...}``: a text EVENT of ``oversize`` bytes (2 MB)
``invalid-utf8``            after ``40{...}``: a text frame that is not UTF-8 (raw framing)
``bad-frame``               after ``40{...}``: a frame with reserved opcode 3 (raw framing)
``no-ping``                 like ``ok`` but never pings
``close-packet``            after ``40{...}``: Engine.IO close ``1``, then closes the WebSocket
``drop``                    after ``40{...}``: shuts the TCP connection down (no close frame)
``close-on-connect``        closes the WebSocket when the CONNECT arrives, without answering it
                            (what a server with socket.io-msgpack-parser does)
``binary-connect-reply``    answers CONNECT with a binary frame (a MessagePack-style reply)
``lifecycle-names``         after ``40{...}``: one event named like each of tether's lifecycle
                            events (:data:`LIFECYCLE_NAMES`), then each of Socket.IO's
                            reserved names (:data:`RESERVED_NAMES`), each with the argument
                            ``"from-server"``
``flood``                   after ``40{...}``: ``flood_count`` events ``42["flood",i,"x..."]``
                            (``flood_size`` bytes of filler) as fast as the socket takes them
``stop-reading``            after ``40{...}``: never reads again (it keeps pinging): the
                            client's writes fill the socket buffers and then block
``huge-handshake``          an open packet of ``oversize`` bytes (padded with an extra key)
``bad-open``                an open packet that is not JSON (``0{nope``)
``open-no-sid``             an open packet without ``sid`` and with a string ``pingInterval``
==========================  ====================================================================

A mode may also be a callable ``script(conn)``: it runs in the connection's thread right after
the open packet and can ``conn.send(...)``, ``conn.send_raw(...)`` and ``conn.recv(...)``;
when it returns, the connection carries on in ``ok`` mode.

After misbehaving, the server keeps the connection open and keeps pinging, so a client that
does not give up on the bad data hangs visibly instead of timing out for another reason.

On command, from the test (any thread): ``conn.send(...)`` and ``conn.send_raw(...)`` write
whatever the test wants (malformed packets of any kind, at any moment), and
``conn.pause_reading()`` / ``conn.resume_reading()`` stop and restart reading while the
server keeps pinging: a server that stops reading, for as long as the test likes.
"""

from __future__ import annotations

import collections
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import anyio
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

Script = Callable[["GarbageConnection"], None]
Mode = str | Script

MODES = frozenset(
    {
        "ok",
        "reject",
        "reject-echo",
        "silent",
        "no-connect-reply",
        "connect-error",
        "connect-error-string",
        "early-events",
        "disconnect-with-payload",
        "bad-eio",
        "bad-sio-type",
        "bad-sio-payload",
        "bad-sio-ackid",
        "unexpected-binary",
        "oversized",
        "invalid-utf8",
        "bad-frame",
        "no-ping",
        "close-packet",
        "drop",
        "close-on-connect",
        "binary-connect-reply",
        "lifecycle-names",
        "flood",
        "stop-reading",
        "huge-handshake",
        "bad-open",
        "open-no-sid",
    }
)

#: The event names ``lifecycle-names`` sends, in this order: tether's lifecycle events (which
#: only the ``on_*`` methods register), then Socket.IO's reserved names (which no server may
#: emit, and a client takes for a parse error).
LIFECYCLE_NAMES = (
    "state_change",
    "reconnect",
    "reconnect_attempt",
    "reconnect_failed",
    "buffer_overflow",
)
RESERVED_NAMES = ("connect", "disconnect", "connect_error")


def _frame(opcode: int, payload: bytes) -> bytes:
    """A final, unmasked server frame (payloads under 126 bytes)."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


# What each "garbage after CONNECT" mode sends, as (kind, payload).
_AFTER_CONNECT: dict[str, tuple[str, str | bytes]] = {
    "bad-eio": ("text", "9foo"),
    "bad-sio-type": ("text", "4zzz"),
    "bad-sio-payload": ("text", "42{}"),
    "bad-sio-ackid": ("text", '42abc["x"]'),
    "unexpected-binary": ("binary", b"\x01\x02\x03"),
    # A text frame (opcode 1) whose payload is not UTF-8.
    "invalid-utf8": ("raw", _frame(0x1, b'42["\xff\xfe"]')),
    # A frame with the reserved opcode 3.
    "bad-frame": ("raw", _frame(0x3, b"")),
}


@dataclass
class GarbageConnection:
    """One client connection: what it asked for, what it sent, how it ended."""

    index: int
    mode: Mode
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    sid: str
    received: list[str | bytes] = field(default_factory=list)
    # The client's close frame, when it sent one (None after a bare TCP close).
    close_code: int | None = None
    close_reason: str | None = None
    error: str | None = None
    closed: threading.Event = field(default_factory=threading.Event)
    _ws: ServerConnection | None = field(default=None, repr=False)
    # Set while the server reads; cleared by pause_reading() and by the stop-reading mode.
    _reading: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self._reading.set()

    def pause_reading(self) -> None:
        """Stop reading the client (pings go on): its writes pile up in the socket buffers."""
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    @property
    def reading(self) -> bool:
        return self._reading.is_set()

    @property
    def is_closed(self) -> bool:
        return self.closed.is_set()

    def send(self, data: str | bytes) -> None:
        """Send one WebSocket message (thread-safe)."""
        assert self._ws is not None
        self._ws.send(data)

    def send_raw(self, frame: bytes) -> None:
        """Write raw bytes on the TCP socket, bypassing WebSocket framing."""
        assert self._ws is not None
        self._ws.socket.sendall(frame)

    def recv(self, timeout: float | None = None) -> str | bytes:
        """Receive one message (for scripts); it is recorded like any other."""
        assert self._ws is not None
        message = self._ws.recv(timeout)
        self.received.append(message)
        return message

    def texts(self) -> list[str]:
        return [m for m in list(self.received) if isinstance(m, str)]


@dataclass
class _Pending:
    mode: Mode
    index: int


class GarbageServer:
    """The handle: ``start()``/``stop()``, ``url``, ``push_modes()``, ``connections``."""

    def __init__(
        self,
        *,
        ping_interval: int = 25000,
        ping_timeout: int = 20000,
        max_payload: int = 1_000_000,
        oversize: int = 2 * 1024 * 1024,
        ws_ping_interval: float | None = None,
        host: str = "127.0.0.1",
        flood_count: int = 10_000,
        flood_size: int = 10,
    ) -> None:
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.oversize = oversize
        self.ws_ping_interval = ws_ping_interval
        self.flood_count = flood_count
        self.flood_size = flood_size
        self.host = host
        self.default_mode: Mode = "ok"
        self.modes: collections.deque[Mode] = collections.deque()
        self.connections: list[GarbageConnection] = []
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._counter = itertools.count()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            return
        self._server = serve(
            self._handler,
            self.host,
            0,
            process_request=self._process_request,
            compression=None,
            max_size=2**24,
            ping_interval=self.ws_ping_interval,
            close_timeout=1,
        )
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"garbage-server:{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> GarbageServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- driving it -------------------------------------------------------------------------------

    def push_modes(self, *modes: Mode) -> None:
        """Queue the modes of the next connections, in order."""
        for mode in modes:
            if isinstance(mode, str) and mode not in MODES:
                raise ValueError(f"unknown garbage mode {mode!r}")
        with self._lock:
            self.modes.extend(modes)

    def reset(self) -> None:
        """Forget queued modes and recorded connections; back to ``ok`` by default."""
        with self._lock:
            self.modes.clear()
            self.connections.clear()
            self.default_mode = "ok"

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self.connections)

    def connection(self, index: int = -1) -> GarbageConnection:
        with self._lock:
            return self.connections[index]

    async def wait_for(
        self, predicate: Callable[[GarbageServer], bool], timeout: float = 5.0
    ) -> None:
        """Poll ``predicate(self)`` every 20 ms until it holds; TimeoutError after ``timeout``."""
        with anyio.move_on_after(timeout):
            while not predicate(self):
                await anyio.sleep(0.02)
            return
        raise TimeoutError(
            f"garbage server: condition not met within {timeout} s; connections: "
            f"{[(c.index, c.mode, c.received[:8], c.close_code) for c in self.connections]}"
        )

    async def wait_connections(self, count: int, timeout: float = 5.0) -> GarbageConnection:
        """Wait until ``count`` connections were accepted; return the latest."""
        await self.wait_for(lambda s: s.connection_count >= count, timeout)
        return self.connection(count - 1)

    # -- the server side --------------------------------------------------------------------------

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        with self._lock:
            if "mode" in query:
                mode: Mode = query["mode"][0]
            else:
                mode = self.modes.popleft() if self.modes else self.default_mode
            conn = GarbageConnection(
                index=len(self.connections),
                mode=mode,
                path=request.path,
                query=query,
                headers=_headers(request.headers),
                sid=f"garbage{next(self._counter):06d}",
                _ws=ws,
            )
            self.connections.append(conn)
            self._pending[id(ws)] = _Pending(mode, conn.index)
        if mode == "reject":
            conn.closed.set()
            return ws.respond(400, "Bad request\n")
        if mode == "reject-echo":
            conn.closed.set()
            echoed = " ".join(f"{name}: {value}" for name, value in request.headers.raw_items())
            return ws.respond(400, f"Bad request: GET {request.path} {echoed}\n")
        return None

    def _handler(self, ws: ServerConnection) -> None:
        with self._lock:
            pending = self._pending.pop(id(ws))
            conn = self.connections[pending.index]
        try:
            _Session(self, conn, ws).run()
        except ConnectionClosed as exc:
            if exc.rcvd is not None:
                conn.close_code = exc.rcvd.code
                conn.close_reason = exc.rcvd.reason
        except Exception as exc:  # recorded for the test; never raised in a server thread
            conn.error = repr(exc)
        finally:
            conn.closed.set()


def _headers(headers: Headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.raw_items()}


class _Session:
    def __init__(self, server: GarbageServer, conn: GarbageConnection, ws: ServerConnection):
        self.server = server
        self.conn = conn
        self.ws = ws
        self.mode = conn.mode
        self.pings = self.mode not in ("no-ping", "silent")
        self.next_ping = 0.0

    def run(self) -> None:
        if self.mode == "silent":
            self.loop(answer=False)
            return
        open_packet: dict[str, object] = {
            "sid": self.conn.sid,
            "upgrades": [],
            "pingInterval": self.server.ping_interval,
            "pingTimeout": self.server.ping_timeout,
            "maxPayload": self.server.max_payload,
        }
        if self.mode == "huge-handshake":
            open_packet["padding"] = "x" * self.server.oversize
        elif self.mode == "open-no-sid":
            del open_packet["sid"]
            open_packet["pingInterval"] = "soon"
        if self.mode == "bad-open":
            self.ws.send("0{nope")
        else:
            self.ws.send("0" + json.dumps(open_packet, separators=(",", ":")))
        self.next_ping = time.monotonic() + self.server.ping_interval / 1000
        if callable(self.mode):
            self.mode(self.conn)
            self.mode = "ok"
        self.loop(answer=self.mode != "no-connect-reply")

    def loop(self, *, answer: bool) -> None:
        reading = self.conn._reading
        while True:
            timeout = None
            if self.pings:
                timeout = max(0.0, self.next_ping - time.monotonic())
            try:
                if not reading.is_set():
                    # Not reading: wait for the next ping or resume_reading().
                    if not reading.wait(timeout):
                        raise TimeoutError
                    continue
                message = self.ws.recv(timeout)
            except TimeoutError:
                self.ws.send("2")
                self.next_ping = time.monotonic() + self.server.ping_interval / 1000
                continue
            self.conn.received.append(message)
            if answer and isinstance(message, str):
                self.answer(message)

    def answer(self, message: str) -> None:
        if message.startswith("40"):
            self.on_connect()
        elif message.startswith("42"):
            self.on_event(message[2:])

    def on_connect(self) -> None:
        mode = self.mode
        sid = f"s{self.conn.sid}"
        connect_reply = "40" + json.dumps({"sid": sid}, separators=(",", ":"))
        if mode == "close-on-connect":
            self.ws.close()
            return
        if mode == "binary-connect-reply":
            self.ws.send(b"\x83\xa4type\x00\xa3nsp\xa1/\xa4data\x80")
            return
        if mode == "connect-error":
            self.ws.send('44{"message":"refused","data":{"reason":"garbage","retry":false}}')
            return
        if mode == "connect-error-string":
            self.ws.send('44"Unable to connect"')
            return
        if mode == "early-events":
            self.ws.send('42["early",1]')
            self.ws.send('42["early",2]')
        self.ws.send(connect_reply)
        if mode == "disconnect-with-payload":
            self.ws.send('41{"message":"refused"}')
        elif mode == "oversized":
            filler = "x" * max(0, self.server.oversize - len('42["big",""]'))
            self.ws.send(f'42["big","{filler}"]')
        elif mode == "close-packet":
            self.ws.send("1")
            self.ws.close()
        elif mode == "drop":
            self.ws.socket.shutdown(socket.SHUT_RDWR)
        elif mode == "lifecycle-names":
            for name in LIFECYCLE_NAMES + RESERVED_NAMES:
                self.ws.send("42" + json.dumps([name, "from-server"]))
        elif mode == "flood":
            filler = "x" * self.server.flood_size
            for i in range(self.server.flood_count):
                self.ws.send(f'42["flood",{i},"{filler}"]')
        elif mode == "stop-reading":
            self.conn.pause_reading()
        elif isinstance(mode, str) and mode in _AFTER_CONNECT:
            kind, payload = _AFTER_CONNECT[mode]
            if kind == "raw":
                assert isinstance(payload, bytes)
                self.ws.socket.sendall(payload)
            else:
                self.ws.send(payload)

    def on_event(self, rest: str) -> None:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        ack_id, body = rest[:digits], rest[digits:]
        try:
            data = json.loads(body)
        except ValueError:
            return
        if not isinstance(data, list) or not data:
            return
        if ack_id:
            self.ws.send(f"43{ack_id}" + json.dumps(data[1:], separators=(",", ":")))
        else:
            self.ws.send("42" + json.dumps(data, separators=(",", ":")))


class GarbageFactory:
    """Starts garbage servers with custom options; ``close()`` stops them (fixture teardown)."""

    def __init__(self) -> None:
        self.servers: list[GarbageServer] = []

    def __call__(
        self,
        *,
        ping_interval: int = 25000,
        ping_timeout: int = 20000,
        max_payload: int = 1_000_000,
        oversize: int = 2 * 1024 * 1024,
        ws_ping_interval: float | None = None,
        flood_count: int = 10_000,
        flood_size: int = 10,
    ) -> GarbageServer:
        server = GarbageServer(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_payload=max_payload,
            oversize=oversize,
            ws_ping_interval=ws_ping_interval,
            flood_count=flood_count,
            flood_size=flood_size,
        )
        self.servers.append(server)
        server.start()
        return server

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()
