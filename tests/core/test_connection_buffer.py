"""The connection core, part 4: the offline buffer, channels, and the post-reconnect order.

Contract 2.5: after each (re)connect, in this order: namespace CONNECT (fresh auth) → re-join
channels with their own echo flags → restore the last profile → flush the buffer in order →
new emits. Channel membership and the profile are *state*, reconciled at connect time; the
buffer holds messages (``specs/reconnect.md``).
"""

from __future__ import annotations

import pytest

from tether.core import (
    AckFailed,
    BufferFull,
    CoreOptions,
    Disconnected,
    MessageDropped,
    OverflowPolicy,
)

from .helpers import Harness, connect_reply, decode_sent, sent_event


def payloads(frames: list[str | bytes]) -> list[object]:
    return [decode_sent(f)[1] for f in frames]


def test_emits_while_connected_are_written_at_once() -> None:
    h = Harness()
    h.connect()
    assert h.emit("chat", "hi", {"n": 1}).sent == [sent_event("chat", "hi", {"n": 1})]
    assert h.emit("bin", b"\x01").sent == ['451-["bin",{"_placeholder":true,"num":0}]', b"\x01"]
    assert h.conn.buffered == 0


@pytest.mark.parametrize("state", ["idle", "connecting", "reconnecting", "closed"])
def test_emits_while_not_connected_are_buffered_and_flushed_in_order(state: str) -> None:
    h = Harness(draw=0.0)
    if state == "connecting":
        h.open()
        h.handshake()  # even after the handshake: no emit before the CONNECT reply
    elif state == "reconnecting":
        h.connect()
        h.closed()
    elif state == "closed":
        h.connect()
        h.close()
    for i in range(5):
        assert h.emit("n", i).sent == []
    h.emit("bin", b"\x00\x01")
    assert h.conn.buffered == 6
    assert h.conn.buffered_bytes > 0
    step = h.receive(connect_reply()) if state == "connecting" else h.connect()
    assert step.sent == [
        *(sent_event("n", i) for i in range(5)),
        '451-["bin",{"_placeholder":true,"num":0}]',
        b"\x00\x01",
    ]
    assert h.conn.buffered == 0 and h.conn.buffered_bytes == 0
    # New emits come after the flush.
    assert h.emit("after").sent == [sent_event("after")]


def test_the_post_reconnect_order() -> None:
    """CONNECT → re-join with each channel's echo flag → profile → buffer → new emits."""
    h = Harness(draw=0.0)
    h.connect()
    h.join("a", echo=False)
    h.join("b")
    h.update_profile({"name": "ann"}, echo=False)
    h.closed()
    h.emit("offline", 1)
    h.send("a", "say", "hi", echo=False)
    h.broadcast("all", 2)
    h.until_deadline()
    handshake = h.handshake({"token": "t2"})
    assert handshake.sent == ['40{"token":"t2"}']
    step = h.receive('40{"sid":"s2"}')
    assert payloads(step.sent) == [
        ["join", {"channel": "a", "echo": False}],
        ["join", {"channel": "b", "echo": True}],
        ["update", {"data": {"name": "ann"}, "echo": False}],
        ["offline", 1],
        ["message", {"channel": "a", "eventName": "say", "message": "hi", "echo": False, "id": 1}],
        ["message", {"eventName": "all", "message": 2, "echo": True, "id": 2}],
    ]
    assert payloads(h.emit("new").sent) == [["new"]]


def test_a_join_made_offline_is_sent_once_not_twice() -> None:
    h = Harness(draw=0.0)
    h.join("news", echo=False)  # before the first connect
    step = h.connect()
    assert payloads(step.sent) == [["join", {"channel": "news", "echo": False}]]
    h.closed()
    h.join("news", echo=False)  # again while reconnecting: nothing new
    h.join("sport")
    step = h.connect()
    assert payloads(step.sent) == [
        ["join", {"channel": "news", "echo": False}],
        ["join", {"channel": "sport", "echo": True}],
    ]
    assert h.conn.channels == {"news": False, "sport": True}


def test_join_and_leave_while_connected() -> None:
    h = Harness()
    h.connect()
    assert payloads(h.join("x").sent) == [["join", {"channel": "x", "echo": True}]]
    assert h.join("x").sent == []  # already there with that flag
    assert payloads(h.join("x", echo=False).sent) == [["join", {"channel": "x", "echo": False}]]
    assert payloads(h.leave("x", echo=False).sent) == [["leave", {"channel": "x", "echo": False}]]
    assert h.leave("x").sent == []  # not a member
    assert h.conn.channels == {}


def test_a_channel_left_offline_is_not_rejoined() -> None:
    h = Harness(draw=0.0)
    h.connect()
    h.join("a")
    h.join("b")
    h.closed()
    h.leave("a")
    step = h.connect()
    assert payloads(step.sent) == [["join", {"channel": "b", "echo": True}]]


def test_the_echo_default_comes_from_the_options() -> None:
    h = Harness.with_options(echo_messages=False)
    h.connect()
    assert payloads(h.join("c").sent) == [["join", {"channel": "c", "echo": False}]]
    assert payloads(h.send("c", "e", 1).sent) == [
        ["message", {"channel": "c", "eventName": "e", "message": 1, "echo": False, "id": 1}]
    ]
    assert payloads(h.broadcast("e", 1, echo=True).sent) == [
        ["message", {"eventName": "e", "message": 1, "echo": True, "id": 2}]
    ]


