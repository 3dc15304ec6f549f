"""The connection core, part 3: the heartbeat and the core's timer.

Engine.IO v4: the server pings, the client answers; no message from the server for
``pingInterval + pingTimeout`` means the connection is dead ("ping timeout").
"""

from __future__ import annotations

import pytest

from tether.core import (
    AckFailed,
    AckTimeout,
    BufferFull,
    CloseTransport,
    CoreOptions,
    SocketConnected,
    SocketDisconnected,
    State,
    StateChanged,
)

from .helpers import PING, Harness, connect_reply, decode_sent, engine_open, event


def test_the_heartbeat_window_is_ping_interval_plus_ping_timeout() -> None:
    h = Harness(draw=0.0)
    h.connect(ping_interval=10_000, ping_timeout=5_000)
    assert h.conn.next_deadline() == h.now + 15.0
    assert h.tick(14.999).events == []
    step = h.tick(0.001)
    assert step.of(SocketDisconnected) == [SocketDisconnected("ping timeout")]
    assert CloseTransport(h.token or 0) in step.events
    assert h.state is State.RECONNECTING


def test_every_ping_rearms_the_heartbeat() -> None:
    h = Harness()
    h.connect(ping_interval=10_000, ping_timeout=5_000)
    for _ in range(10):
        h.tick(14.0)
        assert h.receive(PING).sent == ["3"]
    assert h.state is State.CONNECTED
    assert h.conn.next_deadline() == h.now + 15.0


def test_any_inbound_message_proves_the_server_alive() -> None:
    h = Harness()
    h.connect(ping_interval=10_000, ping_timeout=5_000)
    for _ in range(10):
        h.tick(14.0)
        h.receive(event("tick"))
    assert h.state is State.CONNECTED


def test_the_heartbeat_starts_at_the_handshake() -> None:
    h = Harness(draw=0.0)
    h.open()
    h.opened()
    assert h.conn.next_deadline() == h.now + 20.0  # only the attempt timeout so far
    h.receive(engine_open(ping_interval=1_000, ping_timeout=1_000))
    assert h.conn.next_deadline() == h.now + 2.0
    # A dead server during the attempt fails the attempt with "ping timeout".
    step = h.tick(2.0)
    assert step.events[-1] == StateChanged(
        State.CONNECTING, State.RECONNECTING, "ping timeout", 1, 0.5
    )


def test_a_ping_interval_of_zero_is_read_as_one_second() -> None:
    """python-engineio advertises ``int(seconds) * 1000``: 0.3 s becomes ``0``."""
    h = Harness()
    h.connect(ping_interval=0, ping_timeout=500)
    assert h.conn.next_deadline() == h.now + 1.5
    h.tick(1.4)
    assert h.state is State.CONNECTED
    h.tick(0.1)
    assert h.conn.state is State.RECONNECTING


def test_a_short_ping_interval_is_taken_as_announced() -> None:
    """Node announces exact intervals: 300 ms + 200 ms means dead after half a second."""
    h = Harness()
    h.connect(ping_interval=300, ping_timeout=200)
    assert h.conn.next_deadline() == h.now + 0.5
    h.tick(0.5)
    assert h.state is State.RECONNECTING


def test_a_ping_interval_of_zero_with_zero_timeout_still_waits() -> None:
    h = Harness()
    h.connect(ping_interval=0, ping_timeout=0)
    assert h.conn.next_deadline() == h.now + 1.0
    assert h.tick(0.5).events == []


def test_an_emit_into_an_expired_heartbeat_is_buffered_not_written() -> None:
    """Throttled timers: the deadline passed but handle_timer has not run yet."""
    h = Harness(draw=0.0)
    h.connect(ping_interval=10_000, ping_timeout=5_000)
    h.clock.advance(20.0)  # no tick: the driver's timer is late
    step = h.emit("late", 1)
    assert step.sent == []
    assert SocketDisconnected("ping timeout") in step.events
    assert h.state is State.RECONNECTING
    assert h.conn.buffered == 1
    step = h.connect()
    assert step.sent == ['42["late",1]']


