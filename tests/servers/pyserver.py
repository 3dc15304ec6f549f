"""python-socketio test server: the same behaviour and /control/ API as servers/node/server.js.

Run it as a script (it imports nothing from the project)::

    python tests/servers/pyserver.py --port 0 [--host 127.0.0.1] [--ping-interval MS]
        [--ping-timeout MS] [--csr] [--token TOKEN] [--max-payload BYTES] [--no-ping]
        [--transports polling,websocket] [--path /socket.io/] [--watch-stdin] [--verbose]

Once it accepts connections it prints exactly one line to stdout,
``listening on http://HOST:PORT``. servers/README.md describes the events and the control API.

Differences from the Node server, all of them python-socketio's own behaviour:

- ``--csr`` is accepted and ignored: python-socketio has no connection state recovery, so
  ``recovered`` is always ``False``.
- python-engineio advertises ``pingInterval`` as ``int(seconds) * 1000``: a sub-second
  ``--ping-interval`` is advertised as ``0`` while the server still pings at the real interval.
- ``no-ack``: python-socketio acknowledges every event that asked for it once the handler
  returns, so that handler returns only when its client disconnects (the ack then goes nowhere).
- Disconnect reasons are python-socketio's (``client disconnect``, ``server disconnect``,
  ``transport close``, ``ping timeout``, ...), not Node's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any, TypeVar
from urllib.parse import parse_qs

import engineio
import engineio.async_socket
import engineio.packet
import socketio
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
T = TypeVar("T")

EXIT_ADDRESS_IN_USE = 3
#: The most client events the state keeps (the oldest go first).
MAX_RECEIVED = 10_000


def from_json(value: Any) -> Any:
    """Decode the control API's JSON, where ``{"$b64": "..."}`` stands for bytes."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if isinstance(value, dict):
        if list(value) == ["$b64"]:
            return base64.b64decode(value["$b64"])
        return {k: from_json(v) for k, v in value.items()}
    return value


