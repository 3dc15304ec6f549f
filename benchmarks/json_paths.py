"""What tether's JSON costs on the common path, and what its fallbacks cost when they run.

``python -m benchmarks.json_paths [--count 50000] [--rounds 15]`` times, in one process, CPU
µs per call, best of ``--rounds`` interleaved rounds:

1. ``core.receive`` of the micro benchmark's server messages (``benchmarks.micro``), with
   ``tether.core._json.loads`` as shipped (orjson, and the stdlib where orjson refuses) and
   with ``orjson.loads`` bound directly at the call sites instead: the price of the one
   extra Python call that the fallback needs;
2. decoding alone: orjson, ``loads`` as shipped, and the stdlib path (what runs without
   orjson), for the micro benchmark's payloads, integer-heavy and bracket-heavy texts, and
   a text with a lone surrogate (which orjson refuses, so the stdlib decodes it);
3. encoding: ``dumps`` against the bare stdlib encoder, for ASCII and non-ASCII text (the
   second is searched for surrogates).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import orjson

from tether.core import _engineio, _json, _socketio

from .micro import connected_core, messages_for

KINDS = ("json64", "json1k", "bin1k")


def _use_loads(loads: Callable[[str | bytes], Any]) -> None:
    # Every call site: the connection's fast path reads _json.loads at call time, the codecs
    # bound the name at import.
    _json.loads = loads
    _socketio.loads = loads  # type: ignore[attr-defined]
    _engineio.loads = loads  # type: ignore[attr-defined]


def _cpu(fn: Callable[[], None]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def time_receive(kind: str, count: int) -> float:
    messages = messages_for(kind) * count
    core = connected_core()
    receive, drain = core.receive, core.drain_events

    def run() -> None:
        for i, message in enumerate(messages):
            receive(message, now=1.0)
            if i % 1000 == 0:
                drain()

    return _cpu(run) / count * 1e6


def time_calls(fn: Callable[[Any], object], argument: Any, count: int) -> float:
    def run() -> None:
        for _ in range(count):
            fn(argument)

    return _cpu(run) / count * 1e6


def _timer(fn: Callable[[Any], object], argument: Any, count: int) -> Callable[[], float]:
    """A measurement of ``count`` calls; infinite when ``fn`` refuses ``argument``."""

    def measure() -> float:
        try:
            fn(argument)
        except ValueError:
            return float("inf")
        return time_calls(fn, argument, count)

    return measure


def _cell(value: float) -> str:
    return "refuses" if value == float("inf") else f"{value:.3f}"


def best(rounds: int, variants: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Each variant's best time; the variants alternate within every round."""
    results = {name: float("inf") for name in variants}
    for _ in range(rounds):
        for name, measure in variants.items():
            results[name] = min(results[name], measure())
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.json_paths", description=__doc__)
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    n, rounds = args.count, args.rounds
    shipped = _json.loads

    print(f"CPU µs per call, best of {rounds} interleaved rounds\n")
    print("core.receive per event          " + "".join(f"{k:>10}" for k in KINDS))
    rows: dict[str, list[float]] = {"loads as shipped": [], "orjson.loads bound directly": []}
    for kind in KINDS:

        def receive_with(loads: Callable[[str | bytes], Any], kind: str = kind) -> float:
            _use_loads(loads)
            try:
                return time_receive(kind, n)
            finally:
                _use_loads(shipped)

        results = best(
            rounds,
            {
                "loads as shipped": lambda: receive_with(shipped),
                "orjson.loads bound directly": lambda: receive_with(orjson.loads),
            },
        )
        for name, value in results.items():
            rows[name].append(value)
    for name, values in rows.items():
        print(f"  {name:30}" + "".join(f"{v:10.3f}" for v in values))

    texts: dict[str, str] = {
        "json64 payload": str(messages_for("json64")[0])[2:],
        "json1k payload": str(messages_for("json1k")[0])[2:],
        "100 integers": json.dumps(["e", list(range(100))]),
        "600 objects (1,201 brackets)": json.dumps(["e", [{"a": i, "b": [i]} for i in range(600)]]),
        "lone surrogate (orjson refuses)": '["e","\\ud800",{"seq":1}]',
    }
    decoders: dict[str, Callable[[Any], object]] = {
        "orjson": orjson.loads,
        "shipped": shipped,
        "stdlib path": _json._stdlib_loads,
    }
    print("\ndecoding alone                   " + "".join(f"{k:>14}" for k in decoders))
    for label, text in texts.items():
        count = n if len(text) < 5000 else max(n // 100, 100)

        results = best(rounds, {name: _timer(fn, text, count) for name, fn in decoders.items()})
        print(f"  {label:31}" + "".join(f"{_cell(results[name]):>14}" for name in decoders))

    events = {
        "ASCII event, 1 KiB": ["e", {"seq": 0, "pad": "x" * 1000}],
        "non-ASCII event, 1 KiB": ["e", {"seq": 0, "pad": "é" * 1000}],
        "a lone surrogate in 1 KiB": ["e", {"seq": 0, "pad": "é" * 999 + "\udc80"}],
    }
    encoders: dict[str, Callable[[Any], object]] = {
        "dumps": _json.dumps,
        "stdlib encoder": _json._ENCODER.encode,
    }
    print("\nencoding                         " + "".join(f"{k:>16}" for k in encoders))
    for label, event in events.items():
        results = best(rounds, {name: _timer(fn, event, n) for name, fn in encoders.items()})
        print(f"  {label:31}" + "".join(f"{results[name]:16.3f}" for name in encoders))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
