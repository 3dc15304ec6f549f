"""The benches for tether's RealtimeClient, on asyncio (``--loop uvloop`` or the stock loop) or
trio (``--backend``).

Every client uses the defaults of the README API (``RealtimeClient(url)``): reconnection on,
delay 1 s, max 5 s, randomization 0.5. Listeners are plain functions. The asyncio event loop
is the same one python-socketio's bench runs on (benchmarks/README.md, "Method").
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from typing import Any

import anyio

import tether

from . import _harness as h

#: Extra RealtimeClient arguments: ``--transport NAME`` when given, else the defaults.
OPTIONS: dict[str, Any] = {}


def client(url: str) -> tether.RealtimeClient:
    return tether.RealtimeClient(url, **OPTIONS)


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
    done = anyio.Event()

    def on_event(arg: Any) -> None:
        nonlocal received, last
        received += 1
        if received == target:
            last = arg
            done.set()

    samples = []
    async with client(url) as rt:
        rt.on("e", on_event)
        await rt.wait_connected(timeout=h.CONNECT_TIMEOUT)
        for rep, n in enumerate([warmup] * bool(warmup) + [count] * reps):
            received, target, done = 0, n, anyio.Event()
            t0, c0 = time.perf_counter(), time.process_time()
            rt.emit("blast", {"kind": kind, "count": n})
            with anyio.fail_after(timeout):
                await done.wait()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            h.check_payload(kind, last)
            if rep or not warmup:
                samples.append({"events": n, "wall": wall, "cpu": cpu})
    return h.recv_summary(samples)


async def bench_echo(url: str, count: int, warmup: int) -> Any:
    latencies = []
    payload = h.PAYLOAD_64
    async with client(url) as rt:
        await rt.wait_connected(timeout=h.CONNECT_TIMEOUT)
        cpu = 0.0
        for i in range(warmup + count):
            if i == warmup:
                cpu = time.process_time()
            t0 = time.perf_counter()
            reply = await rt.call("echo", payload, timeout=5.0)
            elapsed = time.perf_counter() - t0
            if i >= warmup:
                latencies.append(elapsed)
        cpu = time.process_time() - cpu
        if reply != payload:
            raise AssertionError(f"echo returned {reply!r}")
    return h.latency_summary(latencies, cpu)


async def bench_connect(url: str, count: int, warmup: int) -> Any:
    """From constructing a client to ``wait_connected()`` returning; closing is not timed."""
    times = []
    cpu = []
    for i in range(warmup + count):
        t0, c0 = time.perf_counter(), time.process_time()
        async with client(url) as rt:
            await rt.wait_connected(timeout=h.CONNECT_TIMEOUT)
            elapsed, used = time.perf_counter() - t0, time.process_time() - c0
        if i >= warmup:
            times.append(elapsed)
            cpu.append(used)
    return h.connect_summary(times, cpu)


class _Fleet:
    """``count`` clients, each ``async with RealtimeClient`` in its own task of one loop."""

    def __init__(self, url: str, count: int, concurrency: int) -> None:
        self.url = url
        self.attempt_times: list[float] = []
        self.count = count
        self.connecting = anyio.Semaphore(concurrency)
        self.connected = 0
        self.all_up = anyio.Event()
        self.stop = anyio.Event()
        self.connect_times: list[list[float]] = [[] for _ in range(count)]
        self.disconnect_times: list[list[float]] = [[] for _ in range(count)]
        self.back = 0  # clients that connected again after a disconnect
        self.all_back = anyio.Event()
        self.failed: list[str] = []

    def listen(self, rt: tether.RealtimeClient, i: int) -> None:
        """The listeners every fleet client has (the same three python-socketio's have)."""
        connects, disconnects = self.connect_times[i], self.disconnect_times[i]
        attempts = self.attempt_times

        def on_connect() -> None:
            connects.append(time.time())
            if disconnects and len(connects) == 2:
                self.back += 1
                if self.back == self.count:
                    self.all_back.set()

        def on_disconnect(reason: Any) -> None:
            disconnects.append(time.time())

        def on_attempt(attempt: int) -> None:
            attempts.append(time.time())

        rt.on("connect", on_connect)
        rt.on_reconnect_attempt(on_attempt)
        rt.on("disconnect", on_disconnect)

    async def hold(self, i: int) -> None:
        """One client in a task of its own, until ``stop`` (the storm)."""
        released = False
        await self.connecting.acquire()
        try:
            async with client(self.url) as rt:
                self.listen(rt, i)
                try:
                    await rt.wait_connected(timeout=h.CONNECT_TIMEOUT)
                except Exception as exc:
                    self.failed.append(repr(exc))
                    return
                finally:
                    released = True
                    self.connecting.release()
                self.connected += 1
                if self.connected == self.count:
                    self.all_up.set()
                await self.stop.wait()
        finally:
            if not released:
                self.connecting.release()


async def bench_memory(url: str, count: int, concurrency: int, hold: float, timeout: float) -> Any:
    h.raise_nofile(count + 256)
    async with client(url) as rt:  # imports, lazy globals: not per connection
        await rt.wait_connected(timeout=h.CONNECT_TIMEOUT)
    base = h.settle_rss()
    fleet = _Fleet(url, count, concurrency)
    connected = 0
    # Every client is entered in this one task (an AsyncExitStack), as python-socketio's
    # clients are held in a list: the figure is what a connection costs, not a task per
    # connection that the bench would add on top. Connected ``concurrency`` at a time.
    # No cancel scope may wrap the entering or the leaving: scopes must nest with the
    # clients' task groups. Bounded by the deadline checked per batch, each wait_connected's
    # timeout, the clients' bounded close and the process's watchdog.
    give_up = time.monotonic() + timeout
    async with AsyncExitStack() as stack:
        for first in range(0, count, concurrency):
            if time.monotonic() > give_up:
                fleet.failed.append("timed out before every client was opened")
                break
            batch = []
            for i in range(first, min(count, first + concurrency)):
                rt = await stack.enter_async_context(client(url))
                fleet.listen(rt, i)
                batch.append(rt)
            for rt in batch:
                try:
                    await rt.wait_connected(timeout=h.CONNECT_TIMEOUT)
                    connected += 1
                except Exception as exc:
                    fleet.failed.append(repr(exc))
        await anyio.sleep(hold)
        loaded = h.settle_rss()
        result: Any = h.memory_summary(base, loaded, count, connected)
        result["failed"] = fleet.failed[:5]
    return result


async def bench_storm(url: str, count: int, concurrency: int, timeout: float) -> Any:
    h.raise_nofile(count + 256)
    fleet = _Fleet(url, count, concurrency)
    result: Any = None
    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(fleet.hold, i)
        with anyio.fail_after(timeout):
            await fleet.all_up.wait()
        h.report("READY", {"clients": fleet.connected})
        pauses = h.GcPauses()
        # The runner now restarts the server; every client must come back by itself.
        with anyio.move_on_after(timeout):
            await fleet.all_back.wait()
        result = {
            "clients": count,
            "back": fleet.back,
            "connect_times": fleet.connect_times,
            "disconnect_times": fleet.disconnect_times,
            "attempt_times": fleet.attempt_times,
            "gc": pauses.summary(),
        }
        fleet.stop.set()
        tg.cancel_scope.deadline = anyio.current_time() + 30
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
    arguments = h.parse_args(backends=("asyncio", "trio"))
    if arguments.transport:
        OPTIONS["transport"] = arguments.transport
    anyio.run(
        main,
        arguments,
        backend=arguments.backend,
        backend_options=h.anyio_backend_options(arguments.backend, arguments.loop),
    )
