"""Who keeps the deadlines: the timer task, or the connected reader (specs/client.md).

An idle connected client has one task, its reader, which keeps the heartbeat and ack
deadlines through the transport's read deadline; the timer task ends at the connect and
comes back when the session ends. These tests pin that down, and that no deadline is missed
on the way: while connected, while listeners fall behind, across a drop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

import tether
from tether._driver._session import DISPATCH_BACKLOG_LIMIT
from tether.transport import MemoryConnector, MemoryPeer

from .helpers import ScriptedServer, wait_until

pytestmark = pytest.mark.anyio

FAST = {"reconnection_delay": 0.01, "reconnection_delay_max": 0.02}


def client(connector: MemoryConnector, **options: Any) -> tether.RealtimeClient:
    return tether.RealtimeClient("http://rt.example", transport=connector, **options)


@asynccontextmanager
async def connected() -> AsyncIterator[tuple[tether.RealtimeClient, MemoryPeer]]:
    """A client connected to a scripted server, its reader keeping the deadlines."""
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector) as rt:
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        await wait_until(lambda: rt._driver.deadlines.reader is not None)
        yield rt, peer


def tether_tasks() -> list[str]:
    names = [task.name or "" for task in anyio.get_running_tasks()]
    return sorted(name for name in names if name.startswith("tether"))


async def test_an_idle_connected_client_runs_only_its_reader() -> None:
    async with connected() as (rt, _):
        await wait_until(lambda: tether_tasks() == ["tether transport 1"])
        assert rt._driver.deadlines.reader is not None
        assert not rt._driver.deadlines.timer_running


async def test_the_timer_comes_back_when_the_connection_drops_and_leaves_again() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    reasons: list[str] = []
    async with client(connector, reconnection_delay=0.2, reconnection_delay_max=0.2) as rt:
        rt.on_disconnect(reasons.append)
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        await wait_until(lambda: tether_tasks() == ["tether transport 1"])
        peer.close()
        # The backoff wait is kept by the timer task again.
        await wait_until(lambda: "tether timer" in tether_tasks())
        assert rt._driver.deadlines.reader is None
        await server.accept()
        await rt.wait_connected(5)
        await wait_until(lambda: tether_tasks() == ["tether transport 2"])
    assert reasons == ["transport close", "io client disconnect"]


async def test_ack_timeouts_fire_while_the_reader_keeps_the_deadlines() -> None:
    async with connected() as (rt, peer):
        with anyio.fail_after(5), pytest.raises(tether.AckTimeout):
            # An earlier deadline than the heartbeat's: the reader's read deadline moves.
            await rt.call("never", timeout=0.05)
        assert await peer.receive() == '420["never"]'
        assert rt.is_connected()


async def test_pings_are_answered_by_a_writer_while_the_reader_keeps_the_deadlines() -> None:
    async with connected() as (_, peer):
        for _ in range(3):
            await peer.send("2")
            with anyio.fail_after(5):
                assert await peer.receive() == "3"


async def test_the_heartbeat_times_out_while_the_reader_keeps_the_deadlines() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    reasons: list[str] = []
    async with client(connector, **FAST) as rt:
        rt.on_disconnect(reasons.append)
        # pingInterval 0 is read as 1 s (specs/invariants.md): the deadline is 1.1 s away.
        await server.accept(ping_interval=0, ping_timeout=100)
        await rt.wait_connected(5)
        await wait_until(lambda: rt._driver.deadlines.reader is not None)
        await server.accept()  # the reconnect after the timeout
        await wait_until(lambda: len(reasons) == 1)
        assert reasons == ["ping timeout"]


async def test_the_reader_keeps_reading_and_answering_pings_while_listeners_fall_behind() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    release = anyio.Event()
    delivered = 0

    async def slow(*args: Any) -> None:
        nonlocal delivered
        delivered += 1
        await release.wait()

    async with client(connector) as rt:
        rt.on("e", slow)
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        await wait_until(lambda: rt._driver.deadlines.reader is not None)
        # The first event blocks the dispatcher; the rest wait for it, and the reader goes
        # on reading: the ping behind them is answered, deadlines still run.
        await peer.send_many(['42["e",1]'] * 1000 + ["2"])
        with anyio.fail_after(5):
            assert await peer.receive() == "3"
        assert rt._driver.dispatcher.backlog >= 999
        with anyio.fail_after(5), pytest.raises(tether.AckTimeout):
            await rt.call("never", timeout=0.05)
        release.set()
        await wait_until(lambda: delivered == 1000)
        assert rt.is_connected()


async def test_past_the_backlog_bound_the_client_drops_the_connection_and_reconnects() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    release = anyio.Event()
    reasons: list[str] = []

    async def slow(*args: Any) -> None:
        await release.wait()

    async with client(connector, **FAST) as rt:
        rt.on("e", slow)
        rt.on_disconnect(reasons.append)
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        await peer.send_many(['42["e",1]'] * (DISPATCH_BACKLOG_LIMIT + 10))
        await wait_until(lambda: rt.state is tether.State.RECONNECTING, 30)
        # It stopped reading at the bound: the backlog is the bound plus the disconnect.
        assert rt._driver.dispatcher.backlog == DISPATCH_BACKLOG_LIMIT + 1
        release.set()  # the disconnect fact is delivered in order, after the events
        await wait_until(lambda: reasons == [tether.DisconnectReason.LISTENERS_BEHIND], 30)
        await server.accept()
        await rt.wait_connected(30)


async def test_close_hands_the_deadlines_back() -> None:
    async with connected() as (rt, _):
        await rt.aclose()
        assert rt._driver.deadlines.reader is None
        assert rt.state is tether.State.CLOSED


async def test_a_connect_nobody_listens_to_queues_nothing_for_the_dispatcher() -> None:
    async with connected() as (rt, _):
        assert rt._driver.dispatcher.queue == []
        assert rt._driver.dispatcher.backlog == 0


async def test_a_listener_added_after_a_fact_does_not_get_it() -> None:
    seen: list[str] = []
    async with connected() as (rt, _):
        rt.on("connect", lambda: seen.append("connect"))
        rt.on("disconnect", lambda reason: seen.append(reason))
        await rt.aclose()
    assert seen == ["io client disconnect"]


async def test_listeners_registered_right_after_entering_see_the_first_state_change() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    changes: list[tuple[tether.State, tether.State]] = []
    async with client(connector) as rt:
        rt.on_state_change(lambda change: changes.append((change.previous, change.current)))
        await server.accept()
        await rt.wait_connected(5)
        await wait_until(lambda: len(changes) == 2)
    assert changes[:2] == [
        (tether.State.IDLE, tether.State.CONNECTING),
        (tether.State.CONNECTING, tether.State.CONNECTED),
    ]


async def test_a_connect_starts_no_timer_task_and_still_times_out() -> None:
    # While the session connects, its own task keeps the attempt's timeout.
    connector = MemoryConnector()
    connector.hang_next()
    errors: list[str] = []
    async with client(connector, timeout=0.2, reconnection_delay=5) as rt:
        rt.on_error(lambda e: errors.append(e.message))
        await anyio.wait_all_tasks_blocked()
        assert tether_tasks() == ["tether transport 1"]  # no timer task
        await wait_until(lambda: errors == ["timeout"])
        # Then the backoff wait is the timer task's.
        await wait_until(lambda: tether_tasks() == ["tether timer"])


async def test_a_call_timeout_while_the_connect_hangs_starts_the_timer() -> None:
    connector = MemoryConnector()
    connector.hang_next()
    async with client(connector, timeout=30) as rt:
        await anyio.wait_all_tasks_blocked()
        assert "tether timer" not in tether_tasks()
        with anyio.fail_after(5), pytest.raises(tether.AckTimeout):
            await rt.call("slow", timeout=0.05)  # earlier than the attempt's 30 s
        assert rt.state is tether.State.CONNECTING


async def test_a_closed_client_holds_no_task() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector) as rt:
        await server.accept()
        await rt.wait_connected(5)
        await rt.aclose()
        await wait_until(lambda: tether_tasks() == [])
        rt.open()  # and it comes back to life
        await server.accept()
        await rt.wait_connected(5)
