"""Handles on the real Socket.IO servers the integration tests run against.

``NodeServer`` (servers/node/server.js, Node's socket.io 4.8) and ``PythonServer``
(tests/servers/pyserver.py, python-socketio on uvicorn) behave alike and share one control API,
so a test can take either (``make_server(kind)``). Lifecycle methods are synchronous (they
start and signal a process); each has an ``a``-prefixed async twin that runs it in a worker
thread, so a test can restart a server while its client keeps running. The control helpers
(``state``, ``disconnect``, ``drop``, ``emit``, ``mute``, ``wait_for``) are async and work on
asyncio and trio alike.

Every process is started with ``--watch-stdin`` and a pipe as its stdin: if the test process
dies, the pipe closes and the server exits, so no server outlives the run. Output (stdout and
stderr) is kept for ``output()``, which the integration conftest attaches to failing tests.
"""

from __future__ import annotations

import atexit
import base64
import collections
import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypedDict

import anyio
import anyio.to_thread

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "servers" / "node"

ServerKind = Literal["node", "python"]
SERVER_KINDS: tuple[ServerKind, ...] = ("node", "python")

START_TIMEOUT = 15.0  # seconds; a cold start takes well under one
EXIT_ADDRESS_IN_USE = 3  # both servers exit with it when --port is taken


class ServerStartError(RuntimeError):
    """The server did not print its ``listening on`` line; the message has its output."""


class ControlError(RuntimeError):
    """The control API answered with an error status."""


# -- the control API's JSON ----------------------------------------------------------------------


class Connection(TypedDict):
    sid: str
    auth: Any
    recovered: bool
    time: float


class Disconnect(TypedDict):
    sid: str
    reason: str


class Refusal(TypedDict):
    auth: Any
    time: float


class Received(TypedDict):
    sid: str
    event: str
    args: list[Any]  # bytes as {"$b64": ...}


class _NodeOnlyState(TypedDict, total=False):
    ticks: int  # how many "tick" events the ticker has emitted
    pongs: dict[str, int]  # Engine.IO pongs read, per sid


