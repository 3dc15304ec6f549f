"""``tether connect`` in a real terminal: tmux gives it a pseudo-terminal, keys and a screen.

A pipe cannot show what a user at a terminal meets: input read in canonical mode, Ctrl-C sent
by the terminal as SIGINT to the foreground process group. tmux (Debian's package, installed
by scripts/setup) runs the command; ``send-keys`` types, ``capture-pane`` reads the screen.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: A bound on every wait for the screen; each ends as soon as its text appears.
SCREEN_TIMEOUT = 30.0


class Terminal:
    """One tmux server of our own (its own socket) running one command in one pane."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    def tmux(self, *args: str) -> str:
        # The first call starts the server, whose environment every pane inherits.
        env = dict(os.environ)
        env.pop("PYTHONWARNINGS", None)
        env.setdefault("TERM", "xterm-256color")
        result = subprocess.run(
            ["tmux", "-S", str(self.socket_path), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=SCREEN_TIMEOUT,
            env=env,
        )
        return result.stdout

    def start(self, command: list[str]) -> None:
        # The shell prints the exit status and then keeps the pane open to be read.
        line = f"{shlex.join(command)}; echo EXIT=$?; sleep 600"
        self.tmux("new-session", "-d", "-x", "200", "-y", "50", "-c", str(ROOT), line)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "0", *keys)

    def screen(self) -> str:
        # -J joins wrapped lines; -S - starts at the beginning of the history.
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "0")

    def wait_for(self, done: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + SCREEN_TIMEOUT
        while True:
            screen = self.screen()
            if done(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed {what}:\n{screen}")
            time.sleep(0.05)

    def wait_for_text(self, text: str) -> str:
        return self.wait_for(lambda screen: text in screen, repr(text))


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    assert shutil.which("tmux"), "tmux is missing: bash scripts/setup installs it"
    # mkdtemp, not tmp_path: a Unix socket's path is limited to about 100 bytes.
    socket_dir = Path(tempfile.mkdtemp(prefix="tether-tmux-"))
    term = Terminal(socket_dir / "tmux")
    try:
        yield term
    finally:
        subprocess.run(
            ["tmux", "-S", str(term.socket_path), "kill-server"],
            capture_output=True,
            check=False,
            timeout=SCREEN_TIMEOUT,
        )
        shutil.rmtree(socket_dir, ignore_errors=True)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_ctrl_c_closes_and_exits_130_without_waiting_for_enter(
    terminal: Terminal, backend: str
) -> None:
    terminal.start([sys.executable, "-m", "tether", "connect", "--backend", backend])
    terminal.wait_for_text("connected, socket id")
    terminal.keys("profile notjson", "Enter")
    terminal.wait_for_text('error: profile: not JSON (column 1): "notjson"')
    terminal.keys("send lobby", "Enter")
    terminal.wait_for_text("error: usage: send CH EVENT JSON")

    terminal.keys("C-c")  # once, and no Enter after it
    screen = terminal.wait_for(lambda s: "EXIT=" in s, "the exit status")
    assert "EXIT=130" in screen, screen
    assert "disconnected: io client disconnect" in screen
    assert "Traceback" not in screen
    assert "KeyboardInterrupt" not in screen


def test_end_of_input_quits(terminal: Terminal) -> None:
    terminal.start([sys.executable, "-m", "tether", "connect"])
    terminal.wait_for_text("connected, socket id")
    terminal.keys("C-d")  # end of input at the start of a line
    screen = terminal.wait_for(lambda s: "EXIT=" in s, "the exit status")
    assert "EXIT=0" in screen, screen
