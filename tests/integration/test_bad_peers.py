"""Bad input from the network never hurts the user (contract 2.6).

A misbehaving server (``tests/servers/garbage.py``) sends invalid packets, oversized
messages, invalid UTF-8, broken frames, refuses upgrades or goes silent. Each time the client
reports a documented reason, reconnects where the rules say so, and raises nothing into user
code: leaving ``async with`` cleanly is part of every test.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import pytest
import trustme
from anyio.streams.tls import TLSListener

import tether
from servers.garbage import GarbageFactory, GarbageServer
from servers.handles import SocketIOServer

from .support import Recorder, client, until

pytestmark = pytest.mark.anyio

FAST = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.1}


@pytest.mark.parametrize(
    ("mode", "reasons"),
    [
        ("bad-eio", {"parse error"}),
        ("bad-sio-type", {"parse error"}),
        ("bad-sio-payload", {"parse error"}),
        ("bad-sio-ackid", {"parse error"}),
        ("unexpected-binary", {"parse error"}),
        ("oversized", {"transport error"}),
        ("invalid-utf8", {"transport error"}),
        ("bad-frame", {"transport error"}),
        ("close-packet", {"transport close"}),
        ("drop", {"transport close", "transport error"}),
    ],
)
async def test_garbage_after_connect_disconnects_and_reconnects(
    garbage: GarbageServer, transport_kind: str, mode: str, reasons: set[str]
) -> None:
    garbage.push_modes(mode, "ok")
    async with client(garbage.url, transport_kind, **FAST) as rt:
        events = Recorder(rt)
        await events.wait(lambda e: len(e.of("connect")) == 2)
        assert len(events.of("disconnect")) == 1
        assert events.of("disconnect")[0] in reasons
        assert events.of("attempt") == [1]
        assert rt.is_connected()
        assert await rt.call("anything", 1, timeout=5) == 1  # the "ok" server acks with the args


@pytest.mark.parametrize(
    ("mode", "message"),
    [("reject", None), ("silent", "timeout"), ("no-connect-reply", "timeout")],
)
async def test_failed_attempts_are_retried(
    garbage: GarbageServer, transport_kind: str, mode: str, message: str | None
) -> None:
    garbage.push_modes(mode, "ok")
    async with client(garbage.url, transport_kind, timeout=0.5, **FAST) as rt:
        events = Recorder(rt)
        await events.wait(lambda e: len(e.of("connect")) == 1)
        errors: list[tether.ConnectError] = events.of("error")
        assert len(errors) == 1
        assert errors[0].data is None
        if message is not None:
            assert errors[0].message == message
        assert events.of("attempt") == [1]
        assert events.of("disconnect") == []  # never connected, so no disconnect event


@pytest.mark.parametrize(
    ("mode", "message", "data"),
    [
        ("connect-error", "refused", None),
        ("connect-error-string", "Unable to connect", None),
    ],
)
async def test_refusals_in_both_shapes_are_final(
    garbage: GarbageServer, transport_kind: str, mode: str, message: str, data: Any
) -> None:
    garbage.push_modes(mode)
    async with client(garbage.url, transport_kind, **FAST) as rt:
        events = Recorder(rt)
        with pytest.raises(tether.ConnectError) as info:
            await rt.wait_connected(5)
        assert info.value.message == message
        if data is not None:
            assert info.value.data == data
        await anyio.sleep(0.3)
        assert garbage.connection_count == 1
        assert rt.state is tether.State.CLOSED
        assert events.of("attempt") == []


async def test_refusal_by_disconnect_after_connect_is_a_server_disconnect(
    garbage: GarbageServer, transport_kind: str
) -> None:
    garbage.push_modes("disconnect-with-payload")
    async with client(garbage.url, transport_kind, **FAST) as rt:
        events = Recorder(rt)
        await events.wait(lambda e: e.of("disconnect") == ["io server disconnect"])
        assert rt.state is tether.State.CLOSED


async def test_early_events_are_delivered_after_connect(
    garbage: GarbageServer, transport_kind: str
) -> None:
    garbage.push_modes("early-events")
    order: list[Any] = []
    async with client(garbage.url, transport_kind, auto_connect=False) as rt:
        rt.on_connect(lambda: order.append("connect"))
        rt.on("early", order.append)
        rt.open()
        with anyio.fail_after(5):
            while len(order) < 3:
                await anyio.sleep(0.005)
    assert order == ["connect", 1, 2]


async def test_a_server_that_never_pings_is_timed_out(
    garbage_factory: GarbageFactory, transport_kind: str
) -> None:
    server = garbage_factory(ping_interval=300, ping_timeout=200)
    server.push_modes("no-ping", "ok")
    async with client(server.url, transport_kind, **FAST) as rt:
        events = Recorder(rt)
        await events.wait(lambda e: len(e.of("connect")) == 2)
        assert events.of("disconnect") == ["ping timeout"]


# ----------------------------------------------------------------------------------- TLS


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


async def _pipe(source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
        pass
    finally:
        await sink.aclose()


async def _tls_front(
    task_group: anyio.abc.TaskGroup, ca: trustme.CA, backend_port: int
) -> tuple[int, TLSListener]:
    """A TLS terminator on 127.0.0.1 in front of a plain server: a real ``wss://`` peer."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port: int = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with (
            stream,
            await anyio.connect_tcp("127.0.0.1", backend_port) as upstream,
            anyio.create_task_group() as pipes,
        ):
            pipes.start_soon(_pipe, stream, upstream)
            pipes.start_soon(_pipe, upstream, stream)

    tls = TLSListener(listener, server_context, standard_compatible=False)
    task_group.start_soon(tls.serve, handle)
    return port, tls


