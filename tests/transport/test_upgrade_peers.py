"""Our opening handshake (``_upgrade``) against the WebSocket servers Socket.IO runs on.

Each answers the upgrade in its own words (header order, case, ``Date``/``Server`` fields,
one segment or two with the first frames): aiohttp (python-socketio's ``aiohttp`` mode),
uvicorn with each of its WebSocket implementations (python-socketio's ASGI mode; our hub
uses ``wsproto``). The websockets server and Node's ``ws`` are met by the other transport
and integration tests. Every server echoes; each connector must open, echo text and binary,
and close cleanly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
import uvicorn
from aiohttp import WSMsgType, web

from tether.transport import FastWebSocketConnector, WebSocketConnector

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0
PATH = "/socket.io/?EIO=4&transport=websocket"


class AiohttpEcho:
    """An aiohttp WebSocket echo server on its own event loop, in a thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._started.wait(TIMEOUT)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/socket.io/", self._echo)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    @staticmethod
    async def _echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type is WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT)


async def _asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The smallest ASGI WebSocket echo app."""
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        if event.get("text") is not None:
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            await send({"type": "websocket.send", "bytes": event["bytes"]})


class UvicornEcho:
    """uvicorn with one of its WebSocket implementations, in a thread."""

    def __init__(self, ws: str) -> None:
        config = uvicorn.Config(
            _asgi_echo, host="127.0.0.1", port=0, ws=ws, lifespan="off", log_level="error"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        for _ in range(int(TIMEOUT / 0.01)):
            if self._server.started:
                break
            threading.Event().wait(0.01)
        assert self._server.started
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(TIMEOUT)


SERVERS: dict[str, Callable[[], AiohttpEcho | UvicornEcho]] = {
    "aiohttp": AiohttpEcho,
    "uvicorn-wsproto": lambda: UvicornEcho("wsproto"),
    "uvicorn-websockets-sansio": lambda: UvicornEcho("websockets-sansio"),
}


@pytest.fixture(params=sorted(SERVERS), scope="module")
def echo_port(request: pytest.FixtureRequest) -> Iterator[int]:
    server = SERVERS[request.param]()
    yield server.port
    server.stop()


@pytest.mark.parametrize("connector", [WebSocketConnector, FastWebSocketConnector])
async def test_the_handshake_and_an_echo(
    echo_port: int, connector: type[WebSocketConnector | FastWebSocketConnector]
) -> None:
    with anyio.fail_after(TIMEOUT):
        transport = await connector().connect(
            f"ws://127.0.0.1:{echo_port}{PATH}", headers=[("X-Token", "t")]
        )
        await transport.send_many(["é✓ text", b"\x00binary"])
        assert await transport.receive() == "é✓ text"
        assert await transport.receive() == b"\x00binary"
        await transport.aclose()
        assert transport.closed
