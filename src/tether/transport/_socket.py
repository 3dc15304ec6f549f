"""A TCP byte stream straight on a non-blocking socket, and the connect that makes one.

Why not ``anyio.connect_tcp``'s stream: on asyncio it is an asyncio transport plus anyio's
``StreamProtocol``, which holds three ``collections.deque`` objects and two
``asyncio.Event`` objects for the life of the connection. An idle client holds those for
nothing: the socket itself already buffers what arrives (benchmarks/README.md, "Memory",
has the figures; ``python -m benchmarks.profile --what memory`` measures them).
:class:`SocketStream` keeps only the socket and waits on it with anyio's public
``wait_readable``/``wait_writable``, so it runs unchanged on asyncio and trio.

And for a host that is already an IP address, ``anyio.connect_tcp`` still runs its happy
eyeballs machinery (a task group, a task, an ``Event`` and a cancel scope per attempt) to
try a single address; :func:`open_tcp` connects such a host itself. Host names still go
through ``anyio.connect_tcp``, which resolves them and races the addresses.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from typing import Final

import anyio
import anyio.abc
import anyio.lowlevel

__all__ = ["QuickAckStream", "SocketStream", "open_tcp", "quick_ack"]

#: What ``connect_ex`` on a non-blocking socket returns while the handshake is under way.
_IN_PROGRESS: Final = frozenset(
    {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, getattr(errno, "WSAEWOULDBLOCK", -1)}
)


class SocketStream(anyio.abc.SocketStream):
    """An ``anyio.abc.SocketStream`` over a connected, non-blocking TCP socket it owns.

    Like anyio's streams, every ``receive()`` is a checkpoint (it lets other tasks run and
    can be cancelled, even when the socket was ready), and a cancelled ``receive()`` loses
    no bytes. Unlike them, a ``send()`` the kernel takes whole at once does not yield (it
    still raises if the scope is cancelled already), and there is no guard against two
    tasks reading (or writing) at once: the transports above never do that (one reader, a
    send lock), and ``wait_readable`` itself refuses a second waiter (``BusyResourceError``).

    Extra attributes (``raw_socket``, ``family``, the addresses and ports) come from
    ``anyio.abc.SocketStream`` through ``_raw_socket``.
    """

    # No per-instance __dict__ is ever filled: the socket, and bytes a cancelled receive()
    # had already taken from it, are all a connection holds here.
    __slots__ = ("_drained", "_pending", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._pending = b""
        self._drained = False  # the last read was short: wait before the next recv

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self._sock.fileno()}>"

    @property
    def _raw_socket(self) -> socket.socket:
        return self._sock

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        if self._pending:
            return await self._receive_pending(max_bytes)
        sock = self._sock
        data: bytes | None = None
        if not self._drained:
            try:
                data = sock.recv(max_bytes)
            except BlockingIOError:
                pass
            except OSError as exc:
                raise _failure(sock) from exc
            else:
                # The data was already there. Checkpoint anyway, so that a peer flooding us
                # cannot starve the other tasks; but after the recv, not before: a
                # checkpoint before it would cost a second trip through the event loop
                # whenever the socket is not ready. If the checkpoint is cancelled, the bytes
                # are kept for the next receive() instead of being lost.
                try:
                    await anyio.lowlevel.checkpoint()
                except BaseException:
                    self._pending = data
                    raise
        if data is None:
            # Nothing there (the usual case for an idle connection, and always after a short
            # read): the wait is the checkpoint, and it takes nothing from the socket, so
            # cancelling it loses nothing. Inline, not a helper coroutine: an idle connection
            # waits here, and every suspended coroutine is a frame held per connection.
            while True:
                # Raises ClosedResourceError if aclose() runs meanwhile (notify_closing).
                await anyio.wait_readable(sock)
                try:
                    data = sock.recv(max_bytes)
                    break
                except BlockingIOError:
                    continue  # woken without data (it can happen): wait again
                except OSError as exc:
                    raise _failure(sock) from exc
        # A read shorter than asked emptied the kernel's buffer: the next one waits for the
        # socket first instead of trying a recv that would fail with EAGAIN (a system call
        # and an exception saved per round trip). If more came meanwhile, the wait returns at
        # once.
        self._drained = len(data) < max_bytes
        if not data:
            raise anyio.EndOfStream
        return data

    async def _receive_pending(self, max_bytes: int) -> bytes:
        await anyio.lowlevel.checkpoint()  # cancelled here: the bytes stay pending
        data = self._pending
        if len(data) > max_bytes:
            data, self._pending = data[:max_bytes], data[max_bytes:]
        else:
            self._pending = b""
        return data

    async def send(self, item: bytes) -> None:
        # A send in a cancelled scope sends nothing; one that returns has sent everything.
        # Only a send cancelled while waiting for room in the kernel buffer may have sent
        # part of item (the transports poison the stream then). When the kernel takes it all
        # at once the send does not yield (like anyio's fast_acquire locks): one event loop
        # turn less per call() round trip, and the writers above never loop on send without
        # awaiting something else in between.
        await anyio.lowlevel.checkpoint_if_cancelled()
        sock = self._sock
        try:
            try:
                sent = sock.send(item)  # usually all of it: the kernel buffer has room
            except BlockingIOError:
                sent = 0
            if sent < len(item):
                view = memoryview(item)[sent:]  # no copies of what remains
                while view:
                    try:
                        sent = sock.send(view)
                    except BlockingIOError:
                        # Raises ClosedResourceError if aclose() runs meanwhile.
                        await anyio.wait_writable(sock)
                    else:
                        view = view[sent:]
        except OSError as exc:
            raise _failure(sock) from exc

    async def send_eof(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise _failure(self._sock) from exc

    async def aclose(self) -> None:
        """Close the socket; a task waiting to read or write gets ClosedResourceError."""
        sock = self._sock
        if sock.fileno() != -1:
            # Before close(): the fd must still be the one the waiters registered, and it
            # must not be reused by another socket while the event loop still watches it.
            anyio.notify_closing(sock)
            sock.close()
        self._pending = b""
        # Shielded: the socket is closed by now, whatever happens, and aclose() in a
        # cancelled scope (aclose_forcefully) should not have to raise to say so.
        await anyio.lowlevel.cancel_shielded_checkpoint()


#: Linux's TCP_QUICKACK; elsewhere there is no such switch (and no stream to make).
_TCP_QUICKACK: Final[int | None] = getattr(socket, "TCP_QUICKACK", None)


class QuickAckStream(anyio.abc.SocketStream):
    """A TCP stream that acknowledges every read at once (``TCP_QUICKACK``, Linux).

    For connections to an HTTP proxy. A proxy that relays each chunk with a write of its own
    on a socket without ``TCP_NODELAY`` (tinyproxy) holds a second small write (Nagle's
    algorithm) until the first is acknowledged, and a client with nothing to send delays
    that acknowledgement (at least 40 ms on Linux): every server reply of two frames (the
    101 and the OPEN packet; the ``hello`` event and the CONNECT reply) took 40 ms longer
    through such a proxy. The switch does not last (the kernel goes back to delayed ACKs
    once it sees a request-reply pattern), so it is set again after every read: one system
    call per read, on proxied connections only. :func:`quick_ack` makes one where it helps.
    """

    __slots__ = ("_inner", "_option", "_sock")

    def __init__(self, inner: anyio.abc.SocketStream, option: int) -> None:
        self._inner = inner
        self._option = option  # TCP_QUICKACK
        self._sock: socket.socket = inner.extra(anyio.abc.SocketAttribute.raw_socket)

    @property
    def _raw_socket(self) -> socket.socket:
        return self._sock

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self._inner.receive(max_bytes)
        with contextlib.suppress(OSError):  # closed under us: the next read says so
            self._sock.setsockopt(socket.IPPROTO_TCP, self._option, 1)
        return data

    async def send(self, item: bytes) -> None:
        await self._inner.send(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()


def quick_ack(stream: anyio.abc.SocketStream) -> anyio.abc.SocketStream:
    """``stream`` acknowledging every read at once where the OS can (:class:`QuickAckStream`),
    else ``stream`` itself."""
    return stream if _TCP_QUICKACK is None else QuickAckStream(stream, _TCP_QUICKACK)


def _failure(sock: socket.socket) -> Exception:
    """What an OSError from ``sock`` means for the stream's user (raised ``from`` it)."""
    if sock.fileno() == -1:  # closed by aclose() (in another task) under our feet
        return anyio.ClosedResourceError()
    # Empty, like anyio's own: describe() in _stream walks __cause__ to the errno.
    return anyio.BrokenResourceError()


