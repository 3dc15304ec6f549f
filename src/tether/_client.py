"""The driver: :class:`RealtimeClient` runs the sans-IO core on anyio (asyncio or trio).

Theory of operation
-------------------

The core (:class:`tether.core.Connection`) decides everything; this module only moves data
and time in and out of it. After **every** call into the core, :meth:`RealtimeClient._pump`
drains the core's outbox and events:

* outgoing messages go to the current transport *session*'s write queue, and are written
  by whoever finds no write under way: the reader (the namespace CONNECT, before the
  connect), ``call()`` (its own packet), or else a writer task started for them;
* ``OpenTransport`` starts a session task (credentials → connect → read until closed);
* ``CloseTransport`` tells that session to flush what it has queued and close;
* facts for the user (connect, disconnect, events ...) go to the dispatcher's queue, except
  the bookkeeping that must be immediate (ack results, ``wait_connected`` wake-ups);
* if the core's next deadline moved earlier, whoever keeps the deadlines learns of it: the
  connected reader (its transport's read deadline), the timer task (woken), or a new timer
  task when nobody keeps that deadline.

One anyio task group per client holds one task per transport session (connect, then read)
and, only while they have work, the timer (backoff waits, deadlines nobody else keeps), the
dispatcher and a writer. A connecting session keeps its own attempt's timeout; from its
first read the session's reader keeps every deadline through the transport's read deadline
(specs/client.md). An idle connected client has one task (a task costs about 3.5 KB).
Listener calls run only in the dispatcher, never on the reader, so a slow listener cannot
delay a pong (contract 2.3); the dispatcher's queue is bounded, and when it is full the
reader stops reading (TCP backpressure) rather than letting memory grow.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
import ssl as _ssl
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeVar, overload

import anyio
import anyio.abc
import anyio.lowlevel

from ._listeners import Listener, ListenerRegistry
from ._url import build_websocket_url, redact_url
from .core import (
    AckFailed,
    AckReceived,
    CloseTransport,
    ConnectError,
    ConnectFailed,
    Connection,
    CoreOptions,
    DisconnectReason,
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
    TetherError,
)
from .transport import Connector, Transport, TransportError, WebSocketConnector

__all__ = ["EventStream", "EventsOverflow", "Member", "RealtimeClient", "StateChange"]

logger = logging.getLogger("tether")

#: ``on_state_change`` receives the core's :class:`~tether.core.StateChanged` fact.
StateChange = StateChanged

F = TypeVar("F", bound=Callable[..., Any])

#: How many user-facing events may wait for the dispatcher before the reader pauses.
DISPATCH_QUEUE_LIMIT: Final = 10_000
#: How long a closing session may spend finishing the write under way (see ``_reap``).
CLOSE_WRITE_GRACE: Final = 2.0
#: How long ``aclose()`` lets the dispatcher deliver the last events (disconnect ...).
CLOSE_DRAIN_TIMEOUT: Final = 5.0

_LIFECYCLE_EVENTS: Final = {
    SocketConnected: "connect",
    SocketDisconnected: "disconnect",
    ConnectFailed: "connect_error",
    ReconnectAttemptStarted: "reconnect_attempt",
    Reconnected: "reconnect",
    ReconnectFailed: "reconnect_failed",
    StateChanged: "state_change",
    MessageDropped: "buffer_overflow",
}

#: The backoff jitter source of every client: no state to copy per client (a Mersenne Twister
#: is 2.5 KB), nothing a ``random.seed()`` in user code could synchronise, and safe across
#: fork (each draw reads the OS).
_JITTER: Final = random.SystemRandom().random

AuthSource = Mapping[str, Any] | Callable[[], Any] | None
StrMapSource = Mapping[str, str] | Callable[[], Any] | None


class EventsOverflow(TetherError):
    """An ``events()`` iterator's queue overflowed: its consumer fell behind."""


@dataclass(frozen=True, slots=True)
class Member:
    """A channel member as ``get_members`` returns it: the sid and the shared profile."""

    id: str
    data: Any


class _Session:
    """One transport: from connecting to closed. Owned by one task, which connects and then
    reads; writes are made by whichever task finds the session not ``writing``."""

    __slots__ = ("attempt", "closing", "outgoing", "task", "token", "transport", "writing")

    def __init__(self, token: int, attempt: int) -> None:
        self.token = token
        self.attempt = attempt
        self.transport: Transport | None = None
        self.outgoing: list[str | bytes] = []
        #: A task is writing ``outgoing`` (it writes until it is empty); at most one at once.
        self.writing = False
        self.closing = False
        # The session's task, cancelled to end the session (its handle's own cancel scope:
        # no scope of ours, 0.6 KB, per connection).
        self.task: anyio.TaskHandle[None] | None = None

    def close(self) -> None:
        self.closing = True
        if not self.writing:
            # Still connecting (abandon the attempt), or nothing left to write: end the
            # session now. Otherwise the writer flushes what is queued, then ends it.
            self.end()

    def end(self) -> None:
        """Cancel the session's task: it closes the transport and ends."""
        if self.task is not None:
            self.task.cancel()


class _CallWaiter:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: tuple[Any, ...] = ()
        self.error: BaseException | None = None


