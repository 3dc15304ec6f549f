"""The WebSocket transport: anyio byte streams below, wsproto in the middle, messages above.

Layers, from the network up::

    anyio.connect_tcp (+ TLSStream)   bytes; TCP_NODELAY, since Engine.IO packets are small
    wsproto.WSConnection              RFC 6455 handshake and framing, sans-IO
    WebSocketTransport                whole messages (str | bytes), one TransportError type

Everything wsproto-specific stays in this module: its ``None``-means-EOF input, the pings it
leaves to us to answer (``Ping.response()``), the frames it could not parse (reported as a
``CloseConnection`` event while still ``OPEN``) and its exception types. The driver sees only
:class:`~tether.transport.Transport`.

Reading is the hot path (a busy room delivers thousands of small messages a second), so
``receive()`` reads 64 KiB at a time, lets wsproto decode everything in it, queues the
finished messages and then hands them out from the queue without another read or task
switch. Writing takes a lock, so frames from concurrent senders never interleave.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import ssl
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final, NoReturn, cast
from urllib.parse import urlsplit

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.tls import TLSStream
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import ProtocolError

from tether._url import redact_url

from ._base import (
    TRANSPORT_CLOSE,
    TRANSPORT_ERROR,
    Message,
    TransportError,
    TransportErrorReason,
    encode_headers,
)

__all__ = ["WebSocketConnector", "WebSocketTransport"]

#: Bytes asked of the socket per read. Large enough that a burst of small messages costs one
#: read (and one trip through the event loop) per ~1000 messages.
DEFAULT_READ_SIZE: Final = 65536
#: How long ``aclose()`` spends trying to send a close frame before it just drops the socket.
DEFAULT_CLOSE_TIMEOUT: Final = 1.0

# What the byte stream and wsproto raise when the network or the peer misbehaves. OSError
# covers socket.gaierror, ssl.SSLError and anyio's ConnectionFailed.
_IO_ERRORS: Final = (
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    ProtocolError,
)

_DEFAULT_PORTS: Final = {"ws": 80, "wss": 443}
_SECURE: Final = {"ws": False, "http": False, "wss": True, "https": True}


class WebSocketConnector:
    """Opens :class:`WebSocketTransport` connections (RFC 6455 over TCP or TLS).

    Works on whatever event loop anyio runs on (asyncio or trio). For ``wss``/``https`` URLs
    without an ``ssl_context`` it uses one ``ssl.create_default_context()``, made on first
    use and shared by later attempts, so certificates and host names are verified by default.
    An ``ssl_context`` given for a plain ``ws`` URL is ignored.

    ``read_size`` is the most bytes asked of the socket per read; ``close_timeout`` bounds
    the polite part of closing (sending a close frame) before the socket is dropped.
    """

    def __init__(
        self,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        if read_size < 1:
            raise ValueError(f"read_size must be positive, not {read_size!r}")
        if not close_timeout >= 0:
            raise ValueError(f"close_timeout must be >= 0, not {close_timeout!r}")
        self._read_size = read_size
        self._close_timeout = close_timeout
        self._default_ssl_context: ssl.SSLContext | None = None

    async def connect(
        self,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        ssl_context: ssl.SSLContext | None = None,
        max_message_size: int = 1_000_000,
    ) -> WebSocketTransport:
        """Open a TCP (and TLS) connection to ``url`` and perform the WebSocket upgrade.

        ``url`` is a ``ws``/``wss`` URL (``http``/``https`` are accepted as synonyms), usually
        from :func:`tether._url.build_websocket_url`. ``headers`` are added to the upgrade
        request. Raises :class:`TransportError` (``"transport error"``, with ``status`` set
        when the server answered the upgrade with an HTTP error) if the connection cannot be
        opened, a malformed URL or header included; ``ValueError`` only for a
        ``max_message_size`` below 1. Cancellation is safe at any point: the socket is closed
        before the cancellation propagates.
        """
        if not isinstance(max_message_size, int) or max_message_size < 1:
            raise ValueError(f"max_message_size must be a positive int, not {max_message_size!r}")
        where = redact_url(url)
        try:
            scheme, host, port, host_header, target = _parse_url(url)
            extra_headers = encode_headers(headers)
        except (ValueError, TypeError) as exc:
            # Headers may come from a callable run for every attempt: a bad one fails the
            # attempt like any other, instead of escaping into the driver.
            raise TransportError(TRANSPORT_ERROR, f"cannot connect to {where}: {exc}") from None
        secure = _SECURE[scheme]
        if secure and ssl_context is None:
            if self._default_ssl_context is None:
                self._default_ssl_context = ssl.create_default_context()
            ssl_context = self._default_ssl_context

        try:
            tcp = await anyio.connect_tcp(host, port)
        except OSError as exc:
            raise TransportError(
                TRANSPORT_ERROR, f"cannot connect to {where}: {_describe(exc)}"
            ) from exc

        stream: anyio.abc.ByteStream = tcp
        stage = "TLS handshake with" if secure else "WebSocket handshake with"
        try:
            _set_nodelay(tcp)
            if ssl_context is not None and secure:
                # standard_compatible=False: many servers drop TLS without close_notify, and
                # WebSocket framing already tells a complete message from a truncated one.
                stream = await TLSStream.wrap(
                    tcp, hostname=host, ssl_context=ssl_context, standard_compatible=False
                )
                stage = "WebSocket handshake with"
            ws = WSConnection(ConnectionType.CLIENT)
            request = Request(host=host_header, target=target, extra_headers=extra_headers)
            await stream.send(ws.send(request))
            await _read_handshake(stream, ws, where, self._read_size)
            transport = WebSocketTransport(
                stream,
                ws,
                max_message_size=max_message_size,
                where=where,
                read_size=self._read_size,
                close_timeout=self._close_timeout,
            )
        except _IO_ERRORS as exc:
            await anyio.aclose_forcefully(stream)
            raise TransportError(
                TRANSPORT_ERROR, f"{stage} {where} failed: {_describe(exc)}"
            ) from exc
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        return transport


class WebSocketTransport:
    """An open WebSocket connection that carries whole messages; see :class:`Transport`.

    Made by :meth:`WebSocketConnector.connect`, never directly. Incoming messages larger than
    ``max_message_size`` bytes (counted as they arrive, across continuation frames) fail the
    connection with ``"transport error"`` and close code 1009 before they are buffered in
    full. WebSocket pings are answered; a close frame from the server is answered (RFC 6455
    5.5.1) and ends the transport with ``"transport close"``, as does EOF.
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        ws: WSConnection,
        *,
        max_message_size: int,
        where: str,
        read_size: int = DEFAULT_READ_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        self._stream = stream
        self._ws = ws
        self._where = where
        self._read_size = read_size
        self._close_timeout = close_timeout
        self._max = max_message_size
        # A str of n characters is at most 4n bytes of UTF-8, so text no longer than a quarter
        # of the limit needs no byte count at all.
        self._quarter = max_message_size // 4
        self._ready: deque[Message] = deque()
        self._parts: list[Message] = []  # fragments of the message being assembled
        self._size = 0  # their size in bytes
        self._reply = bytearray()  # control frames owed to the peer: pongs, the close echo
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._error: TransportError | None = None
        self._close_code: int = CloseReason.NORMAL_CLOSURE
        self._poisoned = False  # a write was cancelled part-way: send nothing more
        self._shutdown_done: anyio.Event | None = None
        # Frames that arrived in the same read as the 101 response are already in wsproto.
        self._process()

    def __repr__(self) -> str:
        state = "closed" if self._error is not None else "open"
        return f"<WebSocketTransport {self._where} {state}>"

    @property
    def closed(self) -> bool:
        """True once the connection ended (close, EOF, error) or ``aclose()`` was called."""
        return self._error is not None

    async def receive(self) -> Message:
        """Return the next message: ``str`` for a text frame, ``bytes`` for a binary frame.

        Messages decoded from an earlier read are returned straight from the queue, without
        a trip through the event loop; the call checkpoints whenever it has to read. Raises
        :class:`TransportError` once the connection has ended, after every message that
        arrived before the end has been returned. Only one task may receive at a time.
        """
        ready = self._ready
        if ready:
            return ready.popleft()
        return await self._receive_slow()

    async def send(self, message: Message) -> None:
        """Send one message as a single text (``str``) or binary (``bytes``) frame."""
        async with self._send_lock:
            if self._error is not None:
                self._raise_error()
            # wsproto can only refuse a message once the connection is closing, and every
            # way there sets self._error first (checked above).
            if isinstance(message, str):
                data = self._ws.send(TextMessage(data=message))
            else:
                data = self._ws.send(BytesMessage(data=message))
            if self._reply:  # a pong is owed: it rides along with this write
                data = bytes(self._reply) + data
                self._reply.clear()
            await self._write(data)

    async def send_many(self, messages: Iterable[Message]) -> None:
        """Send several messages, in order, in one write, with nothing in between."""
        async with self._send_lock:
            if self._error is not None:
                self._raise_error()
            ws_send = self._ws.send
            chunks = [bytes(self._reply)] if self._reply else []
            for message in messages:
                if isinstance(message, str):
                    chunks.append(ws_send(TextMessage(data=message)))
                else:
                    chunks.append(ws_send(BytesMessage(data=message)))
            if not chunks:
                await anyio.lowlevel.checkpoint()
                return
            self._reply.clear()
            await self._write(b"".join(chunks))

    async def aclose(self) -> None:
        """Send a close frame if that can be done within ``close_timeout``, then close.

        Idempotent; a second caller waits for the first close to finish. Never raises.
        Messages received but not yet returned are dropped: whoever closes is done reading.
        """
        self._set_error(TRANSPORT_CLOSE, f"the connection to {self._where} was closed locally")
        self._ready.clear()
        await self._shutdown()

    # --- reading -----------------------------------------------------------------------

    async def _receive_slow(self) -> Message:
        ready = self._ready
        while True:
            if self._reply and self._error is None:
                await self._flush_reply()
            if self._error is not None:
                await self._shutdown()
                if ready:
                    return ready.popleft()
                self._raise_error()
            if ready:
                return ready.popleft()
            try:
                data: bytes | None = await self._stream.receive(self._read_size)
            except anyio.EndOfStream:
                data = None  # wsproto's spelling of EOF
            except _IO_ERRORS as exc:
                self._lost(exc)
                continue
            try:
                self._ws.receive_data(data)
            except ProtocolError as exc:  # pragma: no cover - we stop reading once closed
                self._lost(exc)
                continue
            self._process()

    def _process(self) -> None:
        """Turn what wsproto has decoded into queued messages, owed replies or an error."""
        ready = self._ready
        for event in self._ws.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                # wsproto types binary data as bytes | bytearray; it always hands out bytes.
                data = cast("Message", event.data)
                if event.message_finished and not self._parts:
                    # The common case: a whole message in one frame, in one read.
                    size = len(data)
                    if size > self._quarter:
                        if isinstance(data, str) and not data.isascii():
                            size = len(data.encode("utf-8"))
                        if size > self._max:
                            self._too_big(size)
                            return
                    ready.append(data)
                elif not self._assemble(data, event.message_finished):
                    return
            elif isinstance(event, Ping):
                # RFC 6455 5.5.2: a Ping gets a Pong with the same payload, "as soon as is
                # practical". It goes out with the next write or before the next read.
                self._reply += self._ws.send(event.response())
            elif isinstance(event, CloseConnection):
                self._peer_closed(event)
                return
            # Pong (we never ping) and anything else is ignored.

    def _assemble(self, data: Message, finished: bool) -> bool:
        """Add a fragment (a continuation frame or part of a long frame); False if too big."""
        size = len(data)
        if isinstance(data, str) and not data.isascii():
            size = len(data.encode("utf-8"))
        self._size += size
        if self._size > self._max:
            self._too_big(self._size)
            return False
        self._parts.append(data)
        if finished:
            parts = self._parts
            self._parts = []
            self._size = 0
            if isinstance(parts[0], str):
                self._ready.append("".join(cast("list[str]", parts)))
            else:
                self._ready.append(b"".join(cast("list[bytes]", parts)))
        return True

    def _too_big(self, size: int) -> None:
        self._parts = []
        self._size = 0
        self._set_error(
            TRANSPORT_ERROR,
            f"a message from {self._where} exceeds max_message_size ({size} > {self._max} bytes)",
            code=CloseReason.MESSAGE_TOO_BIG,  # RFC 6455 7.4.1
        )

    def _peer_closed(self, event: CloseConnection) -> None:
        state = self._ws.state
        if state is ConnectionState.OPEN:
            # wsproto reports a frame it cannot parse (bad opcode, invalid UTF-8, a masked or
            # oversized control frame...) as a CloseConnection event and leaves the state OPEN:
            # RFC 6455 7.1.7, "Fail the WebSocket Connection", with the code it suggests.
            # A real close frame moves the state to REMOTE_CLOSING, EOF to CLOSED.
            self._set_error(
                TRANSPORT_ERROR,
                f"{self._where} broke the WebSocket protocol: {event.reason}",
                code=event.code,
            )
            return
        if state is ConnectionState.REMOTE_CLOSING:
            # RFC 6455 5.5.1: answer a close frame with one, echoing the status code.
            self._reply += self._ws.send(event.response())
        if event.code == CloseReason.ABNORMAL_CLOSURE:
            # 1006 never travels on the wire (wsproto refuses it): it is how wsproto reports EOF.
            message = f"{self._where} closed the connection without a close frame"
        else:
            message = f"{self._where} closed the WebSocket (code {event.code})"
        self._set_error(TRANSPORT_CLOSE, message)

    # --- writing -----------------------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        """Write ``data``; the caller holds the send lock."""
        try:
            await self._stream.send(data)
        except _IO_ERRORS as exc:
            self._lost(exc)
            self._raise_error()
        except BaseException:
            # Cancelled: on trio a cancelled send may have written part of a frame, after
            # which nothing sent on this stream would parse. Refuse to send anything more.
            self._poisoned = True
            self._set_error(TRANSPORT_ERROR, f"a write to {self._where} was cancelled part-way")
            raise

    async def _flush_reply(self) -> None:
        async with self._send_lock:
            if not self._reply or self._error is not None:
                return  # a send() took the reply along, or the connection ended meanwhile
            data = bytes(self._reply)
            self._reply.clear()
            # A failure is recorded; receive() reports it after the messages already queued.
            with contextlib.suppress(TransportError):
                await self._write(data)

    # --- ending ------------------------------------------------------------------------

    def _set_error(
        self,
        reason: TransportErrorReason,
        message: str,
        *,
        code: int = CloseReason.NORMAL_CLOSURE,
        cause: BaseException | None = None,
    ) -> None:
        """Record why the transport ended; the first reason wins."""
        if self._error is None:
            error = TransportError(reason, message)
            error.__cause__ = cause
            self._error = error
            self._close_code = code

    def _lost(self, exc: BaseException) -> None:
        self._set_error(
            TRANSPORT_ERROR,
            f"the connection to {self._where} broke: {_describe(exc)}",
            cause=exc,
        )

    def _raise_error(self) -> NoReturn:
        error = self._error
        assert error is not None
        # A fresh exception each time, so that tracebacks do not pile up on one object.
        raise TransportError(error.reason, str(error), status=error.status) from error.__cause__

    async def _shutdown(self) -> None:
        """Say goodbye if it can be done quickly, then drop the socket. Idempotent."""
        if self._shutdown_done is not None:
            with anyio.CancelScope(shield=True):  # bounded: the first caller is
                await self._shutdown_done.wait()
            return
        self._shutdown_done = anyio.Event()
        try:
            with anyio.move_on_after(self._close_timeout, shield=True):
                async with self._send_lock:
                    if not self._poisoned:
                        data = bytes(self._reply)
                        self._reply.clear()
                        if self._ws.state is ConnectionState.OPEN:
                            # RFC 6455 7.1.2 (start the closing handshake) or 7.1.7 (fail the
                            # connection, with the code that says why). We do not wait for the
                            # server's answer: the transport is over either way.
                            data += self._ws.send(CloseConnection(code=self._close_code))
                        if data:
                            await self._stream.send(data)
        except _IO_ERRORS:
            pass  # the socket is going away regardless
        finally:
            await anyio.aclose_forcefully(self._stream)
            self._shutdown_done.set()


