"""A fault-injection TCP proxy for tests: anyio, loopback only, asyncio and trio.

``async with FaultProxy(upstream) as proxy:`` listens on ``127.0.0.1`` (a free port) in the
test's own event loop and forwards every accepted connection to ``upstream`` (a
``host:port`` on loopback). Point a client at ``proxy.url`` instead of the server, then
break things with the control methods; tests/faults/README.md says what each does at the
byte level.

Each connection is a pair of streams and two directions. Each direction is a reader
(socket → :class:`frames.FrameFilter` → a bounded queue) and a writer (queue → latency,
black hole, throttle, split → socket), so a slow or stopped writer holds at most
``queue_chunks`` chunks of ``chunk_size`` bytes before the reader stops and TCP's own flow
control pushes back on the sender. Conditions (black hole, latency, throttle, split,
refuse) apply to live connections at once and to every later one until lifted;
``fin()`` and ``reset()`` act on the live connections; frame faults are armed once and
taken by the first frame they fit, on whichever connection it passes.

On leaving ``async with`` every task ends and every socket is closed at once (a plain
close: the kernel sends FIN, or RST where unread bytes wait). ``max_connections`` bounds
the live connections, and apart from them the orderly refusals still draining: past
either, a new connection is reset.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import ipaddress
import socket
import struct
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .chaos import ChaosStep, chaos, play
from .frames import FrameFaults, FrameFilter
from .kinds import Corruption, Direction, Fault

__all__ = ["FaultProxy", "ProxiedConnection", "ProxyStats"]

TO_SERVER: Final = Direction.TO_SERVER
TO_CLIENT: Final = Direction.TO_CLIENT

#: SO_LINGER on, timeout 0: close() discards what is unsent and sends RST instead of FIN
#: (RFC 793 §3.5 "abort"; socket(7) SO_LINGER).
_LINGER_ZERO: Final = struct.pack("ii", 1, 0)

_SocketErrors = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


@dataclasses.dataclass
class ProxyStats:
    """Counters, live (read them while the proxy runs or after it stopped)."""

    accepted: int = 0  # connections accepted and forwarded
    refused: int = 0  # connections accepted and closed/reset at once (refuse, over limit)
    closed: int = 0  # forwarded connections that ended, whatever the reason
    upstream_failures: int = 0  # the upstream could not be reached: the client was reset
    peer_resets: int = 0  # a peer reset or broke a connection (passed on as a reset)
    received: dict[Direction, int] = dataclasses.field(default_factory=lambda: _per_direction())
    forwarded: dict[Direction, int] = dataclasses.field(default_factory=lambda: _per_direction())
    dropped: dict[Direction, int] = dataclasses.field(default_factory=lambda: _per_direction())
    writes: dict[Direction, int] = dataclasses.field(default_factory=lambda: _per_direction())
    largest_write: dict[Direction, int] = dataclasses.field(
        default_factory=lambda: _per_direction()
    )
    frames: dict[Direction, int] = dataclasses.field(default_factory=lambda: _per_direction())
    eofs_received: dict[Direction, int] = dataclasses.field(
        default_factory=lambda: _per_direction()
    )
    eofs_forwarded: dict[Direction, int] = dataclasses.field(
        default_factory=lambda: _per_direction()
    )
    faults: collections.Counter[Fault] = dataclasses.field(default_factory=collections.Counter)


def _per_direction() -> dict[Direction, int]:
    return {TO_SERVER: 0, TO_CLIENT: 0}


@dataclasses.dataclass
class _Conditions:
    """What the writers and the accept loop look at before every step."""

    blackhole: dict[Direction, bool] = dataclasses.field(
        default_factory=lambda: {TO_SERVER: False, TO_CLIENT: False}
    )
    discard: dict[Direction, bool] = dataclasses.field(
        default_factory=lambda: {TO_SERVER: False, TO_CLIENT: False}
    )
    latency: dict[Direction, float] = dataclasses.field(
        default_factory=lambda: {TO_SERVER: 0.0, TO_CLIENT: 0.0}
    )
    throttle: dict[Direction, int | None] = dataclasses.field(
        default_factory=lambda: {TO_SERVER: None, TO_CLIENT: None}
    )
    split: dict[Direction, bool] = dataclasses.field(
        default_factory=lambda: {TO_SERVER: False, TO_CLIENT: False}
    )
    refuse: bool = False
    refuse_with_reset: bool = False


class _Eof:
    """End of one direction: the source sent FIN."""

    __slots__ = ("arrival",)

    def __init__(self, arrival: float) -> None:
        self.arrival = arrival


class _Chunk:
    __slots__ = ("arrival", "data", "reset_after")

    def __init__(self, arrival: float, data: bytes, reset_after: bool) -> None:
        self.arrival = arrival
        self.data = data
        self.reset_after = reset_after  # a mid-write reset: RST once this is written


_Item = _Chunk | _Eof


def _raw_socket(stream: anyio.abc.SocketStream) -> socket.socket:
    # asyncio: the transport's TransportSocket (setsockopt allowed); trio: the socket.socket
    # under the trio socket. Both through anyio's public extra attribute.
    return stream.extra(anyio.abc.SocketAttribute.raw_socket)


def _linger_zero(stream: anyio.abc.SocketStream) -> None:
    with contextlib.suppress(OSError):
        _raw_socket(stream).setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)


def _no_delay(stream: anyio.abc.SocketStream) -> None:
    # Nagle would merge the 1-byte writes of split() and delay small frames.
    with contextlib.suppress(OSError):
        _raw_socket(stream).setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _reset_close(stream: anyio.abc.SocketStream) -> None:
    _linger_zero(stream)
    with anyio.CancelScope(shield=True):
        await stream.aclose()


async def _orderly_close(streams: Iterable[anyio.abc.SocketStream], grace: float) -> None:
    """FIN to each stream, discard what they still send until their own FIN, then close.

    Closing a socket with unread bytes makes the kernel send RST, not FIN (RFC 2525 §2.17),
    hence the draining; ``grace`` bounds it for a peer that never closes its side.
    """
    streams = list(streams)
    for stream in streams:
        with contextlib.suppress(*_SocketErrors):
            await stream.send_eof()
    with anyio.move_on_after(grace):
        async with anyio.create_task_group() as group:
            for stream in streams:
                group.start_soon(_drain, stream)
    with anyio.CancelScope(shield=True):
        for stream in streams:
            await stream.aclose()


async def _drain(stream: anyio.abc.SocketStream) -> None:
    with contextlib.suppress(anyio.EndOfStream, *_SocketErrors):
        while True:
            await stream.receive()


class _Ending(enum.Enum):
    CLOSE = "closing"  # both directions ended with FIN: close both sockets
    FIN = "fin"  # fin(): FIN both ways now
    RESET = "reset"  # reset(), a mid-write reset, or a peer's reset passed on


class ProxiedConnection:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: FaultProxy, number: int, client: anyio.abc.SocketStream) -> None:
        self.proxy = proxy
        self.number = number
        self.client = client
        self.upstream: anyio.abc.SocketStream | None = None
        self.ending: _Ending | None = None
        self.fin_sent = anyio.Event()
        self.closed = anyio.Event()
        self._scope = anyio.CancelScope()  # the whole connection: reset() cancels it
        self._forwarding: anyio.CancelScope | None = None
        self._eof_written: set[Direction] = set()
        # Throttle: the earliest time of the next write, per direction (no burst credit).
        self._next_write = {TO_SERVER: 0.0, TO_CLIENT: 0.0}

    def __repr__(self) -> str:
        if self.closed.is_set():
            state = "closed"
        else:
            state = "forwarding" if self.ending is None else self.ending.value
        return f"<ProxiedConnection #{self.number} {state}>"

    @property
    def sockets(self) -> list[socket.socket]:
        """The raw sockets (for tests that check they were closed: ``fileno() == -1``)."""
        streams = [self.client] if self.upstream is None else [self.client, self.upstream]
        return [_raw_socket(stream) for stream in streams]

    def fin(self) -> None:
        """Stop forwarding and close both sides in order (FIN); see ``FaultProxy.fin``."""
        self._end(_Ending.FIN)

    def reset(self) -> None:
        """RST both sides at once; see ``FaultProxy.reset``."""
        if not self.closed.is_set():
            # SO_LINGER 0 now, so that whichever close comes first resets.
            _linger_zero(self.client)
            if self.upstream is not None:
                _linger_zero(self.upstream)
        self._end(_Ending.RESET)

    def _end(self, how: _Ending) -> None:
        if how is _Ending.RESET:
            # A reset cuts everything short: the upstream connect, the forwarding, the FIN
            # drain.
            self.ending = how
            self._scope.cancel()
            return
        if self.ending is None:
            self.ending = how
        if self._forwarding is not None:
            self._forwarding.cancel()

    async def run(self) -> None:
        """Connect to the upstream, forward until an ending, close. Never raises."""
        proxy = self.proxy
        queues: list[MemoryObjectSendStream[_Item] | MemoryObjectReceiveStream[_Item]] = []
        try:
            with self._scope:
                try:
                    with anyio.fail_after(proxy.connect_timeout):
                        upstream = await anyio.connect_tcp(proxy.upstream_host, proxy.upstream_port)
                except (OSError, TimeoutError):
                    proxy.stats.upstream_failures += 1
                    self.ending = _Ending.RESET  # as near as a proxy gets to "refused"
                    return
                self.upstream = upstream
                _no_delay(self.client)
                _no_delay(upstream)
                if self.ending is None:  # not fin'ed while the upstream connected
                    async with anyio.create_task_group() as group:
                        self._forwarding = group.cancel_scope
                        for direction, source, target in (
                            (TO_SERVER, self.client, upstream),
                            (TO_CLIENT, upstream, self.client),
                        ):
                            send, receive = anyio.create_memory_object_stream[_Item](
                                proxy.queue_chunks
                            )
                            queues += (send, receive)
                            group.start_soon(self._read, direction, source, send)
                            group.start_soon(self._write, direction, target, receive)
                if self.ending is _Ending.FIN:
                    with anyio.CancelScope(shield=True):
                        for stream in (self.client, upstream):
                            with contextlib.suppress(*_SocketErrors):
                                await stream.send_eof()
                    self.fin_sent.set()
                    await _orderly_close((self.client, upstream), proxy.fin_grace)
        finally:
            for queue in queues:
                queue.close()
            streams = [self.client] if self.upstream is None else [self.client, self.upstream]
            with anyio.CancelScope(shield=True):
                for stream in streams:
                    if self.ending is _Ending.RESET:
                        _linger_zero(stream)
                    await stream.aclose()
            self.fin_sent.set()
            self.closed.set()

    async def _read(
        self,
        direction: Direction,
        source: anyio.abc.SocketStream,
        queue: MemoryObjectSendStream[_Item],
    ) -> None:
        proxy = self.proxy
        stats = proxy.stats
        frame_filter = FrameFilter(direction, proxy.frame_faults[direction])
        frames_seen = 0
        with queue:
            while True:
                try:
                    data = await source.receive(proxy.chunk_size)
                except anyio.EndOfStream:
                    stats.eofs_received[direction] += 1
                    await queue.send(_Eof(anyio.current_time()))
                    return
                except _SocketErrors:
                    stats.peer_resets += 1
                    self._end(_Ending.RESET)
                    return
                arrival = anyio.current_time()
                stats.received[direction] += len(data)
                filtered = frame_filter.feed(data)
                stats.frames[direction] += frame_filter.frames - frames_seen
                frames_seen = frame_filter.frames
                stats.dropped[direction] += filtered.dropped
                stats.faults.update(filtered.applied)
                if filtered.data or filtered.reset:
                    await queue.send(_Chunk(arrival, filtered.data, filtered.reset))
                if filtered.reset:
                    # Stop reading: what the client still sends of the frame stays in its
                    # socket buffers, so a large write is cut off while it is under way.
                    await anyio.sleep_forever()

    async def _write(
        self,
        direction: Direction,
        target: anyio.abc.SocketStream,
        queue: MemoryObjectReceiveStream[_Item],
    ) -> None:
        proxy = self.proxy
        with queue:
            async for item in queue:
                await proxy._wait_released(direction, item.arrival)
                if isinstance(item, _Eof):
                    await proxy._wait_not_held(direction)  # a black hole holds FIN too
                    with contextlib.suppress(*_SocketErrors):
                        await target.send_eof()
                    proxy.stats.eofs_forwarded[direction] += 1
                    self._eof_written.add(direction)
                    if len(self._eof_written) == 2:
                        self._end(_Ending.CLOSE)
                    return
                try:
                    await self._deliver(direction, target, item.data)
                except _SocketErrors:
                    proxy.stats.peer_resets += 1
                    self._end(_Ending.RESET)
                    return
                if item.reset_after:
                    self.reset()
                    return

    async def _deliver(
        self, direction: Direction, target: anyio.abc.SocketStream, data: bytes
    ) -> None:
        """Write ``data`` as the conditions say, one piece at a time (they may change
        between pieces)."""
        proxy = self.proxy
        stats = proxy.stats
        conditions = proxy._conditions
        pos = 0
        while pos < len(data):
            if conditions.blackhole[direction]:
                if conditions.discard[direction]:
                    stats.dropped[direction] += len(data) - pos
                    return
                await proxy._wait_not_held(direction)
                conditions = proxy._conditions
                continue
            size = len(data) - pos
            if conditions.split[direction]:
                size = 1
            rate = conditions.throttle[direction]
            if rate is not None:
                size = min(size, max(1, rate // 10))
                now = anyio.current_time()
                next_write = self._next_write[direction]
                if now < next_write:
                    await proxy._wait_change(next_write)
                    conditions = proxy._conditions
                    continue
                self._next_write[direction] = now + size / rate
            piece = data[pos : pos + size]
            await target.send(piece)
            pos += size
            stats.forwarded[direction] += size
            stats.writes[direction] += 1
            if size > stats.largest_write[direction]:
                stats.largest_write[direction] = size
            conditions = proxy._conditions


class FaultProxy:
    """A TCP proxy on ``127.0.0.1`` that breaks connections on command. See the module doc.

    ``upstream`` is ``"host:port"``, ``"http://host:port"``, a ``(host, port)`` pair or any
    object with ``host`` and ``port`` attributes (the server handles of tests/servers); the
    host must be a loopback address or ``localhost``.
    """

    def __init__(
        self,
        upstream: object,
        *,
        max_connections: int = 64,
        chunk_size: int = 64 * 1024,
        queue_chunks: int = 16,
        fin_grace: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.upstream_host, self.upstream_port = _parse_upstream(upstream)
        if max_connections < 1 or chunk_size < 1 or queue_chunks < 1:
            raise ValueError("max_connections, chunk_size and queue_chunks must be >= 1")
        self.max_connections = max_connections
        self.chunk_size = chunk_size
        self.queue_chunks = queue_chunks
        self.fin_grace = fin_grace
        self.connect_timeout = connect_timeout
        self.stats = ProxyStats()
        self.frame_faults = {TO_SERVER: FrameFaults(), TO_CLIENT: FrameFaults()}
        self.host = "127.0.0.1"
        self.port = 0
        self._conditions = _Conditions()
        self._changed: anyio.Event | None = None
        self._live: list[ProxiedConnection] = []
        self._numbers = 0
        self._refusing = 0  # orderly refusals still draining
        self._task_group: anyio.abc.TaskGroup | None = None
        self._exit_stack: contextlib.AsyncExitStack | None = None

    def __repr__(self) -> str:
        return (
            f"<FaultProxy {self.url} -> {self.upstream_host}:{self.upstream_port}"
            f" live={len(self._live)}>"
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def connections(self) -> list[ProxiedConnection]:
        """The live connections, oldest first (a copy)."""
        return list(self._live)

    @property
    def live(self) -> int:
        return len(self._live)

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> FaultProxy:
        if self._exit_stack is not None:
            raise RuntimeError("a FaultProxy runs once")
        self._changed = anyio.Event()
        async with contextlib.AsyncExitStack() as stack:
            listener = await anyio.create_tcp_listener(local_host=self.host, local_port=0)
            await stack.enter_async_context(listener)
            sock_listener = listener.listeners[0]  # one: a single loopback address
            assert isinstance(sock_listener, anyio.abc.SocketListener)
            self.port = sock_listener.extra(anyio.abc.SocketAttribute.local_port)
            group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(group.cancel_scope.cancel)  # runs first on exit
            self._task_group = group
            group.start_soon(self._accept_loop, sock_listener)
            self._exit_stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._exit_stack = self._exit_stack, None
        assert stack is not None
        return await stack.__aexit__(exc_type, exc, tb)

    # -- conditions: live connections and the next ones, until lifted -------------------------

    def blackhole(
        self, on: bool = True, *, direction: Direction = Direction.BOTH, discard: bool = False
    ) -> None:
        """Stop forwarding (both ways by default); every socket stays open, nothing is sent.

        By default the bytes are *held*: the proxy keeps what it had read (at most
        ``queue_chunks`` chunks per direction) and stops reading, so the rest waits in the
        kernel's socket buffers and the sender's writes block once those fill, as in a
        network partition that TCP rides out; lifting it delivers everything in order.
        With ``discard=True`` the proxy keeps reading and throws the bytes away (counted in
        ``stats.dropped``): after lifting, the stream goes on from wherever it is, torn.
        An EOF never passes a black hole; it is passed on once the black hole is lifted.
        """
        for each in direction.each():
            self._conditions.blackhole[each] = on
            self._conditions.discard[each] = on and discard
        if on:
            self.stats.faults[Fault.BLACKHOLE] += 1
        self._touch()

    def latency(self, seconds: float, *, direction: Direction = Direction.BOTH) -> None:
        """Forward every chunk ``seconds`` after it arrived (0 lifts it); order is kept."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        for each in direction.each():
            self._conditions.latency[each] = seconds
        if seconds:
            self.stats.faults[Fault.LATENCY] += 1
        self._touch()

    def throttle(
        self, bytes_per_second: int | None, *, direction: Direction = Direction.BOTH
    ) -> None:
        """At most ``bytes_per_second`` per direction and connection (``None`` lifts it).

        Writes are cut to a tenth of a second's worth (at least 1 byte) and spaced so that
        the rate is never exceeded, even right after an idle spell (no burst credit).
        """
        if bytes_per_second is not None and bytes_per_second < 1:
            raise ValueError("bytes_per_second must be >= 1 or None")
        for each in direction.each():
            self._conditions.throttle[each] = bytes_per_second
        if bytes_per_second is not None:
            self.stats.faults[Fault.THROTTLE] += 1
        self._touch()

    def split(self, on: bool = True, *, direction: Direction = Direction.BOTH) -> None:
        """Forward one byte per write (TCP_NODELAY is on: one segment each, as a rule).

        The receiver usually reads them one by one, though a receiver slower than the proxy
        may find several in its buffer at once.
        """
        for each in direction.each():
            self._conditions.split[each] = on
        if on:
            self.stats.faults[Fault.SPLIT] += 1
        self._touch()

    def refuse(self, on: bool = True, *, reset: bool = False) -> None:
        """New connections are accepted and closed at once, nothing forwarded upstream.

        By default with FIN (the client's first read sees EOF: the server "hung up");
        with ``reset=True``, with RST (its read or write fails with ECONNRESET). Live
        connections are not touched. Each refused connection counts in ``stats.refused``
        and ``stats.faults[Fault.REFUSE]``.
        """
        self._conditions.refuse = on
        self._conditions.refuse_with_reset = reset

    # -- actions on the live connections ------------------------------------------------------

    async def fin(self) -> int:
        """Close every live connection in order: FIN to the client and to the upstream.

        Forwarding stops at once (what the proxy still held is not sent); then the proxy
        discards whatever either side still sends until that side closes too (at most
        ``fin_grace`` seconds) and closes the sockets. Returns once the FINs are sent; the
        number of connections.
        """
        live = list(self._live)
        for connection in live:
            connection.fin()
        for connection in live:
            await connection.fin_sent.wait()
        self.stats.faults[Fault.FIN] += len(live)
        return len(live)

    async def reset(self) -> int:
        """Reset every live connection: SO_LINGER 0 on both sockets, then close (RST both
        ways, anything unsent discarded). Returns once closed; the number of connections."""
        live = list(self._live)
        for connection in live:
            connection.reset()
        for connection in live:
            await connection.closed.wait()
        self.stats.faults[Fault.RESET] += len(live)
        return len(live)

    # -- frame faults: armed once, taken by the first frame they fit --------------------------

    def corrupt_next_frame(
        self,
        direction: Direction = Direction.TO_CLIENT,
        how: Corruption = Corruption.PACKET_TYPE,
    ) -> None:
        """Break the next frame that fits ``how`` (a text frame, or any frame for OPCODE)
        in ``direction`` (both: the next one each way). See :class:`Corruption`."""
        for each in direction.each():
            self.frame_faults[each].corrupt = how

    def drop_next_ack(self, count: int = 1) -> None:
        """Remove the next ``count`` Socket.IO ACKs (``43...``, and ``46...`` with their
        attachments) from what the upstream sends: the client's ``call()`` never hears back.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        self.frame_faults[TO_CLIENT].drop_acks += count

    def reset_mid_write(
        self,
        larger_than: int = 64 * 1024,
        *,
        after: int | None = None,
        direction: Direction = Direction.TO_SERVER,
    ) -> None:
        """On the next frame with a payload over ``larger_than`` bytes: forward its header
        and ``after`` payload bytes (default: half), stop reading the sender, and reset the
        connection both ways, while the sender is still writing that frame."""
        if larger_than < 0 or (after is not None and after < 0):
            raise ValueError("larger_than and after must be >= 0")
        for each in direction.each():
            faults = self.frame_faults[each]
            faults.reset_larger_than = larger_than
            faults.reset_after = after

    def heal(self) -> None:
        """Lift every condition and disarm every frame fault (live connections stay)."""
        self._conditions = _Conditions()
        for faults in self.frame_faults.values():
            faults.clear()
        self._touch()

    # -- running a fault schedule -------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def chaos(
        self,
        seed: int,
        *,
        every: tuple[float, float] = (0.2, 2.0),
        faults: Iterable[Fault] | None = None,
    ) -> AsyncIterator[list[tuple[float, ChaosStep]]]:
        """Play ``chaos.chaos(seed, every=..., faults=...)`` in the background while the
        block runs; yields the list of steps played so far, as ``(time, step)``. On exit the
        schedule stops and :meth:`heal` lifts what it left."""
        played: list[tuple[float, ChaosStep]] = []
        steps = chaos(seed, every=every, faults=faults)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(play, self, steps, played)
                yield played
                group.cancel_scope.cancel()
        finally:
            self.heal()

    # -- inside ---------------------------------------------------------------------------------

    def _touch(self) -> None:
        """Wake every task that waits for a condition to change."""
        changed = self._changed
        if changed is not None:
            changed.set()
            self._changed = anyio.Event()

    async def _wait_change(self, deadline: float = float("inf")) -> None:
        changed = self._changed
        assert changed is not None
        with anyio.move_on_at(deadline):
            await changed.wait()

    async def _wait_released(self, direction: Direction, arrival: float) -> None:
        while True:
            release = arrival + self._conditions.latency[direction]
            if anyio.current_time() >= release:
                return
            await self._wait_change(release)

    async def _wait_not_held(self, direction: Direction) -> None:
        while self._conditions.blackhole[direction]:
            await self._wait_change()

    async def _accept_loop(self, listener: anyio.abc.SocketListener) -> None:
        group = self._task_group
        assert group is not None
        while True:
            client = await listener.accept()
            conditions = self._conditions
            if not conditions.refuse and len(self._live) < self.max_connections:
                self._numbers += 1
                connection = ProxiedConnection(self, self._numbers, client)
                self._live.append(connection)
                self.stats.accepted += 1
                group.start_soon(self._serve, connection)
                continue
            self.stats.refused += 1
            if conditions.refuse:
                self.stats.faults[Fault.REFUSE] += 1
            # An orderly refusal drains for up to fin_grace: past max_connections of them
            # at once, and past the limit of live connections, the refusal is a reset.
            orderly = conditions.refuse and not conditions.refuse_with_reset
            if orderly and self._refusing < self.max_connections:
                self._refusing += 1
                group.start_soon(self._refuse_in_order, client)
            else:
                await _reset_close(client)

    async def _refuse_in_order(self, client: anyio.abc.SocketStream) -> None:
        try:
            await _orderly_close((client,), self.fin_grace)
        finally:
            self._refusing -= 1

    async def _serve(self, connection: ProxiedConnection) -> None:
        try:
            await connection.run()
        finally:
            self._live.remove(connection)
            self.stats.closed += 1


def _parse_upstream(upstream: object) -> tuple[str, int]:
    host: object
    port: object
    if isinstance(upstream, str):
        text = upstream if "://" in upstream else f"tcp://{upstream}"
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    elif isinstance(upstream, tuple) and len(upstream) == 2:
        host, port = upstream
    else:
        host, port = getattr(upstream, "host", None), getattr(upstream, "port", None)
    if not isinstance(host, str) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"upstream must name a host and a port, got {upstream!r}")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"the fault proxy forwards to loopback only, not {host!r}")
    return host, port
