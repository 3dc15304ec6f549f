"""What the client logs (``specs/client.md`` "Logging"): a connect, a drop, each reconnect
attempt with its delay and a close, on the ``tether`` logger, with reasons and no secrets;
and nothing from third parties at INFO for one connect and close."""

from __future__ import annotations

import json
import logging
import re
import socket
from typing import Any

import pytest

import tether
from tether.transport import MemoryConnector

from .helpers import ScriptedServer, wait_until

pytestmark = pytest.mark.anyio

SECRETS = ("t0ken-s3cret", "h3ader-s3cret", "qu3ry-s3cret", "pr0xy-s3cret")


def lines(
    caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG
) -> list[tuple[str, int, str]]:
    return [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= level]


async def test_connect_drop_reconnect_and_close_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    caplog.set_level(logging.DEBUG)  # everything, from every logger
    async with tether.RealtimeClient(
        "http://example.test/?token=qu3ry-s3cret",
        transport=connector,
        auth={"token": "t0ken-s3cret"},
        headers={"x-api-key": "h3ader-s3cret"},
        reconnection_delay=0.01,
        reconnection_delay_max=0.02,
    ) as rt:
        peer, _ = await server.accept(sid="S1")
        await rt.wait_connected(5)
        peer.close()  # a drop
        connector.fail_next()  # the first reconnect attempt fails
        await server.accept(sid="S2")
        await wait_until(rt.is_connected)
    info = [(name, message) for name, _, message in lines(caplog, logging.INFO)]
    assert {name for name, _ in info} == {"tether"}, info  # no transitions, nothing else
    messages = [message for _, message in info]
    where = "http://example.test/"
    assert messages[0] == f"tether: connected to {where} (sid S1, websocket)"
    assert messages[1] == f"tether: disconnected from {where}: transport close"
    assert re.fullmatch(
        rf"tether: reconnecting to {re.escape(where)} in 0\.0\d s \(attempt 1\): transport close",
        messages[2],
    ), messages[2]
    assert messages[3].startswith("tether: attempt failed: connection refused")
    assert re.fullmatch(
        rf"tether: reconnecting to {re.escape(where)} in 0\.0\d s \(attempt 2\): .*", messages[4]
    ), messages[4]
    assert messages[5:] == [
        f"tether: connected to {where} (sid S2, websocket)",
        f"tether: disconnected from {where}: io client disconnect",
        "tether: closed: io client disconnect",
    ]
    debug = [message for name, level, message in lines(caplog) if level == logging.DEBUG]
    assert f"tether: attempt 0 (transport 1): connecting to {where}" in debug
    assert "tether: connected -> reconnecting (transport close)" in debug
    assert "tether: reconnect attempt 1 starts" in debug
    assert "tether: reconnect attempt 2 succeeded" in debug
    everything = caplog.text + " ".join(message for _, _, message in lines(caplog))
    for secret in SECRETS:
        assert secret not in everything


async def test_a_refusal_and_exhausted_attempts_are_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    caplog.set_level(logging.INFO)
    async with tether.RealtimeClient("http://example.test", transport=connector) as rt:
        peer, _ = await server.accept(reply=False)
        await peer.send('44{"message":"unauthorized","data":{"token":"t0ken-s3cret"}}')
        with pytest.raises(tether.ConnectError):
            await rt.wait_connected(5)
    connector = MemoryConnector()
    connector.fail_next(2)
    async with tether.RealtimeClient(
        "http://example.test",
        transport=connector,
        reconnection_attempts=1,
        reconnection_delay=0.01,
    ) as rt:
        with pytest.raises(tether.ConnectError):
            await rt.wait_connected(5)
    warnings = [message for _, level, message in lines(caplog) if level == logging.WARNING]
    assert warnings == [
        "tether: http://example.test refused the connection: unauthorized",
        "tether: the reconnect attempts to http://example.test are exhausted; "
        "the client stays closed",
    ]
    assert "t0ken-s3cret" not in caplog.text  # the server's data is not logged


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("transports", [("websocket",), ("polling",)])
async def test_failed_attempts_through_a_proxy_log_no_secret(
    caplog: pytest.LogCaptureFixture, transports: Any
) -> None:
    # The real transports, against a proxy port nobody listens on: every attempt fails.
    caplog.set_level(logging.DEBUG)
    async with tether.RealtimeClient(
        f"http://127.0.0.1:{closed_port()}/?token=qu3ry-s3cret",
        auth={"token": "t0ken-s3cret"},
        headers={"x-api-key": "h3ader-s3cret"},
        query={"key": "qu3ry-s3cret"},
        proxy=f"http://user:pr0xy-s3cret@127.0.0.1:{closed_port()}",
        transports=transports,
        reconnection_attempts=1,
        reconnection_delay=0.01,
    ) as rt:
        with pytest.raises(tether.ConnectError):
            await rt.wait_connected(10)
    messages = [message for _, _, message in lines(caplog)]
    assert any(message.startswith("tether: attempt failed") for message in messages), messages
    everything = caplog.text + " ".join(messages)
    for secret in SECRETS:
        assert secret not in everything
    assert "user:" not in everything


async def test_tether_configures_no_logger(caplog: pytest.LogCaptureFixture) -> None:
    # Importing and using the client adds no handler and sets no level anywhere: that is
    # the application's to do.
    before = {
        name: (logger.level, list(logger.handlers))
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and name.startswith(("tether", "transitions"))
    }
    root = (logging.getLogger().level, list(logging.getLogger().handlers))
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    async with tether.RealtimeClient("http://example.test", transport=connector) as rt:
        await server.accept()
        await rt.wait_connected(5)
    after = {
        name: (logger.level, list(logger.handlers))
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and name in before
    }
    assert after == before
    assert (logging.getLogger().level, list(logging.getLogger().handlers)) == root


async def test_a_resumed_hub_stream_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    # The hub's continuity answers (specs/delivery.md §4), played by a scripted server: the
    # first join learns the channel's position; the re-joins after each drop offer it back.
    connector = MemoryConnector()
    server = ScriptedServer(connector)
    caplog.set_level(logging.DEBUG, logger="tether")

    async def answer_join(peer: Any, answer: dict[str, Any]) -> None:
        frame = str(await peer.receive())
        match = re.fullmatch(r'42(\d+)\["join",.*\]', frame)
        assert match is not None, frame
        await peer.send(f"43{match[1]}[{json.dumps(answer)}]")

    async with tether.RealtimeClient(
        "http://example.test", transport=connector, reconnection_delay=0.01
    ) as rt:
        rt.join("room")
        peer, _ = await server.accept()
        await answer_join(peer, {"pos": "p1"})
        peer.close()
        peer, _ = await server.accept()
        await answer_join(peer, {"pos": "p4", "resumed": True, "replayed": 2, "reason": None})
        peer.close()
        peer, _ = await server.accept()
        missed = {"pos": "p9", "resumed": False, "replayed": 0, "reason": "history trimmed"}
        await answer_join(peer, missed)
        await wait_until(lambda: "messages missed" in caplog.text)
    resumes = [(level, message) for _, level, message in lines(caplog) if "resumed" in message]
    assert resumes == [
        (logging.DEBUG, "tether: channel 'room' resumed (2 replayed)"),
        (logging.INFO, "tether: channel 'room' resumed with messages missed: history trimmed"),
    ]
