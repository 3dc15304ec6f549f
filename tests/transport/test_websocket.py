"""Both WebSocket transports against real peers, on asyncio and trio.

Every async test runs with each connector: ``WebSocketConnector`` (wsproto) and
``FastWebSocketConnector`` (websockets' sans-IO protocol), which must behave the same.

Two kinds of server run in background threads, so they work whatever the test's event loop:
a ``websockets`` server (a correct, independent RFC 6455 implementation) for the normal
paths, and a raw socket server that writes hand-made frames for the broken ones. Tests wait
for server-side conditions through ``threading.Event``s and never sleep for a guessed time
(one test polls a lock's statistics until the state it needs is there).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import inspect
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

import anyio
import anyio.abc
import pytest
import trustme
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve
from wsproto.frame_protocol import FrameProtocol

from tether.transport import (
    Connector,
    FastWebSocketConnector,
    FastWebSocketTransport,
    Transport,
    TransportError,
    WebSocketConnector,
    WebSocketTransport,
    encode_headers,
)
from tether.transport._stream import describe as _describe
from tether.transport._stream import parse_url as _parse_url

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0
PATH = "/socket.io/?EIO=4&transport=websocket"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


async def wait_for(event: threading.Event) -> None:
    """Wait, without blocking the event loop, until a server thread sets ``event``."""
    assert await anyio.to_thread.run_sync(event.wait, TIMEOUT), "the server never got there"


# --- a websockets server ---------------------------------------------------------------


class WSServer:
    """A ``websockets`` sync server in a thread; ``handler`` runs once per connection."""

    def __init__(
        self,
        handler: Callable[[ServerConnection], None],
        *,
        reject: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.requests: list[Request] = []
        self.done = threading.Event()  # set when a handler returns
        self.close_codes: list[int | None] = []  # close code each handler's peer sent

        def process_request(connection: ServerConnection, request: Request) -> Response | None:
            self.requests.append(request)
            if reject is not None:
                return connection.respond(reject, "refused by test\n")
            return None

        def run(connection: ServerConnection) -> None:
            try:
                handler(connection)
            except ConnectionClosed:
                pass
            finally:
                rcvd = connection.protocol.close_rcvd
                self.close_codes.append(None if rcvd is None else rcvd.code)
                self.done.set()

        self._server = serve(
            run,
            "127.0.0.1",
            0,
            ssl=ssl_context,
            compression=None,
            ping_interval=None,
            max_size=None,
            process_request=process_request,
            close_timeout=TIMEOUT,
        )
        self.port: int = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, scheme: str = "ws", path: str = PATH) -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(TIMEOUT)


@pytest.fixture
def ws_server() -> Iterator[Callable[..., WSServer]]:
    servers: list[WSServer] = []

    def start(handler: Callable[[ServerConnection], None], **kwargs: Any) -> WSServer:
        server = WSServer(handler, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def echo(connection: ServerConnection) -> None:
    for message in connection:
        connection.send(message)


# --- a raw socket server, for what a correct server would never send -------------------


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """An unmasked (server-to-client) frame, RFC 6455 5.2."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 65536:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame, which a server must never send (RFC 6455 5.1)."""
    key = b"\x01\x02\x03\x04"
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + body


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return frame(CLOSE, struct.pack("!H", code) + reason)


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("the client closed the connection")
        data += chunk
    return data


def read_frame(conn: socket.socket) -> tuple[int, bytes]:
    """Read one client frame (masked, RFC 6455 5.3); return (opcode, unmasked payload)."""
    first, second = recv_exactly(conn, 2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", recv_exactly(conn, 2))
    elif size == 127:
        (size,) = struct.unpack("!Q", recv_exactly(conn, 8))
    key = recv_exactly(conn, 4) if second & 0x80 else b"\0\0\0\0"
    payload = recv_exactly(conn, size)
    return first & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError("no request")
        data += chunk
    return data


def accept_response(request: bytes, *, key: bytes | None = None) -> bytes:
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = key or value.strip()
    assert key is not None
    token = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + token + b"\r\n\r\n"
    )


def wait_for_eof(conn: socket.socket) -> None:
    """Read and discard until the client closes its end (FIN or reset)."""
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


