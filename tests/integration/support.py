"""What the client integration tests share: the recorder, the client factory, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio

import tether
from servers.handles import SocketIOServer

#: The WebSocket transports every integration test runs over.
TRANSPORTS = ("wsproto", "websockets")


class Recorder:
    """Every lifecycle event of a client, in order, with the time it was seen."""

    def __init__(self, rt: tether.RealtimeClient) -> None:
        self.log: list[tuple[str, Any]] = []
        self.times: dict[str, float] = {}
        rt.on_connect(lambda: self._add("connect", rt.get_socket_id()))
        rt.on_disconnect(lambda reason: self._add("disconnect", reason))
        rt.on_error(lambda err: self._add("error", err))
        rt.on_reconnect_attempt(lambda n: self._add("attempt", n))
        rt.on_reconnect(lambda n: self._add("reconnect", n))
        rt.on_reconnect_failed(lambda: self._add("reconnect_failed", None))

    def _add(self, kind: str, value: Any) -> None:
        self.log.append((kind, value))
        self.times[kind] = time.monotonic()

    def of(self, kind: str) -> list[Any]:
        return [value for k, value in self.log if k == kind]

    async def wait(self, predicate: Callable[[Recorder], bool], timeout: float = 10.0) -> None:
        with anyio.fail_after(timeout):
            while not predicate(self):
                await anyio.sleep(0.005)


def client(
    server: SocketIOServer | str, transport_kind: str, **options: Any
) -> tether.RealtimeClient:
    url = server if isinstance(server, str) else server.url
    return tether.RealtimeClient(url, transport=transport_kind, **options)


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)
