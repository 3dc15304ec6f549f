"""The benches for python-socketio's AsyncClient (asyncio), the reference, at its best.

Every client is ``socketio.AsyncClient(json=OrjsonModule)`` (``--json default``: without the
``json`` option), otherwise with its defaults (reconnection on, delay 1 s, max 5 s,
randomization 0.5), and connects with ``transports=["websocket"]``: no long-polling handshake,
the same wire as tether. It runs on uvloop unless ``--loop asyncio``. Listeners are plain
functions. benchmarks/README.md ("The baseline") says why this is its fastest configuration.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import socketio

from . import _harness as h

TRANSPORTS = ["websocket"]
#: Keyword arguments of every ``AsyncClient``: ``json=OrjsonModule`` unless ``--json default``.
OPTIONS: dict[str, Any] = {}


class OrjsonModule:
    """orjson behind the two functions python-socketio calls on its ``json=`` module.

    Without that option python-socketio (and python-engineio under it) decodes with
    ``engineio.json.loads``, which passes ``parse_int`` to the stdlib ``json.loads``: that
    makes the stdlib build a new decoder on every call. The option is python-socketio's own
    way to choose the JSON codec; tether decodes with orjson too (its ``fast`` extra).
    """

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        # python-socketio asks for separators=(",", ":"): orjson's output is compact already.
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(text)


def new_client() -> socketio.AsyncClient:
    return socketio.AsyncClient(**OPTIONS)


async def _connect(url: str) -> socketio.AsyncClient:
    sio = new_client()
    await sio.connect(url, transports=TRANSPORTS, wait_timeout=h.CONNECT_TIMEOUT)
    return sio


async def bench_recv(args: Any) -> Any:
    url, kind, count, reps, warmup, timeout = (
        args.url,
        args.kind,
        args.count,
        args.reps,
        args.warmup,
        args.timeout,
    )
    received = 0
    target = 0
    last: Any = None
    done = asyncio.Event()

    def on_event(arg: Any) -> None:
        nonlocal received, last
        received += 1
        if received == target:
            last = arg
            done.set()

    samples = []
    sio = new_client()
    sio.on("e", on_event)
    await sio.connect(url, transports=TRANSPORTS, wait_timeout=h.CONNECT_TIMEOUT)
    try:
        for rep, n in enumerate([warmup] * bool(warmup) + [count] * reps):
            received, target, done = 0, n, asyncio.Event()
            t0, c0 = time.perf_counter(), time.process_time()
            await sio.emit("blast", {"kind": kind, "count": n})
            await asyncio.wait_for(done.wait(), timeout)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            h.check_payload(kind, last)
            if rep or not warmup:
                samples.append({"events": n, "wall": wall, "cpu": cpu})
    finally:
        await asyncio.wait_for(sio.disconnect(), 10)
    return h.recv_summary(samples)


async def bench_echo(url: str, count: int, warmup: int) -> Any:
    latencies = []
    payload = h.PAYLOAD_64
    sio = await _connect(url)
    try:
        cpu = 0.0
        for i in range(warmup + count):
            if i == warmup:
                cpu = time.process_time()
            t0 = time.perf_counter()
            reply = await sio.call("echo", payload, timeout=5.0)
            elapsed = time.perf_counter() - t0
            if i >= warmup:
                latencies.append(elapsed)
        cpu = time.process_time() - cpu
        if reply != payload:
            raise AssertionError(f"echo returned {reply!r}")
    finally:
        await asyncio.wait_for(sio.disconnect(), 10)
    return h.latency_summary(latencies, cpu)


async def bench_connect(url: str, count: int, warmup: int) -> Any:
    """From constructing a client to ``connect()`` returning; disconnecting is not timed."""
    times = []
    cpu = []
    for i in range(warmup + count):
        t0, c0 = time.perf_counter(), time.process_time()
        sio = await _connect(url)
        elapsed, used = time.perf_counter() - t0, time.process_time() - c0
        await asyncio.wait_for(sio.disconnect(), 10)
        if i >= warmup:
            times.append(elapsed)
            cpu.append(used)
    return h.connect_summary(times, cpu)


class _Fleet:
    """``count`` AsyncClients in one event loop, connected ``concurrency`` at a time."""

    def __init__(self, url: str, count: int, concurrency: int) -> None:
        self.url = url
        self.count = count
        self.connecting = asyncio.Semaphore(concurrency)
        self.clients: list[socketio.AsyncClient] = []
        self.connect_times: list[list[float]] = [[] for _ in range(count)]
        self.disconnect_times: list[list[float]] = [[] for _ in range(count)]
        self.back = 0
        self.all_back = asyncio.Event()
        self.failed: list[str] = []
        self.attempt_times: list[float] = []

    async def start(self, i: int) -> None:
        connects, disconnects = self.connect_times[i], self.disconnect_times[i]

        def on_connect() -> None:
            connects.append(time.time())
            if disconnects and len(connects) == 2:
                self.back += 1
                if self.back == self.count:
                    self.all_back.set()

        def on_disconnect(*args: Any) -> None:
            disconnects.append(time.time())

        sio = new_client()
        sio.on("connect", on_connect)
        sio.on("disconnect", on_disconnect)
        # Note when each connection attempt starts: the first one and every reconnect
        # (AsyncClient._handle_reconnect calls self.connect).
        original_connect = sio.connect
        attempts = self.attempt_times

        async def recording_connect(*args: Any, **kwargs: Any) -> Any:
            attempts.append(time.time())
            return await original_connect(*args, **kwargs)

        sio.connect = recording_connect
        async with self.connecting:
            try:
                await sio.connect(self.url, transports=TRANSPORTS, wait_timeout=h.CONNECT_TIMEOUT)
            except Exception as exc:
                self.failed.append(repr(exc))
                return
        self.clients.append(sio)

    async def start_all(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.gather(*(self.start(i) for i in range(self.count))), timeout)

    async def close_all(self) -> None:
        try:
            await asyncio.wait_for(
                asyncio.gather(*(c.disconnect() for c in self.clients), return_exceptions=True),
                30,
            )
        except asyncio.TimeoutError:
            h.log("psio: closing the clients timed out")


async def bench_memory(url: str, count: int, concurrency: int, hold: float, timeout: float) -> Any:
    h.raise_nofile(count + 256)
    warm = await _connect(url)  # imports, lazy globals: not per connection
    await asyncio.wait_for(warm.disconnect(), 10)
    base = h.settle_rss()
    fleet = _Fleet(url, count, concurrency)
    try:
        await fleet.start_all(timeout)
    except asyncio.TimeoutError:
        h.log("psio: not every client connected in time")
    await asyncio.sleep(hold)
    loaded = h.settle_rss()
    result = h.memory_summary(base, loaded, count, len(fleet.clients))
    result["failed"] = fleet.failed[:5]
    await fleet.close_all()
    return result


async def bench_storm(url: str, count: int, concurrency: int, timeout: float) -> Any:
    h.raise_nofile(count + 256)
    fleet = _Fleet(url, count, concurrency)
    await fleet.start_all(timeout)
    h.report("READY", {"clients": len(fleet.clients)})
    pauses = h.GcPauses()
    try:
        await asyncio.wait_for(fleet.all_back.wait(), timeout)
    except asyncio.TimeoutError:
        h.log("psio: not every client came back in time")
    result = {
        "clients": count,
        "back": fleet.back,
        "connect_times": fleet.connect_times,
        "disconnect_times": fleet.disconnect_times,
        "attempt_times": fleet.attempt_times,
        "gc": pauses.summary(),
    }
    await fleet.close_all()
    return result


async def main(args: Any) -> None:
    if args.bench == "recv":
        result = await bench_recv(args)
    elif args.bench == "echo":
        result = await bench_echo(args.url, args.count, args.warmup)
    elif args.bench == "connect":
        result = await bench_connect(args.url, args.count, args.warmup)
    elif args.bench == "memory":
        result = await bench_memory(args.url, args.count, args.concurrency, args.hold, args.timeout)
    else:
        result = await bench_storm(args.url, args.count, args.concurrency, args.timeout)
    h.report("RESULT", result)


if __name__ == "__main__":
    arguments = h.parse_args(backends=("asyncio",))
    if arguments.json == "orjson":
        OPTIONS["json"] = OrjsonModule
    h.run_asyncio(main(arguments), arguments.loop)
