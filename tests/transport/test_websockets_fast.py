"""What is particular to FastWebSocketTransport (the websockets-based transport).

Its behaviour as a transport is tested in ``test_websocket.py``, which runs every test against
both connectors. Here: that ``tether.transport`` works without the ``fast`` extra, that
websockets' own logging stays silent, what websockets does differently below the shared
behaviour (handshake answers, close frames, fragments), and a throughput measurement::

    python -m tests.transport.test_websockets_fast [messages]

which prints messages/s through ``receive()`` for both transports on asyncio and trio: 64-byte
text frames written as fast as a raw socket in a thread can, best of 5 runs.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

import tether.transport
from tether.transport import (
    Connector,
    FastWebSocketConnector,
    FastWebSocketTransport,
    Transport,
    TransportError,
    WebSocketConnector,
)

from .test_websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    TIMEOUT,
    RawServer,
    frame,
    raw_server,
    read_frame,
    read_request,
    wait_for,
    wait_for_eof,
)

__all__ = ["raw_server"]  # a fixture, imported to be used here

pytestmark = pytest.mark.anyio  # async tests run on asyncio and trio

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SECRET_URL_PART = "&token=SECRET-Q"
SECRET_HEADERS = [("Authorization", "Bearer SECRET-H")]


async def connect(url: str, **kwargs: Any) -> FastWebSocketTransport:
    return await FastWebSocketConnector().connect(url, **kwargs)


async def expect_error(transport: FastWebSocketTransport, reason: str) -> TransportError:
    with pytest.raises(TransportError) as info:
        await transport.receive()
    assert info.value.reason == reason, str(info.value)
    return info.value


def no_secret_anywhere(error: BaseException) -> None:
    """Nothing secret in the error, nor in the chain of causes a logged traceback shows."""
    shown: BaseException | None = error
    while shown is not None:
        for text in (str(shown), repr(shown)):
            assert "SECRET" not in text, text
        context = None if shown.__suppress_context__ else shown.__context__
        shown = shown.__cause__ or context


# --- packaging -----------------------------------------------------------------------------


def test_tether_transport_imports_without_websockets() -> None:
    """In a fresh interpreter where ``import websockets`` fails, as without the fast extra."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["websockets"] = None  # what an uninstalled package looks like to import
        import tether
        import tether.transport
        from tether.transport import *
        assert WebSocketConnector is tether.transport.WebSocketConnector
        for name in ("FastWebSocketConnector", "FastWebSocketTransport"):
            try:
                getattr(tether.transport, name)
            except ImportError as exc:
                assert "pip install 'tether[fast]'" in str(exc), exc
            else:
                raise AssertionError(name + " imported without websockets")
        try:
            from tether.transport import _websockets
        except ImportError as exc:
            assert "pip install 'tether[fast]'" in str(exc), exc
        else:
            raise AssertionError("_websockets imported without websockets")
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_missing_websockets_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same in this process (so that coverage sees the guarded import run)."""
    for name in [m for m in sys.modules if m == "websockets" or m.startswith("websockets.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "tether.transport._websockets")
    monkeypatch.delattr(tether.transport, "_websockets")
    with pytest.raises(ImportError, match=r"pip install 'tether\[fast\]'"):
        tether.transport.FastWebSocketConnector  # noqa: B018
    assert "tether.transport._websockets" not in sys.modules


def test_unknown_names_are_still_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        tether.transport.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    assert tether.transport.FastWebSocketConnector is FastWebSocketConnector


# --- the interface -------------------------------------------------------------------------


async def test_fast_classes_satisfy_the_protocols(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(wait_for_eof)
    with anyio.fail_after(TIMEOUT):
        # The annotations are the test: mypy fails if the shapes drift from the protocols.
        connector: Connector = FastWebSocketConnector()
        opened: FastWebSocketTransport = await FastWebSocketConnector().connect(
            server.url(), headers=(), ssl_context=None, max_message_size=100
        )
        transport: Transport = opened
        assert "FastWebSocketTransport" in repr(transport)
        assert connector is not None
        await transport.aclose()
        await server.finish()


# --- websockets' logging -------------------------------------------------------------------


async def test_websockets_logs_nothing_even_at_debug(
    raw_server: Callable[..., RawServer], caplog: pytest.LogCaptureFixture
) -> None:
    """websockets logs frames and request headers at DEBUG; none of it may get out."""
    caplog.set_level(logging.DEBUG)

    def script(conn: socket.socket) -> None:
        conn.sendall(frame(TEXT, b"hello") + frame(PING, b"p"))
        # The pong goes out before "out" if the ping came in the same read as the 101.
        assert sorted([read_frame(conn), read_frame(conn)]) == [(TEXT, b"out"), (PONG, b"p")]
        conn.sendall(frame(0x3))  # a reserved opcode: websockets fails the connection
        wait_for_eof(conn)

    server = raw_server(script)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url() + SECRET_URL_PART, headers=SECRET_HEADERS)
        assert transport._protocol.debug is False  # no per-frame logging calls either
        await transport.send("out")
        assert await transport.receive() == "hello"
        await expect_error(transport, "transport error")  # the bad opcode
        await transport.aclose()
        await server.finish()
    assert b"SECRET-H" in server.request  # it was sent...
    assert [r for r in caplog.records if r.name.startswith("websockets")] == []
    assert "SECRET" not in caplog.text  # ...and never logged


# --- the handshake -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        # A server that echoes what it gets: our request line, query and headers come back.
        (lambda request: request, None),
        (lambda request: b"HTTP/1.1 " + request, None),
        # The status line without a length: the body runs to EOF.
        (lambda request: b"HTTP/1.1 403 Forbidden\r\n\r\nno " + request, 403),
        (lambda request: b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno", 401),
    ],
)
async def test_handshake_failures_never_carry_what_we_sent(
    raw_server: Callable[..., RawServer], answer: Callable[[bytes], bytes], status: int | None
) -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(answer(read_request(conn)))
        conn.shutdown(socket.SHUT_WR)
        wait_for_eof(conn)

    server = raw_server(script, handshake=False)
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(TransportError) as info:
            await connect(server.url() + SECRET_URL_PART, headers=SECRET_HEADERS)
        await server.finish()
    assert info.value.reason == "transport error"
    assert info.value.status == status
    no_secret_anywhere(info.value)


def accept_token(request: bytes) -> bytes:
    key = accept_key_of(request).encode()
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


async def test_an_extension_we_did_not_offer_fails_the_handshake(
    raw_server: Callable[..., RawServer],
) -> None:
    def script(conn: socket.socket) -> None:
        request = read_request(conn)
        assert b"sec-websocket-extensions" not in request.lower()  # we offer none
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_token(request) + b"\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        )
        wait_for_eof(conn)

    server = raw_server(script, handshake=False)
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(TransportError) as info:
            await connect(server.url())
        await server.finish()
    assert info.value.reason == "transport error"
    assert info.value.status is None
    assert "WebSocket handshake with" in str(info.value)


async def test_the_request_is_the_default_transports(raw_server: Callable[..., RawServer]) -> None:
    """Both connectors send the same upgrade request, but for the random key."""
    requests: list[bytes] = []  # with the server's port replaced by "PORT"
    for connector in (WebSocketConnector(), FastWebSocketConnector()):
        server = raw_server(wait_for_eof)
        with anyio.fail_after(TIMEOUT):
            transport = await connector.connect(
                f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
                headers=[("X-Token", " t\u00e9 ")],
            )
            await transport.aclose()
            await server.finish()
        requests.append(server.request.replace(str(server.port).encode(), b"PORT"))

    def fields(request: bytes) -> tuple[bytes, set[tuple[bytes, bytes]]]:
        line, *headers = request.split(b"\r\n\r\n")[0].split(b"\r\n")
        pairs = set()
        for header in headers:
            name, _, value = header.partition(b":")
            if name.lower() != b"sec-websocket-key":
                pairs.add((name.lower(), value.strip()))
        return line, pairs

    assert fields(requests[0]) == fields(requests[1])
    line, headers = fields(requests[1])
    assert line == b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1"
    assert (b"host", b"127.0.0.1:PORT") in headers
    assert (b"x-token", "t\u00e9".encode("latin-1")) in headers


def accept_key_of(request: bytes) -> str:
    return next(
        line.split(b":", 1)[1].strip().decode()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )


# --- frames --------------------------------------------------------------------------------


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


async def test_an_empty_close_frame_is_echoed_empty(raw_server: Callable[..., RawServer]) -> None:
    """RFC 6455 7.1.5: no status code means 1005; the echo carries no code either."""
    received: list[tuple[int, bytes]] = []

    def script(conn: socket.socket) -> None:
        received.append(read_frame(conn))

    server = raw_server(
        script, after_101=frame(TEXT, b"a") + frame(CLOSE) + frame(TEXT, b"after the close")
    )
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        assert await transport.receive() == "a"
        error = await expect_error(transport, "transport close")  # nothing after the close
        assert "code 1005" in str(error)
        await server.finish()
        await transport.aclose()
    assert received == [(CLOSE, b"")]


async def test_invalid_utf8_fails_in_the_first_fragment(
    raw_server: Callable[..., RawServer],
) -> None:
    """The connection fails as the bad bytes arrive, without waiting for the message's end."""
    received: list[tuple[int, bytes]] = []
    done = threading.Event()

    def script(conn: socket.socket) -> None:
        conn.sendall(frame(TEXT, b"ok \xc0\xaf", fin=False))  # an overlong "/"; never finished
        received.append(read_frame(conn))
        done.set()
        wait_for_eof(conn)

    server = raw_server(script)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        error = await expect_error(transport, "transport error")
        assert "invalid UTF-8" in str(error)
        assert isinstance(error.__cause__, UnicodeDecodeError)
        await wait_for(done)
        await transport.aclose()
        await server.finish()
    assert received == [(CLOSE, close_payload(1007, b"invalid UTF-8"))]


