"""Property-based tests of the connection core: random histories, checked invariants.

A Hypothesis ``RuleBasedStateMachine`` plays user, server, network and clock at once: user
calls (open, close, emit, call, a cancelled call, ack, join, leave, update_profile), server
frames (the Engine.IO handshake, CONNECT replies with and without a CSR pid, CONNECT_ERROR,
DISCONNECT, pings, events with and without offsets, acks, garbage), transport failures (a
connect that fails, a transport that closes or breaks, late reports for old tokens) and clock
jumps. After every step it checks the invariants of ``specs/invariants.md``; the numbers in the
comments (I1, I2, ...) refer to that page.

A user call that raises must leave nothing to drain (I12): ``Harness.run`` checks it.

The machine keeps its own small model of what the core must have done: the offline buffer
(names of the messages, in order), the calls and how they may end, the channels the server
has been told about, whether the user's ``close()`` is in force. The model is fed only from
the user's calls and from what the core emitted, never from the core's private state.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tether.core import (
    AckFailed,
    AckReceived,
    AckTimeout,
    BufferFull,
    CloseTransport,
    ConnectFailed,
    CoreOptions,
    Disconnected,
    EventReceived,
    MessageDropped,
    OpenTransport,
    OverflowPolicy,
    ReconnectAttemptStarted,
    Reconnected,
    ReconnectFailed,
    SocketConnected,
    SocketDisconnected,
    State,
    StateChanged,
    backoff_window,
)

from .helpers import (
    ENGINE_CLOSE,
    NOOP,
    PING,
    Harness,
    Step,
    ack,
    connect_error,
    connect_reply,
    disconnect,
    engine_open,
    event,
    property_settings,
)

CHANNELS = ["a", "b", "c"]


def parse_frame(frame: str | bytes) -> tuple[str, int | None, Any] | None:
    """A client text frame as (kind, ack id, payload); None for pongs and attachments.

    kind: "connect", "disconnect", "event", "ack".
    """
    if not isinstance(frame, str) or not frame.startswith("4"):
        return None
    body = frame[1:]
    kind = {"0": "connect", "1": "disconnect", "2": "event", "3": "ack", "5": "event", "6": "ack"}[
        body[0]
    ]
    rest = body[1:]
    if body[0] in "56":
        rest = rest.split("-", 1)[1]
    digits = ""
    while rest[:1].isdigit():
        digits, rest = digits + rest[0], rest[1:]
    payload = json.loads(rest) if rest else None
    return kind, (int(digits) if digits else None), payload


class CoreMachine(RuleBasedStateMachine):
    """Drives one Connection; the model lives in the attributes below."""

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness()
        # The transport as the driver sees it: None, "opening" or "open".
        self.phase: str | None = None
        self.old_tokens: list[int] = []
        self.handshaken = False
        # I1: the user's close() is in force until the next open().
        self.user_closed = False
        # I4: the next reconnect attempt number.
        self.next_attempt = 1
        self.last_started = 0
        self.reconnected_from = 0
        # I3: SocketConnected / SocketDisconnected alternate.
        self.connected_event = False
        # I6: the offline buffer, as message names in order; the names of all sent messages.
        self.buffer: list[str] = []
        self.sent_names: set[str] = set()
        self.counter = 0
        # I7: calls: id → name; how they may still end; which ended.
        self.call_names: dict[int, str] = {}
        self.written_calls: set[int] = set()
        self.session_calls: set[int] = set()
        self.resolved: set[int] = set()
        self.abandoned: set[int] = set()  # resolved with no outcome: the caller gave up
        self.deadlines: dict[int, float] = {}
        # I8: the channels the server has been told about in this session.
        self.server_channels: dict[str, bool] = {}
        self.server_profile: Any = None
        self.wanted_profile: Any = None
        self.leave_flags: dict[str, bool] = {}
        # CSR: the pid of the current session; whether the session was ended on purpose.
        self.session_pid: str | None = None
        self.session_ended = False
        self.session_pid_reply: str | None = None
        self.last_connect_payload: Any = None
        self.pending_server_acks: list[int] = []

    # ---------------------------------------------------------------- set-up

    @initialize(
        reconnection=st.sampled_from([True, True, True, False]),
        attempts=st.sampled_from([None, None, None, 0, 1, 3]),
        delay=st.sampled_from([0.0, 0.5, 1.0]),
        extra=st.sampled_from([0.0, 2.0, 4.0]),
        factor=st.sampled_from([0.0, 0.5, 1.0]),
        max_buffered=st.sampled_from([2, 4, 10_000]),
        max_buffered_bytes=st.sampled_from([60, 16 * 1024 * 1024]),
        overflow=st.sampled_from(list(OverflowPolicy)),
        buffer_messages=st.sampled_from([True, True, True, False]),
        draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    )
    def setup(
        self,
        reconnection: bool,
        attempts: int | None,
        delay: float,
        extra: float,
        factor: float,
        max_buffered: int,
        max_buffered_bytes: int,
        overflow: OverflowPolicy,
        buffer_messages: bool,
        draw: float,
    ) -> None:
        options = CoreOptions(
            reconnection=reconnection,
            reconnection_attempts=attempts,
            reconnection_delay=delay,
            reconnection_delay_max=delay + extra,
            randomization_factor=factor,
            timeout=10.0,
            max_buffered=max_buffered,
            max_buffered_bytes=max_buffered_bytes,
            overflow=overflow,
            buffer_messages=buffer_messages,
        )
        self.h = Harness(options, draw=draw)

    # ---------------------------------------------------------------- observing a step

    def observe(self, step: Step, *, new: str | None = None) -> None:
        """Check one step's output against the model and update the model.

        ``new`` is the name of a message the user just emitted (not yet in the model).
        """
        h = self.h
        opts = h.options
        new_placed = False
        dropped_old = 0
        for frame in step.sent:  # the CONNECT this step wrote, before its reply is read
            parsed = parse_frame(frame)
            if parsed is not None and parsed[0] == "connect":
                self.last_connect_payload = parsed[2]
                if self.session_ended:  # I11: CSR only for a session the client did not end
                    assert not (isinstance(parsed[2], dict) and "pid" in parsed[2])
        for e in step.events:
            if isinstance(e, OpenTransport):
                assert not self.user_closed, "I1: an attempt started after close()"
                if self.phase is not None:
                    self.old_tokens.append(h.token or 0)
                self.phase, self.handshaken = "opening", False
            elif isinstance(e, CloseTransport):
                assert e.token == h.token
                self.old_tokens.append(e.token)
                self.phase = None
            elif isinstance(e, StateChanged):
                if e.current is State.RECONNECTING:
                    # I5: every delay within the documented bounds.
                    assert e.attempt == self.next_attempt, (e, self.next_attempt)
                    assert e.retry_in is not None
                    low, high = backoff_window(
                        e.attempt,
                        opts.reconnection_delay,
                        opts.reconnection_delay_max,
                        opts.randomization_factor,
                    )
                    assert low <= e.retry_in <= high
                    assert opts.reconnection
                    limit = opts.reconnection_attempts
                    assert limit is None or e.attempt <= limit
                if e.current is State.CLOSED:
                    self.next_attempt, self.last_started = 1, 0
            elif isinstance(e, ReconnectAttemptStarted):
                assert e.attempt == self.next_attempt  # I4: 1, 2, 3 ...
                self.last_started = e.attempt
                self.next_attempt += 1
            elif isinstance(e, Reconnected):
                assert e.attempt == self.reconnected_from != 0
                self.reconnected_from = 0
            elif isinstance(e, ReconnectFailed):
                limit = opts.reconnection_attempts
                assert limit is not None and self.next_attempt == limit + 1
            elif isinstance(e, SocketConnected):
                assert not self.connected_event, "I3: connect twice"
                self.connected_event = True
                self.reconnected_from = self.last_started  # a Reconnected must follow
                self.next_attempt, self.last_started = 1, 0
                payload = self.last_connect_payload or {}
                offered = payload.get("pid") if isinstance(payload, dict) else None
                expected = offered is not None and offered == self.session_pid_reply
                assert e.recovered is expected  # I11
                if not e.recovered:
                    self.server_channels, self.server_profile = {}, None
                self.session_pid = self.session_pid_reply
                self.session_ended = False
                self.session_calls = set()
                self.check_flush(step)
            elif isinstance(e, SocketDisconnected):
                assert self.connected_event, "I3: disconnect without connect"
                if e.reason == "io server disconnect":
                    self.session_ended = True
                self.connected_event = False
                self.pending_server_acks = []
            elif isinstance(e, MessageDropped):
                if self.buffer and e.event == self.buffer[0] and e.event != new:
                    assert opts.overflow is OverflowPolicy.DROP_OLDEST
                    self.buffer.pop(0)
                    dropped_old += 1
                else:
                    assert e.event == new and not new_placed
                    if e.reason == "not connected":
                        assert not opts.buffer_messages
                    else:
                        assert opts.overflow is not OverflowPolicy.RAISE
                    new_placed = True
                if e.call_id is not None:
                    self.call_names.pop(e.call_id, None)
            elif isinstance(e, (AckReceived, AckFailed)):
                # I7: every call resolves at most once.
                assert e.call_id not in self.resolved
                self.resolved.add(e.call_id)
                deadline = self.deadlines.pop(e.call_id, None)
                if isinstance(e, AckReceived):
                    assert e.call_id in self.written_calls
                elif isinstance(e.error, Disconnected) and str(e.error) != "not connected":
                    assert e.call_id in self.written_calls  # "Disconnected": sent, then lost
                elif isinstance(e.error, AckTimeout):
                    assert deadline is not None and h.now >= deadline
                    name = self.call_names.pop(e.call_id, None)
                    if name in self.buffer:
                        self.buffer.remove(name)  # withdrawn, never sent
                else:
                    assert isinstance(e.error, (BufferFull, Disconnected))
            elif isinstance(e, ConnectFailed):
                if e.error.refused:
                    self.session_ended = True
            elif isinstance(e, EventReceived) and e.ack_id is not None:
                self.pending_server_acks.append(e.ack_id)
        assert self.reconnected_from == 0, "a reconnect was not reported"
        # drop_oldest drops old messages only to make room for the new one.
        assert not (dropped_old and new_placed), "old messages dropped for nothing"
        self.check_sent(step)
        if new is not None and not new_placed and new not in self.sent_names:
            self.buffer.append(new)

    def check_flush(self, step: Step) -> None:
        """I6 and the post-reconnect order: state first, then the buffer, in order."""
        names = []
        seen_message = False
        for frame in step.sent:
            parsed = parse_frame(frame)
            if parsed is None or parsed[0] != "event":
                continue
            name = parsed[2][0]
            if name in ("join", "leave", "update"):
                assert not seen_message, "channel state must be restored before the flush"
            else:
                seen_message = True
                names.append(name)
        assert names == self.buffer, (names, self.buffer)
        self.buffer = []

    def check_sent(self, step: Step) -> None:
        joined_now: set[str] = set()
        for frame in step.sent:
            parsed = parse_frame(frame)
            if parsed is None:
                continue
            kind, ack_id, payload = parsed
            if kind != "event":
                continue
            name = payload[0]
            if name == "join":
                channel, flag = payload[1]["channel"], payload[1]["echo"]
                # A join may repeat what the server has (every connect re-joins, even a
                # recovered one), but never twice in one step: "a join is sent once".
                assert channel not in joined_now, "I8: a join sent twice"
                joined_now.add(channel)
                self.server_channels[channel] = flag
            elif name == "leave":
                channel = payload[1]["channel"]
                assert channel in self.server_channels, "I8: leave of a stranger"
                assert payload[1]["echo"] == self.leave_flags[channel], "the leave's own echo"
                del self.server_channels[channel]
            elif name == "update":
                self.server_profile = payload[1]
            else:
                assert name not in self.sent_names, "I6: a message was sent twice"
                assert name not in self.buffer, "I6: a buffered message left outside a flush"
                self.sent_names.add(name)
                if ack_id is not None:
                    self.written_calls.add(ack_id)
                    self.session_calls.add(ack_id)

    # ---------------------------------------------------------------- user calls

    @rule()
    def open(self) -> None:
        was = self.h.state
        self.user_closed = False
        step = self.h.open()
        if was in (State.IDLE, State.CLOSED):
            self.next_attempt, self.last_started = 1, 0
            assert step.of(OpenTransport)
        else:
            assert step.events == [] and step.sent == []
        self.observe(step)

    @rule()
    def close(self) -> None:
        # The pid and offset are kept (specs/delivery.md §3): the server decides.
        self.user_closed = True
        self.observe(self.h.close())
        self.next_attempt = 1
        assert self.h.state is State.CLOSED

    @rule(size=st.sampled_from([0, 0, 0, 30, 100]))
    def emit(self, size: int) -> None:
        self.counter += 1
        name = f"m{self.counter}"
        frame = len(f'42["{name}","{"x" * size}"]')
        full = self.will_refuse(frame)
        try:
            step = self.h.emit(name, "x" * size)
        except BufferFull:
            assert full
            return
        self.observe(step, new=name)

    @rule(timeout=st.sampled_from([None, 0.5, 5.0, 60.0]))
    def call(self, timeout: float | None) -> None:
        self.counter += 1
        name = f"c{self.counter}"
        full = self.will_refuse(len(name) + 30)
        try:
            call_id, step = self.h.call(name, timeout=timeout)
        except BufferFull:
            assert full
            return
        assert call_id not in self.call_names and call_id not in self.resolved
        self.call_names[call_id] = name
        if timeout is not None and call_id not in self.resolved:
            self.deadlines[call_id] = self.h.now + timeout
        self.observe(step, new=name)

    @precondition(lambda self: any(c not in self.resolved for c in self.call_names))
    @rule(data=st.data())
    def abandon_call(self, data: st.DataObject) -> None:
        """The caller is cancelled: the call ends with no outcome, and if still buffered it
        is withdrawn, never sent."""
        waiting = sorted(c for c in self.call_names if c not in self.resolved)
        call_id = data.draw(st.sampled_from(waiting))
        step = self.h.run(lambda: self.h.conn.abandon_call(call_id))
        assert step.events == [] and step.sent == []
        self.resolved.add(call_id)
        self.abandoned.add(call_id)
        self.deadlines.pop(call_id, None)
        name = self.call_names.pop(call_id)
        if name in self.buffer:
            self.buffer.remove(name)

    def will_refuse(self, size: int) -> bool:
        """Whether a full buffer may refuse this message (an upper bound on ``size``)."""
        opts = self.h.options
        if opts.overflow is not OverflowPolicy.RAISE:
            return False
        return len(self.buffer) >= opts.max_buffered or (
            self.h.conn.buffered_bytes + size + 8 > opts.max_buffered_bytes
        )

    @rule(channel=st.sampled_from(CHANNELS), echo=st.sampled_from([None, True, False]))
    def join(self, channel: str, echo: bool | None) -> None:
        self.observe(self.h.join(channel, echo))

    @rule(channel=st.sampled_from(CHANNELS), echo=st.sampled_from([None, True, False]))
    def leave(self, channel: str, echo: bool | None) -> None:
        self.leave_flags[channel] = self.h.options.echo_messages if echo is None else echo
        self.observe(self.h.leave(channel, echo))

    @rule(value=st.integers(0, 3), echo=st.sampled_from([None, False]))
    def update_profile(self, value: int, echo: bool | None) -> None:
        flag = self.h.options.echo_messages if echo is None else echo
        self.wanted_profile = {"data": {"v": value}, "echo": flag}
        self.observe(self.h.update_profile({"v": value}, echo))

    @precondition(lambda self: self.pending_server_acks)
    @rule(data=st.data())
    def ack_server_event(self, data: st.DataObject) -> None:
        ack_id = data.draw(st.sampled_from(self.pending_server_acks))
        self.pending_server_acks.remove(ack_id)
        step = self.h.ack(ack_id, "ok")
        assert step.sent == [f'43{ack_id}["ok"]']
        self.observe(step)

    # ---------------------------------------------------------------- the network

    @precondition(lambda self: self.phase == "opening")
    @rule(token=st.integers(0, 99))
    def transport_opened(self, token: int) -> None:
        self.phase = "open"
        self.observe(self.h.opened({"token": token}))

    @precondition(lambda self: self.phase == "opening")
    @rule()
    def transport_failed(self) -> None:
        self.phase = None
        self.observe(self.h.failed("connection refused"))

    @precondition(lambda self: self.phase == "open")
    @rule(
        how=st.sampled_from(
            [
                "transport close",
                "transport error",
                ENGINE_CLOSE,
                "4garbage",
                "42[",
                b"\x00",
                '44{"message":"late"}',
            ]
        )
    )
    def connection_breaks(self, how: str | bytes) -> None:
        """The transport closes or breaks, or the server sends what makes it a parse error."""
        if how in ("transport close", "transport error"):
            self.phase = None
            assert isinstance(how, str)
            self.observe(self.h.closed(how))
        else:
            self.server(how)

    @precondition(lambda self: self.old_tokens)
    @rule(data=st.data(), which=st.sampled_from(["opened", "failed", "closed"]))
    def late_report_for_an_old_token(self, data: st.DataObject, which: str) -> None:
        token = data.draw(st.sampled_from(self.old_tokens))
        if which == "opened":
            step = self.h.opened(token=token)
        elif which == "failed":
            step = self.h.failed(token=token)
        else:
            step = self.h.closed(token=token)
        assert step.events == [] and step.sent == []  # I10

    def server(self, *frames: str | bytes) -> None:
        self.observe(self.h.receive(*frames))

    @precondition(lambda self: self.phase == "open" and not self.handshaken)
    @rule(interval=st.sampled_from([0, 1_000, 25_000]), timeout=st.sampled_from([0, 500, 20_000]))
    def server_handshake(self, interval: int, timeout: int) -> None:
        self.handshaken = True
        self.server(engine_open(ping_interval=interval, ping_timeout=timeout))

    @precondition(lambda self: self.phase is not None)
    @rule(sid=st.sampled_from(["s1", "s2"]), pid=st.sampled_from([None, "p1", "p1", "p2"]))
    def server_accepts(self, sid: str, pid: str | None) -> None:
        """The CONNECT reply (after the transport and the handshake, if still to come)."""
        if self.phase == "opening":
            self.transport_opened(0)
        self.session_pid_reply = pid
        frames = [] if self.handshaken else [engine_open()]
        self.handshaken = True
        self.server(*frames, connect_reply(sid, pid=pid))

    @precondition(lambda self: self.h.state is State.RECONNECTING and self.phase is None)
    @rule(sid=st.sampled_from(["s1", "s2"]), pid=st.sampled_from([None, "p1", "p1", "p2"]))
    def server_is_back(self, sid: str, pid: str | None) -> None:
        """The backoff delay passes and the retry succeeds (a common story, made likely)."""
        self.timer_fires_on_time()
        if self.phase is not None:
            self.server_accepts(sid, pid)

    @precondition(lambda self: self.h.conn.is_connected and self.session_pid is not None)
    @rule(
        recover=st.booleans(),
        offline=st.lists(
            st.tuples(
                st.sampled_from(["join", "leave", "emit"]),
                st.sampled_from(CHANNELS),
                st.sampled_from([None, True, False]),
            ),
            max_size=3,
        ),
    )
    def network_blip(self, recover: bool, offline: list[tuple[str, str, bool | None]]) -> None:
        """A CSR server: an event with an offset, the transport drops, the user carries on
        offline, and the retry may recover the session."""
        pid = self.session_pid
        self.server_emits(7, with_ack=False)
        self.connection_breaks("transport close")
        for action, channel, echo in offline:
            if action == "join":
                self.join(channel, echo)
            elif action == "leave":
                self.leave(channel, echo)
            elif not self.will_refuse(100):
                self.emit(0)
        if self.h.state is State.RECONNECTING:
            self.server_is_back("s1", pid if recover else "p2")

    @precondition(
        lambda self: self.phase == "open" and self.handshaken and not self.h.conn.is_connected
    )
    @rule(payload=st.sampled_from([{"message": "no", "data": {"code": 1}}, "refused"]))
    def server_refuses(self, payload: Any) -> None:
        self.server(connect_error(payload))

    @precondition(lambda self: self.phase == "open" and self.handshaken)
    @rule()
    def server_disconnects(self) -> None:
        self.server(disconnect())

    @precondition(lambda self: self.phase == "open")
    @rule(frame=st.sampled_from([PING, NOOP]))
    def server_pings(self, frame: str) -> None:
        before = len(self.h.sent)
        self.server(frame)
        if frame == PING:
            assert self.h.sent[before:] == ["3"]  # I13: every ping gets its pong

    @precondition(lambda self: self.phase == "open" and self.handshaken)
    @rule(value=st.integers(0, 9), with_ack=st.booleans())
    def server_emits(self, value: int, with_ack: bool) -> None:
        ack_id = value if with_ack else None
        offset = [f"off{value}"] if self.session_pid is not None and not with_ack else []
        before = len(self.h.events)
        self.server(event("news", value, *offset, ack_id=ack_id))
        for e in self.h.events[before:]:
            if type(e) is EventReceived:
                assert e.args == (value,)  # I11: the offset never reaches the user

    @precondition(lambda self: self.phase == "open" and self.session_calls)
    @rule(data=st.data())
    def server_acks(self, data: st.DataObject) -> None:
        call_id = data.draw(st.sampled_from(sorted(self.session_calls)))
        self.server(ack(call_id, "answer"))

    # ---------------------------------------------------------------- the clock

    @rule(seconds=st.sampled_from([0.0, 0.1, 0.5, 1.0, 1.0, 5.0, 5.0, 20.0, 45.0, 1000.0]))
    def clock_jumps(self, seconds: float) -> None:
        deadline = self.h.conn.next_deadline()
        step = self.h.tick(seconds)
        if deadline is None or self.h.now < deadline:
            assert step.events == [] and step.sent == [], "the timer acted before its deadline"
        self.observe(step)

    @rule(seconds=st.sampled_from([1.0, 50.0]))
    def clock_drifts(self, seconds: float) -> None:
        """Time passes but the driver's timer is late (throttled timers, a suspended laptop)."""
        self.h.clock.advance(seconds)

    @precondition(lambda self: self.h.conn.next_deadline() is not None)
    @rule()
    def timer_fires_on_time(self) -> None:
        self.observe(self.h.until_deadline())

    # ---------------------------------------------------------------- invariants

    @invariant()
    def connected_iff_sid(self) -> None:
        """I2: is_connected ⇔ state is CONNECTED ⇔ a sid is known ⇔ last event was connect."""
        conn = self.h.conn
        connected = conn.state is State.CONNECTED
        assert conn.is_connected is connected
        assert (conn.sid is not None) is connected
        assert self.connected_event is connected

    @invariant()
    def closed_stays_closed(self) -> None:
        """I1: after close(), CLOSED until open()."""
        if self.user_closed:
            assert self.h.state is State.CLOSED

    @invariant()
    def never_hangs(self) -> None:
        """I9: in every active state the core has a deadline; at rest only ack timeouts."""
        conn = self.h.conn
        deadline = conn.next_deadline()
        if conn.state in (State.CONNECTING, State.CONNECTED, State.RECONNECTING):
            assert deadline is not None
        else:
            assert self.phase is None
            pending = [d for c, d in self.deadlines.items() if c not in self.resolved]
            assert deadline == (min(pending) if pending else None)

    @invariant()
    def the_buffer_matches_the_model(self) -> None:
        """I6: the core holds exactly the messages the model says, within its bound."""
        assert self.h.conn.buffered == len(self.buffer)
        assert len(self.buffer) <= self.h.options.max_buffered
        if self.h.state is State.CONNECTED:
            assert self.buffer == []

    @invariant()
    def channels_are_reconciled(self) -> None:
        """I8: while connected, the server was told exactly the channels and the profile the
        user wants."""
        if self.h.state is State.CONNECTED:
            assert self.server_channels == dict(self.h.conn.channels)
            assert self.server_profile == self.wanted_profile

    def teardown(self) -> None:
        """I7 at the end: after close(), every call whose packet was written has resolved."""
        self.h.close()
        resolved = {e.call_id for e in self.h.events if isinstance(e, (AckReceived, AckFailed))}
        assert self.written_calls <= resolved | self.abandoned, "a written call never resolved"


CoreMachine.TestCase.settings = property_settings(200, stateful_step_count=50)
TestCoreMachine = CoreMachine.TestCase
