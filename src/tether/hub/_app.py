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
  named like someone's sid would otherwise receive that client's private traffic.
* The store (``_store.py``), not the rooms, answers ``members``: rooms are per process.
* Loggers: engine.io logs every packet at INFO, including the CONNECT packet that carries the
  client's ``auth``; the engine.io and socket.io loggers are therefore pinned at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import logging
import socket
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import anyio
import anyio.abc
import socketio
import uvicorn

from ._config import HubConfig
from ._store import Departed, MemoryStore, Profile, RedisStore, Store
from ._validate import (
    HubInputError,
    expect_object,
    payload_size,
    read_channel,
    read_echo,
    read_event_name,
    read_profile,
)

__all__ = ["Hub", "run_hub"]

log = logging.getLogger("tether.hub")

#: Namespace the hub serves; the contract's channel API lives on "/".
NAMESPACE = "/"

#: Whether the event being handled asked for an acknowledgement (set per event, see
#: ``_HubServer._handle_event``): errors go into the ack when there is one, else into an
#: ``error`` event.
_ACK_REQUESTED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "tether_hub_ack_requested", default=False
)

_Impl = Callable[[str, object, bool], Awaitable[Any]]


class _HubServer(socketio.AsyncServer):  # type: ignore[misc]
    """``AsyncServer`` that tells handlers whether the client asked for an ack.

    python-socketio always sends the handler's return value as the ACK when an id was present,
    but never tells the handler whether one was; the hub needs to know so an error goes into
    the ack (the caller is waiting for it) or into an ``error`` event (nobody is waiting).
    """

    async def _handle_event(self, eio_sid: str, namespace: str, id: int | None, data: Any) -> None:
        token = _ACK_REQUESTED.set(id is not None)
        try:
            await super()._handle_event(eio_sid, namespace, id, data)
        finally:
            _ACK_REQUESTED.reset(token)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        """Also answer the long-poll GET a polling client left out.

        python-engineio keeps that GET waiting for a packet after the engine socket closed
        (the client's CLOSE, a ping timeout), until ``pingInterval + pingTimeout``, and
        uvicorn waits for it when the hub stops (its graceful timeout, 5 s). An empty answer
        ends it; the client is gone.
        """
        await super()._handle_eio_disconnect(eio_sid, reason)
        sock = self.eio.sockets.get(eio_sid)
        if sock is not None and not sock.upgraded:
            sock.queue.put_nowait(None)


class _ReadyRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """``AsyncRedisManager`` that reports when its pub/sub subscription is live.

    Until Redis has processed the SUBSCRIBE, messages published by other hub processes are
    lost for this one; the hub waits for the confirmation before it says ``listening on``.
    """

    def __init__(self, url: str, channel: str, logger: logging.Logger) -> None:
        super().__init__(url, channel=channel, logger=logger)
        self.ready = asyncio.Event()

    def _redis_connect(self) -> None:
        super()._redis_connect()
        # Keep subscribe confirmations: they are the readiness signal.
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=False)

    async def _listen(self) -> Any:
        channel = self.channel.encode("utf-8")
        async for message in self._redis_listen_with_retries():
            if message["type"] == "subscribe":
                self.ready.set()
            elif (
                message["channel"] == channel and message["type"] == "message" and "data" in message
            ):
                yield message["data"]

    async def aclose(self) -> None:
        """Stop listening and close the Redis connections (python-socketio has no close)."""
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


class _UvicornServer(uvicorn.Server):
    """uvicorn without signal handling, reporting when it accepts connections.

    uvicorn's own handlers re-raise the signal after shutdown (so the process dies by it) and
    only work in the main thread; the hub's owner (the CLI or an embedding program) decides
    what a signal means instead.
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


class _RedactQuery(logging.Filter):
    """Strip query strings from uvicorn's connection log lines: clients may put secrets there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.split("?", 1)[0] + "?…" if isinstance(arg, str) and "?" in arg else arg
                for arg in record.args
            )
        return True