async def test_nothing_after_invalid_utf8_is_delivered(
    raw_server: Callable[..., RawServer],
) -> None:
    received: list[tuple[int, bytes]] = []

    def script(conn: socket.socket) -> None:
        received.append(read_frame(conn))

    server = raw_server(
        script,
        after_101=frame(TEXT, b"a")
        + frame(BINARY, b"b", fin=False)
        + frame(CONTINUATION, b"c")
        + frame(TEXT, b"\xff")
        + frame(TEXT, b"never"),
    )
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        assert await transport.receive() == "a"
        assert await transport.receive() == b"bc"
        await expect_error(transport, "transport error")
        await server.finish()
        await transport.aclose()
    assert [opcode for opcode, _ in received] == [CLOSE]


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        # Three fragments of 33 + 34 + 34 bytes: the third one's header trips the limit.
        (
            frame(TEXT, b"x" * 33, fin=False)
            + frame(CONTINUATION, b"x" * 34, fin=False)
            + frame(CONTINUATION, b"x" * 34),
            "(101 > 100 bytes)",
        ),
        # One frame announcing 64 MiB: refused on its header alone.
        (bytes([0x82, 127]) + struct.pack("!Q", 1 << 26), "(67108864 > 100 bytes)"),
    ],
)
async def test_the_size_error_counts_the_whole_message(
    raw_server: Callable[..., RawServer], frames: bytes, expected: str
) -> None:
    received: list[tuple[int, bytes]] = []

    def script(conn: socket.socket) -> None:
        conn.sendall(frames)
        received.append(read_frame(conn))

    server = raw_server(script)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url(), max_message_size=100)
        error = await expect_error(transport, "transport error")
        assert f"exceeds max_message_size {expected}" in str(error)
        await server.finish()
        await transport.aclose()
    assert received[0][0] == CLOSE
    assert received[0][1][:2] == struct.pack("!H", 1009)


