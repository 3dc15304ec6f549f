"""The client's choice of transport against real peers, and what it keeps across a fallback
and an upgrade: Node socket.io 4.8 and python-socketio, on asyncio and trio.

- A server of every mode (polling only, WebSocket only, both) with the client's default
  ``transports``: where the session ends up (``rt.transport_name``), what the
  ``tether.transport`` logger says at INFO, messages both ways, and a reconnect that chooses
  again.
- The offline buffer, flushed in order after a reconnect that fell back to polling (the
  server came back serving polling only).
- A burst of emits and calls that spans the polling -> WebSocket switch: nothing lost,
  nothing reordered (the servers record what they receive, in arrival order).
- A probe whose WebSocket hangs (a network that black-holes WebSocket): given up after its
  timeout, the session connected on polling.

Connection state recovery across a drop on polling, and a server restart while on polling,
are test_client.py's scenarios on the ``polling`` way.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

import tether
import tether.transport._engine as transport_engine
from servers.handles import ServerFactory, ServerKind, SocketIOServer
from tether.transport import EngineConnector, Transport, WebSocketConnector

from .support import SERVER_MODES, TRANSPORTS, Recorder, until

pytestmark = pytest.mark.anyio

FAST: dict[str, Any] = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.2}


def carrier(rt: tether.RealtimeClient) -> str | None:
    """``rt.transport_name`` as it is now (a call: mypy keeps no narrowing across it)."""
    return rt.transport_name


def opened_on(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The INFO lines of ``tether.transport`` that say which transport a session opened on."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "tether.transport"
        and record.levelno == logging.INFO
        and "connected to" in record.getMessage()
    ]


@pytest.mark.parametrize("mode", list(SERVER_MODES))
async def test_the_default_transports_against_every_server_mode(
    mode_servers: dict[tuple[ServerKind, str], SocketIOServer],
    server_kind: ServerKind,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tether.transport")
    server = mode_servers[server_kind, mode]
    # A polling-only server refuses the WebSocket (400): the client falls back to polling.
    # One that offers WebSocket gets it directly: nothing to upgrade.
    expected = "polling" if mode == "polling-only" else "websocket"
    pushed: list[Any] = []
    async with tether.RealtimeClient(server.url, **FAST) as rt:
        rt.on("pushed", pushed.append)
        events = Recorder(rt)
        await rt.wait_connected(10)
        assert rt.transport_name == expected
        assert await rt.call("ack", "hi", b"\x00\xff") == ("hi", b"\x00\xff")
        sid = rt.get_socket_id()
        assert sid is not None
        await server.emit("pushed", b"\x01", sid=sid)
        await until(lambda: pushed == [b"\x01"])
        # The reconnect chooses again, the same way.
        await server.drop(sid)
        await events.wait(lambda e: len(e.of("connect")) == 2)
        assert rt.transport_name == expected
        assert await rt.call("ack", 2) == 2
    assert carrier(rt) is None  # no session, no transport
    where = f"127.0.0.1:{server.port}/socket.io/"
    lines = opened_on(caplog)
    assert len(lines) == 2
    assert all(where in line and line.endswith(f" by {expected}") for line in lines)
    fallbacks = [r.getMessage() for r in caplog.records if "trying polling" in r.getMessage()]
    assert len(fallbacks) == (2 if mode == "polling-only" else 0)
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "tether.transport")


async def test_the_offline_buffer_is_flushed_in_order_after_a_reconnect_that_fell_back(
    server_factory: ServerFactory, server_kind: ServerKind
) -> None:
    server = server_factory(server_kind)
    echoes: list[tuple[Any, ...]] = []
    answers: dict[int, Any] = {}
    async with tether.RealtimeClient(server.url, **FAST) as rt:
        rt.on("echo", lambda *args: echoes.append(args))
        events = Recorder(rt)
        await rt.wait_connected(10)
        assert rt.transport_name == "websocket"
        await server.akill()
        await events.wait(lambda e: bool(e.of("disconnect")))

        async def call(i: int, *, task_status: anyio.abc.TaskStatus[None]) -> None:
            task_status.started()  # the parent resumes once the call is queued
            answers[i] = await rt.call("ack", i, timeout=30)

        async with anyio.create_task_group() as tg:
            # Offline: every fifth message is a call, the rest emits, all into the buffer.
            for i in range(30):
                if i % 5 == 4:
                    await tg.start(call, i)
                else:
                    rt.emit("echo", i)
            assert rt.buffered == 30
            # The server comes back on the same port serving polling only: the WebSocket
            # of the next attempt is refused and the client falls back to polling.
            server.options = dataclasses.replace(server.options, transports=("polling",))
            await server.astart()
            await events.wait(lambda e: len(e.of("connect")) == 2, timeout=20)
            assert rt.transport_name == "polling"
        await until(lambda: len(echoes) == 24)
        assert rt.buffered == 0
    assert echoes == [(i,) for i in range(30) if i % 5 != 4]
    assert answers == {i: i for i in range(4, 30, 5)}
    received = (await server.state())["received"]
    assert [(r["event"], r["args"]) for r in received] == [
        ("ack" if i % 5 == 4 else "echo", [i]) for i in range(30)
    ]


@pytest.mark.parametrize("library", TRANSPORTS)
async def test_a_burst_of_emits_and_calls_across_the_upgrade(
    sio_server: SocketIOServer, library: str
) -> None:
    """The burst starts before the client connects and goes on until the session has been on
    WebSocket for a while: it spans the polling handshake, the probe and the switch (which
    happen while the namespace CONNECT is under way, so the messages wait in the offline
    buffer meanwhile) and the first messages on the upgraded WebSocket."""
    echoes: list[int] = []
    answers: dict[int, Any] = {}
    seen: list[tuple[tether.State, str | None]] = []  # the state and transport at each send
    async with tether.RealtimeClient(
        sio_server.url, transport=library, transports=("polling", "websocket"), auto_connect=False
    ) as rt:
        rt.on("echo", echoes.append)
        events = Recorder(rt)

        async def call(i: int, *, task_status: anyio.abc.TaskStatus[None]) -> None:
            task_status.started()
            answers[i] = await rt.call("ack", i, timeout=20)

        sent = after = 0
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                while after < 40:
                    if sent == 5:
                        rt.open()
                    seen.append((rt.state, rt.transport_name))
                    if sent % 4 == 3:
                        await tg.start(call, sent)
                    else:
                        rt.emit("echo", sent)
                        await anyio.lowlevel.checkpoint()
                    if rt.is_connected() and rt.transport_name == "websocket":
                        after += 1
                    sent += 1
        await until(lambda: len(echoes) == sent - sent // 4)
        sid = rt.get_socket_id()
        assert events.of("disconnect") == [] and len(events.of("connect")) == 1
    # Sends were made before the client started, while it was on polling (the handshake,
    # the probe and the switch) and after the switch.
    states = {state for state, _ in seen}
    assert {tether.State.IDLE, tether.State.CONNECTING, tether.State.CONNECTED} <= states
    assert (tether.State.CONNECTING, "polling") in seen
    assert (tether.State.CONNECTED, "websocket") in seen
    assert echoes == [i for i in range(sent) if i % 4 != 3]
    assert answers == {i: i for i in range(3, sent, 4)}
    received = (await sio_server.state())["received"]
    assert [(r["event"], r["args"]) for r in received if r["sid"] == sid] == [
        ("ack" if i % 4 == 3 else "echo", [i]) for i in range(sent)
    ]


class HangingWebSocket:
    """A WebSocket connector on a network that lets polling through and black-holes
    WebSocket: every WebSocket goes to a port whose kernel accepts the connection and where
    nobody ever answers the upgrade."""

    def __init__(self, tarpit: socket.socket) -> None:
        self._port = tarpit.getsockname()[1]
        self._connector = WebSocketConnector()
        self.attempts = 0

    async def connect(self, url: str, **options: Any) -> Transport:
        self.attempts += 1
        scheme, _, rest = url.partition("://")
        path = rest[rest.index("/") :]
        return await self._connector.connect(f"{scheme}://127.0.0.1:{self._port}{path}", **options)


@pytest.fixture
def tarpit() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listening:  # never accepts
        yield listening


async def test_a_probe_that_hangs_leaves_the_session_on_polling(
    sio_server: SocketIOServer,
    tarpit: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Polling waits while the probe runs: a WebSocket that is neither refused nor answered
    is given up after PROBE_TIMEOUT and the session goes on by polling, connected."""
    caplog.set_level(logging.INFO, logger="tether.transport")
    monkeypatch.setattr(transport_engine, "PROBE_TIMEOUT", 0.3)
    websocket = HangingWebSocket(tarpit)
    connector = EngineConnector(transports=("polling", "websocket"), websocket=websocket)
    async with tether.RealtimeClient(sio_server.url, transport=connector) as rt:
        events = Recorder(rt)
        await rt.wait_connected(10)
        assert await rt.call("ack", "still polling") == "still polling"
        assert rt.transport_name == "polling"
        assert websocket.attempts == 1  # tried once, then never again in this session
        assert events.of("disconnect") == []
    failed = [r.getMessage() for r in caplog.records if "staying on polling" in r.getMessage()]
    assert len(failed) == 1 and "no answer to the probe within 0.3 s" in failed[0]
