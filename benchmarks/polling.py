"""Engine.IO long-polling: tether's polling transport against python-socketio's polling
client, in the same run, against the same Node socket.io 4.8 server; and the time to connect
through an HTTP proxy (tinyproxy).

```sh
python -m benchmarks.polling            # about a minute on 2 cores
python -m benchmarks.polling --quick    # small counts, a smoke test
```

Needs Node and ``npm ci`` in servers/node (the integration tests' server, started here with
``--transports polling``), python-socketio's asyncio client (aiohttp), trio, and tinyproxy
(scripts/setup installs it). tether's client is ``RealtimeClient(url, transports=("polling",),
trust_env=False)``: the driver over the polling transport.

Figures, per client (python-socketio, tether-asyncio, tether-trio), each bench in a fresh
subprocess, rounds rotating the client order:

* receive: the client asks for N events (``emit-many``, each ``("item", i, 40 x "x")``) and
  counts them in a listener; events/s from the request to the Nth call, and CPU per event
  (``process_time`` of the client process over the same span). Node's polling transport
  answers a poll with everything it has queued, so this measures big payloads.
* echo: sequential ``call("ack", payload)`` with the 64-byte payload of the main benches
  (one POST out, the answer in the next poll); p50/p99 and CPU per call.
* connect (tether only): fresh client to ``wait_connected()``, polling and WebSocket, direct
  and through tinyproxy (CONNECT for WebSocket, absolute-form requests for polling).

Results go to ``benchmarks/results/polling.{json,md}`` (``--quick``: ``polling-quick.*``).
Every process is bounded: watchdogs in the clients, the server and the proxy are killed by
pid when the run ends, only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._procs import ROOT, LineReader
from .clients import _harness as h

CLIENTS = ("python-socketio", "tether-asyncio", "tether-trio")
NODE_SERVER = ROOT / "servers" / "node" / "server.js"
RESULTS = ROOT / "benchmarks" / "results"
FILLER = 40


# --- the client side (one bench per process) ------------------------------------------------


def tether_client(
    url: str, proxy: str | None = None, transports: tuple[str, ...] = ("polling",)
) -> Any:
    import tether

    return tether.RealtimeClient(url, transports=transports, proxy=proxy, trust_env=False)


async def tether_recv(url: str, count: int) -> dict[str, float]:
    import anyio

    received = 0
    done = anyio.Event()

    def on_item(i: int, _: str) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    async with tether_client(url) as rt:
        rt.on("item", on_item)
        await rt.wait_connected(timeout=h.CONNECT_TIMEOUT)
        t0, c0 = time.perf_counter(), time.process_time()
        rt.emit("emit-many", count, FILLER)
        with anyio.fail_after(120):
            await done.wait()
        return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}


async def tether_echo(url: str, count: int, warmup: int) -> dict[str, Any]:
    latencies = []
    async with tether_client(url) as rt:
        await rt.wait_connected(timeout=h.CONNECT_TIMEOUT)
        cpu = 0.0
        for i in range(warmup + count):
            if i == warmup:
                cpu = time.process_time()
            t0 = time.perf_counter()
            reply = await rt.call("ack", h.PAYLOAD_64, timeout=5.0)
            if i >= warmup:
                latencies.append(time.perf_counter() - t0)
        cpu = time.process_time() - cpu
    if reply != h.PAYLOAD_64:
        raise AssertionError(f"ack returned {reply!r}")
    return h.latency_summary(latencies, cpu)


async def tether_connect(url: str, count: int, proxy: str | None, transport: str) -> dict[str, Any]:
    times, cpu = [], []
    for i in range(count + 2):
        t0, c0 = time.perf_counter(), time.process_time()
        async with tether_client(url, proxy, (transport,)) as rt:
            await rt.wait_connected(timeout=h.CONNECT_TIMEOUT)
            elapsed, used = time.perf_counter() - t0, time.process_time() - c0
        if i >= 2:
            times.append(elapsed)
            cpu.append(used)
    return h.connect_summary(times, cpu)


async def psio_recv(url: str, count: int) -> dict[str, float]:
    import asyncio

    import socketio

    received = 0
    done = asyncio.Event()
    sio = socketio.AsyncClient()

    def on_item(i: int, _: str) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    sio.on("item", on_item)
    await sio.connect(url, transports=["polling"], wait_timeout=h.CONNECT_TIMEOUT)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        await sio.emit("emit-many", (count, FILLER))
        await asyncio.wait_for(done.wait(), 120)
        return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
    finally:
        await sio.disconnect()


async def psio_echo(url: str, count: int, warmup: int) -> dict[str, Any]:
    import socketio

    sio = socketio.AsyncClient()
    await sio.connect(url, transports=["polling"], wait_timeout=h.CONNECT_TIMEOUT)
    latencies = []
    try:
        cpu = 0.0
        for i in range(warmup + count):
            if i == warmup:
                cpu = time.process_time()
            t0 = time.perf_counter()
            reply = await sio.call("ack", h.PAYLOAD_64, timeout=5)
            if i >= warmup:
                latencies.append(time.perf_counter() - t0)
        cpu = time.process_time() - cpu
    finally:
        await sio.disconnect()
    if reply != h.PAYLOAD_64:
        raise AssertionError(f"ack returned {reply!r}")
    return h.latency_summary(latencies, cpu)


def run_client(args: argparse.Namespace) -> None:
    h.start_watchdog(args.timeout)
    if args.client == "python-socketio":
        import asyncio

        import engineio.payload

        # python-engineio refuses a poll answer of more than 16 packets (its default
        # Payload.max_decode_packets) and drops the connection, and Node answers a poll with
        # everything queued: without this the receive bench cannot run at all.
        engineio.payload.Payload.max_decode_packets = 10_000_000

        coro = psio_recv if args.bench == "recv" else psio_echo
        call = (args.url, args.count) if args.bench == "recv" else (args.url, args.count, 50)
        result = asyncio.run(coro(*call))
    else:
        import anyio

        backend = args.client.removeprefix("tether-")
        if args.bench == "recv":
            result = anyio.run(tether_recv, args.url, args.count, backend=backend)
        elif args.bench == "echo":
            result = anyio.run(tether_echo, args.url, args.count, 50, backend=backend)
        else:
            proxy = args.proxy or None
            result = anyio.run(
                tether_connect, args.url, args.count, proxy, args.transport, backend=backend
            )
    h.report("RESULT", result)


# --- the runner -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_node(transports: str) -> tuple[subprocess.Popen[bytes], str]:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not on PATH")
    proc = subprocess.Popen(
        [node, str(NODE_SERVER), "--port", "0", "--transports", transports, "--watch-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = LineReader(proc.stdout).readline(time.monotonic() + 15)
    if not line or not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"the Node server did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def start_tinyproxy(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    executable = shutil.which("tinyproxy")
    if executable is None:
        raise SystemExit("tinyproxy is not installed (scripts/setup)")
    port = free_port()
    config = directory / "tinyproxy.conf"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 100\nLogLevel Critical\n"
        f'LogFile "{directory / "tinyproxy.log"}"\nAllow 127.0.0.1\nDisableViaHeader Yes\n'
    )
    proc = subprocess.Popen(
        [executable, "-d", "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit("tinyproxy did not start")


def bench(client: str, name: str, url: str, count: int, **extra: str) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.polling",
        "--role",
        "client",
        "--client",
        client,
        "--bench",
        name,
        "--url",
        url,
        "--count",
        str(count),
    ]
    for key, value in extra.items():
        command += [f"--{key}", value]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=300, check=False)
    for line in done.stdout.decode().splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return result
    raise SystemExit(f"{client} {name} failed:\n{done.stderr.decode()[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", choices=("runner", "client"), default="runner")
    parser.add_argument("--client", choices=CLIENTS)
    parser.add_argument("--bench", choices=("recv", "echo", "connect"))
    parser.add_argument("--url", default="")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--proxy", default="")
    parser.add_argument("--transport", default="polling")
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.role == "client":
        if not args.url.startswith("http://127."):
            parser.error("only loopback servers")
        run_client(args)
        return

    rounds = 1 if args.quick else args.rounds
    recv_count, echo_count, connect_count = (2000, 100, 5) if args.quick else (20000, 500, 20)
    load_before = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as tmp:
        node, url = start_node("polling")
        both, both_url = start_node("polling,websocket")
        proxy, proxy_url = start_tinyproxy(Path(tmp))
        try:
            recv: dict[str, list[dict[str, float]]] = {c: [] for c in CLIENTS}
            echo: dict[str, list[dict[str, Any]]] = {c: [] for c in CLIENTS}
            for r in range(rounds):
                order = CLIENTS[r % 3 :] + CLIENTS[: r % 3]
                for client in order:
                    recv[client].append(bench(client, "recv", url, recv_count))
                for client in order:
                    echo[client].append(bench(client, "echo", url, echo_count))
            connect = {}
            for transport in ("polling", "websocket"):
                for via in ("direct", "proxy"):
                    extra = {"transport": transport}
                    if via == "proxy":
                        extra["proxy"] = proxy_url
                    connect[f"{transport} {via}"] = bench(
                        "tether-asyncio", "connect", both_url, connect_count, **extra
                    )
        finally:
            for proc in (node, both, proxy):
                proc.kill()
                proc.wait(5)

    def recv_figures(samples: list[dict[str, float]]) -> dict[str, float]:
        rate = statistics.median(recv_count / s["wall"] for s in samples)
        cpu = statistics.median(s["cpu"] / recv_count * 1e6 for s in samples)
        return {"events_per_s": rate, "cpu_us_per_event": cpu}

    def echo_figures(samples: list[dict[str, Any]]) -> dict[str, float]:
        return {
            "p50_us": statistics.median(s["p50_us"] for s in samples),
            "p99_us": statistics.median(s["p99_us"] for s in samples),
            "cpu_us_per_call": statistics.median(s["cpu_us_per_call"] for s in samples),
        }

    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.time() - started, 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"CPython {platform.python_version()}",
        "load": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "counts": {"recv": recv_count, "echo": echo_count, "connect": connect_count},
        "recv": {c: recv_figures(v) for c, v in recv.items()},
        "echo": {c: echo_figures(v) for c, v in echo.items()},
        "connect": {
            k: {"median_ms": v["median_ms"], "cpu_ms": v["cpu_median_ms"]}
            for k, v in connect.items()
        },
    }
    text = render(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stem = "polling-quick" if args.quick else "polling"
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(text + "\n")


def render(results: dict[str, Any]) -> str:
    base_recv = results["recv"]["python-socketio"]
    base_echo = results["echo"]["python-socketio"]
    lines = [
        f"Polling run {results['when']} ({results['seconds']} s), {results['machine']}; "
        f"load {results['load'][0]} / {results['load'][1]}; counts {results['counts']}.",
        "",
        "| figure | " + " | ".join(CLIENTS) + " |",
        "|---|" + "---:|" * len(CLIENTS),
    ]
    rows = [
        ("receive (events/s) ↑", "recv", "events_per_s", base_recv),
        ("CPU per event (µs) ↓", "recv", "cpu_us_per_event", base_recv),
        ("echo p50 (µs) ↓", "echo", "p50_us", base_echo),
        ("echo p99 (µs) ↓", "echo", "p99_us", base_echo),
        ("CPU per echo call (µs) ↓", "echo", "cpu_us_per_call", base_echo),
    ]
    for title, group, key, base in rows:
        cells = []
        for client in CLIENTS:
            value = results[group][client][key]
            ratio = "" if client == "python-socketio" else f" ({value / base[key]:.2f}×)"
            cells.append(f"{value:,.1f}{ratio}")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", "| tether-asyncio connect | median (ms) | CPU (ms) |", "|---|---:|---:|"]
    for key, value in results["connect"].items():
        lines.append(f"| {key} | {value['median_ms']:.2f} | {value['cpu_ms']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
