"""The client's memory under abuse: peak RSS of a process running one ``RealtimeClient`` (not a
test).

Each run starts a fresh child process that runs the client alone (so its ``VmHWM`` is the
client's), against the garbage server of the tests (``tests/servers/garbage.py``, in this
process, on 127.0.0.1), once with the client's bounds as they are and once with them lifted
(what the client did before it had them):

* ``outbox``: the server answers the CONNECT, then never reads again (it keeps pinging); the
  client emits ``--messages`` messages of ``--message-bytes``, yielding every 100. The bound
  is the core's, on what waits to be written while connected (``max_buffered`` and
  ``max_buffered_bytes``, ``specs/bounds.md``): past it ``emit`` raises ``BufferFull``.
  Lifted: ``max_buffered=10**9, max_buffered_bytes=10**13``.
* ``flood``: the server sends ``--events`` events of ``--event-bytes`` as fast as the socket
  takes them to a listener that does not return until the run ends. The bound is the
  dispatch backlog's (``tether._driver._session.DISPATCH_BACKLOG_LIMIT`` and ``_BYTES``):
  past it the client drops the connection ("listeners fell behind"). Lifted: both set to
  10**13 in the child.
* ``flood-small``: the same with ``--small-events`` events of 10 bytes (the count bound).

Prints one line per run: RSS once connected, peak RSS (``VmHWM``), RSS at the end, and what
happened. Usage::

    python -m benchmarks.client_abuse [--messages 60000] [--message-bytes 10000]
        [--events 30000] [--event-bytes 10000] [--small-events 150000]
        [--only outbox,flood,flood-small]

Figures and the command that produced them: benchmarks/README.md, "Client under abuse".
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Every run stops by itself: a watchdog kills the child (and this process) if it hangs.
WATCHDOG_SECONDS = 600
CHILD_SECONDS = 240
#: The most a flood run waits for the bound to trip or every event to arrive.
FLOOD_SECONDS = 120.0
UNBOUNDED = 10**13


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def mb(field: str) -> float:
    return status_kib(field) / 1024


# --------------------------------------------------------------------------- the child


async def outbox_child(url: str, bounded: bool, messages: int, size: int) -> dict[str, Any]:
    import anyio

    import tether

    limits: dict[str, Any] = {}
    if not bounded:
        limits = {"max_buffered": 10**9, "max_buffered_bytes": UNBOUNDED}
    refused = sent = 0
    filler = "x" * size
    async with tether.RealtimeClient(url, reconnection=False, **limits) as rt:
        await rt.wait_connected(10)
        start = mb("VmRSS")
        for index in range(messages):
            try:
                rt.emit("fill", index, filler)
                sent += 1
            except tether.BufferFull:
                refused += 1
            if index % 100 == 99:
                await anyio.sleep(0)  # the writer writes what the socket still takes
        connected = rt.is_connected()
        end = mb("VmRSS")
        peak = mb("VmHWM")
        rt.close()  # no goodbye can be written to a server that does not read
    return {
        "start_mb": start,
        "peak_mb": peak,
        "end_mb": end,
        "emitted": sent,
        "BufferFull": refused,
        "still connected": connected,
    }


async def flood_child(url: str, bounded: bool, events: int) -> dict[str, Any]:
    import anyio

    import tether
    from tether._driver import _session

    if not bounded:
        _session.DISPATCH_BACKLOG_LIMIT = UNBOUNDED  # type: ignore[misc]
        _session.DISPATCH_BACKLOG_BYTES = UNBOUNDED  # type: ignore[misc]
    release = anyio.Event()

    async def slow(*args: Any) -> None:
        await release.wait()

    async with tether.RealtimeClient(url, reconnection=False) as rt:
        rt.on("flood", slow)
        await rt.wait_connected(10)
        start = mb("VmRSS")
        dispatcher = rt._driver.dispatcher
        began = time.monotonic()
        with anyio.move_on_after(FLOOD_SECONDS):
            # One event is with the listener; the rest wait, or the bound tripped.
            while rt.is_connected() and dispatcher.backlog < events - 1:
                await anyio.sleep(0.05)
        took = time.monotonic() - began
        tripped = not rt.is_connected()
        backlog, backlog_mb = dispatcher.backlog, dispatcher.backlog_bytes / 2**20
        end = mb("VmRSS")
        peak = mb("VmHWM")
        release.set()
        rt.close()
    return {
        "start_mb": start,
        "peak_mb": peak,
        "end_mb": end,
        "backlog": backlog,
        "backlog_wire_mb": backlog_mb,
        "dropped the connection": tripped,
        "seconds": took,
    }


def child_main(args: argparse.Namespace) -> int:
    import anyio

    signal.alarm(CHILD_SECONDS)
    if args.child == "outbox":
        result = anyio.run(outbox_child, args.url, args.bounded, args.messages, args.message_bytes)
    else:
        result = anyio.run(flood_child, args.url, args.bounded, args.events)
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------- the runner


def run_child(kind: str, url: str, bounded: bool, **options: int) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.client_abuse",
        "--child",
        kind,
        "--url",
        url,
        *(["--bounded"] if bounded else []),
        *[f"--{key.replace('_', '-')}={value}" for key, value in options.items()],
    ]
    done = subprocess.run(
        command,
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_SECONDS + 30,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def show(name: str, result: dict[str, Any]) -> None:
    parts = [
        f"{key}={value:.1f}"
        if key == "seconds"
        else f"{key}={value:.0f}"
        if isinstance(value, float)
        else f"{key}={value}"
        for key, value in result.items()
    ]
    print(f"{name:<32} " + "  ".join(parts), flush=True)


def runner_main(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT / "tests"))
    from servers.garbage import GarbageServer

    signal.alarm(WATCHDOG_SECONDS)
    only = set(args.only.split(","))
    # Pings every 20 s: the client keeps answering them whatever it is doing; the server
    # never checks the pongs (so a client whose pongs cannot be written stays connected).
    runs: list[tuple[str, str, dict[str, int], int, int]] = []
    if "outbox" in only:
        options = {"messages": args.messages, "message_bytes": args.message_bytes}
        runs.append(("outbox", "stop-reading", options, 0, 0))
    if "flood" in only:
        runs.append(("flood", "flood", {"events": args.events}, args.events, args.event_bytes))
    if "flood-small" in only:
        options = {"events": args.small_events}
        runs.append(("flood-small", "flood", options, args.small_events, 10))
    for name, mode, options, count, size in runs:
        for bounded in (True, False):
            with GarbageServer(
                ping_interval=20_000,
                ping_timeout=20_000,
                flood_count=max(count, 1),
                flood_size=max(size, 1),
            ) as server:
                server.push_modes(mode)
                kind = "outbox" if name == "outbox" else "flood"
                result = run_child(kind, server.url, bounded, **options)
            label = f"{name}, {'bounded (defaults)' if bounded else 'unbounded'}"
            show(label, result)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--message-bytes", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--event-bytes", type=int, default=10_000)
    parser.add_argument("--small-events", type=int, default=150_000)
    parser.add_argument("--only", default="outbox,flood,flood-small")
    parser.add_argument("--child", choices=("outbox", "flood"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--bounded", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return child_main(args)
    return runner_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