async def _read_handshake(
    stream: anyio.abc.ByteStream, ws: WSConnection, where: str, read_size: int
) -> None:
    """Read the server's answer to the upgrade request until wsproto accepts or rejects it."""
    while True:
        try:
            data: bytes | None = await stream.receive(read_size)
        except anyio.EndOfStream:
            data = None
        ws.receive_data(data)  # RemoteProtocolError for a malformed HTTP response
        for event in ws.events():
            if isinstance(event, RejectConnection):
                # Engine.IO 1.9: Node answers a refused upgrade with 400 (bad EIO, unknown
                # sid...) or 403; socket.io-client reports it as a connect_error and retries.
                raise TransportError(
                    TRANSPORT_ERROR,
                    f"{where} refused the WebSocket upgrade with HTTP {event.status_code}",
                    status=event.status_code,
                )
            # The only other first event of a client handshake. Stop here: frames sent right
            # behind the 101 stay queued inside wsproto until the transport asks for them.
            assert isinstance(event, AcceptConnection)
            return
        if data is None:  # pragma: no cover - h11 raises on EOF before a whole response
            raise TransportError(
                TRANSPORT_ERROR, f"{where} closed the connection during the WebSocket handshake"
            )


def _parse_url(url: str) -> tuple[str, str, int, str, str]:
    """Split a ws/wss URL into (scheme, host, port, Host header, request target)."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SECURE:
        raise ValueError(f"not a WebSocket URL: {redact_url(url)}")
    scheme = "wss" if _SECURE[scheme] else "ws"
    host = parts.hostname
    if not host:
        raise ValueError(f"the URL {redact_url(url)} has no host")
    try:
        explicit_port = parts.port
    except ValueError:
        explicit_port = 0
    if explicit_port == 0:
        raise ValueError(f"the URL {redact_url(url)} has an invalid port")
    try:
        host.encode("idna")  # what getaddrinfo, TLS and the Host header will need
    except UnicodeError:
        raise ValueError(f"the URL {redact_url(url)} has an invalid host name") from None
    port = explicit_port or _DEFAULT_PORTS[scheme]
    # RFC 6455 4.1: Host names the port too unless it is the scheme's default; IPv6 literals
    # keep their brackets.
    host_header = f"[{host}]" if ":" in host else host
    if port != _DEFAULT_PORTS[scheme]:
        host_header = f"{host_header}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not target.isascii():  # build_websocket_url percent-encodes; a hand-made URL may not
        raise ValueError(f"the URL {redact_url(url)} must be percent-encoded (ASCII only)")
    return scheme, host, port, host_header, target


def _set_nodelay(stream: anyio.abc.SocketStream) -> None:
    """Engine.IO packets are small and latency-bound: don't let Nagle hold them back."""
    # asyncio and trio both set it today; saying so here keeps it true if either changes.
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _describe(exc: BaseException) -> str:
    """A short, secret-free description of a low-level failure, for TransportError texts."""
    cause: BaseException | None = exc
    # anyio wraps the real reason: ConnectionFailed("All connection attempts failed") from
    # the OSError (or a group of them, one per address), BrokenResourceError from the OSError.
    while cause is not None and (not str(cause) or "connection attempts" in str(cause)):
        inner = cause.__cause__
        group = getattr(inner, "exceptions", None)
        cause = group[0] if group else inner
    if cause is None:
        if isinstance(exc, anyio.EndOfStream):
            return "the peer closed the connection"
        return type(exc).__name__
    number = getattr(cause, "errno", None)
    if (
        isinstance(number, int)
        and number > 0
        and not isinstance(cause, (ssl.SSLError, socket.gaierror))
    ):
        # Backends word socket errors differently (asyncio: "Connect call failed"); the errno
        # says the same thing everywhere.
        return f"{os.strerror(number)} ({errno.errorcode.get(number, number)})"
    return str(cause)
