"""The examples in examples/ run as written (the README points at them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_example(*args: str) -> str:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_quickstart(backend: str) -> None:
    out = run_example("examples/quickstart.py", "--backend", backend)
    assert out.startswith("Connected\n")
    assert "Got {'text': 'hi'} in technology-chat" in out
    assert "Members: [" in out
    assert out.rstrip().endswith("Disconnected due to io client disconnect None")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_offline_buffer(backend: str) -> None:
    out = run_example("examples/offline_buffer.py", "--backend", backend)
    assert "writer disconnected: transport close" in out
    assert "buffered while offline: 3" in out
    assert "received, in order: [0, 1, 2, 3, 4, 5]" in out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_run_until_stopped(backend: str, signum: signal.Signals) -> None:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    command = [sys.executable, "examples/run_until_stopped.py", "--backend", backend]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    ) as proc:
        watchdog = threading.Timer(60, proc.kill)  # a hang fails the test instead of the run
        watchdog.start()
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("connected "), first + proc.communicate()[1]
            proc.send_signal(signum)
            out, err = proc.communicate()
        finally:
            watchdog.cancel()
    assert proc.returncode == 0, out + err
    assert out.splitlines() == [
        f"stopping on {signum.name}",
        "disconnected: io client disconnect",
        "closed",
    ], out + err
