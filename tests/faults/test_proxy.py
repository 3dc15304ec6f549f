"""The fault proxy at the byte level, against plain anyio TCP peers, on asyncio and trio.

Every fault is checked by what the peers see (bytes, EOF, ECONNRESET) and by the proxy's
counters. The only timing checks are lower bounds that the proxy guarantees by
construction (latency, throttle): a slow machine can only make them pass more easily.
"""

from __future__ import annotations

import errno

import anyio
import anyio.abc
import pytest

from faults import Corruption, Direction, Fault, FaultProxy, build_frame
from faults.frames import BINARY, TEXT

from .peers import (
    SWITCHING,
    UPGRADE_REQUEST,
    TcpPeer,
    connect,
    receive_exactly,
    reset_close,
    until,
)

pytestmark = pytest.mark.anyio

TO_SERVER = Direction.TO_SERVER
TO_CLIENT = Direction.TO_CLIENT


def is_reset(exc: BaseException) -> bool:
    cause = exc.__cause__ if exc.__cause__ is not None else exc.__context__
    return isinstance(cause, ConnectionResetError) or (
        isinstance(cause, OSError) and cause.errno in (errno.ECONNRESET, errno.EPIPE)
    )


async def test_forwards_both_ways_and_counts() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy:
        assert proxy.url == f"http://127.0.0.1:{proxy.port}"
        async with await connect(proxy) as client:
            await client.send(b"hello")
            assert await receive_exactly(client, 5) == b"hello"
            assert proxy.live == 1
        await until(lambda: proxy.live == 0)
        stats = proxy.stats
        assert (stats.accepted, stats.closed, stats.refused) == (1, 1, 0)
        assert stats.received == stats.forwarded == {TO_SERVER: 5, TO_CLIENT: 5}
        assert not stats.faults
        assert peer.connections[0].ending == "eof"


async def test_fin_closes_both_sides_in_order() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy:
        async with await connect(proxy) as client:
            await client.send(b"x")
            assert await receive_exactly(client, 1) == b"x"
            assert await proxy.fin() == 1
            with pytest.raises(anyio.EndOfStream):
                await client.receive()
            upstream = peer.connections[0]
            await upstream.ended.wait()
            assert upstream.ending == "eof"
        await until(lambda: proxy.live == 0)
        assert proxy.stats.faults[Fault.FIN] == 1


async def test_reset_sends_rst_both_ways() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy:
        async with await connect(proxy) as client:
            await client.send(b"x")
            assert await receive_exactly(client, 1) == b"x"
            connection = proxy.connections[0]
            assert await proxy.reset() == 1
            assert all(sock.fileno() == -1 for sock in connection.sockets)
            with pytest.raises(anyio.BrokenResourceError) as info:
                await client.receive()
            assert is_reset(info.value)
            upstream = peer.connections[0]
            await upstream.ended.wait()
            assert upstream.ending == "reset"
        assert proxy.stats.faults[Fault.RESET] == 1
        assert proxy.live == 0


async def test_a_peer_reset_is_passed_on_as_a_reset() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy:
        client = await connect(proxy)
        await client.send(b"x")
        assert await receive_exactly(client, 1) == b"x"
        await reset_close(client)
        upstream = peer.connections[0]
        await upstream.ended.wait()
        assert upstream.ending == "reset"
        await until(lambda: proxy.live == 0)
        assert proxy.stats.peer_resets == 1


async def test_blackhole_holds_the_bytes_until_lifted() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy:
        async with await connect(proxy) as client:
            await client.send(b"a")
            assert await receive_exactly(client, 1) == b"a"
            proxy.blackhole()
            await client.send(b"ping")
            await until(lambda: proxy.stats.received[TO_SERVER] == 5)
            assert proxy.stats.forwarded[TO_SERVER] <= 1  # "a" only: "ping" was read, and held
            assert bytes(peer.connections[0].received) == b"a"
            proxy.blackhole(False)
            assert await receive_exactly(client, 4) == b"ping"
        assert proxy.stats.faults[Fault.BLACKHOLE] == 1
        assert proxy.stats.dropped == {TO_SERVER: 0, TO_CLIENT: 0}