def to_json(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------------------------
# Muting. python-engineio has two clocks that would close a silent connection: the ping task
# (``AsyncSocket._send_ping``, which sends a ping every ``ping_interval``) and the
# ``asyncio.wait_for(..., ping_interval + ping_timeout)`` calls in the socket's reader and writer
# loops. While muted, the ping task keeps ticking without sending, and those waits run on past
# their timeout instead of closing the socket, so the client sees no ping while this side stays
# up. Unmuting resumes pings at the next tick, and the waits give the client one more full
# window from then. This patches python-engineio in this process only.


class Mute:
    def __init__(self) -> None:
        self._muted = False
        self.unmuted_at = 0.0  # time.monotonic() of the last unmute

    @property
    def muted(self) -> bool:
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        if self._muted and not value:
            self.unmuted_at = time.monotonic()
        self._muted = value

    def patient(self, timeout: float) -> bool:
        """Should a heartbeat wait of ``timeout`` that just expired go on waiting?

        Yes while muted, and for one full ``timeout`` after unmuting: the client gets a fresh
        heartbeat window from the moment pings resume.
        """
        return self._muted or time.monotonic() - self.unmuted_at < timeout


MUTE = Mute()


class _PatientAsyncio:
    """Stands in for the ``asyncio`` module inside ``engineio.async_socket``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
        task = asyncio.ensure_future(aw)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=timeout)
                if done:
                    return task.result()
                if timeout is None or not MUTE.patient(timeout):
                    task.cancel()
                    raise asyncio.TimeoutError
        except asyncio.CancelledError:
            task.cancel()
            raise


async def _send_ping(self: engineio.async_socket.AsyncSocket) -> None:
    while True:
        await asyncio.sleep(self.server.ping_interval)
        if self.closing or self.closed:
            return
        if not MUTE.muted:
            break
    self.last_ping = time.time()
    await self.send(engineio.packet.Packet(engineio.packet.PING))


def install_mute_patch() -> None:
    engineio.async_socket.asyncio = _PatientAsyncio()
    engineio.async_socket.AsyncSocket._send_ping = _send_ping


# ------------------------------------------------------------------------------------------------


class TestServer:
    """The Socket.IO handlers and the recorded state."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.token: str | None = args.token
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            cors_allowed_origins="*",
            ping_interval=args.ping_interval / 1000,
            ping_timeout=args.ping_timeout / 1000,
            max_http_buffer_size=args.max_payload,
            transports=args.transports,
            logger=args.verbose,
            engineio_logger=args.verbose,
        )
        self.history: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.disconnects: list[dict[str, Any]] = []
        self.records: list[Any] = []  # the first argument of every "record" event
        # Every event from a client, in arrival order: {sid, event, args}; the oldest go.
        self.received: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_RECEIVED)
        self.connected: dict[str, asyncio.Event] = {}  # sid -> set when it disconnects
        self.connections = 0
        self._register()

    def _register(self) -> None:
        handlers: dict[str, Callable[..., Awaitable[Any]]] = {
            "connect": self.on_connect,
            "disconnect": self.on_disconnect,
            "echo": self.on_echo,
            "ack": self.on_ack,
            "slow-ack": self.on_slow_ack,
            "no-ack": self.on_no_ack,
            "record": self.on_record,
            "emit-many": self.on_emit_many,
            "broadcast": self.on_broadcast,
        }
        for event, handler in handlers.items():
            lifecycle = event in ("connect", "disconnect")
            self.sio.on(event, handler if lifecycle else self._recording(event, handler))
        self.sio.eio.on("disconnect", self._on_engine_disconnect)

    async def _on_engine_disconnect(self, eio_sid: str, reason: Any) -> None:
        """python-socketio's own handler, then an empty answer to the long-poll GET a polling
        client left out: python-engineio keeps it waiting after the engine socket closed
        (until ping_interval + ping_timeout), and uvicorn waits for it on SIGTERM."""
        await self.sio._handle_eio_disconnect(eio_sid, reason)
        eio_sock = self.sio.eio.sockets.get(eio_sid)
        if eio_sock is not None and not eio_sock.upgraded:
            eio_sock.queue.put_nowait(None)

    def _recording(
        self, event: str, handler: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        """``handler``, recording the event first. python-socketio runs each handler in a
        task of its own (async_handlers), started in arrival order; this runs before the
        handler's first await, so ``received`` keeps that order."""

        async def recorded(sid: str, *args: Any) -> Any:
            self.received.append({"sid": sid, "event": event, "args": to_json(list(args))})
            return await handler(sid, *args)

        return recorded

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        if self.token is not None and (
            not isinstance(auth, dict) or auth.get("token") != self.token
        ):
            self.refused.append({"auth": to_json(auth), "time": time.time()})
            raise socketio.exceptions.ConnectionRefusedError(
                "unauthorized", {"reason": "bad token", "retry": False}
            )
        self.connections += 1
        self.connected[sid] = asyncio.Event()
        self.history.append(
            {"sid": sid, "auth": to_json(auth), "recovered": False, "time": time.time()}
        )
        # Inside the connect handler, so it is written before the CONNECT reply.
        await self.sio.emit("hello", {"sid": sid}, to=sid)

    async def on_disconnect(self, sid: str, reason: str) -> None:
        self.disconnects.append({"sid": sid, "reason": reason})
        gone = self.connected.pop(sid, None)
        if gone is not None:
            gone.set()

    async def on_echo(self, sid: str, *args: Any) -> None:
        await self.sio.emit("echo", args, to=sid)

    async def on_ack(self, sid: str, *args: Any) -> tuple[Any, ...]:
        return args

    async def on_record(self, sid: str, value: Any = None, *_: Any) -> str:
        self.records.append(to_json(value))
        return "ok"

    async def on_slow_ack(self, sid: str, seconds: float = 0, *_: Any) -> str:
        await asyncio.sleep(float(seconds))
        return "done"

    async def on_no_ack(self, sid: str, *_: Any) -> None:
        # python-socketio acknowledges when the handler returns: return only once the client
        # is gone, so the ack is never delivered.
        gone = self.connected.get(sid)
        if gone is not None:
            await gone.wait()

    async def on_emit_many(self, sid: str, count: int, size: int = 0, *_: Any) -> None:
        filler = "x" * int(size)
        for i in range(int(count)):
            await self.sio.emit("item", (i, filler), to=sid)

    async def on_broadcast(self, sid: str, *args: Any) -> None:
        await self.sio.emit("broadcast", args)

    # -- control ---------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "connected": list(self.connected),
            "history": self.history,
            "connections": self.connections,
            "disconnects": self.disconnects,
            "refused": self.refused,
            "records": self.records,
            "received": list(self.received),
            "muted": MUTE.muted,
        }

    def _eio_socket(self, sid: str) -> engineio.async_socket.AsyncSocket | None:
        if sid not in self.connected:
            return None
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        sock: engineio.async_socket.AsyncSocket | None = self.sio.eio.sockets.get(eio_sid)
        return sock

    async def control(self, method: str, action: str, sid: str | None, body: bytes) -> Any:
        if action == "state" and method == "GET":
            return 200, self.state()
        if method != "POST":
            return 405, {"error": "use POST"}
        if action in ("disconnect", "drop"):
            eio_sock = self._eio_socket(sid) if sid else None
            if sid is None or eio_sock is None:
                return 404, {"error": f"no connected socket {sid}"}
            if action == "disconnect":
                await self.sio.disconnect(sid)
            else:
                await self._drop(eio_sock)
            return 200, {"ok": True}
        if action == "emit":
            msg = json.loads(body) if body else {}
            if not isinstance(msg.get("event"), str):
                return 400, {"error": "event missing"}
            args = tuple(from_json(msg.get("args") or []))
            if sid is not None and sid not in self.connected:
                return 404, {"error": f"no connected socket {sid}"}
            await self.sio.emit(msg["event"], args, to=sid)
            return 200, {"ok": True}
        if action in ("mute", "unmute"):
            MUTE.muted = action == "mute"
            return 200, {"ok": True}
        if action == "reset":
            self.history.clear()
            self.refused.clear()
            self.disconnects.clear()
            self.records.clear()
            self.received.clear()
            self.connections = 0
            return 200, {"ok": True}
        return 404, {"error": f"unknown control {action}"}

    async def _drop(self, eio_sock: engineio.async_socket.AsyncSocket) -> None:
        """Close the WebSocket with no Socket.IO DISCONNECT and no Engine.IO close packet."""
        # abort=True: no CLOSE packet. The None wakes the writer loop, which closes the
        # WebSocket; the reader loop then ends on its own.
        await eio_sock.close(wait=False, abort=True, reason=self.sio.eio.reason.TRANSPORT_CLOSE)
        await eio_sock.queue.put(None)
        self.sio.eio.sockets.pop(eio_sock.sid, None)

    async def control_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if path.startswith("/control/"):
            query = parse_qs(scope.get("query_string", b"").decode())
            sid = query["sid"][0] if "sid" in query else None
            try:
                status, payload = await self.control(
                    scope["method"], path[len("/control/") :], sid, body
                )
            except Exception as exc:
                status, payload = 500, {"error": repr(exc)}
        else:
            status, payload = 404, {"error": "not found"}
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, line: str, watch_stdin: bool) -> None:
        super().__init__(config)
        self.line = line
        self.watch_stdin = watch_stdin

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.watch_stdin:
            _watch_stdin()
        if not self.should_exit:
            sys.stdout.write(self.line + "\n")
            sys.stdout.flush()


