"""The connection core, part 5: acknowledgements, both ways.

Ack ids count up from 0 per namespace (the client's one namespace) and are never reused;
every call resolves exactly once: AckReceived, or AckFailed with AckTimeout, Disconnected or
BufferFull.
"""

from __future__ import annotations

import pytest

from tether.core import (
    AckFailed,
    AckReceived,
    AckTimeout,
    Disconnected,
    EventReceived,
    State,
)

from .helpers import Harness, ack, event, sent_event


def test_call_ids_count_up_from_zero_and_ride_on_the_wire() -> None:
    h = Harness()
    h.connect()
    first, step = h.call("q", 1)
    assert first == 0
    assert step.sent == [sent_event("q", 1, ack_id=0)]
    second, step = h.call("q", 2)
    assert second == 1
    assert step.sent == [sent_event("q", 2, ack_id=1)]


def test_ids_stay_unique_across_sessions() -> None:
    h = Harness(draw=0.0)
    h.connect()
    a, _ = h.call("q")
    h.closed()
    b, _ = h.call("q")
    h.connect()
    c, _ = h.call("q")
    assert len({a, b, c}) == 3


def test_acks_are_delivered_with_their_arguments() -> None:
    h = Harness()
    h.connect()
    call_id, _ = h.call("q")
    step = h.receive(ack(call_id, "ok", {"n": 1}))
    assert step.events == [AckReceived(call_id, ("ok", {"n": 1}))]
    # A second ACK for the same id, or one for an id never used, is ignored.
    assert h.receive(ack(call_id, "again")).events == []
    assert h.receive(ack(99)).events == []
    assert h.receive("43[]").events == []  # an ACK without an id
    assert h.state is State.CONNECTED


def test_binary_acks() -> None:
    h = Harness()
    h.connect()
    call_id, _ = h.call("q")
    h.receive(f'461-{call_id}[{{"_placeholder":true,"num":0}}]')
    step = h.receive(b"\x07")
    assert step.events == [AckReceived(call_id, (b"\x07",))]


def test_an_ack_that_does_not_come_in_time_fails_through_the_timer() -> None:
    h = Harness()
    h.connect()
    call_id, _ = h.call("q", timeout=2.0)
    assert h.conn.next_deadline() == h.now + 2.0
    assert h.tick(1.9).events == []
    step = h.tick(0.1)
    [failed] = step.of(AckFailed)
    assert failed.call_id == call_id
    assert isinstance(failed.error, AckTimeout) and isinstance(failed.error, TimeoutError)
    # A late ACK changes nothing: the call resolved once.
    assert h.receive(ack(call_id)).events == []


def test_a_call_answered_in_time_does_not_time_out() -> None:
    h = Harness()
    h.connect()
    call_id, _ = h.call("q", timeout=2.0)
    h.receive(ack(call_id))
    assert h.tick(10.0).of(AckFailed) == []


def test_a_written_call_fails_with_disconnected_when_its_connection_drops() -> None:
    h = Harness(draw=0.0)
    h.connect()
    sent, _ = h.call("q", timeout=30.0)
    h.closed()
    waiting, _ = h.call("q2", timeout=30.0)  # buffered: it waits
    failed = [e for e in h.events if type(e) is AckFailed]
    assert [f.call_id for f in failed] == [sent]
    assert isinstance(failed[0].error, Disconnected)
    assert str(failed[0].error) == "transport close"
    step = h.connect()
    assert step.sent == [sent_event("q2", ack_id=waiting)]
    assert h.receive(ack(waiting, 1)).events == [AckReceived(waiting, (1,))]
    assert h.tick(60.0).of(AckFailed) == []


@pytest.mark.parametrize("end", ["close", "server-disconnect", "ping-timeout"])
def test_every_way_of_losing_the_session_fails_written_calls(end: str) -> None:
    h = Harness()
    h.connect()
    call_id, _ = h.call("q")
    if end == "close":
        h.close()
    elif end == "server-disconnect":
        h.receive("41")
    else:
        h.tick(45.0)
    [failed] = [e for e in h.events if type(e) is AckFailed]
    assert failed.call_id == call_id and isinstance(failed.error, Disconnected)


def test_acks_from_a_previous_session_are_ignored() -> None:
    h = Harness(draw=0.0)
    h.connect()
    call_id, _ = h.call("q")
    h.closed()
    h.connect()
    assert h.receive(ack(call_id)).events == []


def test_the_client_acknowledges_server_events() -> None:
    h = Harness()
    h.connect()
    step = h.receive(event("question", 1, ack_id=5))
    assert step.events == [EventReceived("question", (1,), 5)]
    assert h.ack(5, "answer", 2).sent == ['435["answer",2]']
    assert h.ack(6).sent == ["436[]"]
    assert h.ack(7, b"\x01").sent == ['461-7[{"_placeholder":true,"num":0}]', b"\x01"]


def test_acks_for_a_session_that_is_gone_are_not_sent() -> None:
    h = Harness()
    h.connect()
    h.receive(event("question", ack_id=5))
    h.closed()
    assert h.ack(5, "late").sent == []


def test_ack_refuses_values_json_cannot_carry() -> None:
    h = Harness()
    h.connect()
    with pytest.raises(TypeError):
        h.ack(1, {1, 2})
    with pytest.raises(ValueError):
        h.ack(-1)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_call_timeout_must_be_positive(timeout: float) -> None:
    h = Harness()
    with pytest.raises(ValueError, match="timeout"):
        h.call("q", timeout=timeout)
    assert h.conn.buffered == 0
