"""The hub's bounds (specs/hub-wire-format.md §4.2) and its quiet handling of malformed input
(§4.1), against a real hub: ``tether serve`` subprocesses, or an embedded hub in a thread where
the test reads the hub's log records (caplog).

Every async test runs on asyncio and trio; clients are the raw ``WireClient`` (exact frames),
raw TCP for broken HTTP, and python-socketio's ``AsyncClient`` for a third-party view.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute

from tether.hub import HubConfig, HubThread, start_hub_in_thread

from .conftest import HubProcess, RedisServer, WireClient, connected, unique

pytestmark = pytest.mark.anyio

TOKEN = "b0unds-t0ken-xyz"


def member_event(channel: str, sid: str | None, data: Any = None) -> dict[str, Any]:
    return {"channel": channel, "message": {"id": sid, "data": data}}


async def join(client: WireClient, channel: str) -> None:
    assert await client.call("join", {"channel": channel, "echo": False}) == []


# ------------------------------------------------------------------ a member that does not read


@pytest.fixture(scope="module")
def queue_hub(hub_tmp: Path) -> Iterator[HubProcess]:
    process = HubProcess.start(
        "--token",
        TOKEN,
        "--max-send-queue",
        "100",
        "--max-send-queue-bytes",
        "2000000",
        "--log-level",
        "info",
        tmp=hub_tmp,
    )
    yield process
    assert process.stop() == 0, process.log()


async def test_a_member_that_does_not_read_is_disconnected(queue_hub: HubProcess) -> None:
    flood, watch = unique("flood"), unique("watch")
    auth = {"token": TOKEN}
    async with (
        connected(queue_hub, auth) as slow,
        connected(queue_hub, auth) as watcher,
        connected(queue_hub, auth) as flooder,
        connected(queue_hub, auth) as reader,
    ):
        # A small receive buffer, so the kernel absorbs little before the hub's queue fills.
        slow.stream.extra(SocketAttribute.raw_socket).setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
        )
        await join(slow, flood)
        await join(slow, watch)
        await join(watcher, watch)
        await join(reader, flood)
        await watcher.sync()
        watcher.events.clear()
        received: list[int] = []
        sent = 0

        async def keep_reading() -> None:
            while True:
                name, args = await reader.next_event(timeout=60)
                if name == "blob":
                    received.append(args[0]["message"]["n"])

        async def keep_flooding() -> None:
            nonlocal sent
            for n in range(2000):  # 200 MB at most: far above every buffer on the way
                body = {"n": n, "blob": "x" * 100_000}
                args = {"channel": flood, "eventName": "blob", "message": body}
                assert await flooder.call("message", args, timeout=30) == []
                sent = n + 1
                # Stay a few messages ahead of the reading member, so only the member that
                # does not read can fall behind by a whole send queue, however busy the
                # machine is.
                with anyio.fail_after(30):
                    while len(received) < sent - 5:
                        await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            tg.start_soon(keep_reading)
            tg.start_soon(keep_flooding)
            # The slow member is cut off; its other channel hears it leave.
            assert await watcher.next_event(timeout=60) == (
                "channel:leave",
                [member_event(watch, slow.sid)],
            )
            tg.cancel_scope.cancel()
        # Its connection is gone: what it can still read ends in a closed connection.
        await slow.until_closed(timeout=30)
        # The reading member gets every message, in order.
        with anyio.fail_after(30):
            while len(received) < sent:
                name, args = await reader.next_event(timeout=30)
                if name == "blob":
                    received.append(args[0]["message"]["n"])
        assert received == list(range(sent))
    log = queue_hub.log()
    warnings = [line for line in log.splitlines() if " WARNING " in line]
    assert all(": it does not read (" in line for line in warnings), log
    # once, with the sid (the module's hub is shared by both backends' runs)
    assert len([line for line in warnings if f"disconnecting {slow.sid}:" in line]) == 1, log
    assert TOKEN not in log


@pytest.fixture(scope="module")
def quick_ping_hub(hub_tmp: Path) -> Iterator[HubProcess]:
    process = HubProcess.start(
        "--ping-interval",
        "1",
        "--ping-timeout",
        "3",
        "--max-send-queue",
        "1000000",
        "--max-send-queue-bytes",
        "1000000000",
        tmp=hub_tmp,
    )
    yield process
    assert process.stop() == 0, process.log()


async def test_a_ping_timeout_resets_a_member_that_does_not_read(
    quick_ping_hub: HubProcess,
) -> None:
    """Under its queue bound, a member that stops reading stops answering pings. Engine.IO's
    CLOSE would wait behind everything queued for it, forever: the hub resets it instead."""
    flood, watch = unique("flood"), unique("watch")
    async with (
        connected(quick_ping_hub) as silent,
        connected(quick_ping_hub) as watcher,
        connected(quick_ping_hub) as flooder,
    ):
        silent.stream.extra(SocketAttribute.raw_socket).setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
        )
        await join(silent, flood)
        await join(silent, watch)
        await join(watcher, watch)
        for _ in range(100):  # 10 MB: more than the kernel buffers hold, queued by the hub
            args = {"channel": flood, "eventName": "blob", "message": "x" * 100_000}
            assert await flooder.call("message", args, timeout=30) == []
            await watcher.sync()  # the watcher keeps answering pings meanwhile
        # The watcher keeps reading (and answering pings) while it waits.
        assert await watcher.next_event(timeout=15) == (
            "channel:leave",
            [member_event(watch, silent.sid)],
        )
        # The silent member's connection was reset, not closed behind megabytes of frames.
        await silent.until_closed(timeout=10)
        assert silent.close_code is None


# ---------------------------------------------------------------------- channels per client


@pytest.fixture(scope="module")
def limited_hub(hub_tmp: Path) -> Iterator[HubProcess]:
    process = HubProcess.start("--max-channels-per-client", "3", tmp=hub_tmp)
    yield process
    assert process.stop() == 0, process.log()


async def test_channel_limit_per_client(limited_hub: HubProcess) -> None:
    names = [unique() for _ in range(4)]
    refusal = "too many channels (at most 3 per client)"
    async with connected(limited_hub) as a, connected(limited_hub) as b:
        for name in names[:3]:
            await join(a, name)
        assert await a.call("join", {"channel": names[3]}) == [{"error": refusal}]
        await a.emit("join", {"channel": names[3]})
        await a.expect("error", {"event": "join", "message": refusal})
        await join(a, names[0])  # joining a channel it is in is no new channel
        # the refused join changed nothing
        assert await b.call("members", {"channel": names[3]}) == [[]]
        # leaving frees a place; other clients have their own limit
        assert await a.call("leave", {"channel": names[0]}) == []
        await join(a, names[3])
        for name in names[:3]:
            await join(b, name)


@pytest.mark.redis
async def test_channel_limit_with_redis(redis_server: RedisServer, hub_tmp: Path) -> None:
    args = ("--redis", redis_server.url, "--redis-prefix", f"{unique('lim')}:")
    hub = HubProcess.start(*args, "--max-channels-per-client", "2", tmp=hub_tmp)
    try:
        async with connected(hub) as a:
            await join(a, "one")
            await join(a, "two")
            assert await a.call("join", {"channel": "three"}) == [
                {"error": "too many channels (at most 2 per client)"}
            ]
            assert await a.call("members", {"channel": "three"}) == [[]]
            await a.call("leave", {"channel": "one"})
            await join(a, "three")
    finally:
        assert hub.stop() == 0, hub.log()


# ---------------------------------------------------------------------------- members pages


async def test_members_pages(hub: HubProcess) -> None:
    ch = unique()
    async with (
        connected(hub) as a,
        connected(hub) as b,
        connected(hub) as c,
        connected(hub) as outsider,
    ):
        for client, name in ((a, "Ada"), (b, "Bob"), (c, "Cy")):
            assert await client.call("update", {"data": {"name": name}}) == []
            await join(client, ch)
        everyone = [
            {"id": a.sid, "data": {"name": "Ada"}},
            {"id": b.sid, "data": {"name": "Bob"}},
            {"id": c.sid, "data": {"name": "Cy"}},
        ]
        # The legacy form is unchanged.
        assert await outsider.call("members", {"channel": ch}) == [everyone]
        # Pages of two: the cursor goes on after the last member of a page.
        [first] = await outsider.call("members", {"channel": ch, "limit": 2})
        assert first["members"] == everyone[:2]
        assert isinstance(first["next"], str)
        [second] = await outsider.call(
            "members", {"channel": ch, "limit": 2, "cursor": first["next"]}
        )
        assert second == {"members": everyone[2:], "next": None}
        # One page with everything; an unknown channel is one empty page.
        assert await outsider.call("members", {"channel": ch, "max_bytes": 10_000}) == [
            {"members": everyone, "next": None}
        ]
        assert await outsider.call("members", {"channel": unique(), "limit": 5}) == [
            {"members": [], "next": None}
        ]
        # A member who joins while someone pages shows up on a later page.
        async with connected(hub) as late:
            await join(late, ch)
            [rest] = await outsider.call(
                "members", {"channel": ch, "limit": 5, "cursor": first["next"]}
            )
            assert rest == {
                "members": [*everyone[2:], {"id": late.sid, "data": None}],
                "next": None,
            }


async def test_members_pages_fit_max_bytes(hub: HubProcess) -> None:
    """Two 600 kB profiles: the legacy list would be a 1.2 MB frame, larger than a client
    with the default 1 MB limit accepts; pages of at most max_bytes deliver both."""
    ch = unique()
    big = {"bio": "b" * 600_000}
    async with connected(hub) as a, connected(hub) as b, connected(hub) as asker:
        for client in (a, b):
            assert await client.call("update", {"data": big}) == []
            await join(client, ch)
        [legacy] = await asker.call("members", {"channel": ch})
        assert legacy == {
            "error": "member list larger than 1000000 bytes: ask for it in pages "
            "(limit, cursor, max_bytes)"
        }
        pages, cursor = [], None
        while True:
            ack_id = await asker.emit(
                "members", {"channel": ch, "max_bytes": 1_000_000, "cursor": cursor}, ack=True
            )
            with anyio.fail_after(5):
                while ack_id not in asker.acks:
                    await asker._pump()
            frame = next(f for f in reversed(asker.frames) if f.startswith(f"43{ack_id}["))
            assert len(frame.encode()) <= 1_000_000
            [page] = asker.acks.pop(ack_id)
            pages.append(page["members"])
            cursor = page["next"]
            if cursor is None:
                break
        assert pages == [[{"id": a.sid, "data": big}], [{"id": b.sid, "data": big}]]
        # A profile larger than the asker's own limit is listed without it.
        [small] = await asker.call("members", {"channel": ch, "max_bytes": 4096})
        assert small["members"] == [{"id": a.sid, "data": None, "oversized": True}]
        assert small["next"] is not None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": 0}, "limit must be an integer from 1 to 1000"),
        ({"limit": 1001}, "limit must be an integer from 1 to 1000"),
        ({"limit": "2"}, "limit must be an integer from 1 to 1000"),
        ({"limit": True}, "limit must be an integer from 1 to 1000"),
        ({"cursor": 5}, "cursor must be the next value of an earlier answer"),
        ({"cursor": "abc"}, "cursor must be the next value of an earlier answer"),
        ({"max_bytes": 1023}, "max_bytes must be an integer of at least 1024"),
        ({"max_bytes": 2.5e6}, "max_bytes must be an integer of at least 1024"),
    ],
)
async def test_members_page_requests_are_checked(
    hub: HubProcess, query: dict[str, Any], message: str
) -> None:
    async with connected(hub) as client:
        assert await client.call("members", {"channel": unique(), **query}) == [{"error": message}]


@pytest.mark.redis
async def test_members_pages_with_redis(redis_server: RedisServer, hub_tmp: Path) -> None:
    args = ("--redis", redis_server.url, "--redis-prefix", f"{unique('pg')}:")
    hubs = [HubProcess.start(*args, tmp=hub_tmp) for _ in range(2)]
    ch = unique()
    try:
        async with connected(hubs[0]) as a, connected(hubs[1]) as b, connected(hubs[0]) as c:
            for client in (a, b, c):
                await join(client, ch)
            await c.call("leave", {"channel": ch})
            await c.call("update", {"data": {"v": 1}})
            await join(c, ch)  # a re-join after a leave goes to the end
            seen: list[str] = []
            cursor = None
            while True:
                [page] = await b.call("members", {"channel": ch, "limit": 1, "cursor": cursor})
                seen += [m["id"] for m in page["members"]]
                cursor = page["next"]
                if cursor is None:
                    break
            assert seen == [a.sid, b.sid, c.sid]
    finally:
        for node in hubs:
            assert node.stop() == 0, node.log()


def test_members_pages_with_python_socketio(hub: HubProcess) -> None:
    """A third-party client pages the same way."""
    import socketio

    ch = unique()

    async def scenario() -> list[Any]:
        clients = [socketio.AsyncClient(reconnection=False) for _ in range(3)]
        try:
            for client in clients:
                await client.connect(hub.url, transports=["websocket"], wait_timeout=5)
                assert await client.call("join", {"channel": ch}, timeout=5) is None
            pages, cursor = [], None
            while True:
                page = await clients[0].call(
                    "members", {"channel": ch, "limit": 2, "cursor": cursor}, timeout=5
                )
                pages.append([m["id"] for m in page["members"]])
                cursor = page["next"]
                if cursor is None:
                    return [pages, [c.get_sid() for c in clients]]
        finally:
            for client in clients:
                await client.disconnect()

    pages, sids = asyncio.run(scenario())
    assert pages == [sids[:2], sids[2:]]


# -------------------------------------------------------------------------- malformed input


@pytest.fixture
def embedded(caplog: pytest.LogCaptureFixture) -> Iterator[HubThread]:
    caplog.set_level(logging.DEBUG)
    hub = start_hub_in_thread(HubConfig(port=0, max_payload=4096))
    yield hub
    hub.stop()


GARBAGE = [
    "x",  # not an Engine.IO packet at all
    "",  # empty text frame
    "bQUJD",  # base64 binary is for long-polling only
    "4",  # empty Socket.IO packet
    "42{}",  # event data not a list
    "42[]",  # event without a name
    "42[1,2]",  # event name not a string
    "42null",
    "4abc",
    "49",  # unknown packet type
    "44{}",  # CONNECT_ERROR from a client
    "43[1]",  # an ACK the hub never asked for
    '42/chat,["join",{}]',  # a namespace the hub does not serve
    "451-",
    '42["join",{"a"',  # truncated JSON
    "499999999999-[]",
]


def hub_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("tether", "uvicorn"))]


async def test_malformed_packets_are_logged_once_without_traceback(
    embedded: HubThread, caplog: pytest.LogCaptureFixture
) -> None:
    ch = unique()
    async with connected(embedded) as watcher:
        async with connected(embedded) as noisy:
            await join(watcher, ch)
            await join(noisy, ch)
            await watcher.sync()
            watcher.events.clear()
            for _ in range(3):
                for frame in GARBAGE:
                    await noisy.send_frame(frame)
            await noisy.send_frame(b"\x00binary without a packet")
            # The hub dropped all of it and still serves this connection.
            await noisy.sync()
            assert await noisy.call("members", {"channel": ch}) == [
                [{"id": watcher.sid, "data": None}, {"id": noisy.sid, "data": None}]
            ]
            await watcher.sync()
            assert not watcher.events
            noisy_sid = noisy.sid
        # ...and its departure is announced at once (no member left behind until a ping
        # timeout, as when python-engineio's reader died on the first non-packet frame).
        await watcher.expect("channel:leave", member_event(ch, noisy_sid))
    records = hub_records(caplog)
    assert [r for r in records if r.levelno >= logging.WARNING] == []
    assert [r for r in records if r.exc_info] == []
    malformed = [r for r in records if "malformed" in r.getMessage()]
    assert [r.levelno for r in malformed] == [logging.INFO]
    assert noisy_sid is not None
    assert noisy_sid in malformed[0].getMessage()


async def test_malformed_before_connect_and_attachments(
    embedded: HubThread, caplog: pytest.LogCaptureFixture
) -> None:
    # Packets before CONNECT: python-socketio would log a WARNING for each.
    early = await WireClient.open(embedded.host, embedded.port)
    try:
        for _ in range(5):
            await early.send_frame('42["join",{"channel":"x"}]')
            await early.send_frame('451-["message",{"_placeholder":true,"num":0}]')
            await early.send_frame(b"\x01")
        assert (await early.connect()).type == 0
        await early.sync()
    finally:
        await early.close()
    # Attachments beyond the payload limit are not kept; the event is refused as usual.
    async with connected(embedded) as client:
        parts = [b"a" * 3000, b"b" * 3000]
        assert await client.call("message", {"eventName": "e", "message": parts}) == [
            {"error": "message larger than 4096 bytes"}
        ]
        await client.emit("message", {"eventName": "e", "message": parts})
        await client.expect(
            "error", {"event": "message", "message": "message larger than 4096 bytes"}
        )
        await client.sync()
    records = hub_records(caplog)
    assert [r for r in records if r.levelno >= logging.WARNING] == []
    assert [r for r in records if r.exc_info] == []
    assert len([r for r in records if "malformed" in r.getMessage()]) == 1


async def test_broken_http_is_not_a_warning(
    embedded: HubThread, caplog: pytest.LogCaptureFixture
) -> None:
    for request in (
        b"GARBAGE\r\n\r\n",
        b"PUT /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n"
        b"Connection: Upgrade\r\n\r\n",
    ):
        async with await anyio.connect_tcp(embedded.host, embedded.port) as stream:
            await stream.send(request)
            with anyio.fail_after(5):
                reply = await stream.receive()
            assert reply.startswith(b"HTTP/1.1 ")
    records = hub_records(caplog)
    assert [r for r in records if r.levelno >= logging.WARNING] == []


async def test_internal_errors_still_log_a_traceback(
    caplog: pytest.LogCaptureFixture, hub_tmp: Path
) -> None:
    """A real failure (Redis gone) is an ERROR with a traceback, and ``internal error`` to
    the client."""
    caplog.set_level(logging.INFO)
    redis_server = RedisServer.start(hub_tmp)
    hub = await anyio.to_thread.run_sync(
        lambda: start_hub_in_thread(HubConfig(port=0, redis_url=redis_server.url))
    )
    try:
        async with connected(hub) as client:
            await join(client, unique())
            redis_server.stop()
            assert await client.call("join", {"channel": unique()}) == [{"error": "internal error"}]
    finally:
        await anyio.to_thread.run_sync(hub.stop)
    errors = [r for r in caplog.records if r.name == "tether.hub" and r.levelno == logging.ERROR]
    assert any("internal error handling 'join'" in r.getMessage() and r.exc_info for r in errors)


# -------------------------------------------------------------------------------- polling


async def http(hub: Any, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.0 request on its own connection (so the answer is not chunked)."""
    async with await anyio.connect_tcp(hub.host, hub.port) as stream:
        head = (
            f"{method} {target} HTTP/1.0\r\nHost: hub\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        await stream.send(head.encode() + body)
        reply = b""
        with anyio.fail_after(10):
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while True:
                    reply += await stream.receive()
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def polling_session(hub: Any) -> str:
    status, body = await http(hub, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200, body
    sid: str = json.loads(body[1:])["sid"]
    assert await http(hub, "POST", f"/socket.io/?EIO=4&transport=polling&sid={sid}", b"40") == (
        200,
        b"OK",
    )
    return sid


async def test_bad_polling_payloads_are_refused_quietly(
    embedded: HubThread, caplog: pytest.LogCaptureFixture
) -> None:
    sid = await polling_session(embedded)
    target = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    for payload in (b"x", b"bA", b"4\x1e\x1e4", b"\xff\xfe"):
        assert (await http(embedded, "POST", target, payload))[0] == 400
    assert await http(embedded, "POST", target, b'42["join",{"channel":"p"}]') == (200, b"OK")
    records = hub_records(caplog)
    assert [r for r in records if r.levelno >= logging.WARNING] == []
    assert [r for r in records if r.exc_info] == []
    assert len([r for r in records if "malformed" in r.getMessage()]) == 1


async def test_a_polling_member_that_does_not_poll_is_disconnected(
    queue_hub: HubProcess,
) -> None:
    flood = unique("flood")
    auth = {"token": TOKEN}
    eio_sid = await polling_session_with_auth(queue_hub, auth)
    target = f"/socket.io/?EIO=4&transport=polling&sid={eio_sid}"
    join_packet = '42["join",{"channel":"' + flood + '","echo":false}]'
    assert await http(queue_hub, "POST", target, join_packet.encode()) == (200, b"OK")
    async with connected(queue_hub, auth) as watcher, connected(queue_hub, auth) as flooder:
        await join(watcher, flood)
        # The polling member never polls again: everything for it stays in its queue.
        for _ in range(60):
            blob = {"channel": flood, "eventName": "blob", "message": "x" * 50_000}
            assert await flooder.call("message", blob, timeout=30) == []
        event, _ = await watcher.next_event(timeout=30)
        while event == "blob":
            event, _ = await watcher.next_event(timeout=30)
        assert event == "channel:leave"
    # The session is gone: its next poll is refused.
    status, _ = await http(queue_hub, "GET", target)
    assert status == 400
    assert "it does not read" in queue_hub.log()


async def polling_session_with_auth(hub: Any, auth: dict[str, Any]) -> str:
    status, body = await http(hub, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200, body
    sid: str = json.loads(body[1:])["sid"]
    connect = ("40" + json.dumps(auth)).encode()
    target = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    assert await http(hub, "POST", target, connect) == (200, b"OK")
    status, body = await http(hub, "GET", target)  # the CONNECT answer
    assert status == 200 and body.startswith(b"40"), body
    return sid
