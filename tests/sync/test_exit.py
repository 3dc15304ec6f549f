"""The blocking client and the interpreter's exit, in subprocesses: a client left entered
does not keep the interpreter alive (and is closed cleanly on the way out), and Ctrl-C in a
blocking call ends the program instead of hanging it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from servers.handles import NodeServer

from .conftest import until

ROOT = Path(__file__).resolve().parents[2]

LEFT_ENTERED = """
import sys, threading
import tether.sync

rt = tether.sync.RealtimeClient(sys.argv[1], backend=sys.argv[2])
rt.on("echo", lambda *args: None)
rt.__enter__()  # never left: no `with`, no __exit__
rt.wait_connected(timeout=10)
print(rt.get_socket_id(), flush=True)
# The main thread ends here, with the client's threads still running.
"""

INTERRUPTED = """
import sys
import tether.sync

with tether.sync.RealtimeClient(sys.argv[1], backend=sys.argv[2]) as rt:
    rt.wait_connected(timeout=10)
    print(rt.get_socket_id(), flush=True)
    rt.call("slow-ack", 60, timeout=None)  # Ctrl-C comes while this blocks
"""


def python(script: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        # Development mode: unclosed resources and never-awaited coroutines are reported
        # (a dependency's deprecation is not this test's business).
        [
            sys.executable,
            *("-X", "dev", "-W", "ignore::DeprecationWarning"),
            *("-c", textwrap.dedent(script), *args),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def disconnect_reason(node: NodeServer, sid: str) -> str | None:
    for disconnect in node.control_sync("GET", "state")["disconnects"]:
        if disconnect["sid"] == sid:
            return str(disconnect["reason"])
    return None


def test_a_client_left_entered_does_not_keep_the_interpreter_alive(
    node: NodeServer, backend: str
) -> None:
    proc = python(LEFT_ENTERED, node.url, backend)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    assert err == "", err  # no warning, no "Exception ignored", no traceback
    sid = out.strip()
    # Closed at exit: the server saw the client's DISCONNECT, not a dropped socket.
    until(lambda: disconnect_reason(node, sid) is not None)
    assert disconnect_reason(node, sid) == "client namespace disconnect"


def test_ctrl_c_in_a_blocking_call_ends_the_program(node: NodeServer, backend: str) -> None:
    proc = python(INTERRUPTED, node.url, backend)
    try:
        assert proc.stdout is not None
        sid = proc.stdout.readline().strip()
        assert sid, proc.communicate(timeout=30)
        until(lambda: sid in node.control_sync("GET", "state")["connected"])
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "KeyboardInterrupt" in err, err
    assert proc.returncode != 0
    # Leaving `with` on the way out closed the connection cleanly.
    until(lambda: disconnect_reason(node, sid) is not None)
    assert disconnect_reason(node, sid) == "client namespace disconnect"
