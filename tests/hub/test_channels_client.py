"""tether's channel API (contract 2.4, 2.5) end to end: the tether client against the hub.

Every test runs on asyncio and trio; the ones that move channel state over the wire or
restore it after a reconnect also run every way of connecting (``way``: WebSocket on wsproto
and websockets, polling only, polling then the upgrade), the others (call-site checks, the
hub's refusal, its echo flags and user events, the same whatever carries them) on the
default. The hub is real: a ``tether serve`` subprocess (the
``hub`` fixture), an embedded hub in a thread where a test must cut one client's transport
(``HubThread.drop``), and two hub processes sharing a real redis-server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import tether
from integration.support import client
from tether.hub import HubConfig, HubThread, start_hub_in_thread

from .conftest import HubProcess, RedisServer, unique
from .test_hub_redis import start_node

pytestmark = pytest.mark.anyio

FAST: dict[str, Any] = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.2}


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)


def without_position(args: tuple[Any, ...]) -> Any:
    """The payload as before continuity: the hub's ``pos`` is checked, then left out (the
    continuity tests look at positions)."""
    payload = args[0] if args else None
    if isinstance(payload, dict) and "pos" in payload:
        assert isinstance(payload["pos"], str)
        payload = {key: value for key, value in payload.items() if key != "pos"}
    return payload


class Inbox:
    """Everything one client receives, as (event, payload) in arrival order."""

    def __init__(self, rt: tether.RealtimeClient) -> None:
        self.items: list[tuple[str, Any]] = []
        rt.on_any(lambda event, *args: self.items.append((event, without_position(args))))

    def of(self, event: str) -> list[Any]:
        return [payload for name, payload in self.items if name == event]

    def members(self, event: str, channel: str) -> list[str]:
        return [p["message"]["id"] for p in self.of(event) if p["channel"] == channel]

    def messages(self, event: str) -> list[Any]:
        return [p["message"] for p in self.of(event)]


@pytest.fixture
def embedded_hub() -> Iterator[HubThread]:
    hub = start_hub_in_thread(HubConfig(port=0))
    yield hub
    hub.stop()


async def test_join_send_broadcast_with_and_without_echo(hub: HubProcess, way: str) -> None:
    room = unique("room")
    async with (
        client(hub.url, way) as alice,
        client(hub.url, way) as bob,
        client(hub.url, way) as carol,
    ):
        a, b, c = Inbox(alice), Inbox(bob), Inbox(carol)
        for rt in (alice, bob, carol):
            await rt.wait_connected(10)
        alice.join(room)
        await until(lambda: a.members("channel:join", room) == [alice.get_socket_id()])
        bob.join(room, echo=False)
        await until(lambda: bob.get_socket_id() in a.members("channel:join", room))
        bob.send(room, "chat", {"text": "to the room"})
        bob.send(room, "chat", {"text": "not to myself"}, echo=False)
        bob.broadcast("news", "to everyone")
        await until(lambda: len(a.of("chat")) == 2 and len(c.of("news")) == 1)
        await until(lambda: len(b.of("news")) == 1)
        assert a.of("chat") == [
            {"channel": room, "message": {"text": "to the room"}},
            {"channel": room, "message": {"text": "not to myself"}},
        ]
        assert b.messages("chat") == [{"text": "to the room"}]  # echo=False honoured
        assert c.of("chat") == []  # carol is not in the room
        assert c.of("news") == [{"channel": None, "message": "to everyone"}]
        assert b.members("channel:join", room) == []  # bob joined with echo=False
        bob.leave(room)
        await until(lambda: bob.get_socket_id() in a.members("channel:leave", room))
        await until(lambda: bob.get_socket_id() in b.members("channel:leave", room))


async def test_profiles_updates_and_members(hub: HubProcess, way: str) -> None:
    room = unique("room")
    async with client(hub.url, way) as alice, client(hub.url, way) as bob:
        a = Inbox(alice)
        await alice.wait_connected(10)
        await bob.wait_connected(10)
        alice.update_profile({"name": "alice"})
        alice.join(room)
        await until(lambda: a.members("channel:join", room) == [alice.get_socket_id()])
        bob.join(room)
        await until(lambda: bob.get_socket_id() in a.members("channel:join", room))
        bob.update_profile({"name": "bob", "status": "busy"})
        await until(lambda: bool(a.of("channel:update")))
        assert a.of("channel:update") == [
            {
                "channel": room,
                "message": {"id": bob.get_socket_id(), "data": {"name": "bob", "status": "busy"}},
            }
        ]
        members = await alice.get_members(room)
        assert {(m.id, str((m.data or {}).get("name"))) for m in members} == {
            (alice.get_socket_id(), "alice"),
            (bob.get_socket_id(), "bob"),
        }
        assert all(isinstance(m, tether.Member) for m in members)
        # A member that disconnects is announced with channel:leave.
        bob_sid = bob.get_socket_id()
        await bob.aclose()
        await until(lambda: bob_sid in a.members("channel:leave", room))
        assert [m.id for m in await alice.get_members(room)] == [alice.get_socket_id()]


async def test_offline_calls_keep_their_echo_flags_and_join_is_sent_once(
    hub: HubProcess, way: str
) -> None:
    room = unique("room")
    async with client(hub.url, way) as watcher:
        w = Inbox(watcher)
        await watcher.wait_connected(10)
        watcher.join(room)
        await until(lambda: w.members("channel:join", room) == [watcher.get_socket_id()])
        async with client(hub.url, way, auto_connect=False) as late:
            own = Inbox(late)
            # All buffered: nothing is connected yet.
            late.join(room, echo=False)
            late.join(room, echo=False)  # the same join twice while offline: still one
            late.update_profile({"name": "late"}, echo=False)
            late.send(room, "chat", 1, echo=False)
            late.send(room, "chat", 2, echo=True)
            late.broadcast("news", 3, echo=False)
            assert late.buffered == 3
            late.open()
            await until(lambda: len(w.of("chat")) == 2 and len(w.of("news")) == 1)
            await until(lambda: len(own.of("chat")) == 1)
            assert w.members("channel:join", room) == [
                watcher.get_socket_id(),
                late.get_socket_id(),
            ]
            assert w.messages("channel:update") == [
                {"id": late.get_socket_id(), "data": {"name": "late"}}
            ]
            assert w.messages("chat") == [1, 2]
            assert own.messages("chat") == [2]  # only the echo=True message came back
            assert own.of("channel:join") == [] and own.of("channel:update") == []
            assert own.of("news") == []


async def test_reconnect_rejoins_restores_profile_then_flushes(
    embedded_hub: HubThread, way: str
) -> None:
    room = unique("room")
    async with (
        client(embedded_hub.url, way) as alice,
        client(embedded_hub.url, way, **FAST) as bob,
    ):
        a, b = Inbox(alice), Inbox(bob)
        await alice.wait_connected(10)
        await bob.wait_connected(10)
        alice.join(room)
        await until(lambda: a.members("channel:join", room) == [alice.get_socket_id()])
        bob.join(room, echo=False)
        bob.update_profile({"name": "bob"})
        await until(lambda: bob.get_socket_id() in a.members("channel:join", room))
        first = bob.get_socket_id()
        assert first is not None
        cut = anyio.Event()

        def offline(reason: str) -> None:
            for i in range(3):
                bob.send(room, "chat", i)
            cut.set()

        bob.on_disconnect(offline)
        embedded_hub.drop(first)
        await cut.wait()
        await until(lambda: len(a.of("chat")) == 3)
        second = bob.get_socket_id()
        assert second is not None and second != first
        # Alice saw, in this order: bob's new join, his profile, then his offline messages.
        after = [(name, p) for name, p in a.items if name != "channel:leave"]
        tail = after[-5:]
        assert tail[0] == (
            "channel:join",
            {"channel": room, "message": {"id": second, "data": None}},
        )
        assert tail[1] == (
            "channel:update",
            {"channel": room, "message": {"id": second, "data": {"name": "bob"}}},
        )
        assert [p["message"] for _, p in tail[2:]] == [0, 1, 2]
        # bob re-joined with his own echo flag (False): no join of his own came back.
        assert b.members("channel:join", room) == []
        assert {m.id for m in await alice.get_members(room)} == {alice.get_socket_id(), second}


async def test_auto_join_channels_off_and_buffer_messages_off(
    embedded_hub: HubThread, way: str
) -> None:
    room = unique("room")
    dropped: list[Any] = []
    async with (
        client(embedded_hub.url, way) as alice,
        client(
            embedded_hub.url, way, auto_join_channels=False, buffer_messages=False, **FAST
        ) as bob,
    ):
        a = Inbox(alice)
        bob.on_buffer_overflow(dropped.append)
        await alice.wait_connected(10)
        await bob.wait_connected(10)
        alice.join(room)
        await until(lambda: a.members("channel:join", room) == [alice.get_socket_id()])
        bob.join(room)
        await until(lambda: bob.get_socket_id() in a.members("channel:join", room))
        first = bob.get_socket_id()
        assert first is not None
        reconnected = anyio.Event()
        bob.on_reconnect(lambda n: reconnected.set())
        lost = anyio.Event()

        def offline(reason: str) -> None:
            bob.send(room, "chat", "lost")  # buffer_messages=False: dropped, and reported
            lost.set()

        bob.on_disconnect(offline)
        embedded_hub.drop(first)
        await lost.wait()
        await reconnected.wait()
        await until(lambda: bool(dropped))
        assert dropped[0].event == "message"
        assert dropped[0].reason == "not connected"
        members = {m.id for m in await alice.get_members(room)}
        assert members == {alice.get_socket_id()}  # no automatic re-join
        assert a.of("chat") == []


async def test_user_events_reach_on_user_event(hub: HubProcess) -> None:
    seen: list[tuple[str, Any]] = []
    async with tether.RealtimeClient(hub.url) as rt:
        rt.on_user_event(lambda name, session: seen.append((name, without_position((session,)))))
        chats: list[Any] = []
        rt.on("chat", chats.append)
        await rt.wait_connected(10)
        rt.broadcast("user:signin", {"user": "ada"})
        rt.broadcast("chat", "not a user event")
        await until(lambda: bool(chats))  # the later event is in: the user event before it too
    assert seen == [("user:signin", {"channel": None, "message": {"user": "ada"}})]


async def test_token_hub_refusal_and_acceptance(token_hub: HubProcess) -> None:
    errors: list[tether.ConnectError] = []
    async with tether.RealtimeClient(token_hub.url, auth={"token": "wrong"}, **FAST) as rt:
        rt.on_error(errors.append)
        with pytest.raises(tether.ConnectError) as info:
            await rt.wait_connected(10)
        assert info.value.data == {"reason": "invalid token"}
        await until(lambda: bool(errors))
        assert errors[0].message == "unauthorized"
        assert rt.state is tether.State.CLOSED
    token = token_hub.args[token_hub.args.index("--token") + 1]
    async with tether.RealtimeClient(token_hub.url, auth=lambda: {"token": token}) as rt:
        await rt.wait_connected(10)


async def test_bad_channel_calls_raise_at_the_call_site(hub: HubProcess) -> None:
    async with tether.RealtimeClient(hub.url) as rt:
        with pytest.raises(ValueError, match="channel"):
            rt.join("")
        with pytest.raises(TypeError):
            rt.send("room", "chat", {1, 2})
        with pytest.raises(ValueError, match="reserved"):
            rt.send("room", "disconnect", "x")
        with pytest.raises(TypeError):
            rt.update_profile(object())
        await rt.wait_connected(10)
        # The hub refuses a name over its limit; the client hears about it, nothing breaks.
        with pytest.raises(tether.TetherError, match="members"):
            await rt.get_members("x" * 1000)
        assert rt.is_connected()


# --------------------------------------------------------------------------- several hubs


@pytest.fixture(scope="module")
def redis(hub_tmp: Path) -> Iterator[RedisServer]:
    server = RedisServer.start(hub_tmp)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def two_hubs(redis: RedisServer, hub_tmp: Path) -> Iterator[list[HubProcess]]:
    prefix = f"client-{unique('p')}:"
    nodes = [start_node(redis, prefix, hub_tmp) for _ in range(2)]
    yield nodes
    for node in nodes:
        assert node.stop() == 0, node.log()


@pytest.mark.redis
async def test_clients_on_two_hubs_share_one_channel(two_hubs: list[HubProcess], way: str) -> None:
    room = unique("room")
    first, second = two_hubs
    assert first.port != second.port
    async with (
        client(first.url, way) as alice,
        client(second.url, way) as bob,
    ):
        a, b = Inbox(alice), Inbox(bob)
        await alice.wait_connected(10)
        await bob.wait_connected(10)
        alice.update_profile({"name": "alice"})
        alice.join(room)
        await until(lambda: a.members("channel:join", room) == [alice.get_socket_id()])
        bob.join(room)
        await until(lambda: bob.get_socket_id() in a.members("channel:join", room))
        bob.update_profile({"name": "bob"})
        await until(lambda: bool(a.of("channel:update")))
        alice.send(room, "chat", "from hub 1")
        bob.send(room, "chat", "from hub 2")
        await until(lambda: len(a.of("chat")) == 2 and len(b.of("chat")) == 2)
        assert sorted(a.messages("chat")) == ["from hub 1", "from hub 2"]
        assert sorted(b.messages("chat")) == ["from hub 1", "from hub 2"]
        for rt in (alice, bob):
            members = await rt.get_members(room)
            assert {(m.id, (m.data or {}).get("name")) for m in members} == {
                (alice.get_socket_id(), "alice"),
                (bob.get_socket_id(), "bob"),
            }
        bob_sid = bob.get_socket_id()
        bob.leave(room)
        await until(lambda: bob_sid in a.members("channel:leave", room))
        assert [m.id for m in await alice.get_members(room)] == [alice.get_socket_id()]


async def test_echo_messages_false_is_the_default_flag_and_echo_true_overrides_it(
    hub: HubProcess,
) -> None:
    room = unique("room")
    async with tether.RealtimeClient(hub.url, echo_messages=False) as quiet:
        own = Inbox(quiet)
        await quiet.wait_connected(10)
        quiet.join(room)  # no echo: its own join does not come back
        quiet.send(room, "chat", "silent")
        quiet.send(room, "chat", "loud", echo=True)
        await until(lambda: len(own.of("chat")) == 1)
        members = await quiet.get_members(room)  # a round trip: everything before it is done
        assert [m.id for m in members] == [quiet.get_socket_id()]
        assert own.messages("chat") == ["loud"]
        assert own.of("channel:join") == []


async def test_get_members_pages_a_list_larger_than_one_message(hub: HubProcess) -> None:
    # Two profiles of 600 KB, each under the hub's limit: the whole list does not fit one
    # message the client accepts, so get_members asks for pages (it used to drop the
    # connection with "transport error").
    room = unique("room")
    profile = {"blob": "x" * 600_000}
    reasons: list[str] = []
    async with (
        tether.RealtimeClient(hub.url) as alice,
        tether.RealtimeClient(hub.url) as bob,
    ):
        alice.on_disconnect(reasons.append)
        await alice.wait_connected(10)
        await bob.wait_connected(10)
        for rt in (alice, bob):
            rt.update_profile(profile)
            rt.join(room)
        members: list[tether.Member] = []
        with anyio.fail_after(20):
            while len(members) < 2:
                members = await alice.get_members(room)
        assert {m.id for m in members} == {alice.get_socket_id(), bob.get_socket_id()}
        assert all(m.data == profile and not m.oversized for m in members)
        assert alice.is_connected() and reasons == []


@pytest.mark.parametrize("retries", [0, 2])
async def test_a_refused_send_or_join_is_told_as_the_hubs_error_event(
    way: str, retries: int
) -> None:
    # Without an ack the hub tells a refusal with its "error" event; with retries (a send
    # then asks for an ack) and for every join (the core asks for the channel's position)
    # it answers in the ack instead. The user hears the same either way.
    hub = await anyio.to_thread.run_sync(
        lambda: start_hub_in_thread(HubConfig(port=0, max_payload=2048, max_channels_per_client=1))
    )
    try:
        async with client(hub.url, way, retries=retries) as alice:
            errors: list[Any] = []
            alice.on("error", errors.append)
            await alice.wait_connected(10)
            first, second = unique("room"), unique("room")
            alice.join(first)
            alice.join(second)  # over the limit of one channel
            # Split into frames below the limit by binary attachments, too big in total.
            alice.send(first, "chat", [b"x" * 1500, b"y" * 1500])
            await until(lambda: len(errors) == 2)
            assert errors == [
                {"event": "join", "message": "too many channels (at most 1 per client)"},
                {"event": "message", "message": "message larger than 2048 bytes"},
            ]
            assert alice.is_connected()
    finally:
        await anyio.to_thread.run_sync(hub.stop)
