"""Listener dispatch: facts and server events to the user's listeners, in order, off the
reader.

Listeners run only here, in a dispatcher task that lives while there is something to deliver
(a burst of events costs one task start; an idle client holds none). They run one at a time,
in arrival order; async listeners are awaited. A slow listener delays later listeners, never
the reader, the heartbeat or a pong (``specs/client.md`` "Tasks and ordering").

Two kinds of things are delivered, from two registries:

* **server events** (:class:`~tether.core.EventReceived`) to the listeners of ``rt.on(name)``,
  the catch-all ``rt.on_any`` listeners, ``rt.on_user_event`` and the ``rt.events()``
  iterators. Any name a server sends lands here, ``"state_change"`` as much as ``"chat"``;
* **lifecycle facts** (connect, disconnect, connect_error, reconnect_attempt, reconnect,
  reconnect_failed, state_change, buffer_overflow, resume) to the listeners of the ``on_*``
  methods.
  A server can never reach them: only Socket.IO's reserved names (``connect``,
  ``disconnect``, ``connect_error``) are lifecycle events in ``rt.on``, and no server may
  send those.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

import anyio
import anyio.abc

from tether._event_stream import EventStream
from tether._listeners import Listener, ListenerRegistry
from tether.core import (
    ConnectFailed,
    EventReceived,
    MessageDropped,
    ReconnectAttemptStarted,
    Reconnected,
    ReconnectFailed,
    SocketConnected,
    SocketDisconnected,
    StateChanged,
    StreamResumed,
)

__all__ = [
    "LIFECYCLE_EVENTS",
    "RESERVED_LIFECYCLE_NAMES",
    "Dispatcher",
    "RunListeners",
    "run_listeners",
]

logger = logging.getLogger("tether")

#: The lifecycle listener name of each fact.
LIFECYCLE_EVENTS: Final[dict[type, str]] = {
    SocketConnected: "connect",
    SocketDisconnected: "disconnect",
    ConnectFailed: "connect_error",
    ReconnectAttemptStarted: "reconnect_attempt",
    Reconnected: "reconnect",
    ReconnectFailed: "reconnect_failed",
    StateChanged: "state_change",
    MessageDropped: "buffer_overflow",
    StreamResumed: "resume",
}

#: The names ``rt.on(name)`` treats as lifecycle events: Socket.IO's reserved ones, which
#: no server may emit (socketio-protocol.md §2.8), as in socket.io-client.
RESERVED_LIFECYCLE_NAMES: Final = frozenset({"connect", "disconnect", "connect_error"})


def _lifecycle_args(fact: Any) -> tuple[Any, ...]:
    kind = type(fact)
    if kind is SocketDisconnected:
        return (fact.reason,)
    if kind is ConnectFailed:
        return (fact.error,)
    if kind is ReconnectAttemptStarted or kind is Reconnected:
        return (fact.attempt,)
    if kind is SocketConnected or kind is ReconnectFailed:
        return ()
    return (fact,)  # StateChanged, MessageDropped, StreamResumed


#: How a dispatcher runs the listeners of one fact: ``(listeners, args, name)`` → the first
#: value one of them returned other than ``None`` (the ack to a server event that asks for one).
RunListeners = Callable[[Sequence[Listener], tuple[Any, ...], str], Awaitable[Any]]


class _Acknowledger(Protocol):
    def ack(self, ack_id: int, values: tuple[Any, ...]) -> None: ...


class Dispatcher:
    """Delivers queued facts to listeners; ``driver.ack(ack_id, values)`` answers a server
    event that asked for an acknowledgement, with the first listener's return value."""

    __slots__ = (
        "_driver",
        "_idle",
        "_task_group",
        "backlog_bytes",
        "batch_left",
        "entering",
        "events",
        "lifecycle",
        "queue",
        "run_listeners",
        "running",
        "streams",
        "user_event_listeners",
    )

    def __init__(
        self,
        events: ListenerRegistry,
        lifecycle: ListenerRegistry,
        driver: _Acknowledger,
    ) -> None:
        self.events = events
        self.lifecycle = lifecycle
        self._driver = driver
        #: Where listeners run: here, in the dispatcher task; ``tether.sync`` puts them in its
        #: listener thread.
        self.run_listeners: RunListeners = run_listeners
        self.user_event_listeners: tuple[Listener, ...] = ()
        self.streams: weakref.WeakSet[EventStream] | None = None  # made by events()
        #: Facts waiting for the dispatcher (a list, not a deque: smaller on every client).
        self.queue: list[Any] = []
        #: Facts of the batch being delivered, not delivered yet.
        self.batch_left = 0
        #: About how many wire bytes the server events waiting for listeners took: those
        #: queued (``Driver.route`` adds them) and the whole batch being delivered, until it
        #: is done.
        self.backlog_bytes = 0
        self.running = False
        self._idle: anyio.Event | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self.entering: list[Any] | None = None

    def start(self, task_group: anyio.abc.TaskGroup) -> None:
        self._task_group = task_group
        self.kick()  # facts from before entering (a close())

    @property
    def backlog(self) -> int:
        """How many facts wait for their listeners."""
        return len(self.queue) + self.batch_left

    # --- queueing ----------------------------------------------------------------------------

    def hold_entering(self) -> None:
        """Hold the facts of the ``open()`` that entering the client makes, until the next
        fact: they then go to the listeners registered by then, so listeners added right
        after ``async with RealtimeClient(url) as rt:`` see them, and a connect nobody listens
        to starts no dispatcher task."""
        self.entering = []

    def entered(self) -> None:
        if not self.entering:
            self.entering = None

    def lifecycle_fact(self, fact: Any) -> None:
        """Queue a lifecycle fact, for the listeners registered now."""
        entering = self.entering
        if entering is not None:
            entering.append(fact)
            return
        if LIFECYCLE_EVENTS[type(fact)] in self.lifecycle:
            self.queue.append(fact)

    def release_entering(self) -> None:
        """The next fact after entering has come: the held ones go to today's listeners."""
        entering = self.entering
        if entering:
            self.entering = None
            lifecycle = self.lifecycle
            self.queue.extend(f for f in entering if LIFECYCLE_EVENTS[type(f)] in lifecycle)

    def kick(self) -> None:
        """Start the dispatcher task if facts wait and it is not running."""
        if self.queue and not self.running and self._task_group is not None:
            self.running = True
            self._task_group.start_soon(self._loop, name="tether dispatcher")

    def end_streams(self) -> None:
        """The client is leaving: every ``events()`` iterator ends after its queued events."""
        if self.streams:
            for stream in list(self.streams):
                stream.end()

    async def wait_idle(self) -> None:
        """Return once every queued fact has been delivered."""
        while self.queue or self.running:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    # --- delivering --------------------------------------------------------------------------

    async def _loop(self) -> None:
        """Deliver queued facts in order until the queue is empty, then end."""
        try:
            events = self.events
            run = self.run_listeners
            while self.queue:
                batch = self.queue
                self.queue = []
                self.batch_left = len(batch)
                batch_bytes = self.backlog_bytes  # all of it is in this batch
                try:
                    for fact in batch:
                        self.batch_left -= 1
                        try:
                            if type(fact) is not EventReceived:
                                name = LIFECYCLE_EVENTS[type(fact)]
                                args = _lifecycle_args(fact)
                                await run(self.lifecycle.take(name), args, name)
                            elif (
                                fact.ack_id is None
                                and not events.has_any
                                and not self.user_event_listeners
                                and not self.streams
                            ):
                                # Most events: only rt.on(name) listeners, nothing to answer.
                                name = fact.name
                                await run(events.take(name), fact.args, name)
                            else:
                                await self._deliver_event(fact)
                        except Exception:
                            # A bug in tether (listeners' own errors are caught where they
                            # run): logged, and the next fact is delivered.
                            logger.exception(
                                "tether: internal error delivering %s", type(fact).__name__
                            )
                except BaseException:
                    # Cancelled (the client is leaving): what was not delivered stays queued.
                    # (Its bytes stay counted until the next batch is done.)
                    self.queue[:0] = batch[len(batch) - self.batch_left :]
                    self.batch_left = 0
                    raise
                self.backlog_bytes -= batch_bytes
        finally:
            self.running = False
            if self._idle is not None:
                self._idle.set()
                self._idle = None

    async def _deliver_event(self, event: EventReceived) -> None:
        # An event for catch-all listeners, user-event listeners or events() streams, or
        # one the server wants an answer to.
        name = event.name
        args = event.args
        registry = self.events
        run = self.run_listeners
        if registry.has_any:
            await run(registry.any_listeners(), (name, *args), name)
        if self.user_event_listeners and name.startswith("user:"):
            session = args[0] if args else None
            await run(self.user_event_listeners, (name, session), name)
        reply = await run(registry.take(name), args, name)
        if self.streams:
            for stream in list(self.streams):
                stream.push(name, args)
        if event.ack_id is not None:
            # The server asked for an ack: answer with the first listener's return value
            # (a tuple spreads into several ack arguments, like python-socketio).
            values = reply if isinstance(reply, tuple) else (() if reply is None else (reply,))
            self._driver.ack(event.ack_id, values)


async def run_listeners(listeners: Sequence[Listener], args: tuple[Any, ...], name: str) -> Any:
    """Run ``listeners`` in order; the first value one of them returned other than ``None``
    (awaited if it is awaitable). An exception in a listener is logged and changes nothing
    (specs/client.md)."""
    reply: Any = None
    for fn in listeners:
        try:
            value = fn(*args)
            if value is not None and inspect.isawaitable(value):
                value = await value
        except Exception:
            logger.exception("tether: listener %r for %r raised", fn, name)
            value = None
        if reply is None:
            reply = value
    return reply
