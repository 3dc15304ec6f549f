"""Several hub processes sharing channels through a real Redis server.

Needs ``redis-server`` on PATH: without it these tests fail (they never skip), because a
multi-process hub that was never tested against Redis is not a multi-process hub.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from .conftest import HubProcess, RedisServer, WireClient, connected, unique

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"


def start_node(redis_server: RedisServer, prefix: str, tmp: Path, ttl: float = 3) -> HubProcess:
    """A hub process on the shared Redis. Its heartbeat expires ``ttl`` s after it dies, and
    it checks the others every ``ttl / 3`` s: short for the tests, long enough that a busy CI
    machine does not stall a live process past it."""
    return HubProcess.start(
        "--redis",
        redis_server.url,
        "--redis-prefix",
        prefix,
        "--node-ttl",
        str(ttl),
        "--log-level",
        "debug",
        tmp=tmp,
    )


@pytest.fixture(scope="module")
def hubs(redis_server: RedisServer, prefix: str, hub_tmp: Path) -> Iterator[list[HubProcess]]:
    nodes = [start_node(redis_server, prefix, hub_tmp) for _ in range(2)]
    yield nodes
    for node in nodes:
        assert node.stop() == 0, node.log()


def member_event(channel: str, sid: str | None, data: Any = None) -> dict[str, Any]:
    return {"channel": channel, "message": {"id": sid, "data": data}}


async def join(client: WireClient, channel: str, echo: bool = False) -> None:
    assert await client.call("join", {"channel": channel, "echo": echo}) == []


async def barrier(sender: WireClient, *receivers: WireClient) -> None:
    """Return once everything ``sender`` published before has been handled by the processes
    of ``receivers``: Redis pub/sub and each process's listener keep the publish order."""
    token = uuid.uuid4().hex
    await sender.emit("message", {"eventName": "barrier", "message": token, "echo": False})
    for receiver in receivers:
        while (await receiver.next_event()) != ("barrier", [{"channel": None, "message": token}]):
            pass


async def test_channels_span_hub_processes(hubs: list[HubProcess]) -> None:
    hub_a, hub_b = hubs
    assert hub_a.port != hub_b.port
    ch = unique()
    async with connected(hub_a) as a, connected(hub_b) as b:
        await b.emit("join", {"channel": ch, "echo": True})
        await b.expect("channel:join", member_event(ch, b.sid))
        # An announcement reaches another process's members when it arrives there: without
        # the barrier, a's join could race b's announcement and a would see it too (spec 5).
        await barrier(b, a)
        await a.emit("join", {"channel": ch, "echo": True})
        await a.expect("channel:join", member_event(ch, a.sid))
        await b.expect("channel:join", member_event(ch, a.sid))  # across processes

        # messages, both directions, echo on and off
        await a.emit("message", {"channel": ch, "eventName": "chat", "message": {"t": 1}})
        await a.expect("chat", {"channel": ch, "message": {"t": 1}})
        await b.expect("chat", {"channel": ch, "message": {"t": 1}})
        await b.emit(
            "message", {"channel": ch, "eventName": "chat", "message": b"\x00\xff", "echo": False}
        )
        await a.expect("chat", {"channel": ch, "message": b"\x00\xff"})
        await b.expect_silence()

        # profiles travel, and members lists everyone from either process, in join order
        await b.emit("update", {"data": {"name": "Bob"}, "echo": False})
        await a.expect("channel:update", member_event(ch, b.sid, {"name": "Bob"}))
        expected = [[{"id": b.sid, "data": {"name": "Bob"}}, {"id": a.sid, "data": None}]]
        assert await a.call("members", {"channel": ch}) == expected
        assert await b.call("members", {"channel": ch}) == expected

        await b.emit("leave", {"channel": ch, "echo": True})
        await b.expect("channel:leave", member_event(ch, b.sid, {"name": "Bob"}))
        await a.expect("channel:leave", member_event(ch, b.sid, {"name": "Bob"}))
        assert await b.call("members", {"channel": ch}) == [[{"id": a.sid, "data": None}]]


async def test_broadcast_reaches_every_process(hubs: list[HubProcess]) -> None:
    hub_a, hub_b = hubs
    async with connected(hub_a) as a, connected(hub_b) as b, connected(hub_b) as c:
        await a.sync()
        await b.sync()
        await c.sync()
        await c.emit("message", {"eventName": "news", "message": 7, "echo": False})
        await a.expect("news", {"channel": None, "message": 7})
        await b.expect("news", {"channel": None, "message": 7})
        await c.expect_silence()


