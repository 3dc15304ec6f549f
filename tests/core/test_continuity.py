"""Continuity through the hub: positions kept per stream, offered back, resumes reported.

specs/delivery.md §4: the CONNECT says who the client is and where it left the broadcasts;
a join asks for an answer (the channel's position), a re-join after a reconnect carries the
last position seen (``since``), and the hub's answers become ``StreamResumed`` facts. The
hub's own answer about the broadcasts (``hub:resume``) never reaches the listeners.
"""

from __future__ import annotations

from typing import Any

from tether.core import CoreOptions, EventReceived, ResumeReason, StreamResumed

from .helpers import Harness, ack, decode_sent, engine_open, event


def hub_client(**options: Any) -> Harness:
    return Harness(CoreOptions(client_id="client-1", **options), draw=0.0)


def join_frames(frames: list[str | bytes]) -> list[tuple[int, dict[str, Any]]]:
    """(ack id, payload) of each join written."""
    joins = []
    for frame in frames:
        prefix, payload = decode_sent(frame)
        if isinstance(payload, list) and payload[0] == "join":
            joins.append((int(prefix[2:]), payload[1]))
    return joins


def connect_payload(h: Harness) -> Any:
    [frame] = [f for f in h.handshake().sent if isinstance(f, str) and f.startswith("40")]
    return decode_sent(frame)[1]


def test_the_connect_says_who_the_client_is() -> None:
    h = hub_client()
    h.open()
    assert connect_payload(h) == {"tether": {"client": "client-1"}}
    plain = Harness()
    plain.open()
    assert plain.handshake().sent == ["40"]


def test_the_users_auth_wins_over_the_identity() -> None:
    h = hub_client()
    h.open()
    h.opened({"token": "t", "tether": "mine"})
    frames = h.receive(engine_open()).sent
    assert decode_sent(frames[0])[1] == {"token": "t", "tether": "mine"}


def test_a_first_join_learns_the_position_and_reports_nothing() -> None:
    h = hub_client()
    h.connect()
    [(call_id, payload)] = join_frames(h.join("room").sent)
    assert payload == {"channel": "room", "echo": True}
    step = h.receive(ack(call_id, {"pos": "p1"}))
    assert step.events == []
    # Live messages move the position; the reconnect's join offers the last one.
    h.receive(event("chat", {"channel": "room", "message": "hi", "pos": "p2"}))
    assert h.received()[-1] == ("chat", ({"channel": "room", "message": "hi", "pos": "p2"},))
    h.closed()
    step = h.connect()
    [(call_id, payload)] = join_frames(step.sent)
    assert payload == {"channel": "room", "echo": True, "since": "p2"}
    answer = {"pos": "p4", "resumed": True, "replayed": 2, "reason": None}
    step = h.receive(ack(call_id, answer))
    assert step.events == [StreamResumed("room", True, 2, None)]


def test_a_resume_that_lost_messages_says_why() -> None:
    h = hub_client()
    h.connect()
    [(call_id, _)] = join_frames(h.join("room").sent)
    h.receive(ack(call_id, {"pos": "p1"}))
    h.closed()
    [(call_id, _)] = join_frames(h.connect().sent)
    answer = {"pos": "p9", "resumed": False, "replayed": 1000, "reason": ResumeReason.TRIMMED}
    assert h.receive(ack(call_id, answer)).events == [
        StreamResumed("room", False, 1000, "history trimmed")
    ]


def test_a_server_without_continuity_is_reported_once_it_was_asked() -> None:
    h = hub_client()
    h.connect()
    [(call_id, _)] = join_frames(h.join("room").sent)
    assert h.receive(ack(call_id)).events == []  # an older hub: no position, nothing to say
    h.receive(ack(call_id, {"pos": "p1"}))  # a repeated answer is ignored
    h.closed()
    step = h.connect()
    assert join_frames(step.sent)[0][1] == {"channel": "room", "echo": True}  # no since
    # A position learned, then a hub that stops answering with one.
    h2 = hub_client()
    h2.connect()
    [(call_id, _)] = join_frames(h2.join("room").sent)
    h2.receive(ack(call_id, {"pos": "p1"}))
    h2.closed()
    [(call_id, _)] = join_frames(h2.connect().sent)
    assert h2.receive(ack(call_id, ["odd"])).events == [
        StreamResumed("room", False, 0, ResumeReason.UNSUPPORTED)
    ]


