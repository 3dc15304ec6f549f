"""Fixtures for the blocking client: the real peers, and a thread-safe wait.

- ``node``: Node's socket.io 4.8 (servers/node), one process for these tests, made ready for
  each test (clients of earlier tests gone, history cleared);
- ``hub``: a ``tether serve`` subprocess (as tests/hub starts one), shared; tests use unique
  channel names;
- ``backend``: the blocking client's own event loop, ``"asyncio"`` and ``"trio"``: every
  test that takes it runs on both.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hub.conftest import HubProcess
from servers.handles import NodeServer

__all__ = ["closed_port", "thread_names", "until"]


@pytest.fixture(scope="session")
def node_process() -> Iterator[NodeServer]:
    server = NodeServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def node(node_process: NodeServer) -> NodeServer:
    node_process.ensure_ready()
    return node_process


@pytest.fixture(scope="session")
def hub() -> Iterator[HubProcess]:
    with tempfile.TemporaryDirectory(prefix="tether-sync-hub-") as tmp:
        process = HubProcess.start("--log-level", "debug", tmp=Path(tmp))
        yield process
        assert process.stop() == 0, process.log()


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait in this thread until ``predicate()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.005)


def closed_port() -> int:
    """A local TCP port nobody listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def thread_names() -> set[str]:
    return {thread.name for thread in threading.enumerate()}
