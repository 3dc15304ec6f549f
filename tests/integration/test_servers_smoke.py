"""The integration peers work: every server, event and control endpoint, on asyncio and trio.

These tests use other clients than tether on purpose (tether is what the peers will test):
python-socketio's ``AsyncClient`` on its own asyncio loop in a thread (``SioProbe``), and a bare
WebSocket client (``RawClient``, websockets' sync client in a worker thread) where the exact
bytes matter. The handles' async helpers are awaited from the test's own event loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import pytest
import socketio
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from servers.garbage import GarbageConnection, GarbageFactory, GarbageServer
from servers.handles import ServerFactory, ServerKind, SocketIOServer

pytestmark = pytest.mark.anyio

T = TypeVar("T")

START_BUDGET = 5.0  # seconds to start a server; it takes well under one

# -- clients -------------------------------------------------------------------------------------


class RawClient:
    """One Engine.IO WebSocket session, spoken by hand. Blocking: call it from a worker thread."""

    def __init__(
        self, url: str, query: str = "", max_size: int | None = 2**21, timeout: float = 5.0
    ) -> None:
        ws_url = url.replace("http://", "ws://", 1)
        # __enter__: websockets >= 17.1 wants connect() used as a context manager; this
        # connection outlives one block, so enter it by hand (close() ends it).
        self.ws: ClientConnection = ws_connect(
            f"{ws_url}/socket.io/?EIO=4&transport=websocket{query}",
            compression=None,
            open_timeout=5,
            close_timeout=1,
            ping_interval=None,
            max_size=max_size,
        ).__enter__()
        try:
            first = self.recv(timeout)
        except BaseException:
            self.ws.close()
            raise
        assert isinstance(first, str)
        assert first.startswith("0")
        self.open: dict[str, Any] = json.loads(first[1:])

    def recv(self, timeout: float = 5.0) -> str | bytes:
        return self.ws.recv(timeout)

    def recv_non_ping(self, timeout: float = 5.0) -> str | bytes:
        """The next frame that is not a ping (pings are answered)."""
        while True:
            frame = self.recv(timeout)
            if frame != "2":
                return frame
            self.ws.send("3")

    def send(self, frame: str | bytes) -> None:
        self.ws.send(frame)

    def connect(self, auth: dict[str, Any] | None = None) -> list[str | bytes]:
        """Send the namespace CONNECT; return the frames up to its reply (40 or 44)."""
        self.send("40" + (json.dumps(auth, separators=(",", ":")) if auth is not None else ""))
        frames: list[str | bytes] = []
        while True:
            frame = self.recv_non_ping()
            frames.append(frame)
            if isinstance(frame, str) and frame[:2] in ("40", "44"):
                return frames

    def close(self) -> None:
        self.ws.close()


async def raw_client(
    url: str, query: str = "", max_size: int | None = 2**21, timeout: float = 5.0
) -> RawClient:
    return await anyio.to_thread.run_sync(lambda: RawClient(url, query, max_size, timeout))


async def in_thread(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)


class SioProbe:
    """python-socketio's AsyncClient on a private asyncio loop, usable from asyncio or trio.

    ``events`` records ``(name, *args)`` in arrival order: every server event, plus
    ``("connect",)``, ``("disconnect", reason)`` and ``("connect_error", data)``.
    """

    def __init__(self, **options: Any) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = socketio.AsyncClient(handle_sigint=False, **options)
        self.client.on("connect", lambda: self.events.append(("connect",)))
        self.client.on("disconnect", lambda reason: self.events.append(("disconnect", reason)))
        self.client.on("connect_error", lambda data: self.events.append(("connect_error", data)))
        self.client.on("*", lambda event, *args: self.events.append((event, *args)))

    async def run(self, coro: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10) -> T:
        future = asyncio.run_coroutine_threadsafe(coro(), self.loop)
        return await anyio.to_thread.run_sync(lambda: future.result(timeout))

    async def connect(self, url: str, **kwargs: Any) -> None:
        await self.run(lambda: self.client.connect(url, transports=["websocket"], **kwargs))

    async def emit(self, event: str, *args: Any) -> None:
        await self.run(lambda: self.client.emit(event, args))

    async def call(self, event: str, *args: Any, timeout: float = 5) -> Any:
        return await self.run(lambda: self.client.call(event, args, timeout=timeout))

    @property
    def sid(self) -> str | None:
        sid: str | None = self.client.get_sid()
        return sid

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [e[1:] for e in list(self.events) if e[0] == name]

    async def wait_for(self, predicate: Callable[[SioProbe], bool], timeout: float = 5.0) -> None:
        with anyio.move_on_after(timeout):
            while not predicate(self):
                await anyio.sleep(0.02)
            return
        raise TimeoutError(f"probe: condition not met within {timeout} s; events: {self.events}")

    def close(self) -> None:
        async def shutdown() -> None:
            await self.client.shutdown()

        with_timeout = asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        try:
            with_timeout.result(5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@pytest.fixture
def probes() -> Iterator[Callable[..., SioProbe]]:
    made: list[SioProbe] = []

    def make(**options: Any) -> SioProbe:
        probe = SioProbe(**options)
        made.append(probe)
        return probe

    yield make
    for probe in made:
        probe.close()


@pytest.fixture
def probe(probes: Callable[..., SioProbe]) -> SioProbe:
    return probes(reconnection_delay=0.1, reconnection_delay_max=0.2, randomization_factor=0)


# -- the Socket.IO servers -----------------------------------------------------------------------


async def test_state_of_a_fresh_server(sio_server: SocketIOServer) -> None:
    assert sio_server.port != 0
    assert sio_server.url == f"http://127.0.0.1:{sio_server.port}"
    assert sio_server.startup_seconds < START_BUDGET
    state = await sio_server.state()
    node_only = {"ticks": 0, "pongs": {}} if sio_server.kind == "node" else {}
    assert state == {
        "connected": [],
        "history": [],
        "connections": 0,
        "disconnects": [],
        "refused": [],
        "records": [],
        "received": [],
        "muted": False,
        **node_only,
    }


async def test_hello_leaves_before_the_connect_reply(sio_server: SocketIOServer) -> None:
    raw = await raw_client(sio_server.url)
    try:
        assert raw.open["upgrades"] == []
        assert raw.open["pingTimeout"] == 20000
        assert raw.open["maxPayload"] == 1_000_000
        frames = await in_thread(lambda: raw.connect({"token": "t1"}))
        assert len(frames) == 2
        reply = frames[1]
        assert isinstance(reply, str)
        sid = json.loads(reply[2:])["sid"]
        assert frames == [f'42["hello",{{"sid":"{sid}"}}]', f'40{{"sid":"{sid}"}}']
        state = await sio_server.wait_connected(1)
        assert state == [sid]
        history = (await sio_server.state())["history"]
        assert [(h["sid"], h["auth"], h["recovered"]) for h in history] == [
            (sid, {"token": "t1"}, False)
        ]
    finally:
        await in_thread(raw.close)
    await sio_server.wait_for(lambda s: s["connected"] == [] and len(s["disconnects"]) == 1)


async def test_node_can_send_hello_after_the_connect_reply(server_factory: ServerFactory) -> None:
    server = server_factory("node", late_hello=True)
    raw = await raw_client(server.url)
    try:
        frames = await in_thread(raw.connect)
        assert len(frames) == 1
        sid = json.loads(str(frames[0])[2:])["sid"]
        assert await in_thread(raw.recv) == f'42["hello",{{"sid":"{sid}"}}]'
    finally:
        await in_thread(raw.close)


async def test_token_refusal(server_factory: ServerFactory, server_kind: ServerKind) -> None:
    server = server_factory(server_kind, token="s3cret")
    raw = await raw_client(server.url)
    try:
        assert await in_thread(lambda: raw.connect({"token": "stale"})) == [
            '44{"message":"unauthorized","data":{"reason":"bad token","retry":false}}'
        ]
    finally:
        await in_thread(raw.close)
    raw = await raw_client(server.url)
    try:
        frames = await in_thread(lambda: raw.connect({"token": "s3cret", "n": 2}))
        assert [str(f)[:2] for f in frames] == ["42", "40"]
    finally:
        await in_thread(raw.close)
    state = await server.state()
    assert [r["auth"] for r in state["refused"]] == [{"token": "stale"}]
    assert [h["auth"] for h in state["history"]] == [{"token": "s3cret", "n": 2}]
    assert state["connections"] == 1


async def test_token_refusal_seen_by_python_socketio(
    server_factory: ServerFactory, server_kind: ServerKind, probe: SioProbe
) -> None:
    server = server_factory(server_kind, token="s3cret")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await probe.connect(server.url, auth={"token": "nope"}, retry=False)
    assert probe.named("connect_error") == [
        ({"message": "unauthorized", "data": {"reason": "bad token", "retry": False}},)
    ]


async def test_events(sio_server: SocketIOServer, probes: Callable[..., SioProbe]) -> None:
    alice, bob = probes(), probes()
    await alice.connect(sio_server.url, auth={"user": "alice"})
    await bob.connect(sio_server.url)
    assert alice.sid is not None
    assert alice.named("hello") == [({"sid": alice.sid},)]

    await alice.emit("echo", 1, "two", b"\x00\x03", {"four": [4]})
    await alice.wait_for(lambda p: bool(p.named("echo")))
    assert alice.named("echo") == [(1, "two", b"\x00\x03", {"four": [4]})]

    assert await alice.call("ack", 1, {"a": b"\x01"}) == (1, {"a": b"\x01"})
    assert await alice.call("ack", "only") == "only"
    assert await alice.call("slow-ack", 0.1) == "done"
    with pytest.raises(socketio.exceptions.TimeoutError):
        await alice.call("no-ack", 1, timeout=0.3)

    await alice.emit("emit-many", 50, 10)
    await alice.wait_for(lambda p: len(p.named("item")) == 50)
    assert alice.named("item") == [(i, "x" * 10) for i in range(50)]

    await bob.emit("broadcast", "hi", 2)
    for p in (alice, bob):
        await p.wait_for(lambda p: bool(p.named("broadcast")))
        assert p.named("broadcast") == [("hi", 2)]
    assert bob.named("echo") == []

    # Every event from a client, in arrival order, without the ack (bytes as $b64).
    received = (await sio_server.state())["received"]
    assert [(r["sid"], r["event"], r["args"]) for r in received] == [
        (alice.sid, "echo", [1, "two", {"$b64": "AAM="}, {"four": [4]}]),
        (alice.sid, "ack", [1, {"a": {"$b64": "AQ=="}}]),
        (alice.sid, "ack", ["only"]),
        (alice.sid, "slow-ack", [0.1]),
        (alice.sid, "no-ack", [1]),
        (alice.sid, "emit-many", [50, 10]),
        (bob.sid, "broadcast", ["hi", 2]),
    ]


async def test_control_emit(sio_server: SocketIOServer, probes: Callable[..., SioProbe]) -> None:
    alice, bob = probes(), probes()
    await alice.connect(sio_server.url)
    await bob.connect(sio_server.url)
    assert alice.sid is not None

    await sio_server.emit("news", 1, b"\xff\x00", {"k": [True, None]}, sid=alice.sid)
    await alice.wait_for(lambda p: bool(p.named("news")))
    assert alice.named("news") == [(1, b"\xff\x00", {"k": [True, None]})]

    await sio_server.emit("all")
    await sio_server.emit("list", [1, 2])
    for p in (alice, bob):
        await p.wait_for(lambda p: bool(p.named("list")))
        assert p.named("all") == [()]
        assert p.named("list") == [([1, 2],)]
    assert bob.named("news") == []


async def test_control_disconnect(sio_server: SocketIOServer, probe: SioProbe) -> None:
    await probe.connect(sio_server.url)
    sid = probe.sid
    assert sid is not None
    await sio_server.disconnect(sid)
    await probe.wait_for(lambda p: bool(p.named("disconnect")))
    assert probe.named("disconnect") == [("server disconnect",)]
    state = await sio_server.wait_for(lambda s: not s["connected"])
    assert [d["sid"] for d in state["disconnects"]] == [sid]
    assert state["connections"] == 1  # no reconnect after a server-side disconnect


async def test_control_drop_is_a_transport_close(
    sio_server: SocketIOServer, probe: SioProbe
) -> None:
    await probe.connect(sio_server.url)
    sid = probe.sid
    await sio_server.drop(str(sid))
    await probe.wait_for(lambda p: len(p.named("connect")) == 2)
    # python-socketio's client has no "transport close": any transport loss is "transport error".
    assert probe.named("disconnect") == [("transport error",)]
    state = await sio_server.wait_for(lambda s: len(s["connected"]) == 1)
    assert state["connections"] == 2
    assert state["connected"] != [sid]
    assert [d["sid"] for d in state["disconnects"]] == [sid]


async def test_control_errors(sio_server: SocketIOServer) -> None:
    for action in ("disconnect", "drop"):
        with pytest.raises(RuntimeError, match="404"):
            await sio_server.control("POST", action, sid="nobody")
    with pytest.raises(RuntimeError, match="400"):
        await sio_server.control("POST", "emit", body={"args": []})
    with pytest.raises(RuntimeError, match="404"):
        await sio_server.control("POST", "frobnicate")


async def test_mute_stops_pings_and_keeps_the_connection(
    server_factory: ServerFactory, server_kind: ServerKind
) -> None:
    server = server_factory(server_kind, ping_interval=200, ping_timeout=200)
    raw = await raw_client(server.url)
    try:
        await in_thread(raw.connect)
        for _ in range(2):
            assert await in_thread(lambda: raw.recv(1.0)) == "2"
            await in_thread(lambda: raw.send("3"))
        await server.mute()
        # Nothing for well over pingInterval + pingTimeout: no ping, and no close either.
        with pytest.raises(TimeoutError):
            await in_thread(lambda: raw.recv(1.0))
        assert len((await server.state())["connected"]) == 1
        await server.unmute()
        assert await in_thread(lambda: raw.recv(1.0)) == "2"
        assert (await server.state())["muted"] is False
    finally:
        await in_thread(raw.close)


async def test_no_ping_starts_muted(server_factory: ServerFactory, server_kind: ServerKind) -> None:
    server = server_factory(server_kind, ping_interval=100, ping_timeout=100, no_ping=True)
    raw = await raw_client(server.url)
    try:
        await in_thread(raw.connect)
        with pytest.raises(TimeoutError):
            await in_thread(lambda: raw.recv(0.6))
        await server.unmute()
        assert await in_thread(lambda: raw.recv(1.0)) == "2"
    finally:
        await in_thread(raw.close)


async def test_pause_and_resume(server_factory: ServerFactory, server_kind: ServerKind) -> None:
    server = server_factory(server_kind)
    raw = await raw_client(server.url)
    try:
        await in_thread(raw.connect)
        server.pause()
        with anyio.move_on_after(0.3) as scope:
            await server.state()
        assert scope.cancelled_caught
        await in_thread(lambda: raw.send('42["echo","still here"]'))
        with pytest.raises(TimeoutError):
            await in_thread(lambda: raw.recv(0.3))
        server.resume()
        assert await in_thread(raw.recv_non_ping) == '42["echo","still here"]'
        assert len((await server.state())["connected"]) == 1
    finally:
        await in_thread(raw.close)


@pytest.mark.parametrize("kill", [False, True], ids=["stop", "kill"])
async def test_restart_on_the_same_port(
    server_factory: ServerFactory, server_kind: ServerKind, probe: SioProbe, kill: bool
) -> None:
    server = server_factory(server_kind)
    port, pid = server.port, server.pid
    await probe.connect(server.url)
    await server.arestart(kill=kill)
    assert (server.port, server.running) == (port, True)
    assert server.pid != pid
    await probe.wait_for(lambda p: len(p.named("connect")) == 2, timeout=10)
    state = await server.wait_for(lambda s: len(s["connected"]) == 1)
    assert state["connections"] == 1  # the new process saw the reconnect only


async def test_restart_waits_for_its_port(
    server_factory: ServerFactory, server_kind: ServerKind
) -> None:
    server = server_factory(server_kind)
    port = server.port
    await server.astop()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    started = anyio.Event()

    async def start() -> None:
        await server.astart()
        started.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(start)
            with anyio.fail_after(10):  # until an attempt failed on the taken port
                while "exited with 3" not in server.output():
                    await anyio.sleep(0.02)
            assert not started.is_set()
            squatter.close()
    finally:
        squatter.close()
    assert (server.port, server.running) == (port, True)
    assert (await server.state())["connections"] == 0


async def test_node_connection_state_recovery(server_factory: ServerFactory) -> None:
    server = server_factory("node", csr=True, token="t")
    raw = await raw_client(server.url)
    try:
        frames = await in_thread(lambda: raw.connect({"token": "t"}))
        first = json.loads(str(frames[-1])[2:])
        assert set(first) == {"sid", "pid"}
        await server.emit("news", 1, sid=first["sid"])
        news = json.loads(str(await in_thread(raw.recv_non_ping))[2:])
        assert news[:2] == ["news", 1]
        offset = news[2]
        assert isinstance(offset, str)
        await server.drop(first["sid"])
        await server.wait_for(lambda s: not s["connected"])
        await server.emit("missed", 2)
    finally:
        await in_thread(raw.close)

    raw = await raw_client(server.url)
    try:
        # A stale token: a recovered socket skips the middlewares (skipMiddlewares).
        auth = {"token": "stale", "pid": first["pid"], "offset": offset}
        frames = await in_thread(lambda: raw.connect(auth))
        missed = json.loads(str(frames[0])[2:])
        assert missed[:2] == ["missed", 2]
        assert json.loads(str(frames[-1])[2:]) == first
        assert len(frames) == 2  # the recovered socket gets no "hello"
    finally:
        await in_thread(raw.close)
    history = (await server.state())["history"]
    assert [(h["sid"], h["recovered"]) for h in history] == [
        (first["sid"], False),
        (first["sid"], True),
    ]
    assert history[1]["auth"] == auth


async def test_python_server_accepts_csr_and_never_recovers(
    server_factory: ServerFactory,
) -> None:
    server = server_factory("python", csr=True)
    raw = await raw_client(server.url)
    try:
        frames = await in_thread(raw.connect)
        assert set(json.loads(str(frames[-1])[2:])) == {"sid"}
    finally:
        await in_thread(raw.close)


async def test_max_payload(server_factory: ServerFactory, server_kind: ServerKind) -> None:
    server = server_factory(server_kind, max_payload=1000)
    raw = await raw_client(server.url)
    try:
        assert raw.open["maxPayload"] == 1000
        await in_thread(raw.connect)
        await in_thread(lambda: raw.send('42["echo","' + "x" * 2000 + '"]'))
        with pytest.raises(ConnectionClosed) as caught:
            await in_thread(raw.recv_non_ping)
        assert caught.value.rcvd is not None
        # ws (Node) refuses the frame itself; python-engineio just closes the socket.
        assert caught.value.rcvd.code == {"node": 1009, "python": 1000}[server_kind]
    finally:
        await in_thread(raw.close)


# -- the garbage server --------------------------------------------------------------------------


async def garbage_session(server: GarbageServer, **kwargs: Any) -> tuple[RawClient, list[Any]]:
    raw = await raw_client(server.url, **kwargs)
    frames = await in_thread(raw.connect)
    return raw, frames


@pytest.mark.parametrize(
    ("mode", "after"),
    [
        ("bad-eio", "9foo"),
        ("bad-sio-type", "4zzz"),
        ("bad-sio-payload", "42{}"),
        ("bad-sio-ackid", '42abc["x"]'),
        ("unexpected-binary", b"\x01\x02\x03"),
        ("disconnect-with-payload", '41{"message":"refused"}'),
        ("close-packet", "1"),
    ],
)
async def test_garbage_after_connect(garbage: GarbageServer, mode: str, after: str | bytes) -> None:
    garbage.push_modes(mode)
    raw, frames = await garbage_session(garbage)
    try:
        conn = garbage.connection(0)
        assert frames == [f'40{{"sid":"s{conn.sid}"}}']
        assert await in_thread(raw.recv) == after
        assert conn.mode == mode
        assert conn.received == ["40"]
    finally:
        await in_thread(raw.close)


@pytest.mark.parametrize(
    ("mode", "code"), [("invalid-utf8", 1007), ("bad-frame", 1002), ("oversized", 1009)]
)
async def test_garbage_breaks_the_websocket(garbage: GarbageServer, mode: str, code: int) -> None:
    garbage.push_modes(mode)
    raw, frames = await garbage_session(garbage, max_size=2**20)
    try:
        assert len(frames) == 1
        with pytest.raises(ConnectionClosedError) as caught:
            await in_thread(raw.recv_non_ping)
        assert caught.value.sent is not None
        assert caught.value.sent.code == code
        await garbage.wait_for(lambda g: g.connection(0).is_closed)
        assert garbage.connection(0).close_code == code
    finally:
        await in_thread(raw.close)


async def test_garbage_oversized_is_really_big(garbage: GarbageServer) -> None:
    garbage.push_modes("oversized")
    raw, _ = await garbage_session(garbage, max_size=None)
    try:
        big = await in_thread(raw.recv_non_ping)
        assert isinstance(big, str)
        assert len(big) == 2 * 1024 * 1024
        assert big.startswith('42["big","xxx')
    finally:
        await in_thread(raw.close)


async def test_garbage_connect_replies(garbage: GarbageServer) -> None:
    garbage.push_modes("connect-error-string", "connect-error", "early-events")
    for expected in (
        ['44"Unable to connect"'],
        ['44{"message":"refused","data":{"reason":"garbage","retry":false}}'],
        ['42["early",1]', '42["early",2]', '40{"sid":"sgarbage'],
    ):
        raw, frames = await garbage_session(garbage)
        await in_thread(raw.close)
        assert [str(f)[: len(e)] for f, e in zip(frames, expected, strict=True)] == expected
    assert garbage.connection_count == 3


async def test_garbage_handshake_modes(garbage: GarbageServer) -> None:
    garbage.push_modes("reject", "silent", "no-connect-reply")
    with pytest.raises(InvalidStatus, match="400"):
        await raw_client(garbage.url)
    with pytest.raises(TimeoutError):  # no open packet
        await raw_client(garbage.url, "&x=1", timeout=0.3)
    raw = await raw_client(garbage.url)
    try:
        await in_thread(lambda: raw.send("40"))
        with pytest.raises(TimeoutError):
            await in_thread(lambda: raw.recv_non_ping(0.3))
    finally:
        await in_thread(raw.close)
    assert garbage.connection(1).query == {"EIO": ["4"], "transport": ["websocket"], "x": ["1"]}
    await garbage.wait_for(lambda g: all(c.is_closed for c in g.connections))


async def test_garbage_ok_mode_and_pings(garbage_factory: GarbageFactory) -> None:
    server = garbage_factory(ping_interval=100, ping_timeout=100)
    raw, _ = await garbage_session(server)
    try:
        assert raw.open["pingInterval"] == 100
        assert raw.open["pingTimeout"] == 100
        assert await in_thread(lambda: raw.recv(1)) == "2"
        await in_thread(lambda: raw.send("3"))
        await in_thread(lambda: raw.send('42["hey",1]'))
        assert await in_thread(raw.recv_non_ping) == '42["hey",1]'
        await in_thread(lambda: raw.send('427["ack-me",{"a":1}]'))
        assert await in_thread(raw.recv_non_ping) == '437[{"a":1}]'
    finally:
        await in_thread(raw.close)
    conn = server.connection(0)
    await server.wait_for(lambda g: conn.is_closed)
    assert conn.texts()[:3] == ["40", "3", '42["hey",1]']
    assert conn.close_code == 1000
    assert conn.headers["upgrade"].lower() == "websocket"


async def test_garbage_no_ping_and_query_mode(garbage_factory: GarbageFactory) -> None:
    server = garbage_factory(ping_interval=100, ping_timeout=100)
    raw, _ = await garbage_session(server, query="&mode=no-ping")
    try:
        with pytest.raises(TimeoutError):
            await in_thread(lambda: raw.recv(0.5))
    finally:
        await in_thread(raw.close)
    assert server.connection(0).mode == "no-ping"


async def test_garbage_drop_and_script(garbage: GarbageServer) -> None:
    def script(conn: GarbageConnection) -> None:
        assert conn.recv(5) == "40"
        conn.send('40{"sid":"scripted"}')
        conn.send_raw(b"\x81\x0442[]")  # a hand-framed text frame

    garbage.push_modes("drop", script)
    raw, _ = await garbage_session(garbage)
    with pytest.raises(ConnectionClosedError):
        await in_thread(raw.recv_non_ping)
    await in_thread(raw.close)

    raw = await raw_client(garbage.url)
    try:
        await in_thread(lambda: raw.send("40"))
        assert await in_thread(raw.recv) == '40{"sid":"scripted"}'
        assert await in_thread(raw.recv) == "42[]"
    finally:
        await in_thread(raw.close)
    with pytest.raises(ValueError, match="unknown garbage mode"):
        garbage.push_modes("nonsense")
