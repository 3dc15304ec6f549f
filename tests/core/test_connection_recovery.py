"""The connection core, part 6: connection state recovery (socket.io >= 4.6).

The client keeps the server's ``pid`` and the last offset, sends both on automatic
reconnects (not after its own ``close()``), reports ``recovered`` at every connect, and
strips the offset argument before the event is delivered (contract 2.5).
"""

from __future__ import annotations

from tether.core import EventReceived, SocketConnected

from .helpers import Harness, connect_reply, connect_request, decode_sent, event


def test_the_offset_is_stripped_and_sent_back_with_the_pid_on_reconnect() -> None:
    h = Harness(draw=0.0)
    h.connect("s1", pid="p1")
    step = h.receive(event("news", "hello", "off-1"), event("news", "off-2"))
    assert step.of(EventReceived) == [
        EventReceived("news", ("hello",), None),
        EventReceived("news", (), None),
    ]
    h.closed()
    h.until_deadline()
    step = h.handshake({"token": "t"})
    assert step.sent == [connect_request({"pid": "p1", "offset": "off-2", "token": "t"})]
    step = h.receive('40{"sid":"s1","pid":"p1"}')
    assert step.of(SocketConnected) == [SocketConnected("s1", recovered=True)]
    assert h.conn.recovered is True


def test_the_users_auth_wins_over_the_recovery_keys() -> None:
    h = Harness(draw=0.0)
    h.connect(pid="p1")
    h.receive(event("e", "o1"))
    h.closed()
    h.until_deadline()
    step = h.handshake({"pid": "mine"})
    assert decode_sent(step.sent[0])[1] == {"pid": "mine", "offset": "o1"}


def test_events_that_carry_no_offset_are_left_alone() -> None:
    h = Harness()
    h.connect(pid="p1")
    step = h.receive(
        event("no-args"),
        event("not-a-string", 1),
        event("acked", "keep", ack_id=3),  # emits with an ack carry no offset
    )
    assert step.of(EventReceived) == [
        EventReceived("no-args", (), None),
        EventReceived("not-a-string", (1,), None),
        EventReceived("acked", ("keep",), 3),
    ]


def test_without_a_pid_nothing_is_stripped() -> None:
    h = Harness()
    h.connect()
    step = h.receive(event("e", "a", "b"))
    assert step.of(EventReceived) == [EventReceived("e", ("a", "b"), None)]


def test_without_an_offset_no_recovery_is_asked_for() -> None:
    h = Harness(draw=0.0)
    h.connect(pid="p1")
    h.closed()
    h.until_deadline()
    assert h.handshake().sent == ["40"]


def test_replayed_events_before_the_reply_are_stripped_and_advance_the_offset() -> None:
    h = Harness(draw=0.0)
    h.connect("s1", pid="p1")
    h.receive(event("e", "o1"))
    h.closed()
    h.until_deadline()
    h.handshake()
    h.receive(event("missed", 1, "o2"), event("missed", 2, "o3"))
    step = h.receive('40{"sid":"s1","pid":"p1"}')
    assert step.of(EventReceived) == [
        EventReceived("missed", (1,), None),
        EventReceived("missed", (2,), None),
    ]
    h.closed()
    h.until_deadline()
    assert decode_sent(h.handshake().sent[0])[1] == {"pid": "p1", "offset": "o3"}


def test_a_failed_recovery_is_a_fresh_session() -> None:
    h = Harness(draw=0.0)
    h.connect("s1", pid="p1")
    h.join("room")
    h.update_profile({"v": 1})
    h.receive(event("e", "o1"))
    h.closed()
    step = h.connect("s2", pid="p2")  # the server issued a new pid: not recovered
    assert step.of(SocketConnected) == [SocketConnected("s2", recovered=False)]
    assert h.conn.recovered is False
    # The server forgot everything: channels and profile are restored.
    assert [decode_sent(f)[1] for f in step.sent] == [
        ["join", {"channel": "room", "echo": True}],
        ["update", {"data": {"v": 1}, "echo": True}],
    ]
    # And the old offset is gone: the next reconnect offers the new pid only with a new offset.
    h.closed()
    h.until_deadline()
    assert h.handshake().sent == ["40"]


