"""An in-memory transport, so driver tests can play the server without sockets.

A :class:`MemoryConnector` stands in for :class:`~tether.transport.WebSocketConnector`. Each
successful ``connect()`` gives the client a :class:`MemoryTransport` and queues the other
end, a :class:`MemoryPeer`, for the test to ``accept()``::

    connector = MemoryConnector()
    ...  # start the client with connector=connector
    peer = await connector.accept()
    await peer.send('0{"sid":"s1","pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}')
    assert await peer.receive() == "40"
    peer.close()      # the client sees TransportError("transport close")
    connector.fail_next(2)   # the next two attempts raise TransportError("transport error")
    connector.hang_next()    # the next attempt blocks until the caller's timeout cancels it

Semantics match the WebSocket transport where a driver could notice: messages arrive in
order and whole; after ``close()``/``fail()`` the other side first receives everything sent
before it, then the error; sending to a side that has gone raises :class:`TransportError`;
``max_message_size`` (UTF-8 bytes for text) fails the client with ``"transport error"``.
Unlike a socket, nothing is lost or reordered by timing, which keeps tests deterministic.

Built on anyio events rather than memory object streams: those warn when garbage-collected
unclosed, and a test that forgets one peer should not fail another test at random.
"""

from __future__ import annotations

import math
import ssl
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import anyio
import anyio.lowlevel

from tether._url import redact_url

from ._base import (
    TRANSPORT_CLOSE,
    TRANSPORT_ERROR,
    Message,
    ReadDeadline,
    TransportError,
    TransportErrorReason,
    encode_headers,
)

__all__ = ["ConnectAttempt", "MemoryConnector", "MemoryPeer", "MemoryTransport"]

_HANG: Final = "hang"


def _copy(error: TransportError) -> TransportError:
    return TransportError(error.reason, str(error), status=error.status)


class _Pipe:
    """One direction: messages in order, then how the writer ended (or that the reader left)."""

    def __init__(self) -> None:
        self.items: deque[Message] = deque()
        self.end: TransportError | None = None  # writer finished: drain, then raise this
        self.gone: TransportError | None = None  # reader left: reads and writes raise this
        self._wakeup: anyio.Event | None = None

    def put(self, item: Message) -> None:
        self.items.append(item)
        self._wake()

    # finish() and leave() are each called at most once: by the writing end and the reading
    # end respectively, when that end ends.
    def finish(self, error: TransportError) -> None:
        self.end = error
        self._wake()

    def leave(self, error: TransportError) -> None:
        self.gone = error
        self.items.clear()
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    async def get(self) -> Message:
        await anyio.lowlevel.checkpoint()
        while True:
            if self.gone is not None:
                raise _copy(self.gone)
            if self.items:
                return self.items.popleft()
            if self.end is not None:
                raise _copy(self.end)
            if self._wakeup is None:
                self._wakeup = anyio.Event()
            await self._wakeup.wait()


class _MemoryEnd:
    """What both ends share: the Transport interface over two pipes."""

    def __init__(self, inbox: _Pipe, outbox: _Pipe, where: str) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._where = where
        self._ended: TransportError | None = None

    @property
    def closed(self) -> bool:
        """True once this end was closed, failed, or learned that the other end has gone."""
        return self._ended is not None

    async def send(self, message: Message) -> None:
        """Deliver one message to the other end (after everything sent before it)."""
        await self.send_many((message,))

    async def send_many(self, messages: Iterable[Message]) -> None:
        """Deliver several messages, in order, with nothing in between."""
        await anyio.lowlevel.checkpoint()
        batch = list(messages)
        for message in batch:
            if not isinstance(message, (str, bytes)):
                raise TypeError(f"a message is str or bytes, not {type(message).__name__}")
        self._check_open()
        for message in batch:
            self._outbox.put(message)

    async def _receive(self) -> Message:
        """Return the next message, or raise :class:`TransportError` once the link ended."""
        if self._ended is not None:
            await anyio.lowlevel.checkpoint()
            raise _copy(self._ended)
        try:
            return await self._inbox.get()
        except TransportError as exc:
            self._end(exc.reason, str(exc))
            raise

    async def aclose(self) -> None:
        """Close this end; the other end sees ``"transport close"``. Idempotent."""
        self._end(TRANSPORT_CLOSE, f"the connection to {self._where} was closed")
        await anyio.lowlevel.cancel_shielded_checkpoint()

    def _check_open(self) -> None:
        if self._ended is not None:
            raise _copy(self._ended)
        if self._outbox.gone is not None:
            self._end(self._outbox.gone.reason, str(self._outbox.gone))
            raise _copy(self._outbox.gone)

    def _end(self, reason: TransportErrorReason, message: str) -> None:
        if self._ended is None:
            error = TransportError(reason, message)
            self._ended = error
            self._outbox.finish(error)
            self._inbox.leave(error)


