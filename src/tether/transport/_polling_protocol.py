"""Engine.IO v4 HTTP long-polling, sans I/O: the payload framing and the poll/post cycle.

Engine.IO v4 §"Transports/HTTP long-polling" and §"Packet encoding/HTTP long-polling"
(specs/transports.md has the whole sequence):

* A payload is one or more packets joined by the record separator ``\\x1e``. A text packet is
  its type digit and its data (``4hello``, ``2``); a binary message is ``b`` and its data in
  base64 (``bAQID`` is ``01 02 03``): polling bodies are text, so binary always travels so.
* The handshake is a ``GET`` whose answer begins with the OPEN packet; its JSON gives the
  ``sid`` every later request names, the ``upgrades`` the server offers, ``pingInterval``,
  ``pingTimeout`` and ``maxPayload``.
* Then two requests can be open at once and no more: one ``GET`` (the long poll, answered
  when the server has something to say, at the latest with its next ping) and one ``POST``
  (what the client has to say, answered ``ok``). Packets queued while a ``POST`` is out go
  together in the next one, cut so that no body exceeds ``maxPayload`` (socket.io-client
  ``_getWritablePackets``) nor :data:`MAX_POST_PACKETS` packets (python-engineio's limit).
* There is no WebSocket ping below Engine.IO: the server's ``2`` arrives in a poll answer and
  the client's ``3`` leaves in a ``POST``. A poll that stays unanswered well past
  ``pingInterval + pingTimeout`` is a dead connection.
* Either side ends the session with a CLOSE packet, ``1``: in a poll answer from the server,
  in a ``POST`` from the client.

Nothing here does I/O or reads a clock: :class:`PollingSession` is told what happened (a
poll answer's bytes as they arrive, a ``POST`` finished) and says what to do next (whether a
poll may start, the next ``POST`` body). The transport in ``_polling`` performs it.

Messages are what the WebSocket transports hand over, so the core cannot tell the two
apart: ``str`` for a text packet (``"42[...]"``, ``"2"``), ``bytes`` for a binary message.
"""

from __future__ import annotations

import binascii
import json
import math
from base64 import b64decode, b64encode
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ._base import Message

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "MAX_POST_PACKETS",
    "POLL_GRACE",
    "RECORD_SEPARATOR",
    "OpenPacket",
    "PayloadDecoder",
    "PayloadError",
    "PollingSession",
    "encode_packet",
    "encode_payload",
    "parse_open",
]

#: Engine.IO v4 §"Packet encoding/HTTP long-polling": what separates packets in a payload.
RECORD_SEPARATOR: Final = b"\x1e"
#: The servers' default ``maxHttpBufferSize`` (socketio-protocol.md §1.10), for a handshake
#: that announces none.
DEFAULT_MAX_PAYLOAD: Final = 1_000_000
#: The most packets one ``POST`` carries. python-engineio's server refuses a payload of more
#: (its ``Payload.max_decode_packets``, 16 by default: "Too many packets in payload", a 400
#: that ends the session); Node has no such limit, so this costs it only more posts in a
#: burst. Without it, an offline buffer of more than 16 messages could never be flushed to
#: a python-socketio server over polling: every reconnect would fail the same way.
MAX_POST_PACKETS: Final = 16
#: Seconds a poll may stay unanswered beyond ``pingInterval + pingTimeout`` before the
#: connection counts as dead (python-engineio's client allows the same 5 s).
POLL_GRACE: Final = 5.0

_CLOSE: Final = "1"
_SEPARATOR: Final = 0x1E
_BINARY_PREFIX: Final = 0x62  # "b"


class PayloadError(Exception):
    """A poll answer that cannot be a payload: invalid UTF-8, an oversized packet, a
    handshake that is not an OPEN packet. The text names no data from the server."""


def encode_packet(message: Message) -> bytes:
    """One packet as it travels in a payload: UTF-8 text, or ``b`` + base64 for bytes."""
    if isinstance(message, str):
        return message.encode("utf-8")
    return b"b" + b64encode(message)


def encode_payload(messages: Iterable[Message]) -> bytes:
    """Packets joined by the record separator (Engine.IO v4 §"Packet encoding")."""
    return RECORD_SEPARATOR.join([encode_packet(message) for message in messages])