def test_odd_answer_fields_are_read_safely() -> None:
    h = hub_client()
    h.connect()
    [(call_id, _)] = join_frames(h.join("room").sent)
    h.receive(ack(call_id, {"pos": "p1"}))
    h.closed()
    [(call_id, _)] = join_frames(h.connect().sent)
    odd = {"pos": "p2", "resumed": "yes", "replayed": -3, "reason": 5}
    assert h.receive(ack(call_id, odd)).events == [StreamResumed("room", False, 0, None)]


def test_the_broadcasts_resume_at_the_connect_and_the_hubs_answer_is_not_an_event() -> None:
    h = hub_client()
    h.connect()
    first = h.receive(event("hub:resume", {"channel": None, "pos": "b1"}))
    assert first.events == []  # the first connect: nothing to resume, nothing delivered
    h.receive(event("news", {"channel": None, "message": 1, "pos": "b2"}))
    h.closed()
    h.until_deadline()
    assert connect_payload(h) == {"tether": {"client": "client-1", "broadcast": "b2"}}
    answer = {"channel": None, "pos": "b5", "resumed": True, "replayed": 3, "reason": None}
    step = h.receive('40{"sid":"s2"}', event("hub:resume", answer))
    assert step.of(StreamResumed) == [StreamResumed(None, True, 3, None)]
    assert not [e for e in step.of(EventReceived) if e.name == "hub:resume"]


def test_an_answer_held_before_the_connect_reply_is_read_too() -> None:
    h = hub_client()
    h.open()
    h.handshake()
    step = h.receive(event("hub:resume", {"channel": None, "pos": "b1"}), '40{"sid":"s"}')
    assert step.of(EventReceived) == []
    h.receive(event("later", {"channel": None, "message": 0, "pos": "b2"}))
    h.closed()
    h.until_deadline()
    assert connect_payload(h)["tether"]["broadcast"] == "b2"


def test_positions_of_channels_left_or_never_joined_are_not_kept() -> None:
    h = hub_client()
    h.connect()
    [(call_id, _)] = join_frames(h.join("room").sent)
    h.receive(ack(call_id, {"pos": "p1"}))
    h.receive(event("chat", {"channel": "elsewhere", "message": 0, "pos": "x9"}))
    h.receive(event("chat", "not a hub payload"), event("chat", {"channel": 3, "pos": "x"}))
    h.leave("room")
    h.join("room")
    h.closed()
    step = h.connect()
    assert join_frames(step.sent)[0][1] == {"channel": "room", "echo": True}  # no since


def test_positions_survive_close_and_open() -> None:
    h = hub_client()
    h.connect()
    [(call_id, _)] = join_frames(h.join("room").sent)
    h.receive(ack(call_id, {"pos": "p1"}))
    h.close()
    h.open()
    h.handshake()
    step = h.receive('40{"sid":"s2"}')
    assert join_frames(step.sent)[0][1]["since"] == "p1"


def test_a_join_that_never_got_its_answer_is_not_sent_again_by_itself() -> None:
    h = hub_client()
    h.connect()
    h.writing = False
    h.join("room")  # its join never leaves: the transport dies
    h.closed()
    h.writing = True
    assert h.conn.buffered == 0
    step = h.connect()
    assert [p for _, p in join_frames(step.sent)] == [{"channel": "room", "echo": True}]


def test_hub_message_ids_grow_and_stay_across_tries() -> None:
    h = hub_client(retries=1)
    h.connect()
    h.sent.clear()
    h.send("room", "chat", 1)
    h.broadcast("news", 2)
    ids = [decode_sent(f)[1][1]["id"] for f in h.sent]
    assert ids == [1, 2]
    h.closed()
    step = h.connect()
    assert [decode_sent(f)[1][1]["id"] for f in step.sent] == [1, 2]


