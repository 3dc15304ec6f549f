"""The hub: python-socketio ``AsyncServer`` on uvicorn, implementing the channel wire format.

One ``Hub`` object owns the Socket.IO server, the uvicorn server, the membership store and (with
Redis) the heartbeat task. It runs on an asyncio event loop because uvicorn and python-socketio
need one; ``start_hub_in_thread`` (``_thread.py``) gives trio programs a hub on a side loop.

Why the less obvious choices:

* ``async_handlers=False``: python-socketio would otherwise run every event in its own task,
  which can reorder one sender's events. With it off, a connection's events are handled one
  after the other on that connection's reader task; different connections still run
  concurrently.
* Rooms are named ``ch:<channel>``: every sid is also a python-socketio room, so a channel
  named like someone's sid would otherwise receive that client's private traffic. The
  broadcasts go to a room too (``hub:broadcasts``), which a client enters only after its
  CONNECT reply, with its replay first (``_streams.py``).
* Continuity (specs/delivery.md §4): every channel message, member event and broadcast goes
  through ``Streams``, which gives it a position in its stream's history (``_history.py``
  in memory, ``_redis_history.py`` in Redis Streams) and delivers it; a tether client's
  messages are delivered once per id; re-joins replay what was missed.
* The store (``_store.py``), not the rooms, answers ``members``: rooms are per process.
* Every reach into python-socketio's, python-engineio's or uvicorn's private API is in
  ``_compat.py``; ``_asgi.py`` sits between uvicorn and python-socketio; log hygiene (no
  secrets, nothing a client can flood) is ``_logs.py``.
* Bounds (specs/hub-wire-format.md §4.2): each client's send queue (``_sendqueue.py``; a client
  that does not read is disconnected), its channels (the store refuses), every ``members``
  answer (``_paging.py``), binary attachments per packet (``_packets.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import socketio
import uvicorn

# The event the client's core reads as the hub's answer about the broadcasts (§4.5): one name.
from tether.core._channels import HUB_RESUME

from . import _compat
from ._asgi import Connection, HubASGI, connection_of
from ._compat import CompatServer, MalformedPacketError, ReadyRedisManager, UvicornServer
from ._config import HubConfig
from ._history import BROADCASTS, History, MemoryHistory, stream_of
from ._logs import ENGINEIO_LOGGER, SOCKETIO_LOGGER, install_log_hygiene
from ._packets import OversizedPayload, hub_packet_class
from ._paging import MAX_PAGE_LIMIT, MIN_MAX_BYTES, PageBuilder, ack_frame_overhead
from ._redis_history import RedisHistory
from ._sendqueue import SendQueue
from ._store import Departed, MemoryStore, Profile, RedisStore, Store, TooManyChannels
from ._streams import Streams, room_of
from ._validate import (
    HubInputError,
    Identity,
    expect_object,
    payload_size,
    read_channel,
    read_echo,
    read_event_name,
    read_identity,
    read_members_query,
    read_message_id,
    read_profile,
    read_since,
)

__all__ = ["Hub", "run_hub"]

log = logging.getLogger("tether.hub")

#: Namespace the hub serves; the contract's channel API lives on "/".
NAMESPACE = "/"

#: How long a graceful stop waits for clients' writers to flush before cutting them off.
_DRAIN_SECONDS = 2.0
#: Members fetched from the store per step while building a legacy (unpaged) answer.
_LEGACY_BATCH = 1000
#: How long a new connection's greeting waits for python-socketio to finish its CONNECT.
_GREETING_SECONDS = 5.0

_Impl = Callable[[str, object, bool], Awaitable[Any]]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves so ``--port 0`` yields the real port up front."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class Hub:
    """One hub process (or one embedded hub): start it, use ``url``, stop it.

    Usable as ``async with Hub(config) as hub:`` on an asyncio loop. ``drop(sid)`` closes one
    client's transport without a Socket.IO DISCONNECT, like a network cut.
    """

    def __init__(self, config: HubConfig | None = None) -> None:
        self.config = config or HubConfig()
        self._store: Store | None = None
        self._history: History | None = None
        self._streams: Streams | None = None
        #: sid -> the tether client's identity (absent: a plain Socket.IO client).
        self._identities: dict[str, Identity] = {}
        #: sid -> its greeting: the broadcasts' replay and room, after the CONNECT reply.
        self._greetings: dict[str, asyncio.Task[None]] = {}
        self._sio: Any = None
        self._manager: ReadyRedisManager | None = None
        self._server: UvicornServer | None = None
        self._asgi: HubASGI | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._serve_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._history_task: asyncio.Task[None] | None = None
        self._port: int | None = None
        self._sock: socket.socket | None = None
        self._stopping = False

    # ----------------------------------------------------------------------------- lifecycle

    @property
    def host(self) -> str:
        """The configured host (as given: a name or an address)."""
        return self.config.host

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port=0``); only valid once started."""
        if self._port is None:
            raise RuntimeError("the hub is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` as printed by ``tether serve``."""
        return f"http://{_url_host(self.config.host)}:{self.port}"

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect the store, start the Socket.IO and HTTP servers; return once accepting.

        Raises ``OSError`` when the address cannot be bound, and Redis' connection errors when
        ``redis_url`` is set and unreachable. Nothing is left running after a failure.
        """
        if self._serve_task is not None:
            raise RuntimeError("the hub is already started")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "the hub needs an asyncio event loop (uvicorn); under trio use "
                "tether.hub.start_hub_in_thread()"
            ) from None
        install_log_hygiene()
        try:
            await self._start()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._teardown()
            raise

    async def _start(self) -> None:
        config = self.config
        self._sock = sock = _bind(config.host, config.port)
        self._port = sock.getsockname()[1]
        try:
            self._store = self._make_store()
            await self._store.start()
            manager: Any = None
            if config.redis_url is not None:
                self._manager = manager = ReadyRedisManager(
                    config.redis_url,
                    channel=f"{config.redis_prefix}socketio",
                    logger=logging.getLogger(SOCKETIO_LOGGER),
                )
            self._sio = self._make_sio(manager)
            self._history = self._make_history()
            await self._history.start()
            self._streams = Streams(
                self._sio, NAMESPACE, self._history, continuity=config.history > 0
            )
            if isinstance(self._history, RedisHistory):
                self._history_task = asyncio.create_task(
                    self._history.listen(self._streams.deliver_shared)
                )
                await asyncio.wait_for(self._history.subscribed.wait(), timeout=10.0)
            elif isinstance(self._history, MemoryHistory):
                self._history_task = asyncio.create_task(self._sweep_loop(self._history))
            # Initialise now rather than on the first connection (python-socketio's default)
            # so the Redis subscription is live before anybody can connect.
            _compat.initialize_manager(self._sio)
            if self._manager is not None:
                await asyncio.wait_for(self._manager.ready.wait(), timeout=10.0)
                # Members of hub processes that died hard are cleaned up before we serve.
                await self._announce(await self._store.heartbeat())
                self._heartbeat_task = asyncio.create_task(self._heartbeat_loop())
            self._asgi = HubASGI(
                socketio.ASGIApp(self._sio, socketio_path="socket.io"),
                on_bad_frame=self._on_bad_frame,
                on_bad_payload=self._on_bad_payload,
                max_body=config.max_payload,
            )
            self._server = UvicornServer(
                uvicorn.Config(
                    self._asgi,
                    http="h11",
                    ws="wsproto",
                    lifespan="off",
                    log_config=None,
                    log_level=None,
                    access_log=False,
                    proxy_headers=False,
                    server_header=False,
                    # Engine.IO's heartbeat is the liveness check; no second one underneath.
                    ws_ping_interval=None,
                    ws_ping_timeout=None,
                    # The engine.io limit counts characters; leave room for multi-byte text.
                    ws_max_size=config.max_payload * 4 + 1024,
                    timeout_graceful_shutdown=5,
                )
            )
        except BaseException:
            sock.close()
            raise
        self._serve_task = asyncio.create_task(self._server.serve(sockets=[sock]))
        ready = asyncio.create_task(self._server.ready.wait())
        try:
            await asyncio.wait({self._serve_task, ready}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not self._server.ready.is_set():
            await self._serve_task  # re-raises what made uvicorn fail
            raise RuntimeError("uvicorn stopped during startup")
        log.info("hub listening on %s", self.url)

    def _make_store(self) -> Store:
        config = self.config
        if config.redis_url is None:
            return MemoryStore(config.max_channels_per_client)
        return RedisStore(
            config.redis_url, config.redis_prefix, config.node_ttl, config.max_channels_per_client
        )

    def _make_history(self) -> History:
        config = self.config
        if config.redis_url is None:
            return MemoryHistory(config.history, config.history_ttl, time.monotonic)
        return RedisHistory(
            config.redis_url, config.redis_prefix, config.history, config.history_ttl
        )

    async def _sweep_loop(self, history: MemoryHistory) -> None:
        """Forget aged-out history and senders, so memory follows the live traffic."""
        interval = min(10.0, max(0.5, self.config.history_ttl / 4))
        while True:
            await asyncio.sleep(interval)
            history.sweep()

    def _make_sio(self, manager: Any) -> Any:
        config = self.config
        sio = CompatServer(
            client_manager=manager,
            async_mode="asgi",
            async_handlers=False,
            serializer=hub_packet_class(config.max_payload),
            on_malformed=self._on_malformed_packet,
            send_queue_factory=self._new_send_queue,
            logger=logging.getLogger(SOCKETIO_LOGGER),
            engineio_logger=logging.getLogger(ENGINEIO_LOGGER),
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            max_http_buffer_size=config.max_payload,
            # Auth travels in the CONNECT packet, not in cookies, so any origin may connect.
            cors_allowed_origins="*",
        )
        sio.on("connect", self._on_connect)
        sio.on("disconnect", self._on_disconnect)
        sio.on("join", self._handler("join", self._join))
        sio.on("leave", self._handler("leave", self._leave))
        sio.on("message", self._handler("message", self._message))
        sio.on("update", self._handler("update", self._update))
        sio.on("members", self._handler("members", self._members))
        sio.on("*", self._on_unknown)
        return sio

    async def stop(self) -> None:
        """Graceful stop: stop accepting, drop every client, clean the store, close all.

        Clients see their transport close (no Socket.IO DISCONNECT), so they reconnect, to
        another hub process if there is one. Idempotent.
        """
        if self._stopping:
            return
        self._stopping = True
        with anyio.CancelScope(shield=True):
            await self._graceful_stop()

    async def _graceful_stop(self) -> None:
        server = self._server
        if server is not None and server.ready.is_set():
            if self._asgi is not None:
                self._asgi.accepting = False  # new requests are refused from here on
            await self._drop_all()
            server.should_exit = True
        if self._serve_task is not None:
            try:
                await self._serve_task
            except Exception:
                log.exception("uvicorn failed while stopping")
        await self._teardown()

    async def _drop_all(self) -> None:
        """Close every transport and wait (briefly) for the disconnect handlers to finish.

        A client that does not read keeps its writer from ever reaching the close: after
        ``_DRAIN_SECONDS`` such connections are aborted.
        """
        for eio_sid in _compat.open_sessions(self._sio):
            await _compat.close_transport(self._sio, eio_sid)
        if await self._sessions_closed_within(_DRAIN_SECONDS):
            return
        for eio_sid in _compat.open_sessions(self._sio):
            await self._abort(eio_sid)
        await self._sessions_closed_within(_DRAIN_SECONDS)

    async def _sessions_closed_within(self, seconds: float) -> bool:
        with anyio.move_on_after(seconds):
            while _compat.open_sessions(self._sio):
                await asyncio.sleep(0.02)
            return True
        return False

    async def _teardown(self) -> None:
        for task in [*self._greetings.values(), self._history_task]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._greetings.clear()
        self._history_task = None
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._heartbeat_task
            self._heartbeat_task = None
        if self._store is not None and self._sio is not None:
            try:
                await self._announce(await self._store.shutdown())
            except Exception:
                log.exception("could not clean up the hub's members")
        if self._sio is not None:
            with contextlib.suppress(Exception):
                await self._sio.shutdown()
        if self._manager is not None:
            await self._manager.aclose()
            self._manager = None
        if self._store is not None:
            with contextlib.suppress(Exception):
                await self._store.close()
            self._store = None
        if self._history is not None:
            with contextlib.suppress(Exception):
                await self._history.close()
            self._history = None
        if self._sock is not None:
            self._sock.close()  # uvicorn closes it too; closing twice is harmless
            self._sock = None

    async def wait_stopped(self) -> None:
        """Return when the HTTP server has stopped: after ``stop()``, or if uvicorn failed
        (its error is logged by ``stop()``, which the caller should still call)."""
        if self._serve_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._serve_task)

    # ------------------------------------------------------------------------------- control

    def sids(self) -> list[str]:
        """Socket.IO ids of the clients connected to this process, on namespace "/"."""
        if self._sio is None:
            return []
        manager = self._sio.manager
        return [
            sid
            for sid, _ in manager.get_participants(NAMESPACE, None)
            if manager.is_connected(sid, NAMESPACE)
        ]

    async def drop(self, sid: str) -> bool:
        """Close ``sid``'s transport without a Socket.IO DISCONNECT; ``False`` if unknown.

        On WebSocket the hub closes the WebSocket (no engine.io ``1`` packet either), so the
        client's reason is ``transport close`` and it reconnects. The hub then runs its normal
        disconnect path: ``channel:leave`` to the member's channels.
        """
        if self._sio is None:
            return False
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        return eio_sid is not None and await _compat.close_transport(self._sio, eio_sid)

    def _connection(self, eio_sid: str) -> Connection | None:
        """The ASGI layer's record of the request that carries ``eio_sid``'s traffic."""
        assert self._asgi is not None
        upgraded = self._asgi.upgrades.get(eio_sid)
        if upgraded is not None:
            return upgraded
        return connection_of(_compat.environ_of(self._sio, eio_sid))

    async def _abort(self, eio_sid: str) -> None:
        """Cut ``eio_sid`` off now, dropping whatever is queued or buffered for it."""
        transport = _compat.session_transport(self._sio, eio_sid)
        if transport is None:
            return
        conn = self._connection(eio_sid) if transport == "websocket" else None
        if conn is None or not _compat.abort_transport(conn.transport):
            await _compat.close_transport(self._sio, eio_sid)

    # ---------------------------------------------------------------------------- send queues

    def _new_send_queue(self) -> SendQueue:
        return SendQueue(
            self.config.max_send_queue, self.config.send_queue_bytes, self._on_send_overflow
        )

    def _on_send_overflow(self, queue: SendQueue) -> None:
        """A client's send queue is full: it does not read. Disconnect it (once)."""
        task = asyncio.get_running_loop().create_task(self._disconnect_slow_reader(queue))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _disconnect_slow_reader(self, queue: SendQueue) -> None:
        eio_sid = _compat.session_with_queue(self._sio, queue)
        if eio_sid is None:
            return  # already gone
        sid = self._sio.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        log.warning(
            "disconnecting %s: it does not read (more than %d packets or %d bytes waiting "
            "to be sent to it)",
            sid or eio_sid,
            queue.max_packets,
            queue.max_bytes,
        )
        await self._abort(eio_sid)

    # ------------------------------------------------------------------------ malformed input

    def _on_bad_frame(self, conn: Connection, reason: str) -> None:
        self._note_malformed(conn, conn.sid or "a client", reason)

    def _on_bad_payload(self, eio_sid: str, reason: str) -> None:
        sid = self._sio.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        self._note_malformed(self._connection(eio_sid), sid or eio_sid, reason)

    async def _on_malformed_packet(self, eio_sid: str, exc: MalformedPacketError) -> None:
        conn = self._connection(eio_sid)
        sid = self._sio.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        self._note_malformed(conn, sid or eio_sid, str(exc))

    @staticmethod
    def _note_malformed(conn: Connection | None, who: str, reason: str) -> None:
        """Malformed input is the client's problem: one INFO line per connection, no traceback
        (specs/hub-wire-format.md §4.1); the rest are counted and shown at disconnect."""
        if conn is None:
            log.debug("dropped a malformed packet from %s: %s", who, reason)
            return
        conn.malformed += 1
        if conn.malformed == 1:
            log.info(
                "dropped a malformed packet from %s: %s (further ones from this connection "
                "are dropped without a log line)",
                who,
                reason,
            )

    # ---------------------------------------------------------------------------- connection

    async def _on_connect(self, sid: str, *args: Any) -> None:
        if self._sio.manager.is_connected(sid, NAMESPACE):
            return  # a client emitted an event named "connect": not a connection
        environ = args[0] if args else None
        auth = args[1] if len(args) > 1 else None
        token = self.config.token
        if token is not None:
            offered = auth.get("token") if isinstance(auth, dict) else None
            if not (
                isinstance(offered, str) and hmac.compare_digest(offered.encode(), token.encode())
            ):
                log.info("refused %s: invalid token", sid)  # never log auth itself
                raise socketio.exceptions.ConnectionRefusedError(
                    "unauthorized", {"reason": "invalid token"}
                )
        assert self._store is not None
        try:
            await self._store.add_client(sid)
        except Exception:
            log.exception("could not register %s", sid)
            raise socketio.exceptions.ConnectionRefusedError("internal error") from None
        conn = connection_of(environ)
        if conn is not None:
            conn.sid = sid
        identity = read_identity(auth)
        if identity is not None:
            self._identities[sid] = identity
        self._greetings[sid] = asyncio.get_running_loop().create_task(self._greet(sid))
        log.debug("connected %s", sid)

    async def _greet(self, sid: str) -> None:
        """The broadcasts for a new connection: once python-socketio has written its
        CONNECT reply, the replay a tether client asked for, ``hub:resume``, then the room.

        Every event handler of ``sid`` waits for this first (``_handler``), so the
        ``hub:resume`` precedes anything the client's joins bring.
        """
        manager = self._sio.manager
        deadline = asyncio.get_running_loop().time() + _GREETING_SECONDS
        polls = 0
        while not manager.is_connected(sid, NAMESPACE):
            if manager.eio_sid_from_sid(sid, NAMESPACE) is None:
                return  # refused, or already gone
            if asyncio.get_running_loop().time() > deadline:
                log.warning("%s never finished connecting; no broadcasts for it", sid)
                return
            polls += 1
            # python-socketio writes the reply right after the connect handler returns.
            await asyncio.sleep(0 if polls < 20 else 0.01)
        identity = self._identities.get(sid)
        assert self._streams is not None

        async def announce(answer: dict[str, Any]) -> None:
            await self._sio.emit(
                HUB_RESUME,
                {"channel": None, **answer},
                to=sid,
                namespace=NAMESPACE,
                ignore_queue=True,
            )

        try:
            await self._streams.enter(
                sid,
                BROADCASTS,
                client=None if identity is None else identity.client,
                since=None if identity is None else identity.broadcast,
                announce=announce,
            )
        except Exception:
            log.exception("could not resume the broadcasts for %s", sid)

    async def _on_disconnect(self, sid: str, *args: Any) -> None:
        if self._sio.manager.is_connected(sid, NAMESPACE):
            return  # a client emitted an event named "disconnect": it is still connected
        reason = args[0] if args else None
        if reason == self._sio.reason.PING_TIMEOUT:
            # The client stopped answering pings, most likely because it stopped reading: the
            # Engine.IO CLOSE python-engineio queues for it would never be written, and its
            # writer, buffers and socket would wait for a reader forever. Reset it now.
            eio_sid = self._sio.manager.eio_sid_from_sid(sid, NAMESPACE)
            conn = None if eio_sid is None else self._connection(eio_sid)
            if conn is not None and conn.websocket:
                _compat.abort_transport(conn.transport)
        greeting = self._greetings.pop(sid, None)
        if greeting is not None:
            greeting.cancel()
        self._identities.pop(sid, None)
        if self._streams is not None:
            self._streams.forget(sid)
        assert self._store is not None
        try:
            departed = await self._store.remove_client(sid)
            await self._announce([departed])
        except Exception:
            log.exception("could not clean up after %s", sid)
        log.debug("disconnected %s (%s)", sid, reason)

    async def _announce(self, departed: list[Departed]) -> None:
        """``channel:leave`` for members that are gone (no echo: they are not there)."""
        for member in departed:
            for channel in member.channels:
                await self._member_event(
                    "channel:leave", channel, member.sid, member.profile, skip=member.sid
                )

    async def _heartbeat_loop(self) -> None:
        assert self._store is not None
        interval = max(0.1, self.config.node_ttl / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._announce(await self._store.heartbeat())
            except Exception as exc:
                log.warning("hub heartbeat failed: %s", exc)

    # -------------------------------------------------------------------------------- events

    def _handler(self, name: str, impl: _Impl) -> Callable[..., Awaitable[Any]]:
        """Wrap a handler: one payload argument, errors reported to the sender, never raised."""

        max_payload = self.config.max_payload

        async def handler(sid: str, *args: Any) -> Any:
            wants_ack = _compat.ack_requested()
            payload = args[0] if args else None
            greeting = self._greetings.get(sid)
            if greeting is not None and not greeting.done():
                # The broadcasts' replay comes first. wait() does not raise when a
                # disconnect cancelled the greeting meanwhile.
                await asyncio.wait((greeting,))
            try:
                if isinstance(payload, OversizedPayload):
                    raise HubInputError(f"message larger than {max_payload} bytes")
                return await impl(sid, payload, wants_ack)
            except HubInputError as exc:
                message = str(exc)
            except Exception:
                log.exception("internal error handling %r from %s", name, sid)
                message = "internal error"
            log.debug("refused %r from %s: %s", name, sid, message)
            if wants_ack:
                return {"error": message}
            await self._send_error(sid, name, message)
            return None

        return handler

    async def _on_unknown(self, event: str, sid: str, *args: Any) -> Any:
        message = f"unknown event {event!r}"
        if _compat.ack_requested():
            return {"error": message}
        try:
            await self._send_error(sid, event, message)
        except Exception:
            log.exception("could not answer an unknown event from %s", sid)
        return None

    async def _send_error(self, sid: str, event: object, message: str) -> None:
        # The sender is connected to this process: no need to go through Redis.
        await self._sio.emit(
            "error",
            {"event": event, "message": message},
            to=sid,
            namespace=NAMESPACE,
            ignore_queue=True,
        )

    async def _member_event(
        self,
        event: str,
        channel: str,
        sid: str,
        profile: Profile,
        *,
        skip: str | None,
        skip_client: str | None = None,
    ) -> dict[str, Any]:
        """Publish a member event in the channel's stream; the payload, with its position."""
        assert self._streams is not None
        payload = {"channel": channel, "message": {"id": sid, "data": profile}}
        await self._streams.publish(
            stream_of(channel), event, payload, skip_sid=skip, skip_client=skip_client
        )
        return payload

    def _client_of(self, sid: str) -> str | None:
        identity = self._identities.get(sid)
        return None if identity is None else identity.client

    async def _join(self, sid: str, payload: object, wants_ack: bool) -> Any:
        fields = expect_object(payload)
        channel = read_channel(fields, self.config.max_channel_name)
        assert channel is not None
        echo = read_echo(fields)
        since = read_since(fields)
        assert self._store is not None
        assert self._streams is not None
        try:
            new, profile = await self._store.join(sid, channel, echo)
        except TooManyChannels:
            limit = self.config.max_channels_per_client
            raise HubInputError(f"too many channels (at most {limit} per client)") from None
        client = self._client_of(sid)
        # A repeated join of this session is in the room and has seen everything since.
        answer = await self._streams.enter(
            sid, stream_of(channel), client=client, since=since if new else None
        )
        if new:
            await self._member_event(
                "channel:join",
                channel,
                sid,
                profile,
                skip=None if echo else sid,
                skip_client=None if echo else client,
            )
        return answer

    async def _leave(self, sid: str, payload: object, wants_ack: bool) -> None:
        fields = expect_object(payload)
        channel = read_channel(fields, self.config.max_channel_name)
        assert channel is not None
        echo = read_echo(fields)
        assert self._store is not None
        was_member, profile = await self._store.leave(sid, channel)
        if was_member:
            # The room skips the leaver; its echo goes to it directly, as with Redis the
            # room's delivery comes back after the leaver has left the room.
            announced = await self._member_event(
                "channel:leave",
                channel,
                sid,
                profile,
                skip=sid,
                skip_client=None if echo else self._client_of(sid),
            )
            if echo:
                await self._sio.emit(
                    "channel:leave", announced, to=sid, namespace=NAMESPACE, ignore_queue=True
                )
            await self._sio.leave_room(sid, room_of(stream_of(channel)), namespace=NAMESPACE)
            assert self._streams is not None
            self._streams.forget(sid, stream_of(channel))

    async def _message(self, sid: str, payload: object, wants_ack: bool) -> None:
        fields = expect_object(payload)
        channel = read_channel(fields, self.config.max_channel_name, required=False)
        event = read_event_name(fields, self.config.max_channel_name)
        echo = read_echo(fields)
        message = fields.get("message")
        message_id = read_message_id(fields)
        if payload_size(message) > self.config.max_payload:
            raise HubInputError(f"message larger than {self.config.max_payload} bytes")
        client = self._client_of(sid)
        assert self._streams is not None
        # A repeat (an id delivered before) is answered as the first try was: success.
        await self._streams.publish(
            stream_of(channel),
            event,
            {"channel": channel, "message": message},
            skip_sid=None if echo else sid,
            skip_client=None if echo else client,
            sender=None if client is None or message_id is None else (client, message_id),
        )

    async def _update(self, sid: str, payload: object, wants_ack: bool) -> None:
        fields = expect_object(payload)
        profile = read_profile(fields, self.config.max_payload)
        echo = read_echo(fields)
        assert self._store is not None
        for channel in await self._store.set_profile(sid, profile):
            await self._member_event(
                "channel:update",
                channel,
                sid,
                profile,
                skip=None if echo else sid,
                skip_client=None if echo else self._client_of(sid),
            )

    async def _members(self, sid: str, payload: object, wants_ack: bool) -> Any:
        """The member list, sized to fit one frame (specs/hub-wire-format.md §2.7)."""
        ack_id = _compat.ack_id()
        if ack_id is None:
            raise HubInputError("members needs an acknowledgement (emit it with an ack)")
        query = read_members_query(
            expect_object(payload),
            self.config.max_channel_name,
            max_limit=MAX_PAGE_LIMIT,
            min_max_bytes=MIN_MAX_BYTES,
        )
        assert self._store is not None
        max_payload = self.config.max_payload
        frame = max_payload if query.max_bytes is None else min(query.max_bytes, max_payload)
        page = PageBuilder(
            budget=frame - ack_frame_overhead(ack_id),
            limit=query.limit if query.limit is not None else 1 << 62,
            paged=query.paged,
        )
        if query.paged:
            assert query.limit is not None
            # One more than asked: whether it exists says if there is a next page.
            found = await self._store.members(
                query.channel, after=query.after, limit=query.limit + 1
            )
            more = not page.add_all(found)
            return page.answer(more=more)
        after = 0
        while True:
            found = await self._store.members(query.channel, after=after, limit=_LEGACY_BATCH)
            if not page.add_all(found):
                raise HubInputError(
                    f"member list larger than {max_payload} bytes: ask for it in pages "
                    "(limit, cursor, max_bytes)"
                )
            if len(found) < _LEGACY_BATCH:
                return page.answer(more=False)
            after = found[-1].position


async def run_hub(
    config: HubConfig | None = None,
    *,
    task_status: anyio.abc.TaskStatus[Hub] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run a hub until cancelled, then stop it gracefully (asyncio only).

    With ``await task_group.start(run_hub, config)`` the caller gets the started ``Hub``
    (for ``url``, ``port``, ``drop``) once it accepts connections.
    """
    hub = Hub(config)
    await hub.start()
    try:
        task_status.started(hub)
        await hub.wait_stopped()
    finally:
        await hub.stop()