class ServerState(_NodeOnlyState):
    connected: list[str]
    history: list[Connection]
    connections: int
    disconnects: list[Disconnect]
    refused: list[Refusal]
    records: list[Any]
    received: list[Received]  # the last 10,000 events from clients, in arrival order
    muted: bool


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Command-line options shared by both servers. Times in milliseconds."""

    ping_interval: int | None = None
    ping_timeout: int | None = None
    token: str | None = None
    csr: bool = False  # node only; python accepts it and never recovers
    max_payload: int | None = None
    no_ping: bool = False  # start muted
    late_hello: bool = False  # node only: "hello" after the CONNECT reply
    transports: tuple[str, ...] | None = None  # ("polling",), ("websocket",); None: both
    path: str | None = None  # the Engine.IO path; None: /socket.io/
    parser: str | None = None  # node only: "msgpack" (socket.io-msgpack-parser)

    def args(self) -> list[str]:
        out: list[str] = []
        for flag, value in (
            ("--ping-interval", self.ping_interval),
            ("--ping-timeout", self.ping_timeout),
            ("--token", self.token),
            ("--max-payload", self.max_payload),
            ("--transports", ",".join(self.transports) if self.transports else None),
            ("--path", self.path),
            ("--parser", self.parser),
        ):
            if value is not None:
                out += [flag, str(value)]
        for flag, on in (
            ("--csr", self.csr),
            ("--no-ping", self.no_ping),
            ("--late-hello", self.late_hello),
        ):
            if on:
                out.append(flag)
        return out


def to_wire(value: Any) -> Any:
    """Encode args for ``emit``: bytes become ``{"$b64": ...}``, which the servers decode."""
    if isinstance(value, (bytes, bytearray)):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    return value


# -- processes -----------------------------------------------------------------------------------

_LIVE: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


_ALL: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


def failure_report(since: float) -> list[tuple[str, str]]:
    """(title, output) for a failed test: every server that printed something since ``since``
    (``time.time()``; stopped or killed ones included), and the tail of every running one."""
    sections = []
    known = list(_ALL)  # a snapshot: the WeakSet may shrink while we iterate
    for server in sorted(known, key=lambda s: s.port):
        text = server.output(since=since)
        if not text and server.running:
            text = server.output(last=20)
        if text:
            sections.append((f"{server.name} {server.url}", text))
    return sections


@atexit.register
def _kill_all() -> None:
    for server in list(_LIVE):
        server.kill()


class ServerProcess:
    """A server subprocess that prints ``listening on http://HOST:PORT`` once it accepts."""

    name = "server"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0  # 0 until the first start; later starts reuse it
        self.startup_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: collections.deque[tuple[float, str]] = collections.deque(maxlen=2000)
        self._lock = threading.Lock()
        self._paused = False
        self._watchdog: subprocess.Popen[bytes] | None = None
        _ALL.add(self)

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and wait until it accepts connections.

        The first start picks a free port; later starts (``restart``) reuse it, retrying while
        the port is still taken, so clients can reconnect to the same URL.
        """
        if self.running:
            return
        deadline = time.monotonic() + timeout
        while True:
            exit_code = self._start_once(deadline)
            if exit_code is None:
                _LIVE.add(self)
                return
            if exit_code != EXIT_ADDRESS_IN_USE or self.port == 0:
                raise ServerStartError(self._failure(f"{self.name} exited with {exit_code}"))
            if time.monotonic() >= deadline:
                raise ServerStartError(self._failure(f"port {self.port} stayed in use"))
            time.sleep(0.05)

    def _start_once(self, deadline: float) -> int | None:
        began = time.monotonic()
        listening = threading.Event()
        found: list[int] = []
        self._log(f"--- starting {self.name} on port {self.port or 'any'}")
        proc = subprocess.Popen(
            self.command(self.port),
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a ^C to the test run does not hit the servers first
        )
        self._proc = proc
        assert proc.stdout is not None
        assert proc.stderr is not None
        threading.Thread(
            target=self._pump, args=(proc.stdout, "out", listening, found), daemon=True
        ).start()
        threading.Thread(
            target=self._pump, args=(proc.stderr, "err", None, None), daemon=True
        ).start()
        if not listening.wait(max(0.0, deadline - time.monotonic())) or not found:
            if listening.is_set():  # stdout ended: the process is exiting
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(1.0, deadline - time.monotonic()))
            timed_out = proc.poll() is None
            self._terminate(proc, signal.SIGKILL)
            if timed_out:
                raise ServerStartError(self._failure(f"{self.name}: no 'listening on' line"))
            return proc.returncode
        self.port = found[0]
        self.startup_seconds = time.monotonic() - began
        return None

    def _pump(
        self,
        stream: Any,
        tag: str,
        listening: threading.Event | None,
        found: list[int] | None,
    ) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._log(f"[{tag}] {line}")
            if (
                listening is not None
                and found is not None
                and not listening.is_set()
                and line.startswith("listening on http://")
            ):
                found.append(int(line.rsplit(":", 1)[1]))
                listening.set()
        stream.close()
        if listening is not None:
            listening.set()  # EOF: the process is gone, stop waiting

    def _log(self, line: str) -> None:
        with self._lock:
            self._output.append((time.time(), line))

    def output(self, last: int | None = None, since: float | None = None) -> str:
        """What the process printed (stdout and stderr, interleaved, with our own start and
        exit lines): the ``last`` lines only, or those since ``since`` (``time.time()``)."""
        with self._lock:
            lines = [line for t, line in self._output if since is None or t >= since]
        return "\n".join(lines[-last:] if last else lines)

    def _failure(self, what: str) -> str:
        return f"{what}\ncommand: {' '.join(self.command(self.port))}\n{self.output(80)}"

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        self._terminate(proc, signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing anything properly."""
        proc = self._proc
        if proc is not None:
            self._terminate(proc, signal.SIGKILL)

    def _terminate(self, proc: subprocess.Popen[bytes], sig: int, timeout: float = 5.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if self._paused and sig != signal.SIGKILL:
                    proc.send_signal(signal.SIGCONT)
                proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._paused = False
        self._stop_watchdog()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if proc is self._proc:
            self._proc = None
            self._log(f"--- {self.name} exited with {proc.returncode}")
        _LIVE.discard(self)

    def restart(self, *, kill: bool = False, timeout: float = START_TIMEOUT) -> None:
        """Stop (or SIGKILL) and start again on the same port."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP: the server stops answering anything (pings, handshakes, control).

        A stopped process cannot notice that its stdin closed, so while it is paused a small
        watchdog shell holds that duty: if the test process dies, it SIGKILLs the server.
        """
        assert self._proc is not None
        assert self.running
        if self._watchdog is None:
            self._watchdog = subprocess.Popen(
                [
                    "sh",
                    "-c",
                    'read -r line; [ "$line" = resumed ] || kill -KILL "$1"',
                    "sh",
                    str(self._proc.pid),
                ],
                stdin=subprocess.PIPE,
                start_new_session=True,
            )
        self._proc.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)
        self._paused = False
        self._stop_watchdog()

    def _stop_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog.stdin is not None:
            with contextlib.suppress(OSError):
                watchdog.stdin.write(b"resumed\n")
                watchdog.stdin.close()
            watchdog.wait()

    @property
    def paused(self) -> bool:
        return self._paused

    async def astart(self) -> None:
        await anyio.to_thread.run_sync(self.start)

    async def astop(self) -> None:
        await anyio.to_thread.run_sync(self.stop)

    async def akill(self) -> None:
        await anyio.to_thread.run_sync(self.kill)

    async def arestart(self, *, kill: bool = False) -> None:
        await anyio.to_thread.run_sync(lambda: self.restart(kill=kill))

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.url} {state}>"


