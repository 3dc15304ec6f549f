"""tether's client through the fault proxy (tests/faults) against Node's socket.io 4.8.

Each fault the proxy injects shows up in the client as the documented disconnect reason
(contract 2.2 / 2.6) or a failed call, followed by a reconnect, with nothing raised into the
test's code: leaving ``async with`` cleanly is part of every test. Both backends, both
WebSocket transports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

import tether
from faults import Corruption, Direction, Fault, FaultProxy
from servers.handles import NodeServer, ServerFactory

from .support import Recorder, client, until

pytestmark = pytest.mark.anyio

FAST = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.2}


@pytest.fixture
def node(node_server: NodeServer) -> NodeServer:
    node_server.ensure_ready()
    return node_server


@pytest.fixture
async def proxy(node: NodeServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(node) as running:
        yield running


async def connected(rt: tether.RealtimeClient) -> Recorder:
    events = Recorder(rt)
    await rt.wait_connected(10)
    return events


async def test_reset_is_a_transport_error_and_a_reconnect(
    proxy: FaultProxy, transport_kind: str
) -> None:
    async with client(proxy.url, transport_kind, **FAST) as rt:
        events = await connected(rt)
        assert await proxy.reset() == 1
        await events.wait(lambda e: len(e.of("connect")) == 2)
        assert events.of("disconnect") == ["transport error"]
        assert await rt.call("ack", "after", timeout=5) == "after"


async def test_fin_is_a_transport_close_and_a_reconnect(
    proxy: FaultProxy, transport_kind: str
) -> None:
    async with client(proxy.url, transport_kind, **FAST) as rt:
        events = await connected(rt)
        assert await proxy.fin() == 1
        await events.wait(lambda e: len(e.of("connect")) == 2)
        assert events.of("disconnect") == ["transport close"]
        assert await rt.call("ack", "after", timeout=5) == "after"


async def test_blackhole_is_a_ping_timeout_and_attempts_fail_until_lifted(
    server_factory: ServerFactory, transport_kind: str
) -> None:
    # The client gives up 1.1 s after the last ping; the server's pong deadline is long
    # enough that a busy machine cannot miss one before the black hole.
    server = server_factory("node", ping_interval=100, ping_timeout=1000)
    async with (
        FaultProxy(server) as proxy,
        client(proxy.url, transport_kind, timeout=0.5, **FAST) as rt,
    ):
        events = await connected(rt)
        proxy.blackhole()
        await events.wait(lambda e: bool(e.of("disconnect")))
        assert events.of("disconnect") == ["ping timeout"]
        # Attempts reach the proxy, but neither the upgrade nor its answer gets through.
        await events.wait(lambda e: len(e.of("error")) >= 2)
        assert [error.message for error in events.of("error")][:2] == ["timeout", "timeout"]
        assert len(events.of("connect")) == 1
        proxy.blackhole(False)
        await events.wait(lambda e: len(e.of("connect")) == 2)
        assert await rt.call("ack", "after", timeout=5) == "after"


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        (Corruption.PACKET_TYPE, "parse error"),
        (Corruption.UTF8, "transport error"),
        (Corruption.OPCODE, "transport error"),
    ],
)
async def test_a_corrupt_frame_to_the_client_is_the_documented_reason(
    proxy: FaultProxy, transport_kind: str, how: Corruption, reason: str
) -> None:
    async with client(proxy.url, transport_kind, **FAST) as rt:
        events = await connected(rt)
        proxy.corrupt_next_frame(Direction.TO_CLIENT, how)
        rt.emit("echo", "the echo is the next frame")
        await events.wait(lambda e: len(e.of("connect")) == 2)
        assert events.of("disconnect") == [reason]
        assert proxy.stats.faults[Fault.CORRUPT] == 1
        assert await rt.call("ack", "after", timeout=5) == "after"


@pytest.mark.parametrize(
    ("how", "server_reason"),
    [
        (Corruption.PACKET_TYPE, "parse error"),
        (Corruption.UTF8, "transport error"),
        (Corruption.OPCODE, "transport error"),
    ],
)
async def test_a_corrupt_frame_to_the_server_makes_it_close_and_the_client_reconnects(
    proxy: FaultProxy, node: NodeServer, transport_kind: str, how: Corruption, server_reason: str
) -> None:
    async with client(proxy.url, transport_kind, **FAST) as rt:
        events = await connected(rt)
        first = rt.get_socket_id()
        proxy.corrupt_next_frame(Direction.TO_SERVER, how)
        rt.emit("echo", "corrupted on its way")
        await events.wait(lambda e: len(e.of("connect")) == 2)
        # The server fails the connection (engine.io's "parse error", or ws's close 1007 /
        # 1002) and closes it cleanly: the client sees that close.
        assert events.of("disconnect") == ["transport close"]
        state = await node.wait_for(lambda s: any(d["sid"] == first for d in s["disconnects"]))
        assert [d["reason"] for d in state["disconnects"] if d["sid"] == first] == [server_reason]
        assert await rt.call("ack", "after", timeout=5) == "after"


@pytest.mark.parametrize("payload", ["text", b"\x00\x01binary"], ids=["ack", "binary-ack"])
async def test_a_dropped_ack_times_the_call_out_and_later_calls_succeed(
    proxy: FaultProxy, transport_kind: str, payload: str | bytes
) -> None:
    async with client(proxy.url, transport_kind, **FAST) as rt:
        events = await connected(rt)
        proxy.drop_next_ack()
        with pytest.raises(tether.AckTimeout):
            await rt.call("ack", payload, timeout=0.5)
        assert proxy.stats.faults[Fault.DROP_ACK] == 1
        # The next ACK (and, for a BINARY_ACK, nothing left of the dropped one's attachment)
        # comes through: no parse error, no reconnect.
        assert await rt.call("ack", payload, timeout=5) == payload
        assert await rt.call("ack", "third", timeout=5) == "third"
        assert events.of("disconnect") == []
        assert rt.is_connected()


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_refused_connections_are_connect_errors_until_lifted(
    proxy: FaultProxy, node: NodeServer, transport_kind: str, reset: bool
) -> None:
    proxy.refuse(reset=reset)
    async with client(proxy.url, transport_kind, timeout=2, **FAST) as rt:
        events = Recorder(rt)
        await events.wait(lambda e: len(e.of("error")) >= 3)
        errors: list[tether.ConnectError] = events.of("error")
        assert all(error.data is None for error in errors)
        assert events.of("connect") == []
        assert (await node.state())["connections"] == 0
        proxy.refuse(False)
        await rt.wait_connected(10)
        assert await rt.call("ack", "in", timeout=5) == "in"
    assert proxy.stats.faults[Fault.REFUSE] >= 3


async def test_a_reset_mid_write_is_a_transport_error_and_the_event_is_lost(
    server_factory: ServerFactory, transport_kind: str
) -> None:
    size = 32 * 1024 * 1024  # past what the sockets' kernel buffers hold: still writing
    server = server_factory("node", max_payload=2 * size)
    buffer = {"max_buffered_bytes": 2 * size}  # the default 16 MiB refuses the message
    async with (
        FaultProxy(server) as proxy,
        client(proxy.url, transport_kind, **buffer, **FAST) as rt,
    ):
        events = await connected(rt)
        echoes: list[object] = []
        rt.on("echo", lambda *args: echoes.append(args))
        proxy.reset_mid_write(larger_than=1024 * 1024, after=1000)
        rt.emit("echo", bytes(size))
        await events.wait(lambda e: len(e.of("connect")) == 2, timeout=20)
        assert events.of("disconnect") == ["transport error"]
        assert proxy.stats.faults[Fault.RESET_MID_WRITE] == 1
        assert await rt.call("ack", "after", timeout=5) == "after"
        assert echoes == []  # the server never had the whole event


async def test_split_both_ways_still_carries_everything(
    proxy: FaultProxy, transport_kind: str
) -> None:
    proxy.split()
    async with client(proxy.url, transport_kind, **FAST) as rt:
        events = await connected(rt)
        assert await rt.call("ack", "x" * 300, timeout=10) == "x" * 300
        assert await rt.call("ack", b"\x00" * 300, timeout=10) == b"\x00" * 300
        assert events.of("disconnect") == []
    assert proxy.stats.largest_write == {Direction.TO_SERVER: 1, Direction.TO_CLIENT: 1}


async def test_latency_and_throttle_still_carry_everything(
    proxy: FaultProxy, transport_kind: str
) -> None:
    proxy.latency(0.02)
    proxy.throttle(200_000)
    async with client(proxy.url, transport_kind, **FAST) as rt:
        events = await connected(rt)
        payload = "y" * 50_000
        assert await rt.call("ack", payload, timeout=10) == payload
        assert events.of("disconnect") == []
    assert proxy.stats.largest_write[Direction.TO_SERVER] <= 20_000


async def test_a_short_chaos_run_leaves_a_client_that_reconnects_once_healed(
    proxy: FaultProxy, transport_kind: str
) -> None:
    """Every fault, seeded, for a couple of seconds while the client keeps calling; no
    exception reaches this code, and once the proxy heals the client is back."""
    async with client(proxy.url, transport_kind, timeout=1, **FAST) as rt:
        events = Recorder(rt)
        await rt.wait_connected(10)
        outcomes: list[str] = []
        async with proxy.chaos(1, every=(0.05, 0.3)) as played:
            with anyio.move_on_after(2.5):
                while True:
                    try:
                        await rt.call("ack", "soak", timeout=0.5)
                        outcomes.append("ok")
                    except (tether.AckTimeout, tether.Disconnected):
                        outcomes.append("lost")
        assert played  # the schedule ran
        await until(lambda: rt.is_connected(), timeout=20)
        assert await rt.call("ack", "healed", timeout=5) == "healed"
        assert len(events.of("connect")) >= 1
        assert outcomes


async def test_a_call_whose_write_cannot_finish_fails_at_its_timeout(
    server_factory: ServerFactory, transport_kind: str
) -> None:
    # The server stops reading (a black hole towards it) while a call writes a packet larger
    # than the socket buffers: the write blocks. The call's own timeout still ends it, and
    # the write it cut off fails the transport (half a frame cannot be followed by more).
    # The heartbeat is long, so only the call's timeout can end this.
    server = server_factory("node", ping_interval=25000, ping_timeout=20000, max_payload=40_000_000)
    async with (
        FaultProxy(server) as proxy,
        client(proxy.url, transport_kind, **FAST) as rt,
    ):
        events = await connected(rt)
        proxy.blackhole(direction=Direction.TO_SERVER)
        started = anyio.current_time()
        with pytest.raises(tether.AckTimeout):
            await rt.call("ack", "x" * 16_000_000, timeout=1.0)
        assert anyio.current_time() - started < 10
        await events.wait(lambda e: bool(e.of("disconnect")))
        assert events.of("disconnect") == ["transport error"]
        proxy.blackhole(False)
        await events.wait(lambda e: len(e.of("connect")) == 2)
        assert await rt.call("ack", "after", timeout=5) == "after"
