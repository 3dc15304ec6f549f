"""The connection core, part 2: what reconnects and what does not (contract 2.2).

``specs/reconnect.md`` has the table these tests walk through, row by row.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tether.core import (
    CloseTransport,
    ConnectError,
    ConnectFailed,
    CoreOptions,
    DisconnectReason,
    OpenTransport,
    ReconnectAttemptStarted,
    Reconnected,
    ReconnectFailed,
    SocketConnected,
    SocketDisconnected,
    State,
    StateChanged,
)
from tether.core._namespace import UNANSWERED_CONNECT

from .helpers import ENGINE_CLOSE, Harness, connect_error, disconnect, engine_open

# --------------------------------------------------------------------------------------------
# The table of contract 2.2
# --------------------------------------------------------------------------------------------

#: Ways to lose a connected session that must be retried, and the reason each one reports.
LOST: dict[str, tuple[Callable[[Harness], object], str]] = {
    "transport-close": (lambda h: h.closed("transport close"), "transport close"),
    "transport-error": (lambda h: h.closed("transport error"), "transport error"),
    "engineio-close-packet": (lambda h: h.receive(ENGINE_CLOSE), "transport close"),
    "ping-timeout": (lambda h: h.tick(45.0), "ping timeout"),
    "parse-error": (lambda h: h.receive("4garbage"), "parse error"),
}


@pytest.mark.parametrize("how", list(LOST))
def test_a_lost_connection_is_retried_with_backoff(how: str) -> None:
    lose, reason = LOST[how]
    h = Harness(draw=0.5)
    h.connect("s1")
    before = len(h.events)
    lose(h)
    events = h.events[before:]
    assert SocketDisconnected(reason) in events
    assert events[-1] == StateChanged(State.CONNECTED, State.RECONNECTING, reason, 1, 1.0)
    assert h.state is State.RECONNECTING
    assert h.conn.sid is None and not h.conn.is_connected
    assert not any(type(e) is ConnectFailed for e in events)  # a lost session is not an error
    # Nothing happens before the delay is over; then attempt 1 starts.
    assert h.conn.next_deadline() == pytest.approx(h.now + 1.0)
    assert h.tick(0.95).events == []
    step = h.tick(0.05)
    assert step.events == [ReconnectAttemptStarted(1), OpenTransport(h.token or 0, 1)]
    step = h.connect("s2")
    assert step.events[:3] == [
        StateChanged(State.RECONNECTING, State.CONNECTED, None, 1, None),
        SocketConnected("s2", recovered=False),
        Reconnected(1),
    ]
    assert h.conn.attempt == 0


ATTEMPT_FAILURES: dict[str, tuple[Callable[[Harness], object], str]] = {
    "transport-failed": (lambda h: h.failed("connection refused"), "connection refused"),
    "timeout-opening": (lambda h: h.tick(20.0), "timeout"),
    "timeout-after-handshake": (lambda h: (h.handshake(), h.tick(20.0)), "timeout"),
    "closed-before-handshake": (
        lambda h: (h.opened(), h.closed("transport error")),
        "transport error",
    ),
    # Closed in answer to our CONNECT: the message suggests a parser mismatch.
    "closed-after-handshake": (lambda h: (h.handshake(), h.closed()), UNANSWERED_CONNECT),
    "engineio-close": (lambda h: (h.handshake(), h.receive(ENGINE_CLOSE)), UNANSWERED_CONNECT),
    "closed-after-a-socketio-packet": (
        lambda h: (h.handshake(), h.receive('42["early"]'), h.closed()),
        "transport close",
    ),
    "parse-error": (lambda h: (h.handshake(), h.receive("4garbage")), "parse error"),
}


@pytest.mark.parametrize("how", list(ATTEMPT_FAILURES))
def test_a_failed_first_attempt_is_retried_and_reported_as_an_error(how: str) -> None:
    fail, message = ATTEMPT_FAILURES[how]
    h = Harness(draw=0.0)
    h.open()
    before = len(h.events)
    fail(h)
    events = h.events[before:]
    failed = [e for e in events if type(e) is ConnectFailed]
    assert len(failed) == 1
    assert failed[0].error.message == message
    assert failed[0].error.data is None and not failed[0].error.refused
    assert events[-1] == StateChanged(State.CONNECTING, State.RECONNECTING, message, 1, 0.5)
    assert not any(type(e) is SocketDisconnected for e in events)  # never connected
    h.connect()
    assert h.last(Reconnected) == Reconnected(1)


def test_a_failed_retry_stays_reconnecting_with_a_longer_delay() -> None:
    h = Harness(draw=0.0)
    h.open()
    h.failed()
    # With draw 0 the delay is the window's low end: 0.5, 1, 2, then capped at 2.5.
    for attempt, next_delay in [(1, 1.0), (2, 2.0), (3, 2.5), (4, 2.5), (5, 2.5)]:
        step = h.until_deadline()
        assert step.events == [
            ReconnectAttemptStarted(attempt),
            OpenTransport(h.token or 0, attempt),
        ]
        assert h.conn.attempt == attempt
        step = h.failed("refused")
        [failed] = step.of(ConnectFailed)
        assert step.events == [
            failed,
            StateChanged(
                State.RECONNECTING, State.RECONNECTING, "refused", attempt + 1, next_delay
            ),
        ]


def test_user_close_stops_everything_and_never_reconnects() -> None:
    h = Harness()
    h.connect("s1")
    step = h.close()
    assert step.sent == ["41"]  # the namespace DISCONNECT, written before the transport closes
    assert step.events == [
        SocketDisconnected(DisconnectReason.CLIENT),
        CloseTransport(h.token or 0),
        StateChanged(State.CONNECTED, State.CLOSED, DisconnectReason.CLIENT, 0, None),
    ]
    assert h.state is State.CLOSED and h.conn.sid is None
    assert h.conn.next_deadline() is None
    assert h.tick(3600.0).events == []


@pytest.mark.parametrize("state", ["idle", "connecting", "handshaken", "waiting", "retrying"])
def test_close_from_any_state_reaches_closed_and_cancels_the_retry(state: str) -> None:
    h = Harness(draw=0.0)
    if state != "idle":
        h.open()
    if state == "handshaken":
        h.handshake()
    if state in ("waiting", "retrying"):
        h.failed()
    if state == "retrying":
        h.until_deadline()
    previous = h.state
    step = h.close()
    assert step.sent == []  # not connected: nothing to say to the server
    assert step.events[-1] == StateChanged(previous, State.CLOSED, DisconnectReason.CLIENT, 0, None)
    transport_open = state in ("connecting", "handshaken", "retrying")
    assert (CloseTransport(h.token or 0) in step.events) is transport_open
    assert h.conn.next_deadline() is None
    assert h.tick(3600.0).events == []
    assert h.state is State.CLOSED


def test_close_is_idempotent() -> None:
    h = Harness()
    h.connect()
    h.close()
    assert h.close().events == []
    assert h.state is State.CLOSED


def test_open_is_idempotent_and_only_starts_from_idle_or_closed() -> None:
    h = Harness(draw=0.0)
    h.open()
    assert h.open().events == []  # connecting
    h.connect()
    assert h.open().events == []  # connected
    h.closed()
    assert h.open().events == []  # reconnecting: the retry is already scheduled
    h.close()
    step = h.open()
    assert step.events == [
        StateChanged(State.CLOSED, State.CONNECTING, None, 0, None),
        OpenTransport(h.token or 0, 0),
    ]


def test_server_disconnect_is_final() -> None:
    h = Harness()
    h.connect()
    step = h.receive(disconnect())
    assert step.events == [
        SocketDisconnected(DisconnectReason.SERVER),
        CloseTransport(h.token or 0),
        StateChanged(State.CONNECTED, State.CLOSED, DisconnectReason.SERVER, 0, None),
    ]
    assert h.conn.next_deadline() is None
    assert h.tick(3600.0).events == []
    h.connect()  # open() starts again from CLOSED
    assert h.state is State.CONNECTED


@pytest.mark.parametrize(
    ("payload", "message", "data"),
    [
        pytest.param(
            {"message": "not authorized", "data": {"code": 401}},
            "not authorized",
            {"code": 401},
            id="node",
        ),
        pytest.param({"message": "no data"}, "no data", None, id="node-without-data"),
        pytest.param("Unable to connect", "Unable to connect", None, id="python-string"),
        pytest.param({"data": [1]}, "connection refused", [1], id="no-message"),
        pytest.param({"message": 5}, "connection refused", None, id="odd-message"),
    ],
)
def test_a_refused_connect_is_final_and_carries_the_server_data(
    payload: object, message: str, data: object
) -> None:
    h = Harness()
    h.open()
    h.handshake()
    step = h.receive(connect_error(payload))
    assert [type(e) for e in step.events] == [CloseTransport, ConnectFailed, StateChanged]
    error = step.of(ConnectFailed)[0].error
    assert isinstance(error, ConnectError)
    assert (error.message, error.data, error.refused) == (message, data, True)
    assert str(error) == message
    assert repr(error) == f"ConnectError({message!r}, data={data!r}, refused=True)"
    assert step.events[-1] == StateChanged(State.CONNECTING, State.CLOSED, message, 0, None)
    assert h.conn.next_deadline() is None
    assert h.tick(3600.0).events == []


def test_a_refusal_during_reconnection_is_final_too() -> None:
    h = Harness(draw=0.0)
    h.connect()
    h.closed()
    h.until_deadline()
    h.handshake()
    step = h.receive(connect_error({"message": "banned"}))
    assert step.events[-1] == StateChanged(State.RECONNECTING, State.CLOSED, "banned", 0, None)
    assert h.conn.attempt == 0


@pytest.mark.parametrize(
    ("payload", "message", "data"),
    [
        pytest.param({"message": "refused", "data": 1}, "refused", 1, id="object"),
        pytest.param("refused", "refused", None, id="string"),
        pytest.param(None, "connection refused", None, id="bare"),
    ],
)
def test_a_disconnect_before_the_connect_reply_is_a_refusal(
    payload: object, message: str, data: object
) -> None:
    """python-socketio's ``always_connect`` mode refuses with DISCONNECT + payload."""
    h = Harness()
    h.open()
    h.handshake()
    step = h.receive(disconnect(payload))
    error = step.of(ConnectFailed)[0].error
    assert (error.message, error.data, error.refused) == (message, data, True)
    assert h.state is State.CLOSED