async def test_blackhole_one_way_holds_only_that_way() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy, await connect(proxy) as client:
        proxy.blackhole(direction=TO_CLIENT)
        await client.send(b"ping")
        upstream = await peer.wait_connection()
        await until(lambda: upstream.received == b"ping")  # to the server: forwarded
        await until(lambda: proxy.stats.received[TO_CLIENT] == 4)
        assert proxy.stats.forwarded[TO_CLIENT] == 0  # the echo: held
        proxy.blackhole(False)
        assert await receive_exactly(client, 4) == b"ping"


async def test_blackhole_with_discard_throws_the_bytes_away() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy, await connect(proxy) as client:
        proxy.blackhole(discard=True)
        await client.send(b"lost")
        await until(lambda: proxy.stats.dropped[TO_SERVER] == 4)
        proxy.blackhole(False)
        await client.send(b"kept")
        assert await receive_exactly(client, 4) == b"kept"
        assert bytes(peer.connections[0].received) == b"kept"


async def test_blackhole_holds_eof_too() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy, await connect(proxy) as client:
        await client.send(b"a")
        assert await receive_exactly(client, 1) == b"a"
        proxy.blackhole(direction=TO_SERVER)
        await client.send_eof()
        upstream = peer.connections[0]
        await until(lambda: proxy.stats.eofs_received[TO_SERVER] == 1)
        assert proxy.stats.eofs_forwarded[TO_SERVER] == 0
        assert not upstream.ended.is_set()
        proxy.blackhole(False)
        await upstream.ended.wait()
        assert upstream.ending == "eof"
        await until(lambda: proxy.stats.eofs_forwarded[TO_SERVER] == 1)


async def test_latency_delays_every_chunk_each_way() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy:
        async with await connect(proxy) as client:
            proxy.latency(0.1)
            began = anyio.current_time()
            await client.send(b"ping")
            assert await receive_exactly(client, 4) == b"ping"
            assert anyio.current_time() - began >= 0.2  # 0.1 there, 0.1 back
        assert proxy.stats.faults[Fault.LATENCY] == 1


async def test_lifting_latency_releases_what_waits() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy, await connect(proxy) as client:
        proxy.latency(3600)
        await client.send(b"ping")
        await until(lambda: proxy.stats.received[TO_SERVER] == 4)
        proxy.latency(0)
        with anyio.fail_after(5):
            assert await receive_exactly(client, 4) == b"ping"


async def test_throttle_cuts_and_spaces_the_writes() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy:
        async with await connect(proxy) as client:
            proxy.throttle(20_000, direction=TO_SERVER)
            began = anyio.current_time()
            await client.send(b"t" * 4000)
            assert await receive_exactly(client, 4000) == b"t" * 4000
            # Writes of at most 2000 bytes (a tenth of a second's worth), spaced so that the
            # last one starts at least (4000 - 2000) / 20000 s after the first.
            assert anyio.current_time() - began >= 0.1
        await until(lambda: proxy.live == 0)  # a writer counts once its send() returned
        stats = proxy.stats
        assert stats.largest_write[TO_SERVER] == 2000
        assert stats.writes[TO_SERVER] >= 2  # 2, unless the 4000 bytes came in two reads
        assert stats.forwarded[TO_SERVER] == 4000


async def test_split_forwards_one_byte_per_write() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy:
        async with await connect(proxy) as client:
            proxy.split()
            payload = bytes(range(50))
            await client.send(payload)
            assert await receive_exactly(client, 50) == payload
        await until(lambda: proxy.live == 0)  # a writer counts once its send() returned
        stats = proxy.stats
        assert stats.writes == {TO_SERVER: 50, TO_CLIENT: 50}
        assert stats.largest_write == {TO_SERVER: 1, TO_CLIENT: 1}


async def reset_on_arrival(proxy: FaultProxy) -> None:
    """Connect, send, read: the proxy's RST may fail any of the three, whichever comes
    after it arrived (on trio even the connect, which checks SO_ERROR once writable)."""
    with pytest.raises((anyio.BrokenResourceError, OSError)) as info:
        await request(proxy)
    assert is_reset(info.value)


