"""Node's reference client (socket.io-client 4.8) against the hub, beside a tether client.

The hub adds a stream position (``pos``) to every channel message, member event and
broadcast, and answers the joins of tether clients with positions (specs/delivery.md §4).
A plain Socket.IO client, one whose CONNECT auth has no ``tether`` key (or one that is not
well-formed), must keep working: its join ack is empty, it gets no ``hub:resume``, and the
added key is one more key in payloads it already understood. The Node client is
servers/node/hub_client.js, run as a subprocess (commands on its stdin, one JSON line per
thing it receives on its stdout) with its default transports (polling, then the upgrade).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import tether
from servers.handles import NODE_DIR

from .conftest import HubProcess, unique

pytestmark = pytest.mark.anyio

SCRIPT = NODE_DIR / "hub_client.js"
TIMEOUT = 10.0

Line = dict[str, Any]


class NodeClient:
    """servers/node/hub_client.js: ``lines`` is everything it printed so far, in order."""

    def __init__(self, proc: anyio.abc.Process, log: Path) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc
        self.stdin = proc.stdin
        self.stdout = BufferedByteReceiveStream(proc.stdout)
        self.log = log
        self.lines: list[Line] = []
        self.sid = ""
        self._acks = 0

    async def _read(self) -> None:
        try:
            line = await self.stdout.receive_until(b"\n", 1 << 20)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            raise AssertionError(
                f"the node client exited; it printed {self.lines}\n{self.log.read_text()}"
            ) from None
        self.lines.append(json.loads(line))

    async def until(self, predicate: Callable[[Line], bool], what: str) -> Line:
        """The first line printed that matches, waiting for it."""
        seen = 0
        with anyio.move_on_after(TIMEOUT):
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                await self._read()
        raise AssertionError(f"the node client never got {what}; it printed {self.lines}")

    async def event(self, name: str, predicate: Callable[[Any], bool] = lambda _: True) -> Any:
        """The payload (single argument) of the first event ``name`` that matches."""
        line = await self.until(
            lambda line: (
                line.get("event") == name and len(line["args"]) == 1 and predicate(line["args"][0])
            ),
            f"{name!r}",
        )
        return line["args"][0]

    def events(self, name: str) -> list[Any]:
        return [line["args"] for line in self.lines if line.get("event") == name]

    async def _command(self, command: dict[str, Any]) -> None:
        await self.stdin.send(json.dumps(command).encode() + b"\n")

    async def emit(self, event: str, *args: Any) -> None:
        await self._command({"emit": event, "args": list(args)})

    async def call(self, event: str, *args: Any) -> list[Any]:
        """Emit with an ack; the ack's values."""
        self._acks += 1
        ref = self._acks
        await self._command({"emit": event, "args": list(args), "ack": ref})
        line = await self.until(lambda line: line.get("ack") == ref, f"the ack of {event!r}")
        answer: list[Any] = line["args"]
        return answer

    async def close(self) -> None:
        """Disconnect; returns once the process exited, with all it printed in ``lines``."""
        await self._command({"close": True})
        with anyio.fail_after(TIMEOUT):
            while True:
                try:
                    line = await self.stdout.receive_until(b"\n", 1 << 20)
                except (anyio.EndOfStream, anyio.IncompleteRead):
                    break
                self.lines.append(json.loads(line))
            await self.proc.wait()
        assert self.proc.returncode == 0, self.log.read_text()


