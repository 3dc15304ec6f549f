"""The bare socket stream of ``_socket``: bytes, EOF, back-pressure, cancellation, closing,
connecting (refused, cancelled, IPv6) and TLS on top, on asyncio and trio."""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import os
import select
import socket
import ssl
import struct
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.abc
import pytest
import trustme
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream

from tether.transport._proxy import Proxy
from tether.transport._socket import QuickAckStream, SocketStream, open_tcp, quick_ack
from tether.transport._stream import describe, open_stream

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0


def _listener(host: str = "127.0.0.1", backlog: int = 5) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.bind((host, 0))
    server.listen(backlog)
    return server


@contextlib.asynccontextmanager
async def connected(host: str = "127.0.0.1") -> AsyncIterator[tuple[SocketStream, socket.socket]]:
    """Our stream, connected to ``host``, and the server's (blocking) end of it."""
    with _listener(host) as server:
        stream = await open_tcp(host, server.getsockname()[1])
        assert isinstance(stream, SocketStream)
        conn, _ = server.accept()  # the handshake is over: already in the accept queue
    with conn:
        conn.settimeout(TIMEOUT)
        try:
            yield stream, conn
        finally:
            await stream.aclose()


def wait_readable(stream: SocketStream) -> None:
    """Block until bytes sent by the server have arrived on our side."""
    sock = stream.extra(SocketAttribute.raw_socket)
    assert select.select([sock], [], [], TIMEOUT)[0], "the bytes never arrived"


@contextlib.contextmanager
def recorded_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[socket.socket]]:
    """Every socket ``open_tcp`` makes, to check that none is left open."""
    made: list[socket.socket] = []

    class Recording(socket.socket):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    with monkeypatch.context() as patch:
        patch.setattr(socket, "socket", Recording)  # _socket calls socket.socket(...)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            yield made
            gc.collect()  # an unclosed socket would warn here
    assert made, "open_tcp made no socket"
    assert all(sock.fileno() == -1 for sock in made)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


# --- bytes ---------------------------------------------------------------------------------


async def test_round_trip_and_attributes() -> None:
    with anyio.fail_after(TIMEOUT):
        async with connected() as (stream, conn):
            await stream.send(b"hello")
            assert conn.recv(100) == b"hello"
            conn.sendall(b"world")
            assert await stream.receive() == b"world"
            await stream.send(b"")  # nothing to send is fine too
            sock = stream.extra(SocketAttribute.raw_socket)
            assert sock.getblocking() is False
            assert stream.extra(SocketAttribute.family) == socket.AF_INET
            assert stream.extra(SocketAttribute.remote_address) == conn.getsockname()
            assert stream.extra(SocketAttribute.local_address) == conn.getpeername()
            assert stream.extra(SocketAttribute.remote_port) == conn.getsockname()[1]