class SocketIOServer(ServerProcess):
    """A real Socket.IO server with the ``/control/`` API (see servers/README.md)."""

    kind: ServerKind
    supports_csr = False

    def __init__(self, options: ServerOptions | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.options = options or ServerOptions()

    # -- control, synchronous (fixtures) --------------------------------------------------------

    def control_sync(
        self,
        method: str,
        action: str,
        *,
        sid: str | None = None,
        body: Any = None,
        timeout: float = 5.0,
    ) -> Any:
        path = f"/control/{action}" + (f"?sid={sid}" if sid is not None else "")
        data = json.dumps(body).encode() if body is not None else b""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers={"content-type": "application/json"})
            response = conn.getresponse()
            payload = json.loads(response.read() or b"null")
        finally:
            conn.close()
        if response.status != 200:
            raise ControlError(f"{self.name} {method} {path}: {response.status} {payload}")
        return payload

    def ensure_ready(self, settle: float = 1.0) -> None:
        """Before a test on a shared server: running, resumed, unmuted, no client, no history.

        Clients left by earlier tests get ``settle`` seconds to leave; the rest are
        disconnected server-side (``io server disconnect``: a well-behaved client stays away).
        """
        if self.paused:
            self.resume()
        if not self.running:
            self.start()
        self.control_sync("POST", "unmute")
        for last_round in (False, True):
            deadline = time.monotonic() + settle
            while self._connected_sync() and time.monotonic() < deadline:
                time.sleep(0.02)
            left = self._connected_sync()
            if not left:
                break
            if last_round:
                raise RuntimeError(f"{self.name}: clients of an earlier test stay: {left}")
            for sid in left:
                with contextlib.suppress(ControlError):
                    self.control_sync("POST", "disconnect", sid=sid)
        self.control_sync("POST", "reset")

    def _connected_sync(self) -> list[str]:
        connected: list[str] = self.control_sync("GET", "state")["connected"]
        return connected

    # -- control, async (tests) -----------------------------------------------------------------

    async def control(
        self, method: str, action: str, *, sid: str | None = None, body: Any = None
    ) -> Any:
        return await anyio.to_thread.run_sync(
            lambda: self.control_sync(method, action, sid=sid, body=body),
            abandon_on_cancel=True,
        )

    async def state(self) -> ServerState:
        state: ServerState = await self.control("GET", "state")
        return state

    async def disconnect(self, sid: str) -> None:
        """Server-side ``socket.disconnect()``: the client sees ``io server disconnect``."""
        await self.control("POST", "disconnect", sid=sid)

    async def drop(self, sid: str) -> None:
        """Close the transport only: the client sees ``transport close`` and reconnects."""
        await self.control("POST", "drop", sid=sid)

    async def emit(self, event: str, *args: Any, sid: str | None = None) -> None:
        """Emit ``event`` with ``args`` (bytes allowed) to ``sid``, or to everyone."""
        await self.control("POST", "emit", sid=sid, body={"event": event, "args": to_wire(args)})

    async def mute(self) -> None:
        """Stop sending pings (the connection stays up on the server): a client ping timeout."""
        await self.control("POST", "mute")

    async def unmute(self) -> None:
        await self.control("POST", "unmute")

    async def reset(self) -> None:
        """Clear history, disconnects, refusals and the connection count."""
        await self.control("POST", "reset")

    async def wait_for(
        self, predicate: Callable[[ServerState], bool], timeout: float = 5.0
    ) -> ServerState:
        """Poll the state every 20 ms until ``predicate`` holds; return that state.

        Raises ``TimeoutError`` with the last state seen after ``timeout`` seconds.
        """
        last: ServerState | None = None
        with anyio.move_on_after(timeout):
            while True:
                last = await self.state()
                if predicate(last):
                    return last
                await anyio.sleep(0.02)
        raise TimeoutError(f"{self.name}: condition not met within {timeout} s; state: {last}")

    async def wait_connected(self, count: int = 1, timeout: float = 5.0) -> list[str]:
        """Wait until at least ``count`` sockets are connected; return their sids."""
        state = await self.wait_for(lambda s: len(s["connected"]) >= count, timeout)
        return state["connected"]


