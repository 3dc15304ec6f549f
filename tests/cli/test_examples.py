"""The examples in examples/ run as written (the README points at them)."""

from __future__ import annotations

import os
import subprocess
import sys
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
    assert "Got {'channel': 'technology-chat', 'message': {'text': 'hi'}}" in out
    assert "Members: [" in out
    assert out.rstrip().endswith("Disconnected due to io client disconnect None")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_offline_buffer(backend: str) -> None:
    out = run_example("examples/offline_buffer.py", "--backend", backend)
    assert "writer disconnected: transport close" in out
    assert "buffered while offline: 3" in out
    assert "received, in order: [0, 1, 2, 3, 4, 5]" in out
