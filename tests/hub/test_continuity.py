"""Continuity through the hub, as a user sees it: nothing missed, nothing twice.

specs/delivery.md §4: every channel message, member event and broadcast has a position in
its stream; a member that comes back (a dropped connection, ``close()`` + ``open()``, a hub
process that went away) gets what it missed, in order, before anything live, and
``on_resume`` says whether that was all of it. A tether client's messages are delivered once
per id, whatever its retries. Real hubs (embedded, or ``tether serve`` processes on a real
Redis), real tether clients, both backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import tether
from faults import Direction, FaultProxy
from integration.support import client, until
from tether.hub import HubConfig, HubThread, start_hub_in_thread

from .conftest import HubProcess, RedisServer, connected, unique
from .test_hub_redis import start_node

pytestmark = pytest.mark.anyio

FAST: dict[str, Any] = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.2}


class Member:
    """What one client receives in one channel and the broadcasts, and its resumes."""

    def __init__(self, rt: tether.RealtimeClient, channel: str) -> None:
        self.chats: list[Any] = []
        self.news: list[Any] = []
        self.members: list[tuple[str, str]] = []
        self.resumes: list[tether.StreamResumed] = []
        self.positions: list[str] = []
        rt.on("chat", self._chat)
        rt.on("news", lambda payload: self.news.append(payload["message"]))
        rt.on("channel:join", lambda p: self.members.append(("join", p["message"]["id"])))
        rt.on("channel:leave", lambda p: self.members.append(("leave", p["message"]["id"])))
        rt.on_resume(self.resumes.append)
        self.channel = channel

    def _chat(self, payload: dict[str, Any]) -> None:
        assert payload["channel"] == self.channel
        self.chats.append(payload["message"])
        self.positions.append(payload["pos"])

    def resume_of(self, channel: str | None) -> tether.StreamResumed:
        [resume] = [r for r in self.resumes if r.channel == channel]
        return resume


def hub_with(**config: Any) -> HubThread:
    return start_hub_in_thread(HubConfig(**{"port": 0, **config}))


@pytest.fixture
def embedded_hub() -> Iterator[HubThread]:
    hub = hub_with()
    yield hub
    hub.stop()


async def joined(rt: tether.RealtimeClient, channel: str) -> None:
    """Connected, and in ``channel`` (its own echoed join seen)."""
    seen = anyio.Event()

    def on_join(payload: dict[str, Any]) -> None:
        if payload["channel"] == channel and payload["message"]["id"] == rt.get_socket_id():
            seen.set()

    rt.on("channel:join", on_join)
    await rt.wait_connected(10)
    rt.join(channel)
    with anyio.fail_after(10):
        await seen.wait()
    rt.off("channel:join", on_join)


async def test_a_dropped_member_gets_what_it_missed_once_in_order(
    embedded_hub: HubThread, way: str
) -> None:
    room = unique("room")
    async with (
        tether.RealtimeClient(embedded_hub.url, **FAST) as alice,
        client(embedded_hub.url, way, **FAST) as bob,
    ):
        bob_sees = Member(bob, room)
        await joined(alice, room)
        await joined(bob, room)
        # Alice keeps sending while bob is cut off and comes back: the seam between his
        # replay and the live messages is crossed while she sends.
        for i in range(100):
            alice.send(room, "chat", i)
            if i == 30:
                first = bob.get_socket_id()
                assert first is not None
                embedded_hub.drop(first)
            await anyio.sleep(0.002)
        await until(lambda: len(bob_sees.chats) >= 100 and len(bob_sees.resumes) == 2, 15)
        await anyio.sleep(0.2)
        assert bob_sees.chats == list(range(100))
        assert len(set(bob_sees.positions)) == 100
        assert bob_sees.resume_of(room).resumed is True
        assert bob_sees.resume_of(None).resumed is True
        # The member events are in the stream too: his own old connection left.
        assert ("leave", first) in bob_sees.members


async def test_a_drop_in_the_middle_of_a_replay_resumes_from_what_arrived(
    embedded_hub: HubThread,
) -> None:
    # Bob is away while alice sends; he comes back through a slow link, and the link is cut
    # again while his replay is still arriving. The next re-join offers the last position
    # he saw: the rest comes, nothing twice.
    room = unique("room")
    count = 300
    async with (
        FaultProxy(embedded_hub) as proxy,
        tether.RealtimeClient(embedded_hub.url, **FAST) as alice,
        tether.RealtimeClient(proxy.url, **FAST) as bob,
    ):
        alice_sees, bob_sees = Member(alice, room), Member(bob, room)
        await joined(alice, room)
        await joined(bob, room)
        proxy.refuse(True)
        await proxy.reset()
        for i in range(count):
            alice.send(room, "chat", {"i": i, "pad": "x" * 200})
        await until(lambda: len(alice_sees.chats) == count, 15)  # all in the history
        proxy.throttle(20_000, direction=Direction.TO_CLIENT)  # ~80 messages a second
        proxy.refuse(False)
        await until(lambda: len(bob_sees.chats) >= 20, 15)
        assert len(bob_sees.chats) < count  # cut mid-replay
        await proxy.reset()
        proxy.throttle(None)
        await until(lambda: len(bob_sees.chats) >= count, 20)
        await anyio.sleep(0.2)
        assert [chat["i"] for chat in bob_sees.chats] == list(range(count))
        assert len(set(bob_sees.positions)) == count
        assert bob_sees.resumes[-1].channel in (room, None)
        assert all(r.resumed for r in bob_sees.resumes), bob_sees.resumes


async def test_close_and_open_resume_the_channels_and_the_broadcasts(
    embedded_hub: HubThread, way: str
) -> None:
    room = unique("room")
    async with (
        tether.RealtimeClient(embedded_hub.url, **FAST) as alice,
        client(embedded_hub.url, way, **FAST) as bob,
    ):
        bob_sees = Member(bob, room)
        await joined(alice, room)
        await joined(bob, room)
        alice.send(room, "chat", "before")
        await until(lambda: bob_sees.chats == ["before"])
        bob.close()
        await until(lambda: not bob.is_connected())
        for i in range(5):
            alice.send(room, "chat", i)
        for i in range(3):
            alice.broadcast("news", i)
        async with tether.RealtimeClient(embedded_hub.url) as carol:
            await joined(carol, room)
            carol_sid = carol.get_socket_id()
        await anyio.sleep(0.2)
        bob.open()
        # The replay comes first, each join's answer (the resume) after it.
        await until(lambda: len(bob_sees.chats) == 6 and len(bob_sees.resumes) == 2, 15)
        assert bob_sees.chats == ["before", 0, 1, 2, 3, 4]
        assert bob_sees.news == [0, 1, 2]
        room_resume = bob_sees.resume_of(room)
        assert room_resume.resumed is True and room_resume.reason is None
        assert room_resume.replayed >= 5  # the chats, and carol's join and leave
        assert bob_sees.resume_of(None) == tether.StreamResumed(None, True, 3, None)
        assert ("join", carol_sid) in bob_sees.members
        assert ("leave", carol_sid) in bob_sees.members


async def test_more_missed_than_the_history_keeps_is_reported_trimmed() -> None:
    hub = hub_with(history=5)
    try:
        room = unique("room")
        async with (
            tether.RealtimeClient(hub.url, **FAST) as alice,
            tether.RealtimeClient(hub.url, **FAST) as bob,
        ):
            bob_sees, alice_sees = Member(bob, room), Member(alice, room)
            await joined(alice, room)
            await joined(bob, room)
            first = bob.get_socket_id()
            bob.close()
            # His leave is in the stream before the chats: the history holds the chats only.
            await until(lambda: ("leave", first) in alice_sees.members)
            for i in range(10):
                alice.send(room, "chat", i)
            await anyio.sleep(0.2)
            bob.open()
            await until(lambda: len(bob_sees.resumes) == 2 and len(bob_sees.chats) == 5, 15)
            assert bob_sees.chats == [5, 6, 7, 8, 9]  # what the history still had
            resume = bob_sees.resume_of(room)
            assert resume == tether.StreamResumed(room, False, 5, tether.ResumeReason.TRIMMED)
    finally:
        hub.stop()


async def test_older_than_the_history_keeps_is_reported_expired() -> None:
    hub = hub_with(history_ttl=0.5)
    try:
        room = unique("room")
        async with (
            tether.RealtimeClient(hub.url, **FAST) as alice,
            tether.RealtimeClient(hub.url, **FAST) as bob,
        ):
            bob_sees = Member(bob, room)
            await joined(alice, room)
            await joined(bob, room)
            bob.close()
            await until(lambda: not bob.is_connected())
            alice.send(room, "chat", "gone")
            await anyio.sleep(1.2)
            bob.open()
            await until(lambda: len(bob_sees.resumes) == 2, 15)
            assert bob_sees.chats == []
            resume = bob_sees.resume_of(room)
            assert (resume.resumed, resume.reason) == (False, tether.ResumeReason.EXPIRED)
    finally:
        hub.stop()


async def test_a_hub_that_restarted_without_redis_says_so() -> None:
    hub = hub_with()
    port = hub.port
    room = unique("room")
    try:
        async with tether.RealtimeClient(hub.url, **FAST) as bob:
            bob_sees = Member(bob, room)
            await joined(bob, room)
            hub.stop()
            hub = hub_with(port=port)
            await until(lambda: len(bob_sees.resumes) == 2, 15)
            resume = bob_sees.resume_of(room)
            assert (resume.resumed, resume.reason) == (False, tether.ResumeReason.RESTARTED)
    finally:
        hub.stop()


async def test_exactly_once_in_order_through_resets_black_holes_and_lost_acks(
    embedded_hub: HubThread,
) -> None:
    room = unique("room")
    dropped: list[tether.MessageDropped] = []
    async with (
        FaultProxy(embedded_hub) as proxy,
        tether.RealtimeClient(proxy.url, retries=8, ack_timeout=0.5, timeout=1.0, **FAST) as alice,
        tether.RealtimeClient(embedded_hub.url, **FAST) as bob,
    ):
        alice.on_buffer_overflow(dropped.append)
        bob_sees = Member(bob, room)
        await joined(alice, room)
        await joined(bob, room)
        for i in range(30):
            alice.send(room, "chat", i, echo=False)
        proxy.drop_next_ack(5)
        await proxy.reset()
        for i in range(30, 60):
            alice.send(room, "chat", i, echo=False)
        proxy.drop_next_ack(3)
        proxy.blackhole()
        await anyio.sleep(0.3)
        proxy.blackhole(False)
        for i in range(60, 90):
            alice.send(room, "chat", i, echo=False)
        await until(lambda: len(bob_sees.chats) >= 90, 30)
        await anyio.sleep(0.3)
        assert bob_sees.chats == list(range(90))  # each once, in the sender's order
        assert dropped == []


async def test_a_repeated_message_id_is_delivered_once_and_answered_again(
    embedded_hub: HubThread,
) -> None:
    room = unique("room")
    identity = {"tether": {"client": "repeat-test-client"}}
    async with connected(embedded_hub, identity) as sender, connected(embedded_hub) as member:
        assert await member.call("join", {"channel": room, "echo": False}) == []
        await sender.call("join", {"channel": room, "echo": False})
        await member.sync()
        member.events.clear()  # the sender's join
        message = {"channel": room, "eventName": "chat", "message": "once", "id": 7}
        assert await sender.call("message", message) == []
        assert await sender.call("message", message) == []  # a retry: the same answer
        assert await sender.call("message", {**message, "id": 6}) == []  # older: a repeat
        await sender.call("message", {**message, "message": "next", "id": 8})
        await member.expect("chat", {"channel": room, "message": "once"})
        await member.expect("chat", {"channel": room, "message": "next"})
        await member.expect_silence()
        [answer] = await sender.call("message", {**message, "id": 0})
        assert "id must be a positive integer" in answer["error"]


async def test_positions_and_answers_on_the_wire(embedded_hub: HubThread) -> None:
    room = unique("room")
    identity = {"tether": {"client": "wire-test-client"}}
    async with connected(embedded_hub, identity) as client:
        client.keep_positions = True
        [answer] = await client.call("join", {"channel": room, "echo": True})
        assert set(answer) == {"pos"} and answer["pos"].startswith("m:")
        name, [payload] = await client.next_event()
        assert name == "hub:resume"  # a first CONNECT: the broadcasts' position, nothing more
        assert set(payload) == {"channel", "pos"} and payload["channel"] is None
        name, [payload] = await client.next_event()
        assert (name, payload["channel"]) == ("channel:join", room)
        [again] = await client.call("join", {"channel": room, "since": "m:0:1"})
        assert set(again) == {"pos"}  # already a member: nothing to resume
        await client.call("leave", {"channel": room, "echo": False})
        [resumed] = await client.call("join", {"channel": room, "since": "m:other:1"})
        assert (resumed["resumed"], resumed["reason"]) == (False, "hub restarted")
        await client.call("leave", {"channel": room, "echo": False})
        [odd] = await client.call("join", {"channel": room, "since": "nonsense"})
        assert (odd["resumed"], odd["reason"]) == (False, "unknown position")
        [bad] = await client.call("join", {"channel": room, "since": 5})
        assert "since must be a non-empty string" in bad["error"]


async def test_with_history_off_nothing_has_a_position() -> None:
    hub = hub_with(history=0)
    try:
        room = unique("room")
        async with connected(hub, {"tether": {"client": "off-test-client"}}) as client:
            client.keep_positions = True
            assert await client.call("join", {"channel": room, "echo": True}) == []
            name, [payload] = await client.next_event()
            assert name == "channel:join" and "pos" not in payload
            await client.call("leave", {"channel": room, "echo": False})
            [answer] = await client.call("join", {"channel": room, "since": "m:x:1"})
            assert (answer["resumed"], answer["reason"]) == (False, "history off")
    finally:
        hub.stop()


# ------------------------------------------------------------------------------- Redis


@pytest.mark.redis
async def test_with_redis_a_member_resumes_on_another_process_after_its_hub_died(
    redis_server: RedisServer, hub_tmp: Path
) -> None:
    prefix = unique("continuity") + ":"
    hub_a = start_node(redis_server, prefix, hub_tmp)
    hub_b = start_node(redis_server, prefix, hub_tmp)
    room = unique("room")
    try:
        async with (
            FaultProxy(hub_a) as proxy,
            tether.RealtimeClient(hub_b.url, **FAST) as alice,
            tether.RealtimeClient(proxy.url, **FAST) as bob,
        ):
            bob_sees = Member(bob, room)
            await joined(alice, room)
            await joined(bob, room)
            alice.send(room, "chat", "before")
            alice.broadcast("news", "before")
            await until(lambda: bob_sees.chats == ["before"] and bob_sees.news == ["before"])
            # Bob's hub process dies; new connections go to the other one.
            proxy.upstream_host, proxy.upstream_port = hub_b.host, hub_b.port
            hub_a.kill()
            for i in range(20):
                alice.send(room, "chat", i)
                alice.broadcast("news", i)
                await anyio.sleep(0.01)
            await until(
                lambda: (
                    len(bob_sees.chats) == 21
                    and len(bob_sees.news) == 21
                    and len(bob_sees.resumes) == 2
                ),
                30,
            )
            await anyio.sleep(0.3)
            assert bob_sees.chats == ["before", *range(20)]
            assert bob_sees.news == ["before", *range(20)]
            assert bob_sees.resume_of(room).resumed is True
            assert bob_sees.resume_of(None).resumed is True
    finally:
        hub_a.kill()
        assert hub_b.stop() == 0, hub_b.log()


@pytest.mark.redis
async def test_with_redis_the_history_survives_a_restart_of_every_hub_process(
    redis_server: RedisServer, hub_tmp: Path
) -> None:
    prefix = unique("restart") + ":"
    hub = start_node(redis_server, prefix, hub_tmp)
    room = unique("room")
    try:
        async with FaultProxy(hub) as proxy, tether.RealtimeClient(proxy.url, **FAST) as bob:
            bob_sees = Member(bob, room)
            await joined(bob, room)
            async with tether.RealtimeClient(hub.url) as alice:
                await joined(alice, room)
                alice.send(room, "chat", 1)
                await until(lambda: bob_sees.chats == [1])
                bob.close()
                await until(lambda: not bob.is_connected())
                alice.send(room, "chat", 2)
                await anyio.sleep(0.2)
            assert hub.stop() == 0, hub.log()
            hub = start_node(redis_server, prefix, hub_tmp)
            proxy.upstream_host, proxy.upstream_port = hub.host, hub.port
            bob.open()
            await until(lambda: len(bob_sees.resumes) == 2, 15)
            assert bob_sees.chats == [1, 2]
            assert bob_sees.resume_of(room).resumed is True
    finally:
        hub.kill()


async def test_concurrent_senders_reach_a_member_in_position_order(
    embedded_hub: HubThread,
) -> None:
    # Positions only grow within a stream, and a member's last seen position is where it
    # resumes: it must see a stream in position order whoever sends (specs/delivery.md §4.6).
    room = unique("room")
    async with connected(embedded_hub) as member:
        member.keep_positions = True
        assert await member.call("join", {"channel": room, "echo": False}) == []
        async with anyio.create_task_group() as group:
            for n in range(5):
                group.start_soon(_send_many, embedded_hub, room, n)
        seen: list[int] = []
        with anyio.fail_after(20):
            while len(seen) < 250:
                name, _ = await member.next_event()
                position = member.positions[-1]
                if name == "chat" and position is not None:
                    seen.append(int(position.rsplit(":", 1)[1]))
        assert seen == sorted(seen) and len(set(seen)) == 250


async def _send_many(hub: HubThread, room: str, n: int) -> None:
    async with connected(hub, {"tether": {"client": f"order-sender-{n}"}}) as sender:
        for i in range(50):
            await sender.emit(
                "message", {"channel": room, "eventName": "chat", "message": i, "id": i + 1}
            )
        await sender.sync()


@pytest.mark.redis
async def test_with_redis_a_resume_says_what_it_could_not_replay(
    redis_server: RedisServer, hub_tmp: Path
) -> None:
    # RedisHistory decides the reasons itself (entry ids, trim and expiry marks in Redis):
    # the same answers as the memory history's, from a real Redis.
    hub = HubProcess.start(
        "--redis",
        redis_server.url,
        "--redis-prefix",
        unique("reasons") + ":",
        "--history",
        "3",
        "--history-ttl",
        "1",
        tmp=hub_tmp,
    )
    room = unique("room")
    try:
        async with (
            connected(hub, {"tether": {"client": "redis-reasons"}}) as member,
            connected(hub) as sender,
        ):
            member.keep_positions = True
            [first] = await member.call("join", {"channel": room, "echo": False})
            assert first["pos"].startswith("r:")
            await member.call("leave", {"channel": room, "echo": False})
            for i in range(5):
                await sender.call("message", {"channel": room, "eventName": "chat", "message": i})
            member.events.clear()
            [trimmed] = await member.call("join", {"channel": room, "since": first["pos"]})
            assert (trimmed["resumed"], trimmed["reason"], trimmed["replayed"]) == (
                False,
                "history trimmed",
                3,
            )
            chats = [args[0]["message"] for name, args in member.events if name == "chat"]
            assert chats == [2, 3, 4]  # what the history still had, in order
            await member.call("leave", {"channel": room, "echo": False})
            await sender.call("message", {"channel": room, "eventName": "chat", "message": 5})
            await anyio.sleep(1.3)
            [expired] = await member.call("join", {"channel": room, "since": trimmed["pos"]})
            assert (expired["resumed"], expired["reason"]) == (False, "history expired")
            await member.call("leave", {"channel": room, "echo": False})
            epoch = first["pos"].split(":")[1]
            for since, reason in [
                ("r:another:1-0", "hub restarted"),
                ("nonsense", "unknown position"),
                (f"r:{epoch}:99999999999999-0", "unknown position"),
            ]:
                [answer] = await member.call("join", {"channel": room, "since": since})
                assert (answer["resumed"], answer["reason"]) == (False, reason), since
                await member.call("leave", {"channel": room, "echo": False})
    finally:
        assert hub.stop() == 0, hub.log()
