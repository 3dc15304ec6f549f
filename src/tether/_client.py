"""``tether.RealtimeClient``: the public API, over the driver that runs the core on anyio.

Everything a user calls is here; what moves data and time in and out of the sans-IO core
lives in :mod:`tether._driver` (``specs/client.md``): a synchronous call goes into the core
(:class:`tether.core.Connection`), then the driver pumps what came out.
"""

from __future__ import annotations

import random
import secrets
import ssl as _ssl
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from ._listeners import Listener, ListenerRegistry
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

    Every option is described in the README ("Options"). The client is not thread-safe:
    use it from the event loop that entered it.
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
    ) -> bool | None:
        driver = self._driver
        task_group = driver.task_group
        assert task_group is not None
        try:
            with anyio.CancelScope(shield=True):
                await self.aclose()
        finally:
            task_group.cancel_scope.cancel()
            driver.stop()
        return await task_group.__aexit__(exc_type, exc, tb)

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
        if driver.task_group is None:
            raise RuntimeError("enter the client first: `async with RealtimeClient(...) as rt`")
        driver.watch.reset()
        driver.core.open(now=anyio.current_time())
        driver.pump()

    def close(self) -> None:
        """Close on purpose and stay closed until :meth:`open`. Idempotent, non-blocking."""
        driver = self._driver
        driver.core.close(now=_now())
        driver.pump()

    async def aclose(self) -> None:
        """Close and wait until the transport is gone and the last events were delivered."""
        self.close()
        await self._driver.sessions_ended()
        with anyio.move_on_after(CLOSE_DRAIN_TIMEOUT):
            await self._driver.dispatcher.wait_idle()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once connected; raise :class:`~tether.ConnectError` when the server refuses
        or the reconnect attempts are exhausted, ``TimeoutError`` after ``timeout`` seconds."""
        watch = self._driver.watch
        if self._driver.core.is_connected:
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

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, fn: F) -> F: ...
    def on(self, event: str, fn: F | None = None) -> F | Callable[[F], F]:
        """Call ``fn(*args)`` for every ``event``; usable as ``@rt.on("name")``.

        ``"connect"``, ``"disconnect"`` and ``"connect_error"`` are the lifecycle events of
        :meth:`on_connect`, :meth:`on_disconnect` and :meth:`on_error`; any other name is a
        server event.
        """
        if fn is None:
            return lambda f: self.on(event, f)
        self._registry(event).add(event, fn)
        return fn

    @overload
    def once(self, event: str) -> Callable[[F], F]: ...
    @overload
    def once(self, event: str, fn: F) -> F: ...
    def once(self, event: str, fn: F | None = None) -> F | Callable[[F], F]:
        """Like :meth:`on`, for the next ``event`` only."""
        if fn is None:
            return lambda f: self.once(event, f)
        self._registry(event).add(event, fn, once=True)
        return fn

    def off(self, event: str | None = None, fn: Listener | None = None) -> None:
        """Remove listeners: ``off()`` all of them, ``off(event)`` that event's, ``off(event,
        fn)`` one."""
        if event is None:
            self._events.remove(None, fn)
            self._lifecycle.remove(None, fn)
        else:
            self._registry(event).remove(event, fn)

    def on_any(self, fn: F) -> F:
        """Call ``fn(event, *args)`` for every incoming server event."""
        self._events.add_any(fn)
        return fn

    def off_any(self, fn: Listener | None = None) -> None:
        """Remove one catch-all listener, or all of them."""
        self._events.remove_any(fn)

    def listeners(self, event: str) -> list[Listener]:
        """The listeners registered for ``event``."""
        return self._registry(event).listeners(event)

    def on_connect(self, fn: F) -> F:
        """Call ``fn()`` after every successful (re)connect."""
        self._lifecycle.add("connect", fn)
        return fn

    def on_disconnect(self, fn: F) -> F:
        """Call ``fn(reason)`` once per connected → not connected."""
        self._lifecycle.add("disconnect", fn)
        return fn

    def on_error(self, fn: F) -> F:
        """Call ``fn(error)`` for every failed attempt (a :class:`~tether.ConnectError`)."""
        self._lifecycle.add("connect_error", fn)
        return fn

    def on_reconnect_attempt(self, fn: F) -> F:
        """Call ``fn(attempt)`` as reconnect attempt 1, 2, 3 ... starts."""
        self._lifecycle.add("reconnect_attempt", fn)
        return fn

    def on_reconnect(self, fn: F) -> F:
        """Call ``fn(attempt)`` when reconnect attempt ``attempt`` succeeded."""
        self._lifecycle.add("reconnect", fn)
        return fn

    def on_reconnect_failed(self, fn: F) -> F:
        """Call ``fn()`` when the reconnect attempts are exhausted."""
        self._lifecycle.add("reconnect_failed", fn)
        return fn

    def on_state_change(self, fn: F) -> F:
        """Call ``fn(change)`` for every lifecycle move (a :class:`~tether.StateChanged`)."""
        self._lifecycle.add("state_change", fn)
        return fn

    def on_buffer_overflow(self, fn: F) -> F:
        """Call ``fn(dropped)`` for every message dropped (a :class:`~tether.MessageDropped`)."""
        self._lifecycle.add("buffer_overflow", fn)
        return fn

    def on_resume(self, fn: F) -> F:
        """Call ``fn(resume)`` after a reconnect (or ``close()`` + ``open()``) for each hub
        stream the client had joined: its channels, and the broadcasts as ``channel=None``
        (a :class:`~tether.StreamResumed`: ``resumed``, ``replayed``, ``reason``)."""
        self._lifecycle.add("resume", fn)
        return fn

    def on_join(self, fn: F) -> F:
        """Call ``fn(payload)`` when a member joins one of your channels."""
        return self.on("channel:join", fn)

    def on_leave(self, fn: F) -> F:
        """Call ``fn(payload)`` when a member leaves one of your channels."""
        return self.on("channel:leave", fn)

    def on_update(self, fn: F) -> F:
        """Call ``fn(payload)`` when a member of one of your channels updates its profile."""
        return self.on("channel:update", fn)

    def on_user_event(self, fn: F) -> F:
        """Call ``fn(event_name, session)`` for every ``user:*`` event from the server."""
        if not callable(fn):
            raise TypeError("listener must be callable")
        dispatcher = self._driver.dispatcher
        dispatcher.user_event_listeners = (*dispatcher.user_event_listeners, fn)
        return fn

    def events(self, *names: str, max_queued: int = 1000) -> EventStream:
        """Iterate over incoming events as ``(name, args)``: all of them, or only ``names``.

        ``async for name, args in rt.events("chat"): ...``; see :class:`~tether.EventStream`
        for the bounded queue and :class:`~tether.EventsOverflow`.
        """
        stream = EventStream(frozenset(names), max_queued)
        dispatcher = self._driver.dispatcher
        if dispatcher.streams is None:
            dispatcher.streams = weakref.WeakSet()
        dispatcher.streams.add(stream)
        return stream

    # ------------------------------------------------------------------ messages

    def emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` with JSON/bytes ``args``; buffered while not connected. Non-blocking."""
        driver = self._driver
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
                # Bounded by the call's own timeout (a write cut off fails the transport).
                driver.pump(wake_writer=False)
                await writes.write_now(now + timeout if timeout is not None else float("inf"))
            await waiter.done.wait()
        finally:
            driver.calls.pop(call_id, None)
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
        driver.core.join(channel, echo, now=_now())
        driver.pump()

    def leave(self, channel: str, echo: bool | None = None) -> None:
        """Leave ``channel``. Non-blocking."""
        driver = self._driver
        driver.core.leave(channel, echo, now=_now())
        driver.pump()

    def send(self, channel: str, event: str, message: Any, echo: bool | None = None) -> None:
        """Send ``event`` with ``message`` to the members of ``channel``. Non-blocking."""
        driver = self._driver
        driver.core.send(channel, event, message, echo, now=_now())
        driver.pump()

    def broadcast(self, event: str, message: Any, echo: bool | None = None) -> None:
        """Send ``event`` with ``message`` to every client of the hub. Non-blocking."""
        driver = self._driver
        driver.core.broadcast(event, message, echo, now=_now())
        driver.pump()

    def update_profile(self, data: Any, echo: bool | None = None) -> None:
        """Share ``data`` as this member's profile (restored after every reconnect)."""
        driver = self._driver
        driver.core.update_profile(data, echo, now=_now())
        driver.pump()

    async def get_members(self, channel: str, *, timeout: float | None = 30.0) -> list[Member]:
        """The members of ``channel`` across the hub, with their profiles, in join order.

        Asked for in pages that fit this client's ``max_message_size``
        (specs/hub-wire-format.md §2.7.1), within ``timeout`` for all of them.
        """
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
