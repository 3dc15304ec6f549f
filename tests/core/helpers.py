"""A scripted server and a fake clock for driving :class:`tether.core.Connection` in tests.

The frames are written out by hand (compact JSON, the Engine.IO type digit in front), not
produced by tether's own encoder, so the core's tests do not trust the code they test.

:class:`Harness` plays the driver's part of the contract in ``specs/core.md``: after every
call into the core it drains :meth:`~tether.core.Connection.data_to_send` and then
:meth:`~tether.core.Connection.drain_events`, and it answers :class:`~tether.core.OpenTransport`
with the token the core handed out. Each call returns a :class:`Step` holding what that one
call produced; ``sent`` and ``events`` keep the whole history.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

from tether.core import (
    CloseTransport,
    Connection,
    CoreOptions,
    Event,
    EventReceived,
    OpenTransport,
    State,
)

T = TypeVar("T")

#: ``TETHER_EXPLORE=1``: let the property tests explore afresh, ten times longer.
EXPLORE = bool(os.environ.get("TETHER_EXPLORE"))


def property_settings(max_examples: int, **options: Any) -> settings:
    """Settings for the core's property tests.

    Deterministic by default (``derandomize``), so CI is never red or green by luck and
    ``tests/core`` stays fast; set ``TETHER_EXPLORE=1`` to search new random histories.
    """
    return settings(
        max_examples=max_examples * (10 if EXPLORE else 1),
        derandomize=not EXPLORE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        **options,
    )


# --------------------------------------------------------------------------------------------
# Frames a server sends (each one WebSocket message)
# --------------------------------------------------------------------------------------------

PING = "2"
ENGINE_CLOSE = "1"
NOOP = "6"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def engine_open(
    *,
    sid: str = "eio-sid",
    ping_interval: int = 25_000,
    ping_timeout: int = 20_000,
    max_payload: int | None = 1_000_000,
) -> str:
    """The Engine.IO OPEN packet (handshake) a server sends first."""
    handshake: dict[str, Any] = {
        "sid": sid,
        "upgrades": [],
        "pingInterval": ping_interval,
        "pingTimeout": ping_timeout,
    }
    if max_payload is not None:
        handshake["maxPayload"] = max_payload
    return "0" + dumps(handshake)


def _nsp(namespace: str) -> str:
    return "" if namespace == "/" else namespace + ","


def connect_reply(sid: str = "sio-1", *, pid: str | None = None, namespace: str = "/") -> str:
    """The namespace CONNECT reply (``40{"sid":...}``), with a CSR ``pid`` if given."""
    data: dict[str, Any] = {"sid": sid}
    if pid is not None:
        data["pid"] = pid
    return "40" + _nsp(namespace) + dumps(data)


def connect_error(payload: Any, *, namespace: str = "/") -> str:
    """CONNECT_ERROR: Node sends ``{message, data?}``, python-socketio may send a string."""
    return "44" + _nsp(namespace) + dumps(payload)


def disconnect(payload: Any = None, *, namespace: str = "/") -> str:
    """DISCONNECT from the server (python-socketio's ``always_connect`` adds a payload)."""
    return "41" + _nsp(namespace) + ("" if payload is None else dumps(payload))


def event(name: str, *args: Any, ack_id: int | None = None, namespace: str = "/") -> str:
    """An EVENT the server emits; ``ack_id`` asks the client for an ACK."""
    ack = "" if ack_id is None else str(ack_id)
    return "42" + _nsp(namespace) + ack + dumps([name, *args])


def ack(ack_id: int, *args: Any, namespace: str = "/") -> str:
    """The server's ACK for the client's call ``ack_id``."""
    return "43" + _nsp(namespace) + str(ack_id) + dumps(list(args))


def sent_event(name: str, *args: Any, ack_id: int | None = None, namespace: str = "/") -> str:
    """The frame the client writes for an EVENT (for comparisons with ``Harness.sent``)."""
    return event(name, *args, ack_id=ack_id, namespace=namespace)


def connect_request(auth: Mapping[str, Any] | None = None, *, namespace: str = "/") -> str:
    """The namespace CONNECT the client writes after the handshake."""
    return "40" + _nsp(namespace) + ("" if auth is None else dumps(dict(auth)))


def decode_sent(frame: str | bytes) -> tuple[str, Any]:
    """Split a text frame the client wrote into (prefix, JSON payload) for loose checks.

    ``42["join",{...}]`` gives ``("42", ["join", {...}])``; ``3`` (a pong) gives ``("3", None)``.
    """
    assert isinstance(frame, str)
    for i, char in enumerate(frame):
        if char in "[{":
            return frame[:i], json.loads(frame[i:])
    return frame, None


# --------------------------------------------------------------------------------------------
# The driver's side
# --------------------------------------------------------------------------------------------


@dataclass
class Clock:
    """A monotonic clock that only moves when told to."""

    now: float = 1000.0

    def advance(self, seconds: float) -> float:
        assert seconds >= 0
        self.now += seconds
        return self.now


@dataclass
class Step:
    """What one call into the core produced."""

    sent: list[str | bytes]
    events: list[Event]

    def of(self, kind: type[T]) -> list[T]:
        """The events of exactly this type, in order."""
        return [e for e in self.events if type(e) is kind]


@dataclass
class Harness:
    """A :class:`Connection` with a fake clock, drained after every call."""

    options: CoreOptions = field(default_factory=CoreOptions)
    #: What the core's ``random`` callable returns (the backoff jitter draw).
    draw: float = 0.5
    clock: Clock = field(default_factory=Clock)
    sent: list[str | bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    #: The token of the last OpenTransport, and whether its attempt is still under way.
    token: int | None = None
    attempting: bool = False
    #: Whether the driver takes what the core has to send after every call. ``False`` plays
    #: a driver whose writes lag behind: the messages stay in the core's outbox.
    writing: bool = True

    def __post_init__(self) -> None:
        self.conn = Connection(self.options, random=lambda: self.draw)

    @classmethod
    def with_options(cls, **options: Any) -> Harness:
        return cls(CoreOptions(**options))

    # -- the drain-after-every-call rule ----------------------------------------------------

    def run(self, call: Callable[[], object]) -> Step:
        """Make one call into the core and drain it.

        A call that raises must have changed nothing: there is nothing to drain after it.
        """
        try:
            call()
        except Exception:
            leftover = self.drain()
            assert leftover.sent == [] and leftover.events == [], leftover
            raise
        return self.drain()

    def drain(self) -> Step:
        sent = self.conn.data_to_send() if self.writing else []
        step = Step(sent, self.conn.drain_events())
        self.sent.extend(step.sent)
        self.events.extend(step.events)
        for e in step.events:
            if type(e) is OpenTransport:
                self.token = e.token
                self.attempting = True
            elif type(e) is CloseTransport and e.token == self.token:
                self.attempting = False
        return step

    @property
    def now(self) -> float:
        return self.clock.now

    @property
    def state(self) -> State:
        return self.conn.state

    # -- user calls -------------------------------------------------------------------------

    def open(self) -> Step:
        return self.run(lambda: self.conn.open(now=self.now))

    def close(self) -> Step:
        return self.run(lambda: self.conn.close(now=self.now))

    def emit(self, name: str, *args: Any) -> Step:
        return self.run(lambda: self.conn.emit(name, *args, now=self.now))

    def call(
        self, name: str, *args: Any, timeout: float | None = None, **tries: Any
    ) -> tuple[int, Step]:
        ids: list[int] = []
        step = self.run(
            lambda: ids.append(self.conn.call(name, *args, timeout=timeout, now=self.now, **tries))
        )
        return ids[0], step

    def join(self, channel: str, echo: bool | None = None) -> Step:
        return self.run(lambda: self.conn.join(channel, echo, now=self.now))

    def leave(self, channel: str, echo: bool | None = None) -> Step:
        return self.run(lambda: self.conn.leave(channel, echo, now=self.now))

    def send(self, channel: str, name: str, message: Any, echo: bool | None = None) -> Step:
        return self.run(lambda: self.conn.send(channel, name, message, echo, now=self.now))

    def broadcast(self, name: str, message: Any, echo: bool | None = None) -> Step:
        return self.run(lambda: self.conn.broadcast(name, message, echo, now=self.now))

    def update_profile(self, data: Any, echo: bool | None = None) -> Step:
        return self.run(lambda: self.conn.update_profile(data, echo, now=self.now))

    def ack(self, ack_id: int, *args: Any) -> Step:
        return self.run(lambda: self.conn.ack(ack_id, *args))

    # -- transport happenings ---------------------------------------------------------------

    def opened(self, auth: Mapping[str, Any] | None = None, *, token: int | None = None) -> Step:
        tok = self.token if token is None else token
        assert tok is not None
        return self.run(lambda: self.conn.transport_opened(tok, auth, now=self.now))

    def failed(self, message: str = "connection refused", *, token: int | None = None) -> Step:
        tok = self.token if token is None else token
        assert tok is not None
        step = self.run(lambda: self.conn.transport_failed(tok, message, now=self.now))
        if tok == self.token and step.events:  # the core took it: the attempt is over
            self.attempting = False
        return step

    def closed(self, reason: str = "transport close", *, token: int | None = None) -> Step:
        tok = self.token if token is None else token
        assert tok is not None
        step = self.run(lambda: self.conn.transport_closed(tok, reason, now=self.now))
        if tok == self.token and step.events:  # the core took it: the attempt is over
            self.attempting = False
        return step

    def receive(self, *messages: str | bytes) -> Step:
        def feed() -> None:
            for message in messages:
                self.conn.receive(message, now=self.now)

        return self.run(feed)

    # -- time -------------------------------------------------------------------------------

    def tick(self, seconds: float = 0.0) -> Step:
        """Move the clock by ``seconds`` and run the timer, as a driver's timer loop would."""
        self.clock.advance(seconds)
        return self.run(lambda: self.conn.handle_timer(now=self.now))

    def until_deadline(self) -> Step:
        """Jump to the core's next deadline and run the timer there."""
        deadline = self.conn.next_deadline()
        assert deadline is not None, "the core has no deadline"
        self.clock.now = max(self.clock.now, deadline)
        return self.run(lambda: self.conn.handle_timer(now=self.now))

    # -- scripted sequences -----------------------------------------------------------------

    def handshake(
        self,
        auth: Mapping[str, Any] | None = None,
        *,
        ping_interval: int = 25_000,
        ping_timeout: int = 20_000,
        max_payload: int | None = 1_000_000,
    ) -> Step:
        """Transport opened and Engine.IO OPEN received: the core has sent its CONNECT."""
        first = self.opened(auth)
        second = self.receive(
            engine_open(
                ping_interval=ping_interval, ping_timeout=ping_timeout, max_payload=max_payload
            )
        )
        return Step(first.sent + second.sent, first.events + second.events)

    def connect(
        self,
        sid: str = "sio-1",
        *,
        pid: str | None = None,
        auth: Mapping[str, Any] | None = None,
        ping_interval: int = 25_000,
        ping_timeout: int = 20_000,
    ) -> Step:
        """From IDLE/CLOSED (open first) or a pending attempt, all the way to CONNECTED.

        Returns what the CONNECT reply produced (the post-connect flush and the events).
        """
        if self.state in (State.IDLE, State.CLOSED):
            self.open()
        elif not self.attempting:
            self.until_deadline()  # the backoff delay: the retry starts the next attempt
        assert self.attempting
        self.handshake(auth, ping_interval=ping_interval, ping_timeout=ping_timeout)
        step = self.receive(connect_reply(sid, pid=pid, namespace=self.options.namespace))
        assert self.state is State.CONNECTED, self.events[-5:]
        return step

    def last(self, kind: type[T]) -> T | None:
        for e in reversed(self.events):
            if type(e) is kind:
                return e
        return None

    def received(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Every EventReceived so far, as (name, args)."""
        return [(e.name, e.args) for e in self.events if type(e) is EventReceived]