async def test_pings_during_a_fragmented_message_are_answered_in_order(
    raw_server: Callable[..., RawServer],
) -> None:
    received: list[tuple[int, bytes]] = []
    done = threading.Event()

    def script(conn: socket.socket) -> None:
        conn.sendall(
            frame(BINARY, b"1", fin=False)
            + frame(PING, b"first")
            + frame(PONG, b"unsolicited")
            + frame(CONTINUATION, b"2", fin=False)
            + frame(PING, b"second")
            + frame(CONTINUATION, b"3")
        )
        received.extend(read_frame(conn) for _ in range(3))
        done.set()
        wait_for_eof(conn)

    server = raw_server(script)
    with anyio.fail_after(TIMEOUT):
        transport = await connect(server.url())
        assert await transport.receive() == b"123"
        await transport.send("then this")
        await wait_for(done)
        await transport.aclose()
        await server.finish()
    assert received == [(PONG, b"first"), (PONG, b"second"), (TEXT, b"then this")]


@pytest.mark.parametrize("connector_class", [WebSocketConnector, FastWebSocketConnector])
async def test_a_batch_that_cannot_be_encoded_sends_nothing(
    raw_server: Callable[..., RawServer],
    connector_class: type[WebSocketConnector] | type[FastWebSocketConnector],
) -> None:
    received: list[tuple[int, bytes]] = []

    def script(conn: socket.socket) -> None:
        received.append(read_frame(conn))
        wait_for_eof(conn)

    server = raw_server(script)
    with anyio.fail_after(TIMEOUT):
        transport = await connector_class().connect(server.url())
        with pytest.raises(UnicodeEncodeError):
            await transport.send_many(["not this", "\ud800"])  # a lone surrogate
        await transport.send("only this")
        await transport.aclose()
        await server.finish()
    assert received == [(TEXT, b"only this")]


