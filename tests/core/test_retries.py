"""Retries: tries that end with the ack, ``ack_timeout`` or a disconnect (specs/delivery.md §2).

With ``retries > 0`` every emit asks for an ack; a try that ends without one starts the next,
at once after an ``ack_timeout``, after the reconnect after a disconnect, up to ``retries``
more; then a call fails with the last try's error and an emit is reported dropped. Every
try of a message is the same frame (the same ack id). The property test at the end checks
D1-D3 of specs/delivery.md on random histories.
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tether.core import (
    AckFailed,
    AckReceived,
    AckTimeout,
    CoreOptions,
    Disconnected,
    EventReceived,
    MessageDropped,
    OverflowPolicy,
    State,
)

from .helpers import Harness, ack, decode_sent, property_settings


def tried(options: CoreOptions | None = None, **kwargs: object) -> Harness:
    h = Harness(options or CoreOptions(**kwargs), draw=0.0)  # type: ignore[arg-type]
    h.connect()
    h.sent.clear()
    return h


def ack_id(frame: str | bytes) -> int:
    prefix, _ = decode_sent(frame)
    return int(prefix[2:])


def test_with_retries_an_emit_asks_for_an_ack_and_an_ack_ends_it_quietly() -> None:
    h = tried(retries=2)
    [frame] = h.emit("e", 1).sent
    assert frame == '420["e",1]'
    assert h.receive(ack(0)).events == []  # a tracked emit has no outcome to report
    assert h.conn.next_deadline() == h.conn.next_deadline()  # nothing waits for it


def test_without_retries_an_emit_asks_for_nothing() -> None:
    h = tried(ack_timeout=1.0)
    assert h.emit("e").sent == ['42["e"]']


def test_an_ack_timeout_sends_the_same_frame_again_until_the_tries_are_over() -> None:
    h = tried(retries=2, ack_timeout=1.0)
    [frame] = h.emit("e").sent
    assert h.tick(0.9).sent == []
    assert h.tick(0.1).sent == [frame]  # try 2
    assert h.tick(1.0).sent == [frame]  # try 3
    step = h.tick(1.0)
    assert step.sent == []
    assert step.events == [MessageDropped("e", 0, "retries exhausted")]
    assert h.conn.is_connected


def test_a_late_ack_of_an_earlier_try_is_as_good_as_any() -> None:
    h = tried(retries=3, ack_timeout=1.0)
    call_id, _ = h.call("q", timeout=None)
    h.tick(1.0)  # try 2 is written
    step = h.receive(ack(call_id, "first try's answer"))
    assert step.events == [AckReceived(call_id, ("first try's answer",))]
    assert h.tick(10.0).sent == []


def test_a_call_raises_the_last_tries_error() -> None:
    by_timeout = tried(retries=1, ack_timeout=1.0)
    call_id, _ = by_timeout.call("q", timeout=None)
    by_timeout.tick(1.0)
    [failed] = by_timeout.tick(1.0).of(AckFailed)
    assert failed.call_id == call_id and isinstance(failed.error, AckTimeout)

    by_drop = tried(retries=1)
    call_id, _ = by_drop.call("q", timeout=None)
    assert not by_drop.closed().of(AckFailed)  # try 1 ended by the drop: try 2 waits
    by_drop.connect()
    [failed] = by_drop.closed().of(AckFailed)
    assert failed.call_id == call_id and isinstance(failed.error, Disconnected)


def test_the_calls_timeout_bounds_every_try_and_the_buffered_time() -> None:
    h = tried(retries=5, ack_timeout=1.0)
    call_id, _ = h.call("q", timeout=2.5)
    h.tick(1.0)
    h.tick(1.0)
    [failed] = h.tick(0.5).of(AckFailed)
    assert failed.call_id == call_id and str(failed.error) == "no ack within the timeout"

    offline = Harness.with_options(retries=5)
    call_id, _ = offline.call("q", timeout=1.0)
    [failed] = offline.tick(1.0).of(AckFailed)
    assert "still in the offline buffer" in str(failed.error)
    assert offline.conn.buffered == 0


def test_a_disconnect_puts_written_tries_back_in_emit_order_before_anything_newer() -> None:
    h = tried(retries=1)
    h.emit("first")
    h.emit("second")
    h.writing = False
    h.emit("third")  # not written when the transport dies
    h.closed()
    h.writing = True
    h.emit("fourth")  # offline, after them
    assert h.conn.buffered == 4
    step = h.connect()
    assert [decode_sent(f)[1][0] for f in step.sent] == ["first", "second", "third", "fourth"]


def test_a_resent_message_keeps_its_place_after_a_drop() -> None:
    # "first" times out and is queued again behind "second"; the drop puts both back in the
    # order they were emitted, not in the order they were last queued.
    h = tried(retries=2, ack_timeout=1.0)
    h.emit("first")
    h.tick(0.5)
    h.emit("second")
    h.writing = False
    h.tick(0.5)  # first's try 1 ends: try 2 queued, not written
    h.closed()
    h.writing = True
    step = h.connect()
    assert [decode_sent(f)[1][0] for f in step.sent] == ["first", "second"]


def test_several_messages_are_in_flight_at_once() -> None:
    h = tried(retries=1)
    frames = [h.emit("e", i).sent[0] for i in range(3)]
    assert [ack_id(f) for f in frames] == [0, 1, 2]
    h.receive(ack(2), ack(0))
    step = h.closed()
    assert step.of(MessageDropped) == [] and h.conn.buffered == 1


def test_a_call_overrides_the_clients_retries() -> None:
    h = tried(retries=3, ack_timeout=1.0)
    call_id, _ = h.call("q", timeout=None, retries=0, ack_timeout=0.5)
    [failed] = h.tick(0.5).of(AckFailed)
    assert failed.call_id == call_id and isinstance(failed.error, AckTimeout)
    with pytest.raises(ValueError, match="retries"):
        h.conn.call("q", timeout=None, now=h.now, retries=-1)
    with pytest.raises(ValueError, match="ack_timeout"):
        h.conn.call("q", timeout=None, now=h.now, ack_timeout=0)


def test_a_goodbye_ends_every_try() -> None:
    h = tried(retries=3)
    h.emit("e")
    call_id, _ = h.call("q", timeout=None)
    step = h.close()
    assert step.of(MessageDropped) == [MessageDropped("e", 0, "retries exhausted")]
    assert [f.call_id for f in step.of(AckFailed)] == [call_id]
    h.open()
    assert h.conn.buffered == 0


def test_an_abandoned_call_still_buffered_is_withdrawn_and_never_sent() -> None:
    h = Harness.with_options(retries=2)
    call_id, _ = h.call("q", timeout=None)
    h.emit("e")
    assert h.conn.buffered == 2
    assert h.run(lambda: h.conn.abandon_call(call_id)).events == []
    assert h.conn.buffered == 1
    step = h.connect()
    assert [decode_sent(f)[1][0] for f in step.sent] == ["e"]
    assert h.close().of(AckFailed) == []  # it ended when it was abandoned: no outcome


def test_an_abandoned_call_queued_in_the_outbox_is_not_written() -> None:
    h = tried(retries=2)
    h.writing = False
    call_id, _ = h.call("q", timeout=None)
    h.conn.abandon_call(call_id)
    h.writing = True
    assert h.emit("e").sent == [h.sent[-1]]
    assert [decode_sent(f)[1][0] for f in h.sent] == ["e"]


def test_an_abandoned_written_call_gets_no_try_and_its_ack_is_ignored() -> None:
    h = tried(retries=2, ack_timeout=1.0)
    call_id, _ = h.call("q", timeout=None)
    h.conn.abandon_call(call_id)
    assert h.tick(1.0).sent == []  # no second try after the ack timeout
    assert h.receive(ack(call_id, "late")).events == []
    assert h.closed().of(AckFailed) == []
    assert h.conn.buffered == 0  # nor after a drop
    step = h.connect()
    assert [f for f in step.sent if isinstance(f, str) and f.startswith("42")] == []


def test_abandoning_a_call_that_ended_or_a_notice_changes_nothing() -> None:
    h = tried()
    call_id, _ = h.call("q", timeout=None)
    h.receive(ack(call_id, "ok"))
    assert h.run(lambda: h.conn.abandon_call(call_id)).events == []
    h.join("room")  # a notice of the core's own: its answer still counts
    [join] = [f for f in h.sent if decode_sent(f)[1][0] == "join"]
    notice = ack_id(join)
    h.conn.abandon_call(notice)
    h.conn.abandon_call(999)  # never used
    assert h.state is State.CONNECTED


def test_a_dropped_tracked_emit_is_reported_once() -> None:
    h = Harness.with_options(retries=1, max_buffered=1, overflow=OverflowPolicy.DROP_NEWEST)
    h.emit("kept")
    step = h.emit("dropped")
    assert step.events == [MessageDropped("dropped", 1, "buffer full")]


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="retries"):
        CoreOptions(retries=-1)
    with pytest.raises(TypeError, match="retries"):
        CoreOptions(retries=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ack_timeout"):
        CoreOptions(ack_timeout=-1.0)
    with pytest.raises(ValueError, match="client_id"):
        CoreOptions(client_id="")


# --------------------------------------------------------------------------------------------
# D1-D3 on random histories
# --------------------------------------------------------------------------------------------


class Tries(RuleBasedStateMachine):
    """Emits with retries against a server that acks some frames, loses the connection and
    lets time pass; counts every frame written per message."""

    @initialize(retries=st.integers(0, 3), ack_timeout=st.sampled_from([None, 1.0, 2.5]))
    def start(self, retries: int, ack_timeout: float | None) -> None:
        self.retries = retries
        self.h = Harness(CoreOptions(retries=retries, ack_timeout=ack_timeout), draw=0.0)
        self.h.connect()
        self.h.sent.clear()
        self.emitted: list[int] = []  # message numbers, in emit order
        self.writes: dict[int, int] = {}  # message number -> frames written
        self.ids: dict[int, int] = {}  # ack id -> message number
        self.acked: set[int] = set()
        self.dropped: set[int] = set()
        self.seen = 0

    def absorb(self) -> None:
        for frame in self.h.sent[self.seen :]:
            prefix, payload = decode_sent(frame)
            if prefix.startswith("42") and isinstance(payload, list) and payload[0] == "m":
                number = payload[1]
                self.writes[number] = self.writes.get(number, 0) + 1
                if len(prefix) > 2:
                    self.ids[int(prefix[2:])] = number
        self.seen = len(self.h.sent)
        for e in self.h.events:
            if isinstance(e, MessageDropped) and e.call_id is not None:
                self.dropped.add(self.ids.get(e.call_id, -1))
        self.h.events.clear()

    @rule()
    def emit(self) -> None:
        number = len(self.emitted)
        self.emitted.append(number)
        self.h.emit("m", number)
        self.absorb()

    @rule(data=st.data())
    def server_acks(self, data: st.DataObject) -> None:
        open_ids = [i for i, n in self.ids.items() if n not in self.acked and n not in self.dropped]
        if self.h.conn.is_connected and open_ids:
            call_id = data.draw(st.sampled_from(open_ids))
            self.acked.add(self.ids[call_id])
            self.h.receive(ack(call_id))
            self.absorb()

    @rule()
    def drop(self) -> None:
        if self.h.conn.is_connected:
            self.h.closed()
            self.absorb()

    @rule()
    def reconnect(self) -> None:
        if not self.h.conn.is_connected:
            before = self.seen
            self.h.connect()
            self.absorb()
            # D3: after a reconnect the messages go out in emit order.
            numbers = [
                decode_sent(f)[1][1]
                for f in self.h.sent[before:]
                if decode_sent(f)[0].startswith("42")
            ]
            assert numbers == sorted(numbers)

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0]))
    def time_passes(self, seconds: float) -> None:
        self.h.tick(seconds)
        self.absorb()

    @invariant()
    def at_most_retries_plus_one_tries(self) -> None:
        # D1: a message is written at most once per try, at most retries + 1 times.
        assert all(count <= self.retries + 1 for count in self.writes.values()), self.writes

    @invariant()
    def a_dropped_message_was_tried_every_time(self) -> None:
        # D2 for emits: "retries exhausted" only after the last try, never for an acked one.
        for number in self.dropped:
            assert number not in self.acked


TestTries = Tries.TestCase
TestTries.settings = property_settings(100, stateful_step_count=40)


def test_a_tracked_emit_the_hub_refuses_is_told_as_its_error_event() -> None:
    # With retries the hub answers a refused send in the ack; without, it sends the "error"
    # event. The user hears the same either way.
    h = tried(retries=2)
    h.send("room", "chat", "x" * 10)
    [frame] = h.sent
    step = h.receive(ack(ack_id(frame), {"error": "message larger than 8 bytes"}))
    refusal = {"event": "message", "message": "message larger than 8 bytes"}  # its wire name
    assert step.events == [EventReceived("error", (refusal,))]
    # A call's answer is the caller's, whatever it says; other answers end a try quietly.
    call_id, _ = h.call("q", timeout=None)
    assert h.receive(ack(call_id, {"error": "no"})).events == [
        AckReceived(call_id, ({"error": "no"},))
    ]
    h.emit("e")
    for answer in ([{"error": 1}], [{"error": "a", "b": 1}], [{"error": "a"}, 2], []):
        h.emit("e")
        assert h.receive(ack(ack_id(h.sent[-1]), *answer)).events == []
