"""Socket.IO v5 packets: the text/binary codec that rides inside Engine.IO MESSAGEs.

Wire format (Socket.IO v5 §"Packet encoding"; socketio-protocol.md §2.2)::

    packet      = type [attachments "-"] [namespace ","] [ackid] [json]
    type        = "0".."6"
    attachments = 1*DIGIT                      ; only for BINARY_EVENT (5) / BINARY_ACK (6)
    namespace   = "/" *(any char except ",")   ; omitted when it is "/"
    ackid       = 1*DIGIT
    json        = the payload, binary values replaced by {"_placeholder":true,"num":N}

A binary packet is that text followed by exactly ``attachments`` binary Engine.IO messages,
attachment ``N`` being the value of placeholder ``N`` (§2.6).

Encoding (:func:`encode_packet`) mirrors socket.io-parser's ``Encoder``: an EVENT or ACK whose
data holds ``bytes`` becomes a BINARY_EVENT or BINARY_ACK automatically, and a packet without
binary is never sent with a binary header (python-socketio would wait forever for the
attachments of ``50-[...]``, §2.6). Invalid packets — ones the Node server would answer by
closing the connection — raise ``ValueError`` before anything is sent.

Decoding (:class:`PacketDecoder`) follows socket.io-parser's ``Decoder`` step by step, with the
few differences documented on the class. Its contract, like the Engine.IO codec's: for any
``str`` or ``bytes`` input it returns a value or raises :class:`DecodeError`, never anything
else.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple

from tether.core._errors import DecodeError
from tether.core._errors import preview as _preview
from tether.core._json import dumps, dumps_with_binary, loads, loads_fast

__all__ = [
    "MAX_ACK_ID",
    "MAX_ATTACHMENTS",
    "RESERVED_EVENTS",
    "Packet",
    "PacketDecoder",
    "PacketType",
    "check_event_name",
    "encode_packet",
]


class PacketType(IntEnum):
    """Socket.IO v5 packet types (Socket.IO v5 §"Packet types"; socketio-protocol.md §2.1)."""

    CONNECT = 0
    """Client: join a namespace (payload: auth object). Server: accepted (``{"sid": ...}``)."""
    DISCONNECT = 1
    """Either side: leave a namespace."""
    EVENT = 2
    """Either side: ``[name, *args]``; an ack id asks for an ACK."""
    ACK = 3
    """Either side: the answer to an EVENT with an ack id; payload is the argument list."""
    CONNECT_ERROR = 4
    """Server: the namespace CONNECT was refused (object, or a string from python-socketio)."""
    BINARY_EVENT = 5
    """An EVENT with binary attachments (only on the wire; decoded as EVENT)."""
    BINARY_ACK = 6
    """An ACK with binary attachments (only on the wire; decoded as ACK)."""


class Packet(NamedTuple):
    """One Socket.IO packet.

    ``data`` is the decoded JSON value with binary attachments already put back as ``bytes``;
    for EVENT it is ``[name, *args]`` and for ACK the list of arguments. ``None`` means "no
    payload". ``id`` is the ack id; 0 is a valid id (the JS client's first one), so test it
    with ``is None``, never for truthiness (socketio-protocol.md §7, pitfall 6).

    The decoder only returns EVENT and ACK, never BINARY_EVENT or BINARY_ACK: whether a
    packet needs attachments is a wire detail that :func:`encode_packet` works out itself.
    There is no validation in the constructor, because one runs per received message; the
    decoder validates what it builds and :func:`encode_packet` validates what it sends. A
    named tuple rather than a frozen dataclass for the same reason: it is as immutable, and
    costs half as much to make.
    """

    type: PacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None


#: socket.io-parser 4.2.6 (March 2026) refuses packets with more attachments than this by
#: default (``maxAttachments``), and so do we, both ways (socketio-protocol.md §2.2, step 2).
MAX_ATTACHMENTS = 10

#: JavaScript's ``Number.MAX_SAFE_INTEGER``. The JS client and the Node server hold ack ids
#: as numbers, so an id above this cannot survive a round trip through them; a decoded id
#: above it cannot come from a real peer either (they count up from 0 or 1, §2.5).
MAX_ACK_ID = 2**53 - 1

#: Event names the Socket.IO libraries use for themselves (socket.io-parser
#: ``RESERVED_EVENTS``; socketio-protocol.md §2.8). Emitting one makes a Node server close the
#: whole connection, so :func:`encode_packet` refuses them; receiving one is a parse error for
#: the JS client, so :class:`PacketDecoder` refuses them too.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)

# Module-level aliases: a global lookup is cheaper than an enum attribute lookup, and the
# char → type table rejects anything that is not "0".."6" in a single dict hit.
_CONNECT = PacketType.CONNECT
_DISCONNECT = PacketType.DISCONNECT
_EVENT = PacketType.EVENT
_ACK = PacketType.ACK
_CONNECT_ERROR = PacketType.CONNECT_ERROR
_BINARY_EVENT = PacketType.BINARY_EVENT
_BINARY_ACK = PacketType.BINARY_ACK
_TYPE_BY_CHAR = {str(int(t)): t for t in PacketType}
_ASCII_DIGITS = "0123456789"
# An ack id is at most MAX_ACK_ID, which has 16 digits; anything longer is refused before
# int() sees it (int() of a huge digit string is slow and, past 4300 digits, a ValueError).
_MAX_ACK_ID_DIGITS = len(str(MAX_ACK_ID))
_BINARY_TYPES = (bytes, bytearray, memoryview)
_new_tuple = tuple.__new__


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def _refuse_reserved(name: str) -> None:
    if name in RESERVED_EVENTS:
        # §2.8: a Node server closes the whole connection on a reserved name.
        raise ValueError(f"{name!r} is a reserved Socket.IO event name and cannot be emitted")


def check_event_name(name: object) -> None:
    """Raise unless ``name`` is an event name a user may emit: a non-empty ``str`` that is
    not reserved (``TypeError`` for another type, ``ValueError`` otherwise).

    Stricter than the wire (which also allows numbers and the empty string): it is what the
    client's API promises, and what the hub's ``eventName`` becomes on its members' wire.
    """
    if not isinstance(name, str):
        raise TypeError(f"event names are str, got {type(name).__name__}")
    if not name:
        raise ValueError("event name must not be empty")
    _refuse_reserved(name)


def _check_event_data(data: Any) -> None:
    """Raise ValueError unless ``data`` is a valid EVENT payload (Socket.IO v5 §2.1).

    socket.io-parser's ``isPayloadValid``: a non-empty array whose first element is a
    non-reserved string or a number. ``bool`` is not a number here, as in JavaScript.
    """
    if not isinstance(data, (list, tuple)) or not data:
        raise ValueError(f"EVENT data must be a non-empty list [name, *args], got {_preview(data)}")
    name = data[0]
    if isinstance(name, str):
        _refuse_reserved(name)
    elif not isinstance(name, (int, float)) or isinstance(name, bool):
        raise ValueError(f"an event name must be a str or a number, got {name!r}")


def encode_packet(packet: Packet) -> tuple[str, list[bytes]]:
    """Encode ``packet`` as Socket.IO text plus its binary attachments.

    The text does **not** include the Engine.IO ``4`` MESSAGE prefix. Send it, then each
    attachment as a binary message, contiguously and in order (§2.6: nothing Socket.IO-level
    may come between them). The attachment list is empty for packets without binary.

    Field order is type, ``N-``, ``/namespace,`` (omitted for ``/``), ack id, JSON — the
    order of socket.io-parser's ``encodeAsString`` (pitfall 5). An EVENT or ACK whose data
    contains ``bytes``, ``bytearray`` or ``memoryview`` becomes BINARY_EVENT or BINARY_ACK;
    passing BINARY_EVENT or BINARY_ACK yourself is allowed and means the same as EVENT or ACK.

    Raises ``ValueError`` for a packet the server would reject: a namespace that does not
    start with ``/`` or contains ``,`` (the comma ends the namespace on the wire), an ack id
    that is not an int in ``0..MAX_ACK_ID``, a payload of the wrong shape for the type (CONNECT:
    ``None`` or dict; DISCONNECT: ``None``; EVENT: non-empty list starting with a
    non-reserved name; ACK: list; CONNECT_ERROR: dict or str), more than
    :data:`MAX_ATTACHMENTS` attachments, ``NaN``/``Infinity`` or a circular reference.
    Raises ``TypeError`` for data JSON cannot hold, including binary outside EVENT/ACK.
    """
    ptype = packet.type
    namespace = packet.namespace
    ack_id = packet.id
    data = packet.data

    if namespace == "/":
        namespace_field = ""
    elif isinstance(namespace, str) and namespace[:1] == "/" and "," not in namespace:
        namespace_field = namespace + ","
    else:
        raise ValueError(f"a namespace must start with '/' and contain no ',': {namespace!r}")

    if ack_id is None:
        ack_field = ""
    elif type(ack_id) is int and 0 <= ack_id <= MAX_ACK_ID:
        ack_field = str(ack_id)
    else:
        raise ValueError(f"an ack id must be an int in 0..{MAX_ACK_ID}, got {ack_id!r}")

    if ptype in (_EVENT, _BINARY_EVENT):
        _check_event_data(data)
        text_type, binary_type = "2", "5"
    elif ptype in (_ACK, _BINARY_ACK):
        if not isinstance(data, (list, tuple)):
            raise ValueError(f"ACK data must be a list of arguments, got {_preview(data)}")
        text_type, binary_type = "3", "6"
    else:
        if ptype == _CONNECT:
            # §2.4: auth must be an object; 40null / 40[] make Node close the connection.
            valid = data is None or isinstance(data, dict)
        elif ptype == _DISCONNECT:
            # socket.io-parser: "DISCONNECT: must be absent".
            valid = data is None
        elif ptype == _CONNECT_ERROR:
            valid = isinstance(data, (dict, str))
        else:
            raise ValueError(f"unknown packet type {ptype!r}")
        if not valid:
            raise ValueError(f"invalid {PacketType(ptype).name} payload: {_preview(data)}")
        json_text = "" if data is None else dumps(data)
        return f"{ptype:d}{namespace_field}{ack_field}{json_text}", []

    json_text, attachments = dumps_with_binary(data)
    if not attachments:
        return text_type + namespace_field + ack_field + json_text, attachments
    if len(attachments) > MAX_ATTACHMENTS:
        raise ValueError(
            f"{len(attachments)} binary attachments; Socket.IO servers accept at most "
            f"{MAX_ATTACHMENTS} per packet"
        )
    header = f"{binary_type}{len(attachments)}-{namespace_field}{ack_field}{json_text}"
    return header, attachments


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def _invalid_event(data: Any) -> DecodeError:
    if type(data) is list and data and type(data[0]) is str:
        return DecodeError(f"reserved event name {_preview(data[0])} received")
    return DecodeError(f"invalid EVENT payload {_preview(data)}")


def _is_event_payload(data: Any) -> bool:
    """socket.io-parser ``isPayloadValid`` for EVENT/BINARY_EVENT, on decoded JSON.

    JSON only produces exact ``list``/``str``/``int``/``float``/``bool``, so exact type
    checks suffice and are the fastest; ``bool`` is excluded because ``true`` is not a number.
    """
    if type(data) is not list or not data:
        return False
    name = data[0]
    name_type = type(name)
    if name_type is str:
        return name not in RESERVED_EVENTS
    return name_type is int or name_type is float


def _find_placeholders(data: Any, count: int) -> list[tuple[Any, Any, int]]:
    """Locate the binary placeholders in a decoded BINARY_EVENT/BINARY_ACK payload.

    Returns ``(container, key, num)`` triples so the attachments can be put in place once
    they have all arrived. Validating here, at header time, means a bad header is refused
    before we wait for its attachments. Rules follow socket.io-parser's
    ``reconstructPacket`` (Socket.IO v5 §2.6): an object whose ``_placeholder`` is exactly
    ``true`` is a placeholder and is replaced whole; its ``num`` must be an integer with
    ``0 <= num < count``. We are stricter than JavaScript in one place: ``num`` must be an
    integer (JS would accept ``1.5`` and substitute ``undefined``).

    The walk uses an explicit stack, not recursion: orjson allows 1024 levels of nesting,
    which would overflow Python's default recursion limit.
    """
    slots: list[tuple[Any, Any, int]] = []
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        items = enumerate(node) if type(node) is list else node.items()
        for key, value in items:
            value_type = type(value)
            if value_type is dict:
                if value.get("_placeholder") is True:
                    num = value.get("num")
                    if type(num) is not int or not 0 <= num < count:
                        raise DecodeError(
                            f"invalid attachment placeholder {_preview(value)} "
                            f"for {count} attachment(s)"
                        )
                    slots.append((node, key, num))
                else:
                    stack.append(value)
            elif value_type is list:
                stack.append(value)
    return slots


class PacketDecoder:
    """Decodes Socket.IO packets from the Engine.IO MESSAGEs of one connection.

    Feed every text MESSAGE to :meth:`feed_text` and every binary MESSAGE to
    :meth:`feed_binary`, in arrival order. Each returns the decoded :class:`Packet`, or
    ``None`` while a BINARY_EVENT/BINARY_ACK header is still waiting for its attachments.
    Engine.IO PING/PONG may arrive between the attachments; they are not MESSAGEs and never
    reach this decoder. Call :meth:`reset` when the transport drops, so that a half-received
    binary packet does not swallow the first messages of the next connection.

    For ``str`` or ``bytes`` input of any content, the feed methods return or raise
    :class:`DecodeError` — nothing else. A DecodeError leaves the decoder's state as it was;
    the caller is expected to close the connection with reason ``"parse error"``, as the JS
    client does (socketio-protocol.md §2.8).

    Differences from socket.io-parser's ``Decoder``, all deliberate:

    * DISCONNECT with a payload (object or string) is accepted: python-socketio's
      ``always_connect=True`` mode refuses a namespace that way (§2.4, pitfall 12). The
      payload is in ``Packet.data``.
    * EVENT, ACK and CONNECT_ERROR need a payload. Node accepts ``42`` with no JSON at all
      (it only validates a payload that is present); no server sends one, and an EVENT
      without a name cannot be dispatched.
    * The attachment count and ack id must be plain ASCII digits (JavaScript's ``Number()``
      also accepts spaces and more), and an ack id may not exceed :data:`MAX_ACK_ID`.
    * Placeholder ``num`` must be an integer (see :func:`_find_placeholders`).
    """

    __slots__ = ("_attachments", "_expected", "_pending", "_size", "_slots", "completed_size")

    def __init__(self) -> None:
        # The header of the binary packet being reassembled: (type, namespace, data, id).
        self._pending: tuple[PacketType, str, Any, int | None] | None = None
        self._slots: list[tuple[Any, Any, int]] = []
        self._expected = 0
        self._attachments: list[bytes] = []
        self._size = 0  # its header's characters and its attachments' bytes so far
        #: The size of the last binary packet completed (header and attachments): what it
        #: took on the wire, for a caller that must bound what it keeps.
        self.completed_size = 0

    @property
    def awaiting_attachments(self) -> int:
        """How many binary messages the current binary packet still needs (0 when idle)."""
        if self._pending is None:
            return 0
        return self._expected - len(self._attachments)

    def reset(self) -> None:
        """Forget a half-received binary packet (call it when the transport drops)."""
        self._pending = None
        self._slots = []
        self._expected = 0
        self._attachments = []
        self._size = 0

    def feed_text(self, text: str) -> Packet | None:
        """Decode one text MESSAGE (the Engine.IO data after the ``4``).

        Returns the packet, or ``None`` if it is a binary header whose attachments must
        follow (feed them to :meth:`feed_binary`). Raises :class:`DecodeError` for anything
        socket.io-parser would reject (see the class docstring for the differences), and for
        text arriving while attachments are still expected.
        """
        # Fast path for the most common message there is: an EVENT on "/" without ack id,
        # `2[...]`. One slice, one JSON parse, _is_event_payload's checks written out, and
        # the Packet made without the named tuple's Python-level constructor: this runs once
        # per received event.
        if self._pending is None:
            head = text[:2]
            if head == "2[":
                try:
                    data = loads_fast(text[1:])
                except ValueError:
                    return self._feed_text(text)  # the general path decides, with loads
                if type(data) is list and data:
                    name_type = type(data[0])
                    if (
                        (name_type is str and data[0] not in RESERVED_EVENTS)
                        or name_type is int
                        or name_type is float
                    ):
                        return _new_tuple(Packet, (_EVENT, "/", data, None))
                raise _invalid_event(data)
            if head[:1] == "5" and text[2:4] == "-[" and "1" <= head[1:] <= "9":
                # The header of a binary event on "/" without ack id, 1 to 9 attachments:
                # `51-[...]`. Anything it does not accept goes to the general decoder, which
                # reports the error.
                try:
                    data = loads_fast(text[3:])
                except ValueError:
                    data = None
                if _is_event_payload(data):
                    count = ord(head[1]) - 48
                    self._slots = _find_placeholders(data, count)
                    self._pending = (_EVENT, "/", data, None)
                    self._expected = count
                    self._size = len(text)
                    return None
        return self._feed_text(text)

    def _feed_text(self, text: str) -> Packet | None:
        """The general decoder: socket.io-parser ``decodeString``, step by step."""
        if not isinstance(text, str):
            raise DecodeError(f"expected a text message, got {_preview(text)}")
        if self._pending is not None:
            # socket.io-parser: "got plaintext data when reconstructing a packet".
            raise DecodeError(
                f"text message {_preview(text)} while {self.awaiting_attachments} binary "
                "attachment(s) are still expected"
            )

        # Step 1: the type digit.
        ptype = _TYPE_BY_CHAR.get(text[:1])
        if ptype is None:
            raise DecodeError(f"unknown Socket.IO packet type in {_preview(text)}")
        end = len(text)
        pos = 1

        # Step 2: for binary types, the attachment count up to "-", 1..MAX_ATTACHMENTS.
        count = 0
        if ptype in (_BINARY_EVENT, _BINARY_ACK):
            dash = text.find("-", 1)
            digits = text[1:dash]
            if dash < 0 or not digits.isascii() or not digits.isdigit():
                raise DecodeError(f"invalid attachment count in {_preview(text)}")
            # Bound the length before int(): leading zeros are legal ("02-"), megabytes of
            # digits are not worth converting.
            significant = digits.lstrip("0")
            count = int(significant or "0") if len(significant) <= 2 else MAX_ATTACHMENTS + 1
            if count < 1 or count > MAX_ATTACHMENTS:
                raise DecodeError(
                    f"attachment count must be 1..{MAX_ATTACHMENTS} in {_preview(text)}"
                )
            pos = dash + 1

        # Step 3: the namespace, from "/" to the next "," or to the end of the string
        # (`40/admin` without a comma is legal, and the v5 test suite sends it).
        if text.startswith("/", pos):
            comma = text.find(",", pos)
            if comma < 0:
                namespace = text[pos:]
                pos = end
            else:
                namespace = text[pos:comma]
                pos = comma + 1
        else:
            namespace = "/"

        # Step 4: the ack id, the maximal run of digits. `420[...]` is id 0 (pitfall 6).
        ack_id: int | None = None
        stop = pos
        while stop < end and text[stop] in _ASCII_DIGITS:
            stop += 1
        if stop > pos:
            if stop - pos > _MAX_ACK_ID_DIGITS or (ack_id := int(text[pos:stop])) > MAX_ACK_ID:
                raise DecodeError(f"ack id out of range in {_preview(text)}")
            pos = stop

        # Step 5: the JSON payload, then socket.io-parser's per-type payload rule (§2.1).
        present = pos < end
        data: Any = None
        if present:
            try:
                data = loads(text[pos:])
            except ValueError as exc:
                raise DecodeError(f"invalid JSON in {_preview(text)}") from exc
        data_type = type(data)
        if ptype in (_EVENT, _BINARY_EVENT):
            if not (present and _is_event_payload(data)):
                raise _invalid_event(data)
        elif ptype in (_ACK, _BINARY_ACK):
            if not (present and data_type is list):
                raise DecodeError(f"ACK payload must be an array in {_preview(text)}")
        elif ptype == _CONNECT:
            if present and data_type is not dict:
                raise DecodeError(f"CONNECT payload must be an object in {_preview(text)}")
        elif ptype == _CONNECT_ERROR:
            if not (present and (data_type is dict or data_type is str)):
                raise DecodeError(
                    f"CONNECT_ERROR payload must be an object or a string in {_preview(text)}"
                )
        elif present and data_type is not dict and data_type is not str:  # DISCONNECT
            raise DecodeError(
                f"DISCONNECT payload must be absent, an object or a string in {_preview(text)}"
            )

        if not count:
            return Packet(ptype, namespace, data, ack_id)
        # A binary header: remember it and wait for `count` binary messages. Like
        # socket.io-parser, the packet is delivered as EVENT/ACK once complete.
        self._slots = _find_placeholders(data, count)
        self._pending = (_EVENT if ptype == _BINARY_EVENT else _ACK, namespace, data, ack_id)
        self._expected = count
        self._size = len(text)
        return None

    def feed_binary(self, data: bytes | bytearray | memoryview) -> Packet | None:
        """Decode one binary MESSAGE: the next attachment of the pending binary packet.

        Returns the completed packet after its last attachment, else ``None``. Raises
        :class:`DecodeError` if no binary packet is pending (socket.io-parser: "got binary
        data when not reconstructing a packet") or if ``data`` is not bytes-like.
        """
        pending = self._pending
        if pending is None:
            raise DecodeError(f"unexpected binary message {_preview(data)}")
        if not isinstance(data, _BINARY_TYPES):
            raise DecodeError(f"expected a binary message, got {_preview(data)}")
        attachments = self._attachments
        attachments.append(bytes(data))
        self._size += len(data)
        if len(attachments) < self._expected:
            return None
        for container, key, num in self._slots:
            container[key] = attachments[num]
        self.completed_size = self._size
        self.reset()
        ptype, namespace, payload, ack_id = pending
        return Packet(ptype, namespace, payload, ack_id)
