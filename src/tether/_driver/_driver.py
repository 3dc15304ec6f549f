"""The driver: runs the sans-IO core on anyio and routes what comes out of it.

After **every** call into the core (``specs/core.md`` "The drain-after-every-call rule"),
:meth:`Driver.pump` drains the core's events and routes them, wakes the writer of the open
transport if the core has output, and lets the deadline keeper look at the next deadline:

* ``OpenTransport`` starts a :class:`~._session.TransportSession` (credentials, connect,
  read until closed);
* ``CloseTransport`` hands the closing session what the core queued before it (the goodbye
  DISCONNECT), which it writes before it closes;
* ack results wake the waiting ``call()``;
* server events and the lifecycle facts go to the :class:`~._dispatch.Dispatcher`;
* lifecycle facts also go to the :class:`ConnectWatch` behind ``wait_connected()``.

One anyio task group per client holds one task per transport session and, only while they
have work, the timer, the dispatcher and a writer (``specs/client.md``). None of them lets an
exception out into that task group, which holds the user's code too: a bug in tether is
logged and the client carries on (``specs/client.md`` "Errors").

The driver belongs to the event loop thread that entered the client; :meth:`Driver.call_in_loop`
hands a call from another thread over to it (``specs/client.md`` "Threads").
"""

from __future__ import annotations

import logging
import ssl as _ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

from tether._listeners import ListenerRegistry
from tether.core import (
    AckFailed,
    AckReceived,
    CloseTransport,
    ConnectError,
    ConnectFailed,
    Connection,
    DisconnectReason,
    EventReceived,
    OpenTransport,
    SocketConnected,
    SocketDisconnected,
    State,
    StateChanged,
)
from tether.transport import Connector

from ._credentials import Credentials
from ._deadlines import DeadlineKeeper
from ._dispatch import Dispatcher
from ._lifecycle_log import log_fact
from ._session import TransportSession

__all__ = ["CallWaiter", "ConnectWatch", "Driver"]

logger = logging.getLogger("tether")

T = TypeVar("T")


class CallWaiter:
    """Where a ``call()`` waits for its outcome."""

    __slots__ = ("done", "error", "result", "writing")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: tuple[Any, ...] = ()
        self.error: BaseException | None = None
        #: The scope of the call's own write while it writes: cancelled when the call
        #: fails meanwhile (its timeout, its session lost), which cuts the write off.
        self.writing: anyio.CancelScope | None = None