def test_events_the_hub_did_not_position_are_delivered_as_they_are() -> None:
    h = hub_client()
    h.connect()
    [(call_id, _)] = join_frames(h.join("room").sent)
    h.receive(ack(call_id, {"pos": "p1"}))  # a hub: positions are looked for from now on
    h.receive(
        event("no-pos", {"channel": "room", "pos": 7}),
        event("two", 1, 2),
        event("hub:resume"),  # no answer at all: nothing to report
    )
    assert [name for name, _ in h.received()] == ["no-pos", "two"]
    h.closed()
    assert join_frames(h.connect().sent)[0][1]["since"] == "p1"


def test_an_answer_for_a_channel_left_meanwhile_keeps_no_position() -> None:
    h = hub_client()
    h.connect()
    [(call_id, _)] = join_frames(h.join("room").sent)
    h.leave("room")
    h.receive(ack(call_id, {"pos": "p1"}))
    h.join("room")
    h.closed()
    assert "since" not in join_frames(h.connect().sent)[0][1]


def test_data_pending_says_whether_there_is_something_to_write() -> None:
    h = hub_client()
    h.connect()
    h.writing = False
    pending = [h.conn.data_pending]
    h.emit("e")
    pending.append(h.conn.data_pending)
    h.conn.data_to_send()
    pending.append(h.conn.data_pending)
    assert pending == [False, True, False]


def test_a_position_seen_before_the_answer_is_newer_than_the_answer() -> None:
    # The hub answers a join after the replay and the join's own channel:join; a live
    # message may overtake the answer. The position to offer next is the newest one seen.
    h = hub_client()
    h.connect()
    h.receive(event("hub:resume", {"channel": None, "pos": "b1"}))
    [(call_id, _)] = join_frames(h.join("room").sent)
    h.receive(event("channel:join", {"channel": "room", "message": {}, "pos": "p2"}))
    h.receive(ack(call_id, {"pos": "p1"}))
    h.closed()
    [(_, payload)] = join_frames(h.connect().sent)
    assert payload["since"] == "p2"


def test_a_broadcast_seen_before_hub_resume_wins_over_its_position() -> None:
    h = hub_client()
    h.connect()
    h.receive(event("hub:resume", {"channel": None, "pos": "b1"}))
    h.closed()
    h.until_deadline()
    connect_payload(h)
    h.receive('40{"sid":"s2"}', event("news", {"channel": None, "message": 1, "pos": "b3"}))
    h.receive(event("hub:resume", {"channel": None, "pos": "b2", "resumed": True}))
    h.closed()
    h.until_deadline()
    assert connect_payload(h) == {"tether": {"client": "client-1", "broadcast": "b3"}}


def test_a_refused_join_is_told_as_the_hubs_error_event_and_resumes_nothing() -> None:
    # The hub refuses a join it answers with {"error": text} (a channel limit, say): the user
    # hears it as the "error" event the hub sends when there is no ack to answer in.
    h = hub_client()
    h.connect()
    [(call_id, _)] = join_frames(h.join("room").sent)
    h.receive(ack(call_id, {"pos": "p1"}))
    h.closed()
    [(call_id, _)] = join_frames(h.connect().sent)  # offers since="p1"
    step = h.receive(ack(call_id, {"error": "too many channels (at most 1 per client)"}))
    refusal = {"event": "join", "message": "too many channels (at most 1 per client)"}
    assert step.events == [EventReceived("error", (refusal,))]  # no StreamResumed
    # Only that exact shape is a refusal: anything else is an answer like any other.
    h.closed()
    [(call_id, _)] = join_frames(h.connect().sent)
    assert h.receive(ack(call_id, {"error": "x", "pos": "p2"})).events == [
        StreamResumed("room", False, 0, None)
    ]
