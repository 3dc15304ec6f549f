"""What retries cost the client per message: emits with ``retries=0`` and ``retries=3``.

```sh
python -m benchmarks.retries            # about 30 s on 2 cores
python -m benchmarks.retries --count 5000 --rounds 1
```

With ``retries > 0`` every emit asks for an ack and the client keeps it until the ack comes
(specs/delivery.md §2): an ack id on the wire, an entry in the acks table, an ACK to read and
resolve. This measures that cost on the client, in CPU per message (``process_time`` of this
process, so it hardly moves when other processes compete), against the integration tests'
Node socket.io 4.8 server (servers/node, which acknowledges ``ack`` events): ``count`` emits as
fast as the client takes them, then one ``call`` whose answer comes after every earlier ack
(one connection keeps the order), on asyncio and trio, the configurations interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

import tether

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "servers" / "node" / "server.js"


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        ["node", str(SERVER), "--port", "0", "--watch-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"the Node server did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


async def one_round(url: str, retries: int, count: int) -> float:
    """CPU µs per message for ``count`` emits and their acks."""
    async with tether.RealtimeClient(url, retries=retries, transports=("websocket",)) as rt:
        await rt.wait_connected(10)
        await rt.call("ack", "warm", timeout=10)
        start = time.process_time()
        for i in range(count):
            rt.emit("ack", i)
            if i % 1000 == 999:
                # Let the writer run: the outbox holds max_buffered messages at most.
                await anyio.sleep(0)
        await rt.call("ack", "done", timeout=60)
        return (time.process_time() - start) / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.retries")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    proc, url = start_server()
    results: dict[tuple[str, int], list[float]] = {}
    try:
        for _ in range(args.rounds):
            for backend in ("asyncio", "trio"):
                for retries in (0, 3):

                    async def run(retries: int = retries) -> float:
                        return await one_round(url, retries, args.count)

                    cost = anyio.run(run, backend=backend)
                    results.setdefault((backend, retries), []).append(cost)
    finally:
        proc.kill()
    print(f"CPU per emit and its ack, {args.count} emits, median of {args.rounds} rounds")
    print(f"{'backend':10} {'retries=0 (µs)':>15} {'retries=3 (µs)':>15} {'cost':>8}")
    rows: dict[str, Any] = {}
    for backend in ("asyncio", "trio"):
        plain = statistics.median(results[(backend, 0)])
        tried = statistics.median(results[(backend, 3)])
        rows[backend] = (plain, tried)
        print(f"{backend:10} {plain:15.1f} {tried:15.1f} {tried / plain:7.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
