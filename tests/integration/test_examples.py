"""examples/socketio_server.py against the real Node and python-socketio servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from servers.handles import SocketIOServer

ROOT = Path(__file__).resolve().parents[2]


def test_socketio_example(sio_server: SocketIOServer) -> None:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    result = subprocess.run(
        [sys.executable, "examples/socketio_server.py", sio_server.url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "server echoed echo ('hello', {'n': 1}, b'\\x00\\x01 raw bytes')" in result.stdout
    assert "ack: ('ping', 42)" in result.stdout
    assert "no-ack timed out, as it should" in result.stdout