class PayloadDecoder:
    """Splits one poll answer into messages as its bytes arrive.

    ``feed`` returns the packets completed by each chunk, so a long answer is handed over
    while it is still arriving, and a packet longer than ``max_message_size`` (UTF-8 bytes for
    text, decoded bytes for binary) fails as soon as that many bytes have come, before it is
    buffered whole. Splitting bytes at ``\\x1e`` is safe: in UTF-8 that byte never occurs
    inside a multi-byte character, and JSON escapes it inside strings.

    A ``b`` packet that is not valid base64 is handed on as the text it is; the core then
    reports it as a parse error, as it would on WebSocket.
    """

    __slots__ = ("_limit", "_max", "_partial")

    def __init__(self, max_message_size: int) -> None:
        self._max = max_message_size
        # The most bytes an unfinished packet may hold: base64 takes 4 bytes per 3, plus
        # padding and the "b".
        self._limit = max_message_size + max_message_size // 3 + 4
        self._partial = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """The packets that ``data`` completes (more of the same answer)."""
        if RECORD_SEPARATOR not in data:
            self._partial += data
            if len(self._partial) > self._limit:
                raise PayloadError(self._too_big(len(self._partial)))
            return []
        pieces = data.split(RECORD_SEPARATOR)
        if self._partial:
            self._partial += pieces[0]
            pieces[0] = bytes(self._partial)
        self._partial = bytearray(pieces.pop())
        if len(self._partial) > self._limit:
            raise PayloadError(self._too_big(len(self._partial)))
        return [self._decode(piece) for piece in pieces]

    def finish(self) -> list[Message]:
        """The answer is complete: its last packet (an empty answer has none)."""
        last = bytes(self._partial)
        self._partial = bytearray()
        return [self._decode(last)] if last else []

    def _decode(self, raw: bytes) -> Message:
        if raw[:1] == b"b":
            try:
                data = b64decode(raw[1:], validate=True)
            except (binascii.Error, ValueError):
                data = None
            if data is not None:
                if len(data) > self._max:
                    raise PayloadError(self._too_big(len(data)))
                return data
        if len(raw) > self._max:
            raise PayloadError(self._too_big(len(raw)))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("a packet in the poll answer is not valid UTF-8") from None

    def _too_big(self, size: int) -> str:
        return f"a packet in the poll answer exceeds max_message_size ({size} > {self._max} bytes)"


@dataclass(frozen=True, slots=True)
class OpenPacket:
    """What the OPEN packet of a polling handshake tells the transport (Engine.IO v4
    §"Handshake"). ``message`` is the packet itself, which the core reads again."""

    message: str
    sid: str
    upgrades: tuple[str, ...]
    ping_interval: float  #: seconds
    ping_timeout: float  #: seconds
    max_payload: int  #: bytes per POST body

    @property
    def poll_timeout(self) -> float:
        """How long a poll may stay unanswered before the connection counts as dead.

        The server answers a poll at the latest with its next ping, ``pingInterval`` after
        the last one; ``pingTimeout`` and :data:`POLL_GRACE` allow for a slow network.
        python-engineio advertises sub-second intervals as 0 (socketio-protocol.md §1.3),
        which only shortens this bound to ``pingTimeout`` and the grace.
        """
        return self.ping_interval + self.ping_timeout + POLL_GRACE


def parse_open(message: Message) -> OpenPacket:
    """Read the OPEN packet a polling handshake must begin with; :class:`PayloadError` if it
    is anything else. Unknown keys are ignored (servers differ in key order and extras)."""
    if not isinstance(message, str) or not message.startswith("0"):
        raise PayloadError("the handshake answer does not begin with an Engine.IO OPEN packet")
    try:
        obj = json.loads(message[1:])
    except ValueError:
        raise PayloadError("the OPEN packet is not JSON") from None
    if not isinstance(obj, dict):
        raise PayloadError("the OPEN packet is not a JSON object")
    sid = obj.get("sid")
    if not isinstance(sid, str) or not sid:
        raise PayloadError("the OPEN packet has no sid")
    upgrades = obj.get("upgrades", [])
    if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
        raise PayloadError("the OPEN packet's upgrades is not a list of strings")
    return OpenPacket(
        message=message,
        sid=sid,
        upgrades=tuple(upgrades),
        ping_interval=_milliseconds(obj, "pingInterval", 25_000) / 1000,
        ping_timeout=_milliseconds(obj, "pingTimeout", 20_000) / 1000,
        max_payload=int(_milliseconds(obj, "maxPayload", DEFAULT_MAX_PAYLOAD))
        or DEFAULT_MAX_PAYLOAD,
    )


def _milliseconds(obj: dict[str, object], key: str, default: int) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PayloadError(f"the OPEN packet's {key} is not a number")
    if not math.isfinite(value) or value < 0:
        raise PayloadError(f"the OPEN packet's {key} is not a non-negative number")
    return float(value)


