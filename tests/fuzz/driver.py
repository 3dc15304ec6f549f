"""Drives one ``tether.core.Connection`` through its public API and checks every outcome.

The invariant, checked after every call (specs/core.md "Errors", specs/invariants.md,
contract 2.6):

1. **Network input never raises.** ``receive`` (with a transport open),
   ``transport_opened``/``transport_failed``/``transport_closed`` and ``handle_timer`` return,
   whatever the server sent. User calls raise only what specs/core.md lists (``ValueError``,
   ``TypeError``, ``BufferFull``, ``LocalProtocolError``) and then leave nothing to drain.
2. **Every message has a documented outcome**, predicted here from the codecs alone
   (``decode_engine_packet``, ``parse_handshake`` and a ``PacketDecoder`` fed the same
   messages): a ping gets its pong and nothing else; NOOP, PONG and UPGRADE are ignored; a
   CLOSE is ``"transport close"``; a message the codecs refuse, a second handshake, a message
   before the handshake, a CONNECT reply without a sid or while connected, a CONNECT_ERROR
   while connected, are ``"parse error"``; a refusal closes for good; a server DISCONNECT is
   ``"io server disconnect"``. A connection lost for any reason closes its transport
   (``CloseTransport``) and reconnects by the options (or ends in ``CLOSED``).
3. **Nothing buffered is lost to the network**: no network input drops a buffered message
   (``MessageDropped`` comes only from user calls, and from a connect whose server announces
   a maxPayload smaller than what was buffered before it, specs/bounds.md), and the events
   held before a CONNECT reply are all delivered with it.
4. **No hang**: while connecting, connected or reconnecting the core has a deadline.
5. **Nothing grows without bound**: the offline buffer stays within ``max_buffered`` and
   ``max_buffered_bytes``, a pending binary packet never awaits more than
   ``MAX_ATTACHMENTS`` messages, and every call's output is drained by the next.

``run_history`` draws a history interactively (the next step depends on where the
connection is), for Hypothesis in CI and for the long runs of ``python -m tests.fuzz``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from core.helpers import (
    Harness,
    Step,
    ack,
    connect_error,
    connect_reply,
    disconnect,
    engine_open,
    event,
)
from tether.core import (
    AckReceived,
    BufferFull,
    CloseTransport,
    ConnectFailed,
    CoreOptions,
    EventReceived,
    LocalProtocolError,
    MessageDropped,
    OverflowPolicy,
    ReconnectFailed,
    SocketConnected,
    SocketDisconnected,
    State,
)
from tether.core._engineio import decode_engine_packet, parse_handshake
from tether.core._errors import DecodeError
from tether.core._socketio import MAX_ACK_ID, MAX_ATTACHMENTS, Packet, PacketDecoder, PacketType

from .frames import (
    binary_frames,
    event_payloads,
    handshakes,
    mutated,
    server_frames,
    socketio_packets,
)
from .json_texts import typed_tokens
from .stack import process_recursion_limit

__all__ = ["CoreFuzzer", "core_options", "run_history"]

DISCONNECT_REASONS = frozenset(
    {
        "io client disconnect",
        "io server disconnect",
        "ping timeout",
        "transport close",
        "transport error",
        "parse error",
    }
)
USER_ERRORS = (ValueError, TypeError, BufferFull, LocalProtocolError)
LIVE_STATES = (State.CONNECTING, State.CONNECTED, State.RECONNECTING)


class Expect(enum.Enum):
    """What the codecs say a message must lead to."""

    PONG = "pong"
    IGNORED = "ignored"  # NOOP, PONG, UPGRADE, or an attachment still awaited
    CLOSE = "transport close"
    PARSE_ERROR = "parse error"
    HANDSHAKE = "handshake"
    PACKET = "packet"  # a whole Socket.IO packet: what it does depends on the state


@dataclass
class CoreFuzzer:
    """A Connection with a scripted driver, a model of its transport and the invariant."""

    options: CoreOptions = field(default_factory=CoreOptions)

    def __post_init__(self) -> None:
        self.h = Harness(self.options)
        self.open_token: int | None = None  # the transport the driver has open
        self.engine_open = False  # that transport's Engine.IO handshake is done
        self.shadow = PacketDecoder()  # fed what the core's decoder is fed
        self.held = 0  # events for our namespace held before the CONNECT reply
        self.server_ack_ids: list[int] = []

    # -- where the connection is ------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.h.state is State.CONNECTED

    def _transport_gone(self) -> None:
        self.open_token = None
        self.engine_open = False
        self.shadow.reset()
        self.held = 0

    # -- the driver's side ------------------------------------------------------------------

    def advance(self) -> None:
        """Whatever moves the connection on: open it, answer its attempt, or wait for it."""
        if self.open_token is not None:
            return
        if self.h.attempting:
            self.transport_opened()
        elif self.h.state in (State.IDLE, State.CLOSED):
            self.user(self.h.open)
        elif self.h.conn.next_deadline() is not None:
            self.after(self.h.until_deadline(), network=True)

    def transport_opened(self, auth: Mapping[str, Any] | None = None) -> None:
        if not self.h.attempting or self.open_token is not None:
            return
        step = self.h.opened(auth)
        assert step.sent == [] and step.events == [], step
        self.open_token = self.h.token
        self.engine_open = False
        self.shadow.reset()

    def transport_failed(self) -> None:
        if not self.h.attempting or self.open_token is not None:
            return
        step = self.h.failed("connection refused")
        assert any(type(e) is ConnectFailed for e in step.events), step
        self.after(step, network=True)

    def transport_closed(self, reason: str) -> None:
        if self.open_token is None:
            return
        connected = self.connected
        step = self.h.closed(reason)
        self.check_lost(step, reason, connected, closed_by_core=False)
        self.after(step, network=True)

    def late_report(self, which: str) -> None:
        """A report for a token the core is done with changes nothing (I10)."""
        token = self.h.token
        if token is None or token < 2:
            return
        old = token - 1
        if which == "opened":
            step = self.h.opened(token=old)
        elif which == "failed":
            step = self.h.failed(token=old)
        else:
            step = self.h.closed(token=old)
        assert step.sent == [] and step.events == [], step

    def tick(self, seconds: float) -> None:
        self.after(self.h.tick(seconds), network=True)

    def until_deadline(self) -> None:
        if self.h.conn.next_deadline() is not None:
            self.after(self.h.until_deadline(), network=True)

    def user(self, call: Callable[[], Step]) -> None:
        """A user call: it may raise a documented error, and then it changed nothing."""
        try:
            step = call()
        except USER_ERRORS:
            return
        self.after(step, network=False)

    # -- the server's side ------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> None:
        """Feed one message to the open transport and check its outcome against the codecs."""
        if self.open_token is None:
            self.advance()
            return
        connected = self.connected
        expect, packet = self.predict(frame)
        step = self.h.receive(frame)
        if expect is Expect.PONG:
            assert isinstance(frame, str)
            assert step.sent == ["3" + frame[1:]] and step.events == [], step
        elif expect is Expect.IGNORED:
            assert step.sent == [] and step.events == [], step
        elif expect is Expect.HANDSHAKE:
            assert step.events == [], step
            assert len(step.sent) == 1 and str(step.sent[0]).startswith("40"), step
            self.engine_open = True
        elif expect is Expect.PACKET:
            assert packet is not None
            self.check_packet(packet, connected, step)
        else:
            self.check_lost(step, expect.value, connected, closed_by_core=True)
        self.after(step, network=True)

    def predict(self, frame: str | bytes) -> tuple[Expect, Packet | None]:
        """The outcome the codecs (and the shadow decoder) predict for ``frame``."""
        packet: Packet | None
        if isinstance(frame, str):
            kind = frame[:1]
            if kind == "2":
                return Expect.PONG, None
            if kind in ("3", "5", "6"):
                return Expect.IGNORED, None
            if kind == "1":
                return Expect.CLOSE, None
            if kind == "0":
                if self.engine_open:
                    return Expect.PARSE_ERROR, None  # a second handshake
                try:
                    parse_handshake(frame[1:])
                except DecodeError:
                    return Expect.PARSE_ERROR, None
                return Expect.HANDSHAKE, None
            if kind not in ("4", "b") or not self.engine_open:
                return Expect.PARSE_ERROR, None
            try:
                if kind == "4":
                    packet = self.shadow.feed_text(frame[1:])
                else:
                    data = decode_engine_packet(frame).data
                    assert isinstance(data, bytes)
                    packet = self.shadow.feed_binary(data)
            except DecodeError:
                return Expect.PARSE_ERROR, None
        else:
            if not self.engine_open:
                return Expect.PARSE_ERROR, None
            try:
                packet = self.shadow.feed_binary(frame)
            except DecodeError:
                return Expect.PARSE_ERROR, None
        assert 0 <= self.shadow.awaiting_attachments <= MAX_ATTACHMENTS
        if packet is None:
            return Expect.IGNORED, None
        return Expect.PACKET, packet

    # -- the checks -------------------------------------------------------------------------

    def check_packet(self, packet: Packet, connected: bool, step: Step) -> None:
        """A whole packet: what the core did with it must be what specs/core.md says."""
        if packet.namespace != self.options.namespace:
            assert step.sent == [] and step.events == [], step  # not ours to handle
            return
        kind = packet.type
        data = packet.data
        if kind is PacketType.EVENT:
            if connected:
                (received,) = step.events
                assert type(received) is EventReceived, step
                assert received.ack_id == packet.id
                if type(data[0]) is str:
                    assert received.name == data[0]
                if packet.id is not None:
                    self.server_ack_ids.append(packet.id)
            elif step.events:
                # Held events are bounded by count and by max_buffered_bytes.
                self.check_lost(step, "parse error", connected, closed_by_core=True)
            else:
                self.held += 1
        elif kind is PacketType.ACK:
            assert step.sent == []
            assert [type(e) for e in step.events] in ([], [AckReceived]), step
            if step.events:
                assert connected
                received_ack = step.events[0]
                assert type(received_ack) is AckReceived and received_ack.call_id == packet.id
                # typed_tokens, not ==: the arguments may nest 1000 levels deep.
                assert typed_tokens(list(received_ack.args)) == typed_tokens(data)
        elif kind is PacketType.CONNECT:
            sid = data.get("sid") if isinstance(data, dict) else None
            if connected or not isinstance(sid, str):
                self.check_lost(step, "parse error", connected, closed_by_core=True)
                return
            assert self.connected, step
            assert step.of(SocketConnected) == [SocketConnected(sid, self.h.conn.recovered)]
            assert len(step.of(EventReceived)) == self.held, "held events were lost"
            self.held = 0
            for received in step.of(EventReceived):
                if received.ack_id is not None:
                    self.server_ack_ids.append(received.ack_id)
        elif kind is PacketType.CONNECT_ERROR or not connected:
            # A refusal (CONNECT_ERROR, or python-socketio's DISCONNECT before the reply).
            if kind is PacketType.CONNECT_ERROR and connected:
                self.check_lost(step, "parse error", connected, closed_by_core=True)
                return
            failures = step.of(ConnectFailed)
            assert len(failures) == 1 and failures[0].error.refused, step
            assert CloseTransport(self.open_token) in step.events  # type: ignore[arg-type]
            assert self.h.state is State.CLOSED
            self._transport_gone()
        else:  # DISCONNECT while connected: the server ends the session, no reconnect
            assert step.of(SocketDisconnected) == [SocketDisconnected("io server disconnect")]
            assert CloseTransport(self.open_token) in step.events  # type: ignore[arg-type]
            assert self.h.state is State.CLOSED
            self._transport_gone()

    def check_lost(self, step: Step, reason: str, connected: bool, *, closed_by_core: bool) -> None:
        """The connection (or the attempt) ended for ``reason``, as specs/core.md orders it."""
        if closed_by_core:
            assert CloseTransport(self.open_token) in step.events, (reason, step)  # type: ignore[arg-type]
        if connected:
            assert step.of(SocketDisconnected) == [SocketDisconnected(reason)], (reason, step)
        else:
            failures = step.of(ConnectFailed)
            assert [f.error.message for f in failures] == [reason], (reason, step)
        assert self.h.state in (State.RECONNECTING, State.CLOSED), (reason, step)
        if self.h.state is State.CLOSED and self.options.reconnection:
            assert step.of(ReconnectFailed) == [ReconnectFailed()], step
        self._transport_gone()

    def after(self, step: Step, *, network: bool) -> None:
        """What holds after every call, whatever it was."""
        for e in step.events:
            if type(e) is CloseTransport and e.token == self.open_token:
                self._transport_gone()
            elif type(e) is SocketDisconnected:
                assert e.reason in DISCONNECT_REASONS, e
            elif type(e) is MessageDropped:
                # Only a server's maxPayload, announced smaller than what was buffered before
                # it, drops a buffered message on a network input (specs/bounds.md).
                assert not network or e.reason == "too large", (
                    f"a network input dropped a buffered message: {e}"
                )
        conn = self.h.conn
        if conn.state in LIVE_STATES:
            assert conn.next_deadline() is not None, "no deadline: the connection would hang"
        assert conn.is_connected == (conn.state is State.CONNECTED) == (conn.sid is not None)
        assert conn.buffered <= self.options.max_buffered
        assert conn.buffered_bytes <= self.options.max_buffered_bytes
        assert conn.data_to_send() == [] and conn.drain_events() == []


# --------------------------------------------------------------------------------------------
# Histories
# --------------------------------------------------------------------------------------------

#: Options that change how the core reacts to bad input: reconnection on or off, a few
#: attempts only, another namespace, small buffers (the held-events limit), no buffering.
core_options = st.builds(
    CoreOptions,
    namespace=st.sampled_from(["/", "/", "/admin"]),
    reconnection=st.sampled_from([True, True, False]),
    reconnection_attempts=st.sampled_from([None, None, 0, 2]),
    max_buffered=st.sampled_from([10_000, 3]),
    max_buffered_bytes=st.sampled_from([16 * 1024 * 1024, 16 * 1024 * 1024, 200]),
    overflow=st.sampled_from(list(OverflowPolicy)),
    buffer_messages=st.sampled_from([True, True, False]),
    auto_join_channels=st.booleans(),
)

_user_values = st.one_of(
    st.none(),
    st.integers(-(2**70), 2**70),
    st.floats(),  # NaN and infinities are the caller's error: ValueError
    st.text(max_size=6),
    st.binary(max_size=6),
    st.sampled_from([{1, 2}, object(), "\ud800", [[[]]]]),
)
_user_names = st.sampled_from(["e", "message", "connect", "", "join", "\ud800"]) | st.just(1)


def _user_step(data: st.DataObject, fuzzer: CoreFuzzer) -> None:
    h = fuzzer.h
    action = data.draw(
        st.sampled_from(
            [
                "emit",
                "call",
                "ack",
                "join",
                "leave",
                "send",
                "broadcast",
                "profile",
                "close",
                "open",
            ]
        )
    )
    name: Any = data.draw(_user_names)
    value = data.draw(_user_values)
    if action == "emit":
        fuzzer.user(lambda: h.emit(name, value))
    elif action == "call":
        timeout = data.draw(st.sampled_from([None, 1.0, 0.0, -1.0, math.nan]))
        fuzzer.user(lambda: h.call(name, value, timeout=timeout)[1])
    elif action == "ack":
        ack_id = data.draw(st.sampled_from([*fuzzer.server_ack_ids[-3:], 0, MAX_ACK_ID + 1]))
        fuzzer.user(lambda: h.ack(ack_id, value))
    elif action in ("join", "leave"):
        channel: Any = data.draw(st.sampled_from(["a", "b", "", 1]))
        echo: Any = data.draw(st.sampled_from([None, True, False, "yes"]))
        fuzzer.user(lambda: (h.join if action == "join" else h.leave)(channel, echo))
    elif action == "send":
        fuzzer.user(lambda: h.send("a", name, value))
    elif action == "broadcast":
        fuzzer.user(lambda: h.broadcast(name, value))
    elif action == "profile":
        fuzzer.user(lambda: h.update_profile(value))
    elif action == "close":
        fuzzer.user(h.close)
    else:
        fuzzer.user(h.open)


def _frames_for(data: st.DataObject, fuzzer: CoreFuzzer, deep: bool) -> list[str | bytes]:
    """The server's next message(s), drawn for where the connection is: well formed often
    enough to get connected and stay so, malformed often enough to test every state."""
    nsp = fuzzer.options.namespace
    if not fuzzer.engine_open:
        choice = data.draw(st.integers(0, 9))
        if choice <= 5:
            interval = data.draw(st.sampled_from([25_000, 25_000, 0, 1, 2**63]))
            return [engine_open(ping_interval=interval, ping_timeout=20_000)]
        if choice <= 7:
            return [data.draw(handshakes(deep))]
        return [data.draw(server_frames(deep))]
    choice = data.draw(st.integers(0, 19))
    if choice <= 4 and not fuzzer.connected:
        sid = data.draw(st.sampled_from(["sio-1", "sio-1", "", "\ud800"]))
        pid = data.draw(st.sampled_from([None, None, "p"]))
        return [connect_reply(sid, pid=pid, namespace=nsp)]
    if choice <= 6:
        ack_id = data.draw(st.sampled_from([None, None, 0, 7]))
        return [event("e", data.draw(st.integers()), ack_id=ack_id, namespace=nsp)]
    if choice == 7:
        return ["4" + data.draw(socketio_packets(deep))]
    if choice == 8:
        count = data.draw(st.integers(1, 3))
        placeholders = ",".join(f'{{"_placeholder":true,"num":{n}}}' for n in range(count))
        header = f"45{count}-" + ("" if nsp == "/" else nsp + ",") + f'["bin",{placeholders}]'
        attachments = data.draw(st.lists(binary_frames, min_size=0, max_size=count + 1))
        return [header, *attachments]
    if choice == 9:
        return [ack(data.draw(st.integers(0, 5)), "ok", namespace=nsp)]
    if choice == 10:
        return ["2"]
    if choice == 11:
        return [connect_error({"message": "no"}, namespace=nsp)]
    if choice == 12:
        return [disconnect(namespace=nsp)]
    if choice <= 15:
        return [data.draw(mutated("4" + data.draw(socketio_packets(deep))))]
    if deep and choice <= 17:  # a well-formed EVENT around a deeply nested value
        return ["42" + ("" if nsp == "/" else nsp + ",") + data.draw(event_payloads(deep))]
    return [data.draw(server_frames(deep))]


def run_history(data: st.DataObject, *, max_steps: int = 40, deep: bool = False) -> CoreFuzzer:
    """Draw and play one history; every step checks the invariant (module docstring).

    ``deep``: JSON values nested around the 1024-level limit too (``frames.py``).
    """
    with process_recursion_limit():
        return _play_history(data, max_steps, deep)


def _play_history(data: st.DataObject, max_steps: int, deep: bool) -> CoreFuzzer:
    fuzzer = CoreFuzzer(data.draw(core_options))
    fuzzer.advance()
    for _ in range(data.draw(st.integers(1, max_steps))):
        kind = data.draw(st.integers(0, 19))
        if kind <= 11:
            if fuzzer.open_token is None:
                fuzzer.advance()
            else:
                for frame in _frames_for(data, fuzzer, deep):
                    fuzzer.receive(frame)
        elif kind <= 13:
            _user_step(data, fuzzer)
        elif kind == 14:
            fuzzer.transport_failed()
        elif kind == 15:
            reason = data.draw(st.sampled_from(["transport close", "transport error"]))
            fuzzer.transport_closed(reason)
        elif kind == 16:
            fuzzer.late_report(data.draw(st.sampled_from(["opened", "failed", "closed"])))
        elif kind == 17:
            fuzzer.tick(data.draw(st.sampled_from([0.0, 0.5, 5.0, 30.0, 50.0, 1e6])))
        else:
            fuzzer.until_deadline()
    return fuzzer
