"""The command line, as a user runs it: real processes, an embedded hub, real sockets."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import tether
from tether.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def tether_cli(
    *args: str, stdin: str = "", timeout: float = 60, python: tuple[str, ...] = ("-m", "tether")
) -> subprocess.CompletedProcess[str]:
    """Run the command line in a fresh interpreter (``python`` replaces ``-m tether``)."""
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, *python, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_help_lists_every_command() -> None:
    result = tether_cli("--help")
    assert result.returncode == 0
    for command in ("serve", "connect", "demo"):
        assert command in result.stdout
    for command in ("serve", "connect", "demo"):
        sub = tether_cli(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "usage: tether " + command in sub.stdout


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_shows_the_whole_lifecycle_and_passes(backend: str) -> None:
    result = tether_cli("demo", "--backend", backend)
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
    result = tether_cli("connect", "--join", "lobby", "--backend", backend, stdin=commands + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "connected, socket id" in out
    # The hub's stream position rides along (specs/delivery.md §4.3).
    assert '<- chat [{"channel": "news", "message": {"text": "hello"}, "pos": "m:' in out
    assert '<- ping [{"channel": null, "message": {"n": 1}, "pos": "m:' in out
    assert "members of news:" in out and '"name": "cli"' in out
    assert "<- channel:leave" in out
    assert "unknown command 'frobnicate'" in out
    assert "error: usage: send CH EVENT JSON" in out
    assert "disconnected: io client disconnect" in out


def test_connect_refuses_bad_auth_json() -> None:
    result = tether_cli("connect", "http://127.0.0.1:9", "--auth", "[1, 2]")
    assert result.returncode == 2
    assert "--auth must be a JSON object" in result.stderr


def test_version() -> None:
    result = tether_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"tether {tether.__version__}\n"


def _subcommands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_option_says_what_it_does() -> None:
    commands = dict(_subcommands())
    assert set(commands) == {"serve", "connect", "demo"}
    for name, parser in commands.items():
        for action in parser._actions:
            assert action.help, f"tether {name} {action.option_strings or action.dest}: no help"
            if action.default not in (None, [], argparse.SUPPRESS, False) and action.option_strings:
                # The default is in the help text, as written or as argparse's %(default)s.
                shown = action.help % {"default": action.default, "prog": name}
                assert str(action.default).rstrip("0").rstrip(".") in shown, (name, action.dest)


def test_serve_help_shows_the_port_default() -> None:
    result = tether_cli("serve", "--help")
    assert "(default 8765)" in " ".join(result.stdout.split())


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback port that refuses connections: bound, never listening, held by the test."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_connect_offline_says_what_is_queued_and_what_needs_a_connection(
    backend: str, refused_url: str
) -> None:
    commands = [
        "join news",
        'send news chat {"text": "later"}',
        "broadcast ping 1",
        'profile {"name": "cli"}',
        "members news",
        "profile notjson",
        "send lobby",
        "close",
        "join after-close",
        "quit",
    ]
    result = tether_cli(
        "connect", refused_url, "--backend", backend, stdin="\n".join(commands) + "\n"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    said = [line.split(" tether ", 1)[1] for line in lines if " tether " in line]
    queued = [text for text in said if ": queued (" in text]
    verbs = [text.split(":")[0] for text in queued]
    assert verbs == ["join", "send", "broadcast", "profile", "join"]
    assert all(text.endswith("sent once connected") for text in queued[:4]), queued
    assert queued[4] == "join: queued (closed), sent after 'open'"
    assert "error: members needs a connection (state: " in result.stdout
    # One line that says what is wrong, not the JSON decoder's message alone.
    assert any(
        text.startswith('error: profile: not JSON (column 1): "notjson"; usage: profile JSON')
        for text in said
    ), said
    assert "error: usage: send CH EVENT JSON" in said
    assert "Traceback" not in result.stdout + result.stderr


HIDE_TRIO = "import sys; sys.modules['trio'] = None; from tether.cli import main; sys.exit(main())"


@pytest.mark.parametrize("command", ["demo", "connect"])
def test_backend_trio_without_trio_says_how_to_install_it(command: str) -> None:
    # sys.modules["trio"] = None makes `import trio` fail as if trio were not installed.
    result = tether_cli(command, "--backend", "trio", python=("-c", HIDE_TRIO))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"tether {command}: --backend trio needs trio: pip install 'tether[trio]'\n"
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_connect_exits_143_on_sigterm_while_waiting_for_input(backend: str) -> None:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    command = [sys.executable, "-m", "tether", "connect", "--backend", backend]
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE,  # open and silent: the client waits for a command
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    ) as proc:
        watchdog = threading.Timer(60, proc.kill)  # a hang fails the test instead of the run
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "connected, socket id" in line:
                    break
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate()
        finally:
            watchdog.cancel()
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    assert "disconnected: io client disconnect" in out
    assert err == ""
