"""Fixtures that start the real peers: Node socket.io, python-socketio and the garbage server.

- ``node_server``, ``python_server``, ``garbage_server``: one process (or thread) per test
  session, shared by the tests. Prefer the function-scoped views below, which reset them.
- ``way``: parametrized over the ways of connecting (``support.WAYS``: WebSocket on wsproto,
  on websockets, polling only, polling then the upgrade); ``transport_kind`` over the
  WebSocket libraries only, for WebSocket-only peers.
- ``server_kind``: parametrized over ``"node"`` and ``"python"``; override it with
  ``@pytest.mark.parametrize("server_kind", ["node"])``.
- ``sio_server``: the shared server of ``server_kind``, made ready for this test (running,
  resumed, unmuted, clients of earlier tests gone, history cleared). Tests that stop, kill,
  pause or restart a server, or need options, use ``server_factory`` instead.
- ``server_factory(kind, *, ping_interval=None, ping_timeout=None, token=None, csr=False,
  max_payload=None, no_ping=False, late_hello=False)``: a fresh, started server, killed after
  the test.
- ``mode_servers[kind, mode]``: a shared server of that kind serving only polling, only
  WebSocket, or both (``support.SERVER_MODES``), with short pings.
- ``garbage``: the shared garbage server, reset before and after the test;
  ``garbage_factory(*, ping_interval=25000, ping_timeout=20000, max_payload=1_000_000,
  oversize=2 MiB, ws_ping_interval=None)`` a fresh one, stopped after the test.

When a test here fails, its report gets what each server printed during the test (stopped and
killed ones included), or the tail of its output for a running server that printed nothing.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from servers.garbage import GarbageFactory, GarbageServer
from servers.handles import (
    SERVER_KINDS,
    NodeServer,
    PythonServer,
    ServerFactory,
    ServerKind,
    SocketIOServer,
    failure_report,
)

from .support import SERVER_MODES, TRANSPORTS, WAYS

_TEST_START = pytest.StashKey[float]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "setup":
        item.stash[_TEST_START] = call.start
    if report.failed:
        report.sections.extend(failure_report(item.stash.get(_TEST_START, call.start)))
    return report


@pytest.fixture(scope="session")
def node_server() -> Iterator[NodeServer]:
    server = NodeServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def python_server() -> Iterator[PythonServer]:
    server = PythonServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=TRANSPORTS)
def transport_kind(request: pytest.FixtureRequest) -> str:
    """The client's WebSocket library, for the tests against WebSocket-only peers."""
    kind: str = request.param
    return kind


@pytest.fixture(params=list(WAYS))
def way(request: pytest.FixtureRequest) -> str:
    """How the client connects (a key of ``support.WAYS``): the client tests run each way;
    a test narrows it with ``@pytest.mark.parametrize("way", [...])``."""
    name: str = request.param
    return name


@pytest.fixture(params=SERVER_KINDS)
def server_kind(request: pytest.FixtureRequest) -> ServerKind:
    kind: ServerKind = request.param
    return kind


@pytest.fixture
def sio_server(server_kind: ServerKind, request: pytest.FixtureRequest) -> SocketIOServer:
    server: SocketIOServer = request.getfixturevalue(f"{server_kind}_server")
    server.ensure_ready()
    return server


@pytest.fixture
def server_factory() -> Iterator[ServerFactory]:
    factory = ServerFactory()
    with factory.scope():
        yield factory


@pytest.fixture(scope="session")
def mode_servers() -> Iterator[dict[tuple[ServerKind, str], SocketIOServer]]:
    """A server per kind and mode (``support.SERVER_MODES``: ``"polling-only"``,
    ``"websocket-only"``, ``"both"``), started on first use and shared by the session's
    tests; short pings (300 ms) so heartbeats are seen. Tests must not stop or mute them."""
    factory = ServerFactory()
    started: dict[tuple[ServerKind, str], SocketIOServer] = {}

    class Lazy(dict[tuple[ServerKind, str], SocketIOServer]):
        def __missing__(self, key: tuple[ServerKind, str]) -> SocketIOServer:
            if key not in started:
                kind, mode = key
                started[key] = factory(
                    kind, transports=SERVER_MODES[mode], ping_interval=300, ping_timeout=5000
                )
            return started[key]

    with factory.scope():
        yield Lazy()


@pytest.fixture(scope="session")
def garbage_server() -> Iterator[GarbageServer]:
    with GarbageServer() as server:
        yield server


@pytest.fixture
def garbage(garbage_server: GarbageServer) -> Iterator[GarbageServer]:
    garbage_server.reset()
    yield garbage_server
    garbage_server.reset()


@pytest.fixture
def garbage_factory() -> Iterator[GarbageFactory]:
    factory = GarbageFactory()
    yield factory
    factory.close()
