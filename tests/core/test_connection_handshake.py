"""The connection core, part 1: opening, the handshake, what arrives and how it is read.

Every test drives :class:`tether.core.Connection` through its public methods only, with the
scripted server and fake clock of ``helpers.py``; ``specs/core.md`` is the shape under test.
"""

from __future__ import annotations

import base64

import pytest

from tether.core import (
    CloseTransport,
    ConnectFailed,
    Connection,
    CoreOptions,
    DisconnectReason,
    EventReceived,
    LocalProtocolError,
    OpenTransport,
    SocketConnected,
    SocketDisconnected,
    State,
    StateChanged,
)

from .helpers import (
    NOOP,
    PING,
    Harness,
    connect_reply,
    connect_request,
    disconnect,
    engine_open,
    event,
)


def test_a_new_connection_is_idle_and_asks_for_nothing() -> None:
    h = Harness()
    assert h.state is State.IDLE
    assert not h.conn.is_connected
    assert h.conn.sid is None
    assert h.conn.attempt == 0
    assert h.conn.recovered is False
    assert h.conn.next_deadline() is None
    assert h.drain().events == []
    assert h.conn.data_to_send() == []


def test_default_options_are_the_contract_defaults() -> None:
    conn = Connection(random=lambda: 0.0)
    assert conn.options == CoreOptions()
    assert conn.options.reconnection_delay == 1.0
    assert conn.options.reconnection_delay_max == 5.0
    assert conn.options.randomization_factor == 0.5
    assert conn.options.timeout == 20.0
    assert conn.options.max_buffered == 10_000


def test_handshake_from_open_to_connected() -> None:
    h = Harness()
    step = h.open()
    assert step.sent == []
    assert step.events == [
        StateChanged(State.IDLE, State.CONNECTING, None, 0, None),
        OpenTransport(token=1, attempt=0),
    ]
    # The attempt's timeout runs from here.
    assert h.conn.next_deadline() == h.now + 20.0
    assert h.conn.attempt_deadline == h.now + 20.0

    step = h.opened({"token": "t1"})
    assert step.sent == [] and step.events == []  # nothing to say until the server speaks
    step = h.receive(engine_open())
    assert step.sent == [connect_request({"token": "t1"})]
    assert step.events == []
    assert (h.state, h.conn.sid) == (State.CONNECTING, None)

    step = h.receive(connect_reply("abc"))
    assert step.sent == []
    assert step.events == [
        StateChanged(State.CONNECTING, State.CONNECTED, None, 0, None),
        SocketConnected("abc", recovered=False),
    ]
    assert (h.conn.is_connected, h.conn.sid, h.state) == (True, "abc", State.CONNECTED)
    assert h.conn.attempt_deadline is None  # the attempt is over


def test_connect_without_auth_sends_a_bare_connect() -> None:
    h = Harness()
    h.open()
    step = h.handshake(None)
    assert step.sent == ["40"]


def test_connect_on_a_namespace() -> None:
    h = Harness.with_options(namespace="/admin")
    h.open()
    assert h.handshake({"k": 1}).sent == ['40/admin,{"k":1}']
    # A reply on another namespace is not ours.
    assert h.receive(connect_reply("x", namespace="/")).events == []
    h.receive(connect_reply("adm", namespace="/admin"))
    assert h.conn.sid == "adm"
    assert h.emit("hi", 1).sent == ['42/admin,["hi",1]']
    step = h.receive(event("e", 2, namespace="/admin"), event("ignored", namespace="/"))
    assert step.of(EventReceived) == [EventReceived("e", (2,), None)]


def test_auth_is_taken_fresh_for_every_attempt() -> None:
    h = Harness(draw=0.0)
    h.connect(auth={"token": "first"})
    h.closed("transport error")
    h.until_deadline()
    step = h.handshake({"token": "second"})
    assert step.sent == [connect_request({"token": "second"})]


