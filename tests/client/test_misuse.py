"""Misuse is loud: a client used outside ``async with`` raises at once, nothing hangs
(contract 2.9); waiters of other tasks wake when the client leaves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import tether
from tether.transport import MemoryConnector

from .helpers import ScriptedServer, wait_until

pytestmark = pytest.mark.anyio


def client(**options: Any) -> tether.RealtimeClient:
    return tether.RealtimeClient("http://example.test", transport=MemoryConnector(), **options)


@pytest.mark.parametrize("method", ["call", "wait_connected", "get_members"])
async def test_async_methods_of_a_client_never_entered_raise_at_once(method: str) -> None:
    rt = client()
    coroutines: dict[str, Callable[[], Awaitable[object]]] = {
        "call": lambda: rt.call("x", timeout=None),
        "wait_connected": lambda: rt.wait_connected(),
        "get_members": lambda: rt.get_members("room", timeout=None),
    }
    with anyio.fail_after(5), pytest.raises(RuntimeError) as info:
        await coroutines[method]()
    message = str(info.value)
    assert f"RealtimeClient.{method}(): the client is not running" in message
    assert "async with tether.RealtimeClient(...) as rt:" in message
    assert "with tether.sync.RealtimeClient(...) as rt:" in message
    assert rt.state is tether.State.IDLE and rt.buffered == 0


async def test_open_of_a_client_never_entered_raises() -> None:
    rt = client()
    with pytest.raises(RuntimeError, match=r"RealtimeClient\.open\(\): the client is not running"):
        rt.open()


async def test_a_client_that_left_raises_too() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    rt = tether.RealtimeClient("http://example.test", transport=connector)
    async with rt:
        await server.accept()
        await rt.wait_connected(5)
    with anyio.fail_after(5), pytest.raises(RuntimeError, match="not running"):
        await rt.call("x")
    with anyio.fail_after(5), pytest.raises(RuntimeError, match="not running"):
        await rt.wait_connected()


async def test_what_may_be_done_before_entering_still_works() -> None:
    rt = client()
    rt.on_connect(lambda: None)
    rt.emit("early", 1)
    rt.join("room")
    assert rt.buffered == 1  # the join is channel state, sent after every connect
    rt.close()
    with anyio.fail_after(5):
        await rt.aclose()  # never entered: nothing to wait for
    assert rt.state is tether.State.CLOSED


async def test_entering_twice_raises() -> None:
    rt = client(auto_connect=False)
    async with rt:
        with pytest.raises(RuntimeError, match="already entered"):
            await rt.__aenter__()


async def test_a_waiter_in_another_task_wakes_when_the_client_leaves() -> None:
    rt = client(auto_connect=False)
    errors: list[BaseException] = []

    async def wait() -> None:
        try:
            await rt.wait_connected()
        except RuntimeError as exc:
            errors.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, rt:
            tg.start_soon(wait)
            await wait_until(lambda: rt._driver.watch._changed is not None)  # it waits
    assert len(errors) == 1
    assert "left its `async with` while this waited" in str(errors[0])


async def test_event_iterators_end_when_the_client_leaves() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    got: list[tuple[str, tuple[Any, ...]]] = []
    rt = tether.RealtimeClient("http://example.test", transport=connector)

    async def consume(stream: tether.EventStream) -> None:
        async for item in stream:
            got.append(item)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, rt:
            peer, _ = await server.accept()
            await rt.wait_connected(5)
            tg.start_soon(consume, rt.events("chat"))
            await peer.send('42["chat",1]')
            while not got:
                await anyio.sleep(0.001)
        # The consumer's `async for` ended by itself when the client left.
    assert got == [("chat", (1,))]