class MemoryTransport(ReadDeadline, _MemoryEnd):
    """The client's end of a memory connection; a :class:`~tether.transport.Transport`."""

    #: Transport.name: it stands in for a WebSocket; a driver test may set another name.
    name: str = "websocket"

    def __init__(self, inbox: _Pipe, outbox: _Pipe, where: str, max_message_size: int) -> None:
        super().__init__(inbox, outbox, where)
        self._max = max_message_size

    def __repr__(self) -> str:
        return f"<MemoryTransport {self._where} {'closed' if self.closed else 'open'}>"

    async def receive(self) -> Message | None:
        """Return the next message, or ``None`` once ``read_deadline`` has passed and no
        message waits; one over ``max_message_size`` fails the connection."""
        inbox = self._inbox
        if self._read_deadline == math.inf or inbox.items or self._ended is not None:
            message = await self._receive()
        else:
            with anyio.CancelScope(deadline=self._read_deadline) as scope:
                self._read_scope = scope
                try:
                    message = await self._receive()
                finally:
                    self._read_scope = None
            if scope.cancelled_caught:
                return None
        size = len(message.encode("utf-8")) if isinstance(message, str) else len(message)
        if size > self._max:
            self._end(
                TRANSPORT_ERROR,
                f"a message from {self._where} exceeds max_message_size "
                f"({size} > {self._max} bytes)",
            )
            assert self._ended is not None
            raise _copy(self._ended)
        return message


@dataclass(frozen=True, eq=False)
class ConnectAttempt:
    """What the client passed to one ``MemoryConnector.connect()`` call."""

    url: str
    headers: tuple[tuple[str, str], ...]
    ssl_context: ssl.SSLContext | None
    max_message_size: int

    def __repr__(self) -> str:
        # Header values and query strings may be secrets: show names and the bare URL only.
        names = [name for name, _ in self.headers]
        return (
            f"ConnectAttempt(url={redact_url(self.url)!r}, header_names={names!r}, "
            f"ssl_context={self.ssl_context!r}, max_message_size={self.max_message_size})"
        )


class MemoryPeer(_MemoryEnd):
    """The server's end of a memory connection, driven by the test.

    Besides ``send``, ``send_many``, ``receive`` and ``aclose`` it has ``close()`` and
    ``fail()``, synchronous so a test can call them anywhere, and ``attempt``, the arguments
    of the ``connect()`` that made it.
    """

    def __init__(self, inbox: _Pipe, outbox: _Pipe, attempt: ConnectAttempt) -> None:
        super().__init__(inbox, outbox, "the client")
        self.attempt = attempt

    def __repr__(self) -> str:
        return f"<MemoryPeer {redact_url(self.attempt.url)} {'closed' if self.closed else 'open'}>"

    async def receive(self) -> Message:
        """Return the next message the client sent, or raise once the link ended."""
        return await self._receive()

    def close(self, message: str = "the server closed the connection") -> None:
        """End cleanly: after the messages already sent, the client sees "transport close"."""
        self._end(TRANSPORT_CLOSE, message)

    def fail(self, message: str = "the connection was reset") -> None:
        """Break the link: after the messages already sent, the client sees "transport error"."""
        self._end(TRANSPORT_ERROR, message)


class MemoryConnector:
    """A :class:`~tether.transport.Connector` whose server side is the test.

    ``attempts`` lists every ``connect()`` call in order, including failed and hung ones.
    """

    def __init__(self) -> None:
        self.attempts: list[ConnectAttempt] = []
        self._plans: deque[TransportError | Literal["hang"]] = deque()
        self._peers: deque[MemoryPeer] = deque()
        self._wakeup: anyio.Event | None = None

    def fail_next(
        self,
        count: int = 1,
        *,
        reason: TransportErrorReason = TRANSPORT_ERROR,
        message: str = "connection refused (scripted by MemoryConnector)",
        status: int | None = None,
    ) -> None:
        """Make the next ``count`` attempts raise ``TransportError(reason, message, status)``.

        Scripts queue up: ``fail_next(); hang_next()`` fails one attempt, then hangs one.
        """
        error = TransportError(reason, message, status=status)
        self._plans.extend([error] * count)

    def hang_next(self, count: int = 1) -> None:
        """Make the next ``count`` attempts block until the caller cancels them."""
        self._plans.extend([_HANG] * count)

    async def connect(
        self,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        ssl_context: ssl.SSLContext | None = None,
        max_message_size: int = 1_000_000,
    ) -> MemoryTransport:
        """Record the attempt, check the headers, then follow the script: fail, hang, connect."""
        if not isinstance(max_message_size, int) or max_message_size < 1:
            raise ValueError(f"max_message_size must be a positive int, not {max_message_size!r}")
        await anyio.lowlevel.checkpoint()
        attempt = ConnectAttempt(url, tuple(headers), ssl_context, max_message_size)
        self.attempts.append(attempt)
        try:
            encode_headers(headers)  # the same rules as the WebSocket transport
        except (ValueError, TypeError) as exc:
            raise TransportError(TRANSPORT_ERROR, f"cannot connect: {exc}") from None
        plan = self._plans.popleft() if self._plans else None
        if plan == _HANG:
            await anyio.sleep_forever()
        if isinstance(plan, TransportError):
            raise _copy(plan)
        to_client, to_server = _Pipe(), _Pipe()
        transport = MemoryTransport(to_client, to_server, redact_url(url), max_message_size)
        self._peers.append(MemoryPeer(to_server, to_client, attempt))
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None
        return transport

    async def accept(self) -> MemoryPeer:
        """Return the server end of the next connection made (waiting for it if needed)."""
        await anyio.lowlevel.checkpoint()
        while not self._peers:
            if self._wakeup is None:
                self._wakeup = anyio.Event()
            await self._wakeup.wait()
        return self._peers.popleft()