@pytest.mark.parametrize("by_name", [False, True], ids=["address", "host-name"])
async def test_quick_ack_acknowledges_every_read(by_name: bool) -> None:
    """The stream for proxied connections (a proxy that relays without TCP_NODELAY would
    wait for our delayed ACKs): TCP_QUICKACK is on again after every read, over our own
    socket stream and over anyio's (a proxy given by host name)."""
    assert hasattr(socket, "TCP_QUICKACK"), "the test machines run Linux"
    with anyio.fail_after(TIMEOUT), _listener() as server:
        inner = await open_tcp("localhost" if by_name else "127.0.0.1", server.getsockname()[1])
        stream = quick_ack(inner)
        assert isinstance(stream, QuickAckStream)
        conn, _ = server.accept()
        with conn:
            sock = stream.extra(SocketAttribute.raw_socket)
            assert sock is inner.extra(SocketAttribute.raw_socket)
            assert stream.extra(SocketAttribute.remote_port) == server.getsockname()[1]
            for word in (b"one", b"two"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
                conn.sendall(word)
                assert await stream.receive() == word
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
            await stream.send(b"back")
            assert conn.recv(100) == b"back"
            await stream.send_eof()
            assert conn.recv(100) == b""
            await stream.aclose()
            assert sock.fileno() == -1


async def test_connections_to_a_proxy_acknowledge_at_once() -> None:
    with anyio.fail_after(TIMEOUT), _listener() as proxy_server:
        proxy = Proxy("127.0.0.1", proxy_server.getsockname()[1])
        to_proxy = await open_stream(
            "server.example",
            80,
            secure=False,
            ssl_context=None,
            where="x",
            proxy=proxy,
            tunnel=False,
        )
        direct = await open_stream(
            "127.0.0.1", proxy.port, secure=False, ssl_context=None, where="x"
        )
        try:
            assert isinstance(to_proxy, QuickAckStream)
            assert isinstance(direct, SocketStream)
        finally:
            await to_proxy.aclose()
            await direct.aclose()


async def test_eof_both_ways() -> None:
    with anyio.fail_after(TIMEOUT):
        async with connected() as (stream, conn):
            await stream.send_eof()
            assert conn.recv(100) == b""
            conn.sendall(b"last")
            conn.shutdown(socket.SHUT_WR)
            wait_readable(stream)
            assert await stream.receive() == b"last"
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()  # EOF stays EOF


async def test_peer_reset_is_broken_resource_with_the_errno() -> None:
    with anyio.fail_after(TIMEOUT):
        async with connected() as (stream, conn):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # linger 0: RST
            wait_readable(stream)
            with pytest.raises(anyio.BrokenResourceError) as info:
                await stream.receive()
            assert isinstance(info.value.__cause__, ConnectionResetError)
            assert describe(info.value) == "Connection reset by peer (ECONNRESET)"


async def test_large_send_to_a_slow_reader() -> None:
    data = os.urandom(8 * 1024 * 1024)
    digest = hashlib.sha256()
    received = 0

    def slow_reader(conn: socket.socket) -> None:
        nonlocal received
        while received < len(data):
            chunk = conn.recv(256 * 1024)
            if not chunk:
                return
            digest.update(chunk)
            received += len(chunk)
            time.sleep(0.001)  # slower than the writer: the send has to wait for room

    with anyio.fail_after(TIMEOUT):
        async with connected() as (stream, conn):
            reader = threading.Thread(target=slow_reader, args=(conn,), daemon=True)
            reader.start()
            await stream.send(data)
            await anyio.to_thread.run_sync(reader.join, TIMEOUT)
    assert received == len(data)
    assert digest.digest() == hashlib.sha256(data).digest()


async def test_a_flood_does_not_starve_other_tasks() -> None:
    ran = False

    async def other_task() -> None:
        nonlocal ran
        ran = True

    with anyio.fail_after(TIMEOUT):
        async with connected() as (stream, conn):
            conn.sendall(b"x" * 1000)
            wait_readable(stream)
            async with anyio.create_task_group() as tg:
                tg.start_soon(other_task)
                for _ in range(10):  # every read finds data at once, and still checkpoints
                    assert await stream.receive(10) == b"x" * 10
                assert ran


# --- cancellation and closing --------------------------------------------------------------


async def test_cancelled_while_waiting_loses_nothing() -> None:
    with anyio.fail_after(TIMEOUT):
        async with connected() as (stream, conn):
            with anyio.move_on_after(0.05) as scope:
                await stream.receive()
            assert scope.cancelled_caught
            conn.sendall(b"after")
            assert await stream.receive() == b"after"


async def test_cancelled_with_data_there_loses_nothing() -> None:
    with anyio.fail_after(TIMEOUT):
        async with connected() as (stream, conn):
            conn.sendall(b"0123456789")
            wait_readable(stream)
            with anyio.CancelScope() as scope:
                scope.cancel()
                await stream.receive()
            assert scope.cancelled_caught
            with anyio.CancelScope() as scope:  # and again, from what was kept
                scope.cancel()
                await stream.receive()
            assert scope.cancelled_caught
            assert await stream.receive(4) == b"0123"
            assert await stream.receive() == b"456789"
            conn.sendall(b"more")
            assert await stream.receive() == b"more"


async def test_cancelled_send_sends_nothing() -> None:
    with anyio.fail_after(TIMEOUT):
        async with connected() as (stream, conn):
            with anyio.CancelScope() as scope:
                scope.cancel()
                await stream.send(b"never")
            assert scope.cancelled_caught
            await stream.send(b"sent")
            assert conn.recv(100) == b"sent"


@pytest.mark.parametrize("blocked_in", ["receive", "send"])
async def test_aclose_wakes_a_blocked_task(blocked_in: str) -> None:
    errors: list[BaseException] = []

    async def blocked(stream: SocketStream) -> None:
        try:
            if blocked_in == "receive":
                await stream.receive()
            else:
                await stream.send(b"x" * 64 * 1024 * 1024)  # more than the buffers hold
        except Exception as exc:
            errors.append(exc)

    with anyio.fail_after(TIMEOUT):
        async with connected() as (stream, _conn):
            async with anyio.create_task_group() as tg:
                tg.start_soon(blocked, stream)
                await anyio.wait_all_tasks_blocked()
                with anyio.fail_after(1):  # promptly
                    await stream.aclose()
                    await stream.aclose()  # idempotent
            with pytest.raises(anyio.ClosedResourceError):
                await stream.receive()
            with pytest.raises(anyio.ClosedResourceError):
                await stream.send(b"x")
    assert len(errors) == 1
    assert isinstance(errors[0], anyio.ClosedResourceError)


async def test_aclose_in_a_cancelled_scope_closes() -> None:
    async with connected() as (stream, _conn):
        await anyio.aclose_forcefully(stream)
        assert stream.extra(SocketAttribute.raw_socket).fileno() == -1


# --- connecting ----------------------------------------------------------------------------


async def test_connect_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with _listener() as probe:
        port = probe.getsockname()[1]  # nothing listens once it is closed
    with (
        recorded_sockets(monkeypatch),
        anyio.fail_after(TIMEOUT),
        pytest.raises(OSError) as info,
    ):
        await open_tcp("127.0.0.1", port)
    assert isinstance(info.value, ConnectionRefusedError)
    assert info.value.errno == errno.ECONNREFUSED
    assert describe(info.value) == "Connection refused (ECONNREFUSED)"


async def test_connect_cancelled_at_once_closes_the_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _listener() as server, recorded_sockets(monkeypatch):
        with anyio.CancelScope() as scope:
            scope.cancel()
            await open_tcp("127.0.0.1", server.getsockname()[1])
        assert scope.cancelled_caught


async def test_connect_cancelled_while_waiting_closes_the_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A connect to a peer that never answers the SYN (a dropped packet, a dead host) waits
    # in wait_writable until cancelled. Loopback always answers at once, so the test stands
    # in for that one wait (it never returns), and the socket under it is real.
    waiting = anyio.Event()

    async def no_answer(sock: socket.socket) -> None:
        waiting.set()
        await anyio.sleep_forever()

    with _listener() as server, recorded_sockets(monkeypatch):
        monkeypatch.setattr(anyio, "wait_writable", no_answer)  # what _socket calls
        with anyio.fail_after(TIMEOUT), anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(open_tcp, "127.0.0.1", server.getsockname()[1])
                await waiting.wait()
                scope.cancel()
        assert scope.cancelled_caught


async def test_a_host_name_goes_through_anyio() -> None:
    with anyio.fail_after(TIMEOUT), _listener() as server:
        stream = await open_tcp("localhost", server.getsockname()[1])
        async with stream:
            assert not isinstance(stream, SocketStream)
            assert isinstance(stream, anyio.abc.SocketStream)


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_ipv6_literal() -> None:
    if not _ipv6_loopback():
        # A machine without IPv6: the literal must still fail cleanly, with an OSError (no
        # socket, or one closed again: an unclosed one would warn, an error under pytest).
        with anyio.fail_after(TIMEOUT), pytest.raises(OSError):
            await open_tcp("::1", 9)
        return
    with anyio.fail_after(TIMEOUT):
        async with connected("::1") as (stream, conn):
            assert stream.extra(SocketAttribute.family) == socket.AF_INET6
            await stream.send(b"six")
            assert conn.recv(100) == b"six"
            conn.sendall(b"ok")
            assert await stream.receive() == b"ok"


# --- TLS on top ----------------------------------------------------------------------------


async def test_tls_over_the_stream() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    streams: dict[str, TLSStream] = {}

    async def serve(conn: socket.socket) -> None:
        streams["server"] = await TLSStream.wrap(
            SocketStream(conn),
            server_side=True,
            ssl_context=server_context,
            standard_compatible=False,  # closing does not wait for the client's close_notify
        )

    with anyio.fail_after(TIMEOUT):
        with _listener() as server:
            stream = await open_tcp("127.0.0.1", server.getsockname()[1])
            conn, _ = server.accept()
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve, conn)
            client = await TLSStream.wrap(
                stream, hostname="127.0.0.1", ssl_context=client_context, standard_compatible=False
            )
        peer = streams["server"]
        async with client, peer:
            await client.send(b"secret")
            assert await peer.receive() == b"secret"
            await peer.send(b"x" * 200_000)
            got = b""
            while len(got) < 200_000:
                got += await client.receive()
            assert got == b"x" * 200_000
            assert client.extra(SocketAttribute.raw_socket) is stream.extra(
                SocketAttribute.raw_socket
            )


async def test_a_send_the_kernel_takes_at_once_does_not_yield() -> None:
    ran_meanwhile: list[str] = []

    async def other() -> None:
        ran_meanwhile.append("other")

    with anyio.fail_after(TIMEOUT):
        async with connected() as (stream, conn), anyio.create_task_group() as tg:
            tg.start_soon(other)
            await stream.send(b"small")  # room in the kernel buffer: no trip to the loop
            assert ran_meanwhile == []
            assert conn.recv(100) == b"small"
