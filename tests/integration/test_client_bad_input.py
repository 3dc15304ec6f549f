"""Bad input against the real peers that showed each defect (issue 12, the client's side).

Node socket.io 4.8, python-socketio and the garbage server (``tests/servers/garbage.py``), on
asyncio and trio, over both WebSocket transports. What the user sees is in the contract's
terms: bad input from the caller raises at the call site; bad input from the network is a
documented disconnect reason or a ``connect_error``, and a retry; nothing reaches user code
from a background task (leaving ``async with`` cleanly is part of every test).
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import anyio
import pytest

import tether
from servers.garbage import LIFECYCLE_NAMES, RESERVED_NAMES, GarbageFactory, GarbageServer
from servers.handles import ServerFactory, ServerKind, ServerState, SocketIOServer
from tether._driver import _session

from .support import Recorder, client, until

pytestmark = pytest.mark.anyio

FAST = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.1}
SECRET = "s3cret-token-value"
NODE_ONLY = pytest.mark.parametrize("server_kind", ["node"])


def errors_of(events: Recorder) -> list[str]:
    return [error.message for error in events.of("error")]


def auths(state: ServerState) -> list[Any]:
    """The auth of each accepted CONNECT as the user gave it (without the client's identity
    for a hub, which rides beside it: specs/delivery.md)."""
    return [
        {key: value for key, value in entry["auth"].items() if key != "tether"}
        for entry in state["history"]
    ]


# ----------------------------------------------------------------- 1: auth that is not JSON


@NODE_ONLY
async def test_an_auth_callable_giving_non_json_fails_those_attempts_then_connects(
    sio_server: SocketIOServer, transport_kind: str
) -> None:
    bad: list[dict[str, Any]] = [
        {"exp": datetime.datetime.now(), "token": SECRET},
        {"raw": SECRET.encode()},
        {"n": math.nan, "token": SECRET},
    ]
    calls = 0

    def auth() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return bad[calls - 1] if calls <= len(bad) else {"token": "good"}

    async with client(sio_server, transport_kind, auth=auth, **FAST) as rt:
        events = Recorder(rt)
        await rt.wait_connected(10)
        await events.wait(lambda e: len(e.of("error")) == 3)
        assert rt.is_connected()
    errors = events.of("error")
    assert all(isinstance(error, tether.ConnectError) for error in errors)
    for message in errors_of(events):
        assert message.startswith("credentials failed: auth is not JSON")
        assert SECRET not in message and "datetime" not in message and "nan" not in message
    state = await sio_server.state()
    assert auths(state) == [{"token": "good"}]
    assert calls == 4


@NODE_ONLY
async def test_an_auth_callable_turning_bad_on_a_reconnect_keeps_the_client_alive(
    sio_server: SocketIOServer, transport_kind: str
) -> None:
    answers = iter([{"token": "first"}, {"exp": datetime.datetime.now()}, {"token": "second"}])
    async with client(sio_server, transport_kind, auth=lambda: next(answers), **FAST) as rt:
        events = Recorder(rt)
        await rt.wait_connected(10)
        sid = rt.get_socket_id()
        assert sid is not None
        await sio_server.drop(sid)
        await events.wait(lambda e: len(e.of("connect")) == 2)
        assert events.of("disconnect") == ["transport close"]
        assert len(errors_of(events)) == 1
        assert errors_of(events)[0].startswith("credentials failed: auth is not JSON")
        assert events.of("attempt") == [1, 2]
    state = await sio_server.state()
    assert auths(state) == [{"token": "first"}, {"token": "second"}]


@NODE_ONLY
async def test_static_auth_reaches_the_server_as_it_was_checked(
    sio_server: SocketIOServer, transport_kind: str
) -> None:
    scopes: list[Any] = ["read"]
    auth = {"token": SECRET, "scopes": scopes}
    rt = client(sio_server, transport_kind, auth=auth)
    scopes.append(datetime.datetime.now())  # would not be JSON: never reaches the CONNECT
    async with rt:
        await rt.wait_connected(10)
    state = await sio_server.state()
    assert auths(state) == [{"token": SECRET, "scopes": ["read"]}]


def test_static_auth_that_is_not_json_raises_at_the_call_site() -> None:
    with pytest.raises(TypeError, match="auth is not JSON") as info:
        tether.RealtimeClient("http://127.0.0.1:1", auth={"exp": datetime.datetime.now()})
    assert "datetime" not in str(info.value)


# ------------------------------------------------------ 7: an auth callable that hangs


@NODE_ONLY
async def test_a_hanging_auth_callable_is_bounded_by_the_attempts_timeout(
    sio_server: SocketIOServer, transport_kind: str
) -> None:
    calls = 0

    async def auth() -> dict[str, str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await anyio.sleep_forever()
        return {"token": "patient"}

    async with client(sio_server, transport_kind, auth=auth, timeout=1.0, **FAST) as rt:
        events = Recorder(rt)
        await rt.wait_connected(10)
        await events.wait(lambda e: bool(e.of("error")))
    # The hung call is the first attempt's; on a very busy machine a later attempt may time
    # out in its own right, so only the count is pinned: each attempt called auth once.
    errors = errors_of(events)
    assert errors and set(errors) == {"timeout"}
    assert events.of("attempt") == list(range(1, len(errors) + 1))
    assert calls == len(errors) + 1
    state = await sio_server.state()
    assert auths(state) == [{"token": "patient"}]


# ----------------------------------------- 3: server events named like lifecycle events

SERVER_NAMES = (
    "state_change",
    "reconnect_failed",
    "reconnect",
    "reconnect_attempt",
    "buffer_overflow",
)


async def test_server_events_named_like_lifecycle_events_reach_only_their_listeners(
    sio_server: SocketIOServer, transport_kind: str
) -> None:
    received: dict[str, list[Any]] = {name: [] for name in SERVER_NAMES}
    lifecycle: dict[str, list[Any]] = {name: [] for name in SERVER_NAMES}
    async with client(sio_server, transport_kind) as rt:
        for name in SERVER_NAMES:
            rt.on(name, received[name].append)
        rt.on_state_change(lifecycle["state_change"].append)
        rt.on_reconnect_failed(lambda: lifecycle["reconnect_failed"].append(None))
        rt.on_reconnect(lifecycle["reconnect"].append)
        rt.on_reconnect_attempt(lifecycle["reconnect_attempt"].append)
        rt.on_buffer_overflow(lifecycle["buffer_overflow"].append)
        await rt.wait_connected(10)
        sid = rt.get_socket_id()
        for name in SERVER_NAMES:
            await sio_server.emit(name, {"from": "server", "name": name}, sid=sid)
        await until(lambda: all(received.values()))
        await rt.call("ack", timeout=5)  # one more round trip: nothing else is on its way
    for name in SERVER_NAMES:
        assert received[name] == [{"from": "server", "name": name}]
    changes = lifecycle.pop("state_change")
    assert [(c.previous, c.current) for c in changes] == [
        (tether.State.IDLE, tether.State.CONNECTING),
        (tether.State.CONNECTING, tether.State.CONNECTED),
        (tether.State.CONNECTED, tether.State.CLOSED),
    ]
    assert all(isinstance(change, tether.StateChanged) for change in changes)
    assert lifecycle == {name: [] for name in SERVER_NAMES if name != "state_change"}


async def test_reserved_names_from_a_server_never_fire_lifecycle_listeners(
    garbage: GarbageServer, transport_kind: str
) -> None:
    # A malicious server sends events named like tether's lifecycle events, then one of
    # Socket.IO's reserved names, which no server may emit (Node refuses to): a parse error
    # for tether as for socket.io-client, never a call of a lifecycle listener.
    garbage.push_modes("lifecycle-names", "ok")
    seen: list[tuple[str, tuple[Any, ...]]] = []
    by_name: dict[str, list[Any]] = {name: [] for name in LIFECYCLE_NAMES + RESERVED_NAMES}
    async with client(garbage.url, transport_kind, **FAST) as rt:
        events = Recorder(rt)
        for name in LIFECYCLE_NAMES + RESERVED_NAMES:
            rt.on(name, lambda *args, name=name: by_name[name].append(args))
        rt.on_any(lambda name, *args: seen.append((name, args)))
        await events.wait(lambda e: len(e.of("connect")) == 2)
        assert await rt.call("anything", 1, timeout=5) == 1
    assert events.of("disconnect") == ["parse error", "io client disconnect"]
    assert errors_of(events) == []
    assert seen == [(name, ("from-server",)) for name in LIFECYCLE_NAMES]
    for name in LIFECYCLE_NAMES:
        assert by_name[name] == [("from-server",)]
    # rt.on("connect"/"disconnect"/"connect_error") are the lifecycle listeners: only the
    # client's own connects and disconnects reached them.
    assert by_name["connect"] == [(), ()]
    assert by_name["disconnect"] == [("parse error",), ("io client disconnect",)]
    assert by_name["connect_error"] == []


# --------------------------------------------------- 2: slow listeners and the backlog


@NODE_ONLY
async def test_a_slow_listener_misses_nothing_and_the_heartbeat_goes_on(
    server_factory: ServerFactory, server_kind: ServerKind, transport_kind: str
) -> None:
    # The listener holds the first event of a 40,000-event blast while the client reads the
    # rest; meanwhile Node's pings must go on being answered (before, the reader stopped at
    # 10,000 queued events, the pings went unread and Node dropped the client with "ping
    # timeout"). Node pings every 250 ms; its 5 s pingTimeout leaves room for a busy machine
    # to read the blast, which Node's first ping waits behind.
    server = server_factory(server_kind, ping_interval=250, ping_timeout=5000)
    count = 40_000
    release = anyio.Event()
    delivered: list[int] = []

    async def slow(index: int, filler: str) -> None:
        if not delivered:
            await release.wait()
        delivered.append(index)
        await anyio.lowlevel.checkpoint()

    async with client(server, transport_kind) as rt:
        events = Recorder(rt)
        rt.on("item", slow)
        await rt.wait_connected(10)
        sid = rt.get_socket_id()
        assert sid is not None
        rt.emit("emit-many", count, 1)
        # Every event read, all but the first waiting for the listener (no 10,000 limit).
        await until(lambda: rt._driver.dispatcher.backlog >= count - 1, timeout=60)
        # The listener is still stuck: four more pings come and get their pongs.
        pongs = (await server.state())["pongs"][sid]
        await server.wait_for(lambda s: s["pongs"][sid] >= pongs + 4, timeout=30)
        assert rt.is_connected() and rt.get_socket_id() == sid and not delivered
        release.set()
        await until(lambda: len(delivered) == count, timeout=60)
        assert rt.get_socket_id() == sid
    assert delivered == list(range(count))
    assert events.of("disconnect") == ["io client disconnect"]
    state = await server.wait_for(lambda s: not s["connected"])
    assert [d["reason"] for d in state["disconnects"]] == ["client namespace disconnect"]


@NODE_ONLY
async def test_past_the_backlog_bound_recovery_replays_and_nothing_is_lost(
    server_factory: ServerFactory,
    server_kind: ServerKind,
    transport_kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_session, "DISPATCH_BACKLOG_LIMIT", 2_000)
    server = server_factory(server_kind, csr=True)
    count = 10_000
    release = anyio.Event()
    delivered: list[int] = []

    async def slow(index: int, filler: str) -> None:
        await release.wait()
        delivered.append(index)

    async with client(server, transport_kind, **FAST) as rt:
        events = Recorder(rt)
        rt.on("item", slow)
        await rt.wait_connected(10)
        rt.emit("emit-many", count, 1)
        await until(lambda: rt.state is tether.State.RECONNECTING, timeout=30)
        release.set()
        await until(lambda: len(delivered) == count, timeout=60)
        await rt.wait_connected(10)
        assert rt.recovered
    assert delivered == list(range(count))  # once each, in order
    reasons = events.of("disconnect")
    assert reasons[0] == tether.DisconnectReason.LISTENERS_BEHIND
    assert set(reasons[:-1]) == {tether.DisconnectReason.LISTENERS_BEHIND}
    state = await server.state()
    assert state["history"][-1]["recovered"]


# ------------------------------------------------------ 11: errors that say what happened


@NODE_ONLY
@pytest.mark.parametrize("transports", [("websocket",), ("polling",)], ids="+".join)
async def test_a_msgpack_server_is_named_as_a_likely_parser_mismatch(
    server_factory: ServerFactory,
    server_kind: ServerKind,
    transport_kind: str,
    transports: tuple[str, ...],
) -> None:
    server = server_factory(server_kind, parser="msgpack")
    async with client(
        server, transport_kind, transports=transports, reconnection_attempts=1, **FAST
    ) as rt:
        events = Recorder(rt)
        with pytest.raises(tether.ConnectError) as info:
            await rt.wait_connected(10)
        await events.wait(lambda e: len(e.of("error")) == 2)
    for message in errors_of(events):
        assert message.startswith(
            "transport close: the server closed the connection without answering the "
            "namespace CONNECT"
        )
        assert "socket.io-msgpack-parser" in message
    error = info.value
    assert error.message.startswith("reconnect failed; the last attempt failed: transport close")
    assert isinstance(error.__cause__, tether.ConnectError)
    assert error.__cause__.message == errors_of(events)[-1]


async def test_a_polling_only_server_is_reached_by_polling(
    server_factory: ServerFactory, server_kind: ServerKind, transport_kind: str
) -> None:
    server = server_factory(server_kind, transports=("polling",))
    default = ("websocket", "polling")  # the client's default: WebSocket, else polling
    async with client(server, transport_kind, transports=default) as rt:
        events = Recorder(rt)
        await rt.wait_connected(10)
        assert rt.transport_name == "polling"
        assert await rt.call("ack", "by polling", timeout=5) == "by polling"
    assert errors_of(events) == []


@NODE_ONLY
async def test_websocket_only_against_a_polling_only_server_says_what_the_server_said(
    server_factory: ServerFactory, server_kind: ServerKind, transport_kind: str
) -> None:
    server = server_factory(server_kind, transports=("polling",))
    async with client(
        server,
        transport_kind,
        transports=("websocket",),
        query={"token": SECRET},
        reconnection=False,
    ) as rt:
        with pytest.raises(tether.ConnectError) as info:
            await rt.wait_connected(10)
    assert info.value.message.endswith(
        'refused the WebSocket upgrade with HTTP 400: "Transport unknown"'
    )
    assert SECRET not in info.value.message


async def test_a_refusal_that_echoes_the_request_has_our_secrets_cut_out(
    garbage: GarbageServer, transport_kind: str
) -> None:
    garbage.push_modes("reject-echo")
    async with client(
        garbage.url,
        transport_kind,
        transports=("websocket",),
        query={"token": SECRET},
        headers={"Authorization": f"Bearer {SECRET}-header"},
        reconnection=False,
    ) as rt:
        with pytest.raises(tether.ConnectError) as info:
            await rt.wait_connected(10)
    message = info.value.message
    assert 'refused the WebSocket upgrade with HTTP 400: "Bad request: GET /socket.io/' in message
    assert "[redacted]" in message
    assert SECRET not in message and "Bearer" not in message


async def test_a_path_without_its_trailing_slash_reaches_the_server(
    server_factory: ServerFactory, server_kind: ServerKind, transport_kind: str
) -> None:
    server = server_factory(server_kind, path="/custom/rt")
    async with client(server, transport_kind, path="/custom/rt", reconnection=False) as rt:
        await rt.wait_connected(10)
        assert await rt.call("ack", "custom", timeout=5) == "custom"


# ------------------------------------------------------------------ the garbage server


async def test_a_close_in_answer_to_the_connect_is_named_as_a_likely_parser_mismatch(
    garbage: GarbageServer, transport_kind: str
) -> None:
    garbage.push_modes("close-on-connect", "ok")
    async with client(garbage.url, transport_kind, **FAST) as rt:
        events = Recorder(rt)
        await rt.wait_connected(10)
        await events.wait(lambda e: bool(e.of("error")))
    [message] = errors_of(events)
    assert "without answering the namespace CONNECT" in message
    assert "socket.io-msgpack-parser" in message


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("binary-connect-reply", "parse error"),
        ("bad-open", "parse error"),
        ("open-no-sid", "parse error"),
        ("huge-handshake", "transport error"),
    ],
)
async def test_a_broken_handshake_fails_the_attempt_and_the_next_one_connects(
    garbage: GarbageServer, transport_kind: str, mode: str, reason: str
) -> None:
    garbage.push_modes(mode, "ok")
    async with client(garbage.url, transport_kind, **FAST) as rt:
        events = Recorder(rt)
        await rt.wait_connected(10)
        await events.wait(lambda e: bool(e.of("error")))
        assert await rt.call("anything", 1, timeout=5) == 1
    assert errors_of(events) == [reason]
    assert events.of("attempt") == [1]


async def test_a_server_that_stops_reading_neither_stops_the_reader_nor_hangs_the_close(
    garbage_factory: GarbageFactory, transport_kind: str
) -> None:
    server = garbage_factory(ping_interval=200, ping_timeout=5000)
    server.push_modes("stop-reading")
    ticks: list[int] = []
    async with client(server.url, transport_kind) as rt:
        events = Recorder(rt)
        rt.on("tick", ticks.append)
        await rt.wait_connected(10)
        conn = await server.wait_connections(1)
        await server.wait_for(lambda s: not conn.reading)
        filler = "x" * 100_000
        for index in range(100):  # 10 MB: far more than the socket buffers hold
            rt.emit("fill", index, filler)
        await until(
            lambda: (
                rt._driver.session is not None
                and rt._driver.session.writes is not None
                and rt._driver.session.writes.writing
            )
        )
        # The writer is stuck on the full socket; the reader still reads (a reader that
        # wrote its own pongs would be stuck too, and time the connection out).
        for tick in range(5):
            conn.send(f'42["tick",{tick}]')
            await until(lambda: ticks == list(range(tick + 1)))  # noqa: B023 (awaited here)
        assert rt.is_connected()
        with anyio.fail_after(10):  # the goodbye's 2 s and the close frame's 1 s, at most
            await rt.aclose()
    assert events.of("disconnect") == ["io client disconnect"]
