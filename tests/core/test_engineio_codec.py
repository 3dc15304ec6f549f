"""Tests for tether.core._engineio: Engine.IO v4 frames and the open-packet handshake.

Golden strings come from the official v4 test suite (mono:docs/engine.io-protocol/
v4-test-suite/test-suite.js, via docs/socket.io-protocol/v5-test-suite) and from
socketio-protocol.md §1.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.core import _engineio
from tether.core._engineio import (
    DEFAULT_MAX_PAYLOAD,
    EnginePacket,
    EnginePacketType,
    Handshake,
    decode_engine_packet,
    encode_engine_packet,
    parse_handshake,
)
from tether.core._errors import DecodeError

T = EnginePacketType

# --------------------------------------------------------------------------------------------
# Packets
# --------------------------------------------------------------------------------------------


def test_packet_type_values() -> None:
    assert [(t.name, int(t)) for t in T] == [
        ("OPEN", 0),
        ("CLOSE", 1),
        ("PING", 2),
        ("PONG", 3),
        ("MESSAGE", 4),
        ("UPGRADE", 5),
        ("NOOP", 6),
    ]


GOLDEN_TEXT = [
    # (frame, packet) — every one also encodes back to the same frame.
    (
        '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":300,'
        '"pingTimeout":200,"maxPayload":1000000}',
        EnginePacket(
            T.OPEN,
            '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":300,'
            '"pingTimeout":200,"maxPayload":1000000}',
        ),
    ),
    ("1", EnginePacket(T.CLOSE)),
    ("2", EnginePacket(T.PING)),
    ("2probe", EnginePacket(T.PING, "probe")),
    ("3", EnginePacket(T.PONG)),
    ("3probe", EnginePacket(T.PONG, "probe")),
    ("4hello", EnginePacket(T.MESSAGE, "hello")),
    ('42["auth",{}]', EnginePacket(T.MESSAGE, '2["auth",{}]')),
    ("4", EnginePacket(T.MESSAGE, "")),
    ("4é✓", EnginePacket(T.MESSAGE, "é✓")),
    ("5", EnginePacket(T.UPGRADE)),
    ("6", EnginePacket(T.NOOP)),
]


@pytest.mark.parametrize(("frame", "packet"), GOLDEN_TEXT)
def test_text_frames_decode_and_encode(frame: str, packet: EnginePacket) -> None:
    assert decode_engine_packet(frame) == packet
    assert encode_engine_packet(packet) == frame


def test_binary_frame_is_a_message_with_no_type_byte() -> None:
    # v4 test suite "should send a binary message": raw 01 02 03 04 is echoed as is.
    packet = decode_engine_packet(b"\x01\x02\x03\x04")
    assert packet == EnginePacket(T.MESSAGE, b"\x01\x02\x03\x04")
    assert encode_engine_packet(packet) == b"\x01\x02\x03\x04"
    # A binary frame that happens to start with an ASCII digit is still a MESSAGE.
    assert decode_engine_packet(b"4hello") == EnginePacket(T.MESSAGE, b"4hello")
    assert decode_engine_packet(b"") == EnginePacket(T.MESSAGE, b"")


@pytest.mark.parametrize("frame", [bytearray(b"\x01\x02"), memoryview(b"\x01\x02")])
def test_bytes_like_frames_become_bytes(frame: bytearray | memoryview) -> None:
    packet = decode_engine_packet(frame)
    assert type(packet.data) is bytes
    assert packet.data == b"\x01\x02"
    assert encode_engine_packet(EnginePacket(T.MESSAGE, frame)) == b"\x01\x02"  # type: ignore[arg-type]


def test_base64_message() -> None:
    # socketio-protocol.md §1.2: `bAQID` is the binary message 01 02 03.
    assert decode_engine_packet("bAQID") == EnginePacket(T.MESSAGE, b"\x01\x02\x03")
    assert decode_engine_packet("b") == EnginePacket(T.MESSAGE, b"")
    assert decode_engine_packet("b3q2+7w==") == EnginePacket(T.MESSAGE, b"\xde\xad\xbe\xef")


@pytest.mark.parametrize(
    "frame",
    [
        "",  # an empty text frame has no type
        "abc",  # v4 test suite: "closes the session upon invalid packet format"
        "7",
        "9hello",
        "x",
        " 4hello",
        "٤hello",  # ARABIC-INDIC DIGIT FOUR is not "4"
        "bA",  # truncated base64
        "bAQI",  # missing padding
        "bA===",
        "bAQ==AQ",
        "bAQ!D",  # outside the alphabet: refused, not skipped
        "bAQ\nD",
        "bé",  # non-ASCII
    ],
)
def test_invalid_text_frames(frame: str) -> None:
    with pytest.raises(DecodeError):
        decode_engine_packet(frame)


def test_wrong_argument_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="expected str or bytes"):
        decode_engine_packet(4)  # type: ignore[arg-type]


def test_binary_data_only_on_message() -> None:
    with pytest.raises(ValueError, match="only MESSAGE"):
        encode_engine_packet(EnginePacket(T.PING, b"x"))


def test_packets_are_frozen() -> None:
    packet = EnginePacket(T.PING)
    with pytest.raises(AttributeError):
        packet.data = "x"  # type: ignore[misc]


_packets = st.one_of(
    st.builds(EnginePacket, st.sampled_from(T), st.text(max_size=20)),
    st.builds(EnginePacket, st.just(T.MESSAGE), st.binary(max_size=20)),
)


@settings(max_examples=200, deadline=None)
@given(_packets)
def test_round_trip(packet: EnginePacket) -> None:
    assert decode_engine_packet(encode_engine_packet(packet)) == packet


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=20), st.binary(max_size=20), st.from_regex(r"\Ab[ -~]*\Z")))
def test_decode_fuzz_returns_a_packet_or_raises_decode_error(frame: str | bytes) -> None:
    try:
        packet = decode_engine_packet(frame)
    except DecodeError:
        return
    assert isinstance(packet, EnginePacket)
    assert isinstance(packet.type, EnginePacketType)


# --------------------------------------------------------------------------------------------
# Handshake
# --------------------------------------------------------------------------------------------


def test_handshake_golden_node_order() -> None:
    # Shape asserted by both official test suites for a WebSocket-only session.
    data = (
        '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":300,'
        '"pingTimeout":200,"maxPayload":1000000}'
    )
    assert parse_handshake(data) == Handshake(
        sid="lv_VI97HAXpY6yYWAAAC",
        upgrades=(),
        ping_interval=300,
        ping_timeout=200,
        max_payload=1_000_000,
    )


def test_handshake_python_engineio_order_extra_keys_and_bytes() -> None:
    # python-engineio puts pingTimeout first; unknown keys are ignored; bytes are fine.
    data = (
        b'{"sid":"Dq9x","upgrades":["websocket"],"pingTimeout":20000,'
        b'"pingInterval":25000,"maxPayload":500,"extra":{"x":[1]}}'
    )
    assert parse_handshake(data) == Handshake("Dq9x", ("websocket",), 25000, 20000, 500)


def test_handshake_defaults_and_zero_interval() -> None:
    # maxPayload may be missing; python-engineio advertises pingInterval 0 for sub-second
    # intervals (socketio-protocol.md §1.3), which is the heartbeat logic's problem.
    handshake = parse_handshake('{"sid":"s","upgrades":[],"pingInterval":0,"pingTimeout":0}')
    assert handshake.max_payload == DEFAULT_MAX_PAYLOAD == 1_000_000
    assert handshake.ping_interval == 0


def _handshake(**changes: Any) -> str:
    obj: dict[str, Any] = {
        "sid": "s",
        "upgrades": [],
        "pingInterval": 300,
        "pingTimeout": 200,
        "maxPayload": 1000,
    }
    for key, value in changes.items():
        if value is _MISSING:
            del obj[key]
        else:
            obj[key] = value
    return json.dumps(obj)


_MISSING = object()


@pytest.mark.parametrize(
    "data",
    [
        _handshake(sid=_MISSING),
        _handshake(sid=None),
        _handshake(sid=1),
        _handshake(upgrades=_MISSING),
        _handshake(upgrades="websocket"),
        _handshake(upgrades=["websocket", 1]),
        _handshake(pingInterval=_MISSING),
        _handshake(pingInterval="300"),
        _handshake(pingInterval=300.0),
        _handshake(pingInterval=True),
        _handshake(pingInterval=-1),
        _handshake(pingTimeout=_MISSING),
        _handshake(pingTimeout=None),
        _handshake(pingTimeout=-200),
        _handshake(maxPayload=None),
        _handshake(maxPayload=-1),
        _handshake(maxPayload=False),
        "",
        "{",
        "[]",
        "null",
        '"sid"',
        b"\xff",
        "[" * 3000,
    ],
)
def test_invalid_handshakes(data: str | bytes) -> None:
    with pytest.raises(DecodeError):
        parse_handshake(data)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
)
_handshake_like = st.fixed_dictionaries(
    {},
    optional={
        "sid": _json_values,
        "upgrades": st.lists(st.text(max_size=5) | _json_values, max_size=3),
        "pingInterval": st.integers(-5, 2**40) | _json_values,
        "pingTimeout": st.integers(-5, 2**40) | _json_values,
        "maxPayload": st.integers(-5, 2**40) | _json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=30),
        st.binary(max_size=30),
        _handshake_like.map(json.dumps),
    )
)
def test_handshake_fuzz_parses_or_raises_decode_error(data: str | bytes) -> None:
    try:
        handshake = parse_handshake(data)
    except DecodeError:
        return
    assert isinstance(handshake.sid, str)
    assert handshake.ping_interval >= 0
    assert handshake.ping_timeout >= 0
    assert handshake.max_payload >= 0


def test_all() -> None:
    assert sorted(_engineio.__all__) == [
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
