"""Processes the runner starts: the Node server and the client benches, all bounded in time.

Every process started here stops by itself: the Node server exits when its stdin pipe closes
(that is, when the runner goes away, however it goes) or after ``--max-lifetime``; a client
bench has a SIGALRM watchdog. On top of that the runner kills whatever it started, by pid,
when a deadline passes or when it leaves.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
SERVER_DIR = Path(__file__).resolve().parent / "server"
SERVER_JS = SERVER_DIR / "server.js"


class BenchError(RuntimeError):
    """A bench failed or overran; the message says which and why (with stderr's tail)."""


class LineReader:
    """Read lines from a pipe with a deadline (no thread, no blocking readline)."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._fd = pipe.fileno()
        os.set_blocking(self._fd, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._buffer = b""
        self.eof = False

    def readline(self, deadline: float) -> str | None:
        """The next line without its newline; None at EOF or when the deadline passes."""
        while b"\n" not in self._buffer:
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                return None
            chunk = os.read(self._fd, 65536)
            if not chunk:
                self.eof = True
                continue
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def close(self) -> None:
        self._selector.close()


class Started:
    """Registry of every process the runner started, so that leaving kills what remains."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        self.procs.append(proc)

    def stop_all(self) -> None:
        for proc in self.procs:
            stop_process(proc, grace=0.5)
        self.procs.clear()


STARTED = Started()


def run_main(main: Callable[[], int]) -> NoReturn:
    """Run a bench's entry point: SIGTERM ends it through its ``finally`` blocks (so what it
    started is stopped), and every process it started is stopped when it returns."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    finally:
        STARTED.stop_all()


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """Close its stdin, wait a little, then SIGKILL it (by its pid) and reap it."""
    if proc.poll() is None and proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class NodeServer:
    """benchmarks/server/server.js on a loopback port (0: any free one)."""

    def __init__(self, port: int = 0, max_lifetime: float = 900.0) -> None:
        self.port = port
        self.max_lifetime = max_lifetime
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()/finish()
            prefix="tether-bench-node-", suffix=".log", delete=False
        )

    def start(self, timeout: float = 15.0, *, deferred: bool = False) -> NodeServer:
        """Start it; with ``deferred`` it loads but listens only on :meth:`listen`."""
        cmd = ["node", str(SERVER_JS), "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--max-lifetime", str(int(self.max_lifetime))]
        if deferred:
            cmd.append("--deferred")
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, cwd=SERVER_DIR
        )
        STARTED.add(proc)
        self.proc = proc
        assert proc.stdout is not None
        self._reader = LineReader(proc.stdout)
        if deferred:
            self._expect("loaded", timeout)
            return self
        return self._listening(timeout)

    def listen(self, timeout: float = 15.0) -> NodeServer:
        """Tell a deferred server to listen now, and wait until it does."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"listen\n")
        self.proc.stdin.flush()
        return self._listening(timeout)

    def _expect(self, prefix: str, timeout: float) -> str:
        assert self.proc is not None
        line = self._reader.readline(time.monotonic() + timeout)
        if not line or not line.startswith(prefix):
            stop_process(self.proc)
            raise BenchError(f"the Node server did not start: {line!r} {_tail(self._log.name)}")
        return line

    def _listening(self, timeout: float) -> NodeServer:
        line = self._expect("listening on ", timeout)
        self.url = line.removeprefix("listening on ").strip()
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def kill(self) -> None:
        """SIGKILL, as a crash or an abrupt restart: the kernel closes every connection."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None:
            self._reader.close()
            stop_process(self.proc)
            self.proc = None
        if not self._log.closed:
            self._log.close()
            os.unlink(self._log.name)


#: This checkout's tether, imported by the clients ahead of the venv's install (an editable
#: install may point at another worktree, whose files can be in the middle of a change).
SRC = ROOT / "src"


def client_env(python_path: str | None = None) -> dict[str, str]:
    """The environment of a client process: the benchmarks importable, and tether imported
    from ``python_path`` if given (another checkout's ``src``), else from this checkout's."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), python_path or str(SRC), env.get("PYTHONPATH", "")])
    )
    env.pop("PYTHONASYNCIODEBUG", None)
    env["PYTHONHASHSEED"] = "0"
    return env


class ClientRun:
    """One bench in a fresh Python subprocess; ``RESULT``/``READY`` lines on its stdout."""

    def __init__(
        self,
        module_args: list[str],
        bench_args: list[str],
        timeout: float,
        *,
        python_path: str | None = None,
    ) -> None:
        self.timeout = timeout
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()/finish()
            prefix="tether-bench-client-", suffix=".log", delete=False
        )
        cmd = [sys.executable, *module_args, *bench_args, "--timeout", str(timeout)]
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
            env=client_env(python_path),
        )
        STARTED.add(self.proc)
        assert self.proc.stdout is not None
        self._reader = LineReader(self.proc.stdout)
        self.deadline = time.monotonic() + timeout + 15.0

    def wait_for(self, tag: str) -> dict[str, Any]:
        while True:
            line = self._reader.readline(self.deadline)
            if line is None:
                what = "timed out" if time.monotonic() >= self.deadline else "ended"
                if what == "ended":
                    self.deadline = min(self.deadline, time.monotonic() + 5)
                stderr = _tail(self._log.name)
                self.finish()
                raise BenchError(
                    f"{' '.join(self.cmd[1:])}: {what} before {tag}; stderr:\n{stderr}"
                )
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1 :])  # type: ignore[no-any-return]

    def finish(self, *, wait: bool = True) -> None:
        """Let it exit by itself (bounded) after its result, or, with ``wait=False``, kill it."""
        if self.proc.stdout is None or self.proc.stdout.closed:
            return
        if wait:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(max(0.1, min(30.0, self.deadline - time.monotonic())))
        self._reader.close()
        stop_process(self.proc)
        self._log.close()
        os.unlink(self._log.name)
