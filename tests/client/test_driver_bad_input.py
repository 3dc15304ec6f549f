"""The driver against bad input, over the in-memory transport (the real peers that showed each
defect are in ``tests/integration/test_client_bad_input.py``).

Nothing reaches user code from a background task: a failed attempt is a ``connect_error``
and a retry, a broken connection a disconnect reason and a reconnect; ``wait_connected()``
says what happened.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

import tether
from tether._driver import _session
from tether.transport import MemoryConnector, MemoryTransport

from .helpers import OPEN_PACKET, ScriptedServer, wait_until

pytestmark = pytest.mark.anyio

FAST = {"reconnection_delay": 0.01, "reconnection_delay_max": 0.02}


def client(connector: Any, **options: Any) -> tether.RealtimeClient:
    return tether.RealtimeClient("http://rt.example", transport=connector, **options)


# ------------------------------------------------------------------ wait_connected()


async def test_exhausted_attempts_say_what_the_last_one_ran_into() -> None:
    connector = MemoryConnector()
    connector.fail_next(3, message="refused by the test")
    async with client(connector, reconnection_attempts=2, **FAST) as rt:
        with pytest.raises(tether.ConnectError) as info:
            await rt.wait_connected(5)
    error = info.value
    assert error.message == "reconnect failed; the last attempt failed: refused by the test"
    assert isinstance(error.__cause__, tether.ConnectError)
    assert error.__cause__.message == "refused by the test"
    assert error.data is None and not error.refused


async def test_giving_up_without_an_attempt_says_why_the_connection_ended() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with client(connector, reconnection_attempts=0, **FAST) as rt:
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        peer.close()
        await wait_until(lambda: rt.state is tether.State.CLOSED)
        with pytest.raises(tether.ConnectError) as info:
            await rt.wait_connected(5)
    assert info.value.message == "reconnect failed; the connection was lost: transport close"
    assert info.value.__cause__ is None


async def test_a_failure_before_a_successful_connect_is_not_blamed_later() -> None:
    connector = MemoryConnector()
    connector.fail_next(1, message="an old failure")
    server = ScriptedServer(connector)
    async with client(connector, reconnection_attempts=1, **FAST) as rt:
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        connector.fail_next(1, message="the new failure")
        peer.close()
        await wait_until(lambda: rt.state is tether.State.CLOSED)
        with pytest.raises(tether.ConnectError) as info:
            await rt.wait_connected(5)
    assert info.value.message == "reconnect failed; the last attempt failed: the new failure"


# ------------------------------------------------------------------ a server that does not answer


async def test_a_close_right_after_our_connect_suggests_another_parser() -> None:
    connector = MemoryConnector()
    errors: list[tether.ConnectError] = []
    async with client(connector, reconnection=False) as rt:
        rt.on_error(errors.append)
        peer = await connector.accept()
        await peer.send(OPEN_PACKET % (1, 25000, 20000))
        assert str(await peer.receive()).startswith("40")
        peer.close()
        with pytest.raises(tether.ConnectError) as info:
            await rt.wait_connected(5)
    message = info.value.message
    assert message.startswith("transport close: the server closed the connection without ")
    assert "socket.io-msgpack-parser" in message
    assert [error.message for error in errors] == [message]


async def test_an_engine_close_after_noops_in_answer_to_our_connect_suggests_it_too() -> None:
    # What a polling server with another parser answers: NOOP (the poll out), then CLOSE.
    connector = MemoryConnector()
    async with client(connector, reconnection=False) as rt:
        peer = await connector.accept()
        await peer.send(OPEN_PACKET % (1, 25000, 20000))
        assert str(await peer.receive()).startswith("40")
        await peer.send_many(["6", "1"])
        with pytest.raises(tether.ConnectError, match="without answering the namespace CONNECT"):
            await rt.wait_connected(5)


async def test_a_close_before_the_handshake_is_a_plain_transport_close() -> None:
    connector = MemoryConnector()
    async with client(connector, reconnection=False) as rt:
        peer = await connector.accept()
        peer.close()
        with pytest.raises(tether.ConnectError) as info:
            await rt.wait_connected(5)
    assert info.value.message == "transport close"


async def test_a_close_after_a_socketio_packet_is_a_plain_transport_close() -> None:
    connector = MemoryConnector()
    async with client(connector, reconnection=False) as rt:
        peer = await connector.accept()
        await peer.send(OPEN_PACKET % (1, 25000, 20000))
        assert str(await peer.receive()).startswith("40")
        # An event before the CONNECT reply (held): the server speaks our parser.
        await peer.send('42["early"]')
        peer.close()
        with pytest.raises(tether.ConnectError) as info:
            await rt.wait_connected(5)
    assert info.value.message == "transport close"


async def test_a_close_after_only_a_ping_still_suggests_another_parser() -> None:
    # A ping says nothing of the server's Socket.IO parser: only a Socket.IO packet does.
    connector = MemoryConnector()
    async with client(connector, reconnection=False) as rt:
        peer = await connector.accept()
        await peer.send(OPEN_PACKET % (1, 25000, 20000))
        assert str(await peer.receive()).startswith("40")
        await peer.send("2")
        assert await peer.receive() == "3"
        peer.close()
        with pytest.raises(tether.ConnectError, match="without answering the namespace CONNECT"):
            await rt.wait_connected(5)


# ------------------------------------------------------------------ a connector that breaks


class BrokenConnector:
    """Raises what no Connector may raise on its first ``fails`` attempts, then connects."""

    def __init__(self, fails: int) -> None:
        self.fails = fails
        self.inner = MemoryConnector()

    async def connect(
        self,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        ssl_context: ssl.SSLContext | None = None,
        max_message_size: int = 1_000_000,
    ) -> MemoryTransport:
        if self.fails:
            self.fails -= 1
            raise RuntimeError("a bug in a custom connector")
        return await self.inner.connect(
            url, headers=headers, ssl_context=ssl_context, max_message_size=max_message_size
        )


async def test_a_connector_that_raises_anything_fails_the_attempt_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = BrokenConnector(fails=2)
    server = ScriptedServer(connector.inner)
    errors: list[str] = []
    with caplog.at_level(logging.ERROR, logger="tether"):
        async with client(connector, **FAST) as rt:
            rt.on_error(lambda error: errors.append(error.message))
            await server.accept()
            await rt.wait_connected(5)
    assert errors == ["transport error", "transport error"]
    assert "internal error in transport session" in caplog.text


class BrokenWrites(MemoryConnector):
    """Its first transport's writes raise what no transport may raise, once connected."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = 0

    async def connect(
        self,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        ssl_context: ssl.SSLContext | None = None,
        max_message_size: int = 1_000_000,
    ) -> MemoryTransport:
        transport = await super().connect(
            url, headers=headers, ssl_context=ssl_context, max_message_size=max_message_size
        )
        if len(self.attempts) == 1:
            send_many = transport.send_many

            async def send_many_then_break(messages: Any) -> None:
                messages = list(messages)
                if any(str(m).startswith("42") for m in messages):
                    self.broken += 1
                    raise RuntimeError("a bug in a custom transport")
                await send_many(messages)

            transport.send_many = send_many_then_break  # type: ignore[method-assign]
        return transport