async def open_tcp(host: str, port: int) -> anyio.abc.SocketStream:
    """Open a TCP connection to ``host``:``port``, with ``TCP_NODELAY`` set.

    An IP address is connected directly into a :class:`SocketStream`; a host name goes
    through ``anyio.connect_tcp`` (DNS, happy eyeballs) and its stream is returned as is.
    Raises OSError if the connection cannot be made: for an IP address, the OSError of the
    socket's error (``ConnectionRefusedError`` with ``errno.ECONNREFUSED``, ...), which is
    what anyio's "All connection attempts failed" error has as its cause. The socket is
    closed whenever this fails or is cancelled.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        stream = await anyio.connect_tcp(host, port)
        try:
            _set_nodelay(stream.extra(anyio.abc.SocketAttribute.raw_socket))
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        return stream
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        _set_nodelay(sock)
        # connect_ex: no exception object for the expected "in progress" answer.
        error = sock.connect_ex((host, port))
        if error in _IN_PROGRESS:
            await anyio.wait_writable(sock)  # writable once the handshake is over, either way
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        else:
            await anyio.lowlevel.checkpoint()
        if error:
            # OSError(errno, text) is the matching subclass: ConnectionRefusedError, ...
            raise OSError(error, os.strerror(error))
    except BaseException:
        sock.close()
        raise
    return SocketStream(sock)


def _set_nodelay(sock: socket.socket) -> None:
    """Engine.IO packets are small and latency-bound: don't let Nagle hold them back."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
