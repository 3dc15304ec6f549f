"""``tether.RealtimeClient``: the public API, over the driver that runs the core on anyio.

Everything a user calls is here; what moves data and time in and out of the sans-IO core
lives in :mod:`tether._driver` (``specs/client.md``): a synchronous call goes into the core
(:class:`tether.core.Connection`), then the driver pumps what came out.

Each public method first compares the caller's thread with the event loop thread that entered
the client (``specs/client.md`` "Threads"): the synchronous ones hand a call from another
thread over to that loop, the ``async`` ones refuse it with a ``RuntimeError`` that says what
to use instead. The comparison is one ``threading.get_ident()`` call, about 40 ns.
"""

from __future__ import annotations

import functools
import random
import secrets
import ssl as _ssl
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from threading import get_ident
from types import TracebackType
from typing import Any, Final, TypeVar, overload

import anyio

from ._driver import (
    RESERVED_LIFECYCLE_NAMES,
    AuthSource,
    CallWaiter,
    Credentials,
    Driver,
    StrMapSource,
)
from ._event_stream import EventStream
from ._listeners import (
    AnyListener,
    AttemptListener,
    ConnectListener,
    DisconnectListener,
    DroppedListener,
    ErrorListener,
    Listener,
    ListenerRegistry,
    PayloadListener,
    ResumeListener,
    StateListener,
    UserEventListener,
)
from ._url import redact_url
from .core import Connection, CoreOptions, OverflowPolicy, State, TetherError
from .transport import (
    TRANSPORT_NAMES,
    Connector,
    EngineConnector,
    WebSocketConnector,
    check_transports,
)

__all__ = ["Member", "RealtimeClient"]

F = TypeVar("F", bound=Callable[..., Any])

#: How long ``aclose()`` lets the dispatcher deliver the last events (disconnect ...).
CLOSE_DRAIN_TIMEOUT: Final = 5.0

#: The backoff jitter source of every client: no generator state to copy per client, nothing
#: a ``random.seed()`` in user code could synchronise, and safe across fork (each draw reads
#: the OS).
_JITTER: Final = random.SystemRandom().random


#: Members asked for per ``members`` page (the hub's most, specs/hub-wire-format.md §2.7.1).
MEMBERS_PAGE: Final = 1000


@dataclass(frozen=True, slots=True)
class Member:
    """A channel member as ``get_members`` returns it: the sid and the shared profile.

    ``oversized`` is ``True`` when the profile was too large to fit in a message this client
    accepts: ``data`` is then ``None`` and the profile unknown.
    """

    id: str
    data: Any
    oversized: bool = False