@asynccontextmanager
async def node_client(
    hub: HubProcess, tmp_path: Path, options: dict[str, Any] | None = None
) -> AsyncIterator[NodeClient]:
    """A connected node client (``connect`` seen, ``sid`` set)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH (.ci/run expects Node 18+)")
    if not (NODE_DIR / "node_modules" / "socket.io-client").is_dir():
        pytest.fail(f"socket.io-client is not installed: run `npm ci` in {NODE_DIR}")
    log = tmp_path / f"node-client-{unique('log')}.txt"
    with log.open("wb") as stderr:
        proc = await anyio.open_process(
            [node, str(SCRIPT), hub.url, json.dumps(options or {})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    client = NodeClient(proc, log)
    try:
        line = await client.until(
            lambda line: "connect" in line or "connect_error" in line, "a CONNECT answer"
        )
        assert "connect" in line, f"connect refused: {line}"
        client.sid = line["connect"]
        yield client
    finally:
        with anyio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await proc.aclose()


def positioned(payload: Any) -> Any:
    """The payload without its ``pos``, which must be there and be a string."""
    assert isinstance(payload, dict), payload
    assert isinstance(payload.get("pos"), str), f"no position in {payload}"
    return {key: value for key, value in payload.items() if key != "pos"}


class Inbox:
    """What the tether client receives: (event, payload) in arrival order."""

    def __init__(self, rt: tether.RealtimeClient) -> None:
        self.items: list[tuple[str, Any]] = []
        rt.on_any(lambda event, *args: self.items.append((event, args[0] if args else None)))

    async def event(self, name: str, predicate: Callable[[Any], bool]) -> Any:
        with anyio.fail_after(TIMEOUT):
            while True:
                for event, payload in self.items:
                    if event == name and predicate(payload):
                        return payload
                await anyio.sleep(0.005)


def member(sid: str, data: Any = None) -> dict[str, Any]:
    return {"id": sid, "data": data}


async def test_plain_node_client_with_a_tether_client(hub: HubProcess, tmp_path: Path) -> None:
    room = unique("room")
    async with node_client(hub, tmp_path) as plain, tether.RealtimeClient(hub.url) as rt:
        inbox = Inbox(rt)
        assert await plain.call("join", {"channel": room}) == []  # no positions for it
        joined = await plain.event("channel:join")
        assert positioned(joined) == {"channel": room, "message": member(plain.sid)}

        await rt.wait_connected(TIMEOUT)
        rt_sid = rt.get_socket_id()
        assert rt_sid is not None
        rt.join(room)
        payload = await plain.event("channel:join", lambda p: p["message"]["id"] == rt_sid)
        assert positioned(payload) == {"channel": room, "message": member(rt_sid)}
        rt.update_profile({"name": "tether"})
        payload = await plain.event("channel:update")
        assert positioned(payload) == {
            "channel": room,
            "message": member(rt_sid, {"name": "tether"}),
        }

        rt.send(room, "chat", {"text": "from tether"})
        payload = await plain.event("chat")
        assert positioned(payload) == {"channel": room, "message": {"text": "from tether"}}
        rt.broadcast("news", 7)
        payload = await plain.event("news")
        assert positioned(payload) == {"channel": None, "message": 7}

        everyone = [member(plain.sid), member(rt_sid, {"name": "tether"})]
        assert await plain.call("members", {"channel": room}) == [everyone]
        page = await plain.call("members", {"channel": room, "limit": 1})
        assert page == [{"members": everyone[:1], "next": page[0]["next"]}]
        assert isinstance(page[0]["next"], str)

        await plain.emit("message", {"channel": room, "eventName": "chat", "message": "from node"})
        payload = await inbox.event("chat", lambda p: p["message"] == "from node")
        assert positioned(payload) == {"channel": room, "message": "from node"}
        await plain.emit("message", {"eventName": "news", "message": {"from": "node"}})
        payload = await inbox.event("news", lambda p: p["message"] == {"from": "node"})
        assert positioned(payload) == {"channel": None, "message": {"from": "node"}}
        # echo is on by default: the node client got its own message and broadcast too
        assert positioned(await plain.event("chat", lambda p: p["message"] == "from node"))
        assert positioned(await plain.event("news", lambda p: p["message"] == {"from": "node"}))

        # each stream's positions are distinct (the room's five events, the two broadcasts);
        # none was announced to the plain client by hub:resume
        received = [line["args"][0] for line in plain.lines if "event" in line]
        for channel, count in ((room, 5), (None, 2)):
            positions = {p["pos"] for p in received if p["channel"] == channel}
            assert len(positions) == count, received
        assert plain.events("hub:resume") == []

        await plain.close()
        payload = await inbox.event("channel:leave", lambda p: p["message"]["id"] == plain.sid)
        assert positioned(payload) == {"channel": room, "message": member(plain.sid)}


TETHER_KEYS = {
    "a string": "garbage",
    "null": None,
    "a list": [{"client": "A" * 22}],
    "no client": {"broadcast": "m:0:1"},
    "an empty object": {},
    "a number as client": {"client": 42},
    "a client with spaces": {"client": "not an id!"},
    "a client too long": {"client": "A" * 65},
    "an empty client": {"client": ""},
}


@pytest.mark.parametrize("key", list(TETHER_KEYS.values()), ids=list(TETHER_KEYS))
async def test_a_malformed_tether_key_makes_a_plain_client(
    hub: HubProcess, tmp_path: Path, key: Any
) -> None:
    room = unique("room")
    async with node_client(hub, tmp_path, {"auth": {"tether": key}}) as plain:
        assert await plain.call("join", {"channel": room}) == []
        assert positioned(await plain.event("channel:join")) == {
            "channel": room,
            "message": member(plain.sid),
        }
        await plain.close()
        assert plain.events("hub:resume") == []
        assert plain.lines[-1] == {"disconnect": "io client disconnect"}


async def test_a_well_formed_tether_key_gets_positions(hub: HubProcess, tmp_path: Path) -> None:
    """The control of the test above: the same client with a key the hub accepts."""
    room = unique("room")
    identity = {"client": uuid.uuid4().hex[:22]}  # its own: the hub remembers senders
    async with node_client(hub, tmp_path, {"auth": {"tether": identity}}) as client:
        resume = await client.event("hub:resume")
        assert resume == {"channel": None, "pos": resume["pos"]}
        assert isinstance(resume["pos"], str)
        answer = await client.call("join", {"channel": room})
        assert len(answer) == 1 and isinstance(answer[0]["pos"], str), answer
        await client.close()