async def test_a_transport_whose_write_raises_anything_is_lost_and_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = BrokenWrites()
    server = ScriptedServer(connector)
    reasons: list[str] = []
    with caplog.at_level(logging.ERROR, logger="tether"):
        async with client(connector, **FAST) as rt:
            rt.on_disconnect(reasons.append)
            await server.accept()
            await rt.wait_connected(5)
            rt.emit("hello", 1)  # the writer task's write raises
            peer, _ = await server.accept()
            await rt.wait_connected(5)
            # (The frames a failed write took count as written: at most once, client.md.)
            rt.emit("hello", 2)
            with anyio.fail_after(5):
                assert await peer.receive() == '42["hello",2]'
    assert connector.broken == 1
    assert reasons[0] == "transport error"
    assert "internal error on the write path" in caplog.text


# ------------------------------------------------------------------ the dispatch backlog


async def test_the_backlog_is_bounded_in_bytes_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_session, "DISPATCH_BACKLOG_BYTES", 100_000)
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    release = anyio.Event()
    received: list[int] = []

    async def slow(index: int, filler: str) -> None:
        await release.wait()
        received.append(index)

    event = '42["e",%d,"' + "x" * 10_000 + '"]'
    async with client(connector, **FAST) as rt:
        rt.on("e", slow)
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        await peer.send_many([event % i for i in range(20)])
        await wait_until(lambda: rt.state is tether.State.RECONNECTING)
        # Ten messages of 10 KB reach 100,000 bytes: the tenth drops the connection (the
        # one being delivered counts until it is done).
        assert rt._driver.dispatcher.backlog_bytes == 10 * len(event % 0)
        release.set()
        await wait_until(lambda: received == list(range(10)))
        await wait_until(lambda: rt._driver.dispatcher.backlog_bytes == 0)
        await server.accept()
        await rt.wait_connected(5)


async def test_a_reconnect_while_listeners_are_behind_completes_before_dropping_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_session, "DISPATCH_BACKLOG_LIMIT", 10)
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    release = anyio.Event()
    errors: list[tether.ConnectError] = []

    async def slow(*args: Any) -> None:
        await release.wait()

    async with client(connector, **FAST) as rt:
        rt.on("e", slow)
        rt.on_error(errors.append)
        peer, _ = await server.accept()
        await rt.wait_connected(5)
        await peer.send_many(['42["e",1]'] * 11)  # one is with the listener, ten wait
        await wait_until(lambda: rt.state is tether.State.RECONNECTING)
        # Still ten behind: the handshake, its pings and the CONNECT reply go through...
        peer, _ = await server.accept(ping_interval=25000)
        await peer.send("2")
        await wait_until(lambda: rt.state is tether.State.CONNECTED)
        assert rt._driver.dispatcher.backlog >= 10
        # ...and the next event drops the connection again (its attempts count from zero).
        await peer.send('42["e",2]')
        await wait_until(lambda: rt.state is tether.State.RECONNECTING)
        assert rt._driver.core.attempt <= 1
        release.set()
        await server.accept()
        await rt.wait_connected(5)
    assert errors == []
