"""Profile tether's receive path: ``python -m benchmarks.profile [--backend trio] [--kind json64]``.

Starts the benchmark's Node server, connects one ``RealtimeClient``, warms up, then profiles
one blast of ``--count`` events (only the blast: connecting and warming up are not in the
profile) and prints, per received event:

* the cost by layer (wsproto, tether.transport, tether.core, the driver, anyio, the event
  loop, JSON, builtins), from the functions' own time;
* the top functions by own time, with calls per event.

``--tool cprofile`` (default) counts every call, which is what "calls per event" needs, but
its per-call overhead inflates small functions; ``--tool pyinstrument`` samples instead (no
call counts, closer to real proportions). Wall time under cProfile is about 2× the real one.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections import defaultdict
from contextlib import AsyncExitStack
from typing import Any

import anyio

from ._procs import STARTED, NodeServer

LAYERS = [
    ("wsproto", "wsproto"),
    ("tether/transport", "tether transport"),
    ("tether/core", "tether core"),
    ("tether/_client", "tether driver"),
    ("tether/_listeners", "tether driver"),
    ("anyio", "anyio"),
    ("trio", "trio"),
    ("asyncio", "asyncio"),
    ("selectors", "event loop (selectors)"),
    ("json", "json"),
    ("benchmarks", "benchmark listener"),
]


def layer_of(filename: str, name: str) -> str:
    if filename == "~":  # a builtin: classify by what it is
        if "orjson" in name or "json" in name:
            return "json"
        if "poll" in name or "select" in name:
            return "waiting in epoll (idle)"
        if "recv" in name or "send" in name or "connect" in name:
            return "socket syscalls"
        return "builtins"
    for needle, layer in LAYERS:
        if needle in filename:
            return layer
    if filename.startswith("<string>"):
        return "generated __init__ (dataclasses, attrs)"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/lib/python3" in filename:
        module = filename.rsplit("/", 1)[-1].removesuffix(".py")
        return f"stdlib {module}"
    return "other"


async def profiled_blast(url: str, kind: str, count: int, warmup: int, tool: str) -> Any:
    import tether

    received = 0
    target = 0
    done = anyio.Event()

    def on_event(arg: Any) -> None:
        nonlocal received
        received += 1
        if received == target:
            done.set()

    async with tether.RealtimeClient(url) as rt:
        rt.on("e", on_event)
        await rt.wait_connected(timeout=20)
        received, target, done = 0, warmup, anyio.Event()
        rt.emit("blast", {"kind": kind, "count": warmup})
        with anyio.fail_after(60):
            await done.wait()
        received, target, done = 0, count, anyio.Event()
        profiler: Any
        if tool == "pyinstrument":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002, async_mode="disabled")
            profiler.start()
        else:
            profiler = cProfile.Profile()
            profiler.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        rt.emit("blast", {"kind": kind, "count": count})
        with anyio.fail_after(120):
            await done.wait()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if tool == "pyinstrument":
            profiler.stop()
        else:
            profiler.disable()
    return profiler, wall, cpu


async def profiled_connects(url: str, count: int, warmup: int, tool: str) -> Any:
    """Profile ``count`` fresh connects: constructing the client until wait_connected()."""
    import tether

    profiler = cProfile.Profile()
    wall = cpu = 0.0
    for i in range(warmup + count):
        measured = i >= warmup
        t0, c0 = time.perf_counter(), time.process_time()
        if measured:
            profiler.enable()
        async with tether.RealtimeClient(url) as rt:
            await rt.wait_connected(timeout=20)
            if measured:
                profiler.disable()
                wall += time.perf_counter() - t0
                cpu += time.process_time() - c0
    return profiler, wall, cpu


async def traced_memory(url: str, count: int, top: int) -> str:
    """tracemalloc: what ``count`` idle connected clients allocate, per connection, by file."""
    import gc
    import tracemalloc

    import tether

    async with tether.RealtimeClient(url) as rt:  # imports and lazy globals: not counted
        await rt.wait_connected(timeout=20)
    tracemalloc.start(1)
    gc.collect()
    before = tracemalloc.take_snapshot()
    # Held from this one task (an AsyncExitStack), as the memory bench holds them: what is
    # counted is the clients, not a task per client of the profiler's own.
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(count):
            clients.append(await stack.enter_async_context(tether.RealtimeClient(url)))
            if len(clients) % 50 == 0:
                for rt in clients[-50:]:
                    await rt.wait_connected(timeout=20)
        for rt in clients:
            await rt.wait_connected(timeout=20)
        await anyio.sleep(0.5)
        gc.collect()
        after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    by_layer: dict[str, float] = defaultdict(float)
    rows = []
    for diff in after.compare_to(before, "filename"):
        filename = diff.traceback[0].filename
        by_layer[layer_of(filename, "")] += diff.size_diff
        short = filename.split("site-packages/")[-1].split("/src/")[-1]
        rows.append((diff.size_diff / count, diff.count_diff / count, short))
    total = sum(by_layer.values()) / count
    lines = [f"{count} idle connections: {total:,.0f} B allocated per connection (tracemalloc)"]
    lines.append("")
    lines.append("by layer (bytes per connection):")
    for layer, size in sorted(by_layer.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {size / count:9,.0f} B  {layer}")
    lines.append("")
    lines.append("by file (bytes and objects per connection):")
    for size, objects, where in sorted(rows, reverse=True)[:top]:
        lines.append(f"  {size:9,.0f} B  {objects:6.1f}  {where}")
    return "\n".join(lines)


def report_cprofile(profiler: cProfile.Profile, count: int, top: int, unit: str = "event") -> str:
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    by_layer: dict[str, float] = defaultdict(float)
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        layer = layer_of(filename, name)
        by_layer[layer] += tottime
        short = filename.split("site-packages/")[-1].split("/src/")[-1]
        where = f"{short}:{line}({name})" if filename != "~" else name
        rows.append((tottime, ncalls, cumtime, where, layer))
    lines = [f"total own time {total / count * 1e6:.2f} µs per {unit} (under cProfile)", ""]
    lines.append(f"by layer (own time per {unit}):")
    for layer, t in sorted(by_layer.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {t / count * 1e6:7.2f} µs  {100 * t / total:5.1f} %  {layer}")
    lines.append("")
    lines.append(f"top {top} functions by own time:")
    lines.append(f"   µs/{unit}   calls/{unit}  cum µs/{unit}  function")
    for tottime, ncalls, cumtime, where, _layer in sorted(rows, reverse=True)[:top]:
        lines.append(
            f"  {tottime / count * 1e6:9.3f}  {ncalls / count:12.3f}  {cumtime / count * 1e6:12.2f}"
            f"  {where[:110]}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--what", choices=("recv", "connect", "memory"), default="recv")
    parser.add_argument("--kind", choices=("json64", "json1k", "bin1k"), default="json64")
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--tool", choices=("cprofile", "pyinstrument"), default="cprofile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    server = NodeServer().start()
    try:
        if args.what == "memory":
            print(f"tether on {args.backend}, memory per idle connection\n")
            print(
                anyio.run(
                    traced_memory, server.url, min(args.count, 500), args.top, backend=args.backend
                )
            )
            return 0
        if args.what == "connect":
            count = min(args.count, 200)
            profiler, wall, cpu = anyio.run(
                profiled_connects, server.url, count, 5, args.tool, backend=args.backend
            )
        else:
            count = args.count
            profiler, wall, cpu = anyio.run(
                profiled_blast,
                server.url,
                args.kind,
                count,
                args.warmup,
                args.tool,
                backend=args.backend,
            )
    finally:
        server.stop()
        STARTED.stop_all()
    if args.what == "connect":
        print(
            f"tether on {args.backend}, {count} fresh connects under cProfile: "
            f"{wall / count * 1e3:.2f} ms wall, {cpu / count * 1e3:.2f} ms CPU per connect\n"
        )
        print(report_cprofile(profiler, count, args.top, unit="connect"))
        return 0
    print(
        f"tether on {args.backend}, {count} {args.kind} events, {args.tool}: "
        f"{count / wall:,.0f} events/s, {cpu / count * 1e6:.1f} µs CPU per event "
        f"(profiler included)\n"
    )
    if args.tool == "pyinstrument":
        print(profiler.output_text(unicode=True, color=False, show_all=False, short_mode=True))
    else:
        print(report_cprofile(profiler, count, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
