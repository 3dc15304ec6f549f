"""The blocking client's listener thread, against a scripted server on the in-memory
transport (its peer lives in the client's own event loop, reached through the portal): a
listener that blocks holds up neither the heartbeat nor the reader, and its return value is
the ack the server asked for."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import pytest

import tether.sync
from client.helpers import ScriptedServer
from tether.transport import MemoryConnector, MemoryPeer

from .conftest import until

T = TypeVar("T")


def in_loop(rt: tether.sync.RealtimeClient, fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn()`` in the client's event loop, at most 10 s."""

    async def bounded() -> T:
        with anyio.fail_after(10):
            return await fn()

    portal = rt._portal
    assert portal is not None
    return portal.call(bounded)


def test_a_blocking_listener_holds_up_neither_pongs_nor_reads(backend: str) -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    release = threading.Event()
    seen: list[Any] = []
    with tether.sync.RealtimeClient(
        "http://example.test", transport=connector, backend=backend
    ) as rt:
        peer, _ = in_loop(rt, server.accept)
        rt.wait_connected(timeout=10)

        @rt.on("question")
        def answer(x: int) -> int:
            assert release.wait(10)  # blocks the listener thread, nothing else
            return x * 2

        rt.on("later", seen.append)
        in_loop(rt, lambda: peer.send('427["question",21]'))
        in_loop(rt, lambda: peer.send('42["later",1]'))
        in_loop(rt, lambda: peer.send("2"))  # an Engine.IO ping while the listener blocks
        assert in_loop(rt, peer.receive) == "3"
        # Calls go on meanwhile: the server answers this one from the loop.
        portal = rt._portal
        assert portal is not None
        answering = portal.start_task_soon(ack_next_call, peer, "pong")
        assert rt.call("ping-me", timeout=10) == "pong"
        answering.result(10)
        assert seen == []  # later listeners wait for the blocked one, in order
        release.set()
        assert in_loop(rt, peer.receive) == "437[42]"  # the listener's value is the ack
        until(lambda: seen == [1])


async def ack_next_call(peer: MemoryPeer, value: str) -> None:
    """Read the client's next call (``42<id>[...]``) and acknowledge it with ``value``."""
    with anyio.fail_after(10):
        frame = await peer.receive()
    match = re.fullmatch(r"42(\d+)\[.*\]", str(frame))
    assert match is not None, frame
    await peer.send(f'43{match[1]}["{value}"]')


def test_a_plain_listener_that_returns_a_coroutine_is_logged(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    after: list[int] = []

    async def work() -> None:
        raise AssertionError("never run")

    with (
        caplog.at_level(logging.ERROR, logger="tether"),
        tether.sync.RealtimeClient(
            "http://example.test", transport=connector, backend=backend
        ) as rt,
    ):
        peer, _ = in_loop(rt, server.accept)
        rt.wait_connected(timeout=10)
        rt.on("sneaky", lambda: work())  # a lambda: not refused at registration
        rt.on("after", after.append)
        in_loop(rt, lambda: peer.send('42["sneaky"]'))
        in_loop(rt, lambda: peer.send('42["after",1]'))
        until(lambda: after == [1])
    [record] = [r for r in caplog.records if "returned an awaitable" in r.getMessage()]
    assert "give it a plain function" in record.getMessage()