class EventStream:
    """An async iterator over incoming events, from :meth:`RealtimeClient.events`.

    Yields ``(name, args)``. Its queue holds ``max_queued`` events; when the consumer falls
    further behind, iteration raises :class:`EventsOverflow` (after the queued events) instead
    of growing without bound or silently dropping events. The client holds the stream weakly:
    dropping it, or calling :meth:`aclose` / leaving ``async with``, unsubscribes it.
    """

    __slots__ = ("__weakref__", "_closed", "_names", "_overflowed", "_queue", "_size", "_wake")

    def __init__(self, names: frozenset[str], size: int) -> None:
        if size < 1:
            raise ValueError(f"max_queued must be >= 1, got {size}")
        self._names = names
        self._size = size
        self._queue: deque[tuple[str, tuple[Any, ...]]] = deque()
        self._wake = anyio.Event()
        self._overflowed = False
        self._closed = False

    def _push(self, name: str, args: tuple[Any, ...]) -> None:
        if self._closed or (self._names and name not in self._names):
            return
        if len(self._queue) >= self._size:
            self._overflowed = True
        else:
            self._queue.append((name, args))
        self._wake.set()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> tuple[str, tuple[Any, ...]]:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._overflowed:
                self._overflowed = False
                raise EventsOverflow(f"more than {self._size} events were waiting")
            if self._closed:
                raise StopAsyncIteration
            self._wake = anyio.Event()
            await self._wake.wait()

    async def aclose(self) -> None:
        self._closed = True
        self._wake.set()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class RealtimeClient:
    """A Socket.IO client that stays connected: ``async with RealtimeClient(url) as rt``.

    See the contract (README, "Options") for every option. The client is not thread-safe:
    use it from the event loop that entered it.
    """

    # Slots: 31 attributes would unshare CPython's instance dict (1.6 KB per client).
    # A subclass may still add attributes of its own.
    __slots__ = (
        "__weakref__",
        "_auth",
        "_auto_connect",
        "_caller_woken",
        "_calls",
        "_changed",
        "_connect_keeper",
        "_connector",
        "_core",
        "_dispatch",
        "_dispatch_idle",
        "_dispatch_space",
        "_dispatching",
        "_early_facts",
        "_final_error",
        "_headers",
        "_last_error",
        "_listeners",
        "_max_message_size",
        "_path",
        "_query",
        "_session",
        "_sessions_done",
        "_sessions_running",
        "_ssl",
        "_streams",
        "_task_group",
        "_timer_reader",
        "_timer_running",
        "_timer_target",
        "_timer_wake",
        "_url",
        "_user_event_listeners",
        "_ws_url",
    )

    def __init__(
        self,
        url: str,
        *,
        path: str = "/socket.io/",
        namespace: str = "/",
        auth: AuthSource = None,
        headers: StrMapSource = None,
        query: StrMapSource = None,
        reconnection: bool = True,
        reconnection_attempts: int | None = None,
        reconnection_delay: float = 1.0,
        reconnection_delay_max: float = 5.0,
        randomization_factor: float = 0.5,
        timeout: float = 20.0,
        auto_connect: bool = True,
        buffer_messages: bool = True,
        max_buffered: int = 10_000,
        max_buffered_bytes: int = 16 * 1024 * 1024,
        overflow: OverflowPolicy | str = OverflowPolicy.RAISE,
        echo_messages: bool = True,
        auto_join_channels: bool = True,
        ssl: _ssl.SSLContext | None = None,
        max_message_size: int = 1_000_000,
        transport: Connector | str = "wsproto",
    ) -> None:
        # Validate everything here, at the caller's line (contract 2.1).
        static_query = query if isinstance(query, Mapping) else None
        ws_url = build_websocket_url(url, path=path, query=_as_str_map(static_query, "query"))
        # Without a query callable the URL is the same for every attempt: build it once.
        self._ws_url = None if callable(query) else ws_url
        self._url = url
        self._path = path
        self._auth = _check_source(auth, "auth")
        self._headers = _check_source(headers, "headers")
        self._query = _check_source(query, "query")
        if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext or None, got {type(ssl).__name__}")
        self._ssl = ssl
        if isinstance(max_message_size, bool) or not isinstance(max_message_size, int):
            raise TypeError("max_message_size must be an int")
        if max_message_size < 1:
            raise ValueError(f"max_message_size must be >= 1, got {max_message_size}")
        self._max_message_size = max_message_size
        self._auto_connect = bool(auto_connect)
        self._connector = _make_connector(transport)
        self._core = Connection(
            CoreOptions(
                namespace=namespace,
                reconnection=reconnection,
                reconnection_attempts=reconnection_attempts,
                reconnection_delay=reconnection_delay,
                reconnection_delay_max=reconnection_delay_max,
                randomization_factor=randomization_factor,
                timeout=timeout,
                buffer_messages=buffer_messages,
                max_buffered=max_buffered,
                max_buffered_bytes=max_buffered_bytes,
                overflow=OverflowPolicy(overflow),
                echo_messages=echo_messages,
                auto_join_channels=auto_join_channels,
            ),
            random=_JITTER,
        )
        self._listeners = ListenerRegistry()
        self._user_event_listeners: list[Listener] = []
        self._streams: weakref.WeakSet[EventStream] | None = None  # made by events()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._session: _Session | None = None
        self._sessions_running = 0
        # Events that someone waits on only now and then are made by the waiter and dropped
        # when set (a pulse): an idle client holds none of them (about 0.9 KB each).
        self._sessions_done: anyio.Event | None = None
        # The deadlines (heartbeat, connect and ack timeouts, backoff) are kept by a timer
        # task, except while a connected session reads: then its reader keeps them through
        # the transport's read deadline, and the timer task is not running (a task is about
        # 3.5 KB: an idle connected client has only its reader).
        self._timer_target = math.inf  # the deadline the timer or the reader waits for
        self._timer_running = False
        self._timer_wake: anyio.Event | None = None  # while the timer task waits
        self._timer_reader: Transport | None = None  # whose reader keeps the deadlines
        # The session whose task keeps its own attempt's timeout while it connects (when no
        # timer task runs): a connect then starts no timer task at all.
        self._connect_keeper: _Session | None = None
        # Facts for the dispatcher; it takes the whole list at once (a list, not a deque:
        # 0.6 KB less on every client).
        self._dispatch: list[Any] = []
        self._early_facts: list[Any] | None = None  # see __aenter__
        self._dispatching = False  # a dispatcher task is running
        self._dispatch_space: anyio.Event | None = None
        self._dispatch_idle: anyio.Event | None = None
        self._changed: anyio.Event | None = None
        self._final_error: ConnectError | None = None
        self._last_error: ConnectError | None = None
        self._calls: dict[int, _CallWaiter] = {}
        self._caller_woken = False  # the reader lets it run before reading on

    def __repr__(self) -> str:
        # Never the query, headers or auth: they may hold secrets (contract 2.6).
        return f"<RealtimeClient {redact_url(self._url)} state={self.state.value}>"

    # ------------------------------------------------------------------ context manager

    async def __aenter__(self) -> RealtimeClient:
        if self._task_group is not None:
            raise RuntimeError("this RealtimeClient is already entered")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        if self._dispatch:  # facts from before entering (a close())
            self._start_dispatcher()
        if self._auto_connect:
            # The facts of this open() (idle -> connecting) are held until the next fact and
            # then go to the listeners registered by then: those added right after
            # `async with ... as rt:` see them, and nobody listening costs no dispatcher.
            self._early_facts = []
            self.open()  # first: the session task starts connecting before the timer
            if not self._early_facts:
                self._early_facts = None
        self._ensure_timer()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group = self._task_group
        assert task_group is not None
        try:
            with anyio.CancelScope(shield=True):
                await self.aclose()
        finally:
            task_group.cancel_scope.cancel()
            self._task_group = None
        return await task_group.__aexit__(exc_type, exc, tb)

    # ------------------------------------------------------------------ connection management

    @property
    def state(self) -> State:
        return self._core.state

    def is_connected(self) -> bool:
        return self._core.is_connected

    @property
    def socket_id(self) -> str | None:
        return self._core.sid

    def get_socket_id(self) -> str | None:
        return self._core.sid

    @property
    def recovered(self) -> bool:
        """Whether the last connect restored the previous session (connection state recovery)."""
        return self._core.recovered

    @property
    def buffered(self) -> int:
        """How many messages wait in the offline buffer."""
        return self._core.buffered

    def open(self) -> None:
        """Start connecting from ``idle`` or ``closed``; idempotent otherwise. Non-blocking."""
        if self._task_group is None:
            raise RuntimeError("enter the client first: `async with RealtimeClient(...) as rt`")
        self._final_error = self._last_error = None
        self._core.open(now=anyio.current_time())
        self._pump()

    def close(self) -> None:
        """Close on purpose and stay closed until :meth:`open`. Idempotent, non-blocking."""
        self._core.close(now=self._now())
        self._pump()

    async def aclose(self) -> None:
        """Close and wait until the transport is gone and the last events were delivered."""
        self.close()
        if self._sessions_running:
            await _wait_pulse(self, "_sessions_done")
        with anyio.move_on_after(CLOSE_DRAIN_TIMEOUT):
            while self._dispatch or self._dispatching:
                await _wait_pulse(self, "_dispatch_idle")

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once connected; raise :class:`ConnectError` when the server refuses or the
        reconnect attempts are exhausted, ``TimeoutError`` after ``timeout`` seconds."""
        if self._core.is_connected:
            return  # no cancel scope to make
        if timeout is None:
            await self._wait_connected()
            return
        with anyio.fail_after(timeout):
            await self._wait_connected()

    async def _wait_connected(self) -> None:
        while True:
            if self._core.is_connected:
                return
            if self._final_error is not None and self._core.state is State.CLOSED:
                raise self._final_error
            await _wait_pulse(self, "_changed")

    # ------------------------------------------------------------------ listeners

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, fn: F) -> F: ...
    def on(self, event: str, fn: F | None = None) -> F | Callable[[F], F]:
        """Call ``fn(*args)`` for every ``event``; usable as ``@rt.on("name")``."""
        if fn is None:
            return lambda f: self.on(event, f)
        self._listeners.add(event, fn)
        return fn

    @overload
    def once(self, event: str) -> Callable[[F], F]: ...
    @overload
    def once(self, event: str, fn: F) -> F: ...
    def once(self, event: str, fn: F | None = None) -> F | Callable[[F], F]:
        """Like :meth:`on`, for the next ``event`` only."""
        if fn is None:
            return lambda f: self.once(event, f)
        self._listeners.add(event, fn, once=True)
        return fn

    def off(self, event: str | None = None, fn: Listener | None = None) -> None:
        self._listeners.remove(event, fn)

    def on_any(self, fn: F) -> F:
        """Call ``fn(event, *args)`` for every incoming server event."""
        self._listeners.add_any(fn)
        return fn

    def off_any(self, fn: Listener | None = None) -> None:
        self._listeners.remove_any(fn)

    def listeners(self, event: str) -> list[Listener]:
        return self._listeners.listeners(event)

    def on_connect(self, fn: F) -> F:
        return self.on("connect", fn)

    def on_disconnect(self, fn: F) -> F:
        return self.on("disconnect", fn)

    def on_error(self, fn: F) -> F:
        return self.on("connect_error", fn)

    def on_reconnect_attempt(self, fn: F) -> F:
        return self.on("reconnect_attempt", fn)

    def on_reconnect(self, fn: F) -> F:
        return self.on("reconnect", fn)

    def on_reconnect_failed(self, fn: F) -> F:
        return self.on("reconnect_failed", fn)

    def on_state_change(self, fn: F) -> F:
        return self.on("state_change", fn)

    def on_join(self, fn: F) -> F:
        return self.on("channel:join", fn)

    def on_leave(self, fn: F) -> F:
        return self.on("channel:leave", fn)

    def on_update(self, fn: F) -> F:
        return self.on("channel:update", fn)

    def on_user_event(self, fn: F) -> F:
        """Call ``fn(event_name, session)`` for every ``user:*`` event from the server."""
        if not callable(fn):
            raise TypeError("listener must be callable")
        self._user_event_listeners.append(fn)
        return fn

    def events(self, *names: str, max_queued: int = 1000) -> EventStream:
        """Iterate over incoming events as ``(name, args)``: all of them, or only ``names``.

        ``async for name, args in rt.events("chat"): ...``; see :class:`EventStream` for the
        bounded queue and :class:`EventsOverflow`.
        """
        stream = EventStream(frozenset(names), max_queued)
        if self._streams is None:
            self._streams = weakref.WeakSet()
        self._streams.add(stream)
        return stream

    # ------------------------------------------------------------------ messages

    def emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` with JSON/bytes ``args``; buffered while not connected. Non-blocking."""
        self._core.emit(event, *args, now=self._now())
        self._pump()

    async def call(self, event: str, *args: Any, timeout: float | None = 30.0) -> Any:
        """Emit with an acknowledgement and return the ack's value (a tuple if several).

        Raises :class:`tether.AckTimeout`, :class:`tether.Disconnected` or
        :class:`tether.BufferFull`.
        """
        call_id = self._core.call(event, *args, timeout=timeout, now=self._now())
        waiter = _CallWaiter()
        self._calls[call_id] = waiter
        try:
            session = self._session
            if session is None or session.writing or session.closing or session.transport is None:
                self._pump()
            else:
                # Write the call from this task instead of starting a writer: no task and no
                # task switch per round trip. Shielded: a write cancelled part-way would
                # leave half a frame on the stream.
                session.writing = True
                try:
                    self._pump()
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._write_loop(session)
            await waiter.done.wait()
        finally:
            self._calls.pop(call_id, None)
        if waiter.error is not None:
            raise waiter.error
        result = waiter.result
        if not result:
            return None
        return result[0] if len(result) == 1 else result

    # --- channels (contract 2.4) ---------------------------------------------------------

    def join(self, channel: str, echo: bool | None = None) -> None:
        self._core.join(channel, echo, now=self._now())
        self._pump()

    def leave(self, channel: str, echo: bool | None = None) -> None:
        self._core.leave(channel, echo, now=self._now())
        self._pump()

    def send(self, channel: str, event: str, message: Any, echo: bool | None = None) -> None:
        self._core.send(channel, event, message, echo, now=self._now())
        self._pump()

    def broadcast(self, event: str, message: Any, echo: bool | None = None) -> None:
        self._core.broadcast(event, message, echo, now=self._now())
        self._pump()

    def update_profile(self, data: Any, echo: bool | None = None) -> None:
        self._core.update_profile(data, echo, now=self._now())
        self._pump()

    async def get_members(self, channel: str, *, timeout: float | None = 30.0) -> list[Member]:
        """The members of ``channel`` across the hub, with their profiles."""
        if not isinstance(channel, str) or not channel:
            raise ValueError("channel name must be a non-empty str")
        reply = await self.call("members", {"channel": channel}, timeout=timeout)
        if isinstance(reply, dict) and "error" in reply:
            raise TetherError(f"members: {reply['error']}")
        if not isinstance(reply, list):
            raise TetherError("members: the server's reply is not a list")
        return [
            Member(str(item.get("id")), item.get("data"))
            for item in reply
            if isinstance(item, dict)
        ]

    # ------------------------------------------------------------------ the pump

    def _now(self) -> float:
        # Before the client is entered there is no event loop to ask; the core only uses the
        # time for deadlines of a connection that cannot exist yet.
        try:
            return anyio.current_time()
        except Exception:
            return 0.0

    def _pump(self) -> None:
        """Drain the core after a call into it, and re-arm the timer if needed."""
        self._drain()
        deadline = self._core.next_deadline()
        if deadline is not None and deadline < self._timer_target:
            self._timer_target = deadline
            reader = self._timer_reader
            if reader is not None:
                reader.read_deadline = deadline
                if self._dispatch_space is not None:  # the reader waits for the listeners:
                    self._dispatch_space.set()  # let it look at the new deadline
                    self._dispatch_space = None
            elif self._timer_wake is not None:
                self._timer_wake.set()
            elif not self._timer_running and not self._connect_keeps(deadline):
                self._start_timer()

    def _drain(self) -> bool:
        """Route the core's output; True when a lifecycle fact may have moved a deadline.

        This runs after every received message: keep it lean.
        """
        core = self._core
        data = core.data_to_send()
        if data:
            session = self._session
            if session is not None and not session.closing:
                session.outgoing.extend(data)
                if not session.writing:
                    self._start_writer(session)
        events = core.drain_events()
        return bool(events) and self._handle_events(events)

    def _handle_events(self, events: list[Any]) -> bool:
        dispatch = self._dispatch
        lifecycle = False
        early = self._early_facts
        if early:  # the facts of entering, held until now (see __aenter__)
            self._early_facts = None
            listeners = self._listeners
            dispatch.extend(f for f in early if _LIFECYCLE_EVENTS[type(f)] in listeners)
            early = None
        for event in events:
            kind = type(event)
            if kind is EventReceived:
                dispatch.append(event)
            elif kind is AckReceived:
                waiter = self._calls.get(event.call_id)
                if waiter is not None:
                    waiter.result = event.args
                    waiter.done.set()
                    self._caller_woken = True
            elif kind is AckFailed:
                waiter = self._calls.get(event.call_id)
                if waiter is not None:
                    waiter.error = event.error
                    waiter.done.set()
                    self._caller_woken = True
            elif kind is OpenTransport:
                self._start_session(event)
            elif kind is CloseTransport:
                session = self._session
                if session is not None and session.token == event.token:
                    self._session = None
                    self._release_timer(session.transport)
                    session.close()
                    if session.writing and self._task_group is not None:
                        self._task_group.start_soon(self._reap, session, name="tether reaper")
            else:
                lifecycle = True
                if kind is ConnectFailed:
                    self._last_error = event.error
                elif kind is StateChanged and event.current is State.CLOSED:
                    # Closed by anything but the user (a refusal, a server disconnect,
                    # exhausted attempts, reconnection disabled): wait_connected() must not
                    # wait for an open() nobody will call.
                    if event.reason == DisconnectReason.CLIENT:
                        self._final_error = None
                    elif self._last_error is not None and event.reason == self._last_error.message:
                        self._final_error = self._last_error
                    else:
                        self._final_error = ConnectError(event.reason or "closed")
                if early is not None:
                    early.append(event)  # entering: held (see __aenter__)
                elif _LIFECYCLE_EVENTS[kind] in self._listeners:
                    # Queued only if someone listens now: a connect then costs no dispatcher
                    # task when nobody waits for its facts (specs/client.md).
                    dispatch.append(event)
        if dispatch and not self._dispatching:
            self._start_dispatcher()
        if lifecycle and self._changed is not None:
            self._changed.set()
            self._changed = None
        return lifecycle

    # ------------------------------------------------------------------ tasks

    def _start_timer(self) -> None:
        """Run the timer task, unless it runs already or a reader keeps the deadlines."""
        task_group = self._task_group
        if task_group is not None and not self._timer_running and self._timer_reader is None:
            self._timer_running = True
            task_group.start_soon(self._timer_loop, name="tether timer")

    def _ensure_timer(self) -> None:
        """Start the timer task if the core has a deadline that nobody keeps."""
        deadline = self._core.next_deadline()
        if deadline is not None and not self._connect_keeps(deadline):
            self._start_timer()

    def _connect_keeps(self, deadline: float) -> bool:
        """Whether a connecting session's own timeout covers ``deadline``."""
        attempt_deadline = self._core.attempt_deadline
        return (
            self._connect_keeper is not None
            and attempt_deadline is not None
            and deadline >= attempt_deadline
        )

    async def _timer_loop(self) -> None:
        """Handle the core's deadlines until there are none, or a reader takes them over."""
        core = self._core
        try:
            while self._timer_reader is None:
                deadline = core.next_deadline()
                if deadline is None:
                    break  # nothing to keep: the next deadline (_pump) starts a timer again
                self._timer_target = deadline
                if anyio.current_time() >= deadline:
                    core.handle_timer(now=anyio.current_time())
                    self._pump()
                    continue
                wake = self._timer_wake = anyio.Event()
                with anyio.move_on_at(deadline):
                    await wake.wait()
        finally:
            self._timer_running = False
            self._timer_wake = None
            if self._timer_reader is None:
                self._timer_target = math.inf  # nobody waits for anything now

    def _keep_timer(self, transport: Transport, session: _Session) -> None:
        """Let the reader of ``transport`` keep the deadlines: the timer task ends.

        From here on that reader waits for nothing but ``receive()`` and, before the
        connect, its own short writes bounded by the deadline (later writes go to a writer
        task), so the read deadline is all the timer it needs.
        """
        if session.closing:
            return  # the timer task keeps them: this reader is about to end
        self._timer_reader = transport
        self._arm_reader(transport)
        if self._timer_wake is not None:
            self._timer_wake.set()  # the timer task sees a reader keeping the time, and ends

    def _release_timer(self, transport: Transport | None) -> None:
        """The reader of ``transport`` stops keeping the deadlines: the timer task resumes."""
        if transport is not None and self._timer_reader is transport:
            self._timer_reader = None
            transport.read_deadline = math.inf
            self._timer_target = math.inf  # the timer task computes it again
            self._ensure_timer()

    def _connect_over(self, session: _Session) -> None:
        """``session`` stops keeping its own attempt's timeout (connected, failed, ended)."""
        if self._connect_keeper is session:
            self._connect_keeper = None
            if self._timer_reader is None and not self._timer_running:
                self._timer_target = math.inf  # nobody waits: the next _pump starts a timer

    def _read_deadline_passed(self, transport: Transport) -> None:
        """The reader's ``receive()`` returned at the read deadline: run the timer once."""
        if self._timer_reader is not transport:
            return  # the deadlines went back to the timer task meanwhile
        core = self._core
        now = anyio.current_time()
        deadline = core.next_deadline()
        if deadline is not None and now >= deadline:
            core.handle_timer(now=now)
            self._pump()
        if self._timer_reader is transport:  # still ours: the session did not end
            self._arm_reader(transport)

    def _arm_reader(self, transport: Transport) -> None:
        """Point the keeping reader's read deadline at the core's next deadline."""
        deadline = self._core.next_deadline()
        self._timer_target = math.inf if deadline is None else deadline
        transport.read_deadline = self._timer_target

    async def _reap(self, session: _Session) -> None:
        """End a closing session whose last write is still under way after a grace period.

        A close lets the write in progress finish (the goodbye ``41`` should go out), but not
        for ever: against a peer that stopped reading, a send can block until TCP gives up,
        and with it the session and ``aclose()``. Closing the transport makes that send fail.
        """
        await anyio.sleep(CLOSE_WRITE_GRACE)
        if session.writing and session.transport is not None:
            await session.transport.aclose()
        session.end()

    def _start_writer(self, session: _Session) -> None:
        # A writer task lives only while there is something to write: an idle connection
        # holds no writer (a task costs about 3.5 KB).
        task_group = self._task_group
        if task_group is not None and session.transport is not None:
            session.writing = True
            task_group.start_soon(self._write_loop, session, name="tether writer")

    def _start_session(self, event: OpenTransport) -> None:
        assert self._task_group is not None
        session = _Session(event.token, event.attempt)
        self._session = session
        self._sessions_running += 1
        self._connect_keeper = session
        session.task = self._task_group.start_soon(
            self._run_session, session, name=f"tether transport {event.token}"
        )

    async def _run_session(self, session: _Session) -> None:
        try:
            transport = await self._connect(session)
            if transport is not None:
                # This task reads until the session ends (its task is cancelled once the
                # last write is done, or the transport fails).
                await self._read_loop(session, transport)
        finally:
            self._connect_over(session)
            self._ensure_timer()
            transport = session.transport
            if transport is not None:
                with anyio.CancelScope(shield=True):
                    await transport.aclose()
            if self._session is session:
                self._session = None
            self._sessions_running -= 1
            if not self._sessions_running and self._sessions_done is not None:
                self._sessions_done.set()
                self._sessions_done = None

    async def _connect(self, session: _Session) -> Transport | None:
        """Open the session's transport; ``None`` when the attempt is over already."""
        core = self._core
        token = session.token
        try:
            # Callables are run for every attempt (fresh tokens); plain values need no await.
            auth = self._auth
            if callable(auth):
                auth = await _resolve(auth, "auth")
            headers = self._headers
            if callable(headers):
                headers = await _resolve(headers, "headers")
            headers = _as_str_map(headers, "headers")
            query = self._query
            if callable(query):
                query = await _resolve(query, "query")
            query = _as_str_map(query, "query")
            if auth is not None and not isinstance(auth, Mapping):
                raise TypeError(f"auth must be a dict, got {type(auth).__name__}")
            url = self._ws_url or build_websocket_url(self._url, path=self._path, query=query)
        except Exception as exc:
            # A failing or ill-typed auth/headers/query callable: report it as this attempt's
            # error, without its text (it may quote a secret).
            logger.warning("tether: credentials for attempt failed: %s", type(exc).__name__)
            self._connect_over(session)
            core.transport_failed(
                token, f"credentials failed: {type(exc).__name__}", now=self._now()
            )
            self._pump()
            return None
        attempt_deadline = core.attempt_deadline
        try:
            opening = self._connector.connect(
                url,
                headers=list((headers or {}).items()),
                ssl_context=self._ssl,
                max_message_size=self._max_message_size,
            )
            if self._connect_keeper is session and attempt_deadline is not None:
                # No timer task runs: this task keeps its attempt's timeout itself. (A call
                # with an earlier timeout made meanwhile starts the timer task, see _pump.)
                with anyio.move_on_at(attempt_deadline) as scope:
                    transport = await opening
                if scope.cancelled_caught:
                    self._connect_over(session)
                    core.handle_timer(now=anyio.current_time())
                    self._pump()
                    return None
            else:
                transport = await opening
        except TransportError as exc:
            self._connect_over(session)
            core.transport_failed(token, str(exc), now=self._now())
            self._pump()
            return None
        session.transport = transport
        self._connect_over(session)
        if session.closing:
            return None
        # The reader keeps the deadlines from its first read on (the attempt's timeout, the
        # heartbeat, ack timeouts): the timer task ends if it runs.
        self._keep_timer(transport, session)
        core.transport_opened(token, auth, now=self._now())
        self._pump()
        return transport

    async def _write_loop(self, session: _Session) -> None:
        """Write ``session.outgoing`` until it is empty; the caller set ``session.writing``."""
        transport = session.transport
        assert transport is not None
        try:
            while session.outgoing:
                batch = session.outgoing
                session.outgoing = []
                try:
                    await transport.send_many(batch)
                except TransportError as exc:
                    self._transport_lost(session, exc.reason)
                    return
        finally:
            session.writing = False
            if session.closing:
                session.end()  # the last write is done: end the session

    async def _read_loop(self, session: _Session, transport: Transport) -> None:
        core = self._core
        receive = transport.receive
        current_time = anyio.current_time
        data_to_send = core.data_to_send
        drain_events = core.drain_events
        handle_events = self._handle_events
        connected = False
        try:
            while True:
                message = await receive()
                if message is None:  # the read deadline: this task keeps the timer
                    self._read_deadline_passed(transport)
                    continue
                if session.closing:
                    return
                core.receive(message, now=current_time())
                # _drain(), inlined. What receiving produced before the connect (the
                # namespace CONNECT) is written by this task; once connected, a writer task
                # writes (the flush after the connect, a pong now and then), so that this
                # task, which keeps the deadlines, never waits on a peer that stopped reading.
                write = False
                data = data_to_send()
                if data and not session.closing:
                    session.outgoing.extend(data)
                    if not session.writing:
                        if connected:
                            self._start_writer(session)
                        else:
                            write = session.writing = True  # a close now waits for this
                events = drain_events()
                # Receiving only moves the heartbeat deadline later, so the timer needs a look
                # only when a lifecycle fact came out (connected, lost, retry scheduled ...).
                lifecycle = False
                if events and handle_events(events):
                    self._pump()
                    lifecycle = True
                if write:
                    await self._write_before_connect(session, transport)
                if lifecycle and not connected and core.is_connected:
                    connected = True
                    self._caller_woken = True  # wait_connected() returns now
                if self._caller_woken:
                    # A call() got its ack, or wait_connected() its connect: let it run
                    # before this task sets up its next read (one checkpoint per ack).
                    # Measured on asyncio: echo p50 -25 %, connect -5 %.
                    self._caller_woken = False
                    await anyio.lowlevel.checkpoint()
                if len(self._dispatch) >= DISPATCH_QUEUE_LIMIT:
                    await self._wait_for_dispatch_space(transport)
        except TransportError as exc:
            self._transport_lost(session, exc.reason)
        except Exception:  # a bug in tether: never let it escape into the user's task group
            logger.exception("tether: internal error on the receive path")
            self._transport_lost(session, "transport error")
        finally:
            self._release_timer(transport)

    async def _write_before_connect(self, session: _Session, transport: Transport) -> None:
        """Write what the handshake produced (the namespace CONNECT) from the reader.

        Bounded by the deadline this reader keeps: on a fresh socket a few bytes never wait,
        but if they did, the attempt's timeout must still fire (a write cut off fails the
        transport, and with it this attempt).
        """
        if self._timer_reader is not transport:
            await self._write_loop(session)
            return
        with anyio.move_on_at(self._timer_target) as scope:
            await self._write_loop(session)
        if scope.cancelled_caught:
            self._read_deadline_passed(transport)

    async def _wait_for_dispatch_space(self, transport: Transport) -> None:
        """Backpressure: stop reading until the listeners catch up (deadlines still run)."""
        while len(self._dispatch) >= DISPATCH_QUEUE_LIMIT:
            if self._timer_reader is not transport:
                await _wait_pulse(self, "_dispatch_space")
                continue
            with anyio.move_on_at(self._timer_target):
                await _wait_pulse(self, "_dispatch_space")
            if anyio.current_time() >= self._timer_target:
                self._read_deadline_passed(transport)

    def _transport_lost(self, session: _Session, reason: str) -> None:
        if session.closing:
            return
        if self._session is session:
            self._session = None
        self._release_timer(session.transport)
        session.closing = True
        if not session.writing:
            session.end()
        # What is still queued was never handed to the transport: it certainly did not leave,
        # so the core can buffer the user's messages among it again (contract 2.5).
        unsent, session.outgoing = session.outgoing, []
        self._core.transport_closed(session.token, reason, now=self._now(), unsent=unsent)
        self._pump()

    def _start_dispatcher(self) -> None:
        task_group = self._task_group
        if task_group is not None:
            self._dispatching = True
            task_group.start_soon(self._dispatch_loop, name="tether dispatcher")

    async def _dispatch_loop(self) -> None:
        """Deliver queued facts in order until the queue is empty, then end.

        The dispatcher lives only while there is something to deliver: a burst of events (a
        whole socket read) costs one task start, and an idle client holds no dispatcher.
        """
        try:
            while self._dispatch:
                batch = self._dispatch
                self._dispatch = []
                if self._dispatch_space is not None:  # the reader may queue again
                    self._dispatch_space.set()
                    self._dispatch_space = None
                delivered = 0
                try:
                    for event in batch:
                        delivered += 1
                        if type(event) is EventReceived:
                            await self._deliver_event(event)
                        else:
                            await self._deliver_lifecycle(event)
                except BaseException:
                    # Cancelled (the client is leaving): what was not delivered stays queued.
                    self._dispatch[:0] = batch[delivered:]
                    raise
        finally:
            self._dispatching = False
        if self._dispatch_idle is not None:
            self._dispatch_idle.set()
            self._dispatch_idle = None
        if self._dispatch_space is not None:
            self._dispatch_space.set()
            self._dispatch_space = None

    async def _deliver_lifecycle(self, event: Any) -> None:
        name = _LIFECYCLE_EVENTS[type(event)]
        kind = type(event)
        if kind is SocketConnected:
            args: tuple[Any, ...] = ()
        elif kind is SocketDisconnected:
            args = (event.reason,)
        elif kind is ConnectFailed:
            args = (event.error,)
        elif kind is ReconnectAttemptStarted or kind is Reconnected:
            args = (event.attempt,)
        elif kind is ReconnectFailed:
            args = ()
        else:  # StateChanged, MessageDropped
            args = (event,)
        for fn in self._listeners.take(name):
            await _call_listener(fn, args, name)

    async def _deliver_event(self, event: EventReceived) -> None:
        # The per-event path of the dispatcher: sync listeners are called inline (no
        # coroutine per call), and the optional features cost nothing when unused.
        name = event.name
        args = event.args
        registry = self._listeners
        if registry.has_any:
            for fn in registry.any_listeners():
                await _call_listener(fn, (name, *args), name)
        if self._user_event_listeners and name.startswith("user:"):
            for fn in list(self._user_event_listeners):
                await _call_listener(fn, (name, args[0] if args else None), name)
        reply: Any = None
        for fn in registry.take(name):
            try:
                value = fn(*args)
                if value is not None and inspect.isawaitable(value):
                    value = await value
            except Exception:
                logger.exception("tether: listener %r for %r raised", fn, name)
                value = None
            if reply is None:
                reply = value
        if self._streams:
            for stream in list(self._streams):
                stream._push(name, args)
        if event.ack_id is not None:
            # The server asked for an ack: answer with the first listener's return value
            # (a tuple spreads into several ack arguments, like python-socketio).
            values = reply if isinstance(reply, tuple) else (() if reply is None else (reply,))
            try:
                self._core.ack(event.ack_id, *values)
            except (TypeError, ValueError):
                logger.exception(
                    "tether: the ack value for %r is not JSON; sent an empty ack", name
                )
                self._core.ack(event.ack_id)
            self._pump()


