"""Helpers for driver tests: a scripted Socket.IO server on the in-memory transport, and a
plain thread to call the client from."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import anyio

from tether.transport import MemoryConnector, MemoryPeer

OPEN_PACKET = (
    '0{"sid":"eio-%d","upgrades":[],"pingInterval":%d,"pingTimeout":%d,"maxPayload":1000000}'
)


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a plain thread (no event loop, not anyio's); its result or exception."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("ok", fn()))
        except BaseException as exc:
            outcome.append(("error", exc))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition, checking after every scheduling round; fail after ``timeout``."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.001)


class ScriptedServer:
    """Plays a Socket.IO server over MemoryConnector, one accepted peer at a time."""

    def __init__(self, connector: MemoryConnector) -> None:
        self.connector = connector
        self.peer: MemoryPeer | None = None
        self.count = 0
        #: What each CONNECT said of the client for a hub (specs/delivery.md §4.1).
        self.identities: list[Any] = []

    async def accept(
        self,
        *,
        sid: str | None = None,
        ping_interval: int = 25000,
        ping_timeout: int = 20000,
        reply: bool = True,
        pid: str | None = None,
    ) -> tuple[MemoryPeer, Any]:
        """Accept a connection, handshake, read the CONNECT, optionally reply; return auth."""
        peer = await self.connector.accept()
        self.peer = peer
        self.count += 1
        await peer.send(OPEN_PACKET % (self.count, ping_interval, ping_timeout))
        connect = await peer.receive()
        assert isinstance(connect, str) and connect.startswith("40"), connect
        auth = json.loads(connect[2:]) if len(connect) > 2 else None
        # The client's identity for a hub rides beside the user's auth: kept apart, so tests
        # compare the auth the user gave.
        if isinstance(auth, dict) and "tether" in auth:
            self.identities.append(auth.pop("tether"))
            auth = auth or None
        if reply:
            body: dict[str, Any] = {"sid": sid or f"sid-{self.count}"}
            if pid is not None:
                body["pid"] = pid
            await peer.send("40" + json.dumps(body))
        return peer, auth