class RawServer:
    """Serves one connection with a plain socket: the upgrade, then ``script(conn)``."""

    def __init__(
        self,
        script: Callable[[socket.socket], None],
        *,
        handshake: bool = True,
        after_101: bytes = b"",
    ) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.request = b""
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._script = script
        self._handshake = handshake
        self._after_101 = after_101
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                if self._handshake:
                    self.request = read_request(conn)
                    conn.sendall(accept_response(self.request) + self._after_101)
                self._script(conn)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{PATH}"

    async def finish(self) -> None:
        """Wait for the script to end; re-raise what went wrong in it."""
        await wait_for(self.done)
        self.listener.close()
        if self.error is not None:
            raise self.error


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(script: Callable[[socket.socket], None], **kwargs: Any) -> RawServer:
        server = RawServer(script, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.listener.close()
        server._thread.join(TIMEOUT)


# --- the connector under test --------------------------------------------------------------

AnyConnector: TypeAlias = type[WebSocketConnector] | type[FastWebSocketConnector]
AnyTransport: TypeAlias = WebSocketTransport | FastWebSocketTransport

#: The connector class the running test uses; set by the ``connector_class`` fixture.
CONNECTOR: AnyConnector = WebSocketConnector


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every async test with both connectors (the sync ones test shared helpers)."""
    if inspect.iscoroutinefunction(metafunc.function):
        metafunc.parametrize(
            "connector_class",
            [
                pytest.param(WebSocketConnector, id="wsproto"),
                pytest.param(FastWebSocketConnector, id="websockets"),
            ],
            indirect=True,
        )


@pytest.fixture(autouse=True)
def connector_class(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AnyConnector:
    cls: AnyConnector = getattr(request, "param", WebSocketConnector)
    monkeypatch.setattr(sys.modules[__name__], "CONNECTOR", cls)
    return cls


async def connect(url: str, **kwargs: Any) -> AnyTransport:
    return await CONNECTOR().connect(url, **kwargs)


async def expect_error(transport: AnyTransport, reason: str) -> TransportError:
    """Receive until the transport fails; check and return the error."""
    with pytest.raises(TransportError) as info:
        await transport.receive()
    assert info.value.reason == reason, str(info.value)
    assert transport.closed
    return info.value


# --- the interface ---------------------------------------------------------------------


async def test_websocket_classes_satisfy_the_protocols(ws_server: Callable[..., WSServer]) -> None:
    server = ws_server(echo)
    with anyio.fail_after(TIMEOUT):
        # The annotations are the test: mypy fails if the shapes drift from the protocols.
        connector: Connector = CONNECTOR()
        transport: Transport = await connector.connect(
            server.url(), headers=(), ssl_context=None, max_message_size=100
        )
        await transport.aclose()


# --- messages ------------------------------------------------------------------------------


async def test_text_and_binary_round_trip(ws_server: Callable[..., WSServer]) -> None:
    server = ws_server(echo)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        await transport.send("40")
        await transport.send(b"\x00\x01\xff")
        await transport.send("")
        await transport.send("héllo ✓")
        assert await transport.receive() == "40"
        assert await transport.receive() == b"\x00\x01\xff"
        assert await transport.receive() == ""
        assert await transport.receive() == "héllo ✓"
        assert not transport.closed
        assert "open" in repr(transport)
        await transport.aclose()
        assert "closed" in repr(transport)


async def test_send_many_writes_once_and_keeps_order(
    ws_server: Callable[..., WSServer],
) -> None:
    server = ws_server(echo)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        real = transport._stream
        writes: list[bytes] = []

        class CountingStream:
            async def send(self, data: bytes) -> None:
                writes.append(data)
                await real.send(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

        transport._stream = CountingStream()  # type: ignore[assignment]
        await transport.send_many(['451-["up",{"_placeholder":true,"num":0}]', b"\x01", "c"])
        assert len(writes) == 1
        await transport.send_many([])
        await transport.send_many(iter(()))
        assert len(writes) == 1
        assert await transport.receive() == '451-["up",{"_placeholder":true,"num":0}]'
        assert await transport.receive() == b"\x01"
        assert await transport.receive() == "c"
        await transport.aclose()


async def test_large_messages_both_ways(ws_server: Callable[..., WSServer]) -> None:
    server = ws_server(echo)
    big_text = "é" * 1_500_000  # 3 MB of UTF-8
    big_bytes = bytes(range(256)) * 12_000  # 3 MB
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url(), max_message_size=3_072_000)
        await transport.send(big_text)
        await transport.send(big_bytes)
        assert await transport.receive() == big_text
        assert await transport.receive() == big_bytes
        await transport.aclose()


async def test_concurrent_senders_never_interleave(ws_server: Callable[..., WSServer]) -> None:
    server = ws_server(echo)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        sent = {f"{n:02d}" * 50_000 for n in range(12)}
        async with anyio.create_task_group() as tg:
            for message in sent:
                tg.start_soon(transport.send, message)
        received = {await transport.receive() for _ in sent}
        assert received == sent
        await transport.aclose()


async def test_fragments_are_assembled(raw_server: Callable[..., RawServer]) -> None:
    text = "é✓".encode()  # split inside multi-byte characters below
    server = raw_server(
        wait_for_eof,
        after_101=(
            frame(TEXT, text[:1], fin=False)
            + frame(PING, b"mid-message")  # RFC 6455 5.4: control frames may interleave
            + frame(CONTINUATION, text[1:4], fin=False)
            + frame(CONTINUATION, text[4:])
            + frame(BINARY, b"ab", fin=False)
            + frame(CONTINUATION, b"", fin=False)
            + frame(CONTINUATION, b"cd")
            + frame(TEXT, b"", fin=False)
            + frame(CONTINUATION, b"")
        ),
    )
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        assert await transport.receive() == "é✓"
        assert await transport.receive() == b"abcd"
        assert await transport.receive() == ""
        await transport.aclose()
        await server.finish()


async def test_frames_right_behind_the_101_are_delivered(
    raw_server: Callable[..., RawServer],
) -> None:
    codes: list[int] = []

    def script(conn: socket.socket) -> None:
        opcode, payload = read_frame(conn)
        assert opcode == CLOSE
        codes.append(struct.unpack("!H", payload[:2])[0])

    server = raw_server(
        script, after_101=frame(TEXT, b"a") + frame(BINARY, b"b") + close_frame(1000, b"bye")
    )
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        assert await transport.receive() == "a"
        assert await transport.receive() == b"b"
        error = await expect_error(transport, "transport close")
        assert "code 1000" in str(error)
        await server.finish()
        assert codes == [1000]  # RFC 6455 5.5.1: the close was echoed


# --- size limit ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "fits"),
    [
        ("é" * 50, True),  # 100 bytes: exactly the limit
        ("é" * 50 + "x", False),  # 101 bytes in 51 characters
        ("x" * 100, True),
        ("x" * 101, False),
        ("✓" * 34, False),  # 102 bytes in 34 characters: counted as bytes, not characters
        (b"\0" * 100, True),
        (b"\0" * 101, False),
    ],
)
async def test_single_frame_limit_counts_bytes(
    ws_server: Callable[..., WSServer], message: str | bytes, fits: bool
) -> None:
    def handler(connection: ServerConnection) -> None:
        connection.send(message)
        for _ in connection:
            pass

    server = ws_server(handler)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url(), max_message_size=100)
        if fits:
            assert await transport.receive() == message
            await transport.aclose()
        else:
            error = await expect_error(transport, "transport error")
            assert "max_message_size" in str(error)
        await wait_for(server.done)
    assert server.close_codes == [1000 if fits else 1009]  # 1009: message too big


@pytest.mark.parametrize(("size", "fits"), [(100, True), (101, False)])
async def test_fragmented_limit_counts_bytes(
    raw_server: Callable[..., RawServer], size: int, fits: bool
) -> None:
    payload = ("é" * 49 + "xx").encode() + b"x" * (size - 100)
    assert len(payload) == size
    codes: list[int] = []

    def script(conn: socket.socket) -> None:
        # Split in the middle of a two-byte character each time.
        conn.sendall(
            frame(TEXT, payload[:33], fin=False)
            + frame(CONTINUATION, payload[33:67], fin=False)
            + frame(CONTINUATION, payload[67:])
            + frame(TEXT, b"next")
        )
        opcode, body = read_frame(conn)
        assert opcode == CLOSE
        codes.append(struct.unpack("!H", body[:2])[0])

    server = raw_server(script)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url(), max_message_size=100)
        if fits:
            assert await transport.receive() == payload.decode()
            assert await transport.receive() == "next"
            await transport.aclose()
        else:
            await expect_error(transport, "transport error")
        await server.finish()
    assert codes == [1000 if fits else 1009]


@pytest.mark.parametrize("fragmented", [True, False])
async def test_oversized_message_fails_while_it_arrives(
    raw_server: Callable[..., RawServer], fragmented: bool
) -> None:
    """The limit trips as bytes arrive: the client never waits for (or buffers) the rest."""
    chunk = b"x" * 65536
    total_chunks = 1024  # 64 MiB if the client read it all: far more than socket buffers hold
    sent = [0]

    def script(conn: socket.socket) -> None:
        if fragmented:
            conn.sendall(frame(BINARY, chunk, fin=False))
        else:
            # One frame announcing 64 MiB, whose payload then trickles in.
            conn.sendall(bytes([0x82, 127]) + struct.pack("!Q", len(chunk) * total_chunks))
        try:
            for _ in range(total_chunks - 1):
                conn.sendall(frame(CONTINUATION, chunk, fin=False) if fragmented else chunk)
                sent[0] += 1
        except OSError:
            pass  # the client gave up and closed: what we want

    server = raw_server(script)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url(), max_message_size=256 * 1024)
        error = await expect_error(transport, "transport error")
        assert "exceeds max_message_size" in str(error)
        await server.finish()
    assert sent[0] < total_chunks // 2


# --- what a broken server sends ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(TEXT, b"ok \xff\xfe"), 1007),  # invalid UTF-8 in a text frame
        (frame(TEXT, b"\xe2\x9c", fin=False) + frame(CONTINUATION, b"\x28"), 1007),
        (frame(0x3), 1002),  # reserved opcode
        (frame(TEXT, b"x", rsv=0x40), 1002),  # RSV1 without an extension
        (masked_frame(TEXT, b"masked"), 1002),  # servers must not mask
        (frame(CONTINUATION, b"orphan"), 1002),
        (frame(PING, b"x" * 126), 1002),  # control frame over 125 bytes
        (frame(PING, b"x", fin=False), 1002),  # fragmented control frame
        (frame(CLOSE, b"\x03"), 1002),  # one-byte close payload
        (close_frame(999), 1002),  # invalid close code
        (close_frame(1000, b"\xff"), 1007),  # invalid UTF-8 close reason
    ],
)
async def test_protocol_violations_are_transport_errors(
    raw_server: Callable[..., RawServer], data: bytes, code: int
) -> None:
    codes: list[int] = []

    def script(conn: socket.socket) -> None:
        assert read_frame(conn) == (TEXT, b"go")  # so that what follows comes in one read
        conn.sendall(frame(TEXT, b"before") + data)
        opcode, body = read_frame(conn)
        assert opcode == CLOSE
        codes.append(struct.unpack("!H", body[:2])[0])

    server = raw_server(script)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        await transport.send("go")
        assert await transport.receive() == "before"  # what came first is still delivered
        first = await expect_error(transport, "transport error")
        assert "broke the WebSocket protocol" in str(first)
        second = await expect_error(transport, "transport error")
        assert second is not first  # a fresh exception each time
        assert str(second) == str(first)
        with pytest.raises(TransportError) as info:
            await transport.send("after")
        assert info.value.reason == "transport error"
        await server.finish()
        await transport.aclose()
    assert codes == [code]  # RFC 6455 7.1.7: failed with the code that says why


async def test_aclose_drops_undelivered_messages(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(wait_for_eof, after_101=frame(TEXT, b"a") + frame(TEXT, b"b"))
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        assert await transport.receive() == "a"
        await transport.aclose()
        await expect_error(transport, "transport close")
        await server.finish()


async def test_unsolicited_pong_is_ignored(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(wait_for_eof, after_101=frame(PONG, b"?") + frame(TEXT, b"after"))
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        assert await transport.receive() == "after"
        await transport.aclose()
        await server.finish()


# --- pings ---------------------------------------------------------------------------------


async def test_pings_are_answered_while_receiving(ws_server: Callable[..., WSServer]) -> None:
    def handler(connection: ServerConnection) -> None:
        for payload in (b"one", b"two"):
            answered = connection.ping(payload).wait(TIMEOUT)
            connection.send(f"{payload.decode()} {'answered' if answered else 'lost'}")
        for _ in connection:
            pass

    server = ws_server(handler)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        assert await transport.receive() == "one answered"
        assert await transport.receive() == "two answered"
        await transport.aclose()


@pytest.mark.parametrize("method", ["send", "send_many"])
async def test_owed_pong_rides_with_the_next_write(
    raw_server: Callable[..., RawServer], method: str
) -> None:
    frames: list[tuple[int, bytes]] = []

    def script(conn: socket.socket) -> None:
        frames.append(read_frame(conn))
        frames.append(read_frame(conn))
        wait_for_eof(conn)

    # The ping arrives with the 101, so it is decoded during connect(), before any receive().
    server = raw_server(script, after_101=frame(PING, b"early"))
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        if method == "send":
            await transport.send("hello")
        else:
            await transport.send_many(["hello"])
        await transport.aclose()
        await server.finish()
    assert frames == [(PONG, b"early"), (TEXT, b"hello")]


# --- how connections end -------------------------------------------------------------------


async def test_server_close_frame_is_transport_close(ws_server: Callable[..., WSServer]) -> None:
    def handler(connection: ServerConnection) -> None:
        connection.send("bye")
        connection.close(1001, "going away")

    server = ws_server(handler)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        assert await transport.receive() == "bye"
        error = await expect_error(transport, "transport close")
        assert "code 1001" in str(error)
        with pytest.raises(TransportError) as info:
            await transport.send("too late")
        assert info.value.reason == "transport close"
        await wait_for(server.done)
        await transport.aclose()
    assert server.close_codes == [1001]  # the client's echo reached the server


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        # RFC 6455 7.1.5: no status code means 1005; the echo carries none either.
        pytest.param(b"", 1005, id="empty"),
        pytest.param(struct.pack("!H", 4000) + "au revoir ✓".encode(), 4000, id="reason"),
    ],
)
async def test_close_frames_are_echoed(
    raw_server: Callable[..., RawServer], payload: bytes, code: int
) -> None:
    received: list[tuple[int, bytes]] = []

    def script(conn: socket.socket) -> None:
        with contextlib.suppress(EOFError):
            while True:
                received.append(read_frame(conn))

    server = raw_server(
        script,
        after_101=frame(TEXT, b"a") + frame(CLOSE, payload) + frame(TEXT, b"after the close"),
    )
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        assert await transport.receive() == "a"
        error = await expect_error(transport, "transport close")  # nothing after the close
        assert f"code {code}" in str(error)
        await transport.aclose()  # no second close frame
        await server.finish()
    assert received == [(CLOSE, payload)]  # RFC 6455 5.5.1: echoed, once


async def test_eof_without_close_frame_is_transport_close(
    raw_server: Callable[..., RawServer],
) -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(frame(TEXT, b"last"))
        conn.shutdown(socket.SHUT_WR)
        wait_for_eof(conn)

    server = raw_server(script)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        assert await transport.receive() == "last"
        error = await expect_error(transport, "transport close")
        assert "without a close frame" in str(error)
        await server.finish()


def reset(conn: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_reset_while_receiving_is_transport_error(
    raw_server: Callable[..., RawServer],
) -> None:
    server = raw_server(reset)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        await server.finish()
        error = await expect_error(transport, "transport error")
        assert "broke" in str(error)
        await transport.aclose()


async def test_reset_while_sending_is_transport_error(
    raw_server: Callable[..., RawServer],
) -> None:
    server = raw_server(reset)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        await server.finish()
        errors: list[TransportError] = []
        while not errors:  # the first writes may still be accepted by the kernel
            try:
                await transport.send(b"x" * 65536)
            except TransportError as exc:
                errors.append(exc)
        assert errors[0].reason == "transport error"
        assert transport.closed
        await transport.aclose()


# --- closing from our side -----------------------------------------------------------------


async def test_aclose_sends_a_close_frame_and_is_idempotent(
    ws_server: Callable[..., WSServer],
) -> None:
    server = ws_server(echo)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        async with anyio.create_task_group() as tg:
            tg.start_soon(transport.aclose)
            tg.start_soon(transport.aclose)
        await transport.aclose()
        assert transport.closed
        await wait_for(server.done)
        for call in (transport.receive(), transport.send("x"), transport.send_many(["x"])):
            with pytest.raises(TransportError) as info:
                await call
            assert info.value.reason == "transport close"
            assert "closed locally" in str(info.value)
    assert server.close_codes == [1000]


def test_wsproto_sends_nothing_after_its_close_frame() -> None:
    """The connection state WebSocketTransport keeps over wsproto's FrameProtocol, sans I/O.

    A close frame goes out once (RFC 6455 7.1.2). A ping that arrives after it gets no pong
    (the transport is over), a close frame no echo: it answers ours (5.5.1).
    """
    proto = FrameProtocol(client=True, extensions=[])
    proto.receive_bytes(frame(TEXT, b"behind the 101"))  # as the connector hands it over
    stream: Any = None  # never used below
    transport = WebSocketTransport(stream, proto, max_message_size=100, where="test")
    assert transport._ready == ["behind the 101"]
    closing = transport._closing_frame(1001)
    assert closing[:2] == bytes([0x80 | CLOSE, 0x80 | 2])  # masked, with the code only
    assert transport._closing_frame(1001) == b""
    transport._feed(frame(TEXT, b"still delivered") + frame(PING, b"?") + close_frame(1000))
    assert transport._ready == ["behind the 101", "still delivered"]
    assert transport._reply == b""  # no pong, no echo
    assert transport._closing_frame(1001) == b""
    server_side = FrameProtocol(client=False, extensions=[])
    with pytest.raises(ValueError, match="client-side FrameProtocol"):
        WebSocketTransport(stream, server_side, max_message_size=100, where="test")


async def test_aclose_wakes_a_blocked_receiver(ws_server: Callable[..., WSServer]) -> None:
    server = ws_server(echo)
    errors: list[TransportError] = []
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())

        async def reader() -> None:
            try:
                await transport.receive()
            except TransportError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            await transport.aclose()
    assert [e.reason for e in errors] == ["transport close"]


async def test_aclose_is_bounded_when_the_peer_stops_reading(
    raw_server: Callable[..., RawServer],
) -> None:
    """A writer stuck on a full socket cannot hold aclose() past close_timeout."""
    release = threading.Event()
    server = raw_server(lambda conn: release.wait(TIMEOUT))
    errors: list[TransportError] = []
    with anyio.fail_after(TIMEOUT):
        transport = await CONNECTOR(close_timeout=0.1).connect(server.url())

        async def writer() -> None:
            try:
                await transport.send(b"x" * 64_000_000)
            except TransportError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            await anyio.wait_all_tasks_blocked()  # the writer is blocked on a full socket
            await transport.aclose()
        release.set()
        await server.finish()
    assert [e.reason for e in errors] == ["transport close"]


async def test_a_cancelled_write_poisons_the_transport(
    raw_server: Callable[..., RawServer],
) -> None:
    """Part of a frame may be on the wire: nothing more may be sent, not even a close."""
    release = threading.Event()
    received = [0]

    def script(conn: socket.socket) -> None:
        release.wait(TIMEOUT)
        try:
            while chunk := conn.recv(1 << 20):
                received[0] += len(chunk)
        except OSError:
            pass

    server = raw_server(script)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(transport.send, b"x" * 64_000_000)
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
        assert transport.closed
        with pytest.raises(TransportError) as info:
            await transport.send("more")
        assert info.value.reason == "transport error"
        assert "cancelled" in str(info.value)
        await transport.aclose()
        release.set()
        await server.finish()
    assert received[0] < 64_000_000


# --- opening -------------------------------------------------------------------------------


async def test_headers_and_query_reach_the_server(ws_server: Callable[..., WSServer]) -> None:
    server = ws_server(echo)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(
            server.url(path=PATH + "&token=Q%20T"),
            headers=[("Authorization", "Bearer H"), ("X-Trace", " 1 ")],
        )
        await transport.aclose()
    (request,) = server.requests
    assert request.path == PATH + "&token=Q%20T"
    assert request.headers["Authorization"] == "Bearer H"
    assert request.headers["X-Trace"] == "1"
    assert request.headers["Host"] == f"127.0.0.1:{server.port}"
    assert "permessage-deflate" not in request.headers.get("Sec-WebSocket-Extensions", "")


async def test_http_scheme_is_accepted(ws_server: Callable[..., WSServer]) -> None:
    server = ws_server(echo)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url(scheme="http"))
        await transport.send("x")
        assert await transport.receive() == "x"
        await transport.aclose()


async def test_tcp_nodelay_is_set(ws_server: Callable[..., WSServer]) -> None:
    server = ws_server(echo)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        sock = transport._stream.extra(anyio.abc.SocketAttribute.raw_socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        await transport.aclose()


@pytest.mark.parametrize("status", [400, 403, 503])
async def test_rejected_upgrade_has_the_status(
    ws_server: Callable[..., WSServer], status: int
) -> None:
    server = ws_server(echo, reject=status)
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(TransportError) as info:
            await connect(server.url(path=PATH + "&token=SECRET-Q"), headers=[("x-k", "SECRET-H")])
    assert info.value.reason == "transport error"
    assert info.value.status == status
    assert f"HTTP {status}" in str(info.value)
    assert_no_secret(info.value)


async def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once it is closed
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(TransportError) as info:
            await connect(
                f"ws://127.0.0.1:{port}{PATH}&token=SECRET-Q", headers=[("x-k", "SECRET-H")]
            )
    assert info.value.reason == "transport error"
    assert info.value.status is None
    assert f"ws://127.0.0.1:{port}/socket.io/" in str(info.value)
    assert "Connection refused (ECONNREFUSED)" in str(info.value)
    assert_no_secret(info.value)


async def test_unknown_host() -> None:
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(TransportError) as info:
            await connect(f"wss://no-such-host.invalid{PATH}")  # RFC 2606: never resolves
    assert info.value.reason == "transport error"


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",  # not HTTP at all
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: d3Jvbmc=\r\n\r\n",  # wrong accept token
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",  # then EOF mid-headers
        b"",  # EOF before any answer
    ],
)
async def test_broken_handshake_answers(
    raw_server: Callable[..., RawServer], answer: bytes
) -> None:
    def script(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(answer)
        conn.shutdown(socket.SHUT_WR)
        wait_for_eof(conn)

    server = raw_server(script, handshake=False)
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(TransportError) as info:
            await connect(server.url())
        await server.finish()  # the client closed its socket
    assert info.value.reason == "transport error"
    assert info.value.status is None


async def test_eof_right_after_the_upgrade_is_transport_close(
    raw_server: Callable[..., RawServer],
) -> None:
    server = raw_server(lambda conn: conn.shutdown(socket.SHUT_WR))
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        await expect_error(transport, "transport close")
        await server.finish()


@pytest.mark.parametrize("stage", ["http", "tls"])
async def test_cancelling_connect_closes_the_socket(
    raw_server: Callable[..., RawServer], stage: str
) -> None:
    """The driver bounds an attempt by cancelling it; no socket may outlive the attempt."""
    got_bytes = threading.Event()
    closed = threading.Event()

    def script(conn: socket.socket) -> None:
        conn.recv(65536)  # the upgrade request, or the TLS ClientHello: never answered
        got_bytes.set()
        wait_for_eof(conn)
        closed.set()

    server = raw_server(script, handshake=False)
    scheme = "wss" if stage == "tls" else "ws"
    with anyio.fail_after(TIMEOUT):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(connect, f"{scheme}://127.0.0.1:{server.port}{PATH}")
                await wait_for(got_bytes)
                scope.cancel()
        assert scope.cancelled_caught
        await wait_for(closed)
        await server.finish()


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ws_server: Callable[..., WSServer], ca: trustme.CA) -> WSServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return ws_server(echo, ssl_context=context)


async def test_tls_is_verified_by_default(tls_server: WSServer) -> None:
    connector = CONNECTOR()
    with anyio.fail_after(TIMEOUT):
        for _ in range(2):  # the default context is made once and reused
            with pytest.raises(TransportError) as info:
                await connector.connect(tls_server.url("wss") + "&token=SECRET-Q")
            assert info.value.reason == "transport error"
            assert "certificate" in str(info.value).lower()
            assert_no_secret(info.value)


async def test_tls_with_a_trusting_context(tls_server: WSServer, ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(tls_server.url("https"), ssl_context=context)
        await transport.send("secure")
        assert await transport.receive() == "secure"
        sock = transport._stream.extra(anyio.abc.SocketAttribute.raw_socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        await transport.aclose()
        await wait_for(tls_server.done)
    assert tls_server.close_codes == [1000]


async def test_plain_ws_ignores_an_ssl_context(ws_server: Callable[..., WSServer]) -> None:
    server = ws_server(echo)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url(), ssl_context=ssl.create_default_context())
        await transport.aclose()


# --- bad arguments and secrets -------------------------------------------------------------


def assert_no_secret(error: BaseException) -> None:
    for text in (str(error), repr(error)):
        assert "SECRET" not in text, text


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ([("Bad Name", "v")], "invalid header name"),
        ([("Host", "evil")], "set by the WebSocket handshake"),
        ([("Sec-WebSocket-Key", "x")], "set by the WebSocket handshake"),
        ([("X-Token", "SECRET\r\nInjected: 1")], "control characters"),
        ([("X-Token", "SECRET€")], "outside Latin-1"),
        ([("X-Token", 42)], "must be a str"),
        ([(b"X-Token", "SECRET")], "header names must be str"),
    ],
)
async def test_bad_headers_fail_the_attempt_without_leaking(
    headers: list[tuple[Any, Any]], match: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        encode_headers(headers)
    with pytest.raises(TransportError, match=match) as info:
        await connect(f"ws://127.0.0.1:1{PATH}", headers=headers)
    assert info.value.reason == "transport error"
    assert_no_secret(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "ws:///socket.io/",
        "ws://example.com:0/",
        "ws://example.com:x/",
        "ws://a..b/socket.io/",  # not a valid IDNA host name
        "ws://127.0.0.1:1/socket.io/?token=é",  # not percent-encoded
    ],
)
async def test_bad_urls_fail_the_attempt(url: str) -> None:
    with pytest.raises(TransportError) as info:
        await connect(url)
    assert info.value.reason == "transport error"


async def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        await connect(f"ws://127.0.0.1:1{PATH}", max_message_size=0)
    with pytest.raises(ValueError, match="read_size"):
        CONNECTOR(read_size=0)
    with pytest.raises(ValueError, match="close_timeout"):
        CONNECTOR(close_timeout=-1)
    with pytest.raises(TransportError):
        await connect(b"ws://127.0.0.1:1/")  # type: ignore[arg-type]


def test_transport_error_validates_its_reason() -> None:
    with pytest.raises(ValueError, match="reason must be"):
        TransportError("ping timeout")  # type: ignore[arg-type]
    error = TransportError("transport error", "refused", status=403)
    assert (error.reason, error.status, str(error)) == ("transport error", 403, "refused")
    assert repr(error) == "TransportError('transport error', 'refused', status=403)"
    assert str(TransportError("transport close")) == "transport close"
    assert repr(TransportError("transport close")) == (
        "TransportError('transport close', 'transport close')"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://example.com/socket.io/?EIO=4", ("ws", "example.com", 80, "example.com")),
        ("wss://example.com/", ("wss", "example.com", 443, "example.com")),
        ("https://example.com:8443", ("wss", "example.com", 8443, "example.com:8443")),
        ("ws://[::1]:8080/x", ("ws", "::1", 8080, "[::1]:8080")),
        ("ws://[::1]/x", ("ws", "::1", 80, "[::1]")),
    ],
)
def test_host_header_and_target(url: str, expected: tuple[str, str, int, str]) -> None:
    scheme, host, port, host_header, target = _parse_url(url)
    assert (scheme, host, port, host_header) == expected
    assert target.startswith("/")


def test_describe_digs_out_the_real_reason() -> None:
    inner = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
    wrapper = OSError("All connection attempts failed")
    wrapper.__cause__ = inner
    assert _describe(wrapper) == "Connection refused (ECONNREFUSED)"

    class Group(Exception):  # the shape of an ExceptionGroup, which 3.10 lacks
        exceptions = (inner, ConnectionRefusedError())

    group = OSError("All connection attempts failed")
    group.__cause__ = Group()
    assert _describe(group) == "Connection refused (ECONNREFUSED)"
    assert _describe(socket.gaierror(-2, "Name or service not known")) == (
        "[Errno -2] Name or service not known"
    )
    broken = anyio.BrokenResourceError()
    broken.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    assert "reset" in _describe(broken)
    assert _describe(anyio.EndOfStream()) == "the peer closed the connection"
    assert _describe(anyio.ClosedResourceError()) == "ClosedResourceError"


async def test_an_owed_pong_is_dropped_when_the_connection_closes(
    raw_server: Callable[..., RawServer],
) -> None:
    """The reader waits for the send lock to answer a ping; meanwhile the transport closes."""
    go = threading.Event()
    ping_sent = threading.Event()
    release = threading.Event()

    def script(conn: socket.socket) -> None:
        go.wait(TIMEOUT)
        conn.sendall(frame(PING, b"late"))
        ping_sent.set()
        release.wait(TIMEOUT)  # and never read: the writer below stays blocked

    server = raw_server(script)
    errors: list[TransportError] = []
    with anyio.fail_after(TIMEOUT):
        transport = await CONNECTOR(close_timeout=0.1).connect(server.url())

        async def writer() -> None:
            with contextlib.suppress(TransportError):
                await transport.send(b"x" * 64_000_000)

        async def reader() -> None:
            try:
                await transport.receive()
            except TransportError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            await anyio.wait_all_tasks_blocked()  # the writer holds the send lock
            go.set()
            await wait_for(ping_sent)
            tg.start_soon(reader)
            lock = transport._send_lock
            while not lock.waiting:  # the reader read the ping and waits
                await anyio.sleep(0.001)
            await transport.aclose()
        release.set()
        await server.finish()
    assert [e.reason for e in errors] == ["transport close"]
