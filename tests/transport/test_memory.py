"""The in-memory transport: the same observable behaviour as the WebSocket one, no sockets."""

from __future__ import annotations

import ssl

import anyio
import pytest

from tether.transport import (
    ConnectAttempt,
    Connector,
    MemoryConnector,
    MemoryPeer,
    MemoryTransport,
    Transport,
    TransportError,
)

pytestmark = pytest.mark.anyio

URL = "ws://rt.example.com/socket.io/?EIO=4&transport=websocket&token=SECRET"
TIMEOUT = 5


async def open_pair(
    connector: MemoryConnector | None = None, max_message_size: int = 1000
) -> tuple[MemoryTransport, MemoryPeer]:
    connector = connector or MemoryConnector()
    transport = await connector.connect(URL, headers=[], max_message_size=max_message_size)
    peer = await connector.accept()
    return transport, peer


async def test_memory_classes_satisfy_the_protocols() -> None:
    # The annotations are the test: mypy fails if the shapes drift from the protocols.
    memory = MemoryConnector()
    connector: Connector = memory
    transport: Transport = await connector.connect(
        URL, headers=(), ssl_context=None, max_message_size=10
    )
    peer: MemoryPeer = await memory.accept()  # the test's end: no read deadline
    await peer.aclose()
    await transport.aclose()
    assert transport.closed


async def test_round_trip_keeps_order_and_types() -> None:
    with anyio.fail_after(TIMEOUT):
        transport, peer = await open_pair()
        await transport.send("40")
        await transport.send_many(['451-["up",{"_placeholder":true,"num":0}]', b"\x01\x02"])
        assert await peer.receive() == "40"
        assert await peer.receive() == '451-["up",{"_placeholder":true,"num":0}]'
        assert await peer.receive() == b"\x01\x02"
        await peer.send_many(["2", b"\xff"])
        await peer.send("3")
        assert await transport.receive() == "2"
        assert await transport.receive() == b"\xff"
        assert await transport.receive() == "3"
        assert not transport.closed
        assert not peer.closed


async def test_receive_waits_for_a_message() -> None:
    with anyio.fail_after(TIMEOUT):
        transport, peer = await open_pair()
        got: list[object] = []
        async with anyio.create_task_group() as tg:

            async def reader() -> None:
                got.append(await transport.receive())

            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            assert got == []
            await peer.send("hello")
        assert got == ["hello"]


@pytest.mark.parametrize(
    ("how", "reason"), [("close", "transport close"), ("fail", "transport error")]
)
async def test_peer_end_is_seen_after_pending_messages(how: str, reason: str) -> None:
    with anyio.fail_after(TIMEOUT):
        transport, peer = await open_pair()
        await peer.send("a")
        await peer.send("b")
        getattr(peer, how)()
        assert peer.closed
        assert await transport.receive() == "a"
        assert await transport.receive() == "b"
        with pytest.raises(TransportError) as info:
            await transport.receive()
        assert info.value.reason == reason
        assert transport.closed
        # Every later call fails the same way.
        with pytest.raises(TransportError) as info:
            await transport.receive()
        assert info.value.reason == reason
        with pytest.raises(TransportError) as info:
            await transport.send("c")
        assert info.value.reason == reason
        await transport.aclose()


async def test_sending_to_a_gone_peer_fails_with_its_reason() -> None:
    with anyio.fail_after(TIMEOUT):
        transport, peer = await open_pair()
        peer.fail("reset by test")
        with pytest.raises(TransportError) as info:
            await transport.send("x")
        assert info.value.reason == "transport error"
        assert "reset by test" in str(info.value)
        assert transport.closed


async def test_client_aclose_is_seen_by_the_peer_after_pending_messages() -> None:
    with anyio.fail_after(TIMEOUT):
        transport, peer = await open_pair()
        await transport.send("41")
        await transport.aclose()
        await transport.aclose()  # idempotent
        assert transport.closed
        assert await peer.receive() == "41"
        with pytest.raises(TransportError) as info:
            await peer.receive()
        assert info.value.reason == "transport close"
        with pytest.raises(TransportError):
            await peer.send("too late")
        with pytest.raises(TransportError) as info:
            await transport.receive()
        assert info.value.reason == "transport close"
        with pytest.raises(TransportError):
            await transport.send("after close")


async def test_aclose_wakes_a_blocked_receiver() -> None:
    with anyio.fail_after(TIMEOUT):
        transport, _peer = await open_pair()
        errors: list[TransportError] = []
        async with anyio.create_task_group() as tg:

            async def reader() -> None:
                try:
                    await transport.receive()
                except TransportError as exc:
                    errors.append(exc)

            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            await transport.aclose()
        assert [e.reason for e in errors] == ["transport close"]


async def test_max_message_size_counts_utf8_bytes() -> None:
    with anyio.fail_after(TIMEOUT):
        transport, peer = await open_pair(max_message_size=10)
        await peer.send("é" * 5)  # 10 bytes: fits exactly
        await peer.send(b"x" * 10)
        await peer.send("é" * 6)  # 12 bytes
        assert await transport.receive() == "é" * 5
        assert await transport.receive() == b"x" * 10
        with pytest.raises(TransportError) as info:
            await transport.receive()
        assert info.value.reason == "transport error"
        assert "max_message_size" in str(info.value)
        assert transport.closed
        # The server side learns that the client went away.
        with pytest.raises(TransportError) as info:
            await peer.receive()
        assert info.value.reason == "transport error"


