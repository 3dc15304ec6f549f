"""The command line, as a user runs it: real processes, an embedded hub, real sockets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tether(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, "-m", "tether", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_help_lists_every_command() -> None:
    result = tether("--help")
    assert result.returncode == 0
    for command in ("serve", "connect", "demo"):
        assert command in result.stdout
    for command in ("serve", "connect", "demo"):
        sub = tether(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "usage: tether " + command in sub.stdout


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_shows_the_whole_lifecycle_and_passes(backend: str) -> None:
    result = tether("demo", "--backend", backend)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # Everything the issue asks the demo to show, in order.
    milestones = [
        "alice saw bob join the channel",
        "alice received bob's message",
        "disconnected: transport close",
        "reconnect attempt #1",
        "reconnected after",
        "bob re-joined the channel by himself",
        "the offline messages arrived, in order",
        "disconnected: io client disconnect",
        "bob stayed closed: no reconnect after close()",
        "all checks passed",
    ]
    positions = [out.find(text) for text in milestones]
    assert all(p >= 0 for p in positions), (milestones, positions, out)
    assert positions == sorted(positions), out
    assert "FAIL" not in out


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_connect_runs_the_typed_commands_on_an_embedded_hub(backend: str) -> None:
    commands = "\n".join(
        [
            'profile {"name": "cli"}',
            "join news",
            'send news chat {"text": "hello"}',
            'broadcast ping {"n": 1}',
            "members news",  # a round trip: what was sent before it has come back
            "leave news",
            "members lobby",  # the same, for the leave's echo
            "frobnicate",
            "send news",
            "close",
            "quit",
        ]
    )
    result = tether("connect", "--join", "lobby", "--backend", backend, stdin=commands + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "connected, socket id" in out
    assert '<- chat [{"channel": "news", "message": {"text": "hello"}}]' in out
    assert '<- ping [{"channel": null, "message": {"n": 1}}]' in out
    assert "members of news:" in out and '"name": "cli"' in out
    assert "<- channel:leave" in out
    assert "unknown command 'frobnicate'" in out
    assert "error: expected 3 arguments" in out
    assert "disconnected: io client disconnect" in out


def test_connect_refuses_bad_auth_json() -> None:
    result = tether("connect", "http://127.0.0.1:9", "--auth", "[1, 2]")
    assert result.returncode == 2
    assert "--auth must be a JSON object" in result.stderr
