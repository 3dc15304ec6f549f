"""``tether.sync.RealtimeClient``: the client for code without an event loop.

It is a :class:`tether.RealtimeClient` on an event loop of its own: entering the client
starts an anyio blocking portal (``anyio.from_thread.start_blocking_portal``: an event loop in
a daemon thread) and enters the async client in it; leaving closes the connection, ends the
loop and joins its thread. Every method is the async client's, called from the caller's
thread (``specs/client.md`` "The blocking client"):

* the non-blocking ones (``emit``, ``send``, ``join``, ``close``, ``on`` ...) directly: the
  async client hands a call from another thread over to its loop and waits for it there;
* the blocking ones (``call``, ``wait_connected``, ``get_members``, the ``events()``
  iterator) as a task of the portal, whose result the caller waits for. Their timeouts are
  kept in the loop, and an interrupted wait (Ctrl-C) cancels its task.

Listeners run in one thread of the client, its listener thread (:mod:`._listener_thread`),
so they may block without holding up the connection. ``auth``, ``headers`` and ``query``
callables run in a worker thread, so they may block too (a token fetched over HTTP), still
bounded by the attempt's ``timeout``.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import ssl as _ssl
import threading
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Future
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Final, TypeVar, overload

import anyio
import anyio.lowlevel
import anyio.to_thread
from anyio.from_thread import BlockingPortal, start_blocking_portal

from tether._client import Member
from tether._client import RealtimeClient as AsyncRealtimeClient
from tether._driver import AuthSource, StrMapSource
from tether._listeners import (
    AnyListener,
    AttemptListener,
    ConnectListener,
    DisconnectListener,
    DroppedListener,
    ErrorListener,
    Listener,
    PayloadListener,
    ResumeListener,
    StateListener,
    UserEventListener,
)
from tether._url import redact_url
from tether.core import OverflowPolicy, State
from tether.transport import TRANSPORT_NAMES, Connector

from ._events import EventIterator
from ._listener_thread import ASYNC_LISTENER, ListenerThread

__all__ = ["RealtimeClient"]

logger = logging.getLogger("tether")

T = TypeVar("T")

#: The event loops the blocking client can run on.
BACKENDS: Final = ("asyncio", "trio")

#: How long leaving the client waits for a listener that still runs once the connection is
#: closed (and the async client gave its listeners 5 s to finish); then the listener thread,
#: a daemon, is left to finish it alone.
LISTENER_STOP_TIMEOUT: Final = 5.0

#: The clients still entered, closed when the interpreter exits (:func:`_close_at_exit`).
_RUNNING: weakref.WeakSet[RealtimeClient] = weakref.WeakSet()


class RealtimeClient:
    """tether's client for code without an event loop: ``with RealtimeClient(url) as rt:``.

    It takes the options of :class:`tether.RealtimeClient` (the README's "Options"), plus
    ``backend`` (``"asyncio"``, the default, or ``"trio"``) and ``backend_options`` for the
    event loop it runs in its own thread. Its methods are those of
    :class:`tether.RealtimeClient`; the ``async`` ones block here (``call``,
    ``wait_connected``, ``get_members``, with the same timeouts) and ``events()`` is a
    blocking iterator. Every method is safe to call from any thread while the client is
    entered. Listeners run one at a time, in order, in the client's listener thread, so they
    may block; they are plain functions (an ``async def`` listener is a ``TypeError``).

    Before ``with`` and after it the client has no thread of its own: listeners can be
    registered and messages buffered then, from one thread. A client still entered when
    the interpreter exits is closed then (its server sees a clean disconnect).
    """

    __slots__ = (
        "__weakref__",
        "_backend",
        "_backend_options",
        "_client",
        "_client_cm",
        "_listener_thread",
        "_lock",
        "_portal",
        "_portal_cm",
        "_portal_thread",
        "_url",
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
        transports: Sequence[str] = TRANSPORT_NAMES,
        proxy: str | None = None,
        trust_env: bool = True,
        retries: int = 0,
        ack_timeout: float | None = None,
        backend: str = "asyncio",
        backend_options: Mapping[str, Any] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be 'asyncio' or 'trio', got {backend!r}")
        self._client = AsyncRealtimeClient(
            url,
            path=path,
            namespace=namespace,
            auth=_off_the_loop(auth),
            headers=_off_the_loop(headers),
            query=_off_the_loop(query),
            reconnection=reconnection,
            reconnection_attempts=reconnection_attempts,
            reconnection_delay=reconnection_delay,
            reconnection_delay_max=reconnection_delay_max,
            randomization_factor=randomization_factor,
            timeout=timeout,
            auto_connect=auto_connect,
            buffer_messages=buffer_messages,
            max_buffered=max_buffered,
            max_buffered_bytes=max_buffered_bytes,
            overflow=overflow,
            echo_messages=echo_messages,
            auto_join_channels=auto_join_channels,
            ssl=ssl,
            max_message_size=max_message_size,
            transport=transport,
            transports=transports,
            proxy=proxy,
            trust_env=trust_env,
            retries=retries,
            ack_timeout=ack_timeout,
        )
        self._url = url
        self._backend = backend
        self._backend_options = None if backend_options is None else dict(backend_options)
        self._listener_thread = ListenerThread()
        # The async client's dispatcher hands every fact's listeners to the listener thread.
        self._client._driver.dispatcher.run_listeners = self._listener_thread.run_listeners
        self._lock = threading.Lock()  # entering and leaving
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._portal_thread: int | None = None
        self._client_cm: AbstractContextManager[AsyncRealtimeClient] | None = None

    def __repr__(self) -> str:
        # Never the query, headers or auth: they may hold secrets.
        return f"<tether.sync.RealtimeClient {redact_url(self._url)} state={self.state.value}>"

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> RealtimeClient:
        with self._lock:
            if self._portal is not None:
                raise RuntimeError("this tether.sync.RealtimeClient is already entered")
            portal_cm = start_blocking_portal(
                self._backend, self._backend_options, name="tether-event-loop"
            )
            portal = portal_cm.__enter__()
            try:
                token, self._portal_thread = portal.call(_loop_identity)
                self._listener_thread.start(token)
                client_cm = portal.wrap_async_context_manager(self._client)
                client_cm.__enter__()
            except BaseException as exc:
                self._listener_thread.stop(LISTENER_STOP_TIMEOUT)
                portal_cm.__exit__(type(exc), exc, exc.__traceback__)
                self._portal_thread = None
                raise
            self._portal_cm = portal_cm
            self._portal = portal
            self._client_cm = client_cm
            _RUNNING.add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()

    def _leave(self) -> None:
        """Close the connection, then end the listener thread and the event loop."""
        with self._lock:
            portal, portal_cm, client_cm = self._portal, self._portal_cm, self._client_cm
            if portal is None or portal_cm is None or client_cm is None:
                return
            if threading.get_ident() == self._portal_thread:
                raise RuntimeError(
                    "tether.sync.RealtimeClient cannot be left from its own event loop"
                )
            _RUNNING.discard(self)
            try:
                client_cm.__exit__(None, None, None)
            finally:
                # Other threads may have calls under way: they end with the loop.
                self._portal = self._client_cm = self._portal_cm = None
                if not self._listener_thread.stop(LISTENER_STOP_TIMEOUT):
                    logger.warning(
                        "tether: a listener still runs %.0f s after the client closed; "
                        "its thread is left to finish it",
                        LISTENER_STOP_TIMEOUT,
                    )
                try:
                    portal.call(portal.stop, True)  # cancel what other threads still wait for
                finally:
                    portal_cm.__exit__(None, None, None)
                    self._portal_thread = None

    # ------------------------------------------------------------------ blocking calls

    def _blocking(self, method: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` in the client's event loop and wait for its outcome here."""
        portal = self._portal
        if portal is None:
            raise RuntimeError(
                f"tether.sync.RealtimeClient.{method}(): the client is not running; use it "
                "inside `with tether.sync.RealtimeClient(...) as rt:`"
            )
        if threading.get_ident() == self._portal_thread:
            raise RuntimeError(
                f"tether.sync.RealtimeClient.{method}() would block the client's own event "
                "loop; call it from another thread"
            )
        try:
            future: Future[T] = portal.start_task_soon(fn)
        except RuntimeError:
            raise RuntimeError(
                f"tether.sync.RealtimeClient.{method}(): the client stopped"
            ) from None
        try:
            return future.result()
        except CancelledError:
            raise RuntimeError(
                f"tether.sync.RealtimeClient.{method}(): the client left its `with` block "
                "while this waited"
            ) from None
        except BaseException:
            future.cancel()  # interrupted (Ctrl-C): the task in the loop ends too
            raise

    # ------------------------------------------------------------------ connection management

    @property
    def state(self) -> State:
        """The lifecycle state: ``IDLE``, ``CONNECTING``, ``CONNECTED``, ``RECONNECTING`` or
        ``CLOSED``."""
        return self._client.state

    def is_connected(self) -> bool:
        """``True`` exactly while the state is ``CONNECTED``."""
        return self._client.is_connected()

    def get_socket_id(self) -> str | None:
        """The server's Socket.IO id for this client while connected, else ``None``."""
        return self._client.get_socket_id()

    @property
    def recovered(self) -> bool:
        """Whether the last connect restored the previous session (connection state recovery)."""
        return self._client.recovered

    @property
    def buffered(self) -> int:
        """How many messages wait in the offline buffer."""
        return self._client.buffered

    @property
    def transport_name(self) -> str | None:
        """The transport of the connection (``"websocket"`` or ``"polling"``), or ``None``."""
        return self._client.transport_name

    def open(self) -> None:
        """Start connecting from ``idle`` or ``closed``; idempotent otherwise. Non-blocking."""
        if self._portal is None:
            raise RuntimeError(
                "tether.sync.RealtimeClient.open(): the client is not running; use it inside "
                "`with tether.sync.RealtimeClient(...) as rt:`"
            )
        self._client.open()

    def close(self) -> None:
        """Close on purpose and stay closed until :meth:`open`. Idempotent, non-blocking;
        leaving the ``with`` block closes too, and waits until the transport is gone."""
        self._client.close()

    def wait_connected(self, timeout: float | None = None) -> None:
        """Block until connected; raise :class:`~tether.ConnectError` when the server refuses
        or the reconnect attempts are exhausted, ``TimeoutError`` after ``timeout`` seconds."""
        self._blocking("wait_connected", functools.partial(self._client.wait_connected, timeout))

    # ------------------------------------------------------------------ listeners

    @overload
    def on(self, event: str) -> Callable[[AnyListener], AnyListener]: ...
    @overload
    def on(self, event: str, fn: AnyListener) -> AnyListener: ...
    def on(
        self, event: str, fn: AnyListener | None = None
    ) -> AnyListener | Callable[[AnyListener], AnyListener]:
        """Call ``fn(*args)`` for every ``event``; usable as ``@rt.on("name")``."""
        if fn is None:
            return lambda f: self.on(event, f)
        return self._client.on(event, _plain(fn))

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
        return self._client.once(event, _plain(fn))

    def off(self, event: str | None = None, fn: Listener | None = None) -> None:
        """Remove listeners: ``off()`` all of them, ``off(event)`` that event's, ``off(event,
        fn)`` one."""
        self._client.off(event, fn)

    def on_any(self, fn: AnyListener) -> AnyListener:
        """Call ``fn(event, *args)`` for every incoming server event."""
        return self._client.on_any(_plain(fn))

    def off_any(self, fn: Listener | None = None) -> None:
        """Remove one catch-all listener, or all of them."""
        self._client.off_any(fn)

    def listeners(self, event: str) -> list[Listener]:
        """The listeners registered for ``event``."""
        return self._client.listeners(event)

    def on_connect(self, fn: ConnectListener) -> ConnectListener:
        """Call ``fn()`` after every successful (re)connect."""
        return self._client.on_connect(_plain(fn))

    def on_disconnect(self, fn: DisconnectListener) -> DisconnectListener:
        """Call ``fn(reason)`` once per connected → not connected."""
        return self._client.on_disconnect(_plain(fn))

    def on_error(self, fn: ErrorListener) -> ErrorListener:
        """Call ``fn(error)`` for every failed attempt (a :class:`~tether.ConnectError`)."""
        return self._client.on_error(_plain(fn))

    def on_reconnect_attempt(self, fn: AttemptListener) -> AttemptListener:
        """Call ``fn(attempt)`` as reconnect attempt 1, 2, 3 ... starts."""
        return self._client.on_reconnect_attempt(_plain(fn))

    def on_reconnect(self, fn: AttemptListener) -> AttemptListener:
        """Call ``fn(attempt)`` when reconnect attempt ``attempt`` succeeded."""
        return self._client.on_reconnect(_plain(fn))

    def on_reconnect_failed(self, fn: ConnectListener) -> ConnectListener:
        """Call ``fn()`` when the reconnect attempts are exhausted."""
        return self._client.on_reconnect_failed(_plain(fn))

    def on_state_change(self, fn: StateListener) -> StateListener:
        """Call ``fn(change)`` for every lifecycle move (a :class:`~tether.StateChanged`)."""
        return self._client.on_state_change(_plain(fn))

    def on_buffer_overflow(self, fn: DroppedListener) -> DroppedListener:
        """Call ``fn(dropped)`` for every message dropped (a :class:`~tether.MessageDropped`)."""
        return self._client.on_buffer_overflow(_plain(fn))

    def on_resume(self, fn: ResumeListener) -> ResumeListener:
        """Call ``fn(resume)`` after a reconnect (or ``close()`` + ``open()``) for each hub
        stream the client had joined (a :class:`~tether.StreamResumed`)."""
        return self._client.on_resume(_plain(fn))

    def on_join(self, fn: PayloadListener) -> PayloadListener:
        """Call ``fn(payload)`` when a member joins one of your channels."""
        return self._client.on_join(_plain(fn))

    def on_leave(self, fn: PayloadListener) -> PayloadListener:
        """Call ``fn(payload)`` when a member leaves one of your channels."""
        return self._client.on_leave(_plain(fn))

    def on_update(self, fn: PayloadListener) -> PayloadListener:
        """Call ``fn(payload)`` when a member of one of your channels updates its profile."""
        return self._client.on_update(_plain(fn))

    def on_user_event(self, fn: UserEventListener) -> UserEventListener:
        """Call ``fn(event_name, session)`` for every ``user:*`` event from the server."""
        return self._client.on_user_event(_plain(fn))

    def events(
        self, *names: str, max_queued: int = 1000, timeout: float | None = None
    ) -> EventIterator:
        """Iterate over incoming events as ``(name, args)``: all of them, or only ``names``.

        ``for name, args in rt.events("chat"): ...`` blocks for each event, at most
        ``timeout`` seconds (then ``TimeoutError``); see :class:`EventIterator`.
        """
        portal = self._portal
        if portal is None:
            raise RuntimeError(
                "tether.sync.RealtimeClient.events(): the client is not running; use it "
                "inside `with tether.sync.RealtimeClient(...) as rt:`"
            )
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, got {timeout}")
        stream = portal.call(functools.partial(self._client.events, *names, max_queued=max_queued))
        return EventIterator(stream, portal, timeout)

    # ------------------------------------------------------------------ messages

    def emit(self, event: str, *args: Any) -> None:
        """Emit ``event`` with JSON/bytes ``args``; buffered while not connected. Non-blocking."""
        self._client.emit(event, *args)

    def call(
        self,
        event: str,
        *args: Any,
        timeout: float | None = 30.0,
        retries: int | None = None,
        ack_timeout: float | None = None,
    ) -> Any:
        """Emit with an acknowledgement and block until the ack's value (a tuple if several).

        ``timeout`` bounds the whole call, time in the offline buffer included (``None``: no
        bound); ``retries`` and ``ack_timeout`` override the client's for this call
        (specs/delivery.md §2). Raises :class:`~tether.AckTimeout` or
        :class:`~tether.Disconnected` (the last try's error), or :class:`~tether.BufferFull`.
        """
        return self._blocking(
            "call",
            functools.partial(
                self._client.call,
                event,
                *args,
                timeout=timeout,
                retries=retries,
                ack_timeout=ack_timeout,
            ),
        )

    def join(self, channel: str, echo: bool | None = None) -> None:
        """Join ``channel`` (re-joined after every reconnect). Non-blocking."""
        self._client.join(channel, echo)

    def leave(self, channel: str, echo: bool | None = None) -> None:
        """Leave ``channel``. Non-blocking."""
        self._client.leave(channel, echo)

    def send(self, channel: str, event: str, message: Any, echo: bool | None = None) -> None:
        """Send ``event`` with ``message`` to the members of ``channel``. Non-blocking."""
        self._client.send(channel, event, message, echo)

    def broadcast(self, event: str, message: Any, echo: bool | None = None) -> None:
        """Send ``event`` with ``message`` to every client of the hub. Non-blocking."""
        self._client.broadcast(event, message, echo)

    def update_profile(self, data: Any, echo: bool | None = None) -> None:
        """Share ``data`` as this member's profile (restored after every reconnect)."""
        self._client.update_profile(data, echo)

    def get_members(self, channel: str, *, timeout: float | None = 30.0) -> list[Member]:
        """Block until the hub lists the members of ``channel``, with their profiles, in join
        order (asked for in pages, within ``timeout`` for all of them)."""
        return self._blocking(
            "get_members",
            functools.partial(self._client.get_members, channel, timeout=timeout),
        )


def _loop_identity() -> tuple[anyio.lowlevel.EventLoopToken, int]:
    """The portal's event loop and its thread, read in that thread."""
    return anyio.lowlevel.current_token(), threading.get_ident()


def _plain(fn: T) -> T:
    """``fn``, unless it is an ``async def`` function: the listener thread cannot await."""
    if inspect.iscoroutinefunction(fn):
        raise TypeError(ASYNC_LISTENER)
    return fn


def _off_the_loop(source: Any) -> Any:
    """A sync ``auth``/``headers``/``query`` callable, run in a worker thread: it may block
    (a token fetched over HTTP) without stalling the event loop. The attempt's timeout still
    bounds it: a callable that hangs is abandoned. Plain values and ``async`` callables are
    used as they are."""
    if not callable(source) or inspect.iscoroutinefunction(source):
        return source

    async def in_worker_thread() -> Any:
        value = await anyio.to_thread.run_sync(source, abandon_on_cancel=True)
        if inspect.isawaitable(value):
            value = await value
        return value

    return in_worker_thread


@atexit.register
def _close_at_exit() -> None:
    """Close the clients still entered as the interpreter exits: their threads are daemons
    (they never keep it alive), and their servers see a clean disconnect."""
    for client in list(_RUNNING):
        try:
            client._leave()
        except Exception:
            logger.exception("tether: closing %r at exit failed", client)
