"""The hub's wire format (specs/hub-wire-format.md) against a real ``tether serve`` process.

Every async test runs on asyncio and trio; the client is the raw ``WireClient`` from
conftest, so the assertions are about frames on the wire, not about any client library.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tether.cli import main
from tether.hub import Hub, HubConfig, run_hub, start_hub_in_thread

from .conftest import ROOT, HubProcess, WireClient, connected, hub_env, unique

pytestmark = pytest.mark.anyio


def join_event(channel: str, sid: str | None, data: Any = None) -> dict[str, Any]:
    return {"channel": channel, "message": {"id": sid, "data": data}}


async def drain(*clients: WireClient) -> None:
    """Forget every event the hub has sent these clients so far."""
    for client in clients:
        await client.sync()
        client.events.clear()


async def join(client: WireClient, channel: str, echo: bool = True) -> None:
    """Join with an ack, so the hub has finished the join when this returns."""
    assert await client.call("join", {"channel": channel, "echo": echo}) == []


# ----------------------------------------------------------------------- process behaviour


def test_listening_line_heartbeat_options_and_clean_exit(hub_tmp: Path) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        process = HubProcess.start("--ping-interval", "2", "--ping-timeout", "3", tmp=hub_tmp)

        async def open_packet(process: HubProcess = process) -> str:
            client = await WireClient.open(process.host, process.port)
            try:
                await client.connect()
            finally:
                await client.close()
            return client.frames[0]

        frame = anyio.run(open_packet)
        handshake = json.loads(frame[1:])
        assert (handshake["pingInterval"], handshake["pingTimeout"]) == (2000, 3000)
        assert handshake["maxPayload"] == 1_000_000
        assert process.host == "127.0.0.1"
        assert process.stop(sig) == 0, process.log()


def test_only_one_line_on_stdout() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "serve", "--port", "0", "--log-level", "debug"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=hub_env(),
        cwd=ROOT,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(10) == 0
    proc.stdout.close()
    assert first.startswith(b"listening on http://127.0.0.1:")
    assert rest == b""


def test_busy_port_and_bad_options_fail_cleanly(hub: HubProcess) -> None:
    busy = subprocess.run(
        [sys.executable, "-m", "tether", "serve", "--port", str(hub.port)],
        capture_output=True,
        check=False,
        env=hub_env(),
        cwd=ROOT,
        timeout=20,
    )
    assert busy.returncode == 1
    assert busy.stdout == b""
    assert b"cannot listen" in busy.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "tether", "serve", "--ping-interval", "-1"],
        capture_output=True,
        check=False,
        env=hub_env(),
        cwd=ROOT,
        timeout=20,
    )
    assert bad.returncode == 2
    assert b"positive" in bad.stderr


def test_cli_without_a_command_prints_help() -> None:
    assert main([]) == 2


# ------------------------------------------------------------------------------------ auth


REFUSAL = '44{"message":"unauthorized","data":{"reason":"invalid token"}}'


@pytest.mark.parametrize(
    "auth",
    [None, {}, {"token": "wrong-secret-123"}, {"token": 42}, {"token": None}, {"other": "x"}],
)
async def test_token_refusal_bytes(token_hub: HubProcess, auth: dict[str, Any] | None) -> None:
    client = await WireClient.open(token_hub.host, token_hub.port)
    try:
        reply = await client.connect(auth)
        assert reply.type == 4
        assert client.frames[-1] == REFUSAL
    finally:
        await client.close()


async def test_token_accepted_and_never_logged(token_hub: HubProcess) -> None:
    async with connected(token_hub, {"token": "s3cr3t-t0ken", "extra": "x"}) as client:
        assert client.sid
        assert client.frames[-1] == f'40{{"sid":"{client.sid}"}}'
        await client.sync()
    # a secret a client puts in the query string is not logged either
    client = await WireClient.open(token_hub.host, token_hub.port, query="key=qs-secret-789")
    try:
        assert (await client.connect({"token": "s3cr3t-t0ken"})).type == 0
        await client.sync()
    finally:
        await client.close()
    log = token_hub.log()
    assert "WebSocket /socket.io/?…" in log
    assert "qs-secret-789" not in log
    assert "refused" in log  # the hub does log (at debug), just never the secrets
    assert "s3cr3t-t0ken" not in log
    assert "wrong-secret-123" not in log


def test_token_refusal_seen_by_python_socketio(token_hub: HubProcess) -> None:
    """A third-party client gets ``message`` and ``data`` from the refusal."""
    import socketio

    async def scenario() -> Any:
        client = socketio.AsyncClient(reconnection=False)
        seen: list[Any] = []
        client.on("connect_error", seen.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                token_hub.url, auth={"token": "nope"}, transports=["websocket"], wait_timeout=5
            )
        await client.disconnect()
        return seen

    seen = asyncio.run(scenario())
    assert seen == [{"message": "unauthorized", "data": {"reason": "invalid token"}}]


# -------------------------------------------------------------------------------- channels


async def test_join_with_and_without_echo(hub: HubProcess) -> None:
    ch = unique()
    async with connected(hub) as a, connected(hub) as b:
        await a.emit("join", {"channel": ch, "echo": True})
        await a.expect("channel:join", join_event(ch, a.sid))
        assert a.frames[-1] == (
            f'42["channel:join",{{"channel":"{ch}","message":{{"id":"{a.sid}","data":null}},'
            f'"pos":"{a.positions[-1]}"}}]'
        )
        await join(b, ch, echo=False)
        await a.expect("channel:join", join_event(ch, b.sid))
        await b.sync()
        assert not b.events  # no echo of its own join


async def test_join_is_idempotent_but_updates_echo(hub: HubProcess) -> None:
    ch = unique()
    async with connected(hub) as a, connected(hub) as b:
        await join(a, ch)
        await a.expect("channel:join", join_event(ch, a.sid))
        await join(b, ch, echo=False)
        await a.expect("channel:join", join_event(ch, b.sid))
        await join(b, ch, echo=True)  # again: no announcement at all
        await join(a, ch)
        await a.sync()
        await b.sync()
        assert not a.events
        assert not b.events
        assert await a.call("members", {"channel": ch}) == [
            [{"id": a.sid, "data": None}, {"id": b.sid, "data": None}]
        ]


async def test_leave_with_and_without_echo(hub: HubProcess) -> None:
    ch = unique()
    async with connected(hub) as a, connected(hub) as b, connected(hub) as c:
        for client in (a, b, c):
            await join(client, ch, echo=False)
        await drain(a, b, c)
        assert await b.call("leave", {"channel": ch, "echo": True}) == []
        await b.expect("channel:leave", join_event(ch, b.sid))
        await a.expect("channel:leave", join_event(ch, b.sid))
        await c.expect("channel:leave", join_event(ch, b.sid))
        await c.emit("leave", {"channel": ch, "echo": False})
        await a.expect("channel:leave", join_event(ch, c.sid))
        await b.sync()
        await c.sync()
        assert not b.events  # no longer a member
        assert not c.events  # no echo
        # leaving a channel one is not in: nothing happens, no error
        assert await c.call("leave", {"channel": ch}) == []
        await c.emit("leave", {"channel": unique()})
        await c.sync()
        await a.sync()
        assert not a.events
        assert not c.events


async def test_message_to_channel_and_broadcast(hub: HubProcess) -> None:
    ch = unique()
    async with connected(hub) as a, connected(hub) as b, connected(hub) as outsider:
        await join(a, ch, echo=False)
        await join(b, ch, echo=False)
        await a.sync()
        a.events.clear()
        payload = {"text": "hi", "n": [1, 2.5, None, True]}

        await a.emit("message", {"channel": ch, "eventName": "chat", "message": payload})
        expected = {"channel": ch, "message": payload}
        await a.expect("chat", expected)  # echo defaults to true
        await b.expect("chat", expected)
        framed = {**expected, "pos": b.positions[-1]}
        assert b.frames[-1] == '42["chat",' + json.dumps(framed, separators=(",", ":")) + "]"

        await a.emit("message", {"channel": ch, "eventName": "chat", "message": "x", "echo": False})
        await b.expect("chat", {"channel": ch, "message": "x"})

        # A non-member may send to a channel; it is not a recipient, even with echo.
        await outsider.emit(
            "message", {"channel": ch, "eventName": "chat", "message": 1, "echo": True}
        )
        await a.expect("chat", {"channel": ch, "message": 1})
        await b.expect("chat", {"channel": ch, "message": 1})

        # Without a channel the event goes to every connected client.
        await b.emit("message", {"eventName": "news", "message": {"k": 1}, "echo": False})
        await a.expect("news", {"channel": None, "message": {"k": 1}})
        await outsider.expect("news", {"channel": None, "message": {"k": 1}})
        await outsider.emit("message", {"channel": None, "eventName": "news", "message": None})
        await outsider.expect("news", {"channel": None, "message": None})
        await a.expect("news", {"channel": None, "message": None})
        await b.expect("news", {"channel": None, "message": None})

        for client in (a, b, outsider):
            await client.sync()
            assert not client.events


async def test_binary_message(hub: HubProcess) -> None:
    ch = unique()
    async with connected(hub) as a, connected(hub) as b:
        await join(b, ch, echo=False)
        blob = bytes(range(256)) * 4
        await a.emit(
            "message",
            {"channel": ch, "eventName": "file", "message": {"name": "f", "body": blob}},
        )
        await b.expect("file", {"channel": ch, "message": {"name": "f", "body": blob}})


async def test_update_profile(hub: HubProcess) -> None:
    ch1, ch2 = unique(), unique()
    async with connected(hub) as a, connected(hub) as b:
        await join(a, ch1, echo=False)
        await join(a, ch2, echo=False)
        await join(b, ch1, echo=False)
        await a.sync()
        a.events.clear()

        profile = {"name": "Ada", "tags": ["x"]}
        assert await a.call("update", {"data": profile, "echo": True}) == []
        await a.sync()
        got = {(name, json.dumps(args, sort_keys=True)) for name, args in a.events}
        assert got == {
            ("channel:update", json.dumps([join_event(ch1, a.sid, profile)], sort_keys=True)),
            ("channel:update", json.dumps([join_event(ch2, a.sid, profile)], sort_keys=True)),
        }
        a.events.clear()
        await b.expect("channel:update", join_event(ch1, a.sid, profile))

        await b.emit("update", {"data": {"name": "Bob"}, "echo": False})
        await a.expect("channel:update", join_event(ch1, b.sid, {"name": "Bob"}))
        await b.sync()
        assert not b.events

        # A profile travels with later joins, leaves and the member list.
        await join(b, ch2, echo=False)
        await a.expect("channel:join", join_event(ch2, b.sid, {"name": "Bob"}))
        assert await a.call("members", {"channel": ch1}) == [
            [{"id": a.sid, "data": profile}, {"id": b.sid, "data": {"name": "Bob"}}]
        ]
        # null clears it
        await a.emit("update", {"data": None, "echo": False})
        await b.expect("channel:update", join_event(ch1, a.sid, None))
        await b.expect("channel:update", join_event(ch2, a.sid, None))


async def test_update_outside_channels_is_stored_silently(hub: HubProcess) -> None:
    ch = unique()
    async with connected(hub) as a, connected(hub) as b:
        assert await a.call("update", {"data": {"v": 1}}) == []
        await a.sync()
        assert not a.events
        await join(b, ch, echo=False)
        await join(a, ch, echo=False)
        await b.expect("channel:join", join_event(ch, a.sid, {"v": 1}))


async def test_members(hub: HubProcess) -> None:
    ch = unique()
    async with connected(hub) as a, connected(hub) as b, connected(hub) as outsider:
        assert await outsider.call("members", {"channel": ch}) == [[]]
        await join(b, ch)
        await join(a, ch)
        await a.emit("update", {"data": {"n": 1}})
        expected = [[{"id": b.sid, "data": None}, {"id": a.sid, "data": {"n": 1}}]]
        assert await outsider.call("members", {"channel": ch}) == expected  # join order
        # without an ack there is nowhere to put the answer: an error event
        await outsider.emit("members", {"channel": ch})
        name, args = await outsider.next_event()
        assert name == "error"
        assert args[0]["event"] == "members"
        assert "acknowledgement" in args[0]["message"]


async def test_disconnect_announces_leave_to_every_channel(hub: HubProcess) -> None:
    ch1, ch2 = unique(), unique()
    async with connected(hub) as a:
        async with connected(hub) as b:
            for ch in (ch1, ch2):
                await join(a, ch, echo=False)
                await join(b, ch, echo=False)
            await b.call("update", {"data": {"name": "Bob"}, "echo": False})
            await a.sync()
            a.events.clear()
            b_sid = b.sid
        got = [await a.next_event(), await a.next_event()]
        assert sorted(got, key=lambda e: e[1][0]["channel"]) == sorted(
            [
                ("channel:leave", [join_event(ch1, b_sid, {"name": "Bob"})]),
                ("channel:leave", [join_event(ch2, b_sid, {"name": "Bob"})]),
            ],
            key=lambda e: e[1][0]["channel"],
        )
        assert await a.call("members", {"channel": ch1}) == [[{"id": a.sid, "data": None}]]


async def test_transport_loss_announces_leave(hub: HubProcess) -> None:
    """A client that vanishes without DISCONNECT (TCP closed) is announced too."""
    ch = unique()
    async with connected(hub) as a:
        b = await WireClient.open(hub.host, hub.port)
        await b.connect()
        await join(a, ch, echo=False)
        await join(b, ch, echo=False)
        await a.expect("channel:join", join_event(ch, b.sid))
        await b.stream.aclose()
        await a.expect("channel:leave", join_event(ch, b.sid))


async def test_order_of_one_senders_messages(hub: HubProcess) -> None:
    ch = unique()
    async with connected(hub) as a, connected(hub) as b:
        await join(b, ch, echo=False)
        for i in range(200):
            await a.emit("message", {"channel": ch, "eventName": "seq", "message": i})
        received = [await b.next_event() for _ in range(200)]
        assert [args[0]["message"] for _, args in received] == list(range(200))
        # interleaved kinds keep their order too
        await a.emit("join", {"channel": ch, "echo": False})
        await a.emit("message", {"channel": ch, "eventName": "after-join", "message": 0})
        await a.emit("update", {"data": {"x": 1}, "echo": False})
        await a.emit("leave", {"channel": ch, "echo": False})
        names = [(await b.next_event())[0] for _ in range(4)]
        assert names == ["channel:join", "after-join", "channel:update", "channel:leave"]


# ------------------------------------------------------------------------------ bad input


BAD_INPUTS: list[tuple[str, list[Any], str]] = [
    ("join", [], "payload must be an object, not null"),
    ("join", [None], "payload must be an object, not null"),
    ("join", [[1, 2]], "payload must be an object, not array"),
    ("join", ["ch"], "payload must be an object, not string"),
    ("join", [{}], "channel is required"),
    ("join", [{"channel": 5}], "channel must be a string, not number"),
    ("join", [{"channel": ""}], "channel must not be empty"),
    ("join", [{"channel": "x" * 65}], "channel name longer than 64 characters"),
    ("join", [{"channel": "x" * 100_000}], "channel name longer than 64 characters"),
    ("join", [{"channel": "ok", "echo": "yes"}], "echo must be a boolean, not string"),
    ("leave", [{"channel": ["a"]}], "channel must be a string, not array"),
    ("leave", [7], "payload must be an object, not number"),
    ("message", [{"channel": "c", "message": 1}], "eventName must be a string, not null"),
    ("message", [{"eventName": "", "message": 1}], "eventName must not be empty"),
    ("message", [{"eventName": "connect"}], "eventName 'connect' is reserved"),
    ("message", [{"eventName": "disconnecting"}], "eventName 'disconnecting' is reserved"),
    ("message", [{"eventName": "error"}], "eventName 'error' is reserved"),
    ("message", [{"eventName": "channel:join"}], "eventName must not start with 'channel:'"),
    ("message", [{"eventName": 3}], "eventName must be a string, not number"),
    ("message", [{"eventName": "e" * 65}], "eventName longer than 64 characters"),
    ("message", [{"channel": {}, "eventName": "e"}], "channel must be a string, not object"),
    ("update", [{}], "data is required (an object, or null to clear the profile)"),
    ("update", [{"data": [1]}], "data must be an object or null, not array"),
    ("update", [{"data": "me"}], "data must be an object or null, not string"),
    ("update", [{"data": {"b": b"\x00"}}], "data must be plain JSON (no binary)"),
    ("members", [{}], "channel is required"),
    ("members", [None], "payload must be an object, not null"),
    ("nonsense", [{"a": 1}], "unknown event 'nonsense'"),
]


@pytest.mark.parametrize(("event", "args", "message"), BAD_INPUTS)
async def test_bad_input_is_refused(
    hub: HubProcess, event: str, args: list[Any], message: str
) -> None:
    async with connected(hub) as client:
        # with an ack: the error is the ack's value
        assert await client.call(event, *args) == [{"error": message}]
        # without: an "error" event to the sender only
        if event != "members":
            await client.emit(event, *args)
            await client.expect("error", {"event": event, "message": message})
        await client.sync()
        assert not client.events


async def test_garbage_frames_do_not_break_the_hub(hub: HubProcess) -> None:
    async with connected(hub) as a:
        b = await WireClient.open(hub.host, hub.port)
        await b.connect()
        for frame in ("42{}", "42[]", '42"join"', "4abc", "42[1,2]", "9", '42["join",{"a"'):
            with anyio.move_on_after(0.05):
                await b.send_frame(frame)
        await b.stream.aclose()
        await a.sync()
    async with connected(hub) as c:
        await c.sync()


async def test_fake_lifecycle_events_are_ignored(hub: HubProcess) -> None:
    """A client emitting "disconnect"/"connect" must not leave its channels."""
    ch = unique()
    async with connected(hub) as a, connected(hub) as b:
        await join(a, ch, echo=False)
        await join(b, ch, echo=False)
        await a.sync()
        a.events.clear()
        await b.emit("disconnect", "io client disconnect")
        await b.emit("connect", {}, {})
        await b.sync()
        await a.sync()
        assert not a.events
        assert await a.call("members", {"channel": ch}) == [
            [{"id": a.sid, "data": None}, {"id": b.sid, "data": None}]
        ]


@pytest.fixture(scope="module")
def small_hub(hub_tmp: Path) -> Iterator[HubProcess]:
    process = HubProcess.start("--max-payload", "2048", tmp=hub_tmp)
    yield process
    assert process.stop() == 0, process.log()


async def test_payload_limit(small_hub: HubProcess) -> None:
    ch = unique()
    async with connected(small_hub) as a, connected(small_hub) as b:
        await join(b, ch, echo=False)
        # Split into frames below the limit by binary attachments, but too big in total.
        parts = [b"x" * 1500, b"y" * 1500]
        args = {"channel": ch, "eventName": "big", "message": parts}
        assert await a.call("message", args) == [{"error": "message larger than 2048 bytes"}]
        # Engine.IO counts characters, the hub counts UTF-8 bytes: 1100 "é" pass the first.
        assert await a.call("update", {"data": {"k": "é" * 1100}}) == [
            {"error": "data larger than 2048 bytes"}
        ]
        assert await a.call("message", {"eventName": "e", "message": "é" * 1100}) == [
            {"error": "message larger than 2048 bytes"}
        ]
        await a.emit("message", {"channel": ch, "eventName": "ok", "message": "v" * 1500})
        await b.expect("ok", {"channel": ch, "message": "v" * 1500})
        # One frame over the engine.io limit: that connection is dropped, the hub lives on.
        await a.emit("message", {"channel": ch, "eventName": "big", "message": "z" * 3000})
        with anyio.fail_after(5), pytest.raises(ConnectionError):
            await a.next_event()
        assert await b.call("members", {"channel": ch}) == [[{"id": b.sid, "data": None}]]


# -------------------------------------------------------------------------------- embedding


async def test_hub_thread_drop_is_a_transport_close() -> None:
    hub_thread = await anyio.to_thread.run_sync(start_hub_in_thread)
    try:
        assert hub_thread.url == f"http://127.0.0.1:{hub_thread.port}"
        ch = unique()
        client = await WireClient.open(hub_thread.host, hub_thread.port)
        await client.connect()
        async with connected(hub_thread) as watcher:
            await join(client, ch, echo=False)
            await join(watcher, ch, echo=False)
            assert set(await anyio.to_thread.run_sync(hub_thread.sids)) == {
                client.sid,
                watcher.sid,
            }
            assert client.sid is not None
            assert await anyio.to_thread.run_sync(hub_thread.drop, client.sid) is True
            assert await client.until_closed() == [("channel:join", [join_event(ch, watcher.sid)])]
            # the WebSocket was closed: no Socket.IO DISCONNECT, no engine.io close packet
            assert client.close_code == 1000
            assert "41" not in client.frames
            assert "1" not in client.frames
            await watcher.expect("channel:leave", join_event(ch, client.sid))
            assert await anyio.to_thread.run_sync(hub_thread.drop, "no-such-sid") is False
        await client.close()
    finally:
        await anyio.to_thread.run_sync(hub_thread.stop)
    assert not hub_thread.running
    hub_thread.stop()  # idempotent


async def test_run_hub_in_a_task_group(anyio_backend: Any) -> None:
    config = HubConfig(port=0)
    if anyio_backend[0] == "trio":
        with pytest.raises(RuntimeError, match="asyncio"):
            await run_hub(config)
        return
    async with anyio.create_task_group() as tg:
        hub: Hub = await tg.start(run_hub, config)
        async with connected(hub) as client:
            await client.sync()
        tg.cancel_scope.cancel()
    assert hub.sids() == []


def test_config_repr_hides_secrets() -> None:
    config = HubConfig(token="tok-123", redis_url="redis://user:pw-456@h:1/0")
    text = repr(config)
    assert "tok-123" not in text
    assert "pw-456" not in text
    assert "redis://user:***@h:1/0" in text
    with pytest.raises(ValueError, match="port"):
        HubConfig(port=70000)
    with pytest.raises(ValueError, match="redis"):
        HubConfig(redis_url="http://x")