class RealtimeClient:
    """A Socket.IO client that stays connected: ``async with RealtimeClient(url) as rt``.

    Every option is described in the README ("Options"). The client belongs to the event
    loop that entered it. From another thread its synchronous methods (``emit``, ``send``,
    ``join``, ``close``, ``on`` ...) still work: they run in that loop while the calling
    thread waits. Its ``async`` methods raise ``RuntimeError`` there; use
    :class:`tether.sync.RealtimeClient` in code without an event loop.
    """

    __slots__ = ("__weakref__", "_auto_connect", "_driver", "_events", "_lifecycle", "_url")

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
        transports: Sequence[str] = TRANSPORT_NAMES,
        proxy: str | None = None,
        trust_env: bool = True,
        retries: int = 0,
        ack_timeout: float | None = None,
    ) -> None:
        # Everything is validated here, at the caller's line.
        credentials = Credentials(url, path, auth, headers, query)
        if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext or None, got {type(ssl).__name__}")
        if isinstance(max_message_size, bool) or not isinstance(max_message_size, int):
            raise TypeError("max_message_size must be an int")
        if max_message_size < 1:
            raise ValueError(f"max_message_size must be >= 1, got {max_message_size}")
        core = Connection(
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
                retries=retries,
                ack_timeout=ack_timeout,
                # The client instance's identity for a hub (specs/delivery.md §4.1).
                client_id=secrets.token_urlsafe(16),
            ),
            random=_JITTER,
        )
        self._url = url
        self._auto_connect = bool(auto_connect)
        self._events = ListenerRegistry()
        self._lifecycle = ListenerRegistry()
        self._driver = Driver(
            core,
            self._events,
            self._lifecycle,
            credentials,
            _make_connector(transport, transports, proxy, trust_env),
            ssl=ssl,
            max_message_size=max_message_size,
        )

    def __repr__(self) -> str:
        # Never the query, headers or auth: they may hold secrets.
        return f"<RealtimeClient {redact_url(self._url)} state={self.state.value}>"

    # ------------------------------------------------------------------ context manager

    async def __aenter__(self) -> RealtimeClient:
        driver = self._driver
        if driver.task_group is not None:
            raise RuntimeError("this RealtimeClient is already entered")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        driver.start(task_group)
        if self._auto_connect:
            driver.dispatcher.hold_entering()
            self.open()  # first: the session task starts connecting before any timer
            driver.dispatcher.entered()
        driver.started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The block's exception is not handed to the task group: anyio would wrap it in an
        # ExceptionGroup. Returning None lets it reach the caller as itself (contract 2.9),
        # and no exception can come out of the client's own tasks (specs/client.md "Errors").
        driver = self._driver
        task_group = driver.task_group
        assert task_group is not None
        try:
            with anyio.CancelScope(shield=True):
                await self.aclose()
        finally:
            task_group.cancel_scope.cancel()
            driver.stop()
            driver.dispatcher.end_streams()
            try:
                await task_group.__aexit__(None, None, None)
            except anyio.get_cancelled_exc_class():
                # An enclosing scope was cancelled while the client's tasks ended. With an
                # exception from the block pending, that one goes on: a cancellation is
                # delivered again at the next checkpoint, the block's error would be lost.
                if exc is None:
                    raise
            finally:
                driver.left()

    # ------------------------------------------------------------------ connection management

    @property
    def state(self) -> State:
        """The lifecycle state: ``IDLE``, ``CONNECTING``, ``CONNECTED``, ``RECONNECTING`` or
        ``CLOSED``."""
        return self._driver.core.state

    def is_connected(self) -> bool:
        """``True`` exactly while the state is ``CONNECTED``."""
        return self._driver.core.is_connected

    def get_socket_id(self) -> str | None:
        """The server's Socket.IO id for this client while connected, else ``None``."""
        return self._driver.core.sid

    @property
    def recovered(self) -> bool:
        """Whether the last connect restored the previous session (connection state recovery)."""
        return self._driver.core.recovered

    @property
    def buffered(self) -> int:
        """How many messages wait in the offline buffer."""
        return self._driver.core.buffered

    @property
    def transport_name(self) -> str | None:
        """The transport of the connection (``"websocket"`` or ``"polling"``; it changes
        when polling upgrades to WebSocket), or ``None`` when there is none."""
        session = self._driver.session
        transport = None if session is None else session.transport
        return None if transport is None else transport.name

    def open(self) -> None:
        """Start connecting from ``idle`` or ``closed``; idempotent otherwise. Non-blocking."""
        driver = self._driver
        thread = driver.thread
        if thread != get_ident():
            if thread is None:
                raise _not_entered("open")
            driver.call_in_loop(self.open)
            return
        driver.watch.reset()
        driver.core.open(now=anyio.current_time())
        driver.pump()

    def close(self) -> None:
        """Close on purpose and stay closed until :meth:`open`. Idempotent, non-blocking."""
        driver = self._driver
        thread = driver.thread
        if thread != get_ident() and thread is not None:
            driver.call_in_loop(self.close)
            return
        driver.core.close(now=_now())
        driver.pump()

    async def aclose(self) -> None:
        """Close and wait until the transport is gone and the last events were delivered."""
        driver = self._driver
        thread = driver.thread
        if thread != get_ident():
            if thread is not None:
                raise _wrong_thread("aclose", "close()")
            self.close()  # never entered: no transport, no task to wait for
            return
        self.close()
        await driver.sessions_ended()
        with anyio.move_on_after(CLOSE_DRAIN_TIMEOUT):
            await driver.dispatcher.wait_idle()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once connected; raise :class:`~tether.ConnectError` when the server refuses
        or the reconnect attempts are exhausted, ``TimeoutError`` after ``timeout`` seconds."""
        driver = self._driver
        thread = driver.thread
        if thread != get_ident():
            raise _misplaced(thread, "wait_connected")
        watch = driver.watch
        if driver.core.is_connected:
            return  # no cancel scope to make
        if timeout is None:
            await watch.wait_connected()
            return
        with anyio.fail_after(timeout):
            await watch.wait_connected()

    # ------------------------------------------------------------------ listeners

    def _registry(self, event: str) -> ListenerRegistry:
        # Only Socket.IO's reserved names are lifecycle events in the event namespace: no
        # server can emit them, so a server event never reaches a lifecycle listener.
        return self._lifecycle if event in RESERVED_LIFECYCLE_NAMES else self._events

    def _in_loop(self, change: Callable[[], None]) -> None:
        """Make a change to the listeners in the client's thread (it reads them there)."""
        driver = self._driver
        thread = driver.thread
        if thread != get_ident() and thread is not None:
            driver.call_in_loop(change)
        else:
            change()

    def _add(
        self, registry: ListenerRegistry, event: str, fn: Listener, once: bool = False
    ) -> None:
        self._in_loop(functools.partial(registry.add, event, fn, once=once))

    @overload
    def on(self, event: str) -> Callable[[AnyListener], AnyListener]: ...
    @overload
    def on(self, event: str, fn: AnyListener) -> AnyListener: ...
    def on(
        self, event: str, fn: AnyListener | None = None
    ) -> AnyListener | Callable[[AnyListener], AnyListener]:
        """Call ``fn(*args)`` for every ``event``; usable as ``@rt.on("name")``.

        ``"connect"``, ``"disconnect"`` and ``"connect_error"`` are the lifecycle events of
        :meth:`on_connect`, :meth:`on_disconnect` and :meth:`on_error`; any other name is a
        server event.
        """
        if fn is None:
            return lambda f: self.on(event, f)
        self._add(self._registry(event), event, fn)
        return fn

    @overload
    def once(self, event: str) -> Callable[[AnyListener], AnyListener]: ...
    @overload
    def once(self, event: str, fn: AnyListener) -> AnyListener: ...
    def once(
        self, event: str, fn: AnyListener | None = None
    ) -> AnyListener | Callable[[AnyListener], AnyListener]:
        """Like :meth:`on`, for the next ``event`` only."""
        if fn is None:
            return lambda f: self.once(event, f)
        self._add(self._registry(event), event, fn, once=True)
        return fn

    def off(self, event: str | None = None, fn: Listener | None = None) -> None:
        """Remove listeners: ``off()`` all of them, ``off(event)`` that event's, ``off(event,
        fn)`` one."""

        def remove() -> None:
            if event is None:
                self._events.remove(None, fn)
                self._lifecycle.remove(None, fn)
            else:
                self._registry(event).remove(event, fn)

        self._in_loop(remove)

    def on_any(self, fn: AnyListener) -> AnyListener:
        """Call ``fn(event, *args)`` for every incoming server event."""
        self._in_loop(functools.partial(self._events.add_any, fn))
        return fn

    def off_any(self, fn: Listener | None = None) -> None:
        """Remove one catch-all listener, or all of them."""
        self._in_loop(functools.partial(self._events.remove_any, fn))

    def listeners(self, event: str) -> list[Listener]:
        """The listeners registered for ``event``."""
        return self._registry(event).listeners(event)

    def on_connect(self, fn: ConnectListener) -> ConnectListener:
        """Call ``fn()`` after every successful (re)connect."""
        self._add(self._lifecycle, "connect", fn)
        return fn

    def on_disconnect(self, fn: DisconnectListener) -> DisconnectListener:
        """Call ``fn(reason)`` once per connected → not connected."""
        self._add(self._lifecycle, "disconnect", fn)
        return fn

    def on_error(self, fn: ErrorListener) -> ErrorListener:
        """Call ``fn(error)`` for every failed attempt (a :class:`~tether.ConnectError`)."""
        self._add(self._lifecycle, "connect_error", fn)
        return fn

    def on_reconnect_attempt(self, fn: AttemptListener) -> AttemptListener:
        """Call ``fn(attempt)`` as reconnect attempt 1, 2, 3 ... starts."""
        self._add(self._lifecycle, "reconnect_attempt", fn)
        return fn

    def on_reconnect(self, fn: AttemptListener) -> AttemptListener:
        """Call ``fn(attempt)`` when reconnect attempt ``attempt`` succeeded."""
        self._add(self._lifecycle, "reconnect", fn)
        return fn

    def on_reconnect_failed(self, fn: ConnectListener) -> ConnectListener:
        """Call ``fn()`` when the reconnect attempts are exhausted."""
        self._add(self._lifecycle, "reconnect_failed", fn)
        return fn

    def on_state_change(self, fn: StateListener) -> StateListener:
        """Call ``fn(change)`` for every lifecycle move (a :class:`~tether.StateChanged`)."""
        self._add(self._lifecycle, "state_change", fn)
        return fn

    def on_buffer_overflow(self, fn: DroppedListener) -> DroppedListener:
        """Call ``fn(dropped)`` for every message dropped (a :class:`~tether.MessageDropped`)."""
        self._add(self._lifecycle, "buffer_overflow", fn)
        return fn

    def on_resume(self, fn: ResumeListener) -> ResumeListener:
        """Call ``fn(resume)`` after a reconnect (or ``close()`` + ``open()``) for each hub
        stream the client had joined: its channels, and the broadcasts as ``channel=None``
        (a :class:`~tether.StreamResumed`: ``resumed``, ``replayed``, ``reason``)."""
        self._add(self._lifecycle, "resume", fn)
        return fn

    def on_join(self, fn: PayloadListener) -> PayloadListener:
        """Call ``fn(payload)`` when a member joins one of your channels."""
        return self.on("channel:join", fn)

    def on_leave(self, fn: PayloadListener) -> PayloadListener:
        """Call ``fn(payload)`` when a member leaves one of your channels."""
        return self.on("channel:leave", fn)

    def on_update(self, fn: PayloadListener) -> PayloadListener:
        """Call ``fn(payload)`` when a member of one of your channels updates its profile."""
        return self.on("channel:update", fn)

    def on_user_event(self, fn: UserEventListener) -> UserEventListener:
        """Call ``fn(event_name, session)`` for every ``user:*`` event from the server."""
        if not callable(fn):
            raise TypeError("listener must be callable")
        dispatcher = self._driver.dispatcher

        def add() -> None:
            dispatcher.user_event_listeners = (*dispatcher.user_event_listeners, fn)

        self._in_loop(add)
        return fn

    def events(self, *names: str, max_queued: int = 1000) -> EventStream:
        """Iterate over incoming events as ``(name, args)``: all of them, or only ``names``.

        ``async for name, args in rt.events("chat"): ...``; see :class:`~tether.EventStream`
        for the bounded queue and :class:`~tether.EventsOverflow`.
        """
        driver = self._driver
        thread = driver.thread
        if thread != get_ident() and thread is not None:
            raise _wrong_thread("events", "tether.sync.RealtimeClient.events()")
        stream = EventStream(frozenset(names), max_queued)
        dispatcher = driver.dispatcher
        if dispatcher.streams is None:
            dispatcher.streams = weakref.WeakSet()
        dispatcher.streams.add(stream)
        return stream

    # ------------------------------------------------------------------ messages

    def emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` with JSON/bytes ``args``; buffered while not connected. Non-blocking."""
        driver = self._driver
        thread = driver.thread
        if thread != get_ident() and thread is not None:
            driver.call_in_loop(self.emit, event, *args)
            return
        driver.core.emit(event, *args, now=_now())
        driver.pump()

    async def call(
        self,
        event: str,
        *args: Any,
        timeout: float | None = 30.0,
        retries: int | None = None,
        ack_timeout: float | None = None,
    ) -> Any:
        """Emit with an acknowledgement and return the ack's value (a tuple if several).

        ``timeout`` bounds the whole call, time in the offline buffer included (``None``: no
        bound). ``retries`` and ``ack_timeout`` override the client's for this call: a try
        ends with the ack, after ``ack_timeout``, or with a disconnect, and up to
        ``retries`` more follow (specs/delivery.md §2). Raises :class:`~tether.AckTimeout`
        or :class:`~tether.Disconnected` (the last try's error), or
        :class:`~tether.BufferFull`.
        """
        driver = self._driver
        thread = driver.thread
        if thread != get_ident():
            raise _misplaced(thread, "call")
        now = _now()
        call_id = driver.core.call(
            event, *args, timeout=timeout, now=now, retries=retries, ack_timeout=ack_timeout
        )
        waiter = CallWaiter()
        driver.calls[call_id] = waiter
        try:
            session = driver.session
            writes = None if session is None else session.writes
            if writes is None or session is None or session.closing:
                driver.pump()
            else:
                # Write the call from this task: no task and no task switch per round trip.
                # Bounded by the call's own timeout (a write cut off fails the transport);
                # the caller's cancellation waits for the write (a cancelled send would).
                driver.pump(wake_writer=False)
                waiter.writing = anyio.CancelScope(shield=True)
                await writes.write_now(waiter.writing)
                waiter.writing = None
            await waiter.done.wait()
        finally:
            driver.calls.pop(call_id, None)
            if not waiter.done.is_set():
                # Cancelled: a call nobody waits for is not sent late, nor tried again.
                driver.core.abandon_call(call_id)
        if waiter.error is not None:
            raise waiter.error
        result = waiter.result
        if not result:
            return None
        return result[0] if len(result) == 1 else result

    # --- channels (specs/hub-wire-format.md) ------------------------------------------------

    def join(self, channel: str, echo: bool | None = None) -> None:
        """Join ``channel`` (re-joined after every reconnect). Non-blocking."""
        driver = self._driver
        thread = driver.thread
        if thread != get_ident() and thread is not None:
            driver.call_in_loop(self.join, channel, echo)
            return
        driver.core.join(channel, echo, now=_now())
        driver.pump()

    def leave(self, channel: str, echo: bool | None = None) -> None:
        """Leave ``channel``. Non-blocking."""
        driver = self._driver
        thread = driver.thread
        if thread != get_ident() and thread is not None:
            driver.call_in_loop(self.leave, channel, echo)
            return
        driver.core.leave(channel, echo, now=_now())
        driver.pump()

    def send(self, channel: str, event: str, message: Any, echo: bool | None = None) -> None:
        """Send ``event`` with ``message`` to the members of ``channel``. Non-blocking."""
        driver = self._driver
        thread = driver.thread
        if thread != get_ident() and thread is not None:
            driver.call_in_loop(self.send, channel, event, message, echo)
            return
        driver.core.send(channel, event, message, echo, now=_now())
        driver.pump()

    def broadcast(self, event: str, message: Any, echo: bool | None = None) -> None:
        """Send ``event`` with ``message`` to every client of the hub. Non-blocking."""
        driver = self._driver
        thread = driver.thread
        if thread != get_ident() and thread is not None:
            driver.call_in_loop(self.broadcast, event, message, echo)
            return
        driver.core.broadcast(event, message, echo, now=_now())
        driver.pump()

    def update_profile(self, data: Any, echo: bool | None = None) -> None:
        """Share ``data`` as this member's profile (restored after every reconnect)."""
        driver = self._driver
        thread = driver.thread
        if thread != get_ident() and thread is not None:
            driver.call_in_loop(self.update_profile, data, echo)
            return
        driver.core.update_profile(data, echo, now=_now())
        driver.pump()

    async def get_members(self, channel: str, *, timeout: float | None = 30.0) -> list[Member]:
        """The members of ``channel`` across the hub, with their profiles, in join order.

        Asked for in pages that fit this client's ``max_message_size``
        (specs/hub-wire-format.md §2.7.1), within ``timeout`` for all of them.
        """
        thread = self._driver.thread
        if thread != get_ident():
            raise _misplaced(thread, "get_members")
        if not isinstance(channel, str) or not channel:
            raise ValueError("channel name must be a non-empty str")
        deadline = None if timeout is None else anyio.current_time() + timeout
        members: dict[str, Member] = {}
        request: dict[str, Any] = {
            "channel": channel,
            "limit": MEMBERS_PAGE,
            "max_bytes": max(1024, self._driver.max_message_size),
        }
        while True:
            left = None if deadline is None else max(deadline - anyio.current_time(), 0.001)
            reply = await self.call("members", request, timeout=left)
            if isinstance(reply, list):  # a hub without pages answers the whole list
                return [_member(item) for item in reply if isinstance(item, dict)]
            if not isinstance(reply, dict):
                raise TetherError("members: the server's reply is not a list or a page")
            if "error" in reply:
                raise TetherError(f"members: {reply['error']}")
            page = reply.get("members")
            if not isinstance(page, list):
                raise TetherError("members: the server's page holds no member list")
            for item in page:
                if isinstance(item, dict):
                    member = _member(item)
                    # A member who left and joined again while we paged is listed again,
                    # later: keep the last entry, in its new place.
                    members.pop(member.id, None)
                    members[member.id] = member
            cursor = reply.get("next")
            if cursor is None:
                return list(members.values())
            if not isinstance(cursor, str):
                raise TetherError("members: the server's next cursor is not a string")
            request["cursor"] = cursor


def _member(item: dict[str, Any]) -> Member:
    return Member(str(item.get("id")), item.get("data"), item.get("oversized") is True)


def _not_entered(method: str) -> RuntimeError:
    return RuntimeError(
        f"RealtimeClient.{method}(): the client is not running; use it inside "
        "`async with tether.RealtimeClient(...) as rt:` (or, without an event loop, "
        "`with tether.sync.RealtimeClient(...) as rt:`)"
    )


def _wrong_thread(method: str, instead: str) -> RuntimeError:
    return RuntimeError(
        f"RealtimeClient.{method}() was called from a thread other than the event loop's "
        f"that entered the client; from another thread use {instead}, or "
        "tether.sync.RealtimeClient, whose every method works from any thread"
    )


def _misplaced(thread: int | None, method: str) -> RuntimeError:
    """Why an ``async`` method cannot run here: the client is not entered, or this is not
    the thread of its event loop."""
    if thread is None:
        return _not_entered(method)
    return _wrong_thread(
        method,
        f"anyio.from_thread.run(rt.{method}, ...) to run it in that loop (outside anyio's "
        "worker threads, pass it the token=anyio.lowlevel.current_token() of that loop)",
    )


def _now() -> float:
    # Before the client is entered there is no event loop to ask; the core only uses the time
    # for deadlines of a connection that cannot exist yet.
    try:
        return anyio.current_time()
    except Exception:
        return 0.0


#: The connectors of the named WebSocket libraries, shared by every client that names one: a
#: connector holds only its settings and a lazily made default TLS context.
_WEBSOCKET_CONNECTORS: dict[str, Connector] = {}
#: The Engine.IO connectors over them, shared by every client with the same settings.
_ENGINE_CONNECTORS: dict[tuple[str, tuple[str, ...], str | None, bool], Connector] = {}


def _make_connector(
    transport: Connector | str, transports: Sequence[str], proxy: str | None, trust_env: bool
) -> Connector:
    """The connector for the transport options (``specs/transports.md``).

    ``transport`` names the WebSocket library (``"wsproto"``, the default, or
    ``"websockets"``, the ``fast`` extra) that an :class:`EngineConnector` uses beside HTTP
    long-polling, in the order of ``transports``, through ``proxy`` or the environment's.
    A :class:`Connector` object is used as it is (tests, custom transports).
    """
    if not isinstance(transport, str):
        if not callable(getattr(transport, "connect", None)):
            raise ValueError(
                f"transport must be 'wsproto', 'websockets' or a Connector, got {transport!r}"
            )
        return transport
    if transport not in ("wsproto", "websockets"):
        raise ValueError(
            f"transport must be 'wsproto', 'websockets' or a Connector, got {transport!r}"
        )
    names = check_transports(transports)
    key = (transport, names, proxy, bool(trust_env))
    engine = _ENGINE_CONNECTORS.get(key)
    if engine is None:
        websocket = _WEBSOCKET_CONNECTORS.get(transport)
        if websocket is None:
            if transport == "wsproto":
                websocket = WebSocketConnector()
            else:
                from .transport import FastWebSocketConnector

                websocket = FastWebSocketConnector()
            websocket = _WEBSOCKET_CONNECTORS.setdefault(transport, websocket)
        engine = EngineConnector(
            transports=names, websocket=websocket, proxy=proxy, trust_env=trust_env
        )
        # A connector for each proxy URL a program uses, not one per client.
        engine = _ENGINE_CONNECTORS.setdefault(key, engine)
    return engine