def test_a_recovered_session_keeps_its_channels_and_profile() -> None:
    h = Harness(draw=0.0)
    h.connect("s1", pid="p1")
    h.join("room")
    h.update_profile({"v": 1})
    h.receive(event("e", "o1"))
    h.closed()
    step = h.connect("s1", pid="p1")
    assert step.of(SocketConnected) == [SocketConnected("s1", recovered=True)]
    # The server restored the rooms and the data, but CSR never replays client→server
    # packets, so the client cannot know its last join arrived: it says everything again
    # (idempotent on the hub).
    assert [decode_sent(f)[1] for f in step.sent] == [
        ["join", {"channel": "room", "echo": True}],
        ["update", {"data": {"v": 1}, "echo": True}],
    ]


def test_a_recovered_session_catches_up_with_offline_channel_changes() -> None:
    h = Harness(draw=0.0)
    h.connect("s1", pid="p1")
    h.join("stay")
    h.join("go", echo=True)
    h.receive(event("e", "o1"))
    h.closed()
    h.leave("go", echo=False)  # the leave's own echo flag must be honoured
    h.join("new", echo=False)
    h.update_profile({"v": 2}, echo=False)
    step = h.connect("s1", pid="p1")
    assert [decode_sent(f)[1] for f in step.sent] == [
        ["leave", {"channel": "go", "echo": False}],
        ["join", {"channel": "stay", "echo": True}],
        ["join", {"channel": "new", "echo": False}],
        ["update", {"data": {"v": 2}, "echo": False}],
    ]


def test_close_keeps_pid_and_offset_and_the_server_decides() -> None:
    # specs/delivery.md §3: a close() while connected says goodbye (41), so the server drops
    # the session and answers the next CONNECT with a new one; the client still offers it.
    h = Harness()
    h.connect(pid="p1")
    h.receive(event("e", "o1"))
    assert h.close().sent == ["41"]
    h.open()
    assert decode_sent(h.handshake().sent[0])[1] == {"pid": "p1", "offset": "o1"}
    h.receive(connect_reply("s2", pid="p2"))
    assert h.conn.recovered is False


def test_close_while_reconnecting_recovers_what_the_server_held() -> None:
    h = Harness(draw=0.0)
    h.connect(pid="p1")
    h.receive(event("e", "o1"))
    h.closed()  # the drop: no DISCONNECT reached the server, it keeps the session
    assert h.close().sent == []  # nothing to say: not connected
    h.open()
    assert decode_sent(h.handshake().sent[0])[1] == {"pid": "p1", "offset": "o1"}
    h.receive(event("missed", "o2"), connect_reply("s1", pid="p1"))
    assert h.conn.recovered is True
    assert h.received()[-1] == ("missed", ())


def test_a_server_disconnect_ends_the_session_too() -> None:
    h = Harness()
    h.connect(pid="p1")
    h.receive(event("e", "o1"))
    h.receive("41")
    h.open()
    assert h.handshake().sent == ["40"]


def test_a_refusal_ends_the_session_too() -> None:
    h = Harness(draw=0.0)
    h.connect(pid="p1")
    h.receive(event("e", "o1"))
    h.closed()
    h.until_deadline()
    h.handshake()
    h.receive('44{"message":"no"}')
    h.open()
    assert h.handshake().sent == ["40"]


def test_open_after_the_client_gave_up_asks_for_recovery() -> None:
    """Without the user's close() the session was not ended: the next open() may recover it."""
    h = Harness.with_options(reconnection=False)
    h.connect(pid="p1")
    h.receive(event("e", "o1"))
    h.closed()
    h.open()
    assert decode_sent(h.handshake().sent[0])[1] == {"pid": "p1", "offset": "o1"}
