"""Plain TCP peers for the proxy's byte-level tests, in the test's own event loop.

:class:`TcpPeer` is a loopback server that records what each connection sent and how it
ended (``"eof"``, ``"reset"``, or ``"closed"`` by this side), and echoes it back, or, with
``upgrade=True``, answers the first HTTP head with a ``101`` (no real WebSocket handshake:
the tests' raw clients do not check it) and then records and echoes the bytes after it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import anyio
import anyio.abc

__all__ = [
    "SWITCHING",
    "PeerConnection",
    "TcpPeer",
    "connect",
    "receive_exactly",
    "reset_close",
    "until",
]

SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
UPGRADE_REQUEST = (
    b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@dataclass
class PeerConnection:
    stream: anyio.abc.SocketStream
    received: bytearray = field(default_factory=bytearray)
    ending: str | None = None
    ended: anyio.Event = field(default_factory=anyio.Event)


class TcpPeer:
    def __init__(self, *, echo: bool = True, upgrade: bool = False) -> None:
        self.echo = echo
        self.upgrade = upgrade
        self.host = "127.0.0.1"
        self.port = 0
        self.connections: list[PeerConnection] = []
        self._stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> TcpPeer:
        async with contextlib.AsyncExitStack() as stack:
            listener = await anyio.create_tcp_listener(local_host=self.host, local_port=0)
            await stack.enter_async_context(listener)
            self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
            group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(group.cancel_scope.cancel)
            group.start_soon(listener.serve, self._serve)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None
        return await stack.__aexit__(exc_type, exc, tb)

    async def wait_connection(self, count: int = 1) -> PeerConnection:
        """The ``count``-th connection, once it has been accepted."""
        await until(lambda: len(self.connections) >= count)
        return self.connections[count - 1]

    async def _serve(self, stream: anyio.abc.SocketStream) -> None:
        connection = PeerConnection(stream)
        self.connections.append(connection)
        head_done = not self.upgrade
        async with stream:
            try:
                while True:
                    data = await stream.receive()
                    connection.received += data
                    if not head_done:
                        end = connection.received.find(b"\r\n\r\n")
                        if end < 0:
                            continue
                        head_done = True
                        await stream.send(SWITCHING)
                        data = bytes(connection.received[end + 4 :])
                    if self.echo and data:
                        await stream.send(data)
            except anyio.EndOfStream:
                connection.ending = "eof"
            except (anyio.BrokenResourceError, OSError):
                connection.ending = "reset"
            finally:
                if connection.ending is None:
                    connection.ending = "closed"
                connection.ended.set()


async def connect(target: object) -> anyio.abc.SocketStream:
    port = getattr(target, "port", None)
    assert isinstance(port, int)
    return await anyio.connect_tcp("127.0.0.1", port)


async def receive_exactly(stream: anyio.abc.SocketStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        data += await stream.receive(size - len(data))
    return bytes(data)


async def reset_close(stream: anyio.abc.SocketStream) -> None:
    """Close with RST (SO_LINGER 0), as a crashed peer would."""
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)
