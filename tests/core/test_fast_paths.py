"""The decoder's fast paths give exactly what the general path gives, errors included.

``PacketDecoder.feed_text`` short-cuts ``2[...]`` (an EVENT on "/" without ack id, what a
busy connection receives most) and ``5N-[...]`` (a binary event header on "/" without ack
id); it is the only fast path between a frame and a listener. Whatever a fast path does not
accept goes to the general path, which reports the error as before.
"""

from __future__ import annotations

import pytest

from tether.core import CoreOptions, SocketDisconnected
from tether.core._errors import DecodeError
from tether.core._socketio import Packet, PacketDecoder, PacketType

from .helpers import Harness

PLACEHOLDER = '{"_placeholder":true,"num":0}'


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("42[garbage", id="invalid-json"),
        pytest.param("42[]", id="empty-array"),
        pytest.param('42["connect"]', id="reserved-name"),
        pytest.param("42[true]", id="bool-name"),
    ],
)
def test_a_bad_plain_event_is_still_a_parse_error(frame: str) -> None:
    h = Harness()
    h.connect()
    step = h.receive(frame)
    assert step.of(SocketDisconnected) == [SocketDisconnected("parse error")]


def test_a_plain_event_on_another_namespace_is_ignored() -> None:
    h = Harness(CoreOptions(namespace="/admin"))
    h.connect()
    step = h.receive('42["e",1]')  # for "/", not for this client's namespace
    assert step.events == [] and h.conn.is_connected


def test_plain_events_deliver_like_the_general_path() -> None:
    h = Harness()
    h.connect()
    h.receive('42["e",1,{"a":[2]}]', '42[7,"x"]', '421["asks",3]')
    assert h.received() == [("e", (1, {"a": [2]})), ("7", ("x",)), ("asks", (3,))]


@pytest.mark.parametrize("count", range(1, 10))
def test_a_binary_header_with_one_to_nine_attachments(count: int) -> None:
    decoder = PacketDecoder()
    payload = ",".join(f'{{"_placeholder":true,"num":{n}}}' for n in range(count))
    assert decoder.feed_text(f'5{count}-["e",{payload}]') is None
    assert decoder.awaiting_attachments == count
    packet = None
    for n in range(count):
        packet = decoder.feed_binary(bytes([n]))
    assert packet == Packet(PacketType.EVENT, "/", ["e", *(bytes([n]) for n in range(count))])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("51-[garbage", "invalid JSON"),
        ("51-[]", "invalid EVENT payload"),
        ('51-["disconnect",' + PLACEHOLDER + "]", "reserved event name"),
        ('51-["e",{"_placeholder":true,"num":1}]', "invalid attachment placeholder"),
    ],
)
def test_a_bad_binary_header_is_refused_as_before(text: str, message: str) -> None:
    decoder = PacketDecoder()
    with pytest.raises(DecodeError, match=message):
        decoder.feed_text(text)
    assert decoder.awaiting_attachments == 0


def test_other_binary_headers_take_the_general_path() -> None:
    ten = ",".join(f'{{"_placeholder":true,"num":{n}}}' for n in range(10))
    for text, expected in [
        (f'510-["e",{ten}]', 10),  # two digits
        ('51-/admin,["e",' + PLACEHOLDER + "]", 1),  # a namespace
        ('51-3["e",' + PLACEHOLDER + "]", 1),  # an ack id
    ]:
        decoder = PacketDecoder()
        assert decoder.feed_text(text) is None
        assert decoder.awaiting_attachments == expected
    with pytest.raises(DecodeError, match="attachment count"):
        PacketDecoder().feed_text('50-["e"]')