def _watch_stdin() -> None:
    """Exit when the harness that holds our stdin dies (no orphaned servers)."""
    fd = sys.stdin.fileno()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            os._exit(0)

    loop.add_reader(fd, readable)


def _transports(value: str) -> list[str]:
    names = [name for name in value.split(",") if name]
    if not names or any(name not in ("polling", "websocket") for name in names):
        raise argparse.ArgumentTypeError("polling, websocket or both (comma-separated)")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pyserver.py", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ping-interval", type=int, default=25000, metavar="MS")
    p.add_argument("--ping-timeout", type=int, default=20000, metavar="MS")
    p.add_argument("--max-payload", type=int, default=1_000_000, metavar="BYTES")
    p.add_argument("--token", default=None)
    p.add_argument(
        "--transports",
        type=_transports,
        default=["polling", "websocket"],
        help="polling, websocket or both, comma-separated (default both)",
    )
    p.add_argument("--path", default="/socket.io/", help="the Engine.IO path")
    p.add_argument("--csr", action="store_true", help="accepted and ignored (no CSR in python)")
    p.add_argument("--no-ping", action="store_true", help="start muted")
    p.add_argument("--watch-stdin", action="store_true", help="exit when stdin reaches EOF")
    p.add_argument("--verbose", action="store_true", help="python-socketio logs on stderr")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_mute_patch()
    MUTE.muted = args.no_ping
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    server = TestServer(args)
    app = socketio.ASGIApp(server.sio, other_asgi_app=server.control_app, socketio_path=args.path)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sys.stderr.write(f"pyserver: cannot bind {args.host}:{args.port}: {exc}\n")
        return EXIT_ADDRESS_IN_USE
    sock.listen(128)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]

    config = uvicorn.Config(
        app,
        log_level="info" if args.verbose else "warning",
        ws="wsproto",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    uv = _Server(config, f"listening on http://{args.host}:{port}", args.watch_stdin)
    run: Coroutine[Any, Any, None] = uv.serve(sockets=[sock])
    asyncio.run(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