def test_a_call_into_an_expired_heartbeat_waits_in_the_buffer() -> None:
    h = Harness(draw=0.0)
    h.connect(ping_interval=10_000, ping_timeout=5_000)
    h.clock.advance(20.0)
    call_id, step = h.call("late", timeout=60.0)
    assert step.sent == []
    assert not step.of(AckFailed)  # still buffered: it waits
    assert h.conn.buffered == 1
    step = h.connect()
    assert step.sent == [f'42{call_id}["late"]']


@pytest.mark.parametrize("call", ["join", "leave", "update_profile"])
def test_channel_state_is_not_written_into_an_expired_heartbeat(call: str) -> None:
    """Like emits: the late verdict lands first, the change goes out at the next connect."""
    h = Harness(draw=0.0)
    h.connect("s1", pid="p1", ping_interval=10_000, ping_timeout=5_000)
    h.join("room")
    h.receive(event("e", "offset-1"))
    h.clock.advance(20.0)
    if call == "join":
        step = h.join("hall")
    elif call == "leave":
        step = h.leave("room", echo=False)
    else:
        step = h.update_profile({"v": 1})
    assert step.sent == []
    assert SocketDisconnected("ping timeout") in step.events
    # Even a recovered session (the server kept "room") gets the change, and every join
    # again: CSR never replays client→server packets, so the client cannot know what arrived.
    step = h.connect("s1", pid="p1")
    assert step.of(SocketConnected) == [SocketConnected("s1", recovered=True)]
    room = ["join", {"channel": "room", "echo": True}]
    expected = {
        "join": [room, ["join", {"channel": "hall", "echo": True}]],
        "leave": [["leave", {"channel": "room", "echo": False}]],
        "update_profile": [room, ["update", {"data": {"v": 1}, "echo": True}]],
    }
    assert [decode_sent(frame)[1] for frame in step.sent] == expected[call]


def test_a_refused_emit_into_an_expired_heartbeat_changes_nothing() -> None:
    """BufferFull is decided before the late heartbeat verdict: a raising call has no effect.

    While connected the buffer is empty, so only a message larger than the whole buffer can
    be refused here.
    """
    h = Harness(CoreOptions(max_buffered_bytes=50), draw=0.0)
    h.connect(ping_interval=10_000, ping_timeout=5_000)
    h.clock.advance(20.0)
    with pytest.raises(BufferFull):
        h.emit("big", "x" * 100)  # Harness.run checks that nothing is left to drain
    assert h.state is State.CONNECTED
    step = h.tick()  # the timer, late, gives its verdict now
    assert step.of(SocketDisconnected) == [SocketDisconnected("ping timeout")]


def test_next_deadline_is_the_earliest_of_all_timers() -> None:
    h = Harness()
    h.connect(ping_interval=25_000, ping_timeout=20_000)
    assert h.conn.next_deadline() == h.now + 45.0
    a, _ = h.call("a", timeout=50.0)
    b, _ = h.call("b", timeout=10.0)
    assert h.conn.next_deadline() == h.now + 10.0
    h.receive("43" + str(b) + "[]")  # b resolved: its deadline no longer counts
    assert h.conn.next_deadline() == h.now + 45.0
    h.receive(PING)
    h.tick(44.0)
    h.receive(PING)
    assert h.conn.next_deadline() == h.now + 6.0  # a's timeout now comes first
    step = h.tick(6.0)
    [failed] = step.of(AckFailed)
    assert failed.call_id == a and isinstance(failed.error, AckTimeout)


def test_handle_timer_early_does_nothing() -> None:
    h = Harness()
    h.open()
    assert h.tick(0.0).events == []
    h.connect()
    h.call("x", timeout=5.0)
    assert h.tick(4.0).events == []
    h.receive(connect_reply("ignored", namespace="/other"))
    assert h.state is State.CONNECTED
