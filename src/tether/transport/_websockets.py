"""The fast WebSocket transport: anyio byte streams below, websockets' sans-IO protocol in the
middle, messages above.

Layers, from the network up::

    _socket.open_tcp (+ TLSStream)    bytes; TCP_NODELAY (shared with the default, ``_stream``)
    _upgrade (in StreamConnector)     RFC 6455 4.1 opening handshake, shared with the default
    websockets.protocol.Protocol      RFC 6455 framing once the connection is open, sans-IO
    FastWebSocketTransport            whole messages (str | bytes), one TransportError type

It behaves exactly like the default :class:`~tether.transport.WebSocketTransport` (same
tests); it exists because wsproto's frame parser caps the default near 100-160k messages/s,
and websockets' parser (with its C masking helper) is several times cheaper per frame. The
``websockets`` package ships as the ``fast`` extra: ``pip install 'tether[fast]'``.

What websockets leaves to us, and this module does:

- UTF-8. The protocol hands out text frames as bytes; a text message that is not UTF-8 fails
  the connection with close code 1007 (RFC 6455 8.1), decoded per fragment so a bad message
  fails as it arrives.
- Reassembling fragmented messages. The size limit is websockets' ``max_size``, which counts
  bytes across fragments and trips on a frame's header, before its payload is buffered.
- Sending what it queues. Pongs, the close echo and the close frame of a failure go out with
  the next write or before the next read, like the default transport's owed replies.
- Logging. websockets logs every frame and the upgrade request's headers (credentials
  included) at DEBUG: the protocol gets a logger of its own that is always off, so neither
  secrets nor per-frame logging calls reach the application, whatever it configures.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Iterable
from typing import Final, cast

import anyio
import anyio.abc

try:
    from websockets.exceptions import PayloadTooBig
    from websockets.frames import CloseCode, Frame, Opcode
    from websockets.protocol import Event, Protocol, Side, State
except ImportError as exc:  # the fast extra is not installed
    raise ImportError(
        "FastWebSocketConnector needs the websockets package: pip install 'tether[fast]'",
        name=exc.name,
    ) from exc

from ._base import TRANSPORT_CLOSE, TRANSPORT_ERROR, Message
from ._stream import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_READ_SIZE,
    Endpoint,
    StreamConnector,
    StreamTransport,
)

__all__ = ["FastWebSocketConnector", "FastWebSocketTransport"]

_TEXT: Final = Opcode.TEXT
_BINARY: Final = Opcode.BINARY
_CONT: Final = Opcode.CONT
_OPEN: Final = State.OPEN

# A logger outside the logging tree (so no configuration reaches it), switched off: websockets
# then skips its per-frame debug logging and never writes headers or payloads anywhere.
_SILENT: Final = logging.Logger("tether.transport.websockets")
_SILENT.disabled = True

_utf8_decoder: Final = codecs.getincrementaldecoder("utf-8")


class FastWebSocketConnector(StreamConnector["FastWebSocketTransport"]):
    """Opens :class:`FastWebSocketTransport` connections (RFC 6455 over TCP or TLS).

    A drop-in replacement for :class:`~tether.transport.WebSocketConnector` (same arguments,
    same behaviour, same errors) that parses frames with the ``websockets`` library instead
    of wsproto. Works on asyncio and trio. For ``wss``/``https`` URLs without an
    ``ssl_context`` it uses one ``ssl.create_default_context()``, made on first use and
    shared by later attempts, so certificates and host names are verified by default. An
    ``ssl_context`` given for a plain ``ws`` URL is ignored.

    ``read_size`` is the most bytes asked of the socket per read; ``close_timeout`` bounds
    the polite part of closing (sending a close frame) before the socket is dropped.
    """

    def _open(
        self, stream: anyio.abc.ByteStream, endpoint: Endpoint, trailing: bytes, max_size: int
    ) -> FastWebSocketTransport:
        # websockets' client-side framing, already OPEN: the handshake is the shared one, the
        # same request and checks as the default transport's (websockets' own handshake would
        # parse the 101 a second way, and its Request encoded header values as UTF-8 before
        # 17.0, Latin-1 since). Frames that came right behind the 101 are decoded here.
        protocol = Protocol(Side.CLIENT, max_size=max_size, logger=_SILENT)
        protocol.receive_data(trailing)
        return FastWebSocketTransport(
            stream,
            protocol,
            max_message_size=max_size,
            where=endpoint.where,
            read_size=self._read_size,
            close_timeout=self._close_timeout,
            events=protocol.events_received(),
        )


class FastWebSocketTransport(StreamTransport):
    """An open WebSocket connection that carries whole messages; see :class:`Transport`.

    Made by :meth:`FastWebSocketConnector.connect`, never directly; ``protocol`` is a
    ``websockets`` client protocol past the opening handshake, made with ``max_size`` set to
    ``max_message_size``, and ``events`` what it decoded right behind the 101 response.
    Incoming messages larger than ``max_message_size`` bytes (counted as frames arrive,
    across continuation frames) fail the connection with ``"transport error"`` and close code
    1009 before they are buffered in full. WebSocket pings are answered; a close frame from
    the server is answered (RFC 6455 5.5.1) and ends the transport with ``"transport
    close"``, as does EOF.
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        protocol: Protocol,
        *,
        max_message_size: int,
        where: str,
        read_size: int = DEFAULT_READ_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        events: Iterable[Event] = (),
    ) -> None:
        super().__init__(stream, where=where, read_size=read_size, close_timeout=close_timeout)
        self._protocol = protocol
        self._max = max_message_size
        # The fragmented message being assembled: text is decoded fragment by fragment.
        self._decoder: codecs.IncrementalDecoder | None = None
        self._text_parts: list[str] = []
        self._byte_parts: list[bytes] = []
        self._size = 0  # its bytes so far (for the error text when it grows too big)
        self._process(events)
        self._ready.reverse()  # a stack: see StreamTransport

    # --- websockets below the shared machinery ------------------------------------------

    def _encode(self, message: Message) -> bytes:
        protocol = self._protocol
        if isinstance(message, str):
            protocol.send_text(message.encode())
        else:
            protocol.send_binary(message)
        return b"".join(protocol.data_to_send())  # one frame: no copy

    def _encode_many(self, messages: Iterable[Message]) -> list[bytes]:
        protocol = self._protocol
        send_text = protocol.send_text
        send_binary = protocol.send_binary
        try:
            for message in messages:
                if isinstance(message, str):
                    send_text(message.encode())
                else:
                    send_binary(message)
        except BaseException:
            # A message that cannot be encoded (a lone surrogate...): none of the batch goes,
            # rather than the frames before it riding along with the next write.
            protocol.data_to_send()
            raise
        return protocol.data_to_send()

    def _feed(self, data: bytes | None) -> None:
        protocol = self._protocol
        if data is None:
            protocol.receive_eof()
        else:
            protocol.receive_data(data)
        self._process(protocol.events_received())

    def _closing_frame(self, code: int) -> bytes:
        protocol = self._protocol
        if protocol.state is _OPEN:
            protocol.send_close(code)
            return b"".join(protocol.data_to_send())
        return b""  # websockets has sent one already (an echo, or a failure's), or saw EOF

    # --- reading -----------------------------------------------------------------------

    def _process(self, events: Iterable[Event]) -> None:
        """Queue the messages in ``events``; collect owed frames; notice the end."""
        ready = self._ready
        try:
            # Past the handshake the protocol only produces frames. Pings were answered and
            # close frames echoed by websockets itself (their replies are in data_to_send),
            # pongs need nothing: only data frames matter here.
            for frame in cast("Iterable[Frame]", events):
                opcode = frame.opcode
                if opcode is _TEXT:
                    if frame.fin:  # the common case: a whole message in one frame
                        ready.append(str(frame.data, "utf-8"))
                    else:
                        decoder = self._decoder = _utf8_decoder()
                        self._text_parts = [decoder.decode(frame.data)]
                        self._size = len(frame.data)
                elif opcode is _BINARY:
                    if frame.fin:
                        ready.append(bytes(frame.data))
                    else:
                        self._decoder = None
                        self._byte_parts = [bytes(frame.data)]
                        self._size = len(frame.data)
                elif opcode is _CONT:  # websockets checked that a fragmented message is open
                    self._continue(frame)
        except UnicodeDecodeError as exc:
            # RFC 6455 8.1: fail the connection on text that is not UTF-8, with code 1007.
            self._protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
            self._set_error(
                TRANSPORT_ERROR,
                f"{self._where} broke the WebSocket protocol: invalid UTF-8 in a text message",
                cause=exc,
            )
        protocol = self._protocol
        writes = protocol.data_to_send()
        if writes:
            self._reply += b"".join(writes)
        if protocol.state is not _OPEN and self._error is None:
            self._ended()

    def _continue(self, frame: Frame) -> None:
        self._size += len(frame.data)
        decoder = self._decoder
        if decoder is not None:
            self._text_parts.append(decoder.decode(frame.data, frame.fin))
            if frame.fin:
                self._ready.append("".join(self._text_parts))
                self._text_parts = []
                self._decoder = None
                self._size = 0
        else:
            self._byte_parts.append(bytes(frame.data))
            if frame.fin:
                self._ready.append(b"".join(self._byte_parts))
                self._byte_parts = []
                self._size = 0

    def _ended(self) -> None:
        """The protocol left OPEN and nothing else ended the transport: record why."""
        protocol = self._protocol
        exc = protocol.parser_exc
        if isinstance(exc, PayloadTooBig):
            # websockets failed the connection with 1009 (RFC 6455 7.4.1) on the frame
            # header, before the payload arrived. (Its own count of the fragments before that
            # frame has had different names across versions, so the text uses ours.)
            size = (exc.size or 0) + self._size
            self._text_parts, self._byte_parts = [], []
            self._set_error(
                TRANSPORT_ERROR,
                f"a message from {self._where} exceeds max_message_size "
                f"({size} > {self._max} bytes)",
                cause=exc,
            )
        elif isinstance(exc, EOFError):
            # The stream ended without a close frame (websockets' "unexpected end of stream").
            self._set_error(
                TRANSPORT_CLOSE, f"{self._where} closed the connection without a close frame"
            )
        elif exc is not None:
            # A frame it could not parse (bad opcode, masking, reserved bits, an oversized or
            # fragmented control frame, a bad close code or reason...): websockets failed the
            # connection (RFC 6455 7.1.7) with the code that says why, 1002 or 1007.
            self._set_error(
                TRANSPORT_ERROR, f"{self._where} broke the WebSocket protocol: {exc}", cause=exc
            )
        else:
            # A close frame, which websockets has echoed (RFC 6455 5.5.1). Nothing else moves
            # the protocol out of OPEN while self._error is None.
            close = protocol.close_rcvd
            assert close is not None
            self._set_error(
                TRANSPORT_CLOSE, f"{self._where} closed the WebSocket (code {close.code})"
            )
