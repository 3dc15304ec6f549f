"""Messages the driver never wrote before the transport died go back into the buffer.

contract 2.5: nothing sent is lost. What the driver took from ``data_to_send()`` but never
handed to the transport is given back with ``transport_closed(..., unsent=...)``; the user's
events and calls are buffered again, in order, and leave after the reconnect. Everything that
belonged to the dead session (pongs, acks, channel state, which each connect restores) is not.
"""

from __future__ import annotations

from tether.core import AckFailed, AckReceived, CoreOptions, MessageDropped

from .helpers import Harness, ack, decode_sent


def unsent_frames(h: Harness) -> list[str | bytes]:
    """What the core produced since ``h.sent`` was last cleared, taken back off it."""
    frames = list(h.sent)
    h.sent.clear()
    return frames


def test_unwritten_events_and_calls_are_buffered_again_in_order() -> None:
    h = Harness(draw=0.0)
    h.connect()
    h.join("room")
    h.sent.clear()
    h.emit("first", 1)
    call_id, _ = h.call("ask", 2, timeout=60.0)
    h.emit("blob", {"b": b"\x00\x01"}, b"\x02")
    h.receive("2")  # the pong for this ping must not come back after the reconnect
    h.ack(7, "reply")  # nor an ack for the dead session
    h.join("hall")  # nor channel state: every connect restores it
    unsent = unsent_frames(h)
    assert len(unsent) == 8  # 1 + 1 + (header + 2 attachments) + pong + ack + join
    step = h.closed("transport error", unsent=unsent)
    assert not step.of(AckFailed)  # the call is buffered again, so it keeps waiting
    assert h.conn.buffered == 3
    step = h.connect()
    names = [decode_sent(f)[1][0] for f in step.sent if isinstance(f, str)]
    assert names == ["join", "join", "first", "ask", "blob"]
    assert [f for f in step.sent if isinstance(f, bytes)] == [b"\x00\x01", b"\x02"]
    step = h.receive(ack(call_id, "answer"))
    assert step.of(AckReceived) == [AckReceived(call_id, ("answer",))]


def test_a_call_that_timed_out_meanwhile_is_not_requeued() -> None:
    h = Harness(draw=0.0)
    h.connect()
    h.sent.clear()
    _, _ = h.call("slow", timeout=1.0)
    unsent = unsent_frames(h)
    h.clock.advance(2.0)
    step = h.run(lambda: h.conn.handle_timer(now=h.now))
    assert len(step.of(AckFailed)) == 1
    h.closed(unsent=unsent)
    assert h.conn.buffered == 0


def test_requeue_obeys_buffer_messages_and_the_buffer_bounds() -> None:
    volatile = Harness(CoreOptions(buffer_messages=False), draw=0.0)
    volatile.connect()
    volatile.sent.clear()
    volatile.emit("gone")
    step = volatile.closed(unsent=unsent_frames(volatile))
    assert step.of(MessageDropped)[0].reason == "not connected"
    assert volatile.conn.buffered == 0

    small = Harness(CoreOptions(max_buffered=1), draw=0.0)
    small.connect()
    small.sent.clear()
    small.emit("kept")
    small.emit("dropped")
    step = small.closed(unsent=unsent_frames(small))
    assert [d.event for d in step.of(MessageDropped)] == ["dropped"]
    assert small.conn.buffered == 1


def test_unsent_is_ignored_when_not_connected() -> None:
    h = Harness(draw=0.0)
    h.open()
    h.handshake()
    h.sent.clear()
    h.closed(unsent=['42["never"]'])
    assert h.conn.buffered == 0


def test_a_stray_attachment_without_its_header_is_dropped() -> None:
    # The driver hands back whole packets; a lone binary frame (the tail of a batch the
    # transport failed half-way through) cannot be placed, so it is not re-sent.
    h = Harness(draw=0.0)
    h.connect()
    h.sent.clear()
    h.closed(unsent=[b"\x00", '42["kept"]'])
    assert h.conn.buffered == 1