@pytest.fixture
async def wss_url(ca: trustme.CA, node_server: SocketIOServer) -> AsyncIterator[str]:
    node_server.ensure_ready()
    async with anyio.create_task_group() as task_group:
        port, listener = await _tls_front(task_group, ca, int(node_server.url.rsplit(":", 1)[1]))
        yield f"wss://localhost:{port}"
        task_group.cancel_scope.cancel()
    await listener.aclose()


async def test_wss_refused_without_the_ca_accepted_with_it(
    wss_url: str, ca: trustme.CA, transport_kind: str
) -> None:
    async with client(wss_url, transport_kind, reconnection=False) as rt:
        events = Recorder(rt)
        with pytest.raises(tether.ConnectError):
            await rt.wait_connected(5)
        await events.wait(lambda e: bool(e.of("error")))
        error = events.of("error")[0]
        assert error.data is None
        assert rt.state is tether.State.CLOSED
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with client(wss_url, transport_kind, ssl=context) as rt:
        await rt.wait_connected(5)
        assert await rt.call("ack", "over tls", timeout=5) == "over tls"


async def test_deadlines_hold_while_a_peer_never_answers_the_upgrade(transport_kind: str) -> None:
    # A TCP server that accepts and then says nothing: the attempt is stuck in the WebSocket
    # handshake, which the connecting session bounds by its own timeout (no timer task). A
    # call with a shorter timeout made meanwhile must still fail on time (specs/client.md).
    held: list[anyio.abc.SocketStream] = []

    async def hold(stream: anyio.abc.SocketStream) -> None:
        held.append(stream)
        async with stream:  # closed when the test cancels this handler
            await anyio.sleep_forever()

    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(listener.serve, hold)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        errors: list[str] = []
        async with client(f"http://127.0.0.1:{port}", transport_kind, timeout=1.5) as rt:
            rt.on_error(lambda error: errors.append(error.message))
            started = anyio.current_time()
            with anyio.fail_after(5), pytest.raises(tether.AckTimeout):
                await rt.call("anything", timeout=0.2)
            assert anyio.current_time() - started < 1.5  # before the attempt's own timeout
            assert errors == []
            await until(lambda: bool(errors), timeout=5)
            assert errors == ["timeout"]
            assert held  # the server did get the connection
        tg.cancel_scope.cancel()


async def test_deadlines_hold_while_a_server_stays_silent_after_the_upgrade(
    garbage: GarbageServer, transport_kind: str
) -> None:
    # The upgrade succeeded, the open packet never comes: the reader keeps the deadlines.
    garbage.push_modes("silent", "ok")
    async with client(garbage.url, transport_kind, timeout=1.5, **FAST) as rt:
        events = Recorder(rt)
        started = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(tether.AckTimeout):
            await rt.call("anything", timeout=0.2)
        assert anyio.current_time() - started < 1.5
        await events.wait(lambda e: len(e.of("connect")) == 1)
        assert [error.message for error in events.of("error")] == ["timeout"]