def test_auth_must_be_a_mapping() -> None:
    h = Harness()
    h.open()
    with pytest.raises(TypeError, match="auth must be a mapping"):
        h.opened(["token"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("auth", "error"),
    [({"token": {1, 2}}, TypeError), ({"n": float("nan")}, ValueError), ({(1,): "x"}, TypeError)],
)
def test_auth_json_cannot_carry_is_refused_where_it_is_passed(
    auth: dict[object, object], error: type[Exception]
) -> None:
    """Not later, when the handshake arrives on the read path."""
    h = Harness()
    h.open()
    with pytest.raises(error):
        h.opened(auth)  # type: ignore[arg-type]
    h.opened({"token": "ok"})  # the attempt is still waiting for a good report
    assert h.receive(engine_open()).sent == [connect_request({"token": "ok"})]


def test_events_before_the_connect_reply_are_held_and_delivered_after_it() -> None:
    h = Harness()
    h.open()
    h.handshake()
    step = h.receive(event("replayed", 1), event("replayed", 2, ack_id=7))
    assert step.events == []
    step = h.receive(connect_reply("s"))
    assert [type(e) for e in step.events] == [
        StateChanged,
        SocketConnected,
        EventReceived,
        EventReceived,
    ]
    assert step.of(EventReceived) == [
        EventReceived("replayed", (1,), None),
        EventReceived("replayed", (2,), 7),
    ]


def test_held_events_die_with_a_failed_attempt() -> None:
    h = Harness(draw=0.0)
    h.open()
    h.handshake()
    h.receive(event("stale"))
    h.closed("transport close")
    h.connect()
    assert h.received() == []


def test_a_server_that_sends_endless_events_before_connecting_is_broken() -> None:
    """At most 100 000 events are held before the CONNECT reply; one more is a parse error."""
    h = Harness(draw=0.0)
    h.open()
    h.handshake()
    frame = event("flood")
    for _ in range(100_000):
        h.conn.receive(frame, now=h.now)
    assert h.drain().events == []
    step = h.receive(frame)
    assert step.of(ConnectFailed)[0].error.message == DisconnectReason.PARSE_ERROR
    assert h.state is State.RECONNECTING


def test_held_events_are_bounded_in_bytes_too() -> None:
    """Held events count against max_buffered_bytes: a few huge ones are a parse error."""
    h = Harness.with_options(max_buffered_bytes=10_000)
    h.open()
    h.handshake()
    assert h.receive(event("big", "x" * 6_000)).events == []
    step = h.receive(event("big", "y" * 6_000))
    assert step.of(ConnectFailed)[0].error.message == DisconnectReason.PARSE_ERROR
    h.until_deadline()
    h.connect()
    assert h.received() == []  # the held events died with the attempt


def test_every_ping_gets_a_pong_with_its_data() -> None:
    h = Harness()
    h.open()
    h.opened()
    assert h.receive(PING).sent == ["3"]  # even before the handshake
    h.receive(engine_open(), connect_reply())
    assert h.receive(PING, "2probe", PING).sent == ["3", "3probe", "3"]


def test_noop_pong_and_upgrade_frames_are_ignored() -> None:
    h = Harness()
    h.connect()
    step = h.receive(NOOP, "3", "5")
    assert step.sent == [] and step.events == []
    assert h.state is State.CONNECTED


def test_server_events_are_delivered_in_order_with_their_ack_ids() -> None:
    h = Harness()
    h.connect()
    step = h.receive(event("a", 1, {"x": [1, 2]}), event("b"), event("c", None, ack_id=0))
    assert step.of(EventReceived) == [
        EventReceived("a", (1, {"x": [1, 2]}), None),
        EventReceived("b", (), None),
        EventReceived("c", (None,), 0),
    ]


def test_binary_events_in_binary_frames_and_in_base64() -> None:
    h = Harness()
    h.connect()
    header = '451-["blob",{"_placeholder":true,"num":0}]'
    assert h.receive(header).events == []
    step = h.receive(b"\x00\x01\x02")
    assert step.of(EventReceived) == [EventReceived("blob", (b"\x00\x01\x02",), None)]
    step = h.receive(header, "b" + base64.b64encode(b"\xff").decode())
    assert step.of(EventReceived) == [EventReceived("blob", (b"\xff",), None)]


def test_receive_without_an_open_transport_is_a_driver_bug() -> None:
    h = Harness()
    with pytest.raises(LocalProtocolError):
        h.receive(PING)
    h.open()  # OpenTransport issued, not yet opened
    with pytest.raises(LocalProtocolError):
        h.receive(PING)


def test_receive_refuses_what_is_not_a_websocket_message() -> None:
    h = Harness()
    h.connect()
    with pytest.raises(TypeError, match="str or bytes"):
        h.receive(42)  # type: ignore[arg-type]
    assert h.state is State.CONNECTED


@pytest.mark.parametrize(
    ("before_handshake", "frame"),
    [
        pytest.param(True, "40", id="socketio-before-handshake"),
        pytest.param(True, b"\x00", id="binary-before-handshake"),
        pytest.param(True, "bAAE=", id="base64-before-handshake"),
        pytest.param(False, engine_open(), id="second-handshake"),
        pytest.param(False, "0{", id="bad-handshake-json"),
        pytest.param(False, "", id="empty-frame"),
        pytest.param(False, "9", id="unknown-engineio-type"),
        pytest.param(False, "4xyz", id="bad-socketio-packet"),
        pytest.param(False, '42["connect"]', id="reserved-name-from-server"),
        pytest.param(False, b"\x00", id="binary-without-header"),
        pytest.param(False, "b!!", id="bad-base64"),
        pytest.param(False, "40", id="connect-reply-without-sid"),
        pytest.param(False, '40{"sid":5}', id="connect-reply-with-bad-sid"),
    ],
)
def test_malformed_input_while_connecting_fails_the_attempt_with_parse_error(
    before_handshake: bool, frame: str | bytes
) -> None:
    h = Harness(draw=0.0)
    h.open()
    if before_handshake:
        h.opened()
    else:
        h.handshake()
    step = h.receive(frame)
    assert [type(e) for e in step.events] == [CloseTransport, ConnectFailed, StateChanged]
    assert step.of(ConnectFailed)[0].error.message == "parse error"
    assert step.of(ConnectFailed)[0].error.data is None
    assert h.state is State.RECONNECTING


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("4xyz", id="bad-socketio-packet"),
        pytest.param(connect_reply("again"), id="second-connect-reply"),
        pytest.param('44{"message":"late"}', id="connect-error-while-connected"),
        pytest.param(engine_open(), id="second-handshake"),
    ],
)
def test_malformed_input_while_connected_is_a_parse_error_and_a_reconnect(
    frame: str,
) -> None:
    h = Harness(draw=0.0)
    h.connect()
    step = h.receive(frame)
    assert step.of(SocketDisconnected) == [SocketDisconnected("parse error")]
    assert step.of(CloseTransport) == [CloseTransport(h.token or 0)]
    assert step.of(StateChanged) == [
        StateChanged(State.CONNECTED, State.RECONNECTING, "parse error", 1, 0.5)
    ]