class NodeServer(SocketIOServer):
    kind: ServerKind = "node"
    name = "node socket.io"
    supports_csr = True

    def command(self, port: int) -> list[str]:
        node = shutil.which("node")
        if node is None:
            raise ServerStartError("node is not on PATH (.ci/run expects Node 18+)")
        if not (NODE_DIR / "node_modules" / "socket.io").is_dir():
            raise ServerStartError(f"socket.io is not installed: run `npm ci` in {NODE_DIR}")
        return [
            node,
            str(NODE_DIR / "server.js"),
            "--host",
            self.host,
            "--port",
            str(port),
            "--watch-stdin",
            *self.options.args(),
        ]


class PythonServer(SocketIOServer):
    kind: ServerKind = "python"
    name = "python-socketio"

    def __init__(self, options: ServerOptions | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(options, host)
        if self.options.late_hello:
            raise ValueError("python-socketio always sends 'hello' before the CONNECT reply")
        if self.options.parser is not None:
            raise ValueError("the python server has only the default parser")

    def command(self, port: int) -> list[str]:
        return [
            sys.executable,
            str(ROOT / "tests" / "servers" / "pyserver.py"),
            "--host",
            self.host,
            "--port",
            str(port),
            "--watch-stdin",
            *self.options.args(),
        ]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONWARNINGS", None)  # a library's DeprecationWarning must not kill it
        return env


def make_server(
    kind: ServerKind, options: ServerOptions | None = None, host: str = "127.0.0.1"
) -> SocketIOServer:
    """A (not yet started) handle on a server of that kind."""
    if kind == "node":
        return NodeServer(options, host)
    if kind == "python":
        return PythonServer(options, host)
    raise ValueError(f"unknown server kind {kind!r}")


class ServerFactory:
    """Starts servers with custom options; ``close()`` stops all of them (fixture teardown)."""

    def __init__(self) -> None:
        self.servers: list[SocketIOServer] = []

    def __call__(
        self,
        kind: ServerKind,
        *,
        ping_interval: int | None = None,
        ping_timeout: int | None = None,
        token: str | None = None,
        csr: bool = False,
        max_payload: int | None = None,
        no_ping: bool = False,
        late_hello: bool = False,
        transports: tuple[str, ...] | None = None,
        path: str | None = None,
        parser: str | None = None,
    ) -> SocketIOServer:
        options = ServerOptions(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            token=token,
            csr=csr,
            max_payload=max_payload,
            no_ping=no_ping,
            late_hello=late_hello,
            transports=transports,
            path=path,
            parser=parser,
        )
        server = make_server(kind, options)
        self.servers.append(server)
        server.start()
        return server

    def close(self) -> None:
        for server in self.servers:
            server.kill()
        self.servers.clear()

    @contextlib.contextmanager
    def scope(self) -> Iterator[ServerFactory]:
        try:
            yield self
        finally:
            self.close()