async def request(proxy: FaultProxy) -> bytes:
    async with await connect(proxy) as client:
        await client.send(b"GET / HTTP/1.1\r\n\r\n")
        return await client.receive()


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_refuse_closes_new_connections_until_lifted(reset: bool) -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy:
        proxy.refuse(reset=reset)
        if reset:
            await reset_on_arrival(proxy)
        else:
            async with await connect(proxy) as client:
                await client.send(b"GET / HTTP/1.1\r\n\r\n")
                with pytest.raises(anyio.EndOfStream):
                    await client.receive()
        assert peer.connections == []
        proxy.refuse(False)
        async with await connect(proxy) as client:
            await client.send(b"back")
            assert await receive_exactly(client, 4) == b"back"
        stats = proxy.stats
        assert (stats.refused, stats.faults[Fault.REFUSE], stats.accepted) == (1, 1, 1)


async def test_an_unreachable_upstream_resets_the_client() -> None:
    async with TcpPeer() as peer:
        port = peer.port
    async with FaultProxy(("127.0.0.1", port)) as proxy:
        await reset_on_arrival(proxy)
        await until(lambda: proxy.live == 0)
        assert proxy.stats.upstream_failures == 1


async def test_connections_past_the_limit_are_reset() -> None:
    async with TcpPeer() as peer, FaultProxy(peer, max_connections=1) as proxy:
        async with await connect(proxy) as first:
            await first.send(b"1")
            assert await receive_exactly(first, 1) == b"1"
            await reset_on_arrival(proxy)
        assert proxy.stats.refused == 1
        assert proxy.stats.faults[Fault.REFUSE] == 0


async def test_leaving_closes_every_socket_and_task() -> None:
    async with TcpPeer() as peer:
        clients = []
        async with FaultProxy(peer) as proxy:
            for number in range(3):
                client = await connect(proxy)
                clients.append(client)
                await client.send(b"x")
                assert await receive_exactly(client, 1) == b"x"
                await peer.wait_connection(number + 1)
            connections = proxy.connections
            assert len(connections) == 3
            proxy.blackhole()  # some bytes held in the queues on the way out
            for client in clients:
                await client.send(b"held")
            await until(lambda: proxy.stats.received[TO_SERVER] == 15)
        assert proxy.live == 0
        for connection in connections:
            assert connection.closed.is_set()
            assert all(sock.fileno() == -1 for sock in connection.sockets)
        for client in clients:
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await client.receive()
            await client.aclose()
        for upstream in peer.connections:
            await upstream.ended.wait()


async def test_bad_arguments_are_refused_at_the_call() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        FaultProxy("example.com:80")
    with pytest.raises(ValueError, match="loopback only"):
        FaultProxy(("10.0.0.1", 80))
    with pytest.raises(ValueError, match="host and a port"):
        FaultProxy("http://127.0.0.1")
    assert FaultProxy("http://localhost:8080").upstream_port == 8080
    async with TcpPeer() as peer, FaultProxy(peer) as proxy:
        with pytest.raises(ValueError, match=">= 0"):
            proxy.latency(-1)
        with pytest.raises(ValueError, match=">= 1"):
            proxy.throttle(0)
        with pytest.raises(ValueError, match=">= 1"):
            proxy.drop_next_ack(0)
        with pytest.raises(ValueError, match=">= 0"):
            proxy.reset_mid_write(-1)


# -- frame faults, over a peer that answers the upgrade with 101 -----------------------------


async def upgraded(proxy: FaultProxy, peer: TcpPeer) -> anyio.abc.SocketStream:
    client = await connect(proxy)
    await client.send(UPGRADE_REQUEST)
    assert await receive_exactly(client, len(SWITCHING)) == SWITCHING
    await peer.wait_connection()
    return client


async def test_drop_next_ack_drops_only_the_ack() -> None:
    async with TcpPeer(echo=False, upgrade=True) as peer, FaultProxy(peer) as proxy:
        async with await upgraded(proxy, peer) as client:
            proxy.drop_next_ack()
            upstream = peer.connections[0].stream
            ack = build_frame(TEXT, b'431["ok"]')
            event = build_frame(TEXT, b'42["after"]')
            await upstream.send(ack + event + ack)
            assert await receive_exactly(client, len(event) + len(ack)) == event + ack
        assert proxy.stats.faults[Fault.DROP_ACK] == 1
        assert proxy.stats.dropped[TO_CLIENT] == len(ack)


