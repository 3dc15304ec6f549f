"""The WebSocket transport: anyio byte streams below, wsproto in the middle, messages above.

Layers, from the network up::

    anyio.connect_tcp (+ TLSStream)   bytes; TCP_NODELAY, since Engine.IO packets are small
    wsproto.WSConnection              RFC 6455 handshake and framing, sans-IO
    WebSocketTransport                whole messages (str | bytes), one TransportError type

Everything wsproto-specific stays in this module: its ``None``-means-EOF input, the pings it
leaves to us to answer (``Ping.response()``), the frames it could not parse (reported as a
``CloseConnection`` event while still ``OPEN``) and its exception types. What does not depend
on wsproto (TCP, TLS, the send lock, closing) is shared with the websockets-based transport in
``_stream``. The driver sees only :class:`~tether.transport.Transport`.

Reading is the hot path (a busy room delivers thousands of small messages a second), so
``receive()`` reads 64 KiB at a time, lets wsproto decode everything in it, queues the
finished messages and then hands them out from the queue without another read or task
switch. Writing takes a lock, so frames from concurrent senders never interleave.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
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

from ._base import TRANSPORT_CLOSE, TRANSPORT_ERROR, Message, TransportError
from ._stream import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_READ_SIZE,
    Endpoint,
    StreamConnector,
    StreamTransport,
    describe,
    parse_url,
)

__all__ = ["WebSocketConnector", "WebSocketTransport"]

# Their names before they moved to _stream; tests still import them from here.
_describe = describe
_parse_url = parse_url


class WebSocketConnector(StreamConnector["WebSocketTransport"]):
    """Opens :class:`WebSocketTransport` connections (RFC 6455 over TCP or TLS).

    Works on whatever event loop anyio runs on (asyncio or trio). For ``wss``/``https`` URLs
    without an ``ssl_context`` it uses one ``ssl.create_default_context()``, made on first
    use and shared by later attempts, so certificates and host names are verified by default.
    An ``ssl_context`` given for a plain ``ws`` URL is ignored.

    ``read_size`` is the most bytes asked of the socket per read; ``close_timeout`` bounds
    the polite part of closing (sending a close frame) before the socket is dropped.
    """

    _handshake_errors = (ProtocolError,)

    async def _handshake(
        self, stream: anyio.abc.ByteStream, endpoint: Endpoint, max_message_size: int
    ) -> WebSocketTransport:
        ws = WSConnection(ConnectionType.CLIENT)
        request = Request(
            host=endpoint.host_header, target=endpoint.target, extra_headers=endpoint.headers
        )
        await stream.send(ws.send(request))
        await _read_handshake(stream, ws, endpoint.where, self._read_size)
        return WebSocketTransport(
            stream,
            ws,
            max_message_size=max_message_size,
            where=endpoint.where,
            read_size=self._read_size,
            close_timeout=self._close_timeout,
        )


class WebSocketTransport(StreamTransport):
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
        ws: WSConnection | Connection,
        *,
        max_message_size: int,
        where: str,
        read_size: int = DEFAULT_READ_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        super().__init__(stream, where=where, read_size=read_size, close_timeout=close_timeout)
        # Only wsproto's framing layer: once the upgrade is done, the handshake and its h11
        # connection (about 4 KB per connection) are of no use, and every call skips a layer.
        self._ws: WSConnection | Connection = (
            ws.connection if isinstance(ws, WSConnection) and ws.connection is not None else ws
        )
        self._max = max_message_size
        # A str of n characters is at most 4n bytes of UTF-8, so text no longer than a quarter
        # of the limit needs no byte count at all.
        self._quarter = max_message_size // 4
        self._parts: list[Message] = []  # fragments of the message being assembled
        self._size = 0  # their size in bytes
        # Frames that arrived in the same read as the 101 response are already in wsproto.
        self._process()
        self._ready.reverse()  # a stack: see StreamTransport

    # --- wsproto below the shared machinery ---------------------------------------------

    def _encode(self, message: Message) -> bytes:
        if isinstance(message, str):
            return self._ws.send(TextMessage(data=message))
        return self._ws.send(BytesMessage(data=message))

    def _encode_many(self, messages: Iterable[Message]) -> list[bytes]:
        ws_send = self._ws.send
        return [
            ws_send(TextMessage(data=message))
            if isinstance(message, str)
            else ws_send(BytesMessage(data=message))
            for message in messages
        ]

    def _feed(self, data: bytes | None) -> None:
        try:
            self._ws.receive_data(data)  # None is wsproto's spelling of EOF
        except ProtocolError as exc:  # pragma: no cover - we stop reading once closed
            self._lost(exc)
            return
        self._process()

    def _closing_frame(self, code: int) -> bytes:
        if self._ws.state is ConnectionState.OPEN:
            return self._ws.send(CloseConnection(code=code))
        return b""

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
