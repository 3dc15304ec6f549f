"""Driver behaviour over the in-memory transport, on asyncio and trio."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import tether
from tether.transport import MemoryConnector

from .helpers import ScriptedServer, wait_until

pytestmark = pytest.mark.anyio

FAST = {"reconnection_delay": 0.01, "reconnection_delay_max": 0.02}


def client(connector: MemoryConnector, **options: Any) -> tether.RealtimeClient:
    return tether.RealtimeClient("http://example.test", transport=connector, **options)


async def test_transport_close_reconnects_with_new_sid_and_fresh_auth() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    tokens = iter(["a", "b", "c"])
    seen: list[object] = []
    async with client(connector, auth=lambda: {"token": next(tokens)}, **FAST) as rt:
        # Listeners run in the dispatcher, a moment after the fact: they see the client's
        # state as it is then, so the log records the facts only.
        rt.on_connect(lambda: seen.append(("connect",)))
        rt.on_disconnect(lambda reason: seen.append(("disconnect", reason)))
        rt.on_reconnect_attempt(lambda n: seen.append(("attempt", n)))
        rt.on_reconnect(lambda n: seen.append(("reconnect", n)))
        peer, auth = await server.accept(sid="S1")
        assert auth == {"token": "a"}
        await rt.wait_connected(5)
        peer.close()
        peer2, auth2 = await server.accept(sid="S2")
        assert auth2 == {"token": "b"}
        # The client's identity for a hub is the same across reconnects (delivery.md §4.1).
        first, second = server.identities
        assert first == second and len(first["client"]) == 22
        await wait_until(lambda: ("reconnect", 1) in seen)
        assert rt.get_socket_id() == "S2"
    assert seen == [
        ("connect",),
        ("disconnect", "transport close"),
        ("attempt", 1),
        ("connect",),
        ("reconnect", 1),
        ("disconnect", "io client disconnect"),
    ]


async def test_server_disconnect_does_not_reconnect() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    reasons: list[str] = []
    async with client(connector, **FAST) as rt:
        rt.on_disconnect(reasons.append)
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        await peer.send("41")
        await wait_until(lambda: rt.state is tether.State.CLOSED)
        await anyio.sleep(0.1)
        assert len(connector.attempts) == 1
    assert reasons == ["io server disconnect"]


async def test_refusal_raises_from_wait_connected_with_data() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    errors: list[tether.ConnectError] = []
    async with client(connector, **FAST) as rt:
        rt.on_error(errors.append)
        peer, _ = await server.accept(reply=False)
        await peer.send('44{"message":"unauthorized","data":{"reason":"bad token"}}')
        with pytest.raises(tether.ConnectError) as info:
            await rt.wait_connected(5)
        assert info.value.data == {"reason": "bad token"}
        assert rt.state is tether.State.CLOSED
    assert len(errors) == 1 and errors[0].message == "unauthorized"
    assert len(connector.attempts) == 1


async def test_reconnect_failed_after_attempts() -> None:
    connector = MemoryConnector()
    connector.fail_next(3)
    events: list[object] = []
    async with client(connector, reconnection_attempts=2, **FAST) as rt:
        rt.on_error(lambda e: events.append("error"))
        rt.on_reconnect_attempt(lambda n: events.append(n))
        rt.on_reconnect_failed(lambda: events.append("failed"))
        with pytest.raises(tether.ConnectError):
            await rt.wait_connected(5)
        await wait_until(lambda: "failed" in events)
        assert rt.state is tether.State.CLOSED
    assert events == ["error", 1, "error", 2, "error", "failed"]


async def test_call_ack_timeout_and_disconnected() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector, **FAST) as rt:
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        async with anyio.create_task_group() as tg:
            results: list[object] = []

            async def ask() -> None:
                results.append(await rt.call("sum", 1, 2, timeout=5))

            tg.start_soon(ask)
            assert await peer.receive() == '420["sum",1,2]'
            await peer.send("430[3]")
        assert results == [3]
        with pytest.raises(tether.AckTimeout):
            await rt.call("never", timeout=0.05)
        assert await peer.receive() == '421["never"]'

        async def lose() -> None:
            assert await peer.receive() == '422["lost"]'
            peer.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(lose)
            with pytest.raises(tether.Disconnected):
                await rt.call("lost", timeout=5)


async def test_server_event_with_ack_gets_listener_return_value() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector) as rt:

        @rt.on("question")
        async def answer(x: int) -> int:
            await anyio.sleep(0)
            return x * 2

        peer, _ = await server.accept()
        await peer.send('427["question",21]')
        assert await peer.receive() == "437[42]"


async def test_slow_listener_does_not_delay_pong_and_errors_are_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    release = anyio.Event()
    got: list[int] = []
    async with client(connector) as rt:

        @rt.on("slow")
        async def slow(n: int) -> None:
            await release.wait()
            got.append(n)

        @rt.on("boom")
        def boom() -> None:
            raise RuntimeError("listener bug")

        peer, _ = await server.accept()
        await rt.wait_connected(5)
        with caplog.at_level(logging.ERROR, logger="tether"):
            await peer.send('42["boom"]')
            await peer.send('42["slow",1]')
            await peer.send('42["slow",2]')
            await peer.send("2")
            with anyio.fail_after(2):
                assert await peer.receive() == "3"  # answered while the listener blocks
            release.set()
            await wait_until(lambda: got == [1, 2])
        assert rt.is_connected()
        assert "listener bug" in caplog.text


async def test_binary_both_ways() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    got: list[object] = []
    async with client(connector) as rt:
        rt.on("file", lambda meta, blob: got.append((meta, blob)))
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        rt.emit("upload", {"name": "a"}, b"\x00\x01")
        assert await peer.receive() == '451-["upload",{"name":"a"},{"_placeholder":true,"num":0}]'
        assert await peer.receive() == b"\x00\x01"
        await peer.send('451-["file",{"n":1},{"_placeholder":true,"num":0}]')
        await peer.send(b"\xff")
        await wait_until(lambda: bool(got))
    assert got == [({"n": 1}, b"\xff")]


async def test_offline_emits_flushed_in_order_after_connect() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector, auto_connect=False) as rt:
        rt.emit("a", 1)
        rt.join("room", echo=False)
        rt.update_profile({"name": "bo"})
        rt.send("room", "chat", "hi")
        rt.open()
        peer, _ = await server.accept()
        frames = [await peer.receive() for _ in range(4)]
    assert frames == [
        # A join asks for an ack: a hub answers with the channel's position.
        '420["join",{"channel":"room","echo":false}]',
        '42["update",{"data":{"name":"bo"},"echo":true}]',
        '42["a",1]',
        '42["message",{"channel":"room","eventName":"chat","message":"hi","echo":true,"id":1}]',
    ]


async def test_events_iterator_and_overflow() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector) as rt:
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        received: list[tuple[str, tuple[Any, ...]]] = []

        ticks = rt.events("tick")  # subscribed from here on, before any event is sent

        async def consume() -> None:
            async for item in ticks:
                received.append(item)
                if len(received) == 2:
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await peer.send('42["other"]')
            await peer.send('42["tick",1]')
            await peer.send('42["tick",2]')
        assert received == [("tick", (1,)), ("tick", (2,))]

        async with rt.events(max_queued=2) as stream, rt.events("last") as last:
            for _ in range(3):
                await peer.send('42["x"]')
            await peer.send('42["last"]')
            # Each event is pushed to every stream in one step: once "last" reached its own
            # stream, the other one has seen all four.
            assert await last.__anext__() == ("last", ())
            assert await stream.__anext__() == ("x", ())
            assert await stream.__anext__() == ("x", ())
            with pytest.raises(tether.EventsOverflow):
                await stream.__anext__()


async def test_close_stays_closed_and_open_reconnects() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector, **FAST) as rt:
        await server.accept()
        await rt.wait_connected(5)
        rt.close()
        rt.close()
        await anyio.sleep(0.1)
        assert len(connector.attempts) == 1 and rt.state is tether.State.CLOSED
        rt.open()
        await server.accept(sid="again")
        await rt.wait_connected(5)
        assert rt.get_socket_id() == "again"


async def test_attempt_timeout_then_retry() -> None:
    connector = MemoryConnector()
    connector.hang_next()
    server = ScriptedServer(connector)
    errors: list[str] = []
    async with client(connector, timeout=0.5, **FAST) as rt:
        rt.on_error(lambda e: errors.append(e.message))
        await server.accept()
        await rt.wait_connected(5)
    assert errors == ["timeout"]


async def test_ping_timeout_reconnects() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    reasons: list[str] = []
    async with client(connector, **FAST) as rt:
        rt.on_disconnect(reasons.append)
        await server.accept(ping_interval=0, ping_timeout=100)  # 1 s floor + 0.1 s
        await rt.wait_connected(5)
        await server.accept()
        await wait_until(lambda: len(reasons) == 1)
    assert reasons[0] == "ping timeout"


async def test_bad_options_raise_at_construction() -> None:
    with pytest.raises(ValueError):
        tether.RealtimeClient("ftp://x")
    with pytest.raises(ValueError):
        tether.RealtimeClient("http://x", reconnection_delay=-1)
    with pytest.raises(ValueError):
        tether.RealtimeClient("http://x", randomization_factor=2)
    with pytest.raises(TypeError):
        tether.RealtimeClient("http://x", auth="secret")  # type: ignore[arg-type]
    rt = tether.RealtimeClient("http://x?token=secret", query={"k": "secret2"})
    assert "secret" not in repr(rt)
    with pytest.raises(ValueError):
        rt.emit("disconnect")
    with pytest.raises(TypeError):
        rt.emit("x", object())


async def test_once_off_listeners_and_off_any() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    got: list[object] = []

    def every(x: int) -> None:
        got.append(("every", x))

    def first(x: int) -> None:
        got.append(("once", x))

    def catch_all(name: str, *args: object) -> None:
        got.append(("any", name))

    async with client(connector) as rt:
        assert rt.on("n", every) is every
        rt.once("n", first)
        rt.on_any(catch_all)
        assert rt.listeners("n") == [every, first]
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        await peer.send('42["n",1]')
        await wait_until(lambda: ("every", 1) in got)
        assert rt.listeners("n") == [every]  # the once-listener is gone
        rt.off_any(catch_all)
        rt.off("n", every)
        assert rt.listeners("n") == []
        rt.on("n", every)
        rt.off("n")
        rt.on("n", every)
        await peer.send('42["n",2]')
        await wait_until(lambda: ("every", 2) in got)
    assert got == [("any", "n"), ("every", 1), ("once", 1), ("every", 2)]


async def test_leaving_async_with_leaves_no_task_and_no_open_transport() -> None:
    import sniffio

    def task_count() -> int:
        if sniffio.current_async_library() == "asyncio":
            import asyncio

            return len(asyncio.all_tasks())
        import trio

        # The client's task group is a nursery of this task while it is entered.
        return len(trio.lowlevel.current_task().child_nurseries)

    connector = MemoryConnector()
    server = ScriptedServer(connector)
    before = task_count()
    async with client(connector) as rt:
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        assert task_count() > before
    assert task_count() == before
    assert rt.state is tether.State.CLOSED
    assert await peer.receive() == "41"  # the client said goodbye to the namespace ...
    with anyio.fail_after(2), pytest.raises(tether.transport.TransportError):
        await peer.receive()  # ... and closed the connection


class GatedConnector:
    """A MemoryConnector whose transports' writes wait at a gate, then may fail."""

    def __init__(self) -> None:
        self.inner = MemoryConnector()
        self.gate = anyio.Event()
        self.gated = False
        self.fail_at_gate = False
        self.waiting = anyio.Event()

    async def connect(self, url: str, **kwargs: Any) -> Any:
        transport = await self.inner.connect(url, **kwargs)
        original = transport.send_many
        outer = self

        async def send_many(messages: Any) -> None:
            if outer.gated:
                outer.waiting.set()
                await outer.gate.wait()
                if outer.fail_at_gate:
                    raise tether.transport.TransportError("transport error", "cut")
            await original(messages)

        original_close = transport.aclose

        async def aclose() -> None:
            # Like a real transport: closing it makes a send blocked in another task fail.
            outer.gate.set()
            await original_close()

        transport.send_many = send_many  # type: ignore[method-assign]
        transport.aclose = aclose  # type: ignore[method-assign]
        return transport


