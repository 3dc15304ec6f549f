"""The transports against Node socket.io 4.8 and python-socketio, each serving polling only,
WebSocket only, or both; on asyncio and trio.

Driven at the connector level (the client's wiring of ``transports`` comes later): connect,
read the OPEN packet, send ``40``, read the CONNECT reply, echo events (text and binary),
answer pings, upgrade, fall back, close. specs/transports.md is what is checked.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from servers.handles import SERVER_KINDS, ServerKind, SocketIOServer
from tether._url import build_websocket_url
from tether.transport import (
    EngineConnector,
    EngineTransport,
    PollingConnector,
    PollingTransport,
    Transport,
    TransportError,
)

from .support import SERVER_MODES

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0
MODES = SERVER_MODES
CHOICES: list[tuple[str, ...]] = [
    ("websocket", "polling"),
    ("polling", "websocket"),
    ("polling",),
    ("websocket",),
]


@pytest.fixture
def servers(
    mode_servers: dict[tuple[ServerKind, str], SocketIOServer],
) -> dict[tuple[ServerKind, str], SocketIOServer]:
    """One server per kind and mode (conftest's ``mode_servers``), short pings."""
    return mode_servers


@pytest.fixture(params=SERVER_KINDS)
def kind(request: pytest.FixtureRequest) -> ServerKind:
    value: ServerKind = request.param
    return value


def url_of(server: SocketIOServer) -> str:
    return build_websocket_url(server.url)


def expected_name(mode: str, choice: tuple[str, ...]) -> str | None:
    """The transport the session should end up on, or None if it cannot connect."""
    offered = MODES[mode]
    usable = [name for name in choice if name in offered]
    if not usable:
        return None
    if "websocket" in usable:
        return "websocket"  # directly, or after the upgrade
    return "polling"


async def receive(transport: Transport) -> str | bytes:
    """The next packet that is not a ping (answered) or a noop."""
    with anyio.fail_after(TIMEOUT):
        while True:
            message = await transport.receive()
            assert message is not None
            if message == "2":
                await transport.send("3")
                continue
            if message == "6":
                continue
            return message


async def open_namespace(transport: Transport) -> str:
    """OPEN, then ``40`` and the CONNECT reply (the servers send ``hello`` before it)."""
    with anyio.fail_after(TIMEOUT):
        first = await transport.receive()
    assert isinstance(first, str)
    assert first.startswith("0{")
    assert "sid" in json.loads(first[1:])
    await transport.send("40")
    while True:
        message = await receive(transport)
        assert isinstance(message, str)
        if message.startswith("40"):
            sid: str = json.loads(message[2:])["sid"]
            return sid
        assert message.startswith('42["hello"')


async def echo(transport: Transport, *args: Any) -> list[Any]:
    await transport.send("42" + json.dumps(["echo", *args], separators=(",", ":")))
    message = await receive(transport)
    assert isinstance(message, str)
    assert message.startswith("42")
    data: list[Any] = json.loads(message[2:])
    return data


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("choice", CHOICES, ids="+".join)
async def test_every_choice_against_every_mode(
    servers: dict[tuple[ServerKind, str], SocketIOServer],
    kind: ServerKind,
    mode: str,
    choice: tuple[str, ...],
) -> None:
    server = servers[kind, mode]
    connector = EngineConnector(transports=choice, trust_env=False)
    want = expected_name(mode, choice)
    if want is None:
        with pytest.raises(TransportError) as refused:
            await connector.connect(url_of(server))
        assert refused.value.status in (400, 403)
        return
    transport = await connector.connect(url_of(server))
    try:
        sid = await open_namespace(transport)
        await server.wait_for(lambda s: sid in s["connected"])
        assert await echo(transport, "hi", 1) == ["echo", "hi", 1]
        assert transport.name == want
        # Binary both ways: a header and its attachment (base64 on polling, a frame on WS).
        await transport.send_many(['451-["echo",{"_placeholder":true,"num":0}]', b"\x00\x01\xff"])
        assert await receive(transport) == '451-["echo",{"_placeholder":true,"num":0}]'
        assert await receive(transport) == b"\x00\x01\xff"
        # The heartbeat: two pings in a row are answered (receive() does it).
        pings = 0
        with anyio.fail_after(TIMEOUT):
            while pings < 2:
                message = await transport.receive()
                if message == "2":
                    pings += 1
                    await transport.send("3")
        assert await echo(transport, "still") == ["echo", "still"]
    finally:
        await transport.aclose()
    state = await server.wait_for(lambda s: sid not in s["connected"])
    assert any(d["sid"] == sid for d in state["disconnects"])


async def echo_while_upgrading(transport: Transport, count: int) -> list[Any]:
    """Echo ``count`` events from one task while another receives (and so upgrades)."""
    received: list[Any] = []

    async def reader() -> None:
        while len(received) < count:
            message = await receive(transport)
            assert isinstance(message, str)
            if message.startswith('42["echo"'):
                received.append(json.loads(message[2:])[1])

    async def writer() -> None:
        for i in range(count):
            await transport.send("42" + json.dumps(["echo", i]))
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)
    return received


async def until_error(transport: Transport) -> TransportError:
    """Receive (answering pings) until the transport fails; its error."""
    with anyio.fail_after(TIMEOUT):
        while True:
            try:
                message = await transport.receive()
            except TransportError as exc:
                return exc
            if message == "2":
                await transport.send("3")


