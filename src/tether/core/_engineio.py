"""Engine.IO v4 packets over WebSocket: one packet per frame, no I/O.

Engine.IO v4 §"Packet encoding", WebSocket flavour (socketio-protocol.md §1.2):

* A **text** frame is one ASCII type digit followed by the payload: ``4hello`` is a MESSAGE
  whose data is ``hello``; ``2`` is a PING with no data.
* A **binary** frame is a MESSAGE whose data is the whole frame. There is no type byte: the
  frame type itself says "binary message".
* A text frame starting with ``b`` carries a base64-encoded binary MESSAGE (``bAQID`` is
  ``01 02 03``). Servers only send it on WebSocket to clients that asked for ``b64=1``, but it
  costs nothing to understand.
* Anything else is a parse error; the Node server closes the session on one (§1.2).

The first frame of a session is the OPEN packet whose JSON payload :func:`parse_handshake`
reads (§1.3).

:func:`decode_frame` (and its packet-object form :func:`decode_engine_packet`) and
:func:`parse_handshake` take ``str`` or ``bytes`` of any content and either return a value or
raise :class:`DecodeError`; nothing else escapes them.
Both run once per WebSocket frame, so they avoid regexes, enum calls and any allocation beyond
the result.
"""

from __future__ import annotations

from base64 import b64decode
from dataclasses import dataclass
from enum import IntEnum

from tether.core._errors import DecodeError
from tether.core._errors import preview as _preview
from tether.core._json import loads

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "EnginePacket",
    "EnginePacketType",
    "Handshake",
    "decode_engine_packet",
    "decode_frame",
    "encode_engine_packet",
    "encode_frame",
    "parse_handshake",
]


class EnginePacketType(IntEnum):
    """Engine.IO v4 packet types (Engine.IO v4 §"Packet types"; socketio-protocol.md §1.2)."""

    OPEN = 0
    """Server → client, first frame: the JSON handshake."""
    CLOSE = 1
    """Either side: the session is over (only python-engineio sends it on WebSocket, §1.8)."""
    PING = 2
    """Server → client in v4; answer with PONG. A client PING gets a Node session closed."""
    PONG = 3
    """Client → server, the answer to PING."""
    MESSAGE = 4
    """Either side: application data (a Socket.IO packet)."""
    UPGRADE = 5
    """Client → server, only to finish a polling → WebSocket upgrade (§1.7)."""
    NOOP = 6
    """Server → client; ignore it."""


@dataclass(frozen=True, slots=True)
class EnginePacket:
    """One Engine.IO packet, i.e. one WebSocket frame.

    ``data`` is ``bytes`` only for a binary MESSAGE; every other packet carries text (usually
    empty; ``probe`` for the upgrade ping, the JSON handshake for OPEN).
    """

    type: EnginePacketType
    data: str | bytes = ""


@dataclass(frozen=True, slots=True)
class Handshake:
    """The OPEN packet's payload (Engine.IO v4 §"Handshake"; socketio-protocol.md §1.3).

    ``ping_interval`` and ``ping_timeout`` are milliseconds. ``ping_interval`` may be 0:
    python-engineio truncates sub-second intervals to whole seconds before converting to
    milliseconds (§1.3), so the heartbeat logic, not this parser, has to cope with it.
    """

    sid: str
    upgrades: tuple[str, ...]
    ping_interval: int
    ping_timeout: int
    max_payload: int


#: Both reference servers default ``maxHttpBufferSize`` / ``max_http_buffer_size`` to 1e6
#: (socketio-protocol.md §1.10); a handshake without ``maxPayload`` gets the same.
DEFAULT_MAX_PAYLOAD = 1_000_000

# Lookup tables instead of int()/EnginePacketType() calls: a dict hit is the cheapest way to
# map the leading character, and it rejects everything that is not "0".."6" in one step.
_TYPE_BY_CHAR = {str(int(t)): t for t in EnginePacketType}
_CHAR_BY_TYPE = "0123456"
_MESSAGE = EnginePacketType.MESSAGE
_BINARY_TYPES = (bytes, bytearray, memoryview)


