"""Byte-driven harnesses: one fuzzer input (``bytes``) in, the invariant checked, nothing out.

These are what a corpus-based fuzzer (atheris, ``python -m tests.fuzz --engine atheris``)
runs, and what ``test_corpus.py`` replays for every file in ``corpus/``. The invariants
are those of ``driver.py`` (the core) and ``test_decoders.py`` (the decoders); an
``AssertionError`` or any other exception is a finding.

The input format, easy to write by hand: records separated by the byte ``0x1E`` (ASCII
"record separator"). The first record chooses the core's options (its first byte, modulo
``len(OPTIONS)``); each further record is one step, its first byte saying which:

``t`` + UTF-8     a text message (invalid UTF-8 becomes lone surrogates, as
                  ``surrogateescape`` decodes it)
``b`` + bytes     a binary message
``o``             move the connection on (open it, open its transport, or wait for it)
``u`` + a byte    a user call, chosen by that byte from ``USER_CALLS``
``c`` / ``e``     the transport closes (``"transport close"`` / ``"transport error"``)
``f``             the transport cannot be opened
``l``             a late report for an old token
``k`` + digits    the clock moves by that many milliseconds (nothing: 1 ms), the timer runs
``d``             the clock jumps to the next deadline, the timer runs

Other records are ignored. A text or binary message while no transport is open moves the
connection on instead (it is not fed: ``receive`` without a transport is the driver's bug).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tether.core import CoreOptions, OverflowPolicy, _json
from tether.core._engineio import (
    EnginePacket,
    EnginePacketType,
    Handshake,
    decode_engine_packet,
    parse_handshake,
)
from tether.core._errors import DecodeError
from tether.core._socketio import (
    MAX_ACK_ID,
    MAX_ATTACHMENTS,
    RESERVED_EVENTS,
    Packet,
    PacketDecoder,
    PacketType,
)

from .driver import CoreFuzzer
from .json_texts import typed_tokens
from .stack import process_recursion_limit

__all__ = [
    "OPTIONS",
    "USER_CALLS",
    "check_engine_message",
    "check_handshake_payload",
    "check_packet",
    "feed_decoders",
    "play_core",
    "play_decoders",
    "records",
]

SEPARATOR = b"\x1e"

OPTIONS = (
    CoreOptions(),
    CoreOptions(reconnection=False),
    CoreOptions(reconnection_attempts=1),
    CoreOptions(namespace="/admin"),
    CoreOptions(max_buffered=2, max_buffered_bytes=100, overflow=OverflowPolicy.DROP_OLDEST),
    CoreOptions(buffer_messages=False, auto_join_channels=False),
)

USER_CALLS: tuple[Callable[[CoreFuzzer], Any], ...] = (
    lambda f: f.h.emit("e", 1),
    lambda f: f.h.emit("e", b"\x00\x01", {"b": b"x"}),
    lambda f: f.h.call("e", "x", timeout=1.0)[1],
    lambda f: f.h.call("e", timeout=None)[1],
    lambda f: f.h.ack(f.server_ack_ids[-1] if f.server_ack_ids else 0, "ok"),
    lambda f: f.h.join("a"),
    lambda f: f.h.leave("a"),
    lambda f: f.h.update_profile({"n": 1}),
    lambda f: f.h.send("a", "e", "\ud800"),
    lambda f: f.h.broadcast("e", [1.5]),
    lambda f: f.h.close(),
    lambda f: f.h.open(),
    lambda f: f.h.emit("connect"),  # refused at the call site: ValueError
    lambda f: f.h.emit("e", float("nan")),  # ValueError
    lambda f: f.h.emit("e", "x" * 2_000_000),  # above maxPayload: ValueError
)


def records(data: bytes) -> list[bytes]:
    return data.split(SEPARATOR)


def play_core(data: bytes) -> CoreFuzzer:
    """Play ``data`` as a history of one Connection; the driver checks every step."""
    head, *steps = records(data)
    fuzzer = CoreFuzzer(OPTIONS[head[0] % len(OPTIONS)] if head else OPTIONS[0])
    for record in steps:
        op, body = record[:1], record[1:]
        if op == b"t":
            fuzzer.receive(body.decode("utf-8", "surrogateescape"))
        elif op == b"b":
            fuzzer.receive(body)
        elif op == b"o":
            fuzzer.advance()
        elif op == b"u" and body:
            call = USER_CALLS[body[0] % len(USER_CALLS)]
            fuzzer.user(lambda call=call: call(fuzzer))  # type: ignore[misc]
        elif op in (b"c", b"e"):
            reason = "transport close" if op == b"c" else "transport error"
            fuzzer.transport_closed(reason)
        elif op == b"f":
            fuzzer.transport_failed()
        elif op == b"l":
            fuzzer.late_report("closed")
        elif op == b"k":
            digits = body[:9]
            milliseconds = int(digits) if digits.isdigit() else 1
            fuzzer.tick(milliseconds / 1000)
        elif op == b"d":
            fuzzer.until_deadline()
    return fuzzer


# --------------------------------------------------------------------------------------------
# The decoders
# --------------------------------------------------------------------------------------------


def check_engine_message(message: str | bytes | bytearray | memoryview) -> None:
    """decode_engine_packet gives the packet the frame says, or DecodeError for text."""
    with process_recursion_limit():
        _check_engine_message(message)


def _check_engine_message(message: str | bytes | bytearray | memoryview) -> None:
    try:
        packet = decode_engine_packet(message)
    except DecodeError:
        assert isinstance(message, str)  # any binary frame is a MESSAGE
        return
    assert type(packet) is EnginePacket
    assert type(packet.type) is EnginePacketType
    if not isinstance(message, str):
        assert packet == EnginePacket(EnginePacketType.MESSAGE, bytes(message))
    elif message[:1] == "b":
        assert packet.type is EnginePacketType.MESSAGE and type(packet.data) is bytes
    else:
        assert packet == EnginePacket(EnginePacketType(int(message[0])), message[1:])


def check_handshake_payload(data: str | bytes) -> None:
    """parse_handshake gives a well-typed Handshake or raises DecodeError."""
    with process_recursion_limit():
        _check_handshake_payload(data)


def _check_handshake_payload(data: str | bytes) -> None:
    try:
        handshake = parse_handshake(data)
    except DecodeError:
        return
    assert type(handshake) is Handshake
    assert type(handshake.sid) is str
    assert all(type(upgrade) is str for upgrade in handshake.upgrades)
    for value in (handshake.ping_interval, handshake.ping_timeout, handshake.max_payload):
        assert type(value) is int and value >= 0


def check_packet(packet: Packet) -> None:
    """What every decoded packet is (the ``Packet`` docstring and socket.io-parser's rules)."""
    assert type(packet) is Packet
    assert packet.type in {
        PacketType.CONNECT,
        PacketType.DISCONNECT,
        PacketType.EVENT,
        PacketType.ACK,
        PacketType.CONNECT_ERROR,
    }
    assert type(packet.namespace) is str and packet.namespace.startswith("/")
    assert packet.id is None or (type(packet.id) is int and 0 <= packet.id <= MAX_ACK_ID)
    data = packet.data
    if packet.type is PacketType.EVENT:
        assert type(data) is list and data
        name = data[0]
        assert type(name) in (str, int, float), name
        assert name not in RESERVED_EVENTS
    elif packet.type is PacketType.ACK:
        assert type(data) is list
    elif packet.type is PacketType.CONNECT:
        assert data is None or type(data) is dict
    elif packet.type is PacketType.CONNECT_ERROR:
        assert type(data) in (dict, str)
    else:
        assert data is None or type(data) in (dict, str)


def placeholders_left(data: Any) -> int:
    """Placeholders that were not replaced by their attachment (there must be none)."""
    count = 0
    stack = [data]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            count += node.get("_placeholder") is True and type(node.get("num")) is int
            stack.extend(node.values())
        elif type(node) is list:
            stack.extend(node)
    return count


def _feed(decoder: PacketDecoder, message: str | bytes) -> Packet | None:
    if isinstance(message, str):
        return decoder.feed_text(message)
    return decoder.feed_binary(message)


def _same_packet(a: Packet | None, b: Packet | None) -> bool:
    # Iteratively: == on values nested 1000 levels deep would recurse past the limit.
    if a is None or b is None:
        return a is b
    return (a.type, a.namespace, a.id) == (b.type, b.namespace, b.id) and typed_tokens(
        a.data
    ) == typed_tokens(b.data)


def feed_decoders(messages: list[str | bytes]) -> None:
    """Feed a PacketDecoder (and a second one, only what the first did not refuse)."""
    with process_recursion_limit():
        _feed_decoders(messages)


def _feed_decoders(messages: list[str | bytes]) -> None:
    decoder = PacketDecoder()
    # A DecodeError leaves the state as it was, so the two must always agree.
    replay = PacketDecoder()
    for message in messages:
        awaiting = decoder.awaiting_attachments
        try:
            packet = _feed(decoder, message)
        except DecodeError:
            assert decoder.awaiting_attachments == awaiting
            continue
        again = _feed(replay, message)
        assert _same_packet(again, packet)
        assert 0 <= decoder.awaiting_attachments <= MAX_ATTACHMENTS
        if packet is None:
            assert decoder.awaiting_attachments > 0
        else:
            check_packet(packet)
            assert decoder.awaiting_attachments == 0
            if awaiting:  # the last attachment of a binary packet
                assert placeholders_left(packet.data) == 0
        assert replay.awaiting_attachments == decoder.awaiting_attachments


def _json_outcome(decode: Callable[[Any], Any], text: str | bytes) -> object:
    try:
        return typed_tokens(decode(text))
    except ValueError:
        return ValueError


def play_decoders(data: bytes) -> None:
    """``data`` through every decoder, as text and as bytes: a value or DecodeError only."""
    text = data.decode("utf-8", "surrogateescape")
    for message in (text, data):
        check_engine_message(message)
        check_handshake_payload(message)
        # One JSON behaviour: the stdlib path agrees with orjson-first (test_json_differential).
        assert _json_outcome(_json.loads, message) == _json_outcome(_json._stdlib_loads, message)
    messages: list[str | bytes] = []
    for record in records(data):
        if record[:1] == b"b":
            messages.append(record[1:])
        else:
            messages.append(record.decode("utf-8", "surrogateescape"))
    feed_decoders(messages)
