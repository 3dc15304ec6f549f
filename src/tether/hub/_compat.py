"""Every use of python-socketio's, python-engineio's and uvicorn's private API, in one place.

The hub needs a few things its dependencies do not offer publicly (whether an event asked for
an ack, when the Redis subscription is live, a bounded send queue, closing one transport
without a Socket.IO DISCONNECT, uvicorn without its signal handlers). Each item below names the
upstream code it mirrors or reaches into; ``tests/hub/test_compat.py`` checks every one of
them against the installed versions and fails with the item's name when an upgrade changes
it. Nothing else in ``tether.hub`` touches a dependency's private names.

Written against python-socketio 5.18, python-engineio 4.15 and uvicorn 0.55, the lower
bounds of pyproject.toml's ``hub`` extra (its upper bounds are the next major versions: the
test guards the versions in between). Where a public API does the job it is used instead:

* ``serializer=`` (a ``socketio.packet.Packet`` subclass with its own ``decode``) is public:
  the hub validates packets there (``_packets.py``), not by overriding the dispatcher's
  parsing;
* ``AsyncServer.get_environ``, ``manager.sid_from_eio_sid`` / ``eio_sid_from_sid`` /
  ``is_connected`` / ``get_participants`` are public;
* stopping new connections during a graceful stop is done by the hub's ASGI wrapper
  (``_asgi.py``) instead of closing uvicorn's ``Server.servers`` listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from typing import Any

import engineio
import socketio
import uvicorn

__all__ = [
    "CLIENT_CAUSED_UVICORN_WARNINGS",
    "CompatServer",
    "MalformedPacketError",
    "ReadyRedisManager",
    "UvicornServer",
    "abort_transport",
    "ack_id",
    "ack_requested",
    "asgi_scope",
    "close_transport",
    "engineio_sockets",
    "environ_of",
    "initialize_manager",
    "open_sessions",
    "session_transport",
    "session_with_queue",
    "transport_of",
]

log = logging.getLogger("tether.hub")


class MalformedPacketError(ValueError):
    """A client sent a packet the hub cannot use; it is dropped and logged quietly."""


# ------------------------------------------------------------------------ python-socketio

#: The ack id of the event being handled (``None``: no ack asked), set per event by
#: ``CompatServer._handle_event``.
_ACK_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "tether_hub_ack_id", default=None
)


def ack_id() -> int | None:
    """Inside an event handler: the ack id the client sent the event with, if any."""
    return _ACK_ID.get()


def ack_requested() -> bool:
    """Inside an event handler: whether the client sent the event with an ack id."""
    return _ACK_ID.get() is not None


#: Socket.IO v5 packet types (socketio-protocol.md §2) that carry binary attachments.
_BINARY_TYPES = frozenset("56")

MalformedHandler = Callable[[str, MalformedPacketError], Awaitable[None]]


class CompatServer(socketio.AsyncServer):  # type: ignore[misc]
    """``socketio.AsyncServer`` with the two hooks the hub needs.

    Mirrors python-socketio 5.18, ``socketio/async_server.py``:

    * ``AsyncServer._handle_event(eio_sid, namespace, id, data)``: python-socketio sends the
      handler's return value as the ACK when an id was present but never tells the handler
      whether one was; the override records it (``ack_requested()``) so an error goes into the
      ack (the caller waits for it) or into an ``error`` event (nobody waits). It also drops an
      event on a namespace the client has not connected to, which python-socketio logs at
      WARNING for every such packet (any client could flood the log with them).
    * ``AsyncServer._handle_eio_message(eio_sid, data)``: python-socketio lets every decoding
      error escape to python-engineio, which logs it at ERROR with a traceback
      (``engineio/async_server.py`` ``AsyncServer._trigger_event``, "message async handler
      error"). The override catches ``MalformedPacketError`` (raised by the hub's packet class
      and by the checks here) and hands it to ``on_malformed``; a half-received binary packet
      is dropped with it (``BaseServer._binary_packet``, ``socketio/base_server.py``).
    * ``_engineio_server_class()`` (``socketio/base_server.py``), so the Engine.IO server is
      ``_CompatEngineIO`` below.
    * ``AsyncServer._handle_eio_disconnect(eio_sid, reason)``: python-engineio keeps a polling
      client's long-poll GET waiting after its engine socket closed (the client's CLOSE, a
      ping timeout), until ``pingInterval + pingTimeout``, and uvicorn waits for it when the
      hub stops; the override answers it with the ``None`` sentinel
      (``engineio/async_socket.py`` ``AsyncSocket.poll``), since the client is gone.
    """

    def __init__(
        self,
        *args: Any,
        on_malformed: MalformedHandler,
        send_queue_factory: Callable[[], asyncio.Queue[Any]],
        **kwargs: Any,
    ) -> None:
        self._on_malformed = on_malformed
        self._send_queue_factory = send_queue_factory
        super().__init__(*args, **kwargs)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        await super()._handle_eio_disconnect(eio_sid, reason)
        sock = engineio_sockets(self).get(eio_sid)
        if sock is not None and not sock.upgraded:
            sock.queue.put_nowait(None)

    def _engineio_server_class(self) -> type[Any]:
        factory = self._send_queue_factory

        class _Bound(_CompatEngineIO):
            send_queue_factory = staticmethod(factory)

        return _Bound

    async def _handle_event(self, eio_sid: str, namespace: str, id: int | None, data: Any) -> None:
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.manager.is_connected(sid, namespace):
            raise MalformedPacketError(f"event on namespace {namespace!r} before its CONNECT")
        token = _ACK_ID.set(id)
        try:
            await super()._handle_event(eio_sid, namespace, id, data)
        finally:
            _ACK_ID.reset(token)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            pending = self._binary_packet.get(eio_sid)
            if isinstance(data, (bytes, bytearray)):
                if pending is None:
                    raise MalformedPacketError("binary frame without a binary packet before it")
            elif not data:
                raise MalformedPacketError("empty Socket.IO packet")
            elif (
                pending is None
                and data[0] in _BINARY_TYPES
                and self.manager.sid_from_eio_sid(eio_sid, "/") is None
            ):
                # python-socketio raises a plain ValueError("Unexpected binary packet") here.
                raise MalformedPacketError("binary packet before CONNECT")
            await super()._handle_eio_message(eio_sid, data)
        except MalformedPacketError as exc:
            self._binary_packet.pop(eio_sid, None)
            await self._on_malformed(eio_sid, exc)


def initialize_manager(sio: Any) -> None:
    """Start the client manager now instead of at the first connection.

    python-socketio initialises it lazily in ``AsyncServer._handle_eio_connect``
    (``socketio/async_server.py``) guarded by the ``manager_initialized`` attribute
    (``socketio/base_server.py``); the hub wants the Redis subscription live before anybody
    can connect, and setting the flag keeps python-socketio from starting a second listener.
    """
    sio.manager_initialized = True
    sio.manager.initialize()


def environ_of(sio: Any, eio_sid: str) -> Mapping[str, Any] | None:
    """The WSGI-style environ python-socketio stored for an Engine.IO session.

    ``BaseServer.environ`` (``socketio/base_server.py``), filled by ``_handle_eio_connect``.
    The public ``get_environ(sid)`` needs a Socket.IO sid, which a client that has not sent
    CONNECT yet does not have.
    """
    environ: Mapping[str, Any] | None = sio.environ.get(eio_sid)
    return environ


class ReadyRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """``AsyncRedisManager`` that reports when its pub/sub subscription is live.

    Until Redis has processed the SUBSCRIBE, messages published by other hub processes are
    lost for this one; the hub waits for the confirmation before it says ``listening on``.
    Mirrors python-socketio 5.18, ``socketio/async_redis_manager.py``:

    * ``_redis_connect()`` creates ``self.redis`` and ``self.pubsub`` with
      ``ignore_subscribe_messages=True``; the override keeps the confirmations instead;
    * ``_listen()`` filters ``_redis_listen_with_retries()`` (which reconnects with back-off)
      down to this channel's messages; the override does the same and sets ``ready`` on the
      subscribe confirmation;
    * ``aclose()`` (python-socketio has no close) cancels ``self.thread``, the listener task
      that ``AsyncPubSubManager.initialize`` (``socketio/async_pubsub_manager.py``) starts.
    """

    def __init__(self, url: str, channel: str, logger: logging.Logger) -> None:
        super().__init__(url, channel=channel, logger=logger)
        self.ready = asyncio.Event()

    def _redis_connect(self) -> None:
        super()._redis_connect()
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=False)

    async def _listen(self) -> AsyncIterator[Any]:
        channel = self.channel.encode("utf-8")
        async for message in self._redis_listen_with_retries():
            if message["type"] == "subscribe":
                self.ready.set()
            elif (
                message["channel"] == channel and message["type"] == "message" and "data" in message
            ):
                yield message["data"]

    async def aclose(self) -> None:
        """Stop listening and close the Redis connections."""
        thread = getattr(self, "thread", None)
        if thread is not None:
            thread.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await thread
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()


# ------------------------------------------------------------------------ python-engineio


class _CompatEngineIO(engineio.AsyncServer):  # type: ignore[misc]
    """``engineio.AsyncServer`` whose sockets get the hub's bounded send queue.

    python-engineio 4.15: every ``AsyncSocket`` keeps the packets waiting to be written
    in ``self.queue``, created by ``BaseSocket.__init__`` (``engineio/base_socket.py``) as
    ``self.server.create_queue()`` with no arguments, an unbounded ``asyncio.Queue``
    (``engineio/async_server.py``). ``create_queue`` is public, but that the socket's send
    queue comes from it is not; calls with arguments keep the default.
    """

    send_queue_factory: Callable[[], asyncio.Queue[Any]] | None = None

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        factory = type(self).send_queue_factory
        if factory is not None and not args and not kwargs:
            return factory()
        return super().create_queue(*args, **kwargs)


def engineio_sockets(sio: Any) -> dict[str, Any]:
    """Engine.IO sessions by sid: ``BaseServer.sockets`` (``engineio/base_server.py``)."""
    sockets: dict[str, Any] = sio.eio.sockets
    return sockets


def open_sessions(sio: Any) -> list[str]:
    """Engine.IO sids of the sessions not closed yet (``AsyncSocket.closed``)."""
    return [eio_sid for eio_sid, sock in engineio_sockets(sio).items() if not sock.closed]


def session_transport(sio: Any, eio_sid: str) -> str | None:
    """``"websocket"`` or ``"polling"`` for an open session (``AsyncSocket.upgraded`` is true
    once it speaks WebSocket), ``None`` when it is gone or closed."""
    sock = engineio_sockets(sio).get(eio_sid)
    if sock is None or sock.closed:
        return None
    return "websocket" if sock.upgraded else "polling"


def session_with_queue(sio: Any, queue: object) -> str | None:
    """The Engine.IO sid whose send queue (``AsyncSocket.queue``) is ``queue``."""
    return next(
        (eio_sid for eio_sid, sock in engineio_sockets(sio).items() if sock.queue is queue), None
    )


async def close_transport(sio: Any, eio_sid: str) -> bool:
    """Close one session's transport without a Socket.IO DISCONNECT or Engine.IO CLOSE.

    python-engineio 4.15, ``engineio/async_socket.py``: the WebSocket writer task (in
    ``AsyncSocket._websocket_handler``) closes the WebSocket when ``poll()`` dequeues the
    ``None`` sentinel, after writing what was queued before it; the reader then sees the close
    and runs the disconnect path with reason ``transport close``. A long-polling session
    (``upgraded`` false) is closed with ``close(wait=False, abort=True, reason=...)`` and the
    sentinel releases a pending poll. ``closing``/``closed`` say the session is already going.
    """
    sock = engineio_sockets(sio).get(eio_sid)
    if sock is None or sock.closed or sock.closing:
        return False
    if not sock.upgraded:
        await sock.close(wait=False, abort=True, reason=sio.eio.reason.TRANSPORT_CLOSE)
    sock.queue.put_nowait(None)
    return True


def asgi_scope(environ: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ASGI scope behind an environ: ``translate_request`` in
    ``engineio/async_drivers/asgi.py`` (4.15) stores it as ``asgi.scope``."""
    scope = environ.get("asgi.scope")
    return scope if isinstance(scope, Mapping) else None


