"""mypy checks a listener's shape at the line that registers it (contract 2.9, 1: typed).

A small program of correct and incorrect uses, for the async and the blocking client, goes
through ``mypy --strict`` (its API, in this process, with the project's configuration and
cache): every line marked ``# error`` must get an error, and no other line may. mypy sets
the interpreter's recursion limit and garbage collector thresholds for itself; they are put
back afterwards, so that the tests after this one run as they would alone.
"""

from __future__ import annotations

import gc
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mypy import api as mypy_api

ROOT = Path(__file__).resolve().parents[2]

USES = """
from __future__ import annotations

import tether
import tether.sync


def check(rt: tether.RealtimeClient, srt: tether.sync.RealtimeClient) -> None:
    for client in (rt, srt):
        client.on_connect(lambda: None)
        client.on_disconnect(lambda reason: None)
        client.on_error(lambda error: print(error.data))
        client.on_reconnect_attempt(lambda attempt: None)
        client.on_reconnect(lambda attempt: None)
        client.on_reconnect_failed(lambda: None)
        client.on_state_change(lambda change: print(change.retry_in))
        client.on_buffer_overflow(lambda dropped: print(dropped.reason))
        client.on_join(lambda payload: None)
        client.on_user_event(lambda name, session: None)
        client.on("chat", lambda *args: None)
        client.on_any(lambda event, *args: None)

    rt.on_disconnect(lambda: None)  # error
    srt.on_disconnect(lambda: None)  # error
    rt.on_connect(lambda reason: None)  # error
    rt.on_reconnect_failed(lambda n: None)  # error
    rt.on_user_event(lambda name: None)  # error
    rt.on_join(lambda: None)  # error

    @rt.on_disconnect
    def on_disconnect(reason: str) -> None: ...

    @rt.on_disconnect
    async def on_disconnect_async(reason: str) -> None: ...

    @rt.on_disconnect  # error
    def wrong_reason(reason: int) -> None: ...

    @rt.on_error
    def on_error(error: tether.ConnectError) -> None: ...

    @srt.on_error  # error
    def wrong_error(error: str) -> None: ...

    @rt.on_state_change
    def on_change(change: tether.StateChanged) -> None: ...

    @rt.on_reconnect_attempt  # error
    def wrong_attempt(change: tether.StateChanged) -> None: ...

    @rt.on("chat")
    def on_chat(payload: dict[str, object]) -> None: ...

    # A decorated listener keeps its own type.
    on_disconnect("transport close")
    on_disconnect(1)  # error
    on_chat({"text": "hi"})
"""


@contextmanager
def interpreter_settings_kept() -> Iterator[None]:
    recursion_limit = sys.getrecursionlimit()
    thresholds = gc.get_threshold()
    enabled = gc.isenabled()
    try:
        yield
    finally:
        sys.setrecursionlimit(recursion_limit)
        gc.set_threshold(*thresholds)
        (gc.enable if enabled else gc.disable)()


def test_mypy_checks_the_shape_of_every_listener(tmp_path: Path) -> None:
    program = tmp_path / "listener_uses.py"
    program.write_text(USES)
    with interpreter_settings_kept():
        stdout, stderr, status = mypy_api.run(
            [
                "--config-file",
                str(ROOT / "pyproject.toml"),
                "--strict",
                "--no-error-summary",
                "--hide-error-context",
                str(program),
            ]
        )
    assert status in (0, 1), stderr
    lines = USES.splitlines()
    expected = {number for number, line in enumerate(lines, start=1) if line.endswith("# error")}
    found: dict[int, list[str]] = {}
    for line in stdout.splitlines():
        # By file name: mypy's cache may report a file of the same content by its first path.
        match = re.match(r".*listener_uses\.py:(\d+): error: (.*)", line)
        assert match is not None or ": note:" in line, line
        if match is not None:
            found.setdefault(int(match[1]), []).append(match[2])
    assert set(found) == expected, stdout
    for number in expected:
        assert any("type-var" in error or "arg-type" in error for error in found[number]), (
            lines[number - 1],
            found[number],
        )


@pytest.mark.parametrize("client", ["tether.RealtimeClient", "tether.sync.RealtimeClient"])
def test_the_listener_types_are_in_the_signatures(client: str) -> None:
    import tether.sync

    cls = tether.RealtimeClient if client == "tether.RealtimeClient" else tether.sync.RealtimeClient
    annotation = cls.on_disconnect.__annotations__["fn"]
    assert annotation == "DisconnectListener"
