"""What every client module shares: arguments, result lines, RSS, payloads and a watchdog.

A client module runs exactly one bench per process and prints one ``RESULT {json}`` line on
stdout (the reconnect storm prints ``READY {json}`` first and then waits for the runner to
restart the server). Anything else it prints goes to stderr. A SIGALRM watchdog ends the
process if the bench overruns ``--timeout``, whatever it is stuck on.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import resource
import signal
import statistics
import sys
import time
from collections.abc import Coroutine
from typing import Any

BENCHES = ("recv", "echo", "connect", "memory", "storm")
KINDS = ("json64", "json1k", "bin1k")
#: The asyncio event loops a bench can run on (``--loop``); trio has its own.
LOOPS = ("uvloop", "asyncio")

#: The 64-byte JSON argument the server sends for ``json64`` and the echo payload.
PAD_BASE = len(json.dumps({"seq": 0, "pad": ""}, separators=(",", ":")))
PAYLOAD_64: dict[str, Any] = {"seq": 0, "pad": "x" * (64 - PAD_BASE)}
assert len(json.dumps(PAYLOAD_64, separators=(",", ":"))) == 64

#: Per-connection time bound when connecting many clients, seconds.
CONNECT_TIMEOUT = 20.0


def parse_args(*, backends: tuple[str, ...]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=backends, default=backends[0])
    parser.add_argument("--bench", choices=BENCHES, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--kind", choices=KINDS, default="json64")
    parser.add_argument(
        "--count", type=int, default=1000, help="events, calls, connects or clients"
    )
    parser.add_argument("--reps", type=int, default=3, help="measured repetitions (recv)")
    parser.add_argument("--warmup", type=int, default=0, help="unmeasured events/calls/connects")
    parser.add_argument("--concurrency", type=int, default=50, help="connects in flight at once")
    parser.add_argument("--hold", type=float, default=1.0, help="idle seconds before measuring RSS")
    parser.add_argument("--timeout", type=float, default=120.0, help="the whole bench, seconds")
    parser.add_argument("--transport", default="", help="tether only: RealtimeClient(transport=)")
    parser.add_argument(
        "--loop", choices=LOOPS, default="uvloop", help="the event loop of the asyncio backend"
    )
    parser.add_argument(
        "--json",
        choices=("orjson", "default"),
        default="orjson",
        help="python-socketio only: AsyncClient(json=) with orjson, or its default",
    )
    args = parser.parse_args()
    if not args.url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        parser.error("only loopback servers")
    start_watchdog(args.timeout + 5.0)
    return args


def run_asyncio(main: Coroutine[Any, Any, None], loop: str) -> None:
    """Run ``main`` on asyncio with the event loop ``--loop`` names."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


def anyio_backend_options(backend: str, loop: str) -> dict[str, Any]:
    """``anyio.run``'s backend options for ``--loop`` (it only applies to asyncio)."""
    return {"use_uvloop": True} if backend == "asyncio" and loop == "uvloop" else {}


def event_loop_name() -> str:
    """What runs this bench (the runner checks it): uvloop, asyncio, trio or none."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "trio" if "trio" in sys.modules else "none"
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def start_watchdog(seconds: float) -> None:
    """Terminate the process (SIGALRM's default action) if it is still running after this."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(math.ceil(seconds))


def tether_source() -> str | None:
    """The directory tether was imported from (its ``src``), if this process imported it: the
    runner checks it, so that a ``before-`` client measures the old tree and the others this
    checkout, not whatever tree the venv's editable install points at."""
    module = sys.modules.get("tether")
    file = getattr(module, "__file__", None)
    return None if file is None else os.path.dirname(os.path.dirname(os.path.abspath(file)))


def report(tag: str, data: dict[str, Any]) -> None:
    data = {**data, "event_loop": event_loop_name()}
    source = tether_source()
    if source is not None:
        data["tether_source"] = source
    sys.stdout.write(f"{tag} {json.dumps(data)}\n")
    sys.stdout.flush()


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def rss_bytes() -> int:
    """Resident set size now, from /proc/self/statm (pages)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def settle_rss() -> int:
    gc.collect()
    gc.collect()
    return rss_bytes()


def raise_nofile(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def check_payload(kind: str, value: Any) -> None:
    """The argument of the last event must be what the server sends for ``kind``."""
    if kind == "bin1k":
        ok = isinstance(value, (bytes, bytearray)) and bytes(value) == bytes(
            i & 0xFF for i in range(1024)
        )
    else:
        size = 64 if kind == "json64" else 1024
        ok = isinstance(value, dict) and len(value.get("pad", "")) == size - PAD_BASE
    if not ok:
        raise AssertionError(f"unexpected {kind} payload: {str(value)[:80]}")


def recv_summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    """Median over the measured repetitions: events/s and CPU µs per event."""
    rates = [s["events"] / s["wall"] for s in samples]
    cpu = [s["cpu"] / s["events"] * 1e6 for s in samples]
    return {
        "events_per_s": statistics.median(rates),
        "cpu_us_per_event": statistics.median(cpu),
        "samples": samples,
    }


def latency_summary(latencies: list[float], cpu: float) -> dict[str, Any]:
    """Percentiles of the round trips; ``cpu`` is the process time they took in all."""
    ordered = sorted(latencies)
    return {
        "cpu_us_per_call": cpu / len(ordered) * 1e6,
        "cpu_s": cpu,
        "p50_us": percentile(ordered, 50) * 1e6,
        "p99_us": percentile(ordered, 99) * 1e6,
        "mean_us": statistics.fmean(ordered) * 1e6,
        "max_us": ordered[-1] * 1e6,
        "calls": len(ordered),
        "latencies_us": [round(x * 1e6, 1) for x in latencies],
    }


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def connect_summary(times: list[float], cpu: list[float]) -> dict[str, Any]:
    return {
        "median_ms": statistics.median(times) * 1e3,
        "cpu_median_ms": statistics.median(cpu) * 1e3,
        "min_ms": min(times) * 1e3,
        "max_ms": max(times) * 1e3,
        "connects": len(times),
        "times_ms": [round(x * 1e3, 4) for x in times],
        "cpu_ms": [round(x * 1e3, 4) for x in cpu],
    }


def memory_summary(base: int, loaded: int, count: int, connected: int) -> dict[str, Any]:
    return {
        "rss_base_bytes": base,
        "rss_loaded_bytes": loaded,
        "clients": count,
        "connected": connected,
        "bytes_per_connection": (loaded - base) / max(connected, 1),
    }


class GcPauses:
    """Collector pauses from now on (gc.callbacks): a long one stalls every client at once."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    def summary(self) -> dict[str, Any]:
        gc.callbacks.remove(self._callback)
        durations = [d for _, d in self.pauses]
        return {
            "collections": len(durations),
            "gen2_collections": sum(1 for g, _ in self.pauses if g == 2),
            "max_pause_ms": max(durations, default=0.0) * 1e3,
            "total_pause_ms": sum(durations) * 1e3,
        }


def now_epoch() -> float:
    return time.time()