def encode_frame(packet_type: EnginePacketType, data: str | bytes = "") -> str | bytes:
    """Encode one Engine.IO packet as the payload of one WebSocket frame.

    Returns ``bytes`` (send as a binary frame) for a MESSAGE with binary data, and ``str``
    (send as a text frame) otherwise: the type digit followed by the data (Engine.IO v4
    §"Packet encoding"). We never produce the ``b`` base64 form: it is only for clients that
    cannot receive binary frames.

    Raises ``ValueError`` for binary data on any other packet type, which the protocol
    cannot express.
    """
    if isinstance(data, str):
        return _CHAR_BY_TYPE[packet_type] + data
    if packet_type != _MESSAGE:
        raise ValueError(f"only MESSAGE packets can carry binary data, not {packet_type!r}")
    return bytes(data)


def encode_engine_packet(packet: EnginePacket) -> str | bytes:
    """:func:`encode_frame` for an :class:`EnginePacket`."""
    return encode_frame(packet.type, packet.data)


def decode_frame(
    message: str | bytes | bytearray | memoryview,
) -> tuple[EnginePacketType, str | bytes]:
    """Decode the payload of one WebSocket frame into ``(packet type, data)``.

    ``bytes`` (a binary frame) is always a MESSAGE carrying those bytes. ``str`` (a text
    frame) is a type digit plus data, or ``b`` plus base64 for a binary MESSAGE. Raises
    :class:`DecodeError` for an empty text frame, an unknown leading character or bad base64.
    Any other argument type is a caller bug and raises ``TypeError``.

    This is the form the core's receive path uses: a tuple, no packet object per frame.
    """
    if type(message) is str:
        packet_type = _TYPE_BY_CHAR.get(message[:1])
        if packet_type is not None:
            return packet_type, message[1:]
        if message[:1] == "b":
            try:
                # validate=True rejects characters outside the alphabet instead of skipping
                # them, so a corrupted frame is an error rather than silently different
                # bytes. binascii.Error (bad padding) and the error for non-ASCII text are
                # both ValueErrors.
                decoded = b64decode(message[1:], validate=True)
            except ValueError as exc:
                raise DecodeError(f"invalid base64 message {_preview(message)}") from exc
            return _MESSAGE, decoded
        raise DecodeError(f"unknown Engine.IO packet {_preview(message)}")
    if isinstance(message, _BINARY_TYPES):
        return _MESSAGE, bytes(message)
    raise TypeError(f"expected str or bytes, got {type(message).__name__}")


def decode_engine_packet(message: str | bytes | bytearray | memoryview) -> EnginePacket:
    """:func:`decode_frame` as an :class:`EnginePacket`."""
    packet_type, data = decode_frame(message)
    return EnginePacket(packet_type, data)


def _non_negative_int(obj: dict[str, object], key: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    # bool is an int subclass, but ``true`` is not a number of milliseconds.
    if type(value) is not int or value < 0:
        raise DecodeError(
            f"handshake {key!r} must be a non-negative integer, got {_preview(value)}"
        )
    return value


def parse_handshake(data: str | bytes) -> Handshake:
    """Parse the JSON payload of the OPEN packet (the text after the ``0``).

    Engine.IO v4 §"Handshake": an object with ``sid`` (string), ``upgrades`` (list of
    strings), ``pingInterval`` and ``pingTimeout`` (ms) and ``maxPayload`` (bytes). Servers
    disagree on key order (python-engineio puts ``pingTimeout`` first) and may add keys, so we
    read it as an object and ignore what we do not know (socketio-protocol.md §1.3). A missing
    ``maxPayload`` defaults to :data:`DEFAULT_MAX_PAYLOAD`.

    Raises :class:`DecodeError` for invalid JSON, a non-object, a missing or ill-typed
    required key, or a negative number.
    """
    try:
        obj = loads(data)
    except ValueError as exc:
        raise DecodeError(f"handshake is not valid JSON: {_preview(data)}") from exc
    if type(obj) is not dict:
        raise DecodeError(f"handshake must be a JSON object, got {_preview(data)}")
    sid = obj.get("sid")
    if type(sid) is not str:
        raise DecodeError(f"handshake 'sid' must be a string, got {_preview(sid)}")
    upgrades = obj.get("upgrades")
    if type(upgrades) is not list or any(type(u) is not str for u in upgrades):
        raise DecodeError(
            f"handshake 'upgrades' must be a list of strings, got {_preview(upgrades)}"
        )
    return Handshake(
        sid=sid,
        upgrades=tuple(upgrades),
        ping_interval=_non_negative_int(obj, "pingInterval"),
        ping_timeout=_non_negative_int(obj, "pingTimeout"),
        max_payload=_non_negative_int(obj, "maxPayload", DEFAULT_MAX_PAYLOAD),
    )