class ConnectWatch:
    """What ``wait_connected()`` waits for: the connect, or a reason to stop waiting.

    The client is ``CLOSED`` for good, from the point of view of a waiter, for any reason but
    the user's own ``close()`` (which waits for an ``open()``): a refusal (with the server's
    ``data``), a server disconnect, exhausted attempts, a failure without reconnection.
    """

    __slots__ = ("_changed", "_core", "_last_error", "_lost", "final_error", "running")

    def __init__(self, core: Connection) -> None:
        self._core = core
        self._changed: anyio.Event | None = None  # made by a waiter, dropped when set
        self._last_error: ConnectError | None = None  # of the attempts since the last connect
        self._lost: str | None = None  # why the last connection ended
        self.final_error: ConnectError | None = None
        #: Whether the client is entered: a waiter of another task must not wait for a
        #: client that left (nothing would wake it again).
        self.running = False

    def reset(self) -> None:
        """``open()``: earlier failures no longer stop a waiter."""
        self.final_error = self._last_error = None
        self._lost = None

    def observe(self, fact: Any) -> None:
        kind = type(fact)
        if kind is ConnectFailed:
            self._last_error = fact.error
        elif kind is SocketConnected:
            self._last_error = None  # what failed before this connect is no reason now
            self._lost = None
        elif kind is SocketDisconnected:
            self._lost = fact.reason
        elif kind is StateChanged and fact.current is State.CLOSED:
            self.final_error = self._final_error(fact.reason or "closed")

    def _final_error(self, reason: str) -> ConnectError | None:
        """What a waiter raises for a client closed for ``reason``: the last attempt's own
        error, or one that says what led to ``reason`` ("reconnect failed") and chains the
        last attempt's error as its cause."""
        last = self._last_error
        if reason == DisconnectReason.CLIENT:
            return None
        if last is not None and reason == last.message:
            return last
        if last is not None:
            error = ConnectError(f"{reason}; the last attempt failed: {last.message}")
            error.__cause__ = last
            return error
        if self._lost is not None and reason != self._lost:
            return ConnectError(f"{reason}; the connection was lost: {self._lost}")
        return ConnectError(reason)

    def changed(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_connected(self) -> None:
        core = self._core
        while not core.is_connected:
            if self.final_error is not None and core.state is State.CLOSED:
                raise self.final_error
            if not self.running:
                raise RuntimeError(
                    "RealtimeClient.wait_connected(): the client left its `async with` "
                    "while this waited"
                )
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()


class Driver:
    """The core, the task group, and the parts that move data and time in and out."""

    __slots__ = (
        "_sessions_done",
        "_sessions_running",
        "caller_woken",
        "calls",
        "connector",
        "core",
        "credentials",
        "deadlines",
        "dispatcher",
        "max_message_size",
        "session",
        "ssl",
        "task_group",
        "thread",
        "token",
        "watch",
    )

    def __init__(
        self,
        core: Connection,
        events: ListenerRegistry,
        lifecycle: ListenerRegistry,
        credentials: Credentials,
        connector: Connector,
        *,
        ssl: _ssl.SSLContext | None,
        max_message_size: int,
    ) -> None:
        self.core = core
        self.dispatcher = Dispatcher(events, lifecycle, self)
        self.credentials = credentials
        self.connector = connector
        self.ssl = ssl
        self.max_message_size = max_message_size
        self.deadlines = DeadlineKeeper(core, self)
        self.watch = ConnectWatch(core)
        self.task_group: anyio.abc.TaskGroup | None = None
        #: The event loop thread's ``threading.get_ident()`` from entering to leaving, else
        #: ``None``: the client's public methods compare it with the caller's (about 40 ns).
        self.thread: int | None = None
        #: That event loop, for :meth:`call_in_loop`.
        self.token: anyio.lowlevel.EventLoopToken | None = None
        self.session: TransportSession | None = None
        self._sessions_running = 0
        self._sessions_done: anyio.Event | None = None
        self.calls: dict[int, CallWaiter] = {}
        #: A call() or wait_connected() was just woken: the reader lets it run first.
        self.caller_woken = False

    # --- the task group --------------------------------------------------------------------

    def start(self, task_group: anyio.abc.TaskGroup) -> None:
        self.task_group = task_group
        self.token = anyio.lowlevel.current_token()
        self.thread = threading.get_ident()
        self.watch.running = True
        self.dispatcher.start(task_group)

    def started(self) -> None:
        """Entering is over: deadlines nobody keeps get the timer task."""
        assert self.task_group is not None
        self.deadlines.start(self.task_group)

    def stop(self) -> None:
        """Leaving: no task starts from now on, and nobody waits for a connect."""
        self.task_group = None
        self.deadlines.stop()
        self.watch.running = False
        self.watch.changed()

    def left(self) -> None:
        """The client's tasks are gone: the client belongs to no thread any more."""
        self.thread = None
        self.token = None

    def call_in_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the client's event loop thread and return its result (or
        raise its exception) in the calling thread, which waits for it."""
        token = self.token
        if token is None:
            # The client left meanwhile: nothing else runs it now.
            return fn(*args)
        # Here, not at the top: a program that never calls from another thread does not
        # import anyio.from_thread (and concurrent.futures) with tether.
        from ._handoff import run_in_loop

        return run_in_loop(token, fn, *args)

    async def sessions_ended(self) -> None:
        """Return once no transport session is running."""
        while self._sessions_running:
            if self._sessions_done is None:
                self._sessions_done = anyio.Event()
            await self._sessions_done.wait()

    # --- after every call into the core ----------------------------------------------------

    def pump(self, *, wake_writer: bool = True) -> None:
        """Drain the core after a call into it. ``wake_writer=False``: the caller writes
        the output itself."""
        events = self.core.drain_events()
        if events:
            self.route(events)
        if wake_writer:
            session = self.session
            if session is not None and session.writes is not None:
                session.writes.wake()
        self.deadlines.moved()

    def run_timer(self, now: float) -> None:
        """A deadline is due: run the core's timer, then drain it."""
        self.core.handle_timer(now=now)
        self.pump()

    def route(self, events: list[Any], size: int = 0) -> bool:
        """Route the core's events; ``True`` when a lifecycle fact came out (the deadlines
        may have moved). ``size``: the bytes of the message they came from, which each
        server event among them counts in the dispatch backlog. This runs after every
        received message: keep it lean."""
        dispatcher = self.dispatcher
        if dispatcher.entering is not None:
            dispatcher.release_entering()
        queue = dispatcher.queue
        lifecycle = False
        queued_bytes = 0
        for event in events:
            kind = type(event)
            if kind is EventReceived:
                queue.append(event)
                queued_bytes += size
            elif kind is AckReceived:
                waiter = self.calls.get(event.call_id)
                if waiter is not None:
                    waiter.result = event.args
                    waiter.done.set()
                    self.caller_woken = True
            elif kind is AckFailed:
                waiter = self.calls.get(event.call_id)
                if waiter is not None:
                    waiter.error = event.error
                    waiter.done.set()
                    self.caller_woken = True
                    if waiter.writing is not None:
                        waiter.writing.cancel()
            elif kind is OpenTransport:
                self._start_session(event)
            elif kind is CloseTransport:
                self._close_session(event.token)
            else:
                lifecycle = True
                self.watch.observe(event)
                dispatcher.lifecycle_fact(event)
                log_fact(event, self)
        if queued_bytes:
            dispatcher.backlog_bytes += queued_bytes
        if queue and not dispatcher.running:
            dispatcher.kick()
        if lifecycle:
            self.watch.changed()
        return lifecycle

    def ack(self, ack_id: int, values: tuple[Any, ...]) -> None:
        """Answer the server's event ``ack_id`` with a listener's return value."""
        try:
            self.core.ack(ack_id, *values)
        except (TypeError, ValueError):
            logger.exception(
                "tether: the ack value for event %d is not JSON; sent an empty ack", ack_id
            )
            self.core.ack(ack_id)
        self.pump()

    # --- sessions ------------------------------------------------------------------------------

    def _start_session(self, event: OpenTransport) -> None:
        assert self.task_group is not None
        session = TransportSession(self, event.token, event.attempt)
        logger.debug(
            "tether: attempt %d (transport %d): connecting to %s",
            event.attempt,
            event.token,
            self.credentials.where,
        )
        self.session = session
        self._sessions_running += 1
        self.deadlines.connect_keeps(session)
        session.task = self.task_group.start_soon(
            session.run, name=f"tether transport {event.token}"
        )

    def _close_session(self, token: int) -> None:
        session = self.session
        if session is not None and session.token == token:
            self.session = None
            # What the core queued before it closed the transport belongs to that transport
            # (specs/core.md: data first, then events): its last words.
            session.close(self.core.data_to_send())

    def session_ended(self, session: TransportSession) -> None:
        if self.session is session:
            self.session = None
        self._sessions_running -= 1
        if not self._sessions_running and self._sessions_done is not None:
            self._sessions_done.set()
            self._sessions_done = None
