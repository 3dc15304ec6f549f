"""The hub's memory under abuse: peak RSS of a ``tether serve`` process (not a test).

Two scenarios, each run against a hub with its default bounds and against one whose bound is
lifted (what the hub did before it had one), on 127.0.0.1 only:

* ``flood``: a member joins a channel and stops reading (raw WebSocket, never read again)
  while another member floods that channel for ``--seconds`` with ``--message-bytes``
  messages. With the send-queue bound the hub disconnects the reader that does not read.
* ``joins``: one client joins ``--joins`` channels (python-socketio ``AsyncClient``). With
  the per-client channel limit the hub refuses the joins past it.

Prints one line per run: peak RSS (``VmHWM``), RSS at the start and at the end, and what
happened. Usage::

    python -m benchmarks.hub_abuse [--seconds 20] [--message-bytes 1000] [--joins 100000]
                                   [--only flood,joins]

Figures and the command that produced them: benchmarks/README.md, "Hub under abuse".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import socketio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

ROOT = Path(__file__).resolve().parent.parent
#: Every run stops by itself: a watchdog kills this process if it hangs.
WATCHDOG_SECONDS = 600
UNBOUNDED_QUEUE: tuple[str, ...] = (
    "--max-send-queue",
    "1000000000",
    "--max-send-queue-bytes",
    str(10**13),
)
UNBOUNDED_JOINS: tuple[str, ...] = ("--max-channels-per-client", "100000000")
DEFAULTS: tuple[str, ...] = ()


def status_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` field in KiB (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


@dataclass
class HubProc:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def rss_mb(self) -> float:
        return status_kib(self.proc.pid, "VmRSS") / 1024

    def peak_mb(self) -> float:
        return status_kib(self.proc.pid, "VmHWM") / 1024


@contextlib.contextmanager
def hub_process(*args: str) -> Any:
    with tempfile.TemporaryDirectory(prefix="tether-abuse-") as tmp:
        log = Path(tmp) / "hub.log"
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
        with log.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tether", "serve", "--port", "0", *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd=ROOT,
            )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            if not line.startswith("listening on "):
                raise RuntimeError(f"hub did not start: {line!r}\n{log.read_text()}")
            yield HubProc(proc, int(line.rsplit(":", 1)[1]), log)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@contextlib.asynccontextmanager
async def non_reader(port: int, channel: str) -> AsyncIterator[dict[str, Any]]:
    """A member that joins ``channel`` and then never reads again; yields its state."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ws = WSConnection(ConnectionType.CLIENT)
    writer.write(ws.send(Request(host="x", target="/socket.io/?EIO=4&transport=websocket")))
    state: dict[str, Any] = {"sid": None}
    pending = b""

    async def until(predicate: Any) -> None:
        nonlocal pending
        while True:
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    continue
                if isinstance(event, TextMessage):
                    if event.data.startswith("40"):
                        state["sid"] = json.loads(event.data[2:])["sid"]
                    if predicate(event.data):
                        return
            pending = await asyncio.wait_for(reader.read(65536), 10)
            if not pending:
                raise ConnectionError("hub closed the connection during set-up")
            ws.receive_data(pending)

    await until(lambda text: text.startswith("0"))
    writer.write(ws.send(TextMessage(data="40")))
    await until(lambda text: text.startswith("40"))
    join = json.dumps(["join", {"channel": channel, "echo": False}])
    writer.write(ws.send(TextMessage(data=f"420{join}")))
    await until(lambda text: text.startswith("430"))
    try:
        yield state  # from here on, nothing is read: the TCP window closes
    finally:
        writer.transport.abort()


async def flood(hub: HubProc, seconds: float, message_bytes: int) -> dict[str, Any]:
    flooder = socketio.AsyncClient(reconnection=False)
    await flooder.connect(f"http://127.0.0.1:{hub.port}", transports=["websocket"])
    sent = 0
    start_rss = hub.rss_mb()
    async with non_reader(hub.port, "flood") as slow:
        body = {"channel": "flood", "eventName": "blob", "message": "x" * message_bytes}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for _ in range(100):
                await flooder.emit("message", body)
            sent += 100
            await flooder.call("members", {"channel": "flood"}, timeout=30)  # pace: drained
        cut_off = f"disconnecting {slow['sid']}" in hub.log.read_text()
        end_rss = hub.rss_mb()
    await flooder.disconnect()
    return {
        "sent": sent,
        "start_mb": start_rss,
        "end_mb": end_rss,
        "peak_mb": hub.peak_mb(),
        "non-reader disconnected": cut_off,
    }


async def joins(hub: HubProc, count: int) -> dict[str, Any]:
    client = socketio.AsyncClient(reconnection=False)
    refused = 0

    def on_error(payload: Any) -> None:
        nonlocal refused
        refused += 1

    client.on("error", on_error)
    await client.connect(f"http://127.0.0.1:{hub.port}", transports=["websocket"])
    start_rss = hub.rss_mb()
    began = time.monotonic()
    for n in range(count):
        await client.emit("join", {"channel": f"c{n}", "echo": False})
        if n % 1000 == 999:
            await client.call("members", {"channel": "c0"}, timeout=60)
    await client.call("members", {"channel": "c0"}, timeout=60)
    took = time.monotonic() - began
    end_rss = hub.rss_mb()
    await client.disconnect()
    return {
        "joins": count,
        "refused": refused,
        "seconds": round(took, 1),
        "start_mb": start_rss,
        "end_mb": end_rss,
        "peak_mb": hub.peak_mb(),
    }


def show(name: str, result: dict[str, Any]) -> None:
    parts = [
        f"{key}={value:.0f}" if isinstance(value, float) else f"{key}={value}"
        for key, value in result.items()
    ]
    print(f"{name:<26} " + "  ".join(parts), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--message-bytes", type=int, default=1000)
    parser.add_argument("--joins", type=int, default=100_000)
    parser.add_argument("--only", default="flood,joins")
    args = parser.parse_args(argv)
    signal.alarm(WATCHDOG_SECONDS)
    only = set(args.only.split(","))
    if "flood" in only:
        for label, extra in (
            ("flood, bounded (defaults)", DEFAULTS),
            ("flood, unbounded", UNBOUNDED_QUEUE),
        ):
            with hub_process(*extra) as hub:
                show(label, asyncio.run(flood(hub, args.seconds, args.message_bytes)))
    if "joins" in only:
        for label, extra in (
            ("joins, bounded (defaults)", DEFAULTS),
            ("joins, unbounded", UNBOUNDED_JOINS),
        ):
            with hub_process(*extra) as hub:
                show(label, asyncio.run(joins(hub, args.joins)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