class PollingSession:
    """The client's side of one polling session: which request may go out next, and what
    the answers mean. Sans I/O; one per transport.

    The poll side: :meth:`start_poll` says whether a poll may go out now (none out, the
    session open, not paused for an upgrade) and marks one out; :meth:`poll_data` and
    :meth:`poll_done` take its answer and return the messages in it; a CLOSE packet among
    them ends the session (no poll after it).

    The post side: :meth:`queue` appends messages and returns a ticket; :meth:`start_post`
    returns the next body (every queued packet that fits in ``max_payload``, in order; a
    single larger one alone) and marks a post out; :meth:`post_done` marks it answered, and
    :meth:`sent` tells a sender whether its ticket has gone out. :meth:`withdraw` takes back
    messages not yet taken (a sender cancelled while waiting its turn).
    """

    __slots__ = (
        "_decoder",
        "_in_post",
        "_next_ticket",
        "_outbox",
        "_sent_through",
        "close_received",
        "closed",
        "open",
        "paused",
        "poll_in_flight",
        "post_in_flight",
    )

    def __init__(self, *, max_message_size: int) -> None:
        self._decoder = PayloadDecoder(max_message_size)
        self.open: OpenPacket | None = None
        self.poll_in_flight = False
        self.post_in_flight = False
        self.paused = False  #: polling stopped for an upgrade to WebSocket
        self.close_received = False  #: the server sent CLOSE (``1``)
        self.closed = False  #: no request may go out any more
        # Queued messages, each with its ticket; tickets count up from 1.
        self._outbox: deque[tuple[int, bytes]] = deque()
        self._next_ticket = 1
        self._sent_through = 0  # every ticket up to this one has been posted
        self._in_post = 0  # the last ticket of the post that is out

    # --- the handshake ----------------------------------------------------------------

    def handshake(self, body: bytes) -> list[Message]:
        """The answer to the handshake ``GET``: its packets, the OPEN packet first (which
        also sets :attr:`open`). Raises :class:`PayloadError` if it has no OPEN packet."""
        messages = self._decoder.feed(body) + self._decoder.finish()
        if not messages:
            raise PayloadError("the handshake answer is empty")
        self.open = parse_open(messages[0])
        self._after_answer(messages)
        return messages

    @property
    def sid(self) -> str:
        """The session id every request after the handshake carries."""
        assert self.open is not None, "the handshake has not been read"
        return self.open.sid

    @property
    def max_payload(self) -> int:
        return DEFAULT_MAX_PAYLOAD if self.open is None else self.open.max_payload

    # --- the poll -----------------------------------------------------------------------

    def start_poll(self) -> bool:
        """Whether a poll may go out now; if so it counts as out until :meth:`poll_done`."""
        if self.poll_in_flight or self.paused or self.closed:
            return False
        self.poll_in_flight = True
        return True

    def poll_data(self, data: bytes) -> list[Message]:
        """More of the poll answer's body: the packets it completes."""
        messages = self._decoder.feed(data)
        self._after_answer(messages)
        return messages

    def poll_done(self) -> list[Message]:
        """The poll answer is complete: its last packet, if any."""
        self.poll_in_flight = False
        messages = self._decoder.finish()
        self._after_answer(messages)
        return messages

    def _after_answer(self, messages: list[Message]) -> None:
        if _CLOSE in messages:
            # Engine.IO v4 §"Transports/HTTP long-polling": the server closed the session;
            # a poll after it would be answered 400 "Session ID unknown".
            self.close_received = True
            self.closed = True

    # --- the post -----------------------------------------------------------------------

    def queue(self, messages: Iterable[Message]) -> int:
        """Queue messages for the next post; return the ticket of the last (the current
        ticket if there were none)."""
        outbox = self._outbox
        for message in messages:
            outbox.append((self._next_ticket, encode_packet(message)))
            self._next_ticket += 1
        return self._next_ticket - 1

    def sent(self, ticket: int) -> bool:
        """Whether every message up to ``ticket`` has been posted (and answered)."""
        return ticket <= self._sent_through

    def start_post(self) -> bytes | None:
        """The next post's body, or ``None`` if a post is out or nothing is queued.

        Takes queued packets in order while the body stays within ``max_payload`` bytes and
        :data:`MAX_POST_PACKETS` packets; a packet larger than ``max_payload`` on its own goes
        alone (the server then refuses it, as it would refuse the WebSocket frame).
        """
        outbox = self._outbox
        if self.post_in_flight or not outbox or self.closed:
            return None
        limit = self.max_payload
        ticket, packet = outbox.popleft()
        parts = [packet]
        size = len(packet)
        while outbox and len(parts) < MAX_POST_PACKETS and size + 1 + len(outbox[0][1]) <= limit:
            ticket, packet = outbox.popleft()
            parts.append(packet)
            size += 1 + len(packet)
        self.post_in_flight = True
        self._in_post = ticket
        return RECORD_SEPARATOR.join(parts)

    def post_done(self) -> None:
        """The server answered the post that was out."""
        self.post_in_flight = False
        self._sent_through = self._in_post

    def withdraw(self, first: int, last: int) -> None:
        """Take back the queued messages with tickets ``first``..``last`` that no post has
        taken yet (their sender gave up)."""
        self._outbox = deque(item for item in self._outbox if not first <= item[0] <= last)

    @property
    def queued(self) -> int:
        """How many messages wait for a post."""
        return len(self._outbox)

    # --- ending -------------------------------------------------------------------------

    def close(self) -> bytes | None:
        """End the session: the CLOSE packet to post, unless the server ended it already.

        Queued messages are dropped: whoever closes is done sending.
        """
        self._outbox.clear()
        already = self.closed
        self.closed = True
        return None if already or self.open is None else _CLOSE.encode("ascii")