def _install_log_redaction() -> None:
    uv_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _RedactQuery) for f in uv_log.filters):
        uv_log.addFilter(_RedactQuery())
    # engine.io logs packets (including CONNECT auth) at INFO: never let that through.
    for name in ("tether.hub.engineio", "tether.hub.socketio"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _room(channel: str) -> str:
    return "ch:" + channel


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
        self._sio: Any = None
        self._manager: _ReadyRedisManager | None = None
        self._server: _UvicornServer | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
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
        _install_log_redaction()
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
                self._manager = manager = _ReadyRedisManager(
                    config.redis_url,
                    channel=f"{config.redis_prefix}socketio",
                    logger=logging.getLogger("tether.hub.socketio"),
                )
            self._sio = self._make_sio(manager)
            # Initialise now rather than on the first connection (python-socketio's default)
            # so the Redis subscription is live before anybody can connect.
            self._sio.manager_initialized = True
            self._sio.manager.initialize()
            if self._manager is not None:
                await asyncio.wait_for(self._manager.ready.wait(), timeout=10.0)
                # Members of hub processes that died hard are cleaned up before we serve.
                await self._announce(await self._store.heartbeat())
                self._heartbeat_task = asyncio.create_task(self._heartbeat_loop())
            app = socketio.ASGIApp(self._sio, socketio_path="socket.io")
            self._server = _UvicornServer(
                uvicorn.Config(
                    app,
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
            return MemoryStore()
        return RedisStore(config.redis_url, config.redis_prefix, config.node_ttl)

    def _make_sio(self, manager: Any) -> Any:
        config = self.config
        sio = _HubServer(
            client_manager=manager,
            async_mode="asgi",
            async_handlers=False,
            logger=logging.getLogger("tether.hub.socketio"),
            engineio_logger=logging.getLogger("tether.hub.engineio"),
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
            for listener in getattr(server, "servers", []):
                listener.close()
            await self._drop_all()
            server.should_exit = True
        if self._serve_task is not None:
            try:
                await self._serve_task
            except Exception:
                log.exception("uvicorn failed while stopping")
        await self._teardown()

    async def _drop_all(self) -> None:
        """Close every transport and wait (briefly) for the disconnect handlers to finish."""
        eio = self._sio.eio
        for sid in list(eio.sockets):
            await self._drop_eio(sid)
        for _ in range(100):
            if all(s.closed for s in eio.sockets.values()):
                break
            await asyncio.sleep(0.02)

    async def _teardown(self) -> None:
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
        return eio_sid is not None and await self._drop_eio(eio_sid)

    async def _drop_eio(self, eio_sid: str) -> bool:
        eio = self._sio.eio
        sock = eio.sockets.get(eio_sid)
        if sock is None or sock.closed or sock.closing:
            return False
        if sock.upgraded:
            # The WebSocket writer task closes the WebSocket when it dequeues None; the reader
            # then sees the close and runs the disconnect path with "transport close".
            await sock.queue.put(None)
        else:
            await sock.close(wait=False, abort=True, reason=eio.reason.TRANSPORT_CLOSE)
            await sock.queue.put(None)  # release a pending long-poll
        return True

    # ---------------------------------------------------------------------------- connection

    async def _on_connect(self, sid: str, *args: Any) -> None:
        if self._sio.manager.is_connected(sid, NAMESPACE):
            return  # a client emitted an event named "connect": not a connection
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
        await self._store.add_client(sid)
        log.debug("connected %s", sid)

    async def _on_disconnect(self, sid: str, *args: Any) -> None:
        if self._sio.manager.is_connected(sid, NAMESPACE):
            return  # a client emitted an event named "disconnect": it is still connected
        assert self._store is not None
        try:
            departed = await self._store.remove_client(sid)
            await self._announce([departed])
        except Exception:
            log.exception("could not clean up after %s", sid)
        log.debug("disconnected %s (%s)", sid, args[0] if args else "?")

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

        async def handler(sid: str, *args: Any) -> Any:
            wants_ack = _ACK_REQUESTED.get()
            try:
                return await impl(sid, args[0] if args else None, wants_ack)
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
        if _ACK_REQUESTED.get():
            return {"error": message}
        await self._send_error(sid, event, message)
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
        self, event: str, channel: str, sid: str, profile: Profile, *, skip: str | None
    ) -> None:
        await self._sio.emit(
            event,
            {"channel": channel, "message": {"id": sid, "data": profile}},
            room=_room(channel),
            skip_sid=skip,
            namespace=NAMESPACE,
        )

    async def _join(self, sid: str, payload: object, wants_ack: bool) -> None:
        fields = expect_object(payload)
        channel = read_channel(fields, self.config.max_channel_name)
        assert channel is not None
        echo = read_echo(fields)
        assert self._store is not None
        new, profile = await self._store.join(sid, channel, echo)
        await self._sio.enter_room(sid, _room(channel), namespace=NAMESPACE)
        if new:
            await self._member_event(
                "channel:join", channel, sid, profile, skip=None if echo else sid
            )

    async def _leave(self, sid: str, payload: object, wants_ack: bool) -> None:
        fields = expect_object(payload)
        channel = read_channel(fields, self.config.max_channel_name)
        assert channel is not None
        echo = read_echo(fields)
        assert self._store is not None
        was_member, profile = await self._store.leave(sid, channel)
        if was_member:
            # Still in the room here, so an echo reaches the leaver; then leave the room.
            await self._member_event(
                "channel:leave", channel, sid, profile, skip=None if echo else sid
            )
            await self._sio.leave_room(sid, _room(channel), namespace=NAMESPACE)

    async def _message(self, sid: str, payload: object, wants_ack: bool) -> None:
        fields = expect_object(payload)
        channel = read_channel(fields, self.config.max_channel_name, required=False)
        event = read_event_name(fields, self.config.max_channel_name)
        echo = read_echo(fields)
        message = fields.get("message")
        if payload_size(message) > self.config.max_payload:
            raise HubInputError(f"message larger than {self.config.max_payload} bytes")
        await self._sio.emit(
            event,
            {"channel": channel, "message": message},
            room=None if channel is None else _room(channel),
            skip_sid=None if echo else sid,
            namespace=NAMESPACE,
        )

    async def _update(self, sid: str, payload: object, wants_ack: bool) -> None:
        fields = expect_object(payload)
        profile = read_profile(fields, self.config.max_payload)
        echo = read_echo(fields)
        assert self._store is not None
        for channel in await self._store.set_profile(sid, profile):
            await self._member_event(
                "channel:update", channel, sid, profile, skip=None if echo else sid
            )

    async def _members(self, sid: str, payload: object, wants_ack: bool) -> list[dict[str, Any]]:
        if not wants_ack:
            raise HubInputError("members needs an acknowledgement (emit it with an ack)")
        fields = expect_object(payload)
        channel = read_channel(fields, self.config.max_channel_name)
        assert channel is not None
        assert self._store is not None
        return [{"id": member, "data": data} for member, data in await self._store.members(channel)]


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
