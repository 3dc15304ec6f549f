"""Tests for tether.core._socketio: the Socket.IO v5 packet codec.

Golden strings are the exact bytes of the official v5 test suite
(mono:docs/socket.io-protocol/v5-test-suite/test-suite.js) and of socketio-protocol.md
§2.3/§5, written here without the Engine.IO ``4`` prefix (the codec works on MESSAGE data).
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.core import _socketio
from tether.core._errors import DecodeError
from tether.core._socketio import (
    MAX_ACK_ID,
    MAX_ATTACHMENTS,
    RESERVED_EVENTS,
    Packet,
    PacketDecoder,
    PacketType,
    encode_packet,
)

P = PacketType


def _ph(num: int) -> str:
    return f'{{"_placeholder":true,"num":{num}}}'


def decode(text: str, *attachments: bytes) -> Packet:
    """Feed a text message and its attachments to a fresh decoder; return the packet."""
    decoder = PacketDecoder()
    result = decoder.feed_text(text)
    for index, attachment in enumerate(attachments):
        assert result is None
        assert decoder.awaiting_attachments == len(attachments) - index
        result = decoder.feed_binary(attachment)
    assert result is not None
    assert decoder.awaiting_attachments == 0
    return result


def test_packet_type_values() -> None:
    assert [(t.name, int(t)) for t in P] == [
        ("CONNECT", 0),
        ("DISCONNECT", 1),
        ("EVENT", 2),
        ("ACK", 3),
        ("CONNECT_ERROR", 4),
        ("BINARY_EVENT", 5),
        ("BINARY_ACK", 6),
    ]


def test_constants() -> None:
    assert MAX_ATTACHMENTS == 10
    assert MAX_ACK_ID == 9007199254740991  # Number.MAX_SAFE_INTEGER
    expected = {"connect", "connect_error", "disconnect", "disconnecting"}
    assert expected | {"newListener", "removeListener"} == RESERVED_EVENTS


# --------------------------------------------------------------------------------------------
# Golden packets: encode to exactly these bytes, and decode back
# --------------------------------------------------------------------------------------------

# (text, attachments, packet). Every row round-trips in both directions.
GOLDEN: list[tuple[str, list[bytes], Packet]] = [
    # v5 test suite, client → server
    ("0", [], Packet(P.CONNECT)),
    ('0{"token":"123"}', [], Packet(P.CONNECT, data={"token": "123"})),
    ("0/custom,", [], Packet(P.CONNECT, "/custom")),
    ('0/custom,{"token":"abc"}', [], Packet(P.CONNECT, "/custom", {"token": "abc"})),
    ("1", [], Packet(P.DISCONNECT)),
    ("1/custom,", [], Packet(P.DISCONNECT, "/custom")),
    (
        '2["message",1,"2",{"3":[true]}]',
        [],
        Packet(P.EVENT, data=["message", 1, "2", {"3": [True]}]),
    ),
    (
        '2456["message-with-ack",1,"2",{"3":[false]}]',
        [],
        Packet(P.EVENT, data=["message-with-ack", 1, "2", {"3": [False]}], id=456),
    ),
    (
        f'52-["message",{_ph(0)},{_ph(1)}]',
        [b"\x01\x02\x03", b"\x04\x05\x06"],
        Packet(P.EVENT, data=["message", b"\x01\x02\x03", b"\x04\x05\x06"]),
    ),
    (
        f'52-789["message-with-ack",{_ph(0)},{_ph(1)}]',
        [b"\x01\x02\x03", b"\x04\x05\x06"],
        Packet(P.EVENT, data=["message-with-ack", b"\x01\x02\x03", b"\x04\x05\x06"], id=789),
    ),
    # v5 test suite, server → client
    (
        '0{"sid":"lv_VI97HAXpY6yYWAAAC"}',
        [],
        Packet(P.CONNECT, data={"sid": "lv_VI97HAXpY6yYWAAAC"}),
    ),
    ('2["auth",{}]', [], Packet(P.EVENT, data=["auth", {}])),
    ('2["auth",{"token":"123"}]', [], Packet(P.EVENT, data=["auth", {"token": "123"}])),
    ('2/custom,["auth",{}]', [], Packet(P.EVENT, "/custom", ["auth", {}])),
    (
        '4/random,{"message":"Invalid namespace"}',
        [],
        Packet(P.CONNECT_ERROR, "/random", {"message": "Invalid namespace"}),
    ),
    (
        '2["message-back",1,"2",{"3":[true]}]',
        [],
        Packet(P.EVENT, data=["message-back", 1, "2", {"3": [True]}]),
    ),
    (
        '3456[1,"2",{"3":[false]}]',
        [],
        Packet(P.ACK, data=[1, "2", {"3": [False]}], id=456),
    ),
    (
        f"62-789[{_ph(0)},{_ph(1)}]",
        [b"\x01\x02\x03", b"\x04\x05\x06"],
        Packet(P.ACK, data=[b"\x01\x02\x03", b"\x04\x05\x06"], id=789),
    ),
    # socketio-protocol.md §2.3
    ('0{"token":"s3cr3t"}', [], Packet(P.CONNECT, data={"token": "s3cr3t"})),
    ("0/admin,", [], Packet(P.CONNECT, "/admin")),
    ('0/admin,{"token":"s3cr3t"}', [], Packet(P.CONNECT, "/admin", {"token": "s3cr3t"})),
    (
        '0/admin,{"sid":"7hTq","pid":"Zk2w"}',
        [],
        Packet(P.CONNECT, "/admin", {"sid": "7hTq", "pid": "Zk2w"}),
    ),
    (
        '4{"message":"bad token","data":{"retryIn":30}}',
        [],
        Packet(P.CONNECT_ERROR, data={"message": "bad token", "data": {"retryIn": 30}}),
    ),
    (
        '4/nope,{"message":"Invalid namespace"}',
        [],
        Packet(P.CONNECT_ERROR, "/nope", {"message": "Invalid namespace"}),
    ),
    # python-socketio refuses an unknown namespace with a bare string
    ('4/nope,"Unable to connect"', [], Packet(P.CONNECT_ERROR, "/nope", "Unable to connect")),
    (
        '4{"message":"Connection rejected by server"}',
        [],
        Packet(P.CONNECT_ERROR, data={"message": "Connection rejected by server"}),
    ),
    ('2["chat","hello",{"room":1}]', [], Packet(P.EVENT, data=["chat", "hello", {"room": 1}])),
    ('20["chat","hello"]', [], Packet(P.EVENT, data=["chat", "hello"], id=0)),  # id 0!
    ('2/admin,17["kick","bob"]', [], Packet(P.EVENT, "/admin", ["kick", "bob"], 17)),
    ("3/admin,17[]", [], Packet(P.ACK, "/admin", [], 17)),
    ('30["ok",3]', [], Packet(P.ACK, data=["ok", 3], id=0)),
    ("1/admin,", [], Packet(P.DISCONNECT, "/admin")),
    (
        f'52-/admin,5["upload",{_ph(0)},{{"meta":{_ph(1)}}}]',
        [b"\xde\xad\xbe\xef", b"\x00\x01"],
        Packet(P.EVENT, "/admin", ["upload", b"\xde\xad\xbe\xef", {"meta": b"\x00\x01"}], 5),
    ),
    (f"61-9[{_ph(0)}]", [b"\xff"], Packet(P.ACK, data=[b"\xff"], id=9)),
    # numeric event names are legal (socket.io-parser isPayloadValid)
    ("2[42,true]", [], Packet(P.EVENT, data=[42, True])),
    ('2[1.5,"x"]', [], Packet(P.EVENT, data=[1.5, "x"])),
    # namespaces keep everything but the comma; non-ASCII is not escaped
    ('2/chat?room=1,["é✓"]', [], Packet(P.EVENT, "/chat?room=1", ["é✓"])),
    ("2/1,2[3]", [], Packet(P.EVENT, "/1", [3], 2)),
]


@pytest.mark.parametrize(("text", "attachments", "packet"), GOLDEN)
def test_golden_encode(text: str, attachments: list[bytes], packet: Packet) -> None:
    assert encode_packet(packet) == (text, attachments)


@pytest.mark.parametrize(("text", "attachments", "packet"), GOLDEN)
def test_golden_decode(text: str, attachments: list[bytes], packet: Packet) -> None:
    decoded = decode(text, *attachments)
    assert decoded == packet
    assert type(decoded.type) is PacketType


# --------------------------------------------------------------------------------------------
# Decode-only acceptances (things we never send but must understand)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "attachments", "packet"),
    [
        # v5 test suite sends these without the trailing comma
        ("0/admin", [], Packet(P.CONNECT, "/admin")),
        ("0/random", [], Packet(P.CONNECT, "/random")),
        ("1/custom", [], Packet(P.DISCONNECT, "/custom")),
        # python-socketio always_connect=True refuses with DISCONNECT + payload (§2.4)
        (
            '1{"message":"Connection rejected by server"}',
            [],
            Packet(P.DISCONNECT, data={"message": "Connection rejected by server"}),
        ),
        ('1/admin,{"message":"no"}', [], Packet(P.DISCONNECT, "/admin", {"message": "no"})),
        ('1/admin,"no"', [], Packet(P.DISCONNECT, "/admin", "no")),
        # leading zeros in the attachment count and in the ack id
        (
            f'502-007["m",{_ph(1)},{_ph(0)}]',
            [b"a", b"b"],
            Packet(P.EVENT, data=["m", b"b", b"a"], id=7),
        ),
        # an ack id on CONNECT/DISCONNECT is meaningless but socket.io-parser accepts it
        ("01{}", [], Packet(P.CONNECT, data={}, id=1)),
        ("01", [], Packet(P.CONNECT, id=1)),
        ("1/admin,3", [], Packet(P.DISCONNECT, "/admin", id=3)),
        # absurd leading zeros in the attachment count are still just a count
        ("5" + "0" * 4400 + f'1-["m",{_ph(0)}]', [b"x"], Packet(P.EVENT, data=["m", b"x"])),
        # the largest ack id JavaScript can hold exactly
        (f'2{MAX_ACK_ID}["m"]', [], Packet(P.EVENT, data=["m"], id=MAX_ACK_ID)),
        # whitespace around the JSON is JSON
        ('2 ["m"] ', [], Packet(P.EVENT, data=["m"])),
        # a placeholder may repeat, extra keys are ignored, an unused attachment is dropped
        (
            f'53-["m",{_ph(0)},{{"_placeholder":true,"num":0,"x":1}},[{_ph(2)}]]',
            [b"a", b"unused", b"c"],
            Packet(P.EVENT, data=["m", b"a", b"a", [b"c"]]),
        ),
        # only `"_placeholder": true` makes a placeholder (socket.io-parser `=== true`)
        (
            '51-["m",{"_placeholder":1,"num":0},{"_placeholder":false},{"num":0}]',
            [b"x"],
            Packet(
                P.EVENT,
                data=["m", {"_placeholder": 1, "num": 0}, {"_placeholder": False}, {"num": 0}],
            ),
        ),
        # ... and outside a binary packet a placeholder is just an object
        (f'2["m",{_ph(0)}]', [], Packet(P.EVENT, data=["m", {"_placeholder": True, "num": 0}])),
        # an empty attachment is an attachment
        (f"61-0[{_ph(0)}]", [b""], Packet(P.ACK, data=[b""], id=0)),
        # a placeholder nested deep inside objects
        (
            f'51-/admin,5["m",{{"a":[{{"b":{{"c":{_ph(0)}}}}}]}}]',
            [b"deep"],
            Packet(P.EVENT, "/admin", ["m", {"a": [{"b": {"c": b"deep"}}]}], 5),
        ),
    ],
)
def test_decode_accepts(text: str, attachments: list[bytes], packet: Packet) -> None:
    assert decode(text, *attachments) == packet


def test_decoded_attachments_are_bytes() -> None:
    decoder = PacketDecoder()
    assert decoder.feed_text(f'51-["m",{_ph(0)}]') is None
    packet = decoder.feed_binary(bytearray(b"xy"))
    assert packet is not None
    assert type(packet.data[1]) is bytes


def test_max_attachments_decode() -> None:
    placeholders = ",".join(_ph(n) for n in range(10))
    packet = decode(f'510-["m",{placeholders}]', *(bytes([n]) for n in range(10)))
    assert packet.data == ["m", *(bytes([n]) for n in range(10))]


# --------------------------------------------------------------------------------------------
# Decode errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # v5 test suite "closes the connection upon invalid format"
        "abc",  # unknown packet type (the suite sends `4abc`)
        "2{}",  # invalid payload format
        '2abc["message-with-ack",1,"2",{"3":[false]}]',  # invalid ack id
        # unknown type
        "",
        "7",
        "9[]",
        "-1",
        "٢[]",  # a non-ASCII digit
        # attachment count
        '5-["m"]',
        '5["m"]',
        "5",
        '50-["m"]',
        '511-["m"]',
        '5a-["m"]',
        '5 1-["m"]',
        '5²-["m"]',  # SUPERSCRIPT TWO: str.isdigit() says yes
        "5" + "0" * 4400 + "11-" + '["m"]',  # 11, with absurd leading zeros
        "5" + "9" * 5000 + '-["m"]',
        '5/admin,1-["m"]',  # count after the namespace (pitfall 5)
        # ack id
        f'2{MAX_ACK_ID + 1}["m"]',
        "2" + "1" * 17 + '["m"]',
        "2" + "1" * 5000 + '["m"]',
        # JSON
        "2[",
        '2["m"]x',
        "2[NaN]",
        '2["m",1e400]',
        "2" + "[" * 100_000,
        '2/admin,["m"',
        # CONNECT: absent or object
        "0[]",
        "0null",
        '0"x"',
        # DISCONNECT: absent, object or string
        "1[]",
        "1null",
        # EVENT: non-empty array, first a non-reserved string or a number
        "2",
        "2/admin,",
        "21",
        "2[]",
        '2{"a":1}',
        '2"m"',
        "2[true]",
        "2[null]",
        "2[[]]",
        '2[{"m":1}]',
        '2/admin,["connect"]',
        '20["disconnect"]',
        # ACK: array
        "3",
        "31",
        "3/admin,17",
        "3{}",
        '3"x"',
        # CONNECT_ERROR: object or string
        "4",
        "4/nope,",
        "4[]",
        "41",
        "4null",
        # binary headers follow the same payload rules
        f"51-[{_ph(0)}]",  # first element of an EVENT cannot be binary
        f'51-{{"x":{_ph(0)}}}',
        "61-",
        # placeholders
        f'51-["m",{_ph(1)}]',
        '51-["m",{"_placeholder":true,"num":-1}]',
        '51-["m",{"_placeholder":true}]',
        '51-["m",{"_placeholder":true,"num":"0"}]',
        '51-["m",{"_placeholder":true,"num":0.0}]',
        '51-["m",{"_placeholder":true,"num":false}]',
        '52-["m",[[{"_placeholder":true,"num":2}]]]',
    ],
)
def test_decode_rejects(text: str) -> None:
    decoder = PacketDecoder()
    with pytest.raises(DecodeError):
        decoder.feed_text(text)
    assert decoder.awaiting_attachments == 0


@pytest.mark.parametrize("name", sorted(RESERVED_EVENTS))
def test_reserved_event_names_are_refused_incoming(name: str) -> None:
    with pytest.raises(DecodeError, match="reserved event name"):
        PacketDecoder().feed_text("2" + json.dumps([name, 1]))
    with pytest.raises(DecodeError, match="reserved event name"):
        PacketDecoder().feed_text("2/admin,1" + json.dumps([name]))
    # Reserved names are only special in first position, and only for EVENT.
    assert decode("3" + json.dumps([name])).data == [name]
    assert decode("2" + json.dumps(["m", name])).data == ["m", name]


def test_text_while_attachments_are_pending() -> None:
    decoder = PacketDecoder()
    assert decoder.feed_text(f'52-["m",{_ph(0)},{_ph(1)}]') is None
    assert decoder.feed_binary(b"a") is None
    for text in ['2["other"]', "2", "0"]:  # fast path and general path
        with pytest.raises(DecodeError, match="still expected"):
            decoder.feed_text(text)
    # The error left the pending packet alone; it can still complete.
    assert decoder.awaiting_attachments == 1
    assert decoder.feed_binary(b"b") == Packet(P.EVENT, data=["m", b"a", b"b"])


def test_binary_when_none_expected() -> None:
    decoder = PacketDecoder()
    with pytest.raises(DecodeError, match="unexpected binary"):
        decoder.feed_binary(b"\x01")
    assert decoder.feed_text('2["m"]') == Packet(P.EVENT, data=["m"])
    with pytest.raises(DecodeError, match="unexpected binary"):
        decoder.feed_binary(b"\x01")


def test_wrong_message_kind_is_a_decode_error() -> None:
    decoder = PacketDecoder()
    with pytest.raises(DecodeError, match="expected a text message"):
        decoder.feed_text(b'2["m"]')  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="unexpected binary"):
        decoder.feed_binary("x")  # type: ignore[arg-type]
    assert decoder.feed_text(f'51-["m",{_ph(0)}]') is None
    with pytest.raises(DecodeError, match="expected a binary message"):
        decoder.feed_binary("x")  # type: ignore[arg-type]
    assert decoder.awaiting_attachments == 1


def test_reset_drops_a_half_received_packet() -> None:
    decoder = PacketDecoder()
    decoder.reset()  # harmless when idle
    assert decoder.feed_text(f'52-["m",{_ph(0)},{_ph(1)}]') is None
    assert decoder.feed_binary(b"a") is None
    decoder.reset()
    assert decoder.awaiting_attachments == 0
    with pytest.raises(DecodeError):
        decoder.feed_binary(b"b")
    assert decoder.feed_text("0/admin,") == Packet(P.CONNECT, "/admin")
    # And a new binary packet starts from scratch.
    assert decoder.feed_text(f"61-3[{_ph(0)}]") is None
    assert decoder.feed_binary(b"z") == Packet(P.ACK, data=[b"z"], id=3)


def test_one_decoder_for_many_packets() -> None:
    decoder = PacketDecoder()
    stream: list[str | bytes] = ['2["a"]', f'51-["b",{_ph(0)}]', b"1", "3/x,0[]", "1"]
    results = [
        decoder.feed_text(m) if isinstance(m, str) else decoder.feed_binary(m) for m in stream
    ]
    assert results == [
        Packet(P.EVENT, data=["a"]),
        None,
        Packet(P.EVENT, data=["b", b"1"]),
        Packet(P.ACK, "/x", [], 0),
        Packet(P.DISCONNECT),
    ]


# --------------------------------------------------------------------------------------------
# Encoding rules and errors
# --------------------------------------------------------------------------------------------


def test_binary_types_are_chosen_automatically() -> None:
    # BINARY_* without binary never produces a zero-attachment header (pitfall 8) ...
    assert encode_packet(Packet(P.BINARY_EVENT, data=["m", 1])) == ('2["m",1]', [])
    assert encode_packet(Packet(P.BINARY_ACK, data=[], id=0)) == ("30[]", [])
    # ... and EVENT/ACK with binary become BINARY_*.
    assert encode_packet(Packet(P.ACK, "/a", [bytearray(b"x")], 0)) == (
        f"61-/a,0[{_ph(0)}]",
        [b"x"],
    )
    assert encode_packet(Packet(P.BINARY_EVENT, data=("m", memoryview(b"y")))) == (
        f'51-["m",{_ph(0)}]',
        [b"y"],
    )


def test_encode_accepts_tuples_and_plain_ints() -> None:
    assert encode_packet(Packet(P.EVENT, data=("m", (1, 2)))) == ('2["m",[1,2]]', [])
    assert encode_packet(Packet(2, data=["m"])) == ('2["m"]', [])  # type: ignore[arg-type]
    assert encode_packet(Packet(0)) == ("0", [])  # type: ignore[arg-type]


def test_encode_max_attachments() -> None:
    ten = [bytes([n]) for n in range(10)]
    text, attachments = encode_packet(Packet(P.EVENT, data=["m", *ten]))
    assert text.startswith("510-[")
    assert attachments == ten
    with pytest.raises(ValueError, match="at most 10"):
        encode_packet(Packet(P.EVENT, data=["m", *ten, b"11"]))


@pytest.mark.parametrize(
    "packet",
    [
        Packet(P.EVENT, "admin", ["m"]),
        Packet(P.EVENT, "", ["m"]),
        Packet(P.EVENT, "/a,b", ["m"]),
        Packet(P.EVENT, None, ["m"]),  # type: ignore[arg-type]
        Packet(P.EVENT, data=["m"], id=-1),
        Packet(P.EVENT, data=["m"], id=MAX_ACK_ID + 1),
        Packet(P.EVENT, data=["m"], id=True),
        Packet(P.EVENT, data=["m"], id=1.0),  # type: ignore[arg-type]
        Packet(P.EVENT, data=["m"], id="1"),  # type: ignore[arg-type]
        Packet(P.EVENT),
        Packet(P.EVENT, data=[]),
        Packet(P.EVENT, data="m"),
        Packet(P.EVENT, data={"m": 1}),
        Packet(P.EVENT, data=[None]),
        Packet(P.EVENT, data=[True]),
        Packet(P.EVENT, data=[b"m"]),
        Packet(P.EVENT, data=[["m"]]),
        Packet(P.EVENT, data=["connect"]),
        Packet(P.BINARY_EVENT, data=["disconnect", b"x"]),
        Packet(P.ACK, data=None, id=1),
        Packet(P.ACK, data="x", id=1),
        Packet(P.BINARY_ACK, data={"a": b"x"}, id=1),
        Packet(P.CONNECT, data=[]),
        Packet(P.CONNECT, data="token"),
        Packet(P.DISCONNECT, data={"message": "bye"}),
        Packet(P.CONNECT_ERROR),
        Packet(P.CONNECT_ERROR, data=["x"]),
        Packet(7),  # type: ignore[arg-type]
        Packet(P.EVENT, data=["m", math.nan]),
        Packet(P.CONNECT, data={"x": math.inf}),
    ],
)
def test_encode_rejects_invalid_packets(packet: Packet) -> None:
    with pytest.raises(ValueError):
        encode_packet(packet)


@pytest.mark.parametrize(
    "packet",
    [
        Packet(P.CONNECT, data={"auth": b"x"}),  # binary only rides in EVENT/ACK
        Packet(P.CONNECT_ERROR, data={"data": b"x"}),
        Packet(P.EVENT, data=["m", {1, 2}]),
        Packet(P.EVENT, data=["m", b"x", object()]),
    ],
)
def test_encode_rejects_non_json_values(packet: Packet) -> None:
    with pytest.raises(TypeError):
        encode_packet(packet)


def test_packets_are_frozen_and_hashable_when_data_is() -> None:
    packet = Packet(P.CONNECT, "/a")
    with pytest.raises(AttributeError):
        packet.id = 1  # type: ignore[misc]
    assert hash(packet) == hash(Packet(P.CONNECT, "/a"))


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

_keys = st.text(max_size=5).filter(lambda key: key != "_placeholder")
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_json = st.recursive(
    _json_scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(_keys, c, max_size=4),
    max_leaves=10,
)
_binary = st.binary(max_size=8) | st.binary(max_size=8).map(bytearray)
_json_with_binary = st.recursive(
    _json_scalars | _binary,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(_keys, c, max_size=4),
    max_leaves=12,
)


def _count_binary(value: Any) -> int:
    if isinstance(value, (bytes, bytearray)):
        return 1
    if isinstance(value, list):
        return sum(_count_binary(v) for v in value)
    if isinstance(value, dict):
        return sum(_count_binary(v) for v in value.values())
    return 0


_args = st.lists(_json_with_binary, max_size=4).filter(
    lambda args: _count_binary(args) <= MAX_ATTACHMENTS
)
_event_names = (
    st.text(max_size=10).filter(lambda name: name not in RESERVED_EVENTS)
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(sorted(RESERVED_EVENTS)).map(str.upper)
)
_namespaces = st.just("/") | st.text(st.characters(exclude_characters=","), max_size=8).map(
    lambda name: "/" + name
)
_ack_ids = st.none() | st.just(0) | st.integers(min_value=0, max_value=MAX_ACK_ID)


@st.composite
def _packets(draw: st.DrawFn) -> Packet:
    data: Any
    ptype = draw(st.sampled_from([P.CONNECT, P.DISCONNECT, P.EVENT, P.ACK, P.CONNECT_ERROR]))
    if ptype == P.CONNECT:
        data = draw(st.none() | st.dictionaries(_keys, _json, max_size=4))
    elif ptype == P.DISCONNECT:
        data = None
    elif ptype == P.EVENT:
        data = [draw(_event_names), *draw(_args)]
    elif ptype == P.ACK:
        data = draw(_args)
    else:
        data = draw(st.dictionaries(_keys, _json, max_size=4) | st.text(max_size=10))
    return Packet(ptype, draw(_namespaces), data, draw(_ack_ids))


@settings(max_examples=300, deadline=None)
@given(_packets())
def test_round_trip(packet: Packet) -> None:
    text, attachments = encode_packet(packet)
    assert len(attachments) <= MAX_ATTACHMENTS
    assert not text.startswith(("50-", "60-"))
    assert decode(text, *attachments) == packet


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.binary(max_size=20))
def test_feed_text_fuzz(text: str | bytes) -> None:
    with contextlib.suppress(DecodeError):
        PacketDecoder().feed_text(text)  # type: ignore[arg-type]  # bytes must not crash it


# Text that looks like a Socket.IO packet, to get past the first checks more often.
_packet_like = st.builds(
    "".join,
    st.tuples(
        st.sampled_from("0123456789/b"),
        st.sampled_from(["", "1-", "2-", "0-", "10-", "11-", "-", "x-"]),
        st.sampled_from(["", "/admin,", "/admin", "/,", ","]),
        st.sampled_from(["", "0", "17", "x"]),
        st.one_of(
            st.just(""),
            _json.map(json.dumps),
            st.lists(_json | st.builds(dict, _placeholder=st.just(True), num=_json)).map(
                json.dumps
            ),
            st.text(max_size=8),
        ),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_packet_like | st.binary(max_size=4) | st.text(max_size=8), max_size=8))
def test_message_sequence_fuzz(messages: list[str | bytes]) -> None:
    decoder = PacketDecoder()
    for message in messages:
        try:
            if isinstance(message, str):
                result = decoder.feed_text(message)
            else:
                result = decoder.feed_binary(message)
        except DecodeError:
            continue
        assert result is None or isinstance(result, Packet)
        assert decoder.awaiting_attachments >= 0


def test_fast_path_agrees_with_the_general_decoder() -> None:
    # feed_text short-cuts `2[...]`; the general decoder must reach the same verdicts.
    for text in ['2["m",1,{"a":[true]}]', "2[1.5]", "2[]", '2["connect"]', "2[true]", "2[x"]:
        outcomes: list[Packet | str | None] = []
        for decode_text in (PacketDecoder().feed_text, PacketDecoder()._feed_text):
            try:
                outcomes.append(decode_text(text))
            except DecodeError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1], text


# --------------------------------------------------------------------------------------------
# Interoperability with python-socketio's own codec (socketio/packet.py)
# --------------------------------------------------------------------------------------------


def _to_python_socketio(packet: Packet) -> Any:
    from socketio import packet as sio_packet

    namespace = None if packet.namespace == "/" else packet.namespace
    return sio_packet.Packet(int(packet.type), packet.data, namespace, packet.id)


@settings(max_examples=100, deadline=None)
@given(_packets())
def test_python_socketio_encoder_to_our_decoder(packet: Packet) -> None:
    encoded = _to_python_socketio(packet).encode()
    text, *attachments = encoded if isinstance(encoded, list) else [encoded]
    assert decode(text, *attachments) == packet


@settings(max_examples=100, deadline=None)
@given(_packets().filter(lambda packet: "?" not in packet.namespace))
def test_our_encoder_to_python_socketio_decoder(packet: Packet) -> None:
    from socketio import packet as sio_packet

    text, attachments = encode_packet(packet)
    theirs = sio_packet.Packet(encoded_packet=text)
    assert theirs.attachment_count == len(attachments)
    for attachment in attachments:
        theirs.add_attachment(attachment)
    # python-socketio keeps BINARY_EVENT/BINARY_ACK as the decoded type; we fold them.
    assert {5: 2, 6: 3}.get(theirs.packet_type, theirs.packet_type) == packet.type
    assert (theirs.namespace or "/", theirs.data, theirs.id) == (
        packet.namespace,
        packet.data,
        packet.id,
    )
    if text.isascii():
        # Byte-identical, too, whenever python-socketio's ensure_ascii=True changes nothing.
        expected = [text, *attachments] if attachments else text
        assert _to_python_socketio(packet).encode() == expected


# --------------------------------------------------------------------------------------------
# Module hygiene
# --------------------------------------------------------------------------------------------


def test_all() -> None:
    assert set(_socketio.__all__) == {
        "MAX_ACK_ID",
        "MAX_ATTACHMENTS",
        "RESERVED_EVENTS",
        "Packet",
        "PacketDecoder",
        "PacketType",
        "check_event_name",
        "encode_packet",
    }


@pytest.mark.parametrize("module", ["_json", "_engineio", "_socketio"])
def test_codecs_do_no_io(module: str) -> None:
    # The core is sans-IO: none of these may appear in its imports.
    forbidden = {"anyio", "asyncio", "trio", "socket", "ssl", "select", "time", "random"}
    path = Path(_socketio.__file__).with_name(f"{module}.py")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & forbidden