# -------------------------------------------------------------------------------- uvicorn


def transport_of(receive: Callable[..., Any]) -> asyncio.BaseTransport | None:
    """The asyncio transport under an ASGI ``receive`` callable, or ``None``.

    ASGI gives an application no way to abort a connection whose peer does not read: a
    ``websocket.close`` waits, like every send, until the transport is writable again
    (uvicorn 0.55, ``uvicorn/protocols/websockets/wsproto_impl.py``,
    ``WSProtocol.send`` awaits ``self.writable``). uvicorn passes its protocol's bound
    ``receive`` method, whose ``__self__.transport`` is the connection's transport.
    """
    owner = getattr(receive, "__self__", None)
    transport = getattr(owner, "transport", None)
    return transport if isinstance(transport, asyncio.BaseTransport) else None


def abort_transport(transport: asyncio.BaseTransport | None) -> bool:
    """Drop a connection at once, discarding what is buffered (``Transport.abort``).

    ``SO_LINGER`` 0 makes the close a TCP reset, so the kernel's send buffer (megabytes for a
    peer that does not read) is freed too and the peer learns at once. uvicorn's
    ``connection_lost`` then wakes the blocked send (``disconnected`` set) and queues
    ``websocket.disconnect`` for the reader, so python-engineio runs its normal close path.
    """
    if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True


#: uvicorn's own WARNING lines that any client can cause once per TCP connection
#: (``uvicorn/protocols/http/h11_impl.py``, ``H11Protocol.handle_events`` and
#: ``_unsupported_upgrade_warning``, 0.55). The hub logs them at INFO instead.
CLIENT_CAUSED_UVICORN_WARNINGS = frozenset(
    {"Invalid HTTP request received.", "Unsupported upgrade request."}
)


class UvicornServer(uvicorn.Server):
    """uvicorn without signal handling, reporting when it accepts connections.

    uvicorn 0.55, ``uvicorn/server.py``:

    * ``Server.serve`` wraps everything in ``capture_signals()``, whose handlers re-raise the
      signal after shutdown (so the process dies by it) and which only works in the main
      thread; the hub's owner (the CLI or an embedding program) decides what a signal means,
      so the override installs nothing;
    * ``Server.startup(sockets)`` returns once the listeners accept connections; the override
      sets ``ready`` then (``started`` is set at the same point, but is a flag to poll).
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()