async def test_drop_next_ack_takes_a_binary_acks_attachments() -> None:
    async with (
        TcpPeer(echo=False, upgrade=True) as peer,
        FaultProxy(peer) as proxy,
        await upgraded(proxy, peer) as client,
    ):
        proxy.drop_next_ack()
        upstream = peer.connections[0].stream
        ack = build_frame(TEXT, b'461-7[{"_placeholder":true,"num":0}]')
        attachment = build_frame(BINARY, b"\x00\x01")
        event = build_frame(TEXT, b'42["after"]')
        proxy.split(direction=TO_CLIENT)  # and deliver the rest byte by byte
        await upstream.send(ack + attachment + event)
        assert await receive_exactly(client, len(event)) == event


async def test_corrupt_next_frame_towards_the_client() -> None:
    async with TcpPeer(echo=False, upgrade=True) as peer, FaultProxy(peer) as proxy:
        async with await upgraded(proxy, peer) as client:
            proxy.corrupt_next_frame(TO_CLIENT, Corruption.UTF8)
            upstream = peer.connections[0].stream
            await upstream.send(build_frame(TEXT, b"2") + build_frame(TEXT, b"2"))
            frames = await receive_exactly(client, 6)
            assert frames == build_frame(TEXT, b"\xff") + build_frame(TEXT, b"2")
        assert proxy.stats.faults[Fault.CORRUPT] == 1


async def test_corrupt_next_frame_towards_the_server_keeps_the_mask_right() -> None:
    async with (
        TcpPeer(echo=False, upgrade=True) as peer,
        FaultProxy(peer) as proxy,
        await upgraded(proxy, peer) as client,
    ):
        proxy.corrupt_next_frame(TO_SERVER, Corruption.PACKET_TYPE)
        mask = b"\x01\x02\x03\x04"
        await client.send(build_frame(TEXT, b"3probe", mask=mask))
        upstream = peer.connections[0]
        expected = build_frame(TEXT, b"Xprobe", mask=mask)
        await until(lambda: upstream.received.endswith(expected))


async def test_reset_mid_write_resets_while_the_client_is_still_writing() -> None:
    async with TcpPeer(echo=False, upgrade=True) as peer, FaultProxy(peer) as proxy:
        async with await upgraded(proxy, peer) as client:
            proxy.reset_mid_write(larger_than=64 * 1024, after=1000)
            # Far more than the kernel buffers of both sockets hold: the write is still
            # under way when the proxy stops reading and resets.
            frame = build_frame(BINARY, bytes(32 * 1024 * 1024), mask=b"abcd")
            with pytest.raises(anyio.BrokenResourceError) as info:
                await client.send(frame)
            assert is_reset(info.value)
            upstream = peer.connections[0]
            await upstream.ended.wait()
            assert upstream.ending == "reset"
            header = len(frame) - 32 * 1024 * 1024
            forwarded = len(UPGRADE_REQUEST) + header + 1000
            assert proxy.stats.forwarded[TO_SERVER] == forwarded
            assert frame[: header + 1000].startswith(
                bytes(upstream.received[len(UPGRADE_REQUEST) :])
            )
        assert proxy.stats.faults[Fault.RESET_MID_WRITE] == 1


async def test_heal_lifts_conditions_and_disarms_frame_faults() -> None:
    async with TcpPeer(echo=False, upgrade=True) as peer, FaultProxy(peer) as proxy:
        async with await upgraded(proxy, peer) as client:
            proxy.drop_next_ack()
            proxy.corrupt_next_frame(Direction.BOTH)
            proxy.reset_mid_write(0)
            proxy.blackhole(direction=TO_CLIENT)
            proxy.latency(3600, direction=TO_SERVER)
            proxy.heal()
            ack = build_frame(TEXT, b'430["ok"]')
            await peer.connections[0].stream.send(ack)
            assert await receive_exactly(client, len(ack)) == ack
        assert proxy.stats.faults[Fault.DROP_ACK] == 0
