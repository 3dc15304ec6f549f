"""What the client integration tests share: the ways of connecting, the recorder, the client
factory, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

import tether
from servers.handles import SocketIOServer

#: The WebSocket libraries (``transport=``) the WebSocket-only tests run over.
TRANSPORTS = ("wsproto", "websockets")


@dataclass(frozen=True)
class Way:
    """One way for the client to connect: the WebSocket library and the ``transports``."""

    transport: str
    transports: tuple[str, ...]

    @property
    def final(self) -> str:
        """The transport a session ends up on against a server that offers both."""
        return "websocket" if "websocket" in self.transports else "polling"


#: The ways of connecting the client tests run over (specs/transports.md §Choosing):
#: WebSocket only on each library, polling only, and polling then the upgrade.
WAYS: dict[str, Way] = {
    "wsproto": Way("wsproto", ("websocket",)),
    "websockets": Way("websockets", ("websocket",)),
    "polling": Way("wsproto", ("polling",)),
    "upgrade": Way("wsproto", ("polling", "websocket")),
}
#: What a server of each mode serves (its ``--transports``).
SERVER_MODES: dict[str, tuple[str, ...]] = {
    "polling-only": ("polling",),
    "websocket-only": ("websocket",),
    "both": ("polling", "websocket"),
}


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


def client(server: SocketIOServer | str, way: str, **options: Any) -> tether.RealtimeClient:
    """A client of ``server`` connecting the way named (a key of :data:`WAYS`)."""
    url = server if isinstance(server, str) else server.url
    chosen = WAYS[way]
    options.setdefault("transports", chosen.transports)
    return tether.RealtimeClient(url, transport=chosen.transport, **options)


def drop_reason(server: SocketIOServer, way: str) -> str:
    """The disconnect reason the client sees when ``server.drop()`` cuts its transport.

    A dropped WebSocket is closed (``transport close``); Node ends a polling session with a
    CLOSE packet in the poll answer (``transport close``), python-engineio forgets the
    session and answers the next poll 400 (``transport error``, Engine.IO v4 §Transports:
    an unknown sid).
    """
    if way == "polling" and server.kind == "python":
        return "transport error"
    return "transport close"


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)


def kill_reason(way: str) -> str:
    """The disconnect reason when the server process dies: a WebSocket sees its TCP
    connection end (``transport close``); a poll sees its answer cut off (``transport
    error``: the HTTP exchange is incomplete)."""
    return "transport error" if way == "polling" else "transport close"


async def connected(rt: tether.RealtimeClient, way: str, timeout: float = 10.0) -> None:
    """Wait until ``rt`` is connected and on the transport its way ends on (after the
    upgrade, for ``"upgrade"``)."""
    await rt.wait_connected(timeout)
    final = WAYS[way].final
    await until(lambda: rt.transport_name == final, timeout)


async def dropped(server: SocketIOServer, rt: tether.RealtimeClient, events: Recorder) -> str:
    """Cut ``rt``'s transport at ``server`` and wait until the client noticed; its old sid."""
    sid = rt.get_socket_id()
    assert sid is not None
    await server.drop(sid)
    await events.wait(lambda e: bool(e.of("disconnect")))
    return sid
