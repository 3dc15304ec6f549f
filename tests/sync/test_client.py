"""``tether.sync.RealtimeClient`` against the real peers: Node's socket.io and the hub, from
one thread and from several at once (contract 2.9). Each test runs with the client's event
loop on asyncio and on trio (the ``backend`` fixture)."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import tether
import tether.sync
from hub.conftest import HubProcess, unique
from servers.handles import NodeServer, ServerOptions

from .conftest import closed_port, thread_names, until

FAST: dict[str, Any] = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.2}


def test_connect_call_emit_and_events_against_node(node: NodeServer, backend: str) -> None:
    before = thread_names()
    with tether.sync.RealtimeClient(node.url, backend=backend) as rt:
        heard: list[tuple[str, tuple[Any, ...]]] = []
        rt.on("echo", lambda *args: heard.append((threading.current_thread().name, args)))
        rt.wait_connected(timeout=10)
        assert rt.is_connected() and rt.state.value == "connected"
        sid = rt.get_socket_id()
        assert sid in node.control_sync("GET", "state")["connected"]
        assert rt.transport_name == "websocket"
        assert rt.call("ack", 1, "two", timeout=5) == (1, "two")
        assert rt.call("ack", {"n": 3}, timeout=5) == {"n": 3}
        with rt.events("echo", timeout=10) as events:
            rt.emit("echo", "hello", b"\x00bytes")
            assert next(events) == ("echo", ("hello", b"\x00bytes"))
        until(lambda: len(heard) == 1)
        assert heard == [("tether-listeners", ("hello", b"\x00bytes"))]
        assert "tether-event-loop" in thread_names()
    assert rt.state is tether.State.CLOSED
    # Leaving ends the event loop's thread and the listener thread: nothing is left behind.
    assert thread_names() == before
    disconnects = node.control_sync("GET", "state")["disconnects"]
    assert [d["reason"] for d in disconnects if d["sid"] == sid] == ["client namespace disconnect"]


def test_calls_and_emits_from_many_threads_against_node(node: NodeServer, backend: str) -> None:
    threads, rounds = 8, 25
    echoes: dict[int, list[int]] = defaultdict(list)
    with tether.sync.RealtimeClient(node.url, backend=backend) as rt:
        rt.on("echo", lambda worker, i: echoes[worker].append(i))
        rt.wait_connected(timeout=10)

        def work(worker: int) -> list[Any]:
            answers = []
            for i in range(rounds):
                rt.emit("echo", worker, i)
                answers.append(rt.call("ack", worker, i, timeout=10))
            return answers

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(work, range(threads)))
        for worker, answers in enumerate(results):
            assert answers == [(worker, i) for i in range(rounds)]
        until(lambda: sum(map(len, echoes.values())) == threads * rounds)
    # Each thread's emits arrive in the order it made them.
    assert {worker: sorted(got) for worker, got in echoes.items()} == echoes
    assert set(echoes) == set(range(threads))


def test_channels_from_many_threads_through_the_hub(hub: HubProcess, backend: str) -> None:
    room = unique("sync")
    threads, rounds = 6, 10
    with (
        tether.sync.RealtimeClient(hub.url, backend=backend) as reader,
        tether.sync.RealtimeClient(hub.url, backend=backend) as writer,
    ):
        got: list[Any] = []
        reader.on("chat", lambda payload: got.append(payload["message"]))
        reader.join(room)
        reader.wait_connected(timeout=10)
        writer.wait_connected(timeout=10)
        until(
            lambda: [m.id for m in writer.get_members(room, timeout=5)] == [reader.get_socket_id()]
        )

        def work(worker: int) -> int:
            writer.join(room, echo=False)
            for i in range(rounds):
                writer.send(room, "chat", {"worker": worker, "i": i}, echo=False)
            return len(writer.get_members(room, timeout=10))

        with ThreadPoolExecutor(threads) as pool:
            sizes = list(pool.map(work, range(threads)))
        assert sizes == [2] * threads
        until(lambda: len(got) == threads * rounds)
    per_worker: dict[int, list[int]] = defaultdict(list)
    for message in got:
        per_worker[message["worker"]].append(message["i"])
    assert per_worker == {worker: list(range(rounds)) for worker in range(threads)}


def test_a_listener_may_block_and_call_the_client(node: NodeServer, backend: str) -> None:
    answers: list[Any] = []
    ready = threading.Event()
    with tether.sync.RealtimeClient(node.url, backend=backend) as rt:

        @rt.on("echo")
        def answer(n: int) -> None:
            answers.append(rt.call("ack", n * 2, timeout=5))  # blocks the listener thread
            if n == 3:
                ready.set()

        rt.wait_connected(timeout=10)
        for n in (1, 2, 3):
            rt.emit("echo", n)
        assert ready.wait(10)
        # Meanwhile the event loop kept the connection (the heartbeat, other calls).
        assert rt.call("ack", "still here", timeout=5) == "still here"
    assert answers == [2, 4, 6]


def test_a_listener_error_is_logged_and_changes_nothing(
    node: NodeServer, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[int] = []
    with (
        caplog.at_level(logging.ERROR, logger="tether"),
        tether.sync.RealtimeClient(node.url, backend=backend) as rt,
    ):

        @rt.on("echo")
        def flaky(n: int) -> None:
            if n == 1:
                raise RuntimeError("listener bug")
            got.append(n)

        rt.wait_connected(timeout=10)
        rt.emit("echo", 1)
        rt.emit("echo", 2)
        until(lambda: got == [2])
        assert rt.is_connected()
    assert "listener bug" in caplog.text


def test_errors_come_out_as_themselves(node: NodeServer, backend: str) -> None:
    class Mine(Exception):
        pass

    caught: BaseException | None = None
    try:
        with tether.sync.RealtimeClient(node.url, backend=backend) as rt:
            rt.wait_connected(timeout=10)
            with pytest.raises(tether.AckTimeout):
                rt.call("no-ack", timeout=0.2)
            raise Mine("mine")
    except Mine as exc:
        caught = exc
    assert type(caught) is Mine
    assert rt.state is tether.State.CLOSED


def test_a_refusal_raises_connect_error(backend: str) -> None:
    server = NodeServer(ServerOptions(token="s3cret"))
    server.start()
    try:
        with tether.sync.RealtimeClient(server.url, auth={"token": "wrong"}, backend=backend) as rt:
            with pytest.raises(tether.ConnectError) as info:
                rt.wait_connected(timeout=10)
            assert info.value.data is not None
            assert rt.state is tether.State.CLOSED
        with tether.sync.RealtimeClient(
            server.url, auth={"token": "s3cret"}, backend=backend
        ) as rt:
            rt.wait_connected(timeout=10)
    finally:
        server.kill()


def test_wait_connected_times_out(backend: str) -> None:
    # A TCP port nobody listens on: every attempt fails, and wait_connected gives up at its
    # own timeout.
    with tether.sync.RealtimeClient(
        f"http://127.0.0.1:{closed_port()}", backend=backend, **FAST
    ) as rt:
        with pytest.raises(TimeoutError):
            rt.wait_connected(timeout=0.3)
        assert rt.state in (tether.State.CONNECTING, tether.State.RECONNECTING)


def test_sync_credentials_run_off_the_event_loop(node: NodeServer, backend: str) -> None:
    def auth() -> dict[str, str]:
        return {"thread": threading.current_thread().name}

    with tether.sync.RealtimeClient(node.url, auth=auth, backend=backend) as rt:
        rt.wait_connected(timeout=10)
        sid = rt.get_socket_id()
    [connection] = [c for c in node.control_sync("GET", "state")["history"] if c["sid"] == sid]
    thread = connection["auth"]["thread"]
    assert thread not in ("tether-event-loop", "tether-listeners", "MainThread"), thread


def test_before_entering_listeners_and_buffered_messages(node: NodeServer, backend: str) -> None:
    rt = tether.sync.RealtimeClient(node.url, backend=backend)
    heard: list[str] = []
    rt.on("echo", heard.append)
    rt.emit("echo", "buffered before entering")
    assert rt.buffered == 1
    with rt:
        until(lambda: heard == ["buffered before entering"])
    # And again: a client can be entered again after it left.
    with rt:
        rt.wait_connected(timeout=10)
        rt.emit("echo", "second time")
        until(lambda: heard[-1:] == ["second time"])


def test_one_connect_and_close_log_four_lines_at_info(
    node: NodeServer, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # every logger, as logging.basicConfig(level=INFO) would
    with tether.sync.RealtimeClient(node.url, backend=backend) as rt:
        rt.wait_connected(timeout=10)
    lines = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert [name for name, _ in lines] == ["tether.transport", "tether", "tether", "tether"], lines
    assert lines[0][1].endswith("by websocket")
    assert lines[1][1].startswith(f"tether: connected to {node.url} (sid ")
    assert [message for _, message in lines[2:]] == [
        f"tether: disconnected from {node.url}: io client disconnect",
        "tether: closed: io client disconnect",
    ]
