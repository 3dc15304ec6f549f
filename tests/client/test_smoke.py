from __future__ import annotations

import pytest

import tether
from tether.transport import MemoryConnector

from .helpers import ScriptedServer, wait_until

pytestmark = pytest.mark.anyio


async def test_connect_emit_receive_close() -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    seen: list[object] = []
    async with tether.RealtimeClient(
        "http://example.test", transport=connector, auth={"token": "t1"}
    ) as rt:
        rt.on_connect(lambda: seen.append("connect"))
        rt.on_disconnect(lambda reason: seen.append(("disconnect", reason)))
        rt.on("news", lambda *args: seen.append(("news", args)))
        peer, auth = await server.accept(sid="S1")
        assert auth == {"token": "t1"}
        await rt.wait_connected(timeout=5)
        assert rt.is_connected() and rt.get_socket_id() == "S1"
        rt.emit("hello", 1, {"a": 2})
        assert await peer.receive() == '42["hello",1,{"a":2}]'
        await peer.send('42["news","x"]')
        await peer.send("2")
        assert await peer.receive() == "3"
        await wait_until(lambda: ("news", ("x",)) in seen)
        await rt.aclose()
        assert rt.state is tether.State.CLOSED
    assert seen == ["connect", ("news", ("x",)), ("disconnect", "io client disconnect")]