async def test_disconnect_on_one_process_is_announced_on_the_other(
    hubs: list[HubProcess],
) -> None:
    hub_a, hub_b = hubs
    ch1, ch2 = unique(), unique()
    async with connected(hub_a) as a:
        async with connected(hub_b) as b:
            for ch in (ch1, ch2):
                await join(a, ch)
                await join(b, ch)
            b_sid = b.sid
        got = sorted(
            [
                await a.next_event(),
                await a.next_event(),
                await a.next_event(),
                await a.next_event(),
            ],
            key=repr,
        )
        assert got == sorted(
            [
                ("channel:join", [member_event(ch1, b_sid)]),
                ("channel:join", [member_event(ch2, b_sid)]),
                ("channel:leave", [member_event(ch1, b_sid)]),
                ("channel:leave", [member_event(ch2, b_sid)]),
            ],
            key=repr,
        )
        assert await a.call("members", {"channel": ch1}) == [[{"id": a.sid, "data": None}]]


async def test_order_across_processes(hubs: list[HubProcess]) -> None:
    hub_a, hub_b = hubs
    ch = unique()
    async with connected(hub_a) as a, connected(hub_b) as b:
        await join(b, ch)
        for i in range(200):
            await a.emit("message", {"channel": ch, "eventName": "seq", "message": i})
        received = [await b.next_event() for _ in range(200)]
        assert [args[0]["message"] for _, args in received] == list(range(200))


async def test_graceful_stop_removes_its_members(
    hubs: list[HubProcess], redis_server: RedisServer, prefix: str, hub_tmp: Path
) -> None:
    import redis

    db = redis.Redis.from_url(redis_server.url, decode_responses=True)
    nodes_before = db.smembers(f"{prefix}nodes")
    hub_a = hubs[0]
    hub_c = start_node(redis_server, prefix, hub_tmp)
    ch = unique()
    async with connected(hub_a) as a:
        c = await WireClient.open(hub_c.host, hub_c.port)
        try:
            await c.connect()
            await join(a, ch)
            await join(c, ch)
            await c.call("update", {"data": {"n": "c"}})
            await a.expect("channel:join", member_event(ch, c.sid))
            await a.expect("channel:update", member_event(ch, c.sid, {"n": "c"}))
            await anyio.to_thread.run_sync(hub_c.stop)
            assert hub_c.proc.returncode == 0, hub_c.log()
            # announced by the stopping process itself, long before any TTL could expire
            with anyio.fail_after(0.9):
                await a.expect("channel:leave", member_event(ch, c.sid, {"n": "c"}))
            assert await a.call("members", {"channel": ch}) == [[{"id": a.sid, "data": None}]]
            # nothing of hub_c is left in Redis
            assert db.smembers(f"{prefix}nodes") == nodes_before
            assert not db.exists(f"{prefix}chans:{c.sid}")
            assert not db.hexists(f"{prefix}profile", str(c.sid))
            assert not [
                key
                for key in db.scan_iter(f"{prefix}alive:*")
                if key.removeprefix(f"{prefix}alive:") not in nodes_before
            ]
            assert not [
                key
                for key in db.scan_iter(f"{prefix}node:*")
                if key.removeprefix(f"{prefix}node:") not in nodes_before
            ]
            # its client saw a transport close, not a Socket.IO DISCONNECT
            seen = await c.until_closed()
            assert ("channel:update", [member_event(ch, c.sid, {"n": "c"})]) in seen
            assert "41" not in c.frames
        finally:
            await c.close()
            db.close()


async def test_members_of_a_crashed_process_are_removed(
    hubs: list[HubProcess], redis_server: RedisServer, prefix: str, hub_tmp: Path
) -> None:
    import redis

    db = redis.Redis.from_url(redis_server.url, decode_responses=True)
    nodes_before = db.smembers(f"{prefix}nodes")
    hub_a = hubs[0]
    hub_d = start_node(redis_server, prefix, hub_tmp, ttl=1)
    ch = unique()
    async with connected(hub_a) as a:
        d = await WireClient.open(hub_d.host, hub_d.port)
        try:
            await d.connect()
            await join(a, ch)
            await join(d, ch)
            await a.expect("channel:join", member_event(ch, d.sid))
            hub_d.kill()  # SIGKILL: no clean-up at all
            # hub_a notices the expired heartbeat (within 1 s + its 1 s check period) and
            # announces the leave
            with anyio.fail_after(5):
                await a.expect("channel:leave", member_event(ch, d.sid))
            assert await a.call("members", {"channel": ch}) == [[{"id": a.sid, "data": None}]]
            assert db.smembers(f"{prefix}nodes") == nodes_before
            assert not db.exists(f"{prefix}chans:{d.sid}")
        finally:
            await d.close()
            db.close()