@pytest.mark.parametrize("how", ["lost", "first-attempt"])
def test_without_reconnection_a_retryable_failure_closes(how: str) -> None:
    h = Harness.with_options(reconnection=False)
    if how == "lost":
        h.connect()
        step = h.closed("transport error")
        assert step.events[-1] == StateChanged(
            State.CONNECTED, State.CLOSED, "transport error", 0, None
        )
    else:
        h.open()
        step = h.failed("refused")
        assert step.of(ConnectFailed)[0].error.message == "refused"
        assert step.events[-1] == StateChanged(State.CONNECTING, State.CLOSED, "refused", 0, None)
    assert h.conn.next_deadline() is None
    assert h.tick(3600.0).events == []


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_reconnection_attempts_then_reconnect_failed(limit: int) -> None:
    h = Harness(CoreOptions(reconnection_attempts=limit), draw=0.0)
    h.connect()
    h.closed()
    started: list[int] = []
    errors = 0
    while h.state is State.RECONNECTING:
        step = h.until_deadline()
        started += [e.attempt for e in step.of(ReconnectAttemptStarted)]
        errors += len(h.failed("refused").of(ConnectFailed))
    assert started == list(range(1, limit + 1))
    assert errors == limit  # on_error once per failed attempt
    assert h.last(ReconnectFailed) == ReconnectFailed()
    assert h.events[-1] == StateChanged(
        State.RECONNECTING if limit else State.CONNECTED, State.CLOSED, "reconnect failed", 0, None
    )
    assert h.conn.next_deadline() is None
    assert h.tick(3600.0).events == []


