"""The sans-IO polling protocol: payload framing, the OPEN packet, the poll/post cycle."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.transport._polling_protocol import (
    DEFAULT_MAX_PAYLOAD,
    MAX_POST_PACKETS,
    POLL_GRACE,
    PayloadDecoder,
    PayloadError,
    PollingSession,
    encode_packet,
    encode_payload,
    parse_open,
)

OPEN = (
    '0{"sid":"S1","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,'
    '"maxPayload":100}'
)

# Text packets never hold \x1e (JSON escapes it), so generated ones don't either.
texts = st.text(st.characters(exclude_characters="\x1e", exclude_categories=["Cs"]), max_size=40)
messages = st.one_of(texts.map(lambda t: "4" + t), st.binary(max_size=40))


def decode_all(body: bytes, cuts: list[int], max_size: int = 10_000) -> list[object]:
    decoder = PayloadDecoder(max_size)
    out: list[object] = []
    last = 0
    for cut in sorted(c % (len(body) + 1) for c in cuts):
        out += decoder.feed(body[last:cut])
        last = cut
    out += decoder.feed(body[last:])
    return out + decoder.finish()


def test_encoding_of_text_and_binary() -> None:
    assert encode_packet("4hello") == b"4hello"
    assert encode_packet(b"\x01\x02\x03") == b"bAQID"
    assert encode_payload(["4a", b"\x01\x02\x03", "2"]) == b"4a\x1ebAQID\x1e2"
    assert encode_payload([]) == b""


def test_decoding_a_mixed_payload() -> None:
    assert decode_all(b'4hello\x1ebAQID\x1e2\x1e42["x",1]', []) == [
        "4hello",
        b"\x01\x02\x03",
        "2",
        '42["x",1]',
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, min_size=1, max_size=10), st.lists(st.integers(0, 10_000), max_size=6))
def test_any_payload_in_any_chunks_decodes_to_what_was_encoded(
    sent: list[str | bytes], cuts: list[int]
) -> None:
    assert decode_all(encode_payload(sent), cuts) == sent


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(0, 300), max_size=4))
def test_arbitrary_bytes_decode_or_raise_payload_error(body: bytes, cuts: list[int]) -> None:
    try:
        out = decode_all(body, cuts, max_size=50)
    except PayloadError:
        return
    assert all(isinstance(m, (str, bytes)) for m in out)


def test_invalid_base64_is_handed_on_as_text_for_the_core_to_refuse() -> None:
    assert decode_all(b"b!!!", []) == ["b!!!"]


def test_invalid_utf8_fails() -> None:
    with pytest.raises(PayloadError, match="UTF-8"):
        decode_all(b"4\xff\xfe", [])


def test_an_oversized_packet_fails_before_it_is_whole() -> None:
    decoder = PayloadDecoder(10)
    assert decoder.feed(b"4" + b"x" * 9) == []
    with pytest.raises(PayloadError, match="exceeds max_message_size"):
        decoder.feed(b"x" * 10)


def test_size_limits_count_utf8_bytes_and_decoded_binary() -> None:
    assert decode_all(b"4" + b"x" * 9, [], max_size=10) == ["4" + "x" * 9]
    with pytest.raises(PayloadError):
        decode_all("4é".encode() * 4, [], max_size=10)  # 4 chars, 12 bytes
    # 12 bytes of binary is 16 of base64 plus "b": within a limit of 12, not of 11.
    body = encode_packet(b"y" * 12)
    assert decode_all(body, [], max_size=12) == [b"y" * 12]
    with pytest.raises(PayloadError):
        decode_all(body, [], max_size=11)


def test_parse_open() -> None:
    packet = parse_open(OPEN)
    assert packet.sid == "S1"
    assert packet.upgrades == ("websocket",)
    assert (packet.ping_interval, packet.ping_timeout, packet.max_payload) == (25.0, 20.0, 100)
    assert packet.poll_timeout == 45.0 + POLL_GRACE
    assert packet.message == OPEN


def test_parse_open_defaults_and_python_engineio_zero_interval() -> None:
    packet = parse_open('0{"sid":"x","pingTimeout":200,"pingInterval":0}')
    assert packet.upgrades == ()
    assert packet.max_payload == DEFAULT_MAX_PAYLOAD
    assert packet.poll_timeout == pytest.approx(0.2 + POLL_GRACE)


@pytest.mark.parametrize(
    "bad",
    [
        "4hello",
        b"0{}",
        "0not json",
        "0[]",
        '0{"upgrades":[]}',
        '0{"sid":""}',
        '0{"sid":"x","upgrades":"websocket"}',
        '0{"sid":"x","pingInterval":"25"}',
        '0{"sid":"x","pingInterval":true}',
        '0{"sid":"x","pingTimeout":-1}',
        '0{"sid":"x","maxPayload":1e999}',
    ],
)
def test_parse_open_refuses(bad: str | bytes) -> None:
    with pytest.raises(PayloadError):
        parse_open(bad)


def test_handshake_learns_the_sid_and_returns_every_packet() -> None:
    session = PollingSession(max_message_size=1000)
    assert session.handshake(OPEN.encode() + b'\x1e40{"sid":"a"}') == [OPEN, '40{"sid":"a"}']
    assert session.sid == "S1"
    assert session.max_payload == 100
    with pytest.raises(PayloadError):
        PollingSession(max_message_size=1000).handshake(b"")
    with pytest.raises(PayloadError):
        PollingSession(max_message_size=1000).handshake(b"4hello")


def test_one_poll_at_a_time_and_none_after_close_or_while_paused() -> None:
    session = PollingSession(max_message_size=1000)
    session.handshake(OPEN.encode())
    assert session.start_poll()
    assert not session.start_poll()
    assert session.poll_data(b"2\x1e4a") == ["2"]
    assert session.poll_done() == ["4a"]
    session.paused = True
    assert not session.start_poll()
    session.paused = False
    assert session.start_poll()
    assert session.poll_data(b"4b\x1e1") == ["4b"]
    assert session.poll_done() == ["1"]
    assert session.close_received
    assert not session.start_poll()
    assert session.close() is None  # the server ended it: no CLOSE to post


def test_posts_batch_in_order_within_max_payload() -> None:
    session = PollingSession(max_message_size=1000)
    session.handshake(OPEN.encode())  # maxPayload 100
    first = session.queue(["4" + "a" * 40])
    assert session.start_post() == b"4" + b"a" * 40
    assert session.start_post() is None  # one post at a time
    second = session.queue(["4" + "b" * 40, "4" + "c" * 40, "4" + "d" * 40])
    assert not session.sent(first)
    session.post_done()
    assert session.sent(first)
    assert not session.sent(second)
    body = session.start_post()
    assert body == b"4" + b"b" * 40 + b"\x1e4" + b"c" * 40  # 83 bytes; a third would be 125
    session.post_done()
    assert not session.sent(second)
    assert session.start_post() == b"4" + b"d" * 40
    session.post_done()
    assert session.sent(second)
    assert session.start_post() is None


def test_a_packet_larger_than_max_payload_goes_alone() -> None:
    session = PollingSession(max_message_size=1000)
    session.handshake(OPEN.encode())
    session.queue(["4" + "x" * 200, "2"])
    assert session.start_post() == b"4" + b"x" * 200
    session.post_done()
    assert session.start_post() == b"2"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(messages, max_size=5), max_size=8), st.integers(1, 120))
def test_every_queued_message_is_posted_once_in_order(
    batches: list[list[str | bytes]], max_payload: int
) -> None:
    session = PollingSession(max_message_size=10_000)
    session.handshake(b"0" + json.dumps({"sid": "s", "maxPayload": max_payload}).encode())
    posted: list[object] = []
    tickets = [session.queue(batch) for batch in batches]
    while (body := session.start_post()) is not None:
        decoded = decode_all(body, [])
        assert len(body) <= max_payload or len(decoded) == 1
        assert len(decoded) <= MAX_POST_PACKETS
        posted += decoded
        session.post_done()
    assert posted == [m for batch in batches for m in batch]
    assert all(session.sent(t) for t in tickets)


def test_a_post_carries_at_most_max_post_packets() -> None:
    # python-engineio refuses a payload of more than 16 packets ("Too many packets").
    session = PollingSession(max_message_size=1000)
    session.handshake(b'0{"sid":"s","maxPayload":1000000}')
    session.queue([f"4{i}" for i in range(MAX_POST_PACKETS * 2 + 1)])
    sizes = []
    while (body := session.start_post()) is not None:
        sizes.append(len(body.split(b"\x1e")))
        session.post_done()
    assert sizes == [MAX_POST_PACKETS, MAX_POST_PACKETS, 1]


def test_withdraw_takes_back_what_no_post_took() -> None:
    session = PollingSession(max_message_size=1000)
    session.handshake(OPEN.encode())
    session.queue(["4a"])
    last = session.queue(["4b", "4c"])
    session.withdraw(last - 1, last)
    assert session.queued == 1
    assert session.start_post() == b"4a"


def test_close_posts_close_once_and_drops_the_queue() -> None:
    session = PollingSession(max_message_size=1000)
    assert session.close() is None  # never opened: nothing to say
    session = PollingSession(max_message_size=1000)
    session.handshake(OPEN.encode())
    session.queue(["4a"])
    assert session.close() == b"1"
    assert session.close() is None
    assert session.queued == 0
    assert session.start_post() is None
    assert not session.start_poll()
