"""The async client called from threads other than its event loop's (contract 2.9).

Its synchronous methods work from any thread (they run in the client's loop while the
caller waits); its ``async`` methods and ``events()`` raise a ``RuntimeError`` that names the
method and what to use instead. Never a silent break.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

import tether
from tether.transport import MemoryConnector

from .helpers import ScriptedServer, in_thread, wait_until

pytestmark = pytest.mark.anyio


def client(connector: MemoryConnector, **options: Any) -> tether.RealtimeClient:
    return tether.RealtimeClient("http://example.test", transport=connector, **options)


async def join(thread: threading.Thread) -> None:
    await anyio.to_thread.run_sync(thread.join, 10)
    assert not thread.is_alive()


async def test_sync_methods_work_from_plain_threads_in_order() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector) as rt:
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        loop_thread = threading.get_ident()
        seen_in: list[int] = []
        rt.on("ping", lambda: seen_in.append(threading.get_ident()))

        def work() -> str:
            rt.join("room")
            for i in range(3):
                rt.emit("n", i)
            rt.send("room", "chat", "hi")
            rt.broadcast("news", 1)
            rt.update_profile({"name": "bo"})
            rt.leave("room")
            rt.on("late", lambda: None)
            rt.off("late")
            return rt.state.value

        thread, outcome = in_thread(work)
        await join(thread)
        assert outcome == [("ok", "connected")]
        frames = [str(await peer.receive()) for _ in range(8)]
        assert frames[0].endswith('["join",{"channel":"room","echo":true}]')
        assert frames[1:4] == ['42["n",0]', '42["n",1]', '42["n",2]']
        assert '"eventName":"chat"' in frames[4] and '"eventName":"news"' in frames[5]
        assert '["update",' in frames[6] and '["leave",' in frames[7]
        assert rt.listeners("late") == []
        # Listeners still run in the client's own loop.
        await peer.send('42["ping"]')
        await wait_until(lambda: seen_in == [loop_thread])


async def test_sync_methods_work_from_anyio_worker_threads() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector) as rt:
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        await anyio.to_thread.run_sync(rt.emit, "from-worker", 1)
        assert await peer.receive() == '42["from-worker",1]'
        # The documented way to await from a worker thread: anyio.from_thread.run.
        calls: list[Any] = []

        def ask() -> None:
            calls.append(anyio.from_thread.run(lambda: rt.call("sum", 1, 2, timeout=5)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, ask)
            assert await peer.receive() == '420["sum",1,2]'
            await peer.send("430[3]")
        assert calls == [3]


async def test_close_and_open_from_another_thread() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector, reconnection_delay=0.01) as rt:
        await server.accept()
        await rt.wait_connected(5)
        thread, outcome = in_thread(rt.close)
        await join(thread)
        assert outcome == [("ok", None)]
        assert rt.state is tether.State.CLOSED
        thread, outcome = in_thread(rt.open)
        await join(thread)
        assert outcome == [("ok", None)]
        await server.accept()
        await rt.wait_connected(5)


async def test_errors_of_a_handed_over_call_are_raised_in_the_calling_thread() -> None:
    connector = MemoryConnector()
    async with client(connector, auto_connect=False) as rt:
        thread, outcome = in_thread(lambda: rt.emit("connect"))  # a reserved name
        await join(thread)
        [(kind, error)] = outcome
        assert kind == "error" and isinstance(error, ValueError)
        thread, outcome = in_thread(lambda: rt.on("x", "not callable"))  # type: ignore[call-overload]
        await join(thread)
        [(kind, error)] = outcome
        assert kind == "error" and isinstance(error, TypeError)


@pytest.mark.parametrize("method", ["call", "wait_connected", "get_members", "aclose"])
async def test_async_methods_from_another_event_loop_raise(method: str) -> None:
    connector = MemoryConnector()
    async with client(connector, auto_connect=False) as rt:
        coroutines: dict[str, Callable[[], Coroutine[Any, Any, object]]] = {
            "call": lambda: rt.call("x", timeout=1),
            "wait_connected": lambda: rt.wait_connected(1),
            "get_members": lambda: rt.get_members("room", timeout=1),
            "aclose": rt.aclose,
        }
        # A thread with an event loop of its own (an asyncio.run in a worker thread).
        thread, outcome = in_thread(lambda: asyncio.run(coroutines[method]()))
        await join(thread)
        [(kind, error)] = outcome
        assert kind == "error" and isinstance(error, RuntimeError)
        assert f"RealtimeClient.{method}()" in str(error)
        assert "tether.sync.RealtimeClient" in str(error)
        assert rt.state is tether.State.IDLE  # nothing happened to the client


async def test_events_from_another_thread_raise() -> None:
    connector = MemoryConnector()
    async with client(connector, auto_connect=False) as rt:
        thread, outcome = in_thread(rt.events)
        await join(thread)
        [(kind, error)] = outcome
        assert kind == "error" and isinstance(error, RuntimeError)
        assert "RealtimeClient.events()" in str(error)
        assert "tether.sync.RealtimeClient.events()" in str(error)


async def test_state_is_readable_from_any_thread() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector) as rt:
        await server.accept(sid="S1")
        await rt.wait_connected(5)
        thread, outcome = in_thread(
            lambda: (rt.state, rt.is_connected(), rt.get_socket_id(), rt.buffered, repr(rt))
        )
        await join(thread)
        [(kind, (state, connected, sid, buffered, text))] = outcome
        assert (kind, state, connected, sid, buffered) == (
            "ok",
            tether.State.CONNECTED,
            True,
            "S1",
            0,
        )
        assert "state=connected" in text


async def test_after_leaving_calls_from_threads_buffer_again() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    rt = client(connector)
    async with rt:
        await server.accept()
        await rt.wait_connected(5)
    thread, outcome = in_thread(lambda: rt.emit("later", 1))
    await join(thread)
    assert outcome == [("ok", None)]
    assert rt.buffered == 1


async def test_calls_from_another_thread_wait_for_the_loop_not_for_io() -> None:
    # The hand-over costs a trip through the loop: while the loop is busy in a task, the
    # calling thread waits, and its call lands in order after what that task did.
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector) as rt:
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        token = anyio.lowlevel.current_token()
        rt.emit("first")
        thread, outcome = in_thread(
            lambda: anyio.from_thread.run_sync(rt.emit, "second", token=token)
        )
        await join(thread)
        assert outcome == [("ok", None)]
        assert [await peer.receive(), await peer.receive()] == ['42["first"]', '42["second"]']