def test_reconnection_attempts_count_after_a_failed_first_attempt() -> None:
    """``reconnection_attempts=N``: the first attempt plus up to N reconnect attempts."""
    h = Harness(CoreOptions(reconnection_attempts=2), draw=0.0)
    h.open()
    opened = 1
    h.failed()
    while h.state is State.RECONNECTING:
        h.until_deadline()
        opened += 1
        h.failed()
    assert opened == 3
    assert h.last(ReconnectFailed) is not None


def test_attempt_numbers_reset_after_a_successful_connect() -> None:
    h = Harness(draw=0.0)
    h.connect()
    h.closed()
    h.until_deadline()
    h.failed()
    h.until_deadline()  # attempt 2
    assert h.conn.attempt == 2
    step = h.connect()
    assert Reconnected(2) in step.events and h.conn.attempt == 0
    h.closed()
    step = h.until_deadline()
    assert step.of(ReconnectAttemptStarted) == [ReconnectAttemptStarted(1)]
    # The backoff starts over too.
    assert h.last(StateChanged) == StateChanged(
        State.CONNECTED, State.RECONNECTING, "transport close", 1, 0.5
    )


def test_attempt_numbers_reset_on_close_and_open() -> None:
    h = Harness(draw=0.0)
    h.open()
    h.failed()
    h.until_deadline()
    h.failed()
    assert h.conn.attempt == 2
    h.close()
    assert h.conn.attempt == 0
    h.open()
    h.failed()
    assert h.last(StateChanged) == StateChanged(
        State.CONNECTING, State.RECONNECTING, "connection refused", 1, 0.5
    )


def test_connect_events_alternate_with_disconnect_events() -> None:
    h = Harness(draw=0.0)
    for _ in range(3):
        h.connect()
        h.receive(ENGINE_CLOSE)
    h.connect()
    h.close()
    kinds = [type(e) for e in h.events if type(e) in (SocketConnected, SocketDisconnected)]
    assert kinds == [SocketConnected, SocketDisconnected] * 4


def test_the_attempt_timeout_covers_the_whole_attempt() -> None:
    """``timeout``: from opening the transport to the namespace CONNECT reply."""
    h = Harness(draw=0.0)
    h.open()
    h.tick(5.0)
    h.opened()
    h.tick(5.0)
    h.receive(engine_open())
    assert h.conn.next_deadline() == h.now + 10.0
    h.tick(9.9)
    assert h.state is State.CONNECTING
    step = h.tick(0.1)
    assert [type(e) for e in step.events] == [CloseTransport, ConnectFailed, StateChanged]
    assert step.of(ConnectFailed)[0].error.message == "timeout"


def test_the_attempt_timeout_is_disarmed_by_the_connect_reply() -> None:
    h = Harness()
    h.connect(ping_interval=100_000, ping_timeout=100_000)
    assert h.conn.next_deadline() == h.now + 200.0
    assert h.tick(20.0).events == []
    assert h.state is State.CONNECTED