async def test_scripted_failures_then_success() -> None:
    with anyio.fail_after(TIMEOUT):
        connector = MemoryConnector()
        connector.fail_next(2, status=403, message="forbidden by test")
        for _ in range(2):
            with pytest.raises(TransportError) as info:
                await connector.connect(URL, headers=[("authorization", "Bearer SECRET")])
            assert info.value.reason == "transport error"
            assert info.value.status == 403
            assert str(info.value) == "forbidden by test"
        transport, peer = await open_pair(connector)
        assert len(connector.attempts) == 3
        assert connector.attempts[0].headers == (("authorization", "Bearer SECRET"),)
        assert peer.attempt is connector.attempts[2]
        assert peer.attempt.url == URL
        assert peer.attempt.max_message_size == 1000
        await transport.aclose()


async def test_fail_next_can_script_a_clean_close() -> None:
    connector = MemoryConnector()
    connector.fail_next(reason="transport close")
    with pytest.raises(TransportError) as info:
        await connector.connect(URL)
    assert info.value.reason == "transport close"


async def test_hang_blocks_until_cancelled_then_the_script_goes_on() -> None:
    with anyio.fail_after(TIMEOUT):
        connector = MemoryConnector()
        connector.hang_next()
        connector.fail_next()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(connector.connect, URL)
                await anyio.wait_all_tasks_blocked()
                assert len(connector.attempts) == 1
                scope.cancel()
        assert scope.cancelled_caught
        with pytest.raises(TransportError):
            await connector.connect(URL)
        transport = await connector.connect(URL)
        assert len(connector.attempts) == 3
        await transport.aclose()


async def test_accept_waits_for_a_connection() -> None:
    with anyio.fail_after(TIMEOUT):
        connector = MemoryConnector()
        peers: list[MemoryPeer] = []
        async with anyio.create_task_group() as tg:

            async def acceptor() -> None:
                peers.append(await connector.accept())

            tg.start_soon(acceptor)
            await anyio.wait_all_tasks_blocked()
            transport = await connector.connect(URL, ssl_context=ssl.create_default_context())
        assert len(peers) == 1
        assert peers[0].attempt.ssl_context is not None
        await transport.send("x")
        assert await peers[0].receive() == "x"


async def test_bad_arguments() -> None:
    transport, _peer = await open_pair()
    with pytest.raises(TypeError):
        await transport.send(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await transport.send_many(["ok", 42])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_message_size"):
        await MemoryConnector().connect(URL, max_message_size=0)


async def test_reprs_hide_secrets() -> None:
    connector = MemoryConnector()
    transport = await connector.connect(URL, headers=[("authorization", "Bearer HIDDEN")])
    peer = await connector.accept()
    for text in (repr(transport), repr(peer), repr(peer.attempt)):
        assert "SECRET" not in text
        assert "HIDDEN" not in text
    assert "authorization" in repr(peer.attempt)
    assert "open" in repr(transport)
    await transport.aclose()
    assert "closed" in repr(transport)
    # Like a socket, the peer learns of the close when it next reads or writes.
    assert "open" in repr(peer)
    with pytest.raises(TransportError):
        await peer.receive()
    assert "closed" in repr(peer)
    assert isinstance(peer.attempt, ConnectAttempt)


async def test_peer_receive_after_its_own_close() -> None:
    transport, peer = await open_pair()
    await transport.send("lost")
    peer.close()
    with pytest.raises(TransportError) as info:
        await peer.receive()
    assert info.value.reason == "transport close"
    await peer.aclose()


async def test_concurrent_waiters_are_all_served() -> None:
    with anyio.fail_after(TIMEOUT):
        connector = MemoryConnector()
        peers: list[MemoryPeer] = []
        async with anyio.create_task_group() as tg:

            async def acceptor() -> None:
                peers.append(await connector.accept())

            tg.start_soon(acceptor)
            tg.start_soon(acceptor)
            await anyio.wait_all_tasks_blocked()
            first = await connector.connect(URL)
            second = await connector.connect(URL)
        assert len(peers) == 2

        got: list[object] = []
        async with anyio.create_task_group() as tg:

            async def reader() -> None:
                got.append(await first.receive())

            tg.start_soon(reader)
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            await peers[0].send_many(["a", "b"])
        assert sorted(got) == ["a", "b"]  # type: ignore[type-var]
        await first.aclose()
        await second.aclose()


async def test_bad_headers_fail_the_attempt_like_on_a_socket() -> None:
    connector = MemoryConnector()
    with pytest.raises(TransportError, match="control characters") as info:
        await connector.connect(URL, headers=[("x-token", "SECRET\r\nInjected: 1")])
    assert info.value.reason == "transport error"
    assert "SECRET" not in str(info.value)
    assert len(connector.attempts) == 1
