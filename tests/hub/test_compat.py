"""What ``tether.hub._compat`` relies on in python-socketio, python-engineio and uvicorn.

One test per item of ``_compat.py``; each failure names the item and the installed version,
so an upgrade that changes a private name, a signature, an attribute or a behaviour the hub
depends on fails here, clearly, before it fails somewhere in the hub. The behaviours are
checked on the real classes (a real uvicorn server where a transport is involved); the hub's
own tests then check the effect end to end.

These drive asyncio-only libraries directly, so they run ``asyncio.run`` themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import inspect
import logging
import signal
import socket
from collections.abc import Callable
from typing import Any, NoReturn

import engineio
import pytest
import socketio
import uvicorn
from engineio import packet as eio_packet
from engineio.async_drivers import asgi as eio_asgi
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet
from socketio.async_pubsub_manager import AsyncPubSubManager
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from tether.hub import _compat
from tether.hub._packets import OversizedPayload, hub_packet_class
from tether.hub._sendqueue import SendQueue

DISTRIBUTIONS = {
    "socketio": "python-socketio",
    "engineio": "python-engineio",
    "uvicorn": "uvicorn",
}


def changed(item: str, package: str, detail: str) -> NoReturn:
    version = importlib.metadata.version(DISTRIBUTIONS[package])
    pytest.fail(
        f"tether.hub._compat: {item} no longer holds in {DISTRIBUTIONS[package]} {version}: "
        f"{detail}. Update _compat.py (and the bounds in pyproject.toml's hub extra).",
        pytrace=False,
    )


def check(condition: object, item: str, package: str, detail: str) -> None:
    if not condition:
        changed(item, package, detail)


def params(func: Any) -> list[str]:
    return list(inspect.signature(func).parameters)


async def _noop(*args: Any) -> None:
    return None


def compat_server(**kwargs: Any) -> _compat.CompatServer:
    return _compat.CompatServer(
        async_mode="asgi",
        on_malformed=_noop,
        send_queue_factory=lambda: SendQueue(100, 10_000, lambda queue: None),
        **kwargs,
    )


# ------------------------------------------------------------------------ python-socketio


def test_handle_event_override() -> None:
    item = "AsyncServer._handle_event(eio_sid, namespace, id, data)"
    method = getattr(socketio.AsyncServer, "_handle_event", None)
    check(method is not None, item, "socketio", "the method is gone")
    check(inspect.iscoroutinefunction(method), item, "socketio", "no longer a coroutine")
    got = params(method)
    check(got == ["self", "eio_sid", "namespace", "id", "data"], item, "socketio", f"{got}")


def test_handle_eio_disconnect_override_ends_a_waiting_long_poll() -> None:
    item = "AsyncServer._handle_eio_disconnect(eio_sid, reason)"
    method = getattr(socketio.AsyncServer, "_handle_eio_disconnect", None)
    check(method is not None, item, "socketio", "the method is gone")
    check(inspect.iscoroutinefunction(method), item, "socketio", "no longer a coroutine")
    check(params(method) == ["self", "eio_sid", "reason"], item, "socketio", f"{params(method)}")
    sio = compat_server()
    handler = sio.eio.handlers.get("disconnect")
    check(
        getattr(handler, "__func__", None) is _compat.CompatServer._handle_eio_disconnect,
        item,
        "socketio",
        "python-engineio's disconnect handler is no longer _handle_eio_disconnect",
    )

    async def scenario() -> None:
        sock = AsyncSocket(sio.eio, "eio-1")
        _compat.engineio_sockets(sio)["eio-1"] = sock
        waiting = asyncio.ensure_future(sock.poll())
        await asyncio.sleep(0)
        await sio._handle_eio_disconnect("eio-1", engineio.AsyncServer.reason.TRANSPORT_CLOSE)
        got = await asyncio.wait_for(waiting, 5)
        check(got == [], item, "engineio", f"the waiting long-poll got {got}, not the sentinel")

    asyncio.run(scenario())


def test_handle_eio_message_override_and_binary_packet_table() -> None:
    item = "AsyncServer._handle_eio_message(eio_sid, data) and BaseServer._binary_packet"
    method = getattr(socketio.AsyncServer, "_handle_eio_message", None)
    check(method is not None, item, "socketio", "the method is gone")
    check(inspect.iscoroutinefunction(method), item, "socketio", "no longer a coroutine")
    check(params(method) == ["self", "eio_sid", "data"], item, "socketio", f"{params(method)}")
    sio = compat_server()
    check(isinstance(getattr(sio, "_binary_packet", None), dict), item, "socketio", "no dict")
    handler = sio.eio.handlers.get("message")
    check(
        getattr(handler, "__func__", None) is _compat.CompatServer._handle_eio_message,
        item,
        "socketio",
        "python-engineio's message handler is no longer _handle_eio_message",
    )


def test_binary_packets_wait_in_binary_packet_table() -> None:
    item = "BaseServer._binary_packet holds a binary packet until its attachments arrive"
    seen: list[Any] = []

    class Probe(_compat.CompatServer):
        async def _handle_event(self, eio_sid: str, namespace: str, id: Any, data: Any) -> None:
            seen.append(data)

    async def scenario() -> None:
        sio = Probe(
            async_mode="asgi",
            on_malformed=_noop,
            send_queue_factory=lambda: SendQueue(100, 10_000, lambda queue: None),
            serializer=hub_packet_class(10),
        )
        # What python-socketio does for a CONNECT, minus the handshake (5.13 split the
        # manager's connect in two).
        eio_sid = "eio-1"
        if hasattr(sio.manager, "pre_connect"):
            await sio.manager.connect(await sio.manager.pre_connect(eio_sid, "/"), "/")
        else:
            await sio.manager.connect(eio_sid, "/")
        await sio._handle_eio_message(eio_sid, '51-["e",{"_placeholder":true,"num":0}]')
        check(eio_sid in sio._binary_packet, item, "socketio", "the packet is not kept there")
        await sio._handle_eio_message(eio_sid, b"12345678901")
        check(eio_sid not in sio._binary_packet, item, "socketio", "it stays after the last")

    asyncio.run(scenario())
    check(seen == [["e", OversizedPayload(11)]], item, "socketio", f"handled {seen!r}")


def test_engineio_server_class_hook() -> None:
    item = "BaseServer._engineio_server_class() builds AsyncServer.eio"
    check(
        callable(getattr(socketio.AsyncServer, "_engineio_server_class", None)),
        item,
        "socketio",
        "the method is gone",
    )
    sio = compat_server()
    check(isinstance(sio.eio, _compat._CompatEngineIO), item, "socketio", f"{type(sio.eio)}")


def test_serializer_accepts_a_packet_class() -> None:
    item = "AsyncServer(serializer=<Packet subclass>) (public) and Packet.decode/add_attachment"
    cls = hub_packet_class(1000)
    sio = compat_server(serializer=cls)
    check(sio.packet_class is cls, item, "socketio", "the class is not used")
    check(params(sio_packet.Packet.decode) == ["self", "encoded_packet"], item, "socketio", "")
    check(params(sio_packet.Packet.add_attachment) == ["self", "attachment"], item, "socketio", "")
    pkt = cls(encoded_packet='51-2["e",{"_placeholder":true,"num":0}]')
    check(
        (pkt.packet_type, pkt.id, pkt.attachment_count) == (sio_packet.BINARY_EVENT, 2, 1),
        item,
        "socketio",
        "decode does not set packet_type, id and attachment_count",
    )
    check(pkt.add_attachment(b"xy") is True, item, "socketio", "add_attachment")
    check(pkt.data == ["e", b"xy"], item, "socketio", f"data is {pkt.data!r}")


def test_manager_initialized_flag() -> None:
    item = "BaseServer.manager_initialized guards the lazy manager.initialize()"
    calls: list[int] = []

    class Counting(socketio.AsyncManager):  # type: ignore[misc]
        def initialize(self) -> None:
            calls.append(1)
            super().initialize()

    sio = socketio.AsyncServer(async_mode="asgi", client_manager=Counting())
    check(getattr(sio, "manager_initialized", None) is False, item, "socketio", "no flag")
    _compat.initialize_manager(sio)
    environ = {"probe": True}
    asyncio.run(sio._handle_eio_connect("eio-1", environ))
    check(calls == [1], item, "socketio", f"initialize() ran {len(calls)} times")
    item = "BaseServer.environ keeps the environ of each Engine.IO session"
    check(_compat.environ_of(sio, "eio-1") is environ, item, "socketio", "not found there")


def test_redis_manager_overrides() -> None:
    base = socketio.AsyncRedisManager
    item = "AsyncRedisManager._redis_connect() sets redis and pubsub"
    check(
        params(base._redis_connect) == ["self"], item, "socketio", f"{params(base._redis_connect)}"
    )
    manager = _compat.ReadyRedisManager(
        "redis://127.0.0.1:1/0", channel="probe", logger=logging.getLogger("probe")
    )
    check(manager.redis is None and manager.pubsub is None, item, "socketio", "not None at start")
    check(manager.channel == "probe", item, "socketio", "channel attribute")
    manager._redis_connect()  # builds the clients; connects lazily, so no server is needed
    check(manager.redis is not None, item, "socketio", "redis not set")
    check(manager.pubsub.ignore_subscribe_messages is False, item, "socketio", "pubsub not set")
    item = "AsyncRedisManager._listen() / _redis_listen_with_retries() are async generators"
    for name in ("_listen", "_redis_listen_with_retries"):
        check(inspect.isasyncgenfunction(getattr(base, name, None)), item, "socketio", name)
    item = "AsyncPubSubManager.initialize() keeps its listener task in self.thread"
    source = inspect.getsource(AsyncPubSubManager.initialize)
    check("self.thread" in source, item, "socketio", "no self.thread assignment")


# ------------------------------------------------------------------------ python-engineio


def test_socket_send_queue_comes_from_create_queue() -> None:
    item = "BaseSocket.__init__ takes its send queue from server.create_queue()"
    sio = compat_server()

    async def scenario() -> None:
        sock = AsyncSocket(sio.eio, "eio-1")
        check(isinstance(sock.queue, SendQueue), item, "engineio", f"{type(sock.queue)}")
        item2 = "AsyncSocket.send() queues with queue.put()"
        await sock.send(eio_packet.Packet(eio_packet.MESSAGE, data="2hello"))
        check(sock.queue.packets == 1, item2, "engineio", "the packet was not counted")
        item3 = "AsyncSocket.poll() returns [] for the None sentinel"
        got = await sock.poll()
        check([p.data for p in got] == ["2hello"], item3, "engineio", f"polled {got}")
        sock.queue.put_nowait(None)
        check(await sock.poll() == [], item3, "engineio", "the sentinel is not 'closed'")
        check(sock.queue.packets == 0 and sock.queue.bytes == 0, item2, "engineio", "count")

    asyncio.run(scenario())
    check(sio.eio.create_queue(maxsize=3).maxsize == 3, item, "engineio", "other queues changed")


def test_socket_state_and_close() -> None:
    item = "AsyncSocket.upgraded/closing/closed/connected and close(wait, abort, reason)"
    sock = AsyncSocket(compat_server().eio, "eio-1")
    for name in ("upgraded", "closing", "closed", "connected"):
        check(getattr(sock, name, None) is False, item, "engineio", f"{name} is not False")
    check(params(AsyncSocket.close) == ["self", "wait", "abort", "reason"], item, "engineio", "")
    check(
        hasattr(engineio.AsyncServer.reason, "TRANSPORT_CLOSE"),
        "AsyncServer.reason.TRANSPORT_CLOSE",
        "engineio",
        "gone",
    )
    server = compat_server()
    item = "AsyncServer.sockets maps Engine.IO sids to sockets"
    check(_compat.engineio_sockets(server) == {}, item, "engineio", "not a dict")


def test_websocket_handler_reads_with_wait_and_writes_through_poll() -> None:
    item = "AsyncSocket._websocket_handler: writer drains poll(), closes on the sentinel"
    source = inspect.getsource(AsyncSocket._websocket_handler)
    for needle in ("self.poll()", "await ws.close()", "await self.queue.put(None)"):
        check(needle in source, item, "engineio", f"{needle!r} not found")


def test_environ_carries_the_asgi_scope() -> None:
    item = "engineio.async_drivers.asgi.translate_request puts asgi.scope/asgi.receive"
    scope = {"type": "websocket", "path": "/socket.io/", "query_string": b"", "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    environ = asyncio.run(eio_asgi.translate_request(scope, receive, _noop))
    check(_compat.asgi_scope(environ) is scope, item, "engineio", "no asgi.scope")
    check(environ.get("asgi.receive") is receive, item, "engineio", "no asgi.receive")


def test_send_queue_routes_through_put_nowait_and_get_nowait() -> None:
    item = "asyncio.Queue.put/get end in put_nowait/get_nowait"
    overflows: list[SendQueue] = []

    async def scenario() -> None:
        queue = SendQueue(100, 25, overflows.append)
        await queue.put(eio_packet.Packet(eio_packet.MESSAGE, data="x" * 9))
        check(queue.bytes == 10, item, "engineio", f"bytes {queue.bytes}")
        # 9 × "é" is 18 bytes of UTF-8 (+1 for the type): 10 + 19 passes the bound of 25.
        await queue.put(eio_packet.Packet(eio_packet.MESSAGE, data="é" * 9))
        check(overflows == [queue], item, "engineio", "no overflow")
        check(queue.packets == 0 and queue.bytes == 0, item, "engineio", "not released")
        await queue.put(None)
        check(await queue.get() is None, item, "engineio", "the sentinel was dropped")

    asyncio.run(scenario())


# -------------------------------------------------------------------------------- uvicorn


def test_uvicorn_server_hooks() -> None:
    item = "Server.capture_signals() / Server.startup(sockets) / Server.serve(sockets)"
    check(callable(getattr(uvicorn.Server, "capture_signals", None)), item, "uvicorn", "gone")
    check(params(uvicorn.Server.startup) == ["self", "sockets"], item, "uvicorn", "startup")
    check(params(uvicorn.Server.serve) == ["self", "sockets"], item, "uvicorn", "serve")
    source = inspect.getsource(uvicorn.Server.serve)
    check("self.capture_signals()" in source, item, "uvicorn", "serve no longer uses it")


def _serve_once(app: Any, client: Callable[[int], Any]) -> Any:
    """Run ``app`` on a real uvicorn (the hub's settings) until ``client(port)`` returns."""

    async def scenario() -> Any:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = _compat.UvicornServer(
            uvicorn.Config(
                app, http="h11", ws="wsproto", lifespan="off", log_config=None, log_level=None
            )
        )
        before = signal.getsignal(signal.SIGINT)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await asyncio.wait_for(server.ready.wait(), 10)
        check(
            signal.getsignal(signal.SIGINT) is before,
            "UvicornServer.capture_signals() installs nothing",
            "uvicorn",
            "a signal handler was installed",
        )
        try:
            return await asyncio.get_running_loop().run_in_executor(None, client, port)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            sock.close()

    return asyncio.run(scenario())


def test_websocket_transport_is_reachable_and_aborts() -> None:
    item = "WSProtocol passes its bound receive(); __self__.transport is the connection's"
    found: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        transport = _compat.transport_of(receive)
        found.append(transport)
        found.append(_compat.abort_transport(transport))
        with contextlib.suppress(Exception):
            while (await receive())["type"] != "websocket.disconnect":
                pass

    def client(port: int) -> bytes:
        ws = WSConnection(ConnectionType.CLIENT)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(ws.send(Request(host="x", target="/")))
            data = conn.recv(65536)
            ws.receive_data(data)
            assert any(isinstance(e, AcceptConnection) for e in ws.events())
            with contextlib.suppress(ConnectionResetError):
                while conn.recv(65536):
                    pass
                return b"eof"
            return b"reset"

    ending = _serve_once(app, client)
    check(isinstance(found[0], asyncio.Transport), item, "uvicorn", f"transport_of gave {found[0]}")
    check(found[1] is True and ending == b"reset", item, "uvicorn", f"ended with {ending!r}")


def test_client_caused_uvicorn_warnings(caplog: pytest.LogCaptureFixture) -> None:
    item = "uvicorn's per-connection warnings for invalid requests (CLIENT_CAUSED_…)"
    caplog.set_level(logging.INFO, logger="uvicorn.error")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    def client(port: int) -> None:
        for request in (
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        ):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(request)
                conn.recv(65536)

    _serve_once(app, client)
    seen = {r.msg for r in caplog.records if r.name == "uvicorn.error"}
    missing = _compat.CLIENT_CAUSED_UVICORN_WARNINGS - seen
    check(not missing, item, "uvicorn", f"not logged any more: {sorted(missing)}")
