"""The WebSocket transport: anyio byte streams below, wsproto in the middle, messages above.

Layers, from the network up::

    _socket.open_tcp (+ TLSStream)    bytes; TCP_NODELAY, since Engine.IO packets are small
    _upgrade                          RFC 6455 4.1 opening handshake, client side, sans-IO
    wsproto FrameProtocol             RFC 6455 framing once the connection is open, sans-IO
    WebSocketTransport                whole messages (str | bytes), one TransportError type

The opening handshake is ours (``_upgrade``: one fixed request, one response head checked
as RFC 6455 4.1 asks; wsproto's h11-based handshake was the largest cost of a fresh
connect). The framing is wsproto's lower layer, ``wsproto.frame_protocol.FrameProtocol``,
and the transport does itself what wsproto's ``Connection`` would do around it: it answers
pings, echoes the server's close frame, tracks the connection state (RFC 6455 4.1/7.1) and
turns ``ParseFailed`` into a failed connection with the close code wsproto suggests. That
saves the ``Connection`` object per connection (an event queue that is almost always empty)
and an ``Event`` object per frame. Everything wsproto-specific stays in this module: the
shape of its frames, its exception types. What does not depend on wsproto (TCP, TLS, the
send lock, closing) is shared with the websockets-based transport in ``_stream``. The driver
sees only :class:`~tether.transport.Transport`.

Reading is the hot path (a busy room delivers thousands of small messages a second), so
``receive()`` reads 64 KiB at a time, lets wsproto decode every frame in it, queues the
finished messages and then hands them out from the queue without another read or task
switch. Writing takes a lock, so frames from concurrent senders never interleave.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final, cast

import anyio.abc
from wsproto.connection import ConnectionState
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode, ParseFailed

from ._base import TRANSPORT_CLOSE, TRANSPORT_ERROR, Message
from ._stream import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_READ_SIZE,
    Endpoint,
    StreamConnector,
    StreamTransport,
)

__all__ = ["WebSocketConnector", "WebSocketTransport"]

# Enum members are singletons: the receive path compares them with ``is``.
_TEXT: Final = Opcode.TEXT
_BINARY: Final = Opcode.BINARY
_PING: Final = Opcode.PING
_CLOSE: Final = Opcode.CLOSE
_OPEN: Final = ConnectionState.OPEN
_LOCAL_CLOSING: Final = ConnectionState.LOCAL_CLOSING
_CLOSED: Final = ConnectionState.CLOSED


class WebSocketConnector(StreamConnector["WebSocketTransport"]):
    """Opens :class:`WebSocketTransport` connections (RFC 6455 over TCP or TLS).

    Works on whatever event loop anyio runs on (asyncio or trio). For ``wss``/``https`` URLs
    without an ``ssl_context`` it uses one ``ssl.create_default_context()``, made on first
    use and shared by later attempts, so certificates and host names are verified by default.
    An ``ssl_context`` given for a plain ``ws`` URL is ignored.

    ``read_size`` is the most bytes asked of the socket per read; ``close_timeout`` bounds
    the polite part of closing (sending a close frame) before the socket is dropped.
    """

    def _open(
        self, stream: anyio.abc.ByteStream, endpoint: Endpoint, trailing: bytes, max_size: int
    ) -> WebSocketTransport:
        # Frames the server sent right behind the 101 are decoded by the transport, like
        # any later read.
        proto = FrameProtocol(client=True, extensions=[])
        proto.receive_bytes(trailing)
        return WebSocketTransport(
            stream,
            proto,
            max_message_size=max_size,
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
        proto: FrameProtocol,
        *,
        max_message_size: int,
        where: str,
        read_size: int = DEFAULT_READ_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        super().__init__(stream, where=where, read_size=read_size, close_timeout=close_timeout)
        if not proto.client:
            raise ValueError("WebSocketTransport needs a client-side FrameProtocol")
        # Only wsproto's framing layer: no Connection around it (an event queue, a deque held
        # even when empty, and an Event object plus a generator step for every frame). What
        # the server sent right behind the 101 may already be buffered in it; _process()
        # below decodes that like any later read.
        self._proto = proto
        # RFC 6455 4.1 / 7.1: the connection's state, as wsproto's Connection would track
        # it. Only OPEN, LOCAL_CLOSING (our close frame went out) and CLOSED (the closing
        # handshake is over, or the TCP connection) occur: the peer's close frame is echoed
        # at once, so REMOTE_CLOSING never outlasts _peer_closed().
        self._state = _OPEN
        self._max = max_message_size
        # A str of n characters is at most 4n bytes of UTF-8, so text no longer than a quarter
        # of the limit needs no byte count at all.
        self._quarter = max_message_size // 4
        # Fragments of the message being assembled (emptied in place, never replaced, so
        # that _process can hold it in a local), and their size in bytes.
        self._parts: list[Message] = []
        self._size = 0
        self._process()
        self._ready.reverse()  # a stack: see StreamTransport

    # --- wsproto's FrameProtocol below the shared machinery --------------------------------

    def _encode(self, message: Message) -> bytes:
        # RFC 6455 5.6: str as one text frame (UTF-8), bytes as one binary frame; wsproto
        # masks it with a fresh random key (5.3), as a client must.
        return bytes(self._proto.send_data(message))

    def _encode_many(self, messages: Iterable[Message]) -> list[bytes]:
        send_data = self._proto.send_data
        return [bytes(send_data(message)) for message in messages]

    def _feed(self, data: bytes | None) -> None:
        if data is None:
            # RFC 6455 7.1.5: the TCP connection closed with no close frame seen, so the
            # close code is 1006 (7.4.1), which is never sent: nothing is owed to the peer.
            self._state = _CLOSED
            self._set_error(
                TRANSPORT_CLOSE, f"{self._where} closed the connection without a close frame"
            )
            return
        self._proto.receive_bytes(data)
        self._process()

    def _closing_frame(self, code: int) -> bytes:
        if self._state is _OPEN:
            # RFC 6455 7.1.2: start the closing handshake (or 7.1.7: fail the connection,
            # with a code that says why). Nothing more is sent after it (5.5.1).
            self._state = _LOCAL_CLOSING
            return bytes(self._proto.close(code))
        return b""  # our close frame is out already, or the closing handshake is over

    def _process(self) -> None:
        """Turn the frames wsproto can decode now into queued messages, replies or an end."""
        ready = self._ready
        parts = self._parts
        quarter = self._quarter
        # wsproto's Frame is (opcode, payload, frame_finished, message_finished). Its message
        # decoder reports continuation frames under their message's opcode, so only TEXT
        # (payload: str, decoded incrementally) and BINARY (bytes) carry data; a frame longer
        # than what has arrived comes out in pieces, message_finished only on the last one.
        frames = cast("Iterator[tuple[Opcode, Message, bool, bool]]", self._proto.received_frames())
        try:
            for opcode, data, _, finished in frames:
                if opcode is _TEXT or opcode is _BINARY:
                    if finished and not parts:
                        # The common case: a whole message in one frame (RFC 6455 5.4), in
                        # one read. Only a long one needs its size looked at.
                        if len(data) > quarter and self._too_big(data):
                            return
                        ready.append(data)
                    elif not self._assemble(data, finished):
                        return
                elif opcode is _PING:
                    # RFC 6455 5.5.2/5.5.3: a Ping gets a Pong with the same payload, "as
                    # soon as is practical": with the next write or before the next read.
                    # Not once our close frame is out (LOCAL_CLOSING): the transport is over.
                    if self._state is _OPEN:
                        self._reply += self._proto.pong(cast("bytes", data))
                elif opcode is _CLOSE:
                    self._peer_closed(*cast("tuple[int, str]", data))
                    return
                # A Pong (RFC 6455 5.5.3: unsolicited ones are allowed; we never ping) needs
                # nothing.
        except ParseFailed as exc:
            # A frame wsproto cannot accept: a reserved opcode or RSV bit, a masked frame
            # from the server (5.1), an oversized or fragmented control frame (5.5), an
            # orphan continuation, text that is not UTF-8 (8.1), a bad close payload (5.5.1,
            # 7.4)... RFC 6455 7.1.7: fail the WebSocket connection, with the close code
            # wsproto suggests (1002 or 1007). The state stays OPEN, so that close frame
            # is what _closing_frame() sends; wsproto's decoder stops for good.
            self._set_error(
                TRANSPORT_ERROR,
                f"{self._where} broke the WebSocket protocol: {exc}",
                code=exc.code,
                cause=exc,
            )

    def _too_big(self, data: Message) -> bool:
        """Whether a whole one-frame message exceeds max_message_size (then fail)."""
        size = len(data)
        if isinstance(data, str) and not data.isascii():
            size = len(data.encode("utf-8"))
        if size > self._max:
            self._fail_too_big(size)
            return True
        return False

    def _assemble(self, data: Message, finished: bool) -> bool:
        """Add a fragment (a continuation frame or part of a long frame); False if too big."""
        size = len(data)
        if isinstance(data, str) and not data.isascii():
            size = len(data.encode("utf-8"))
        self._size += size
        if self._size > self._max:
            self._fail_too_big(self._size)
            return False
        parts = self._parts
        parts.append(data)
        if finished:
            if isinstance(parts[0], str):
                self._ready.append("".join(cast("list[str]", parts)))
            else:
                self._ready.append(b"".join(cast("list[bytes]", parts)))
            parts.clear()
            self._size = 0
        return True

    def _fail_too_big(self, size: int) -> None:
        self._parts.clear()
        self._size = 0
        self._set_error(
            TRANSPORT_ERROR,
            f"a message from {self._where} exceeds max_message_size ({size} > {self._max} bytes)",
            code=CloseReason.MESSAGE_TOO_BIG,  # RFC 6455 7.4.1
        )

    def _peer_closed(self, code: int, reason: str) -> None:
        """The server's close frame (RFC 6455 5.5.1); wsproto has checked its payload."""
        if self._state is _OPEN:
            # RFC 6455 5.5.1: answer a close frame with one, echoing the status code (wsproto
            # sends no code for 1005, "no status code was present", 7.4.1). It goes out
            # before the socket is dropped.
            self._reply += self._proto.close(code, reason)
        # Close frames sent and received (whether we echoed theirs or theirs answered ours,
        # LOCAL_CLOSING): RFC 6455 5.5.1, the WebSocket connection is closed.
        self._state = _CLOSED
        self._set_error(TRANSPORT_CLOSE, f"{self._where} closed the WebSocket (code {code})")