async def test_messages_never_written_before_the_transport_died_are_sent_after_reconnect() -> None:
    connector = GatedConnector()
    server = ScriptedServer(connector.inner)
    async with client(connector, **FAST) as rt:  # type: ignore[arg-type]
        await server.accept(sid="S1")
        await rt.wait_connected(5)
        connector.gated = connector.fail_at_gate = True
        rt.emit("in-flight", 0)  # its batch is in send_many when the transport dies
        await connector.waiting.wait()
        results: list[object] = []

        async def ask() -> None:
            results.append(await rt.call("question", timeout=5))

        async with anyio.create_task_group() as tg:
            rt.emit("queued", 1)  # still in the session's queue: never handed over
            tg.start_soon(ask)
            await wait_until(lambda: rt.buffered == 0 and len(connector.inner.attempts) == 1)
            await anyio.sleep(0.01)  # let the ask task run: its packet joins the queue
            rt.emit("queued", 2)
            connector.gate.set()  # the write fails: the transport is gone
            await wait_until(lambda: rt.state is tether.State.RECONNECTING)
            assert rt.buffered == 3
            connector.gated = False
            peer, _ = await server.accept(sid="S2")
            frames = [await peer.receive() for _ in range(3)]
            assert frames == ['42["queued",1]', '420["question"]', '42["queued",2]']
            await peer.send('430["answer"]')
        assert results == ["answer"]  # the call survived the drop instead of failing


async def test_close_does_not_wait_for_ever_on_a_peer_that_stopped_reading() -> None:
    connector = GatedConnector()
    server = ScriptedServer(connector.inner)
    async with client(connector) as rt:  # type: ignore[arg-type]
        await server.accept()
        await rt.wait_connected(5)
        connector.gated = connector.fail_at_gate = True
        rt.emit("stuck", 1)  # this write never completes: the peer does not read
        await connector.waiting.wait()
        with anyio.fail_after(10):  # the write gets a grace period, then the transport goes
            await rt.aclose()
        assert rt.state is tether.State.CLOSED
