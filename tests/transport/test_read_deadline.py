"""``Transport.read_deadline``: ``receive()`` returns ``None`` instead of waiting past it.

The driver's reader keeps the client's deadlines this way once connected (specs/client.md),
so every transport must: return messages already received first, stop waiting when the
deadline passes (also when it was moved while waiting), and work on normally afterwards.
Run with both WebSocket transports against a real socket server, and with the memory one.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from tether.transport import (
    FastWebSocketConnector,
    MemoryConnector,
    Transport,
    TransportError,
    WebSocketConnector,
)

from .test_websocket import (
    PING,
    TEXT,
    RawServer,
    frame,
    raw_server,
    read_frame,
    wait_for_eof,
)

__all__ = ["raw_server"]  # a fixture, imported to be used here

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0
KINDS = ["wsproto", "websockets", "memory"]


def script_two_then_echo(conn: socket.socket) -> None:
    """Send "a" and "b" in one write, then echo each text frame until the client leaves."""
    conn.sendall(frame(TEXT, b"a") + frame(TEXT, b"b"))
    try:
        while True:
            opcode, payload = read_frame(conn)
            if opcode != TEXT:
                break
            conn.sendall(frame(TEXT, payload))
    except (EOFError, OSError):
        pass
    wait_for_eof(conn)


@asynccontextmanager
async def opened(kind: str, start: Callable[..., RawServer]) -> AsyncIterator[Transport]:
    """A transport whose peer sent "a" and "b" together and then echoes text."""
    if kind == "memory":
        connector = MemoryConnector()
        transport = await connector.connect(
            "ws://example.com/", headers=(), ssl_context=None, max_message_size=1000
        )
        peer = await connector.accept()
        await peer.send_many(["a", "b"])

        async def echo() -> None:
            while True:
                await peer.send(await peer.receive())

        async with anyio.create_task_group() as tg:
            tg.start_soon(echo)
            try:
                yield transport
            finally:
                tg.cancel_scope.cancel()
                await transport.aclose()
        return
    server = start(script_two_then_echo)
    real = (WebSocketConnector if kind == "wsproto" else FastWebSocketConnector)()
    socket_transport = await real.connect(
        server.url(), headers=(), ssl_context=None, max_message_size=1000
    )
    try:
        yield socket_transport
    finally:
        await socket_transport.aclose()


async def receive_text(transport: Transport) -> str | bytes | None:
    """The first message: "a" may still be on its way when the test starts."""
    with anyio.fail_after(TIMEOUT):
        return await transport.receive()


async def receive_a_and_b(transport: Transport) -> None:
    """Take the two messages the peer sent first: what follows is a quiet connection."""
    assert await receive_text(transport) == "a"
    assert await receive_text(transport) == "b"


@pytest.mark.parametrize("kind", KINDS)
async def test_no_deadline_by_default(kind: str, raw_server: Callable[..., RawServer]) -> None:
    async with opened(kind, raw_server) as transport:
        assert transport.read_deadline == math.inf
        assert await receive_text(transport) == "a"


@pytest.mark.parametrize("kind", KINDS)
async def test_messages_already_received_come_before_a_passed_deadline(
    kind: str, raw_server: Callable[..., RawServer]
) -> None:
    async with opened(kind, raw_server) as transport:
        # "b" was sent in the same write (one segment on loopback): the read that returned
        # "a" decoded it too, and it waits in the transport.
        assert await receive_text(transport) == "a"
        transport.read_deadline = anyio.current_time() - 1
        with anyio.fail_after(TIMEOUT):
            assert await transport.receive() == "b"
            assert await transport.receive() is None  # nothing waits: no read at all


@pytest.mark.parametrize("kind", KINDS)
async def test_receive_returns_none_when_the_deadline_passes_and_works_on(
    kind: str, raw_server: Callable[..., RawServer]
) -> None:
    async with opened(kind, raw_server) as transport:
        await receive_a_and_b(transport)
        deadline = anyio.current_time() + 0.05
        transport.read_deadline = deadline
        with anyio.fail_after(TIMEOUT):
            assert await transport.receive() is None
        assert anyio.current_time() >= deadline
        # Nothing was lost or broken by the interrupted read.
        transport.read_deadline = math.inf
        with anyio.fail_after(TIMEOUT):
            await transport.send("ping?")
            assert await transport.receive() == "ping?"


@pytest.mark.parametrize("kind", KINDS)
async def test_moving_the_deadline_earlier_wakes_a_waiting_receive(
    kind: str, raw_server: Callable[..., RawServer]
) -> None:
    async with opened(kind, raw_server) as transport:
        await receive_a_and_b(transport)
        transport.read_deadline = anyio.current_time() + 3600
        results: list[object] = []

        async def reader() -> None:
            results.append(await transport.receive())

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                await anyio.wait_all_tasks_blocked()
                transport.read_deadline = anyio.current_time()  # from another task
        assert results == [None]
        transport.read_deadline = math.inf
        with anyio.fail_after(TIMEOUT):
            await transport.send("still there")
            assert await transport.receive() == "still there"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_message_arriving_before_the_deadline_is_returned(
    kind: str, raw_server: Callable[..., RawServer]
) -> None:
    async with opened(kind, raw_server) as transport:
        await receive_a_and_b(transport)
        transport.read_deadline = anyio.current_time() + 3600
        with anyio.fail_after(TIMEOUT):
            await transport.send("echo me")
            assert await transport.receive() == "echo me"


@pytest.mark.parametrize("kind", ["wsproto", "websockets"])
async def test_a_pong_stuck_behind_a_blocked_write_does_not_hold_the_deadline(
    kind: str, raw_server: Callable[..., RawServer]
) -> None:
    # The peer stops reading, so a big send blocks holding the send lock; then it pings.
    # The reader owes a pong it cannot send: it must still come back at its read deadline
    # (the driver's heartbeat runs on it), not wait for the lock for ever.
    done = threading.Event()

    def script(conn: socket.socket) -> None:
        conn.sendall(frame(PING, b"hb"))
        done.wait(TIMEOUT)

    server = raw_server(script)
    real = (WebSocketConnector if kind == "wsproto" else FastWebSocketConnector)()
    transport = await real.connect(
        server.url(), headers=(), ssl_context=None, max_message_size=1000
    )
    try:
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:

                async def flood() -> None:
                    with contextlib.suppress(TransportError):
                        await transport.send(b"x" * 64_000_000)

                tg.start_soon(flood)
                await anyio.wait_all_tasks_blocked()  # the writer holds the lock, blocked
                transport.read_deadline = anyio.current_time() + 0.2
                assert await transport.receive() is None
                assert await transport.receive() is None  # and again: still owed, not stuck
                tg.cancel_scope.cancel()
    finally:
        done.set()
        await transport.aclose()
        await server.finish()