# --- throughput ----------------------------------------------------------------------------


class Blaster:
    """A raw socket server in a thread: after the upgrade, waits for "go", then writes
    ``count`` pre-encoded 64-byte text frames as fast as the socket takes them."""

    def __init__(self, count: int) -> None:
        self.blob = frame(TEXT, b"x" * 64) * count
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.go = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            request = read_request(conn)
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept_token(request)
                + b"\r\n\r\n"
            )
            self.go.wait(TIMEOUT)
            conn.sendall(self.blob)
            wait_for_eof(conn)

    def close(self) -> None:
        self._thread.join(TIMEOUT)
        self.listener.close()


def messages_per_second(
    connector_class: type[WebSocketConnector] | type[FastWebSocketConnector],
    backend: str,
    count: int,
) -> float:
    """One run: messages/s through receive(), from "go" until the last message is in."""

    async def run() -> float:
        blaster = Blaster(count)
        try:
            transport = await connector_class().connect(f"ws://127.0.0.1:{blaster.port}/")
            receive = transport.receive
            start = time.perf_counter()
            blaster.go.set()
            for _ in range(count):
                await receive()
            elapsed = time.perf_counter() - start
            await transport.aclose()
        finally:
            blaster.go.set()
            blaster.close()
        return count / elapsed

    return anyio.run(run, backend=backend)


def measure(count: int = 200_000, runs: int = 5) -> Iterator[tuple[str, str, float]]:
    """(connector, backend, best messages/s of ``runs``) for both transports and backends."""
    for connector_class in (WebSocketConnector, FastWebSocketConnector):
        for backend in ("asyncio", "trio"):
            best = max(messages_per_second(connector_class, backend, count) for _ in range(runs))
            yield connector_class.__name__, backend, best


def test_the_measurement_runs(anyio_backend: tuple[str, dict[str, object]]) -> None:
    """A tiny run, so that the measurement keeps working; its numbers mean nothing."""
    for connector_class in (WebSocketConnector, FastWebSocketConnector):
        assert messages_per_second(connector_class, anyio_backend[0], 2000) > 0


def main() -> None:  # pragma: no cover - a measurement, run by hand
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"messages/s through receive(): {count} 64-byte text frames, best of 5")
    for name, backend, best in measure(count):
        print(f"{name:24} {backend:8} {best:>12,.0f}")


if __name__ == "__main__":  # pragma: no cover
    main()
