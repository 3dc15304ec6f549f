"""Retries against a plain Socket.IO server, through the fault proxy: at least once.

specs/delivery.md §2: with ``retries`` every emit and call asks for an ack, and a try that
ends without one (``ack_timeout``, a disconnect) is followed by another. Node's socket.io 4.8
records every ``record`` event it receives (servers/README.md), so a test counts what
arrived: everything at least once, and the duplicates a plain server has to live with.
Both backends, both WebSocket transports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import anyio
import pytest

import tether
from faults import FaultProxy
from servers.handles import NodeServer, ServerFactory, SocketIOServer

from .support import Recorder, client, until

pytestmark = pytest.mark.anyio

FAST = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.2}


@pytest.fixture
async def proxy(node_server: NodeServer) -> AsyncIterator[FaultProxy]:
    node_server.ensure_ready()
    await node_server.reset()
    async with FaultProxy(node_server) as running:
        yield running


async def records(server: SocketIOServer) -> Counter[object]:
    return Counter(str(value) for value in (await server.state())["records"])


async def test_a_dropped_ack_is_tried_again_and_the_call_returns(
    proxy: FaultProxy, node_server: NodeServer, transport_kind: str
) -> None:
    async with client(proxy.url, transport_kind, ack_timeout=0.3, **FAST) as rt:
        await rt.wait_connected(10)
        proxy.drop_next_ack(2)
        assert await rt.call("record", "q", timeout=10, retries=3) == "ok"
        assert (await records(node_server))["q"] == 3  # at least once: here, three times
        assert rt.is_connected()


async def test_a_call_raises_the_last_tries_error(
    proxy: FaultProxy, node_server: NodeServer, transport_kind: str
) -> None:
    async with client(proxy.url, transport_kind, **FAST) as rt:
        await rt.wait_connected(10)
        proxy.drop_next_ack(10)
        with pytest.raises(tether.AckTimeout):
            await rt.call("record", "q", timeout=10, retries=2, ack_timeout=0.2)
        assert (await records(node_server))["q"] == 3


async def test_emits_survive_resets_and_black_holes_at_least_once(
    proxy: FaultProxy, node_server: NodeServer, way: str
) -> None:
    # Every way of connecting, long-polling and the upgrade included (specs/transports.md):
    # the retries hold across a fallback and an upgrade as on WebSocket.
    dropped: list[tether.MessageDropped] = []
    async with client(proxy.url, way, retries=5, ack_timeout=1.0, timeout=1.0, **FAST) as rt:
        rt.on_buffer_overflow(dropped.append)
        events = Recorder(rt)
        await rt.wait_connected(10)
        for i in range(30):
            rt.emit("record", i)
        proxy.drop_next_ack(5)
        await proxy.reset()  # some written, some not, acks lost
        await events.wait(lambda e: len(e.of("connect")) == 2)
        for i in range(30, 60):
            rt.emit("record", i)
        proxy.blackhole()
        await anyio.sleep(0.3)
        proxy.blackhole(False)
        await until(lambda: rt.is_connected(), 20)
        seen: Counter[object] = Counter()
        with anyio.fail_after(20):
            while len(seen) < 60:
                seen = await records(node_server)
                await anyio.sleep(0.05)
        assert set(seen) == {str(i) for i in range(60)}  # nothing lost
        assert dropped == []


async def test_a_reset_mid_write_is_a_try_that_ends_and_the_message_goes_again(
    proxy: FaultProxy, node_server: NodeServer, transport_kind: str
) -> None:
    big = "x" * 512_000
    async with client(proxy.url, transport_kind, retries=2, **FAST) as rt:
        events = Recorder(rt)
        await rt.wait_connected(10)
        proxy.reset_mid_write(larger_than=100_000)
        answer = await rt.call("record", big, timeout=20)
        assert answer == "ok"
        assert events.of("disconnect") == ["transport error"]
        assert (await records(node_server))[big] == 1  # the cut try never arrived


async def test_before_the_first_connect_the_servers_own_limit_applies(
    server_factory: ServerFactory, transport_kind: str
) -> None:
    # specs/bounds.md: a 5 MB message emitted before any server spoke is not refused for its
    # size; a server announcing 10 MB takes it at the flush (it used to be refused at the
    # call site against an assumed 1 MB).
    server = server_factory("node", max_payload=10_000_000)
    big = "x" * 5_000_000
    async with client(
        server, transport_kind, auto_connect=False, max_buffered_bytes=32_000_000
    ) as rt:
        rt.emit("record", big)  # before any server spoke: buffered, not refused
        rt.open()
        await rt.wait_connected(10)
        with anyio.fail_after(30):
            while not (await records(server))[big]:
                await anyio.sleep(0.05)
        with pytest.raises(tether.MessageTooLarge):
            rt.emit("record", "x" * 11_000_000)
