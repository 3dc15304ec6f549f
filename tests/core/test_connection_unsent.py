"""Messages the driver never took before the transport died go back into the buffer.

Nothing sent is lost (specs/client.md "Offline buffer and drops"): what the driver has not
taken from ``data_to_send()`` when the transport dies is still in the core, whole; the user's
events and calls among it are buffered again, in order, and leave after the reconnect.
Everything that belonged to the dead session (pongs, acks, channel state, which each connect
restores) is not. The harness plays a driver whose writes lag behind (``writing = False``).
"""

from __future__ import annotations

import pytest

from tether.core import (
    AckFailed,
    AckReceived,
    AckTimeout,
    BufferFull,
    CoreOptions,
    Disconnected,
    MessageDropped,
    OverflowPolicy,
)

from .helpers import Harness, ack, decode_sent


def lagging(options: CoreOptions | None = None) -> Harness:
    """A connected harness whose driver stops taking what the core has to send."""
    h = Harness(options or CoreOptions(), draw=0.0)
    h.connect()
    h.writing = False
    return h


def test_unwritten_events_and_calls_are_buffered_again_in_order() -> None:
    h = lagging()
    h.writing = True
    h.join("room")
    h.writing = False
    h.emit("first", 1)
    call_id, _ = h.call("ask", 2, timeout=60.0)
    h.emit("blob", {"b": b"\x00\x01"}, b"\x02")
    h.receive("2")  # the pong for this ping must not come back after the reconnect
    h.ack(7, "reply")  # nor an ack for the dead session
    h.join("hall")  # nor channel state: every connect restores it
    step = h.closed("transport error")
    assert not step.of(AckFailed)  # the call is buffered again, so it keeps waiting
    assert h.conn.buffered == 3
    h.writing = True
    step = h.connect()
    names = [decode_sent(f)[1][0] for f in step.sent if isinstance(f, str)]
    assert names == ["join", "join", "first", "ask", "blob"]
    assert [f for f in step.sent if isinstance(f, bytes)] == [b"\x00\x01", b"\x02"]
    step = h.receive(ack(call_id, "answer"))
    assert step.of(AckReceived) == [AckReceived(call_id, ("answer",))]


def test_a_call_that_timed_out_meanwhile_is_neither_written_nor_requeued() -> None:
    h = lagging()
    call_id, _ = h.call("slow", timeout=1.0)
    step = h.tick(2.0)
    assert step.of(AckFailed) == [AckFailed(call_id, step.of(AckFailed)[0].error)]
    assert isinstance(step.of(AckFailed)[0].error, AckTimeout)
    assert h.conn.data_to_send() == []  # skipped: a timed-out call is never sent late
    h.call("slower", timeout=1.0)
    h.tick(2.0)
    h.closed()
    assert h.conn.buffered == 0


def test_requeue_obeys_buffer_messages_and_the_buffer_bounds() -> None:
    volatile = lagging(CoreOptions(buffer_messages=False))
    volatile.emit("gone")
    step = volatile.closed()
    assert step.of(MessageDropped)[0].reason == "not connected"
    assert volatile.conn.buffered == 0

    # Written messages to try again and unwritten ones together can pass the buffer's
    # bound (the outbox alone cannot: it has the same bound, see the next tests).
    small = Harness(CoreOptions(max_buffered=2, retries=1), draw=0.0)
    small.connect()
    small.emit("written-1")
    small.emit("written-2")
    small.writing = False
    small.emit("kept")
    step = small.closed()
    assert [d.event for d in step.of(MessageDropped)] == ["kept"]
    assert small.conn.buffered == 2


def test_a_requeued_call_that_is_dropped_fails() -> None:
    h = Harness(CoreOptions(max_buffered=1, retries=1), draw=0.0)
    h.connect()
    h.emit("written")
    h.writing = False
    call_id, _ = h.call("ask", timeout=None)
    step = h.closed()
    assert step.of(MessageDropped) == [MessageDropped("ask", call_id, "buffer full")]
    [failed] = step.of(AckFailed)
    assert failed.call_id == call_id


def test_the_buffers_bounds_hold_while_connected_to_a_server_that_does_not_read() -> None:
    h = lagging(CoreOptions(max_buffered=2))
    h.emit("one")
    h.emit("two")
    with pytest.raises(BufferFull, match="wait for the server to read them"):
        h.emit("three")
    h.conn.data_to_send()  # the writer takes them: room again
    h.emit("three")

    newest = lagging(CoreOptions(max_buffered=1, overflow=OverflowPolicy.DROP_NEWEST))
    newest.emit("kept")
    assert newest.emit("dropped").events == [MessageDropped("dropped", None, "buffer full")]

    oldest = lagging(CoreOptions(max_buffered=1, overflow=OverflowPolicy.DROP_OLDEST))
    oldest.ack(3)  # a frame of the session's own is not a message: it never counts
    oldest.emit("old")
    assert oldest.emit("new").events == [MessageDropped("old", None, "buffer full")]
    assert [decode_sent(f)[1] for f in oldest.conn.data_to_send()] == [[], ["new"]]
    huge = lagging(CoreOptions(max_buffered_bytes=100, overflow=OverflowPolicy.DROP_OLDEST))
    assert huge.emit("x" * 200).events == [MessageDropped("x" * 200, None, "buffer full")]


def test_nothing_is_requeued_from_an_attempt_that_never_connected() -> None:
    h = Harness(draw=0.0)
    h.open()
    h.writing = False
    h.handshake()  # the CONNECT stays in the outbox
    h.closed()
    assert h.conn.buffered == 0
    assert h.conn.data_to_send() == []


def test_a_goodbye_writes_the_queued_messages_and_fails_their_calls() -> None:
    h = lagging()
    h.emit("last words")
    call_id, _ = h.call("never answered", timeout=None)
    step = h.close()
    [failed] = step.of(AckFailed)
    assert failed.call_id == call_id and isinstance(failed.error, Disconnected)
    frames = h.conn.data_to_send()
    assert [decode_sent(f)[1] for f in frames] == [["last words"], None]
    assert frames[-1] == "41"
    assert h.conn.buffered == 0