def test_the_profile_is_state_the_last_one_wins() -> None:
    h = Harness(draw=0.0)
    h.update_profile({"v": 1})
    h.update_profile({"v": 2}, echo=False)
    step = h.connect()
    assert payloads(step.sent) == [["update", {"data": {"v": 2}, "echo": False}]]
    assert payloads(h.update_profile({"v": 3}).sent) == [
        ["update", {"data": {"v": 3}, "echo": True}]
    ]
    h.closed()
    step = h.connect()  # a new session: restored
    assert payloads(step.sent) == [["update", {"data": {"v": 3}, "echo": True}]]


def test_without_auto_join_channel_calls_are_plain_buffered_messages() -> None:
    h = Harness.with_options(auto_join_channels=False)
    h.join("a", echo=False)
    h.update_profile({"v": 1})
    h.leave("a")
    assert h.conn.buffered == 3
    assert h.conn.channels == {}
    step = h.connect()
    assert payloads(step.sent) == [
        ["join", {"channel": "a", "echo": False}],
        ["update", {"data": {"v": 1}, "echo": True}],
        ["leave", {"channel": "a", "echo": True}],
    ]
    h.closed()
    step = h.connect()  # nothing is restored
    assert step.sent == []


def test_without_buffering_offline_emits_are_dropped_and_reported() -> None:
    h = Harness.with_options(buffer_messages=False)
    step = h.emit("gone", 1)
    assert step.events == [MessageDropped("gone", None, "not connected")]
    call_id, step = h.call("gone-call", timeout=5.0)
    assert step.events[0] == MessageDropped("gone-call", call_id, "not connected")
    [failed] = step.of(AckFailed)
    assert failed.call_id == call_id and isinstance(failed.error, Disconnected)
    assert h.conn.buffered == 0
    # Channel state is not a message: it is still applied at connect.
    h.join("a")
    step = h.connect()
    assert payloads(step.sent) == [["join", {"channel": "a", "echo": True}]]
    assert h.tick(10.0).of(AckFailed) == []  # the dropped call has no timer left


def test_a_full_buffer_raises_by_default() -> None:
    h = Harness.with_options(max_buffered=2)
    h.emit("a")
    h.emit("b")
    with pytest.raises(BufferFull):
        h.emit("c")
    with pytest.raises(BufferFull):
        h.call("d", timeout=1.0)
    assert h.conn.buffered == 2
    assert h.tick(5.0).events == []  # the refused call left nothing behind
    assert payloads(h.connect().sent) == [["a"], ["b"]]


def test_the_buffer_is_bounded_in_bytes_too() -> None:
    h = Harness(CoreOptions(max_buffered_bytes=39))
    h.emit("a", "x" * 10)  # 42["a","xxxxxxxxxx"]: 20 bytes
    with pytest.raises(BufferFull, match="bytes"):
        h.emit("b", "x" * 10)


@pytest.mark.parametrize("connected", [False, True], ids=["offline", "connected"])
def test_a_message_larger_than_the_byte_bound_says_so(connected: bool) -> None:
    h = Harness(CoreOptions(max_buffered_bytes=39))
    if connected:
        h.connect()
    with pytest.raises(BufferFull, match=r"the message \(52 bytes\) is larger than max_buff"):
        h.emit("b", "x" * 42)
    assert h.conn.buffered == 0


def test_drop_oldest_makes_room_and_reports_every_drop() -> None:
    h = Harness(CoreOptions(max_buffered=2, overflow=OverflowPolicy.DROP_OLDEST))
    call_id, _ = h.call("first", timeout=None)
    h.emit("second")
    step = h.emit("third")
    assert step.events[0] == MessageDropped("first", call_id, "buffer full")
    [failed] = step.of(AckFailed)
    assert failed.call_id == call_id and isinstance(failed.error, BufferFull)
    assert payloads(h.connect().sent) == [["second"], ["third"]]


def test_drop_newest_keeps_the_buffer_and_reports_the_new_message() -> None:
    h = Harness(CoreOptions(max_buffered=1, overflow=OverflowPolicy.DROP_NEWEST))
    h.emit("kept")
    assert h.emit("lost").events == [MessageDropped("lost", None, "buffer full")]
    assert payloads(h.connect().sent) == [["kept"]]


@pytest.mark.parametrize("policy", [OverflowPolicy.DROP_OLDEST, OverflowPolicy.DROP_NEWEST])
def test_a_message_larger_than_the_whole_buffer_drops_only_itself(policy: OverflowPolicy) -> None:
    h = Harness(CoreOptions(max_buffered_bytes=50, overflow=policy))
    h.emit("small", 1)
    h.emit("small", 2)
    step = h.emit("huge", "x" * 100)
    assert step.events == [MessageDropped("huge", None, "buffer full")]
    assert h.conn.buffered == 2
    assert payloads(h.connect().sent) == [["small", 1], ["small", 2]]


def test_a_buffered_call_that_times_out_is_withdrawn_and_never_sent() -> None:
    h = Harness()
    stale, _ = h.call("stale", timeout=5.0)
    fresh, _ = h.call("fresh", timeout=60.0)
    step = h.tick(5.0)
    [failed] = step.of(AckFailed)
    assert failed.call_id == stale
    assert h.conn.buffered == 1
    step = h.connect()
    assert step.sent == [sent_event("fresh", ack_id=fresh)]


def test_joining_and_leaving_offline_sends_nothing() -> None:
    h = Harness()
    h.join("brief")
    h.leave("brief", echo=False)
    assert h.connect().sent == []


def test_the_buffer_survives_close_and_is_flushed_at_the_next_connect() -> None:
    h = Harness()
    h.connect()
    h.close()
    h.emit("later")
    assert h.conn.buffered == 1
    assert payloads(h.connect().sent) == [["later"]]