def test_reports_for_a_token_the_core_gave_up_on_are_ignored() -> None:
    h = Harness(draw=0.0)
    h.open()
    old = h.token
    h.tick(20.0)  # the attempt timed out: CloseTransport(old), retry scheduled
    assert h.state is State.RECONNECTING
    assert h.opened(token=old).events == []
    assert h.failed(token=old).events == []
    assert h.closed(token=old).events == []
    h.until_deadline()
    assert h.token != old
    # transport_closed for a transport that never opened is ignored too.
    assert h.closed().events == []
    h.connect()
    assert h.conn.state is State.CONNECTED


def test_the_handshake_sets_the_payload_limit() -> None:
    h = Harness()
    h.open()
    h.handshake(max_payload=64)
    h.receive(connect_reply())
    h.emit("small", "x" * 10)
    with pytest.raises(ValueError, match="maxPayload of 64"):
        h.emit("big", "x" * 64)


def test_a_handshake_with_zero_max_payload_keeps_the_configured_limit() -> None:
    h = Harness.with_options(max_payload=100)
    h.open()
    h.handshake(max_payload=0)
    h.receive(connect_reply())
    with pytest.raises(ValueError, match="maxPayload of 100"):
        h.emit("big", "x" * 100)


def test_outputs_are_cleared_by_draining() -> None:
    h = Harness()
    h.connect()
    h.conn.receive(PING, now=h.now)
    assert h.conn.data_to_send() == ["3"]
    assert h.conn.data_to_send() == []
    h.conn.close(now=h.now)
    assert h.conn.drain_events() != []
    assert h.conn.drain_events() == []


def test_disconnect_reasons_are_socketio_names() -> None:
    assert DisconnectReason.CLIENT == "io client disconnect"
    assert DisconnectReason.SERVER == "io server disconnect"
    assert DisconnectReason.PING_TIMEOUT == "ping timeout"
    assert DisconnectReason.TRANSPORT_CLOSE == "transport close"
    assert DisconnectReason.TRANSPORT_ERROR == "transport error"
    assert DisconnectReason.PARSE_ERROR == "parse error"


def test_disconnect_for_another_namespace_is_ignored() -> None:
    h = Harness()
    h.connect()
    assert h.receive(disconnect(namespace="/other")).events == []
    assert h.state is State.CONNECTED