@pytest.mark.parametrize("rounds", [range(6)], ids=["6-rounds"])
async def test_nothing_lost_or_reordered_across_the_upgrade(
    servers: dict[tuple[ServerKind, str], SocketIOServer], kind: ServerKind, rounds: range
) -> None:
    """Sends made while the probe runs (or before, or after) arrive once, in order, and so
    do the server's messages queued meanwhile; the session ends on WebSocket."""
    server = servers[kind, "both"]
    connector = EngineConnector(transports=("polling", "websocket"), trust_env=False)
    count = 30
    for _ in rounds:
        transport = await connector.connect(url_of(server))
        assert isinstance(transport, EngineTransport)
        assert transport.name == "polling"
        try:
            with anyio.fail_after(TIMEOUT):
                first = await transport.receive()
            assert isinstance(first, str)
            assert first.startswith("0{")
            await transport.send("40")
            received = await echo_while_upgrading(transport, count)
            assert received == list(range(count))
            assert transport.name == "websocket"
        finally:
            await transport.aclose()


async def test_a_burst_queued_before_the_upgrade_arrives_whole_and_in_order(
    servers: dict[tuple[ServerKind, str], SocketIOServer], kind: ServerKind
) -> None:
    server = servers[kind, "both"]
    transport = await EngineConnector(transports=("polling", "websocket"), trust_env=False).connect(
        url_of(server)
    )
    try:
        await open_namespace(transport)
        await transport.send('42["emit-many",300,20]')
        items: list[int] = []
        while len(items) < 300:
            message = await receive(transport)
            assert isinstance(message, str)
            items.append(json.loads(message[2:])[1])
        assert items == list(range(300))
        assert transport.name == "websocket"
    finally:
        await transport.aclose()


async def test_the_transport_change_is_logged_at_info(
    servers: dict[tuple[ServerKind, str], SocketIOServer],
    kind: ServerKind,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tether.transport")
    server = servers[kind, "both"]
    transport = await EngineConnector(transports=("polling", "websocket"), trust_env=False).connect(
        build_websocket_url(server.url, query={"token": "s3cr3t"})
    )
    try:
        await open_namespace(transport)
    finally:
        await transport.aclose()
    changes = [r for r in caplog.records if "polling -> websocket" in r.getMessage()]
    assert len(changes) == 1
    assert changes[0].levelno == logging.INFO
    assert "s3cr3t" not in caplog.text


async def test_fallback_is_logged_and_the_error_names_both_when_neither_works(
    servers: dict[tuple[ServerKind, str], SocketIOServer],
    kind: ServerKind,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tether.transport")
    server = servers[kind, "polling-only"]
    transport = await EngineConnector(trust_env=False).connect(url_of(server))
    await transport.aclose()
    assert transport.name == "polling"
    assert any("trying polling" in r.getMessage() for r in caplog.records)
    # Nothing listens here: both fail, and the error says so for each.
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(TransportError) as failed:
            await EngineConnector(trust_env=False).connect("ws://127.0.0.1:9/socket.io/?EIO=4")
    assert "websocket: cannot connect" in str(failed.value)
    assert "polling: cannot connect" in str(failed.value)


async def test_polling_enforces_max_message_size_while_the_answer_arrives(
    servers: dict[tuple[ServerKind, str], SocketIOServer], kind: ServerKind
) -> None:
    server = servers[kind, "polling-only"]
    transport = await PollingConnector(trust_env=False).connect(
        url_of(server), max_message_size=2000
    )
    try:
        await open_namespace(transport)
        await transport.send('42["emit-many",1,50000]')
        failed = await until_error(transport)
        assert "exceeds max_message_size" in str(failed)
        assert failed.reason == "transport error"
    finally:
        await transport.aclose()


async def test_polling_session_closed_by_the_server(
    servers: dict[tuple[ServerKind, str], SocketIOServer], kind: ServerKind
) -> None:
    """A server-side disconnect reaches the client as ``41``; a drop of the engine socket
    as CLOSE or a failed poll; either way the transport ends and nothing hangs."""
    server = servers[kind, "polling-only"]
    transport = await PollingConnector(trust_env=False).connect(url_of(server))
    try:
        sid = await open_namespace(transport)
        await server.wait_for(lambda s: sid in s["connected"])
        await server.disconnect(sid)
        assert await receive(transport) == "41"
        await server.wait_for(lambda s: sid not in s["connected"])
    finally:
        await transport.aclose()
    transport = await PollingConnector(trust_env=False).connect(url_of(server))
    try:
        sid = await open_namespace(transport)
        await server.wait_for(lambda s: sid in s["connected"])
        await server.drop(sid)
        await until_error(transport)
        assert transport.closed
    finally:
        await transport.aclose()


async def test_read_deadline_leaves_the_poll_out_and_loses_nothing(
    servers: dict[tuple[ServerKind, str], SocketIOServer], kind: ServerKind
) -> None:
    server = servers[kind, "polling-only"]
    transport = await PollingConnector(trust_env=False).connect(url_of(server))
    assert isinstance(transport, PollingTransport)
    try:
        sid = await open_namespace(transport)
        # A poll goes out and waits; the deadline ends the wait without ending the poll.
        transport.read_deadline = anyio.current_time() + 0.05
        with anyio.fail_after(TIMEOUT):
            while (message := await transport.receive()) is not None:
                if message == "2":
                    await transport.send("3")
        transport.read_deadline = float("inf")
        await server.emit("late", "news", sid=sid)
        assert await receive(transport) == '42["late","news"]'
    finally:
        await transport.aclose()
