"""tether's client against real Socket.IO servers: Node's socket.io 4.8 and python-socketio.

Every test runs on asyncio and trio (the ``anyio_backend`` fixture), against both server kinds
(``server_kind``) where the scenario exists on both, and every way of connecting (``way``:
WebSocket on wsproto and on websockets, polling only, polling then the upgrade; see
``support.WAYS``). Each scenario here is about the client's lifecycle, messages and
guarantees, which must hold whatever carries them, so none is narrowed to fewer ways; a
test waits until its session is on the transport its way ends on (``connected``), so on
``upgrade`` it runs over the upgraded WebSocket (what happens *during* the upgrade is
test_client_transports.py's). Tests wait on conditions with timeouts; the only fixed waits
are the ones that prove something does *not* happen (no reconnect after a close), and they
are short.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import anyio
import anyio.abc
import pytest

import tether
from servers.handles import ServerFactory, ServerKind, SocketIOServer

from .support import Recorder, client, connected, drop_reason, dropped, kill_reason, until

pytestmark = pytest.mark.anyio

FAST = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.2}


# -------------------------------------------------------------------------------- lifecycle


async def test_connect_sid_matches_the_server(sio_server: SocketIOServer, way: str) -> None:
    async with client(sio_server, way) as rt:
        await connected(rt, way)
        assert rt.is_connected()
        assert rt.state is tether.State.CONNECTED
        sid = rt.get_socket_id()
        assert sid is not None and sid == rt.get_socket_id()
        state = await sio_server.wait_for(lambda s: sid in s["connected"])
        assert state["connected"] == [sid]
    assert rt.get_socket_id() is None
    assert not rt.is_connected()


async def test_close_stays_closed_then_open_reconnects(
    sio_server: SocketIOServer, way: str
) -> None:
    async with client(sio_server, way, **FAST) as rt:
        events = Recorder(rt)
        await connected(rt, way)
        rt.close()
        await events.wait(lambda e: e.of("disconnect") == ["io client disconnect"])
        await sio_server.wait_for(lambda s: not s["connected"])
        # Three times the maximum backoff: nothing may try to connect.
        await anyio.sleep(3 * FAST["reconnection_delay_max"])
        state = await sio_server.state()
        assert state["connections"] == 1
        assert rt.state is tether.State.CLOSED
        assert events.of("attempt") == []
        rt.open()
        await connected(rt, way)
        await sio_server.wait_for(lambda s: s["connections"] == 2)


async def test_transport_drop_reconnects_with_new_sid(sio_server: SocketIOServer, way: str) -> None:
    async with client(sio_server, way, **FAST) as rt:
        events = Recorder(rt)
        await connected(rt, way)
        first = rt.get_socket_id()
        assert first is not None
        await sio_server.drop(first)
        await events.wait(lambda e: len(e.of("connect")) == 2)
        assert events.of("disconnect") == [drop_reason(sio_server, way)]
        assert events.of("attempt") == [1]
        assert events.of("reconnect") == [1]
        second = rt.get_socket_id()
        assert second is not None and second != first
        await sio_server.wait_for(lambda s: s["connected"] == [second])


async def test_server_disconnect_does_not_reconnect(sio_server: SocketIOServer, way: str) -> None:
    async with client(sio_server, way, **FAST) as rt:
        events = Recorder(rt)
        await connected(rt, way)
        sid = rt.get_socket_id()
        assert sid is not None
        await sio_server.disconnect(sid)
        await events.wait(lambda e: e.of("disconnect") == ["io server disconnect"])
        assert rt.state is tether.State.CLOSED
        await anyio.sleep(3 * FAST["reconnection_delay_max"])
        assert (await sio_server.state())["connections"] == 1
        assert events.of("attempt") == []


async def test_auth_refusal_shows_server_data_and_does_not_retry(
    server_factory: ServerFactory, server_kind: ServerKind, way: str
) -> None:
    server = server_factory(server_kind, token="right")
    async with client(server, way, auth={"token": "wrong"}, **FAST) as rt:
        events = Recorder(rt)
        with pytest.raises(tether.ConnectError) as info:
            await connected(rt, way)
        assert info.value.message == "unauthorized"
        assert info.value.data == {"reason": "bad token", "retry": False}
        # Listeners run in the dispatcher, after wait_connected has seen the state.
        await events.wait(lambda e: bool(e.of("error")))
        errors = events.of("error")
        assert len(errors) == 1 and errors[0].data == {"reason": "bad token", "retry": False}
        assert rt.state is tether.State.CLOSED
        await anyio.sleep(3 * FAST["reconnection_delay_max"])
        assert len((await server.state())["refused"]) == 1


async def test_fresh_auth_on_every_attempt(sio_server: SocketIOServer, way: str) -> None:
    calls = 0

    async def fresh_token() -> dict[str, str]:
        nonlocal calls
        calls += 1
        await anyio.sleep(0)
        return {"token": f"token-{calls}"}

    async with client(sio_server, way, auth=fresh_token, **FAST) as rt:
        events = Recorder(rt)
        await connected(rt, way)
        sid = rt.get_socket_id()
        assert sid is not None
        await sio_server.drop(sid)
        await events.wait(lambda e: len(e.of("connect")) == 2)
    auths = [
        {key: value for key, value in entry["auth"].items() if key != "tether"}
        for entry in (await sio_server.state())["history"]
    ]
    assert auths == [{"token": "token-1"}, {"token": "token-2"}]


async def test_server_killed_and_restarted_on_the_same_port(
    server_factory: ServerFactory, server_kind: ServerKind, way: str
) -> None:
    server = server_factory(server_kind)
    async with client(server, way, **FAST) as rt:
        events = Recorder(rt)
        await connected(rt, way)
        await server.akill()
        await events.wait(lambda e: e.of("disconnect") == [kill_reason(way)])
        await events.wait(lambda e: len(e.of("error")) >= 2)  # retrying against nothing
        await server.arestart()
        await events.wait(lambda e: len(e.of("connect")) == 2, timeout=20)
        assert rt.is_connected()
        attempts = events.of("attempt")
        assert attempts == list(range(1, len(attempts) + 1))
        assert events.of("reconnect") == [attempts[-1]]


async def test_reconnect_failed_when_the_server_stays_away(
    server_factory: ServerFactory, server_kind: ServerKind, way: str
) -> None:
    server = server_factory(server_kind)
    async with client(server, way, reconnection_attempts=3, **FAST) as rt:
        events = Recorder(rt)
        await connected(rt, way)
        await server.akill()
        await events.wait(lambda e: e.of("reconnect_failed") == [None], timeout=20)
        assert rt.state is tether.State.CLOSED
        assert events.of("attempt") == [1, 2, 3]
        assert len(events.of("error")) == 3
        with pytest.raises(tether.ConnectError):
            await rt.wait_connected(1)


async def test_ping_timeout_when_the_server_stops_answering(
    server_factory: ServerFactory, server_kind: ServerKind, way: str
) -> None:
    server = server_factory(server_kind, ping_interval=300, ping_timeout=200)
    async with client(server, way, **FAST) as rt:
        events = Recorder(rt)
        await connected(rt, way)
        await server.mute()
        muted_at = time.monotonic()
        await events.wait(lambda e: bool(e.of("disconnect")), timeout=10)
        assert events.of("disconnect") == ["ping timeout"]
        # python-engineio advertises a 0.3 s interval as 0 (whole seconds): the client uses
        # its 1 s floor. Either way: interval + timeout, plus a small margin.
        window = (1000 if server_kind == "python" else 300) + 200
        assert events.times["disconnect"] - muted_at < window / 1000 + 0.5
        await server.unmute()
        await events.wait(lambda e: len(e.of("connect")) == 2)


async def test_paused_server_gives_ping_timeout(server_factory: ServerFactory, way: str) -> None:
    server = server_factory("node", ping_interval=300, ping_timeout=200)
    async with client(server, way, timeout=1.0, **FAST) as rt:
        events = Recorder(rt)
        await connected(rt, way)
        server.pause()
        try:
            await events.wait(lambda e: e.of("disconnect") == ["ping timeout"], timeout=5)
        finally:
            server.resume()
        await events.wait(lambda e: len(e.of("connect")) == 2)


# --------------------------------------------------------------------------------- messages


async def test_emit_call_binary_and_early_events(sio_server: SocketIOServer, way: str) -> None:
    received: list[tuple[str, tuple[Any, ...]]] = []
    async with client(sio_server, way, auto_connect=False) as rt:
        rt.on_any(lambda name, *args: received.append((name, args)))
        rt.open()
        await connected(rt, way)
        # "hello" was emitted by the server before (python) or right after (node) its reply.
        await until(lambda: any(name == "hello" for name, _ in received))
        hello = next(args for name, args in received if name == "hello")
        assert hello == ({"sid": rt.get_socket_id()},)
        rt.emit("echo", 1, "two", {"three": [3]}, b"\x00\x01binary", [b"\xff", {"x": b"y"}])
        await until(lambda: any(name == "echo" for name, _ in received))
        echo = next(args for name, args in received if name == "echo")
        assert echo == (1, "two", {"three": [3]}, b"\x00\x01binary", [b"\xff", {"x": b"y"}])
        assert await rt.call("ack", "a", 2) == ("a", 2)
        assert await rt.call("ack", b"\x01") == b"\x01"
        with pytest.raises(tether.AckTimeout):
            await rt.call("no-ack", timeout=0.2)
        await sio_server.emit("pushed", {"n": 1}, b"\x02", sid=rt.get_socket_id())
        await until(lambda: ("pushed", ({"n": 1}, b"\x02")) in received)


async def test_events_before_connect_reply_are_delivered_after_connect(
    server_factory: ServerFactory, way: str
) -> None:
    # python-socketio's connect handler emits before the CONNECT reply (protocol §2.4).
    server = server_factory("python")
    order: list[str] = []
    async with client(server, way, auto_connect=False) as rt:
        rt.on_connect(lambda: order.append(f"connect:{rt.get_socket_id()}"))
        rt.on("hello", lambda payload: order.append(f"hello:{payload['sid']}"))
        rt.open()
        await until(lambda: len(order) == 2)
        sid = rt.get_socket_id()
        assert sid is not None
        assert order == [f"connect:{sid}", f"hello:{rt.get_socket_id()}"]


async def test_many_events_arrive_in_order(sio_server: SocketIOServer, way: str) -> None:
    items: list[int] = []
    async with client(sio_server, way) as rt:
        rt.on("item", lambda i, payload: items.append(i))
        await connected(rt, way)
        rt.emit("emit-many", 500, 64)
        await until(lambda: len(items) == 500)
    assert items == list(range(500))


async def test_offline_emits_are_flushed_in_order_after_reconnect(
    sio_server: SocketIOServer, way: str
) -> None:
    echoes: list[int] = []
    async with client(
        sio_server,
        way,
        reconnection_delay=0.3,
        reconnection_delay_max=0.3,
        randomization_factor=0,
    ) as rt:
        rt.on("echo", echoes.append)
        events = Recorder(rt)
        await connected(rt, way)
        await dropped(sio_server, rt, events)
        for i in range(5):
            rt.emit("echo", i)
        assert rt.buffered == 5
        await until(lambda: len(echoes) == 5)
    assert echoes == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------------ state recovery


async def test_connection_state_recovery_on_node(server_factory: ServerFactory, way: str) -> None:
    server = server_factory("node", csr=True)
    got: list[tuple[Any, ...]] = []
    recovered: list[bool] = []
    async with client(
        server,
        way,
        reconnection_delay=1.0,
        reconnection_delay_max=1.0,
        randomization_factor=0,
    ) as rt:
        rt.on("broadcast", lambda *args: got.append(args))
        rt.on_connect(lambda: recovered.append(rt.recovered))
        events = Recorder(rt)
        await connected(rt, way)
        first = rt.get_socket_id()
        assert first is not None
        rt.emit("broadcast", "before")  # the server broadcasts it back, with an offset
        await until(lambda: got == [("before",)])
        await server.drop(first)
        await events.wait(lambda e: bool(e.of("disconnect")))
        # While the client is cut off (it waits 1 s before retrying) the server emits more.
        await server.emit("broadcast", "missed-1")
        await server.emit("broadcast", "missed-2", {"n": 2})
        await events.wait(lambda e: len(e.of("connect")) == 2)
        await until(lambda: len(got) == 3)
        assert rt.recovered is True
        assert recovered == [False, True]
        assert rt.get_socket_id() == first  # a recovered session keeps its sid
        # Listeners never see the offset argument.
        assert got == [("before",), ("missed-1",), ("missed-2", {"n": 2})]
        history = (await server.state())["history"]
        assert history[-1]["recovered"] is True


async def test_a_close_while_connected_ends_the_session(
    server_factory: ServerFactory, way: str
) -> None:
    # The DISCONNECT makes Node drop the session ("client namespace disconnect" is not a
    # recoverable reason): the pid offered by the next CONNECT gets a new session. (Node's
    # in-memory adapter keeps a session it has restored once until it expires, so after an
    # earlier recovery Node may restore it again: the server decides, specs/delivery.md §3.)
    server = server_factory("node", csr=True)
    got: list[tuple[Any, ...]] = []
    async with client(server, way, **FAST) as rt:
        rt.on("broadcast", lambda *args: got.append(args))
        await connected(rt, way)
        first = rt.get_socket_id()
        rt.emit("broadcast", "before")  # an offset to offer
        await until(lambda: got == [("before",)])
        rt.close()
        await server.wait_for(lambda s: not s["connected"])
        rt.open()
        await connected(rt, way)
        assert rt.recovered is False
        assert rt.get_socket_id() != first


async def test_a_close_while_reconnecting_keeps_the_session_for_open(
    server_factory: ServerFactory, way: str
) -> None:
    # specs/delivery.md §3: no DISCONNECT reached the server, so it kept a recoverable
    # session; the pid survives close() and open() recovers everything emitted meanwhile.
    server = server_factory("node", csr=True)
    got: list[tuple[Any, ...]] = []
    async with client(server, way, reconnection_delay=5.0, reconnection_delay_max=5.0) as rt:
        rt.on("broadcast", lambda *args: got.append(args))
        events = Recorder(rt)
        await connected(rt, way)
        first = rt.get_socket_id()
        assert first is not None
        rt.emit("broadcast", "before")
        await until(lambda: got == [("before",)])
        await server.drop(first)
        await events.wait(lambda e: bool(e.of("disconnect")))
        await server.emit("broadcast", "during the drop")
        rt.close()  # while reconnecting: nothing is sent to the server
        await server.emit("broadcast", "while closed")
        rt.open()
        await events.wait(lambda e: len(e.of("connect")) == 2)
        await until(lambda: len(got) == 3)
        assert rt.recovered is True
        assert rt.get_socket_id() == first
        assert got == [("before",), ("during the drop",), ("while closed",)]  # each once


async def test_python_server_never_recovers(sio_server: SocketIOServer, way: str) -> None:
    async with client(sio_server, way, **FAST) as rt:
        events = Recorder(rt)
        await connected(rt, way)
        sid = rt.get_socket_id()
        assert sid is not None
        await sio_server.drop(sid)
        await events.wait(lambda e: len(e.of("connect")) == 2)
        assert rt.recovered is False


@pytest.mark.parametrize("checkpoints", range(4))
async def test_a_cancelled_call_never_costs_the_connection(
    sio_server: SocketIOServer, way: str, checkpoints: int
) -> None:
    # The caller's cancellation lands at every point of the call's own write in turn: before
    # it, between taking the send lock and the socket write, and after. None may fail the
    # transport (a send cut part-way would) or cost the session.
    async with client(sio_server, way) as rt:
        events = Recorder(rt)
        await connected(rt, way)
        sid = rt.get_socket_id()
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(rt.call, "slow-ack", 5, timeout=None))
            for _ in range(checkpoints):
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
        assert await rt.call("slow-ack", 0, timeout=5) == "done"
        assert events.of("disconnect") == [] and rt.get_socket_id() == sid


async def test_a_cancelled_call_still_buffered_is_never_sent(
    sio_server: SocketIOServer, way: str
) -> None:
    async with client(sio_server, way, reconnection_delay=0.3, randomization_factor=0) as rt:
        events = Recorder(rt)
        await connected(rt, way)
        await dropped(sio_server, rt, events)
        with anyio.move_on_after(0.01):
            await rt.call("record", "abandoned", timeout=None)
        rt.emit("record", "kept")
        assert rt.buffered == 1
        await sio_server.wait_for(lambda s: s["records"] == ["kept"])
        assert await rt.call("slow-ack", 0, timeout=5) == "done"
        assert (await sio_server.state())["records"] == ["kept"]


async def test_a_written_call_fails_with_disconnected_when_the_transport_drops(
    sio_server: SocketIOServer, way: str
) -> None:
    changes: list[tether.StateChanged] = []
    async with client(sio_server, way, **FAST) as rt:
        rt.on_state_change(changes.append)
        await connected(rt, way)
        sid = rt.get_socket_id()
        assert sid is not None
        outcome: list[BaseException] = []

        async def slow_call(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            task_status.started()  # the parent resumes once this task next yields ...
            try:
                await rt.call("slow-ack", 5, timeout=10)  # ... which is after this is queued
            except tether.TetherError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            await tg.start(slow_call)
            # One round trip on the same ordered connection: when it is back, the server has
            # the slow call (it would ack in 5 s).
            assert await rt.call("ack", "sync", timeout=5) == "sync"
            await sio_server.drop(sid)
        assert len(outcome) == 1
        assert isinstance(outcome[0], tether.Disconnected)
        await until(lambda: rt.is_connected() and rt.get_socket_id() != sid)
        await until(lambda: len(changes) >= 4)
    states = [(c.previous, c.current) for c in changes]
    assert states[:4] == [
        (tether.State.IDLE, tether.State.CONNECTING),
        (tether.State.CONNECTING, tether.State.CONNECTED),
        (tether.State.CONNECTED, tether.State.RECONNECTING),
        (tether.State.RECONNECTING, tether.State.CONNECTED),
    ]
    lost = changes[2]
    assert lost.reason == drop_reason(sio_server, way)
    assert lost.attempt == 1
    assert lost.retry_in is not None
    assert FAST["reconnection_delay"] * 0.5 <= lost.retry_in <= FAST["reconnection_delay_max"]