async def _wait_pulse(owner: Any, name: str) -> None:
    """Wait for the next ``set()`` of the lazily made event ``owner.<name>``.

    The setter sets it and stores ``None``; the next waiter makes a fresh one.
    """
    event = getattr(owner, name)
    if event is None:
        event = anyio.Event()
        setattr(owner, name, event)
    await event.wait()


async def _call_listener(fn: Listener, args: tuple[Any, ...], name: str) -> Any:
    """Run one listener; its exceptions are logged and change nothing (contract 2.3)."""
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
        return result
    except Exception:
        logger.exception("tether: listener %r for %r raised", fn, name)
        return None


#: The connectors behind ``transport="wsproto"`` and ``"websockets"``, shared by every client
#: that names one: a connector holds only its settings and a lazily made default TLS context.
_NAMED_CONNECTORS: dict[str, Connector] = {}


def _make_connector(transport: Connector | str) -> Connector:
    """``"wsproto"`` (the default), ``"websockets"`` (the ``fast`` extra) or a Connector."""
    if isinstance(transport, str) and transport in ("wsproto", "websockets"):
        connector = _NAMED_CONNECTORS.get(transport)
        if connector is None:
            if transport == "wsproto":
                connector = WebSocketConnector()
            else:
                from .transport import FastWebSocketConnector

                connector = FastWebSocketConnector()
            connector = _NAMED_CONNECTORS.setdefault(transport, connector)
        return connector
    if isinstance(transport, str) or not callable(getattr(transport, "connect", None)):
        raise ValueError(
            f"transport must be 'wsproto', 'websockets' or a Connector, got {transport!r}"
        )
    return transport


def _check_source(value: Any, name: str) -> Any:
    if value is None or callable(value):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{name} must be a dict, a callable returning one, or None")


async def _resolve(source: Any, name: str) -> Any:
    """Evaluate a dict-or-callable option for one attempt (token refresh, contract 2.1)."""
    if source is None or not callable(source):
        return source
    value = source()
    if inspect.isawaitable(value):
        value = await value
    return value


def _as_str_map(value: Any, name: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict of str to str, got {type(value).__name__}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, (str, int, float)):
            raise TypeError(f"{name} must map str to str")
        result[key] = str(item)
    return result
